//! Where a CONNECT is checked and authenticated: the CONNACK decision.
//!
//! The codec has already enforced the wire rules (protocol name and level,
//! reserved flag, will flags, password without user name). What is left is
//! the broker's policy: client identifiers [MQTT-3.1.3], then the
//! authentication chain of `access/mod.rs`.
//!
//! A user name without a password is accepted here, as MQTT 3.1.1 allows
//! (hbmqtt refuses it with code 4); the authentication plugins decide whether
//! such a client may in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::access::{AccessControl, AuthInput, AuthOutcome, TlsInput};
use crate::packet::{Connect, ConnectReturnCode, Protocol};
use crate::stats::AuthAnswer;

/// The broker's answer to a CONNECT, before the session is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectDecision {
    Accept {
        /// The client's id, or the one assigned to it.
        client_id: String,
        /// Whether the broker made the id up [MQTT-3.1.3-6].
        assigned: bool,
    },
    Refuse {
        code: ConnectReturnCode,
        /// For the log.
        reason: String,
    },
}

static ASSIGNED: AtomicU64 = AtomicU64::new(0);

/// A client id for a client that sent an empty one. Unique for the life of
/// the process, and in a form (`moth-` and hex) a client would not pick by
/// accident.
pub(crate) fn assign_client_id() -> String {
    let n = ASSIGNED.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("moth-{nanos:08x}{n:08x}")
}

/// Checks the client identifier of a CONNECT.
pub(crate) fn check_client_id(connect: &Connect) -> ConnectDecision {
    if !connect.client_id.is_empty() {
        return ConnectDecision::Accept { client_id: connect.client_id.clone(), assigned: false };
    }
    if connect.protocol == Protocol::V31 {
        return ConnectDecision::Refuse {
            code: ConnectReturnCode::IdentifierRejected,
            reason: "MQTT 3.1 requires a client identifier".into(),
        };
    }
    // MQTT 5 assigns one whatever clean start says, and tells the client
    // in CONNACK [MQTT-3.1.3-6, MQTT-3.2.2-16 in 5.0].
    if !connect.clean_session && connect.protocol != Protocol::V5 {
        return ConnectDecision::Refuse {
            code: ConnectReturnCode::IdentifierRejected,
            reason: "empty client identifier with clean session 0 [MQTT-3.1.3-8]".into(),
        };
    }
    ConnectDecision::Accept { client_id: assign_client_id(), assigned: true }
}

/// Runs the authentication chain for a CONNECT whose client id was accepted.
pub(crate) async fn authenticate(
    access: &AccessControl,
    connect: &Connect,
    client_id: &str,
    peer_addr: &str,
    listener: &str,
    tls: Option<TlsInput>,
    record: impl FnMut(&str, AuthAnswer, Duration),
) -> (ConnectDecision, AuthOutcome) {
    let input = AuthInput {
        client_id: client_id.to_string(),
        username: connect.username.clone(),
        password: connect.password.as_deref().map(<[u8]>::to_vec),
        peer_addr: peer_addr.to_string(),
        listener: listener.to_string(),
        protocol_level: connect.protocol.level(),
        tls,
        extra: mqtt5_properties(connect),
    };
    let outcome = access.authenticate_recorded(input, record).await;
    let decision = if outcome.allowed {
        ConnectDecision::Accept { client_id: client_id.to_string(), assigned: false }
    } else {
        // 4 only when a plugin says the credentials are wrong
        // (`BAD_CREDENTIALS`); every other refusal, timeouts and plugin
        // errors included, is 5 "not authorized".
        let code = if outcome.bad_credentials {
            ConnectReturnCode::BadUsernameOrPassword
        } else {
            ConnectReturnCode::NotAuthorized
        };
        ConnectDecision::Refuse { code, reason: outcome.reason.clone().unwrap_or_else(|| "not authorized".into()) }
    };
    (decision, outcome)
}

/// The MQTT 5 CONNECT properties a plugin may want, as the request's
/// `extra` list (plugin-api 1.3 documents the keys, `request.rs`): session
/// expiry and user properties in order. A CONNECT that names an enhanced
/// authentication method never comes here (`access/enhanced.rs`).
fn mqtt5_properties(connect: &Connect) -> Vec<(String, String)> {
    let p = &connect.properties;
    let mut extra = Vec::new();
    if let Some(s) = p.session_expiry_interval {
        extra.push(("mqtt5.session-expiry-interval".to_string(), s.to_string()));
    }
    for (name, value) in &p.user_properties {
        extra.push((format!("mqtt5.user-property.{name}"), value.clone()));
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(client_id: &str, clean: bool, protocol: Protocol) -> Connect {
        Connect {
            protocol,
            clean_session: clean,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        }
    }

    #[test]
    fn mqtt_3_1_3_6_empty_id_with_clean_session_is_assigned() {
        let ConnectDecision::Accept { client_id, assigned } = check_client_id(&connect("", true, Protocol::V311))
        else {
            panic!()
        };
        assert!(assigned);
        assert!(client_id.starts_with("moth-"));
        let ConnectDecision::Accept { client_id: other, .. } = check_client_id(&connect("", true, Protocol::V311))
        else {
            panic!()
        };
        assert_ne!(client_id, other);
    }

    #[test]
    fn mqtt_3_1_3_8_empty_id_without_clean_session_is_refused() {
        assert!(matches!(
            check_client_id(&connect("", false, Protocol::V311)),
            ConnectDecision::Refuse { code: ConnectReturnCode::IdentifierRejected, .. }
        ));
    }

    #[test]
    fn mqtt5_empty_id_is_assigned_even_without_clean_start() {
        let decision = check_client_id(&connect("", false, Protocol::V5));
        assert!(matches!(decision, ConnectDecision::Accept { assigned: true, .. }), "{decision:?}");
    }

    #[test]
    fn plugins_get_the_mqtt5_connect_properties_as_extra() {
        let mut c = connect("c", true, Protocol::V5);
        c.properties.session_expiry_interval = Some(60);
        c.properties.user_properties = vec![("site".into(), "lab".into()), ("site".into(), "b=c".into())];
        let extra = mqtt5_properties(&c);
        let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("mqtt5.session-expiry-interval", "60"),
                ("mqtt5.user-property.site", "lab"),
                ("mqtt5.user-property.site", "b=c"),
            ]
        );
        assert!(mqtt5_properties(&connect("c", true, Protocol::V311)).is_empty());
    }

    #[test]
    fn mqtt31_needs_an_id() {
        assert!(matches!(
            check_client_id(&connect("", true, Protocol::V31)),
            ConnectDecision::Refuse { code: ConnectReturnCode::IdentifierRejected, .. }
        ));
        assert!(matches!(check_client_id(&connect("x", true, Protocol::V31)), ConnectDecision::Accept { .. }));
    }

    #[tokio::test]
    async fn refused_auth_gives_not_authorized() {
        let access = AccessControl::allow_all();
        let (d, o) = authenticate(
            &access,
            &connect("c", true, Protocol::V311),
            "c",
            "127.0.0.1:1",
            "default",
            None,
            |_, _, _| {},
        )
        .await;
        assert!(matches!(d, ConnectDecision::Accept { .. }));
        assert_eq!(o.decided_by.as_deref(), Some("auth_anonymous"));
    }
}
