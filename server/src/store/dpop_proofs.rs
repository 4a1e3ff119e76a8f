//! `dpop_proofs`: the DPoP proofs seen within their window, shared by every instance on
//! PostgreSQL.

use super::{batch, placeholder_rows, Backend, Store};
use crate::error::{ApiError, ApiResult};
use baton_core::dpop::{KeyBudget, Proof};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// How far a proof's `iat` may be from the server's clock, either way; proofs are remembered
/// this long (and a second more) to refuse replays.
pub const WINDOW_S: i64 = baton_core::dpop::DEFAULT_WINDOW_S;

/// More remembered proofs than this in one instance's memory and new proofs are refused
/// (503) until old ones age out, rather than letting a flood of proofs exhaust memory.
const MAX_REMEMBERED: usize = 1_000_000;

/// The window of a key's proof budget (`BATON_DPOP_PROOFS_PER_KEY`, counted in one instance).
pub const PROOF_BUDGET_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl Store {
    /// Records `proofs` (id, expires_at) as used until their `expires_at`, in one statement;
    /// returns the ids that were new (the others were recorded before, by this instance or
    /// another). The ids must be distinct.
    pub async fn dpop_proofs_first_use(
        &self,
        proofs: &[(String, i64)],
    ) -> Result<HashSet<String>, sqlx::Error> {
        if proofs.is_empty() {
            return Ok(HashSet::new());
        }
        let values = placeholder_rows(proofs.len(), 2, |p| format!("({}, {})", p[0], p[1]));
        let sql = format!(
            "INSERT INTO dpop_proofs (id, expires_at) VALUES {} ON CONFLICT (id) DO NOTHING \
             RETURNING id",
            values.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for (id, expires_at) in proofs {
            q = q.bind(id).bind(expires_at);
        }
        Ok(q.fetch_all(&self.writer).await?.into_iter().collect())
    }

    /// DPoP proofs remembered now.
    pub async fn dpop_proofs_remembered(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM dpop_proofs")
            .fetch_one(&self.pool)
            .await
    }

    /// Drops DPoP proofs whose window has passed.
    pub async fn purge_dpop_proofs(&self, now: i64) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM dpop_proofs WHERE expires_at < $1")
            .bind(now)
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected())
    }
}

/// The proofs seen within the window. On PostgreSQL a table every instance shares; on SQLite
/// (one instance) this instance's memory, so a proof costs no write on the one SQLite writer.
/// Beside it, each key's budget of proofs (`KeyBudget`), so that one key cannot fill it.
#[derive(Debug, Default)]
pub struct ReplayCache {
    memory: Mutex<HashMap<[u8; 32], i64>>,
    budget: Mutex<KeyBudget>,
    /// On PostgreSQL: the queue of the table's group commit.
    inserts: Option<ProofInserts>,
}

/// One proof waiting for the group commit: its id and when it may be forgotten; its verdict
/// is whether this was its first use.
type Pending = batch::Queued<(String, i64), bool>;

/// Group commit for the replay table on PostgreSQL: the proofs of concurrent requests go to
/// the database as one `INSERT` per batch (as rotations do, `rotator`) instead of a
/// round trip and a commit each. The batch runs in its own task, so a request given up
/// halfway still has its proof recorded.
#[derive(Debug, Clone)]
struct ProofInserts {
    tx: mpsc::Sender<Pending>,
}

const PROOF_BATCH: usize = 128;

impl ProofInserts {
    fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4_096);
        tokio::spawn(async move {
            while let Some(batch) = batch::next(&mut rx, PROOF_BATCH).await {
                // The same proof twice in one batch: the second is a replay of the first.
                let (unique, again) = batch::split_repeats(batch, |((id, _), _)| id);
                for (_, done) in again {
                    let _ = done.send(Ok(false));
                }
                let rows: Vec<(String, i64)> = unique.iter().map(|(p, _)| p.clone()).collect();
                match store.dpop_proofs_first_use(&rows).await {
                    Ok(new) => {
                        for ((id, _), done) in unique {
                            let _ = done.send(Ok(new.contains(&id)));
                        }
                    }
                    Err(e) => batch::fail(unique, &e, "recording DPoP proofs"),
                }
            }
        });
        Self { tx }
    }

    async fn first_use(&self, id: String, expires_at: i64) -> ApiResult<bool> {
        batch::submit(&self.tx, (id, expires_at)).await
    }
}

