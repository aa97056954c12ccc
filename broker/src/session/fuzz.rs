//! One session driven by arbitrary bytes: the `session` target of
//! `broker/protocol/fuzz` (built with `--cfg fuzzing`, which exposes this
//! as `moth::fuzzing`), and a seeded smoke test here so it never rots.
//!
//! Each pair of input bytes is one thing a connection does to its session,
//! in any order a client could cause: queue a delivery at any QoS, with any
//! retain flag, version and topic alias budget; send what the window
//! allows; every acknowledgement (PUBACK, PUBREC, a refusing PUBREC,
//! PUBCOMP) with a right or wrong packet id; an inbound QoS 2 id and its
//! PUBREL; detach and attach again, clean or not, then resend what was in
//! flight. After every step the session's bounds must hold and everything
//! it wrote must decode as whole packets of the client's version.

use std::sync::Arc;

use bytes::BytesMut;

use crate::codec;
use crate::message::Message;
use crate::packet::{Protocol, QoS};
use crate::session::delivery::{Delivery, Outbound};
use crate::session::state::{Session, SessionLimits};

const LIMITS: SessionLimits = SessionLimits { max_inflight: 4, max_queued: 8, max_queued_bytes: 512 };

/// Runs the operations `data` encodes; panics when a bound breaks or the
/// output does not decode. Public under cargo-fuzz only (`moth::fuzzing`).
#[allow(unreachable_pub)]
pub fn session(data: &[u8]) {
    let mut protocol = Protocol::V311;
    let mut session = Session::new(LIMITS);
    session.attach(false, LIMITS);
    let mut out = BytesMut::new();
    for (step, op) in data.chunks(2).enumerate() {
        let (what, arg) = (op[0], op.get(1).copied().unwrap_or(0));
        let id = u16::from(arg % 8) + 1;
        let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][usize::from(arg % 3)];
        match what % 12 {
            0..=2 => {
                let topic = format!("t/{}", arg % 5);
                let payload = vec![b'x'; usize::from(arg % 64)];
                let message = Arc::new(Message::new(topic, payload, qos, arg & 0x80 != 0));
                session.enqueue(Delivery::new(message, qos, arg & 0x40 != 0));
            }
            3 | 4 => {
                session.drain_into(&mut out, 1 << 16);
            }
            5 => drop(session.on_puback(id)),
            6 => drop(session.on_pubrec(id)),
            7 => drop(session.on_pubrec_refused(id)),
            8 => drop(session.on_pubcomp(id)),
            9 => drop(session.on_inbound_qos2(id)),
            10 => drop(session.on_pubrel(id)),
            _ => {
                // The client goes and comes back, maybe in another version.
                session.detach();
                protocol = if arg & 1 == 0 { Protocol::V311 } else { Protocol::V5 };
                let outbound = Outbound { protocol, topic_alias_maximum: u16::from(arg >> 6), ..Outbound::default() };
                let clean = arg & 2 != 0;
                session.attach_with(clean, !clean, LIMITS, outbound);
                session.resume_into(&mut out);
            }
        }
        assert!(session.inflight().outbound_len() <= usize::from(LIMITS.max_inflight), "step {step}: window");
        assert!(session.queued() <= LIMITS.max_queued, "step {step}: queue bound");
        while !out.is_empty() {
            match codec::decode(&mut out, usize::MAX, protocol) {
                Ok(Some(_)) => {}
                other => panic!("step {step}: the session wrote what does not decode: {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::rng::Rng;

    #[test]
    fn random_inputs_keep_the_session_within_its_bounds() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let data: Vec<u8> = (0..400).map(|_| rng.below(256) as u8).collect();
            super::session(&data);
        }
    }
}
