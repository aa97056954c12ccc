//! MQTT 5 enhanced authentication (plugin-api 1.4, `enhanced_auth.rs` of
//! the plugin API tells the contract): which plugin runs a client's
//! authentication method, and the exchange one step at a time. Pure policy:
//! the packets (AUTH, CONNACK) are the server's (`server/enhanced_auth.rs`
//! before CONNACK, `server/connection/reauth.rs` after).
//!
//! The plugins asked are those of `auth.plugins` that declare
//! `ENHANCED_AUTHENTICATE`, in order; the first that does not answer
//! "not mine" owns the exchange. Its success admits the client without the
//! chain's `authenticate` calls, which a challenge/response method replaces
//! (a password plugin would refuse a client that sends no password); any
//! refusal, error, panic or timeout refuses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moth_plugin_api::Capabilities;
use moth_plugin_api::enhanced_auth::{AuthReply, AuthStep, MAX_STATE, MAX_STEPS};
use tracing::warn;

use crate::access::AccessControl;
use crate::plugin_host::call::{ChainPlugin, call_enhanced_auth};
use crate::stats::AuthAnswer;

/// What a step of an exchange came to.
pub(crate) enum Step {
    /// Send the client this challenge (AUTH 0x18) and go on with its answer
    /// ([`Exchange::next`]).
    Challenge(Exchange, Vec<u8>),
    /// The exchange is over.
    Done(Outcome),
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The client is who it says: admit it (CONNACK 0 or AUTH 0x00 with the data).
    Success {
        data: Option<Vec<u8>>,
        /// Who the method says the client is; `None`: the CONNECT's user name.
        username: Option<String>,
        plugin: String,
    },
    /// Refused by the plugin that ran the method (0x86 for bad credentials,
    /// else 0x87). The reason is for the log only.
    Refused { bad_credentials: bool, reason: String, plugin: String },
    /// No plugin does this method: CONNACK 0x8C "bad authentication method".
    UnknownMethod,
}

/// An exchange under way: the plugin that owns it and what the next step
/// tells it. Holds the plugin, not the chain, so a reload in the middle
/// of an exchange does not move it to another plugin.
pub(crate) struct Exchange {
    plugin: Arc<ChainPlugin>,
    timeout: Duration,
    /// The last step asked; the next one is built from it.
    last: AuthStep,
}

impl AccessControl {
    /// Step 1 of an exchange: asks the chain's enhanced-authentication
    /// plugins in order with `first` (its `step`, `state` and `data` are
    /// set here from `data`).
    pub(crate) async fn enhanced_start(
        &self,
        mut first: AuthStep,
        data: Option<Vec<u8>>,
        mut record: impl FnMut(&str, AuthAnswer, Duration),
    ) -> Step {
        let chains = self.chains();
        first.step = 1;
        first.state = None;
        first.data = data;
        let capable = chains.auth.iter().filter(|p| p.caps.contains(Capabilities::ENHANCED_AUTHENTICATE));
        for p in capable {
            let started = Instant::now();
            let reply = call_enhanced_auth(p, first.clone(), chains.timeout).await;
            if matches!(reply, Ok(AuthReply::NotMine)) {
                record(&p.name, AuthAnswer::Ignored, started.elapsed());
                continue;
            }
            let exchange = Exchange { plugin: p.clone(), timeout: chains.timeout, last: first };
            return exchange.settle(reply, started, &mut record);
        }
        Step::Done(Outcome::UnknownMethod)
    }
}

impl Exchange {
    /// The next step, with the client's answer to the last challenge.
    pub(crate) async fn next(
        mut self,
        data: Option<Vec<u8>>,
        mut record: impl FnMut(&str, AuthAnswer, Duration),
    ) -> Step {
        let started = Instant::now();
        if self.last.step >= MAX_STEPS {
            let reason = format!("the exchange took more than {MAX_STEPS} steps");
            return self.settle(Err(reason), started, &mut record);
        }
        let mut step = self.last.clone();
        step.step += 1;
        step.data = data;
        self.last = step.clone();
        let reply = call_enhanced_auth(&self.plugin, step, self.timeout).await;
        self.settle(reply, started, &mut record)
    }

    /// What a reply means; keeps a challenge's state for the next step,
    /// counts and logs the end of the exchange.
    fn settle(
        mut self,
        reply: Result<AuthReply, String>,
        started: Instant,
        record: &mut impl FnMut(&str, AuthAnswer, Duration),
    ) -> Step {
        let reply = match reply {
            Ok(AuthReply::Continue { state, .. }) if state.len() > MAX_STATE => {
                Err(format!("its state of {} bytes is over the {MAX_STATE}-byte limit", state.len()))
            }
            other => other,
        };
        let plugin = self.plugin.name.clone();
        let (answer, outcome) = match reply {
            Ok(AuthReply::Continue { data, state }) => {
                self.last.state = Some(state);
                return Step::Challenge(self, data);
            }
            Ok(AuthReply::Success { data, username }) => {
                (AuthAnswer::Allowed, Outcome::Success { data, username, plugin })
            }
            Ok(AuthReply::Deny(reason)) => {
                (AuthAnswer::Denied, Outcome::Refused { bad_credentials: false, reason, plugin })
            }
            Ok(AuthReply::BadCredentials(reason)) => {
                (AuthAnswer::Denied, Outcome::Refused { bad_credentials: true, reason, plugin })
            }
            // Step 1's "not mine" never comes here: the next plugin is asked.
            Ok(AuthReply::NotMine) => self.failed("answered not-mine in the middle of its own exchange".into()),
            Err(e) => self.failed(e),
        };
        record(&self.plugin.name, answer, started.elapsed());
        Step::Done(outcome)
    }

