//! DPoP (RFC 9449) on the server: proofs on the calls that create sessions bind the session to
//! the proof key; refreshes and protected resources of a bound session need a fresh proof by
//! that key. The proof check itself is `baton_core::dpop` (pure, clock passed in); this module
//! adds what needs the request and state: the URL a proof must name, the replay cache, and the
//! policy of `BATON_DPOP` (docs/api.md, "DPoP").

use crate::config::DpopMode;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::http::{HeaderMap, Method};
use baton_core::dpop::{self, Expect, KeyBudget, Proof};
use baton_core::ErrorCode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// How far a proof's `iat` may be from the server's clock, either way; proofs are remembered
/// this long (and a second more) to refuse replays.
pub const WINDOW_S: i64 = dpop::DEFAULT_WINDOW_S;

/// More remembered proofs than this in one instance's memory and new proofs are refused
/// (503) until old ones age out, rather than letting a flood of proofs exhaust memory.
const MAX_REMEMBERED: usize = 1_000_000;

/// The `WWW-Authenticate` challenge of DPoP errors.
pub const CHALLENGE_ALGS: &str = "ES256 EdDSA";

/// `401 dpop_proof_invalid`, with a DPoP challenge.
pub fn invalid(message: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    let mut e = ApiError::unauthorized(ErrorCode::DpopProofInvalid, message);
    e.dpop = true;
    e
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
type Pending = crate::batch::Queued<(String, i64), bool>;

/// Group commit for the replay table on PostgreSQL: the proofs of concurrent requests go to
/// the database as one `INSERT` per batch (as rotations do, `sessions::Rotator`) instead of a
/// round trip and a commit each. The batch runs in its own task, so a request given up
/// halfway still has its proof recorded.
#[derive(Debug, Clone)]
struct ProofInserts {
    tx: mpsc::Sender<Pending>,
}

const PROOF_BATCH: usize = 128;

impl ProofInserts {
    fn spawn(store: crate::db::Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4_096);
        tokio::spawn(async move {
            while let Some(batch) = crate::batch::next(&mut rx, PROOF_BATCH).await {
                // The same proof twice in one batch: the second is a replay of the first.
                let (unique, again) = crate::batch::split_repeats(batch, |((id, _), _)| id);
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
                    Err(e) => crate::batch::fail(unique, &e, "recording DPoP proofs"),
                }
            }
        });
        Self { tx }
    }

    async fn first_use(&self, id: String, expires_at: i64) -> ApiResult<bool> {
        crate::batch::submit(&self.tx, (id, expires_at)).await
    }
}

impl ReplayCache {
    /// The cache for `store`: a shared table with a group commit on PostgreSQL, memory on
    /// SQLite.
    pub fn new(store: &crate::db::Store) -> Self {
        Self {
            inserts: (store.backend == crate::db::Backend::Postgres)
                .then(|| ProofInserts::spawn(store.clone())),
            ..Self::default()
        }
    }

    /// Counts `proof` against its key's budget: `Err(seconds)` to wait when the key is over.
    fn take_budget(&self, state: &AppState, proof: &Proof, now_ms: i64) -> Result<(), u64> {
        let window = crate::limits::DPOP_PROOF_BUDGET_WINDOW;
        let Some(limit) = state
            .limits
            .scaled(i64::from(state.config.dpop_proofs_per_key))
        else {
            return Ok(());
        };
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        budget.take(&proof.jkt, limit, window.as_millis() as i64, now_ms)
    }

    /// Records `proof`; false when it was seen before.
    async fn first_use(&self, proof: &Proof, now_ms: i64) -> ApiResult<bool> {
        let id: [u8; 32] = Sha256::new()
            .chain_update(proof.jkt.as_bytes())
            .chain_update([0])
            .chain_update(proof.jti.as_bytes())
            .finalize()
            .into();
        // Remembered until its iat leaves the window (plus a second for rounding).
        let expires_at = (proof.iat + WINDOW_S + 1) * 1000;
        if let Some(inserts) = &self.inserts {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            return inserts.first_use(hex, expires_at).await;
        }
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
    pub async fn remembered(&self, state: &AppState) -> ApiResult<i64> {
        if state.store.backend == crate::db::Backend::Postgres {
            return Ok(state.store.dpop_proofs_remembered().await?);
        }
        Ok(self.memory.lock().unwrap_or_else(|p| p.into_inner()).len() as i64)
    }

    /// Forgets proofs whose window has passed (the background task calls this every minute).
    pub async fn purge(&self, state: &AppState, now_ms: i64) {
        let window = crate::limits::DPOP_PROOF_BUDGET_WINDOW.as_millis() as i64;
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .purge(window, now_ms);
        if state.store.backend == crate::db::Backend::Postgres {
            if let Err(e) = state.store.purge_dpop_proofs(now_ms).await {
                tracing::debug!(error = %e, "DPoP proof purge failed");
            }
        } else {
            let mut seen = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|_, exp| *exp >= now_ms);
        }
    }
}

