//! A client's will: published when its connection ends without a normal
//! DISCONNECT, at once or after its MQTT 5 will delay.

use super::packets::{expiring, publish_allowed};
use super::*;

/// How long after the connection's end its will is published: the will
/// delay interval, but no later than the session's end [MQTT-3.1.3-9].
pub(super) fn will_delay(seconds: u32, expiry: Expiry) -> Duration {
    let delay = Duration::from_secs(u64::from(seconds));
    match expiry {
        Expiry::AtClose => Duration::ZERO,
        Expiry::After(session) => delay.min(session),
        Expiry::Never => delay,
    }
}

/// Publishes the will after `delay` unless the client is back by then: a
/// new connection has taken the session over [MQTT-3.1.3-9]. A shutdown
/// publishes it at once, as Mosquitto does, rather than lose it.
pub(super) fn delay_will(
    ctx: Arc<Shared>,
    client: Client,
    will: Message,
    delay: Duration,
    conn_id: u64,
    mut shutdown: Shutdown,
) {
    debug!(client_id = %client.client_id(), topic = %will.topic, delay_s = delay.as_secs(), "will delayed");
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.recv() => {}
        }
        if client.session.opened_by() == conn_id {
            publish_will(&ctx, &client, will);
            if let Some(j) = &ctx.journal {
                j.record_quietly(Change::Will(client.session.client_id_arc(), None));
            }
        } else {
            debug!(client_id = %client.client_id(), "will dropped: the client reconnected within its delay");
        }
        drop(shutdown);
    });
}

pub(super) fn publish_will(ctx: &Shared, client: &Client, will: Message) {
    if !publish_allowed(ctx, client, &will.topic) {
        return;
    }
    debug!(client_id = %client.client_id(), topic = %will.topic, "publishing will");
    ctx.router.publish(Arc::new(expiring(will, ctx.config.max_message_expiry_interval)));
}
