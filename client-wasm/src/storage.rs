//! Where the session lives: `localStorage`, `sessionStorage` or memory.

use crate::js;
use wasm_bindgen::JsValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Local,
    Session,
    Memory,
}

/// The persisted session, shared between tabs through storage and BroadcastChannel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub(crate) v: u32,
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    /// Local `Date.now()` when the token response arrived.
    pub(crate) received_at: f64,
    /// Absent in cookie mode: the token is in an HttpOnly cookie.
    pub(crate) refresh_token: Option<String>,
    /// Local time at which the session ends (refresh no longer possible).
    pub(crate) refresh_expires_at: f64,
    pub(crate) user_id: String,
    pub(crate) email: String,
    pub(crate) session_id: String,
    pub(crate) skew_ms: Option<f64>,
    /// Set for a session signed in without remember-me and kept in localStorage: the browser
    /// session it belongs to (see `platform::browser_session`). Once the browser has been closed, the
    /// stored session is ignored and removed.
    pub(crate) browser: Option<String>,
    /// The object this was read from: what is stored and broadcast, as is.
    pub(crate) value: JsValue,
}

pub(crate) const VERSION: u32 = 1;

#[derive(Debug)]
pub(crate) struct Store {
    kind: Kind,
    backend: Option<web_sys::Storage>,
    memory: JsValue,
}

impl Store {
    /// Opens the storage; `None` backend for memory, an error when Web Storage is unusable.
    pub(crate) fn open(kind: Kind) -> Result<Self, String> {
        let backend = match kind {
            Kind::Memory => None,
            Kind::Local | Kind::Session => Some(
                crate::platform::web_storage(if kind == Kind::Local {
                    "local"
                } else {
                    "session"
                })
                .map_err(|m| m.as_string().unwrap_or_default())?,
            ),
        };
        Ok(Self {
            kind,
            backend,
            memory: JsValue::UNDEFINED,
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// What is stored under `key`, parsed; undefined when nothing (or not JSON).
    pub(crate) fn read(&self, key: &str) -> JsValue {
        match &self.backend {
            Some(s) => crate::platform::load(s, key),
            None => self.memory.clone(),
        }
    }

    /// Stores `value` (as JSON); false when the storage refused it.
    pub(crate) fn write(&mut self, key: &str, value: &JsValue) -> bool {
        match &self.backend {
            Some(s) => crate::platform::save(s, key, value),
            None => {
                self.memory = value.clone();
                true
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        match &self.backend {
            Some(s) => {
                let _ = s.remove_item(key);
            }
            None => self.memory = JsValue::UNDEFINED,
        }
    }
}

/// A session read back from storage or another tab, if it is one.
pub(crate) fn read(v: &JsValue) -> Option<Stored> {
    alive(from_value(v)?)
}

/// A session read back (from storage, another tab): ignored when it belonged to a browser
/// session that has ended.
pub(crate) fn alive(s: Stored) -> Option<Stored> {
    (s.browser.is_none() || s.browser == crate::platform::browser_session(false)).then_some(s)
}

/// Reads a session in its stored form; anything malformed or from another version is ignored.
pub(crate) fn from_value(v: &JsValue) -> Option<Stored> {
    if js::get_f64(v, "v")? as u32 != VERSION {
        return None;
    }
    let browser = js::get_str(v, "browser");
    Some(Stored {
        v: VERSION,
        access_token: js::get_str(v, "accessToken")?,
        expires_in: js::get_f64(v, "expiresIn")? as u64,
        received_at: js::get_f64(v, "receivedAt")?,
        refresh_token: js::get_str(v, "refreshToken"),
        refresh_expires_at: js::get_f64(v, "refreshExpiresAt")?,
        user_id: js::get_str(v, "userId")?,
        email: js::get_str(v, "email")?,
        session_id: js::get_str(v, "sessionId")?,
        skew_ms: js::get_f64(v, "skewMs"),
        browser,
        value: v.clone(),
    })
}