    /// An error, a panic, a timeout or a reply that breaks the rules: a
    /// refusal, logged and counted against the plugin.
    fn failed(&self, e: String) -> (AuthAnswer, Outcome) {
        self.plugin.count_failure();
        warn!(plugin = %self.plugin.name, client_id = %self.last.client_id, method = %self.last.method,
            "enhanced authentication plugin failed, counted as deny: {e}");
        (AuthAnswer::Error, Outcome::Refused { bad_credentials: false, reason: e, plugin: self.plugin.name.clone() })
    }
}

#[cfg(test)]
mod tests {
    use moth_plugin_api::{Plugin, into_plugin_box};

    use super::*;

    /// What a test plugin does with each step of its method `M`.
    #[derive(Clone, Copy)]
    enum Script {
        /// Challenges until step `n`, then admits as `proved`.
        SucceedsAt(u32),
        /// Challenges for ever.
        Endless,
        Panics,
        /// Returns a state over the limit.
        HugeState,
        /// Says "not mine" at step 2.
        ForgetsAtStep2,
    }

    struct Scripted {
        enhanced: bool,
        script: Script,
    }

    impl Plugin for Scripted {
        fn capabilities(&self) -> Capabilities {
            let fast = Capabilities::AUTHENTICATE | Capabilities::FAST_AUTHENTICATE;
            if self.enhanced { fast | Capabilities::ENHANCED_AUTHENTICATE } else { fast }
        }

        fn enhanced_auth(&self, step: &AuthStep) -> AuthReply {
            if step.method != "M" {
                return AuthReply::NotMine;
            }
            // Each step sees the state of the one before.
            assert_eq!(step.state, (step.step > 1).then(|| format!("after {}", step.step - 1)));
            let challenge = AuthReply::Continue { data: vec![step.step as u8], state: format!("after {}", step.step) };
            match self.script {
                Script::SucceedsAt(n) if step.step == n => {
                    AuthReply::Success { data: step.data.clone(), username: Some("proved".into()) }
                }
                Script::SucceedsAt(_) | Script::Endless => challenge,
                Script::Panics => panic!("boom"),
                Script::HugeState => AuthReply::Continue { data: vec![], state: "x".repeat(MAX_STATE + 1) },
                Script::ForgetsAtStep2 if step.step == 2 => AuthReply::NotMine,
                Script::ForgetsAtStep2 => challenge,
            }
        }
    }

    fn access(plugins: Vec<(&'static str, bool, Script)>) -> AccessControl {
        AccessControl::with_auth_chain(
            plugins
                .into_iter()
                .map(|(name, enhanced, script)| (name, into_plugin_box(Scripted { enhanced, script })))
                .collect(),
        )
    }

    fn first(method: &str) -> AuthStep {
        AuthStep { method: method.into(), client_id: "c".into(), ..AuthStep::default() }
    }

    /// Runs an exchange to its end, the client answering each challenge
    /// with `[step]`; the outcome and how many challenges came.
    async fn run(access: &AccessControl, method: &str) -> (Outcome, u32) {
        let mut step = access.enhanced_start(first(method), Some(vec![0]), |_, _, _| {}).await;
        let mut challenges = 0;
        loop {
            match step {
                Step::Challenge(exchange, data) => {
                    challenges += 1;
                    step = exchange.next(Some(data), |_, _, _| {}).await;
                }
                Step::Done(outcome) => return (outcome, challenges),
            }
        }
    }

    #[tokio::test]
    async fn the_first_plugin_that_runs_the_method_owns_the_exchange_and_names_the_user() {
        let a = access(vec![
            ("plain", false, Script::Endless),
            ("other", true, Script::Panics),
            ("m", true, Script::SucceedsAt(3)),
        ]);
        // `plain` lacks the capability and is not asked; `other` panics...
        let (outcome, _) = run(&a, "M").await;
        assert!(matches!(outcome, Outcome::Refused { ref plugin, .. } if plugin == "other"), "{outcome:?}");
        let a = access(vec![("m", true, Script::SucceedsAt(3))]);
        let (outcome, challenges) = run(&a, "M").await;
        assert_eq!(challenges, 2);
        assert_eq!(
            outcome,
            Outcome::Success { data: Some(vec![2]), username: Some("proved".into()), plugin: "m".into() }
        );
    }

    #[tokio::test]
    async fn a_method_nobody_runs_is_unknown() {
        let a = access(vec![("plain", false, Script::SucceedsAt(1)), ("m", true, Script::SucceedsAt(1))]);
        assert_eq!(run(&a, "OTHER").await.0, Outcome::UnknownMethod);
        assert_eq!(run(&access(vec![]), "M").await.0, Outcome::UnknownMethod);
    }

    #[tokio::test]
    async fn rule_breaking_plugins_refuse_and_are_counted() {
        for (script, needle) in [
            (Script::Endless, "more than 16 steps"),
            (Script::HugeState, "over the 65536-byte limit"),
            (Script::ForgetsAtStep2, "not-mine in the middle"),
            (Script::Panics, "panicked"),
        ] {
            let a = access(vec![("m", true, script)]);
            let (outcome, _) = run(&a, "M").await;
            let Outcome::Refused { bad_credentials: false, reason, .. } = outcome else { panic!("{outcome:?}") };
            assert!(reason.contains(needle), "{reason}");
            assert_eq!(a.plugin_failures(), 1, "{reason}");
        }
    }
}
