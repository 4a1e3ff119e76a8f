//! Introspection answers kept for a short while ([`Options::introspection_cache`]), so a busy
//! service does not ask Baton once per request. The price is said plainly: a session signed out
//! meanwhile is refused up to that much later. Keyed by the SHA-256 of the token (the cache
//! holds no tokens); the clock is passed in.
//!
//! [`Options::introspection_cache`]: crate::Options::introspection_cache

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Answers kept at most; when full, the expired ones go, then all.
const MAX_ANSWERS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct Answers {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Answers {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::default(),
        }
    }

    /// The answer for `token` asked at most `ttl` before `now`.
    pub(crate) fn get(&self, token: &str, now: Instant) -> Option<bool> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (active, asked) = map.get(&key(token))?;
        (now.saturating_duration_since(*asked) < self.ttl).then_some(*active)
    }

    /// Keeps Baton's answer for `token`, asked at `asked`.
    pub(crate) fn put(&self, token: &str, active: bool, asked: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ANSWERS {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| asked.saturating_duration_since(*at) < ttl);
            if map.len() >= MAX_ANSWERS {
                map.clear();
            }
        }
        map.insert(key(token), (active, asked));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_for_the_ttl_only() {
        let t0 = Instant::now();
        let a = Answers::new(Duration::from_secs(2));
        assert_eq!(a.get("tok", t0), None);
        a.put("tok", true, t0);
        assert_eq!(a.get("tok", t0 + Duration::from_millis(1999)), Some(true));
        assert_eq!(a.get("tok", t0 + Duration::from_secs(2)), None);
        assert_eq!(a.get("other", t0), None);
        a.put("tok", false, t0 + Duration::from_secs(3));
        assert_eq!(a.get("tok", t0 + Duration::from_secs(4)), Some(false));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let t0 = Instant::now();
        let a = Answers::new(Duration::ZERO);
        a.put("tok", true, t0);
        assert_eq!(a.get("tok", t0), None);
    }
}