/// The request's `DPoP` header: none, or exactly one.
fn proof_header(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let mut values = headers.get_all("dpop").iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("send exactly one DPoP header"));
    }
    v.to_str()
        .map(Some)
        .map_err(|_| invalid("the DPoP header is not a JWS"))
}

/// The URL a proof's `htu` must name: `BATON_PUBLIC_URL` and the path when it is set, else
/// the scheme (`X-Forwarded-Proto`, else http) and `Host` of the request with the path.
pub fn request_url(state: &AppState, headers: &HeaderMap, path: &str) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    dpop::request_url(
        state.config.public_url.as_deref(),
        header("x-forwarded-proto"),
        header("host"),
        path,
    )
}

/// Checks the request's proof, if it sent one: its form, signature, method, URL, time and
/// (with `access_token`) the token's hash. Not recorded yet: see `record`.
fn checked(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    access_token: Option<&str>,
) -> ApiResult<Option<Proof>> {
    let Some(proof) = proof_header(headers)? else {
        return Ok(None);
    };
    let url = request_url(state, headers, path);
    let expect = Expect {
        method: method.as_str(),
        url: &url,
        access_token,
    };
    let now = crate::now_ms();
    dpop::check(proof, &expect, now / 1000, WINDOW_S)
        .map(Some)
        .map_err(|e| {
            state.metrics.dpop("invalid");
            tracing::debug!(reason = %e, "DPoP proof refused");
            invalid(e.0)
        })
}

/// Records a checked proof against replay, once it is known to be the proof of a key the call
/// may use (the session's, or one the caller proved a right to sign in with): a proof by any
/// other key never takes room in the replay cache. 429 when the key is over its budget.
pub async fn record(state: &AppState, proof: &Proof) -> ApiResult<()> {
    let now = crate::now_ms();
    if let Err(wait) = state.dpop_replay.take_budget(state, proof, now) {
        state.metrics.dpop("over_budget");
        state.metrics.rate_limited("dpop_key");
        return Err(ApiError::too_many(ErrorCode::RateLimited, wait));
    }
    if !state.dpop_replay.first_use(proof, now).await? {
        state.metrics.dpop("replayed");
        return Err(invalid(
            "the DPoP proof was used before: make a new one per request",
        ));
    }
    state.metrics.dpop("valid");
    Ok(())
}

/// For a call that creates a session: the proof whose key the session is to be bound to, by
/// the setting and the request (`None`: a Bearer session). It is checked here but recorded
/// only by `handlers::start_session`, after the caller proved who they are: an anonymous flood
/// of proofs costs a signature check each and leaves nothing behind.
pub fn bind_new_session(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> ApiResult<Option<Proof>> {
    match state.config.dpop {
        DpopMode::Off => Ok(None),
        DpopMode::Allowed => checked(state, headers, method, path, None),
        DpopMode::Required => match checked(state, headers, method, path, None)? {
            Some(p) => Ok(Some(p)),
            None => Err(invalid(
                "this server requires DPoP: send a DPoP proof to create a session",
            )),
        },
    }
}

/// What a refresh-token call (refresh, logout) of a session must prove: for a bound session a
/// proof by its key; for a Bearer session nothing, unless DPoP is required.
pub async fn check_session(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    bound_to: Option<&str>,
) -> ApiResult<()> {
    match bound_to {
        Some(jkt) => match checked(state, headers, method, path, None)? {
            Some(p) if p.jkt == jkt => record(state, &p).await,
            Some(_) => Err(invalid(
                "the DPoP proof is signed by another key than the session's",
            )),
            None => Err(invalid(
                "this session is bound to a DPoP key: send a DPoP proof signed by it",
            )),
        },
        None if state.config.dpop == DpopMode::Required => Err(invalid(
            "this server requires DPoP and the session is not bound to a key: sign in again",
        )),
        None => Ok(()),
    }
}

/// For a protected resource: checks that an access token is used as its binding says, with
/// `scheme_dpop` telling whether it came as `Authorization: DPoP`.
pub async fn check_access(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    token: &str,
    scheme_dpop: bool,
    bound_to: Option<&str>,
) -> ApiResult<()> {
    match (bound_to, scheme_dpop) {
        (Some(jkt), true) => match checked(state, headers, method, path, Some(token))? {
            Some(p) if p.jkt == jkt => record(state, &p).await,
            Some(_) => Err(invalid(
                "the DPoP proof is signed by another key than the token is bound to",
            )),
            None => Err(invalid("a DPoP-bound access token needs a DPoP proof")),
        },
        (Some(_), false) => Err(invalid(
            "this access token is bound to a DPoP key: send it as `Authorization: DPoP` with a proof",
        )),
        (None, true) => Err(invalid(
            "this access token is not DPoP-bound: send it as `Authorization: Bearer`",
        )),
        (None, false) => Ok(()),
    }
}
