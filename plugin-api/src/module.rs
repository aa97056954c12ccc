//! The root module: the one thing a plugin library exports. Frozen for all
//! of 1.x: abi_stable refuses a library whose root module has fewer fields
//! than the broker expects, so adding a field here would lock out every
//! plugin already built. Grow through the plugin object instead.

use abi_stable::StableAbi;
use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RStr, RString};
use abi_stable::{declare_root_module_statics, package_version_strings};

use crate::log::LogLevel;
use crate::object::PluginBox;
use crate::version::ApiVersion;

/// Describes a plugin library. All strings are `'static`: they live in the
/// library, which is never unloaded.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct PluginMetadata {
    /// The name the configuration uses (`auth.plugins`, `topic-check.plugins`,
    /// `plugins-config`). Letters, digits, `_`, `-` and `.`; `.` and `_` are
    /// interchangeable when matching, as in hbmqtt (`auth.anonymous`). A
    /// library whose name is already taken (by a built-in plugin or by a
    /// library found earlier) is skipped with a warning.
    pub name: RStr<'static>,
    /// The broker registers the plugin only when this equals its plugin
    /// namespace (default [`crate::DEFAULT_NAMESPACE`]).
    pub namespace: RStr<'static>,
    /// The plugin's own version, free text (`1.4.2`), for `moth plugins`.
    pub plugin_version: RStr<'static>,
    /// The plugin-api version the plugin was built against ([`crate::API_VERSION`]).
    pub api_version: ApiVersion,
    /// One line saying what the plugin does.
    pub description: RStr<'static>,
}

/// What the broker hands a plugin at construction.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct HostContext {
    /// The broker's plugin-api version: a plugin may adapt to an older broker.
    pub api_version: ApiVersion,
    /// The broker's version, free text, for the plugin's log.
    pub broker_version: RStr<'static>,
    /// Writes a line to the broker's log under the plugin's name; see [`crate::log`].
    pub log: extern "C" fn(level: LogLevel, plugin: RStr<'_>, message: RStr<'_>),
}

/// The root module. `metadata` must not fail; `new` is called once per
/// broker configuration (start and every reload) with the plugin's options
/// as JSON text (`{}` when none are configured) and returns the plugin object
/// or a one-line error that the broker reports as a start-up error.
/// [`crate::export_plugin!`] writes both functions.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Describes the plugin. Called when the broker loads the library (every
    /// library in `plugins-dir`, whether a chain names it or not), before any
    /// `new`. Must not fail or panic: nothing catches a panic here.
    pub metadata: extern "C" fn() -> PluginMetadata,
    /// Builds a plugin object from `options_json` (`plugins-config.<name>`
    /// as JSON text, `{}` when absent) and the [`HostContext`]. Called each
    /// time the broker builds its chains from a configuration and a chain
    /// names the plugin: at start (`moth --check` and `moth plugins` too) and
    /// on every reload; one object serves both chains, and the previous
    /// object is dropped once its last call returns. `RErr` carries a
    /// one-line message naming the bad option: the broker then refuses to
    /// start, or rejects the reload and keeps the running chains.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(options_json: RStr<'_>, host: HostContext) -> RResult<PluginBox, RString>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "moth_plugin";
    const NAME: &'static str = "moth_plugin";
    /// Frozen at 1.0.0 for all of 1.x: abi_stable refuses a library whose
    /// version here has a lower minor than the broker's, which would make a
    /// newer broker reject older plugins. The real interface version is in
    /// [`PluginMetadata::api_version`]; the layout check still compares the
    /// crate's major version type by type.
    const VERSION_STRINGS: VersionStrings = ROOT_VERSION_STRINGS;
}

/// See [`RootModule::VERSION_STRINGS`] above.
pub const ROOT_VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");

/// The version of this crate, for a broker's diagnostics.
pub const CRATE_VERSION_STRINGS: VersionStrings = package_version_strings!();
