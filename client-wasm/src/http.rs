//! HTTP to baton-server with a timeout, and classification of what came back.

use crate::js;
use baton_core::{ClientError, ErrorCode, RefreshOutcome};
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestCredentials, RequestInit, Response};

/// A response with its parsed JSON body (`null` when empty or not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: JsValue,
    pub(crate) retry_after: Option<Duration>,
    /// Server clock minus local clock, from `Date`.
    pub(crate) skew_ms: Option<i64>,
    /// Local time the response arrived.
    pub(crate) received_at: f64,
}

#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: String,
    pub(crate) body: Option<JsValue>,
    pub(crate) bearer: Option<&'a str>,
    pub(crate) device_id: &'a str,
    pub(crate) credentials: bool,
    pub(crate) timeout_ms: u32,
    /// `Idempotency-Key`: the same for every retry of one refresh.
    pub(crate) key: Option<&'a str>,
}

/// Performs a call. Errors are network failures and timeouts only; HTTP errors are a `Reply`.
pub(crate) async fn call(c: Call<'_>) -> Result<Reply, ClientError> {
    let init = RequestInit::new();
    init.set_method(c.method);
    init.set_credentials(if c.credentials {
        RequestCredentials::Include
    } else {
        RequestCredentials::SameOrigin
    });
    let headers = web_sys::Headers::new().map_err(|_| net())?;
    let _ = headers.set("X-Device-ID", c.device_id);
    if let Some(k) = c.key {
        let _ = headers.set("Idempotency-Key", k);
    }
    if let Some(b) = c.bearer {
        let _ = headers.set("Authorization", &js::cat(&["Bearer ", b]));
    }
    if let Some(body) = &c.body {
        let _ = headers.set("Content-Type", "application/json");
        let text = js_sys::JSON::stringify(body).map_err(|_| net())?;
        init.set_body(&text);
    }
    init.set_headers(&headers);
    let (res, received_at) = send_with_timeout(&c.url, &init, c.timeout_ms).await?;
    let status = res.status();
    let headers = res.headers();
    let retry_after = headers
        .get("retry-after")
        .ok()
        .flatten()
        .and_then(|v| retry_after_of(&v, received_at));
    // Server clock minus local clock; `Date` has one-second resolution.
    let skew_ms = headers
        .get("date")
        .ok()
        .flatten()
        .map(|d| js_sys::Date::parse(&d))
        .filter(|t| t.is_finite())
        .map(|t| (t - received_at) as i64);
    let body = match res.text() {
        Ok(p) => match JsFuture::from(p).await {
            Ok(t) => t
                .as_string()
                .filter(|s| !s.is_empty())
                .and_then(|s| js_sys::JSON::parse(&s).ok())
                .unwrap_or(JsValue::NULL),
            Err(_) => JsValue::NULL,
        },
        Err(_) => JsValue::NULL,
    };
    Ok(Reply {
        status,
        body,
        retry_after,
        skew_ms,
        received_at,
    })
}

/// `Retry-After` as delay seconds or an HTTP-date. HTTP-dates are parsed by the browser's
/// `Date.parse`: using baton-core's parser (`time::parse_retry_after`, which native callers and
/// the core tests use) was measured at +1.9 KB gzipped for the package (36.5 -> 38.3 KB).
fn retry_after_of(v: &str, now_ms: f64) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = js_sys::Date::parse(v);
    at.is_finite()
        .then(|| Duration::from_millis((at - now_ms).max(0.0) as u64))
}

fn net() -> ClientError {
    ClientError::new(ErrorCode::NetworkError, 0)
}

/// `fetch(url, init)` aborted after `timeout_ms`; returns the response and its arrival time.
async fn send_with_timeout(
    url: &str,
    init: &RequestInit,
    timeout_ms: u32,
) -> Result<(Response, f64), ClientError> {
    let req = Request::new_with_str_and_init(url, init)
        .map_err(|_| ClientError::new(ErrorCode::InvalidOptions, 0))?;
    let res = fetch_with_timeout(&req, None, timeout_ms).await?;
    Ok((res, js_sys::Date::now()))
}

/// Sends `req` with a timeout, also honouring the caller's own `AbortSignal` if any.
/// `AbortSignal.timeout` aborts with a `TimeoutError`, the caller's signal with its own reason,
/// which tells the two apart.
pub(crate) async fn fetch_with_timeout(
    req: &Request,
    user_signal: Option<web_sys::AbortSignal>,
    timeout_ms: u32,
) -> Result<Response, ClientError> {
    let timeout = web_sys::AbortSignal::timeout_with_u32(timeout_ms);
    let signal = match &user_signal {
        Some(us) => web_sys::AbortSignal::any(&js_sys::Array::of2(us, &timeout)),
        None => timeout,
    };
    let init = RequestInit::new();
    init.set_signal(Some(&signal));
    let req = Request::new_with_request_and_init(req, &init).map_err(|_| net())?;
    match JsFuture::from(js::global_fetch(&req)).await {
        Ok(v) => v.dyn_into::<Response>().map_err(|_| net()),
        Err(e) => Err(match js::get_str(&e, "name").as_deref() {
            Some("TimeoutError") => ClientError::new(ErrorCode::Timeout, 0),
            Some("AbortError") => ClientError {
                code: "aborted".into(),
                status: 0,
                retryable: false,
            },
            _ => net(),
        }),
    }
}

/// The server's error of a reply as a `ClientError` (the code passes through unchanged).
/// Retryable: 429, 5xx and a locked account; everything else needs a different request.
pub(crate) fn reply_error(r: &Reply) -> ClientError {
    let code = js::get_str(&js::get(&r.body, "error"), "code").unwrap_or_else(|| {
        let fallback = if r.status >= 500 {
            ErrorCode::Unavailable
        } else {
            ErrorCode::InvalidRequest
        };
        fallback.as_str().to_owned()
    });
    let retryable = r.status >= 500 || r.status == 429 || r.status == 408;
    ClientError {
        code,
        status: r.status,
        retryable,
    }
}

/// How a refresh ended, for the machine: 401 ends the session, anything else is retried.
pub(crate) fn refresh_outcome(r: &Reply) -> RefreshOutcome {
    let error = reply_error(r);
    if r.status == 401 {
        RefreshOutcome::Rejected(error)
    } else {
        RefreshOutcome::Failed {
            error,
            retry_after: r.retry_after,
        }
    }
}
