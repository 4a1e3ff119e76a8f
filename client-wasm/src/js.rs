//! Small JavaScript helpers: property access, errors, the clock, global lookups.

use baton_core::{ClientError, ErrorCode, Instant};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

pub(crate) fn now() -> Instant {
    Instant::from_millis(js_sys::Date::now() as u64)
}

pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub(crate) fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

pub(crate) fn get_str(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string()
}

/// An error object the JS wrapper turns into a `BatonError`.
pub(crate) fn error_value(e: &ClientError, message: &str) -> JsValue {
    let o = Object::new();
    set(&o, "code", e.code.as_str());
    set(&o, "status", e.status);
    set(&o, "retryable", e.retryable);
    set(&o, "message", message);
    o.into()
}

#[inline(always)]
pub(crate) fn client_error(code: ErrorCode, message: &str) -> JsValue {
    error_value(&ClientError::new(code, 0), message)
}

/// The error message of an error body, or a fallback.
pub(crate) fn message_of(body: &JsValue, fallback: &str) -> String {
    get_str(&get(body, "error"), "message").unwrap_or_else(|| fallback.to_owned())
}

/// Concatenates string pieces (cheaper in code size than `format!`).
pub(crate) fn cat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

pub(crate) fn get_f64(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key).as_f64()
}
