//! `baton-client`: the browser shell around `baton-core`'s refresh machine, exported to
//! JavaScript with wasm-bindgen and published on npm as `baton-auth`.

use baton_core::{Config, GrantSource, Instant, RefreshMachine};
use wasm_bindgen::prelude::*;

/// The package version, so applications can log which client they run.
#[wasm_bindgen(js_name = version)]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Milliseconds until a refresh would be due for a token of `expires_in_s` seconds received
/// now, with `margin_s` seconds of margin, computed by the same machine the client runs.
#[wasm_bindgen(js_name = refreshDelayMs)]
pub fn refresh_delay_ms(expires_in_s: u32, margin_s: u32) -> f64 {
    let now = Instant::from_millis(js_sys::Date::now() as u64);
    let mut m = RefreshMachine::new(
        Config {
            margin: std::time::Duration::from_secs(margin_s.into()),
            ..Config::default()
        },
        1,
    );
    m.handle_session(
        now,
        baton_core::Grant {
            access_token: String::new(),
            expires_in: std::time::Duration::from_secs(expires_in_s.into()),
            received_at: now,
            skew_ms: None,
        },
        GrantSource::Restored,
    );
    m.poll_timeout()
        .map(|t| t.since(now).as_millis() as f64)
        .unwrap_or(0.0)
}
