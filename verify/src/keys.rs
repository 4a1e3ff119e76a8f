//! The JWKS cache. When to fetch is a pure rule over the clock ([`should_fetch`]), tested
//! without waiting; fetching is single-flight, and a failed fetch keeps the keys already known.

use crate::Error;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// An unknown `kid` fetches the keys again, but by default not more often than this (a flood
/// of tokens with made-up `kid`s must not become a flood of requests to Baton).
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

/// Keys older than this are fetched again on the next verification (Baton publishes a new key
/// before signing with it, and keeps old keys while their tokens live).
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// Whether to fetch the keys now: never fetched; older than [`MAX_AGE`]; or the token's key is
/// unknown and the last fetch is at least `min_refetch` old.
pub fn should_fetch(
    now: Instant,
    fetched_at: Option<Instant>,
    kid_known: bool,
    min_refetch: Duration,
) -> bool {
    match fetched_at {
        None => true,
        Some(at) => {
            let age = now.saturating_duration_since(at);
            age >= MAX_AGE || (!kid_known && age >= min_refetch)
        }
    }
}

#[derive(Debug)]
pub(crate) struct KeyCache {
    jwks_uri: String,
    min_refetch: Duration,
    state: RwLock<State>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("fetched_at", &self.fetched_at)
            .finish()
    }
}

impl KeyCache {
    pub(crate) fn new(jwks_uri: String, min_refetch: Duration) -> Self {
        Self {
            jwks_uri,
            min_refetch,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn lookup(&self, kid: &str) -> (Option<DecodingKey>, Option<Instant>) {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        (s.keys.get(kid).cloned(), s.fetched_at)
    }

    /// The key `kid`, fetching the set first when [`should_fetch`] says so.
    pub(crate) async fn key(
        &self,
        http: &reqwest::Client,
        kid: &str,
        now: Instant,
    ) -> Result<DecodingKey, Error> {
        let (key, fetched_at) = self.lookup(kid);
        if should_fetch(now, fetched_at, key.is_some(), self.min_refetch) {
            let _one = self.fetching.lock().await;
            // Another caller may have fetched while this one waited.
            let (again, at) = self.lookup(kid);
            if should_fetch(Instant::now(), at, again.is_some(), self.min_refetch) {
                if let Err(e) = self.refresh(http).await {
                    // Keep serving the keys already known; a key not known is an error below.
                    tracing::warn!(error = %e, "could not fetch Baton's keys");
                    if again.is_none() {
                        return Err(e);
                    }
                }
            }
        }
        self.lookup(kid)
            .0
            .ok_or_else(|| Error::Invalid(format!("unknown key {kid}")))
    }

    /// Fetches the key set and replaces the cache with it.
    pub(crate) async fn refresh(&self, http: &reqwest::Client) -> Result<(), Error> {
        let set: JwkSet = crate::fetch_json(http, &self.jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) {
                keys.insert(kid.clone(), key);
            }
        }
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.keys = keys;
        s.fetched_at = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_when_never_fetched_stale_or_for_an_unknown_key_at_a_bounded_rate() {
        let t0 = Instant::now();
        let fetch = |now, at, known| should_fetch(now, at, known, MIN_REFETCH);
        assert!(fetch(t0, None, false));
        assert!(fetch(t0, None, true));
        // Fresh keys, known kid: no fetch until MAX_AGE.
        assert!(!fetch(t0 + Duration::from_secs(299), Some(t0), true));
        assert!(fetch(t0 + MAX_AGE, Some(t0), true));
        // Unknown kid: not within MIN_REFETCH of the last fetch, then yes.
        assert!(!fetch(t0 + Duration::from_secs(9), Some(t0), false));
        assert!(fetch(t0 + MIN_REFETCH, Some(t0), false));
        // A clock that went backwards is no reason to fetch.
        assert!(!fetch(t0, Some(t0 + Duration::from_secs(5)), true));
    }
}
