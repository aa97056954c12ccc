//! Persistent sessions expire (`session-expiry-interval`, amqtt's
//! `session_expiry_interval`): a client that stays away longer loses its
//! session and subscriptions; one that comes back in time keeps them.
//! Real sockets, rumqttc as the client.

use std::time::Duration;

use moth_tests::{EVENT_TIMEOUT, TestBroker};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};

/// Connects with clean session 0 and returns the client, its event loop and
/// the CONNACK's session-present flag.
async fn connect(tb: &TestBroker, client_id: &str) -> (AsyncClient, EventLoop, bool) {
    let mut options = tb.client_options(client_id);
    options.set_clean_session(false);
    let (client, mut events) = AsyncClient::new(options, 10);
    let present = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::ConnAck(a)) = events.poll().await.expect("connects") {
                return a.session_present;
            }
        }
    })
    .await
    .expect("CONNACK in time");
    (client, events, present)
}

/// Subscribes and waits for the SUBACK.
async fn subscribe(client: &AsyncClient, events: &mut EventLoop, filter: &str) {
    client.subscribe(filter, QoS::AtLeastOnce).await.expect("queue SUBSCRIBE");
    tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.expect("SUBACK") {
                return;
            }
        }
    })
    .await
    .expect("SUBACK in time");
}

/// Sends DISCONNECT and waits until the connection is gone.
async fn disconnect(client: AsyncClient, mut events: EventLoop) {
    client.disconnect().await.expect("queue DISCONNECT");
    let _ = tokio::time::timeout(EVENT_TIMEOUT, async { while events.poll().await.is_ok() {} }).await;
}

/// Waits until the broker holds `n` sessions, or fails after `within`.
async fn sessions_become(tb: &TestBroker, n: usize, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        while tb.broker.session_count() != n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_left_longer_than_its_interval_is_gone_with_its_subscriptions() {
    let tb = TestBroker::start("session_expiry_interval: 1\n").await;
    let (client, mut events, present) = connect(&tb, "expiring").await;
    assert!(!present);
    subscribe(&client, &mut events, "exp/#").await;
    disconnect(client, events).await;
    assert_eq!(tb.broker.session_count(), 1, "kept while within its interval");
    assert!(sessions_become(&tb, 0, EVENT_TIMEOUT).await, "expired after 1 s (plus one sweep)");
    // A message for the old subscription has nobody to go to now.
    tb.broker.publish("exp/x", "lost", moth::QoS::AtLeastOnce, false).expect("publish");
    let (client, mut events, present) = connect(&tb, "expiring").await;
    assert!(!present, "a new session");
    let got = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                return p;
            }
        }
    })
    .await;
    assert!(got.is_err(), "the expired subscription delivered {got:?}");
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_in_time_keeps_its_session_and_one_without_an_interval_never_loses_it() {
    let tb = TestBroker::start("session-expiry-interval: 60\n").await;
    let (client, mut events, _) = connect(&tb, "back-soon").await;
    subscribe(&client, &mut events, "soon/#").await;
    disconnect(client, events).await;
    tb.broker.publish("soon/x", "kept", moth::QoS::AtLeastOnce, false).expect("publish");
    let (_client, mut events, present) = connect(&tb, "back-soon").await;
    assert!(present, "within 60 s the session is still there");
    let p = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = events.poll().await.expect("delivery") {
                return p;
            }
        }
    })
    .await
    .expect("the queued message arrives");
    assert_eq!(&p.payload[..], b"kept");

    // Without the key: hbmqtt's rule, kept until the client removes it.
    let tb = TestBroker::start("").await;
    let (client, events, _) = connect(&tb, "forever").await;
    disconnect(client, events).await;
    assert!(!sessions_become(&tb, 0, Duration::from_secs(2)).await, "no interval: the session stays");
}
