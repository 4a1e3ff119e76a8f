//! DPoP (RFC 9449) on the server: proofs on the calls that create sessions bind the session to
//! the proof key; refreshes and protected resources of a bound session need a fresh proof by
//! that key. The proof check itself is `baton_core::dpop` (pure, clock passed in); this module
//! adds what needs the request and state: the URL a proof must name, recording against replay
//! (`store::dpop_proofs`), and the policy of `BATON_DPOP` (docs/api.md, "DPoP").

use crate::clock::now_ms;
use crate::config::DpopMode;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::dpop_proofs::WINDOW_S;
use baton_core::dpop::{self, Expect, Proof};
use baton_core::ErrorCode;
use http::{HeaderMap, Method};

/// The `WWW-Authenticate` challenge of DPoP errors.
pub const CHALLENGE_ALGS: &str = "ES256 EdDSA";

/// `401 dpop_proof_invalid`, with a DPoP challenge.
pub fn invalid(message: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    let mut e = ApiError::unauthorized(ErrorCode::DpopProofInvalid, message);
    e.dpop = true;
    e
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
    let now = now_ms();
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
    admit(state, proof)?;
    let first = state.dpop_replay.first_use(proof, now_ms()).await?;
    let written = if state.dpop_replay.is_shared() {
        "own_write"
    } else {
        "memory"
    };
    state.metrics.dpop_record(written);
    confirm(state, first)
}

/// Everything of `record` but the write: a replay this instance knows of, and the key's
/// budget.
fn admit(state: &AppState, proof: &Proof) -> ApiResult<()> {
    let now = now_ms();
    // A replay is refused before the key's budget is touched: replaying a captured proof
    // costs the key's owner nothing (and the replayer only 401s).
    if state.dpop_replay.seen_here(proof, now) {
        return Err(replayed(state));
    }
    let limit = state
        .limits
        .scaled(i64::from(state.config.dpop_proofs_per_key));
    if let Err(wait) = state.dpop_replay.take_budget(proof, limit, now) {
        state.metrics.dpop("over_budget");
        state.metrics.rate_limited("dpop_key");
        return Err(ApiError::too_many(ErrorCode::RateLimited, wait));
    }
    Ok(())
}

/// The answer for a proof once recorded: `first` tells whether this was its first use.
pub fn confirm(state: &AppState, first: bool) -> ApiResult<()> {
    if !first {
        return Err(replayed(state));
    }
    state.metrics.dpop("valid");
    Ok(())
}

/// A proof checked and admitted whose record against replay is the caller's to write: on
/// PostgreSQL a refresh writes it in its rotation's transaction (no commit of its own), then
/// answers with `confirm`; on SQLite it is recorded at once and this is `None`.
#[derive(Debug)]
pub struct Unrecorded {
    pub proof: Proof,
    /// The row of the shared replay table (`ReplayCache::shared_row`).
    pub row: (String, i64),
}

/// Records a deferred proof the rotation did not write (a refresh that did not rotate on
/// its first try, or was refused by a limit), with a write of its own.
pub async fn record_deferred(state: &AppState, u: &Unrecorded) -> ApiResult<()> {
    let first = state.dpop_replay.first_use(&u.proof, now_ms()).await?;
    state.metrics.dpop_record("own_write");
    confirm(state, first)
}

/// A deferred proof that the rotation's transaction wrote as new: remembered here, counted.
pub fn recorded_with_rotation(state: &AppState, u: &Unrecorded) -> ApiResult<()> {
    state.dpop_replay.remember(&u.proof, now_ms());
    state.metrics.dpop_record("with_rotation");
    confirm(state, true)
}

/// 401 for a proof used before (counted in metrics).
pub fn replayed(state: &AppState) -> ApiError {
    state.metrics.dpop("replayed");
    invalid("the DPoP proof was used before: make a new one per request")
}

/// For a call that creates a session: the proof whose key the session is to be bound to, by
/// the setting and the request (`None`: a Bearer session). It is checked here but recorded
/// only by `session::start`, after the caller proved who they are: an anonymous flood
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
///
/// With `defer` (a refresh, which writes anyway), a proof the shared replay table must record
/// on PostgreSQL is returned unrecorded, for the rotation's transaction to write.
pub async fn check_session(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    bound_to: Option<&str>,
    defer: bool,
) -> ApiResult<Option<Unrecorded>> {
    match bound_to {
        Some(jkt) => match checked(state, headers, method, path, None)? {
            Some(p) if p.jkt == jkt => match state.dpop_replay.shared_row(&p) {
                Some(row) if defer => {
                    admit(state, &p)?;
                    Ok(Some(Unrecorded { proof: p, row }))
                }
                _ => record(state, &p).await.map(|()| None),
            },
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
        None => Ok(None),
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
