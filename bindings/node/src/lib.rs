//! evloop for Node.js: an addon whose loop runs inside Node's own loop on the JS main thread.
//!
//! `runtime.rs` embeds the loop (a libuv poll on `Loop::backend_fd`, a libuv timer on
//! `Loop::backend_timeout`, a prepare hook, each running `Loop::run(RunMode::Ready)`) and dispatches
//! completions to JavaScript; `net.rs`, `udp.rs` and `fs.rs` are the native halves of
//! `lib/net.js`, `lib/dgram.js` and `lib/fs.js`; `uv.rs` declares the libuv calls.

// napi-derive registers the exports only outside cfg(test); `cargo clippy --all-targets`
// still compiles a test build of the library, where nothing would reach them.
#![cfg_attr(test, allow(dead_code))]

mod fs;
mod net;
mod runtime;
mod udp;
mod uv;

use napi::{Env, JsFunction, NapiRaw};
use napi_derive::napi;

/// Starts evloop in the calling Node environment; `dispatch(owner, kind, a, b, n)` receives
/// every event. Returns the backend's name (`"uring"` or `"epoll"`). Calling it again returns
/// the same.
/// The release this addon was built from: the workspace's one version number (Cargo.toml),
/// the same as the npm package's, the Python module's and `evl_version_string()`'s.
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[napi]
pub fn init(env: Env, dispatch: JsFunction) -> napi::Result<String> {
    // SAFETY: `dispatch` is a live value of this call's environment.
    let rt = runtime::install(env.raw(), unsafe { dispatch.raw() })?;
    rt.with_loop(|lp| lp.backend_name().to_string())
        .map_err(|e| runtime::js_error(e.name()))
}
