//! Issue 12, point 3: with 1,000 small retained messages stored, a client
//! that never reads and sends SUBSCRIBE packets repeating `r/#` 20,000
//! times took the broker to 3.7 GiB from 4.7 MB of input: every copy of
//! the filter queued every retained match. A filter repeated in one
//! SUBSCRIBE now replaces itself, and the retained backlog of a client is
//! bounded however it subscribes. Measured as this process's resident size
//! (one test in this file, so nothing else runs in it meanwhile).

use moth::QoS;
use moth_protocol::codec;
use moth_protocol::packet::{Packet, Protocol, Subscribe, SubscribeFilter};
use moth_tests::{RawClient, TestBroker, rss_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_filters_do_not_amplify_retained_messages_into_memory() {
    let tb = TestBroker::start("").await;
    for i in 0..1000 {
        tb.broker.publish(&format!("r/{i}"), "v", QoS::AtLeastOnce, true).unwrap();
    }
    let (mut c, _) = RawClient::handshake(tb.addr, "amplifier", true).await;
    let before = rss_bytes();
    // 20 SUBSCRIBE packets of 1,000 copies of `r/#` each: 20,000 copies,
    // never read.
    let mut out = bytes::BytesMut::new();
    for id in 1..=20u16 {
        let filters = (0..1000).map(|_| SubscribeFilter::new("r/#", QoS::AtLeastOnce)).collect();
        codec::encode(&Packet::Subscribe(Subscribe::new(id, filters)), Protocol::V311, &mut out);
    }
    c.send_raw(&out).await;
    // Event: the broker has handled all 20 (it answers a PINGREQ after them,
    // the last packet in the stream; it may be behind retained PUBLISHes).
    c.send(&Packet::Pingreq).await;
    let (mut subacks, mut pong) = (0, false);
    while !pong {
        match c.recv().await {
            Some(Packet::Suback(_)) => subacks += 1,
            Some(Packet::Pingresp) => pong = true,
            Some(Packet::Publish(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(subacks, 20);
    let grown = rss_bytes().saturating_sub(before);
    // Amplified, 20,000 copies of 1,000 deliveries would take gigabytes.
    assert!(grown < 64 << 20, "resident size grew by {} MiB", grown >> 20);
}
