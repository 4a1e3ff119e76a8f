//! The device id: SHA-256 over stable device attributes plus a random per-profile salt, base64url.
//! The raw attributes never leave the browser.

use crate::js;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

const SALT_KEY: &str = "baton-auth:device-salt";

/// Computes the device id. The salt lives in `localStorage` (shared by every tab of the profile)
/// when available, else only in memory.
pub(crate) async fn device_id() -> Result<String, String> {
    let salt = salt();
    let mut material = attributes();
    material.push('|');
    material.push_str(&salt);
    let crypto = js::get(&js::global(), "crypto");
    let subtle = js::get(&crypto, "subtle");
    if subtle.is_undefined() {
        return Err("SubtleCrypto is unavailable (needs a secure context)".into());
    }
    let subtle: web_sys::SubtleCrypto = subtle.unchecked_into();
    let data = js_sys::Uint8Array::from(material.as_bytes());
    let promise = subtle
        .digest_with_str_and_buffer_source("SHA-256", &data)
        .map_err(|_| "SHA-256 digest failed".to_owned())?;
    let digest = JsFuture::from(promise)
        .await
        .map_err(|_| "SHA-256 digest failed".to_owned())?;
    let bytes = js_sys::Uint8Array::new(&digest).to_vec();
    Ok(base64url(&bytes))
}

fn attributes() -> String {
    let nav = js::navigator();
    let screen = js::get(&js::global(), "screen");
    let tz = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    let parts = [
        js::get_str(&nav, "userAgent").unwrap_or_default(),
        js::get_str(&nav, "language").unwrap_or_default(),
        js::get_str(&nav, "platform").unwrap_or_default(),
        num(&screen, "width"),
        num(&screen, "height"),
        num(&screen, "colorDepth"),
        js::get_str(&tz, "timeZone").unwrap_or_default(),
    ];
    parts.join("|")
}

fn num(obj: &wasm_bindgen::JsValue, key: &str) -> String {
    js::get(obj, key)
        .as_f64()
        .map(|n| decimal(n as u64))
        .unwrap_or_default()
}

fn salt() -> String {
    let storage = js::window().and_then(|w| w.local_storage().ok().flatten());
    if let Some(s) = &storage {
        if let Ok(Some(v)) = s.get_item(SALT_KEY) {
            if v.len() >= 16 {
                return v;
            }
        }
    }
    let fresh = random_salt();
    if let Some(s) = storage {
        let _ = s.set_item(SALT_KEY, &fresh);
    }
    fresh
}

/// A random salt: `crypto.randomUUID()` (122 random bits).
pub(crate) fn random_salt() -> String {
    let crypto = js::get(&js::global(), "crypto");
    let f = js::get(&crypto, "randomUUID");
    f.dyn_ref::<js_sys::Function>()
        .and_then(|f| f.call0(&crypto).ok())
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| decimal((js_sys::Math::random() * 9e15) as u64))
}

/// A seed for the backoff jitter.
pub(crate) fn random_u64() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let len = chunk.len() + 1;
        for i in 0..len {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn decimal(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().map(|d| *d as char).collect()
}
