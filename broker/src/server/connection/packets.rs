//! The connected phase's packet handlers: where a client's PUBLISH is
//! checked, acknowledged and routed, where SUBSCRIBE and UNSUBSCRIBE are
//! answered, and where its acknowledgements move the QoS 1 and QoS 2 flows
//! (`session/inflight.rs`) on. The connection driver (`connection.rs`)
//! decodes the packets and hands them here one by one.

use std::collections::HashMap;

use super::*;

impl Live {
    pub(super) fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => return self.on_publish(p),
            Packet::Puback(a) => {
                let r = self.client.session.lock().on_puback(a.packet_id);
                self.acknowledged("PUBACK", a.packet_id, r)?;
            }
            Packet::Pubrec(a) => {
                // A failure reason ends an MQTT 5 flow without PUBREL.
                let refused = a.reason.is_error();
                let r = {
                    let mut session = self.client.session.lock();
                    if refused { session.on_pubrec_refused(a.packet_id) } else { session.on_pubrec(a.packet_id) }
                };
                if r == AckResult::Done && !refused {
                    self.io.emit(&Packet::Pubrel(Ack::new(a.packet_id)));
                }
                self.acknowledged("PUBREC", a.packet_id, r)?;
            }
            Packet::Pubcomp(a) => {
                let r = self.client.session.lock().on_pubcomp(a.packet_id);
                self.acknowledged("PUBCOMP", a.packet_id, r)?;
            }
            Packet::Pubrel(a) => {
                let r = self.client.session.lock().on_pubrel(a.packet_id);
                // 3.1.1 answers PUBCOMP whatever; MQTT 5 says the id was unknown.
                let reason =
                    if r == AckResult::Done { ReasonCode::SUCCESS } else { ReasonCode::PACKET_IDENTIFIER_NOT_FOUND };
                self.io.emit(&Packet::Pubcomp(Ack::with_reason(a.packet_id, reason)));
            }
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::Pingreq => self.io.emit(&Packet::Pingresp),
            Packet::Disconnect(d) => return Err(self.on_disconnect(&d)),
            Packet::Connect(_) => return Err(Close::protocol("second CONNECT [MQTT-3.1.0-2]")),
            Packet::Auth(a) => return self.on_auth(a),
            other @ (Packet::Connack(_) | Packet::Suback(_) | Packet::Unsuback(_) | Packet::Pingresp) => {
                return Err(Close::protocol(format!("{} is sent by servers only", other.name())));
            }
        }
        Ok(())
    }

    /// Logs an acknowledgement no flow waited for; one of the wrong type
    /// (PUBREC for a QoS 1 delivery, ...) ends the connection, as in
    /// Mosquitto.
    fn acknowledged(&self, packet: &str, packet_id: u16, r: AckResult) -> Result<(), Close> {
        match r {
            AckResult::Done => Ok(()),
            AckResult::Unknown => {
                debug!(client_id = %self.client.client_id(), packet_id, "{packet} for no message in flight");
                Ok(())
            }
            AckResult::WrongType => Err(Close::protocol(format!(
                "{packet} for packet id {packet_id}, whose flow waits for another acknowledgement [MQTT-4.3.2, MQTT-4.3.3]"
            ))),
        }
    }

    fn on_publish(&mut self, mut p: Publish) -> Result<(), Close> {
        bump(&mut self.io.pending.publish_received, 1);
        if let Some(v5) = self.client.v5.as_deref_mut() {
            if !p.subscription_ids.is_empty() {
                return Err(Close::protocol("PUBLISH from a client carries a subscription identifier [MQTT-3.3.4-6]"));
            }
            p.topic = v5.aliases.resolve(p.topic, p.topic_alias.take()).map_err(|e| match e {
                AliasError::OutOfRange(_) => Close::Protocol(ReasonCode::TOPIC_ALIAS_INVALID, e.to_string()),
                AliasError::Unset(_) => Close::protocol(e.to_string()),
            })?;
            if p.qos == QoS::ExactlyOnce {
                // moth's receive maximum, announced in CONNACK.
                let receive_maximum = self.ctx.config.limits.receive_maximum;
                let full = {
                    let session = self.client.session.lock();
                    session.inflight().inbound_len() >= usize::from(receive_maximum)
                        && !session.awaits_pubrel(p.packet_id)
                };
                if full {
                    let why = format!("more than {receive_maximum} QoS 2 PUBLISH awaiting PUBREL [MQTT-3.3.4-9]");
                    return Err(Close::Protocol(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED, why));
                }
            }
        }
        // After the alias is resolved: a refused PUBLISH still sets it.
        if self.ctx.over_memory() {
            return self.refuse_for_memory(&p);
        }
        let v5 = self.io.protocol.is_v5();
        let mut reason = if !publish_allowed(&self.ctx, &self.client, &p.topic) {
            ReasonCode::NOT_AUTHORIZED
        } else if !payload_format_ok(&p) {
            debug!(client_id = %self.client.client_id(), topic = %p.topic, "payload format 1 but not UTF-8: dropped");
            ReasonCode::PAYLOAD_FORMAT_INVALID
        } else {
            ReasonCode::SUCCESS
        };
        let (qos, packet_id) = (p.qos, p.packet_id);
        // With persistence, an inbound QoS 2 id and the deliveries it routes
        // are one commit (`Journal::atomically`).
        let _whole = self.ctx.journal.as_deref().filter(|_| qos == QoS::ExactlyOnce).map(|j| j.atomically());
        // Inbound QoS 2 is routed on its first PUBLISH only [MQTT-4.3.3-2].
        // A refused one starts a flow in 3.1.1, which acknowledges it as
        // if accepted; MQTT 5's failure PUBREC ends it at once.
        let starts_flow = !(v5 && reason.is_error());
        let first = qos != QoS::ExactlyOnce || (starts_flow && self.client.session.lock().on_inbound_qos2(packet_id));
        if !reason.is_error() && first {
            let message = expiring(Message::from_publish(p), self.ctx.config.max_message_expiry_interval);
            let routed = self.ctx.router.publish_from(Arc::new(message), Some(self.client.session.id()));
            if routed.queued + routed.dropped == 0 {
                reason = ReasonCode::NO_MATCHING_SUBSCRIBERS;
            } else if routed.queued == 0 && qos != QoS::AtMostOnce {
                // Every matching session's queue was full: nobody took it,
                // and an MQTT 5 publisher is told so rather than thanked.
                reason = ReasonCode::QUOTA_EXCEEDED;
                if v5 && qos == QoS::ExactlyOnce {
                    // A failure PUBREC ends the flow: the id is free again.
                    self.client.session.lock().on_pubrel(packet_id);
                }
            }
        }
        match qos {
            QoS::AtMostOnce => {}
            // Acknowledged even when refused: MQTT 3.1.1 has no negative
            // acknowledgement (its encoder leaves the reason out), and a
            // client that never gets one would re-send forever.
            QoS::AtLeastOnce => self.io.emit(&Packet::Puback(Ack::with_reason(packet_id, reason))),
            QoS::ExactlyOnce => self.io.emit(&Packet::Pubrec(Ack::with_reason(packet_id, reason))),
        }
        Ok(())
    }

    /// A PUBLISH while `memory-limit` is reached: not routed. QoS 0 is
    /// dropped; MQTT 5 is told 0x97 (quota exceeded); an MQTT 3.1.1 QoS 1/2
    /// one ends the connection, as it can be neither refused nor kept.
    fn refuse_for_memory(&mut self, p: &Publish) -> Result<(), Close> {
        let refused = self.ctx.stats.publish_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if refused == 1 || refused.is_multiple_of(10_000) {
            conn_log!(warn, self.client, client_id = %self.client.client_id(), refused_total = refused,
                "PUBLISH refused: memory-limit reached");
        }
        let reason = ReasonCode::QUOTA_EXCEEDED;
        match p.qos {
            QoS::AtMostOnce => Ok(()),
            _ if !self.io.protocol.is_v5() => Err(Close::Overloaded),
            QoS::AtLeastOnce => {
                self.io.emit(&Packet::Puback(Ack::with_reason(p.packet_id, reason)));
                Ok(())
            }
            QoS::ExactlyOnce => {
                self.io.emit(&Packet::Pubrec(Ack::with_reason(p.packet_id, reason)));
                Ok(())
            }
        }
    }

    fn on_subscribe(&mut self, s: Subscribe) {
        let subscription_id = s.subscription_id.and_then(NonZeroU32::new);
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        // A filter repeated in one SUBSCRIBE replaces itself [MQTT-3.8.4-3]:
        // only its last copy sends retained messages. Found by each
        // filter's last position, not by comparing every pair: a SUBSCRIBE
        // may carry thousands of filters.
        let last: HashMap<&str, usize> = if s.filters.len() > 1 {
            s.filters.iter().enumerate().map(|(i, f)| (f.filter.as_str(), i)).collect()
        } else {
            HashMap::new()
        };
        let max_subscriptions = self.ctx.config.limits.max_subscriptions_per_client;
        let mut over_limit = 0u64;
        for (i, f) in s.filters.iter().enumerate() {
            let repeated = last.get(f.filter.as_str()).is_some_and(|&at| at != i);
            if !self.ctx.config.shared_subscriptions && crate::topic::shared(&f.filter).is_some() {
                conn_log!(info, self.client, client_id = %self.client.client_id(), filter = %f.filter, "subscription refused: shared-subscriptions is off");
                codes.push(SubackCode::Failure(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED));
                continue;
            }
            if let Some(reason) = subscribe_refused(&self.ctx, &self.client, &f.filter) {
                conn_log!(info, self.client, client_id = %self.client.client_id(), filter = %f.filter, "subscription refused: {reason}");
                codes.push(SubackCode::Failure(ReasonCode::NOT_AUTHORIZED));
                continue;
            }
            if max_subscriptions != 0 {
                let state = self.client.session.lock();
                let subscriptions = state.subscriptions();
                let full = subscriptions.len() >= max_subscriptions && !subscriptions.contains_key(&f.filter);
                drop(state);
                if full {
                    over_limit += 1;
                    codes.push(SubackCode::Failure(ReasonCode::QUOTA_EXCEEDED));
                    continue;
                }
            }
            let granted = f.qos.min(self.ctx.config.max_qos);
            let grant = Grant {
                qos: granted,
                no_local: f.no_local,
                retain_as_published: f.retain_as_published,
                subscription_id,
            };
            let existed = self.client.session.lock().add_subscription(&f.filter, grant);
            let matching = self.ctx.router.subscribe(&self.client.session, &f.filter, grant);
            let send_retained = match f.retain_handling {
                RetainHandling::OnSubscribe => true,
                RetainHandling::OnNewSubscription => !existed,
                RetainHandling::Never => false,
            };
            if send_retained && !repeated {
                retained.extend(matching.into_iter().map(|m| (m, grant)));
            }
            debug!(client_id = %self.client.client_id(), filter = %f.filter, qos = granted as u8, "subscribed");
            codes.push(SubackCode::Granted(granted));
        }
        if over_limit > 0 {
            // Once per SUBSCRIBE, however many filters it carried.
            self.ctx.stats.subscriptions_refused.fetch_add(over_limit, std::sync::atomic::Ordering::Relaxed);
            conn_log!(info, self.client, client_id = %self.client.client_id(), refused = over_limit, max_subscriptions,
                "subscriptions refused: max-subscriptions-per-client reached");
        }
        self.io.emit(&Packet::Suback(Suback::new(s.packet_id, codes)));
        // Retained messages go after the SUBACK, with RETAIN set
        // [MQTT-3.3.1-8], and with the subscription's identifier.
        if !retained.is_empty() {
            let room = self.ctx.config.limits.max_queued_messages + self.ctx.router.retained_count();
            let mut skipped = 0usize;
            let mut state = self.client.session.lock();
            for (message, grant) in retained {
                let qos = message.qos.min(grant.qos);
                let mut delivery = Delivery::new(message, qos, true);
                if let Some(id) = grant.subscription_id {
                    delivery.subscription_ids.push(id);
                }
                skipped += usize::from(!state.enqueue_retained(delivery, room));
            }
            drop(state);
            if skipped > 0 {
                conn_log!(warn, self.client, client_id = %self.client.client_id(), skipped,
                    "retained messages not queued: the client's queue holds max-queued-messages plus the whole retained store");
            }
        }
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let mut codes = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            let existed = self.client.session.lock().remove_subscription(f);
            self.ctx.router.unsubscribe(self.client.session.id(), f);
            debug!(client_id = %self.client.client_id(), filter = %f, existed, "unsubscribed");
            codes.push(if existed { ReasonCode::SUCCESS } else { ReasonCode::NO_SUBSCRIPTION_EXISTED });
        }
        // Sent even when nothing matched [MQTT-3.10.4-5]; the codes are
        // MQTT 5's only.
        self.io.emit(&Packet::Unsuback(Unsuback::new(u.packet_id, codes)));
    }

    /// A DISCONNECT from the client: the will is dropped unless an MQTT 5
    /// client asks for it (0x04), and an MQTT 5 client may change how long
    /// its session outlives the connection.
    fn on_disconnect(&mut self, d: &Disconnect) -> Close {
        if let Some(v5) = self.client.v5.as_deref()
            && let Some(asked) = d.session_expiry_interval
        {
            if v5.expiry_was_zero && asked != 0 {
                return Close::protocol(
                    "DISCONNECT sets a session expiry interval after CONNECT set 0 [MQTT-3.14.2-2]",
                );
            }
            let granted = handshake::max_session_expiry(&self.ctx).map_or(asked, |max| asked.min(max));
            self.expiry = Expiry::from_interval(granted);
            self.client.session.lock().set_persistent(self.expiry.keeps());
        }
        let with_will = d.reason == ReasonCode::DISCONNECT_WITH_WILL;
        if !with_will {
            self.client.will = None;
        }
        Close::Disconnect(with_will)
    }
}

