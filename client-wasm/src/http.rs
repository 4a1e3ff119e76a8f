//! HTTP to baton-server with a timeout, and classification of what came back. The requests
//! themselves are made by `js/platform.js`.

use crate::js;
use baton_core::{ClientError, ErrorCode, RefreshOutcome};
use std::time::Duration;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

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
    pub(crate) url: String,
    pub(crate) body: Option<JsValue>,
    pub(crate) bearer: Option<&'a str>,
    pub(crate) device_id: &'a str,
    pub(crate) credentials: bool,
    pub(crate) timeout_ms: u32,
    /// `Idempotency-Key`: the same for every retry of one refresh.
    pub(crate) key: Option<&'a str>,
}

/// Performs a POST. Errors are network failures and timeouts only; HTTP errors are a `Reply`.
pub(crate) async fn call(c: Call<'_>) -> Result<Reply, ClientError> {
    let body = c.body.unwrap_or(JsValue::NULL);
    let p = crate::platform::call(
        &c.url,
        &body,
        c.bearer,
        c.device_id,
        c.key,
        c.credentials,
        c.timeout_ms,
    );
    let r = JsFuture::from(p).await.map_err(|e| failure(&e))?;
    Ok(Reply {
        status: js::get_f64(&r, "status").unwrap_or(0.0) as u16,
        body: js::get(&r, "body"),
        // Milliseconds through an integer: `Duration::from_secs_f64` costs 400 bytes of wasm.
        retry_after: js::get_f64(&r, "retryAfter").map(|s| Duration::from_millis((s * 1e3) as u64)),
        skew_ms: js::get_f64(&r, "skewMs").map(|v| v as i64),
        received_at: js::get_f64(&r, "receivedAt").unwrap_or(0.0),
    })
}

/// The error for a request that got no response (`js/platform.js` rejects with its code).
fn failure(e: &JsValue) -> ClientError {
    match e.as_string().as_deref() {
        Some("timeout") => ClientError::new(ErrorCode::Timeout, 0),
        Some("aborted") => ClientError {
            code: "aborted".into(),
            status: 0,
            retryable: false,
        },
        _ => ClientError::new(ErrorCode::NetworkError, 0),
    }
}

/// The server's error of a reply as a `ClientError` (the code passes through unchanged).
/// Retryable: 429, 5xx and a locked account; everything else needs a different request.
pub(crate) fn reply_error(r: &Reply) -> ClientError {
    let code = js::get_str(&js::get(&r.body, "error"), "code").unwrap_or_else(|| {
        if r.status >= 500 {
            ErrorCode::Unavailable.as_str()
        } else {
            ErrorCode::InvalidRequest.as_str()
        }
        .to_owned()
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
