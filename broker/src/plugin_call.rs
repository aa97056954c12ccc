//! How one plugin is called: authentication on the blocking pool, bounded
//! in time and concurrency; topic checks in place or out of the way.

use std::sync::Arc;
use std::time::Duration;

use moth_plugin_api::{Capabilities, TopicRequest};

use crate::access::ChainPlugin;
use crate::auth_input::AuthInput;
use crate::chain::Answer;

/// One authentication call: off the async threads, bounded in time and in
/// concurrency. The permit is released when the plugin returns, not when the
/// caller gives up waiting.
pub async fn call_authenticate(p: &Arc<ChainPlugin>, input: &Arc<AuthInput>, timeout: Duration) -> Answer {
    let (plugin, input) = (p.clone(), input.clone());
    let call = async move {
        let permit = plugin
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the plugin's call limit was closed".to_string())?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            plugin.object.authenticate(&input.request()).into_result().map_err(|e| e.into_string())
        })
        .await
        .map_err(|e| format!("the plugin call did not complete: {e}"))?
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer,
        // Logged (with the plugin's name) and counted by the caller.
        Err(_) => Err(format!("no answer within {} ms (plugin-timeout)", timeout.as_millis())),
    }
}

/// One topic check: in place for plugins that declare themselves fast,
/// otherwise out of the way of the other tasks of this worker thread.
pub fn call_check_topic(p: &ChainPlugin, request: &TopicRequest<'_>) -> Answer {
    let call = || p.object.check_topic(request).into_result().map_err(|e| e.into_string());
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if p.caps.contains(Capabilities::FAST_TOPIC_CHECK) || !multi_thread {
        call()
    } else {
        tokio::task::block_in_place(call)
    }
}
