//! `auth_anonymous` (also `auth.anonymous`): lets clients without a user name in
//! when `auth.allow-anonymous` is true (hbmqtt's default).
//!
//! Unlike hbmqtt, a client that sends a user name is *not* let in merely for
//! sending one: for such a client this plugin has no opinion and the other
//! plugins of the chain decide (hbmqtt and amqtt admit any user name when
//! anonymous access is off, which amqtt's own docs flag as dangerous). With
//! `allow-anonymous: true` it allows every client, as hbmqtt does, unless another
//! plugin denies it.

use moth_plugin_api::{AuthPlugin, AuthRequest, Decision};

pub struct AnonymousAuth {
    allow_anonymous: bool,
}

impl AnonymousAuth {
    pub const NAME: &'static str = "auth_anonymous";

    pub fn new(allow_anonymous: bool) -> Self {
        AnonymousAuth { allow_anonymous }
    }
}

impl AuthPlugin for AnonymousAuth {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        match (self.allow_anonymous, request.username) {
            (true, _) => Decision::Allow,
            (false, None) => Decision::Deny("anonymous access is disabled (auth.allow-anonymous: false)".into()),
            (false, Some(_)) => Decision::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(username: Option<&str>) -> AuthRequest<'_> {
        AuthRequest {
            client_id: "c",
            username,
            password: None,
            peer_addr: "127.0.0.1:1",
            listener: "default",
            protocol_level: 4,
            tls_identity: None,
        }
    }

    #[test]
    fn allows_everyone_when_anonymous_allowed() {
        let p = AnonymousAuth::new(true);
        assert_eq!(p.authenticate(&req(None)), Decision::Allow);
        assert_eq!(p.authenticate(&req(Some("bob"))), Decision::Allow);
    }

    #[test]
    fn denies_anonymous_and_defers_named_when_disallowed() {
        let p = AnonymousAuth::new(false);
        assert!(matches!(p.authenticate(&req(None)), Decision::Deny(_)));
        assert_eq!(p.authenticate(&req(Some("bob"))), Decision::Ignore);
    }
}