impl ReplayCache {
    /// The cache for `store`: a shared table with a group commit on PostgreSQL, memory on
    /// SQLite.
    pub fn new(store: &Store) -> Self {
        Self {
            inserts: (store.backend == Backend::Postgres)
                .then(|| ProofInserts::spawn(store.clone())),
            ..Self::default()
        }
    }

    /// Counts `proof` against its key's budget: `Err(seconds)` to wait when the key is over.
    /// `limit`: proofs per key and window, `None` for no limit.
    pub fn take_budget(&self, proof: &Proof, limit: Option<i64>, now_ms: i64) -> Result<(), u64> {
        let window = PROOF_BUDGET_WINDOW;
        let Some(limit) = limit else {
            return Ok(());
        };
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        budget.take(&proof.jkt, limit, window.as_millis() as i64, now_ms)
    }

    /// Whether this instance has seen `proof` within its window already: a replay, refused
    /// before anything else is counted (on PostgreSQL a replay first seen by another instance
    /// is found by `first_use`, and remembered here from then on).
    pub fn seen_here(&self, proof: &Proof, now_ms: i64) -> bool {
        let id = proof_id(proof);
        let seen = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&id).is_some_and(|exp| *exp >= now_ms)
    }

    /// On PostgreSQL, the row that records `proof` in the shared table (its id and when it may
    /// be forgotten), for a caller that writes it in a transaction of its own (the rotation's);
    /// `None` on SQLite, where `first_use` costs no write.
    pub fn shared_row(&self, proof: &Proof) -> Option<(String, i64)> {
        self.is_shared()
            .then(|| (hex(&proof_id(proof)), expires_at(proof)))
    }

    /// Whether proofs are recorded in the table every instance shares (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.inserts.is_some()
    }

    /// Notes here that the shared table holds `proof` now, so a replay to this instance is
    /// refused without a round trip. Only a memo: when full, it starts anew.
    pub fn remember(&self, proof: &Proof, now_ms: i64) {
        let mut seen = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, exp| *exp >= now_ms);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(proof_id(proof), expires_at(proof));
    }

    /// Records `proof`; false when it was seen before (here or, on PostgreSQL, by any
    /// instance).
    pub async fn first_use(&self, proof: &Proof, now_ms: i64) -> ApiResult<bool> {
        if let (Some(inserts), Some((id, expires_at))) = (&self.inserts, self.shared_row(proof)) {
            let first = inserts.first_use(id, expires_at).await?;
            self.remember(proof, now_ms);
            return Ok(first);
        }
        let (id, expires_at) = (proof_id(proof), expires_at(proof));
        let mut seen = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, exp| *exp >= now_ms);
            if seen.len() >= MAX_REMEMBERED {
                tracing::warn!("DPoP replay cache full: refusing new proofs for now");
                return Err(ApiError::unavailable());
            }
        }
        Ok(seen.insert(id, expires_at).is_none())
    }

    /// How many proofs are remembered now (this instance's memory, or the shared table).
    pub async fn remembered(&self, store: &Store) -> ApiResult<i64> {
        if store.backend == Backend::Postgres {
            return Ok(store.dpop_proofs_remembered().await?);
        }
        Ok(self.memory.lock().unwrap_or_else(|p| p.into_inner()).len() as i64)
    }

    /// Forgets proofs whose window has passed (the background task calls this every minute).
    pub async fn purge(&self, store: &Store, now_ms: i64) {
        let window = PROOF_BUDGET_WINDOW.as_millis() as i64;
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .purge(window, now_ms);
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, exp| *exp >= now_ms);
        if store.backend == Backend::Postgres {
            if let Err(e) = store.purge_dpop_proofs(now_ms).await {
                tracing::debug!(error = %e, "DPoP proof purge failed");
            }
        }
    }
}

/// Until when a proof is remembered: until its iat leaves the window (plus a second for
/// rounding), in milliseconds.
fn expires_at(proof: &Proof) -> i64 {
    (proof.iat + WINDOW_S + 1) * 1000
}

/// Lower-case hex, in one allocation (a proof's id is written once per DPoP request).
fn hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// A proof's identity in the replay memory: its key and `jti`, hashed.
fn proof_id(proof: &Proof) -> [u8; 32] {
    Sha256::new()
        .chain_update(proof.jkt.as_bytes())
        .chain_update([0])
        .chain_update(proof.jti.as_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn proof_ids_are_lower_case_hex() {
        let mut id = [0u8; 32];
        id[0] = 0xab;
        id[31] = 0x0f;
        let h = super::hex(&id);
        assert_eq!(h.len(), 64);
        assert!(h.starts_with("ab00") && h.ends_with("000f"), "{h}");
        let spelled: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(h, spelled);
    }
}
