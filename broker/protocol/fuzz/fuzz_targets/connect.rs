//! Any bytes as the first thing a client sends: the protocol peek and the
//! CONNECT decoder (for every version) never panic and agree with each
//! other.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use moth_protocol::codec;
use moth_protocol::packet::{Packet, Protocol};

fuzz_target!(|data: &[u8]| {
    let announced = codec::connect_protocol(data);
    let mut buf = BytesMut::from(data);
    if let Ok(Some(Packet::Connect(c))) = codec::decode(&mut buf, 1 << 20, Protocol::V311) {
        assert_eq!(announced, Some(c.protocol), "the peek and the decoder disagree on the version");
    }
});