/// An MQTT 5 payload format indicator of 1 promises UTF-8 [MQTT 5 §3.3.2.3.2];
/// moth holds the publisher to it, so subscribers can trust it.
fn payload_format_ok(p: &Publish) -> bool {
    p.properties
        .as_ref()
        .is_none_or(|props| props.payload_format_indicator != Some(1) || std::str::from_utf8(&p.payload).is_ok())
}

/// Why the topic chain refuses a SUBSCRIBE to `filter`, if it does. A
/// shared subscription is checked by its filter: `$share/g/sensors/#` needs
/// the right to `sensors/#`.
fn subscribe_refused(ctx: &Shared, client: &Client, filter: &str) -> Option<String> {
    if !ctx.access.checks_topics() {
        return None;
    }
    let filter = crate::topic::shared(filter).map_or(filter, |(_, inner)| inner);
    ctx.access.check_topic(&topic_request(
        client.client_id(),
        client.username.as_deref(),
        &client.listener,
        TopicAction::SUBSCRIBE,
        filter,
    ))
}

/// Topic checks on a client's PUBLISH. `$SYS/` belongs to the broker:
/// clients may read it but not write to it.
pub(super) fn publish_allowed(ctx: &Shared, client: &Client, topic: &str) -> bool {
    if topic.starts_with("$SYS/") || topic == "$SYS" {
        debug!(client_id = %client.client_id(), topic, "publish to $SYS refused");
        return false;
    }
    if !ctx.access.checks_topics() {
        return true;
    }
    let request =
        topic_request(client.client_id(), client.username.as_deref(), &client.listener, TopicAction::PUBLISH, topic);
    match ctx.access.check_topic(&request) {
        None => true,
        Some(reason) => {
            conn_log!(info, client, client_id = %client.client_id(), topic, "publish refused: {reason}");
            false
        }
    }
}

/// `message` with its deadline: its MQTT 5 message expiry interval, at
/// most `max-message-expiry-interval`, which also applies to messages
/// without one. The clock is read only when either is set.
pub(super) fn expiring(message: Message, max: Option<Duration>) -> Message {
    if message.properties.is_none() && max.is_none() {
        return message;
    }
    let now = Instant::now();
    let mut message = message.expiring(now);
    if let Some(limit) = max.and_then(|max| now.checked_add(max)) {
        message.expires_at = Some(message.expires_at.map_or(limit, |at| at.min(limit)));
    }
    message
}
