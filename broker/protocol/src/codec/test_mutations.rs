//! Seeded random inputs for the codec's never-panics tests, shared by the
//! 3.1.1 and MQTT 5 test files.

use bytes::BytesMut;

use super::*;

/// Decodes 50,000 truncated, mutated, random and concatenated variants of
/// `valid` (encoded packets) as `protocol`, with the largest packet size
/// or a tiny one. Nothing may panic, whatever decodes must encode to the
/// same packet again, and `Ok(None)` must consume nothing.
pub(super) fn never_panics(valid: &[Vec<u8>], protocol: Protocol, mut state: u64) {
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Truncation on 32-bit targets is fine: these pick indices and bytes.
        state as usize
    };
    for _ in 0..50_000 {
        let r = next();
        let mut bytes = valid[r % valid.len()].clone();
        match (r >> 8) % 4 {
            0 => bytes.truncate(r >> 16 & 0xFF),
            1 => {
                for _ in 0..1 + (r >> 16) % 4 {
                    let i = next() % bytes.len();
                    bytes[i] = next() as u8;
                }
            }
            2 => bytes = (0..(r >> 16) % 64).map(|_| next() as u8).collect(),
            _ => {
                bytes.extend_from_slice(&valid[(r >> 16) % valid.len()]);
                let i = next() % bytes.len();
                bytes[i] ^= 1 << (next() % 8);
            }
        }
        let max = if r & 0x80 == 0 { MAX_REMAINING_LENGTH + 5 } else { r >> 24 & 0x3F };
        decode_all(&bytes, max, protocol);
    }
}

/// Decodes everything in `bytes`; a panic or a broken invariant fails.
fn decode_all(bytes: &[u8], max: usize, protocol: Protocol) {
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.clone();
        match decode(&mut buf, max, protocol) {
            Ok(Some(p)) => {
                let mut out = BytesMut::new();
                encode(&p, protocol, &mut out);
                assert_eq!(decode(&mut out, MAX_REMAINING_LENGTH + 5, protocol), Ok(Some(p)), "re-encodes");
                assert!(out.is_empty());
            }
            Ok(None) => return assert_eq!(buf, before, "Ok(None) consumed bytes"),
            Err(_) => return,
        }
    }
}
