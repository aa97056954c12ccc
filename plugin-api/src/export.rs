//! The export glue: the plain-Rust [`Plugin`] trait an author implements and
//! the [`export_plugin!`](crate::export_plugin) macro that turns it into the
//! library's root module.
//!
//! Every entry point into plugin code goes through [`guard`], which catches
//! panics: abi_stable ends the whole process (`exit(1)`) when a panic
//! reaches the boundary, so a panic must become an error here, on the plugin
//! side. Keep `panic = "unwind"` (the default) in the plugin's profile: with
//! `panic = "abort"` nothing can be caught.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RResult, RSome, RStr, RString};

use crate::decision::Decision;
use crate::enhanced_auth::{self, AuthReply, AuthStep};
use crate::object::{Capabilities, PluginBox, PluginObject, PluginObject_TO};
use crate::request::{AuthRequest, TopicRequest};

/// A plugin, in plain Rust. Every method has a default, so implement only
/// what the plugin does, and say so in [`Plugin::capabilities`].
pub trait Plugin: Send + Sync + 'static {
    /// What this plugin implements ([`PluginObject::capabilities`]), asked
    /// once after construction. Default: authentication and topic checks.
    fn capabilities(&self) -> Capabilities {
        Capabilities::AUTHENTICATE | Capabilities::CHECK_TOPIC
    }

    /// Answers one CONNECT ([`PluginObject::authenticate`]); asked only with
    /// [`Capabilities::AUTHENTICATE`]. Default: no opinion.
    fn authenticate(&self, _request: &AuthRequest<'_>) -> Decision {
        Decision::ignore()
    }

    /// Answers one use of a topic ([`PluginObject::check_topic`]); asked
    /// only with [`Capabilities::CHECK_TOPIC`]. Default: no opinion.
    fn check_topic(&self, _request: &TopicRequest<'_>) -> Decision {
        Decision::ignore()
    }

    /// (1.4) One step of an MQTT 5 enhanced authentication exchange (see
    /// [`crate::enhanced_auth`]); asked only with
    /// [`Capabilities::ENHANCED_AUTHENTICATE`]. May block, like
    /// `authenticate`. Default: [`AuthReply::NotMine`].
    fn enhanced_auth(&self, _step: &AuthStep) -> AuthReply {
        AuthReply::NotMine
    }

    /// A named call added after 1.0 (see [`PluginObject::extension`]).
    /// [`crate::enhanced_auth::EXTENSION`] never reaches it: the glue
    /// answers that one with [`Plugin::enhanced_auth`]. Default: `None`,
    /// "unknown call".
    fn extension(&self, _name: &str, _input: &str) -> Option<Result<String, String>> {
        None
    }
}

/// Runs plugin code, turning a panic into an error message.
pub fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        format!("plugin panicked in {what}: {detail}")
    })
}

/// Wraps a [`Plugin`] so that every call is guarded.
struct Guarded<P>(P);

