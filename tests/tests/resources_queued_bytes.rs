//! Issue 12, point 5: an offline session's queue was bounded only in
//! messages, so 1,000 queued 1 MiB messages held 1.45 GiB for one client.
//! `max-queued-bytes` (32 MiB by default) bounds it in bytes; measured as
//! this process's resident size (one test in this file, so nothing else
//! runs in it meanwhile).

use bytes::Bytes;
use moth::QoS;
use moth_protocol::packet::{Packet, Publish, Subscribe, SubscribeFilter};
use moth_tests::{RawClient, TestBroker, rss_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_session_holds_at_most_max_queued_bytes() {
    const MESSAGES: u16 = 120;
    let tb = TestBroker::start("").await;
    let (mut away, _) = RawClient::handshake(tb.addr, "away", false).await;
    away.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("big/#", QoS::AtLeastOnce)]))).await;
    assert!(matches!(away.recv().await, Some(Packet::Suback(_))));
    away.send(&Packet::Disconnect(Default::default())).await;
    away.expect_closed().await;
    let (mut p, _) = RawClient::handshake(tb.addr, "filler", true).await;
    let before = rss_bytes();
    // 120 messages of 1,000,000 bytes: 114 MiB if all were kept.
    for id in 1..=MESSAGES {
        let m = Publish::new("big/x", Bytes::from(vec![b'x'; 1_000_000]), QoS::AtLeastOnce, false, id);
        p.send(&Packet::Publish(m)).await;
        assert!(matches!(p.recv().await, Some(Packet::Puback(_))));
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "resident size grew by {} MiB for one offline session", grown >> 20);
    assert!(tb.broker.dropped_messages() >= 80, "dropped {}", tb.broker.dropped_messages());
}
