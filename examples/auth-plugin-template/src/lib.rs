//! A template for a moth authentication plugin.
//!
//! It lets in the users listed in its options with their password, refuses
//! a listed user with a wrong password (CONNACK 4), and has no opinion on
//! anybody else, so the next plugin of `auth.plugins` decides:
//!
//! ```yaml
//! auth:
//!   plugins: [my_auth, auth_anonymous]
//! plugins-dir: /usr/lib/moth/plugins
//! plugins-config:
//!   my_auth:
//!     users: {alice: secret, bob: hunter2}
//! ```

use std::collections::HashMap;

use moth_plugin_api::serde_json::{self, Value};
use moth_plugin_api::{AuthRequest, Capabilities, Decision, Plugin, export_plugin, log};

pub struct MyAuth {
    users: HashMap<String, String>,
}

impl MyAuth {
    /// Called once when the broker starts (and on every reload) with the
    /// plugin's options, the YAML under `plugins-config.my_auth`, as JSON
    /// text (`{}` when there is none). An `Err` stops the broker from
    /// starting with this configuration: make it one line naming the option.
    pub fn from_options(json: &str) -> Result<MyAuth, String> {
        let options: Value = serde_json::from_str(json).map_err(|e| format!("my_auth options: {e}"))?;
        let mut users = HashMap::new();
        if let Some(list) = options.get("users") {
            let list = list.as_object().ok_or("my_auth options: `users` must be a mapping of name: password")?;
            for (name, password) in list {
                let password =
                    password.as_str().ok_or_else(|| format!("my_auth options: users.{name} must be a string"))?;
                users.insert(name.clone(), password.to_string());
            }
        }
        // Goes to the broker's log, tagged with the plugin's name.
        log::info(&format!("{} user(s) configured", users.len()));
        Ok(MyAuth { users })
    }
}

impl Plugin for MyAuth {
    /// Only authentication: the broker refuses to put this plugin in
    /// `topic-check.plugins`.
    fn capabilities(&self) -> Capabilities {
        Capabilities::AUTHENTICATE
    }

    /// Called for every CONNECT, on a thread of the broker's blocking pool:
    /// blocking here (a database, an HTTP call) is fine, within the broker's
    /// `plugin-timeout`.
    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        let Some(username) = request.username() else {
            return Decision::ignore();
        };
        match self.users.get(username) {
            None => Decision::ignore(),
            Some(expected) if request.password() == Some(expected.as_bytes()) => Decision::allow(),
            Some(_) => Decision::bad_credentials(format!("wrong password for {username}")),
        }
    }
}

export_plugin! {
    name: "my_auth",
    version: env!("CARGO_PKG_VERSION"),
    description: "users and passwords from the plugin's options (template)",
    constructor: MyAuth::from_options,
}
