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
    memory: Option<String>,
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
            memory: None,
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn read_raw(&self, key: &str) -> Option<String> {
        match &self.backend {
            Some(s) => s.get_item(key).ok().flatten(),
            None => self.memory.clone(),
        }
    }

    pub(crate) fn write_raw(&mut self, key: &str, value: &str) -> bool {
        match &self.backend {
            Some(s) => s.set_item(key, value).is_ok(),
            None => {
                self.memory = Some(value.to_owned());
                true
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        match &self.backend {
            Some(s) => {
                let _ = s.remove_item(key);
            }
            None => self.memory = None,
        }
    }
}

pub(crate) fn to_json(s: &Stored) -> Option<String> {
    js_sys::JSON::stringify(&s.value).ok()?.as_string()
}

pub(crate) fn from_json(raw: &str) -> Option<Stored> {
    alive(from_value(&js_sys::JSON::parse(raw).ok()?)?)
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
