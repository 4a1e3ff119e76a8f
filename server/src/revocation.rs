//! The revocation view: which sessions' access tokens must be refused.
//!
//! Every instance keeps the set in memory. Revocations made here are inserted at once; those made
//! by other instances sharing the database arrive by polling every 250 ms, so the view is at most
//! about a second stale anywhere. Entries older than the access-token lifetime are dropped: every
//! token issued before them has expired by then.

use crate::db::Store;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Overlap between polls, absorbing clock differences between instances.
const OVERLAP_MS: i64 = 5_000;

#[derive(Debug)]
pub struct RevocationView {
    revoked: RwLock<HashMap<String, i64>>,
    keep_ms: i64,
}

impl RevocationView {
    pub fn new(access_ttl: Duration) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            keep_ms: access_ttl.as_millis() as i64 + 10_000,
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

    /// Loads revocations since `since`; returns the next `since`.
    pub async fn sync(&self, store: &Store, since: i64) -> Result<i64, sqlx::Error> {
        let now = crate::now_ms();
        let rows = store.revoked_since(since).await?;
        let mut set = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        for (id, at) in rows {
            set.insert(id, at);
        }
        let horizon = now - self.keep_ms;
        set.retain(|_, at| *at >= horizon);
        Ok(now - OVERLAP_MS)
    }

    pub fn initial_since(&self) -> i64 {
        crate::now_ms() - self.keep_ms
    }
}
