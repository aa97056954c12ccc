//! `auth_anonymous` (also `auth.anonymous`): lets clients without a user name in
//! when `auth.allow-anonymous` is true (hbmqtt's default).
//!
//! Unlike hbmqtt, a client that sends a user name is *not* let in merely for
//! sending one: for such a client this plugin has no opinion and the other
//! plugins of the chain decide (hbmqtt and amqtt admit any user name when
//! anonymous access is off, which amqtt's own docs flag as dangerous). With
//! `allow-anonymous: true` it allows every client, as hbmqtt does, unless another
//! plugin denies it.

use moth_plugin_api::{AuthRequest, Capabilities, Decision, Plugin};

/// The `auth_anonymous` plugin: hbmqtt's anonymous rule.
pub struct AnonymousAuth {
    allow_anonymous: bool,
}

impl AnonymousAuth {
    /// The name configurations use in `auth.plugins`.
    pub const NAME: &'static str = "auth_anonymous";

    /// With `allow_anonymous`, clients without a user name are allowed;
    /// without it, they are denied.
    pub fn new(allow_anonymous: bool) -> Self {
        AnonymousAuth { allow_anonymous }
    }
}

impl Plugin for AnonymousAuth {
    fn capabilities(&self) -> Capabilities {
        // A comparison of two fields: no reason to leave the connection's thread.
        Capabilities::AUTHENTICATE | Capabilities::FAST_AUTHENTICATE
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        match (self.allow_anonymous, request.username()) {
            (true, _) => Decision::allow(),
            (false, None) => Decision::deny("anonymous access is disabled (auth.allow-anonymous: false)"),
            (false, Some(_)) => Decision::ignore(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(username: Option<&str>) -> AuthRequest<'_> {
        AuthRequest::new_for_test("c", username, None)
    }

    #[test]
    fn allows_everyone_when_anonymous_allowed() {
        let p = AnonymousAuth::new(true);
        assert_eq!(p.authenticate(&req(None)), Decision::allow());
        assert_eq!(p.authenticate(&req(Some("bob"))), Decision::allow());
    }

    #[test]
    fn denies_anonymous_and_defers_named_when_disallowed() {
        let p = AnonymousAuth::new(false);
        assert!(p.authenticate(&req(None)).is_refusal());
        assert_eq!(p.authenticate(&req(Some("bob"))), Decision::ignore());
    }
}
