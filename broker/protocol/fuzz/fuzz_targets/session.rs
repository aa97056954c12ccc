//! Any bytes, read two at a time as the operations a connection applies to
//! its session (`moth::fuzzing::session` says which): the session never
//! panics, keeps its in-flight window and queue within their limits, and
//! writes only whole packets that decode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| moth::fuzzing::session(data));