impl<P: Plugin> PluginObject for Guarded<P> {
    fn capabilities(&self) -> Capabilities {
        // A panic here leaves the plugin with no capability: it is never asked.
        guard("capabilities", || self.0.capabilities()).unwrap_or(Capabilities(0))
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> RResult<Decision, RString> {
        guard("authenticate", || self.0.authenticate(request)).map_err(RString::from).into()
    }

    fn check_topic(&self, request: &TopicRequest<'_>) -> RResult<Decision, RString> {
        guard("check_topic", || self.0.check_topic(request)).map_err(RString::from).into()
    }

    fn extension(&self, name: RStr<'_>, input: RStr<'_>) -> ROption<RResult<RString, RString>> {
        if name.as_str() == enhanced_auth::EXTENSION {
            let step = || AuthStep::from_json(input.as_str()).map(|s| self.0.enhanced_auth(&s).to_json());
            return RSome(
                guard("enhanced_auth", step).and_then(|r| r).map(RString::from).map_err(RString::from).into(),
            );
        }
        match guard("extension", || self.0.extension(name.as_str(), input.as_str())) {
            Ok(None) => RNone,
            Ok(Some(r)) => RSome(r.map(RString::from).map_err(RString::from).into()),
            Err(panic) => RSome(RResult::RErr(RString::from(panic))),
        }
    }
}

/// Puts a [`Plugin`] behind the FFI-safe object type, with every call
/// guarded against panics. The broker uses this for its built-in plugins too.
pub fn into_plugin_box<P: Plugin>(plugin: P) -> PluginBox {
    PluginObject_TO::from_value(Guarded(plugin), TD_Opaque)
}

/// Support for [`export_plugin!`](crate::export_plugin): runs the author's
/// constructor with the options, guarded.
#[doc(hidden)]
pub fn construct<P: Plugin>(
    what: &str,
    options_json: RStr<'_>,
    make: impl FnOnce(&str) -> Result<P, String>,
) -> RResult<PluginBox, RString> {
    match guard(what, || make(options_json.as_str())) {
        Ok(Ok(p)) => RResult::ROk(into_plugin_box(p)),
        Ok(Err(e)) => RResult::RErr(RString::from(e)),
        Err(panic) => RResult::RErr(RString::from(panic)),
    }
}

/// Exports a plugin: emits the library's root module.
///
/// ```text
/// moth_plugin_api::export_plugin! {
///     name: "my_auth",                    // the name used in the configuration
///     version: env!("CARGO_PKG_VERSION"), // the plugin's own version
///     description: "Lets in the users listed in its options",
///     // namespace: "moth.broker.plugins", // optional; this is the default
///     constructor: MyAuth::from_options,  // fn(&str /* options as JSON */) -> Result<MyAuth, String>
/// }
/// ```
///
/// The constructor gets the plugin's options (the YAML under
/// `plugins-config.<name>`) as JSON text, `{}` when none are configured.
/// Parse them with any JSON crate; return `Err` with a one-line message
/// naming the bad option and the broker refuses to start with it.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        description: $description:expr,
        $(namespace: $namespace:expr,)?
        constructor: $constructor:expr $(,)?
    ) => {
        const _: () = {
            use $crate::__private::abi_stable;
            use abi_stable::std_types::{RResult, RStr, RString};

            const NAME: &str = $name;
            #[allow(unused_mut, unused_assignments)]
            const NAMESPACE: &str = {
                let mut ns = $crate::DEFAULT_NAMESPACE;
                $(ns = $namespace;)?
                ns
            };

            extern "C" fn metadata() -> $crate::PluginMetadata {
                $crate::PluginMetadata {
                    name: RStr::from_str(NAME),
                    namespace: RStr::from_str(NAMESPACE),
                    plugin_version: RStr::from_str($version),
                    api_version: $crate::API_VERSION,
                    description: RStr::from_str($description),
                }
            }

            extern "C" fn new(options_json: RStr<'_>, host: $crate::HostContext) -> RResult<$crate::PluginBox, RString> {
                $crate::log::install(host.log, NAME);
                $crate::export::construct("constructor", options_json, $constructor)
            }

            fn root_module() -> $crate::PluginModRef {
                use abi_stable::prefix_type::PrefixTypeTrait;
                $crate::PluginMod { metadata, new }.leak_into_prefix()
            }

            // What `#[abi_stable::export_root_module]` expands to, written
            // out so that a plugin needs no direct dependency on abi_stable.
            // The symbol name is abi_stable's `ROOT_MODULE_LOADER_NAME`.
            #[unsafe(no_mangle)]
            pub static _1as_0lib_1header_0root_bmodule_bloader: abi_stable::library::LibHeader = {
                pub extern "C" fn _sabi_erased_module() -> abi_stable::library::RootModuleResult {
                    abi_stable::library::__call_root_module_loader(root_module)
                }
                unsafe {
                    abi_stable::library::LibHeader::from_constructor::<$crate::PluginModRef>(
                        _sabi_erased_module,
                        abi_stable::library::CheckTypeLayout::Yes,
                    )
                }
            };
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::TopicAction;
    use abi_stable::std_types::{RNone, RSlice};

    struct Panicky;

    impl Plugin for Panicky {
        fn authenticate(&self, _request: &AuthRequest<'_>) -> Decision {
            panic!("boom")
        }
    }

    #[test]
    fn loader_symbol_name_matches_abi_stable() {
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }

    #[test]
    fn a_panic_becomes_an_error() {
        let b = into_plugin_box(Panicky);
        let req = AuthRequest {
            client_id: RStr::from_str("c"),
            username: RNone,
            password: RNone,
            peer_addr: RStr::from_str("127.0.0.1:1"),
            listener: RStr::from_str("default"),
            protocol_level: 4,
            tls: RNone,
            extra: RSlice::EMPTY,
        };
        let RResult::RErr(e) = b.authenticate(&req) else { panic!("expected an error") };
        assert!(e.as_str().contains("boom"), "{e}");
        let topic = TopicRequest {
            client_id: RStr::from_str("c"),
            username: RNone,
            listener: RStr::from_str("default"),
            action: TopicAction::PUBLISH,
            topic: RStr::from_str("t"),
            extra: RSlice::EMPTY,
        };
        assert_eq!(b.check_topic(&topic).unwrap(), Decision::ignore());
        assert!(b.extension(RStr::from_str("x/1"), RStr::from_str("{}")).is_none());
    }
}
