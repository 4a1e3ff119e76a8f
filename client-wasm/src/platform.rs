//! Bindings to `js/platform.js`: the browser primitives that are a few bytes of JavaScript and
//! a few hundred of WebAssembly (requests with timeouts, the device id, the browser-session
//! cookie, wake-up listeners). What to do with their results is decided in Rust.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/platform.js")]
extern "C" {
    /// A POST to baton-server: resolves to `{ status, body, retryAfter, skewMs, receivedAt }`,
    /// rejects with `"timeout"`, `"aborted"` or `"network_error"`.
    pub(crate) fn call(
        url: &str,
        body: &JsValue,
        bearer: Option<&str>,
        device: &str,
        key: Option<&str>,
        cookie: bool,
        timeout_ms: u32,
    ) -> js_sys::Promise;

    /// `baton.fetch`: the app's request with a token, one retry after a 401 as the client's
    /// machine decides (through `client.call`, ops 2, 6 and 7); frees `client`.
    #[wasm_bindgen(js_name = authorizedFetch)]
    pub(crate) fn authorized_fetch(
        client: crate::BatonClient,
        input: &JsValue,
        init: &JsValue,
        device: &str,
        timeout_ms: u32,
    ) -> js_sys::Promise;

    /// `crypto.randomUUID()`.
    #[wasm_bindgen(js_name = randomId)]
    pub(crate) fn random_id() -> String;

    /// The device id (salted SHA-256 of device attributes); rejects with a message.
    #[wasm_bindgen(js_name = deviceId)]
    pub(crate) fn device_id() -> js_sys::Promise;

    /// The id of the browser session (a cookie without expiry), started when `create`.
    #[wasm_bindgen(js_name = browserSession)]
    pub(crate) fn browser_session(create: bool) -> Option<String>;

    /// `Baton.create`'s options validated and completed (`{ baseUrl, storage, cookie, margin,
    /// crossTab, auth, request, storageKey }`); throws a message for invalid ones.
    #[wasm_bindgen(catch)]
    pub(crate) fn options(o: &JsValue) -> Result<JsValue, JsValue>;

    /// `localStorage` (`"local"`) or `sessionStorage`, checked to accept writes; throws a
    /// message when unusable.
    #[wasm_bindgen(catch, js_name = webStorage)]
    pub(crate) fn web_storage(kind: &str) -> Result<web_sys::Storage, JsValue>;

    /// Runs `body()` (returning a promise) under the Web Lock `name`: waits at most `wait_ms`,
    /// then takes the lock over; without Web Locks, runs it at once.
    pub(crate) fn locked(name: &str, wait_ms: u32, body: &JsValue) -> js_sys::Promise;

    /// A `BroadcastChannel` handing each message's data to `receive`; undefined where
    /// unavailable.
    pub(crate) fn channel(name: &str, receive: &JsValue) -> Option<web_sys::BroadcastChannel>;

    /// `method` (`get`, `set`, `del`) on the tabs' shared store in IndexedDB when `idb` is
    /// the IndexedDB factory (values as JSON; what `get` finds is parsed); its promise, none
    /// without IndexedDB.
    pub(crate) fn shared(
        idb: &JsValue,
        method: &str,
        key: &str,
        value: &JsValue,
    ) -> Option<js_sys::Promise>;

    /// What Web Storage holds under `key`, parsed from JSON; undefined when nothing or not
    /// JSON.
    pub(crate) fn load(store: &web_sys::Storage, key: &str) -> JsValue;

    /// Stores `value` as JSON under `key`; false when the storage refused it.
    pub(crate) fn save(store: &web_sys::Storage, key: &str, value: &JsValue) -> bool;

    /// The stored form of a token response (see `storage::Stored`), undefined when it is not
    /// one; `keep`: the refresh token to keep when the response has none.
    pub(crate) fn stored(
        response: &JsValue,
        received_at: f64,
        skew_ms: Option<f64>,
        keep: Option<String>,
        browser: Option<String>,
    ) -> JsValue;

    /// The message of an error code the client raises itself.
    pub(crate) fn describe(code: &str) -> String;

    /// Calls `wake` when the page may have slept; returns the function that stops it.
    pub(crate) fn watch(wake: &JsValue) -> js_sys::Function;
}

/// A seed for the backoff jitter.
pub(crate) fn random_u64() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64
}
