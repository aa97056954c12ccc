//! Memory a client's traffic can make the broker hold, measured as the
//! resident size of this process (one test per file, so nothing else runs
//! in it meanwhile).

use std::time::Duration;

use bytes::Bytes;
use moth::QoS;
use moth_protocol::codec;
use moth_protocol::packet::{Packet, Protocol, Publish, Subscribe, SubscribeFilter};
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, rss_bytes};

/// Issue 12, point 4: a small retained message read together with a large
/// one kept the whole read buffer alive (1,000 such held 1.5 GB). Stored
/// messages now own their bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_retained_messages_do_not_pin_large_read_buffers() {
    const ROUNDS: usize = 100;
    let tb = TestBroker::start("max-packet-size: 2097152\n").await;
    let (mut c, _) = RawClient::handshake(tb.addr, "pinner", true).await;
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    let before = rss_bytes();
    for i in 0..ROUNDS {
        // One write: a 1 MiB message nobody wants, then a 10-byte retained one.
        let mut out = bytes::BytesMut::new();
        let large = Publish::new("big", big.clone(), QoS::AtMostOnce, false, 0);
        codec::encode(&Packet::Publish(large), Protocol::V311, &mut out);
        let small = Publish::new(format!("small/{i}"), &b"0123456789"[..], QoS::AtMostOnce, true, 0);
        codec::encode(&Packet::Publish(small), Protocol::V311, &mut out);
        c.send_raw(&out).await;
    }
    // Every retained message is in once a new subscriber gets them all.
    let (mut sub, _) = RawClient::handshake(tb.addr, "reader", true).await;
    sub.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("small/#", QoS::AtMostOnce)]))).await;
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while got < ROUNDS && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Packet::Publish(p))) = sub.recv_within(Duration::from_secs(5)).await {
            got += usize::from(p.retain);
        }
    }
    assert_eq!(got, ROUNDS, "every retained message was stored");
    let grown = rss_bytes().saturating_sub(before);
    // Pinned, the 100 buffers would hold over 100 MiB.
    assert!(grown < 40 << 20, "resident size grew by {} MiB", grown >> 20);
}
