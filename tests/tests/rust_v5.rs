//! rumqttc's MQTT 5 client (`rumqttc::v5`) against moth: the Rust client
//! a Rust developer embedding moth would reach for.

use std::time::Duration;

use moth_tests::{EVENT_TIMEOUT, TestBroker};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties, SubscribeProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

fn options(tb: &TestBroker, client_id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, tb.addr.ip().to_string(), tb.addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Polls until `want` returns something for an incoming packet.
async fn until<T>(events: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(p)) => {
                    if let Some(t) = want(&p) {
                        return t;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => panic!("rumqttc v5 connection failed: {e}"),
            }
        }
    })
    .await
    .expect("the packet within the timeout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_properties_and_subscription_identifier_round_trip() {
    let tb = TestBroker::start("").await;
    let (sub, mut sub_events) = AsyncClient::new(options(&tb, "rust-v5-sub"), 10);
    let connack = until(&mut sub_events, |p| match p {
        Packet::ConnAck(a) => Some(a.clone()),
        _ => None,
    })
    .await;
    let props = connack.properties.expect("an MQTT 5 CONNACK has properties");
    assert!(props.max_packet_size.is_some() && props.receive_max.is_some(), "{props:?}");

    let sub_props = SubscribeProperties { id: Some(77), user_properties: Vec::new() };
    sub.subscribe_with_properties("rust/v5/#", QoS::ExactlyOnce, sub_props).await.unwrap();
    until(&mut sub_events, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;

    let (publisher, mut pub_events) = AsyncClient::new(options(&tb, "rust-v5-pub"), 10);
    let publish_props = PublishProperties {
        content_type: Some("application/json".into()),
        user_properties: vec![("trace".into(), "abc".into())],
        response_topic: Some("rust/reply".into()),
        ..PublishProperties::default()
    };
    publisher.publish_with_properties("rust/v5/t", QoS::ExactlyOnce, false, "{}", publish_props).await.unwrap();
    let pump = tokio::spawn(async move {
        // Drives the publisher's QoS 2 exchange.
        until(&mut pub_events, |p| matches!(p, Packet::PubComp(_)).then_some(())).await;
    });
    let got = until(&mut sub_events, |p| match p {
        Packet::Publish(p) => Some(p.clone()),
        _ => None,
    })
    .await;
    assert_eq!((&got.topic[..], &got.payload[..], got.qos), (&b"rust/v5/t"[..], &b"{}"[..], QoS::ExactlyOnce));
    let p = got.properties.expect("the message's properties");
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.user_properties, vec![("trace".to_string(), "abc".to_string())]);
    assert_eq!(p.response_topic.as_deref(), Some("rust/reply"));
    assert_eq!(p.subscription_identifiers, vec![77]);
    pump.await.expect("the publisher's PUBCOMP");
}
