//! `baton-client`: the browser shell around `baton-core`'s refresh machine, exported to
//! JavaScript with wasm-bindgen and published on npm as `baton-auth` (whose `index.js` wraps
//! [`BatonClient`] into the public `Baton` class and turns error objects into `BatonError`).
//!
//! Nothing here runs at import: browser globals are touched only by `BatonClient.create`.

mod client;
mod http;
mod js;
mod platform;
mod storage;

use baton_core::ErrorCode;
use client::{Options, Shared};
use js_sys::{Function, Object, Promise};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use wasm_bindgen::prelude::*;

type JsResult = Result<JsValue, JsValue>;

/// Every async entry point goes through this one boxed future type, so the promise glue is
/// compiled once instead of once per method (a code-size choice).
pub(crate) fn promise(f: impl Future<Output = JsResult> + 'static) -> Promise {
    let boxed: Pin<Box<dyn Future<Output = JsResult>>> = Box::pin(f);
    wasm_bindgen_futures::future_to_promise(boxed)
}

/// Handle over the shared client state; every method clones the `Rc` and holds no borrow
/// across an `await`.
#[wasm_bindgen]
pub struct BatonClient {
    rc: Shared,
}

impl std::fmt::Debug for BatonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatonClient")
    }
}

fn invalid(message: &str) -> JsValue {
    js::client_error(ErrorCode::InvalidOptions, message)
}

/// Validates `Baton.create` options (in `js/platform.js`).
fn parse_options(o: &JsValue) -> Result<Options, JsValue> {
    let v = platform::options(o)
        .map_err(|m| invalid(&m.as_string().unwrap_or_else(|| "invalid options".into())))?;
    let num = |k| js::get_f64(&v, k).unwrap_or(0.0);
    Ok(Options {
        base_url: js::get_str(&v, "baseUrl").unwrap_or_default(),
        storage: match js::get_str(&v, "storage").as_deref() {
            Some("session") => storage::Kind::Session,
            Some("memory") => storage::Kind::Memory,
            _ => storage::Kind::Local,
        },
        cookie: js::get(&v, "cookie").is_truthy(),
        margin: Duration::from_secs_f64(num("margin")),
        cross_tab: js::get(&v, "crossTab").is_truthy(),
        auth_timeout_ms: num("auth") as u32,
        request_timeout_ms: num("request") as u32,
        storage_key: js::get_str(&v, "storageKey").unwrap_or_default(),
    })
}

fn string_arg(v: &JsValue, name: &str) -> Result<String, JsValue> {
    v.as_string().ok_or_else(|| {
        js::client_error(
            ErrorCode::InvalidRequest,
            &js::cat(&[name, " must be a string"]),
        )
    })
}

impl BatonClient {
    /// The constructor for Rust callers; JavaScript uses `BatonClient.create`.
    pub async fn new(options: JsValue, emit: Function) -> Result<BatonClient, JsValue> {
        Self::with_shared(options, emit, JsValue::UNDEFINED).await
    }

    /// `shared`: the tabs' consistent store (`get`, `set`, `del` returning promises), which
    /// the npm package builds on IndexedDB; see `client::take_newer_from_shared`.
    pub async fn with_shared(
        options: JsValue,
        emit: Function,
        shared: JsValue,
    ) -> Result<BatonClient, JsValue> {
        let opts = parse_options(&options)?;
        let rc = client::create(opts, emit, shared).await?;
        Ok(BatonClient { rc })
    }
}

#[wasm_bindgen]
impl BatonClient {
    /// Creates a client; `emit(name, detail)` receives events.
    pub fn create(options: JsValue, emit: Function, shared: JsValue) -> Promise {
        promise(async move {
            Self::with_shared(options, emit, shared)
                .await
                .map(JsValue::from)
        })
    }

    pub fn register(&self, email: JsValue, password: JsValue) -> Promise {
        let rc = self.rc.clone();
        promise(async move {
            let (e, p) = (
                string_arg(&email, "email")?,
                string_arg(&password, "password")?,
            );
            client::register(&rc, e, p).await
        })
    }

    pub fn login(&self, email: JsValue, password: JsValue, remember_me: bool) -> Promise {
        let rc = self.rc.clone();
        promise(async move {
            let (e, p) = (
                string_arg(&email, "email")?,
                string_arg(&password, "password")?,
            );
            client::login(&rc, e, p, remember_me).await
        })
    }

    pub fn fetch(&self, input: JsValue, init: JsValue) -> Promise {
        let rc = self.rc.clone();
        promise(async move { client::fetch(&rc, input, init).await })
    }

    #[wasm_bindgen(js_name = getAccessToken)]
    pub fn get_access_token(&self) -> Promise {
        let rc = self.rc.clone();
        promise(async move { client::access_token(&rc, false).await.map(JsValue::from) })
    }

    pub fn refresh(&self) -> Promise {
        let rc = self.rc.clone();
        promise(async move {
            client::access_token(&rc, true).await?;
            Ok(rc.borrow().session_value())
        })
    }

    pub fn logout(&self) -> Promise {
        let rc = self.rc.clone();
        promise(async move { client::logout(&rc).await })
    }

    #[wasm_bindgen(js_name = logoutAll)]
    pub fn logout_all(&self) -> Promise {
        let rc = self.rc.clone();
        promise(async move { client::logout_all(&rc).await })
    }

    /// `{ userId, email, sessionId, expiresAt, refreshExpiresAt }` or `null`.
    #[wasm_bindgen(getter)]
    pub fn session(&self) -> JsValue {
        self.rc.borrow().session_value()
    }

    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> String {
        self.rc.borrow().device_id.clone()
    }

    /// Timing details for dashboards: `{ expiresAt, nextRefreshAt, refreshing, refreshCount,
    /// lastRefreshMs, skewMs }` (times are `Date.now()` milliseconds).
    pub fn status(&self) -> JsValue {
        let i = self.rc.borrow();
        let o = Object::new();
        let ms = |t: Option<baton_core::Instant>| {
            t.map_or(JsValue::NULL, |t| JsValue::from(t.as_millis() as f64))
        };
        js::set(&o, "expiresAt", ms(i.machine.expires_at()));
        js::set(&o, "nextRefreshAt", ms(i.machine.next_refresh_at()));
        js::set(&o, "refreshing", i.machine.is_refreshing());
        js::set(&o, "refreshCount", i.machine.refresh_count() as f64);
        js::set(
            &o,
            "lastRefreshMs",
            i.last_refresh_ms.map_or(JsValue::NULL, JsValue::from),
        );
        js::set(
            &o,
            "skewMs",
            i.machine
                .skew_ms()
                .map_or(JsValue::NULL, |v| JsValue::from(v as f64)),
        );
        o.into()
    }

    pub fn dispose(&self) {
        client::dispose(&self.rc);
    }
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
