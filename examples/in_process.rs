//! An application that embeds moth and talks to it in-process: it configures
//! a listener from YAML on an ephemeral port, subscribes and publishes
//! without a socket, and reports the address MQTT clients can use.
//!
//! ```text
//! cargo run -p moth-examples --example in_process
//! ```

use moth::{Broker, Config, QoS};

const CONFIG: &str = "
listeners:
  default:
    type: tcp
  local:
    bind: 127.0.0.1:0      # port 0: the system picks one; see local_addr()
timeout-disconnect-delay: 2
auth:
  allow-anonymous: true
";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();

    let broker = Broker::new(Config::from_yaml_str(CONFIG)?)?;
    broker.start().await?;
    let addr = broker.local_addr("local").ok_or("listener `local` is not bound")?;
    println!("MQTT clients can connect to {addr}");

    let mut readings = broker.subscribe("sensors/+/temperature", QoS::AtLeastOnce)?;
    broker.publish("sensors/kitchen/temperature", "21.5", QoS::AtLeastOnce, true)?;

    let message = readings.recv().await.ok_or("the broker stopped")?;
    println!("{} = {}", message.topic, String::from_utf8_lossy(&message.payload));

    broker.shutdown().await;
    // After the shutdown: the subscription's stream has ended, publishing fails.
    assert!(readings.recv().await.is_none());
    assert!(broker.publish("sensors/x/temperature", "0", QoS::AtMostOnce, false).is_err());
    Ok(())
}
