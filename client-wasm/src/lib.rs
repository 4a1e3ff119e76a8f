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
        margin: Duration::from_millis((num("margin") * 1e3) as u64),
        cross_tab: js::get(&v, "crossTab").is_truthy(),
        auth_timeout_ms: num("auth") as u32,
        request_timeout_ms: num("request") as u32,
        storage_key: js::get_str(&v, "storageKey").unwrap_or_default(),
    })
}

/// `{email, password}`, the body of register and login.
fn credentials(email: JsValue, password: JsValue) -> JsValue {
    let o = Object::new();
    js::set(&o, "email", email);
    js::set(&o, "password", password);
    o.into()
}

impl BatonClient {
    /// Resolves to the answer's body (`{user}`).
    pub fn register(&self, email: JsValue, password: JsValue) -> Promise {
        let body = credentials(email, password);
        self.call(0, "/auth/register".into(), body, false)
    }

    pub fn login(&self, email: JsValue, password: JsValue, remember_me: bool) -> Promise {
        let body = credentials(email, password);
        self.call(1, "/auth/login".into(), body, remember_me)
    }

    pub fn get_access_token(&self) -> Promise {
        self.call(2, JsValue::UNDEFINED, JsValue::UNDEFINED, false)
    }

    pub fn refresh(&self) -> Promise {
        self.call(3, JsValue::UNDEFINED, JsValue::UNDEFINED, false)
    }

    pub fn logout(&self) -> Promise {
        self.call(4, JsValue::UNDEFINED, JsValue::UNDEFINED, false)
    }

    pub fn logout_all(&self) -> Promise {
        self.call(5, JsValue::UNDEFINED, JsValue::UNDEFINED, false)
    }

    pub fn session(&self) -> JsValue {
        self.view(0)
    }

    pub fn device_id(&self) -> String {
        self.view(1).as_string().unwrap_or_default()
    }

    pub fn status(&self) -> JsValue {
        self.view(2)
    }

    /// The constructor for Rust callers; JavaScript uses `BatonClient.create`.
    pub async fn new(options: JsValue, emit: Function) -> Result<BatonClient, JsValue> {
        Self::with_shared(options, emit, JsValue::UNDEFINED).await
    }

    /// `shared`: the `indexedDB` factory, for the tabs' consistent store the npm package keeps
    /// there (see `shared` in js/platform.js and `client::take_newer_from_shared`); undefined
    /// for none.
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

    /// The account and token calls, in one export (each export costs the package a shim):
    /// `op` 0 post body `b` to path `a` without a session (register, asking for a sign-in
    /// code), 1 sign in by posting body `b` to path `a` (login, code, link; remember: flag),
    /// 2 getAccessToken,
    /// 3 refresh, 4 logout, 5 logoutAll; for `fetch`'s flow, 6 the token to retry with after a
    /// 401 with token `a`, 7 an API refused `a`. The Rust methods of the same names call this.
    pub fn call(&self, op: u32, a: JsValue, b: JsValue, flag: bool) -> Promise {
        let rc = self.rc.clone();
        promise(async move {
            match op {
                0 | 1 => {
                    let path = a.as_string().unwrap_or_default();
                    if op == 0 {
                        client::post(&rc, &path, b).await
                    } else {
                        client::sign_in(&rc, &path, b.unchecked_into(), flag).await
                    }
                }
                2 | 3 => {
                    let token = client::access_token(&rc, op == 3).await?;
                    Ok(if op == 2 {
                        token.into()
                    } else {
                        rc.borrow().session_value()
                    })
                }
                4 => client::logout(&rc).await,
                5 => client::logout_all(&rc).await,
                // After a 401 with token `a`: the token to retry with, or undefined.
                6 => Ok(
                    client::token_after_401(&rc, &a.as_string().unwrap_or_default())
                        .await
                        .map_or(JsValue::UNDEFINED, JsValue::from),
                ),
                // An API refused `a`, a token fresh from a refresh.
                _ => {
                    client::retry_refused(&rc, &a.as_string().unwrap_or_default());
                    Ok(JsValue::UNDEFINED)
                }
            }
        })
    }

    /// `fetch` with the access token and device id, and one retry after a 401 (the flow is in
    /// `js/platform.js`; every decision is the machine's, through `call`).
    pub fn fetch(&self, input: JsValue, init: JsValue) -> Promise {
        let (device, timeout_ms) = {
            let i = self.rc.borrow();
            (i.device_id.clone(), i.opts.request_timeout_ms)
        };
        let handle = BatonClient {
            rc: self.rc.clone(),
        };
        platform::authorized_fetch(handle, &input, &init, &device, timeout_ms)
    }

    /// What the client shows, in one export: `which` 0 the session (`{ userId, email,
    /// sessionId, expiresAt, refreshExpiresAt }` or `null`), 1 the device id, 2 timing details
    /// for dashboards (`{ expiresAt, nextRefreshAt, refreshing, refreshCount, lastRefreshMs,
    /// skewMs }`, times in `Date.now()` milliseconds). The Rust methods of those names call it.
    pub fn view(&self, which: u32) -> JsValue {
        let i = self.rc.borrow();
        match which {
            0 => i.session_value(),
            1 => i.device_id.as_str().into(),
            _ => {
                let ms = |t: Option<baton_core::Instant>| {
                    t.map_or(JsValue::NULL, |t| JsValue::from(t.as_millis() as f64))
                };
                let o = Object::new();
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
        }
    }

    pub fn dispose(&self) {
        client::dispose(&self.rc);
    }
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
