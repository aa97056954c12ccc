//! Embedding examples live beside this file: `cargo run -p moth-examples --example embedded`.
