//! The hbmqtt usage example, in Rust: start a broker on the default
//! configuration (one TCP listener on 0.0.0.0:1883, anonymous access) and
//! serve until Ctrl-C.
//!
//! ```text
//! cargo run -p moth-examples --example embedded
//! ```

use moth::{Broker, Config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();

    let broker = Broker::new(Config::default())?;
    broker.start().await?;

    tokio::signal::ctrl_c().await?;
    broker.shutdown().await;
    Ok(())
}
