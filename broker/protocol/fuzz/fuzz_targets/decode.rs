//! Any bytes, read as a stream of packets in MQTT 3.1.1 or 5 (the first byte
//! chooses): decoding never panics, and every packet that decodes encodes
//! to bytes that decode to the same packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use moth_protocol::codec;
use moth_protocol::packet::Protocol;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let protocol = if first & 1 == 0 { Protocol::V311 } else { Protocol::V5 };
    let mut buf = BytesMut::from(rest);
    // Bounded: a packet is at least two bytes, so this ends.
    while let Ok(Some(packet)) = codec::decode(&mut buf, 1 << 20, protocol) {
        let mut out = BytesMut::new();
        codec::encode(&packet, protocol, &mut out);
        match codec::decode(&mut out, usize::MAX, protocol) {
            Ok(Some(again)) => assert_eq!(again, packet, "round trip changed the packet"),
            other => panic!("{packet:?} encoded to bytes that decode to {other:?}"),
        }
        assert!(out.is_empty(), "encoding left bytes after the packet");
    }
});
