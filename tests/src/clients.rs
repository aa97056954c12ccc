//! One round trip with rumqttc over any transport: connect, subscribe,
//! publish to the subscribed topic, receive the message back. Used to show
//! that a listener type works with a real client library.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};

use crate::EVENT_TIMEOUT;

/// How a connection attempt ended.
#[derive(Debug)]
pub enum Outcome {
    Accepted,
    /// CONNACK with a refusal code.
    Refused(ConnectReturnCode),
    /// No CONNACK: the transport failed (TLS alert, HTTP refusal, close).
    Failed(String),
}

/// Connects and returns the outcome, without retrying.
pub async fn try_connect(options: MqttOptions) -> Outcome {
    let (_client, mut events) = AsyncClient::new(options, 10);
    let first = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) if a.code == ConnectReturnCode::Success => {
                    return Outcome::Accepted;
                }
                Ok(Event::Incoming(Packet::ConnAck(a))) => return Outcome::Refused(a.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Outcome::Refused(code),
                Err(e) => return Outcome::Failed(format!("{e:?}")),
            }
        }
    })
    .await;
    first.unwrap_or_else(|_| panic!("no CONNACK or error within {EVENT_TIMEOUT:?}"))
}

/// Subscribes to `topic`, publishes `payload` to it at QoS 1 and waits for
/// it to come back. Panics with the client's error when anything fails.
pub async fn round_trip(mut options: MqttOptions, topic: &str, payload: &[u8]) {
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 10);
    let result = tokio::time::timeout(EVENT_TIMEOUT, async {
        let mut published = false;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    assert_eq!(a.code, ConnectReturnCode::Success, "CONNACK");
                    client.subscribe(topic, QoS::AtLeastOnce).await.expect("queue SUBSCRIBE");
                }
                Ok(Event::Incoming(Packet::SubAck(_))) if !published => {
                    published = true;
                    client.publish(topic, QoS::AtLeastOnce, false, payload.to_vec()).await.expect("queue PUBLISH");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    assert_eq!(p.topic, topic);
                    assert_eq!(&p.payload[..], payload);
                    return;
                }
                Ok(_) => {}
                Err(e) => panic!("client error: {e:?}"),
            }
        }
    })
    .await;
    result.unwrap_or_else(|_| panic!("no round trip on `{topic}` within {EVENT_TIMEOUT:?}"));
    let _ = client.disconnect().await;
}
