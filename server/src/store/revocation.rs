//! The revocation view: which sessions' access tokens must be refused.
//!
//! Every instance keeps the set in memory. Revocations made here are inserted at once; those made
//! by other instances sharing the database arrive by polling every 250 ms, so the view is at most
//! about a second stale anywhere. Each poll reads every revocation younger than the longest
//! access-token lifetime any instance issued with recently (`access_ttls`; older revocations
//! cannot matter: every token issued before them has expired), so neither a restart with a
//! shorter `BATON_ACCESS_TTL` nor another instance's clock makes a revoked token valid again.

use super::Store;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct RevocationView {
    revoked: RwLock<HashMap<String, i64>>,
    /// This instance's own access-token lifetime.
    access_ttl_ms: i64,
}

/// Kept beyond the token lifetime: the verifier's leeway on `exp`, and clock differences.
const MARGIN_MS: i64 = 10_000;

impl RevocationView {
    pub fn new(access_ttl: Duration) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            access_ttl_ms: access_ttl.as_millis() as i64,
        }
    }

    pub fn is_revoked(&self, sid: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(sid)
    }

    pub fn insert(&self, sid: &str, at: i64) {
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid.to_owned(), at);
    }

    /// Replaces the view with the revocations of the longest live access-token lifetime,
    /// keeping those made here meanwhile.
    pub async fn sync(&self, store: &Store) -> Result<(), sqlx::Error> {
        let now = crate::clock::now_ms();
        let longest = store
            .longest_live_access_ttl(now)
            .await?
            .unwrap_or(0)
            .max(self.access_ttl_ms);
        let horizon = now - longest - MARGIN_MS;
        let rows = store.revoked_since(horizon).await?;
        let mut set = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        set.retain(|_, at| *at >= horizon);
        set.extend(rows);
        Ok(())
    }
}
