//! `POST /auth/refresh`: rotation with reuse detection, the grace window, expiry, device
//! binding, and the DPoP proof a bound session needs.

use super::end::revoke;
use super::issue::{token_response, Issued};
use crate::audit::{audit, event, Caller};
use crate::clock::now_ms;
use crate::config::DeviceBinding;
use crate::crypto::keys::Keys;
use crate::error::{ApiError, ApiResult};
use crate::rules::spent::{self, Spent, SpentFacts};
use crate::state::AppState;
use crate::store::rotator::Rotated;
use crate::store::{OwnedRotation, RotationLimit, SessionRow, UserRow};
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;

fn invalid() -> ApiError {
    ApiError::unauthorized(
        ErrorCode::RefreshTokenInvalid,
        "the refresh token is invalid",
    )
}

/// Finds the session a refresh token belongs to, checking the MAC.
pub async fn resolve(state: &AppState, token: &str) -> ApiResult<(SessionRow, i64)> {
    let (sid, generation, mac) = Keys::parse_refresh(token).ok_or_else(invalid)?;
    let session = state
        .store
        .session(&sid.to_string())
        .await?
        .ok_or_else(invalid)?;
    if !state
        .keys
        .refresh_mac_ok(&sid, generation, &session.nonce, &mac)
    {
        return Err(invalid());
    }
    Ok((session, generation))
}

/// `POST /auth/refresh` after the token was read: rotation, grace, reuse, expiry, binding.
///
/// The common case costs one database statement: the session's immutable part (nonce, user,
/// device, absolute end) comes from this instance's cache, and the rotation's compare-and-swap
/// also checks revocation and both expiries. Anything else (a spent token, a revoked or expired
/// session, another device) falls through to the careful path, which reads the row.
pub async fn refresh(
    state: &AppState,
    token: &str,
    caller: &Caller,
    headers: &http::HeaderMap,
) -> ApiResult<Issued> {
    let (sid, presented, mac) = Keys::parse_refresh(token).ok_or_else(invalid)?;
    let sid_s = sid.to_string();
    let snapshot = match state.session_cache.get(&sid_s) {
        Some(s) => s,
        None => {
            let session = state.store.session(&sid_s).await?.ok_or_else(invalid)?;
            let user = state
                .store
                .user_by_id(&session.user_id)
                .await?
                .ok_or_else(invalid)?;
            state.session_cache.insert(session, user)
        }
    };
    let (cached, user) = (&snapshot.0, &snapshot.1);
    if !state
        .keys
        .refresh_mac_ok(&sid, presented, &cached.nonce, &mac)
    {
        return Err(invalid());
    }
    // Before anything that counts or changes: without the session's key a caller can neither
    // rotate nor trip reuse detection (which would end the session for its owner) nor use up
    // the session's refresh limit.
    // On PostgreSQL the proof's record against replay is written by the rotation's own
    // transaction (`unrecorded`), not in a commit of its own.
    let path = "/auth/refresh";
    let unrecorded = match key_proof(state, cached, caller, headers, path, true).await {
        Ok(u) => u,
        Err(e) => {
            state.metrics.refresh("dpop_refused");
            return Err(e);
        }
    };
    let now = now_ms();
    let key = crate::limits::refresh_key(&sid_s);
    let rule = crate::limits::REFRESH_PER_SESSION;
    let subject = Subject {
        user_id: Some(&cached.user_id),
        session_id: Some(&sid_s),
    };
    // The store counts the session's refresh limit in the rotation's own transaction: a
    // rotation over it does not happen and is counted below with every attempt that did not
    // rotate.
    let limit = state.limits.scaled(rule.0).map(|limit| RotationLimit {
        key: key.clone(),
        limit,
        since: now - rule.1.as_millis() as i64,
    });
    // A refusal this instance remembers is answered before any write.
    if limit.is_some() {
        if let Err(e) = throttle::refused_early(state, &key, "refresh_session") {
            state.metrics.refresh("rate_limited");
            return Err(e);
        }
    }
    let device_ok =
        state.config.device_binding == DeviceBinding::Off || cached.device_id == caller.device_id;
    let mut proof_recorded = false;
    if device_ok {
        let idle_expires_at = now + state.config.refresh_idle_ttl.as_millis() as i64;
        let row = unrecorded.as_ref().map(|u| u.row.clone());
        let with = Extra {
            proof: row,
            limit: limit.clone(),
        };
        // The answer if the rotation happens, made before it: its signature (after the
        // database, a refresh's largest cost) runs while the batch before this one commits,
        // instead of after this rotation's batch, where every rotation of the batch would
        // queue for a CPU to sign its answer. It is counted and sent only if the rotation
        // happens.
        let mut next = cached.clone();
        next.generation = presented + 1;
        next.idle_expires_at = idle_expires_at;
        next.last_used_at = now;
        next.rotated_at = now;
        let answer = super::issue::unsent_response(state, &next, user, next.generation, now)?;
        let rotated = rotate(state, cached, presented, caller, now, idle_expires_at, with).await?;
        if let (
            Some(u),
            Rotated::Yes
            | Rotated::No {
                proof_recorded: true,
            },
        ) = (&unrecorded, rotated)
        {
            crate::dpop::recorded_with_rotation(state, u)?;
            proof_recorded = true;
        }
        match rotated {
            Rotated::Yes => {
                super::issue::count_issued(state);
                state.metrics.refresh("success");
                return Ok(Issued {
                    body: answer,
                    session: next,
                });
            }
            Rotated::ProofReplayed => {
                state.metrics.refresh("dpop_refused");
                let e = crate::dpop::replayed(state);
                return Err(refused(state, cached, caller, path, e).await);
            }
            Rotated::No { .. } => {}
        }
    }
    if limit.is_some() {
        count_attempt(state, &key, caller, subject, unrecorded.as_ref()).await?;
    }
    // Not rotated: the proof is recorded now if the rotation did not, and the token judged
    // on the current row.
    if let (Some(u), false) = (&unrecorded, proof_recorded) {
        if let Err(e) = crate::dpop::record_deferred(state, u).await {
            if e.code == ErrorCode::DpopProofInvalid {
                state.metrics.refresh("dpop_refused");
                return Err(refused(state, cached, caller, path, e).await);
            }
            return Err(e);
        }
    }
    let session = state.store.session(&sid_s).await?.ok_or_else(invalid)?;
    careful(state, session, user, presented, caller, now).await
}

/// The DPoP proof a refresh-token call (refresh, logout) of `session` needs (see `dpop`). A
/// refusal for a bound session is recorded as a security event (a few per session and ten
/// minutes; the rest in metrics only).
pub async fn proof_of_key(
    state: &AppState,
    session: &SessionRow,
    caller: &Caller,
    headers: &http::HeaderMap,
    path: &str,
) -> ApiResult<()> {
    key_proof(state, session, caller, headers, path, false)
        .await
        .map(|_| ())
}

/// `proof_of_key`, and with `defer` a proof left for the caller to record (`dpop::Unrecorded`).
async fn key_proof(
    state: &AppState,
    session: &SessionRow,
    caller: &Caller,
    headers: &http::HeaderMap,
    path: &str,
    defer: bool,
) -> ApiResult<Option<crate::dpop::Unrecorded>> {
    let method = http::Method::POST;
    let bound = session.dpop_jkt.as_deref();
    match crate::dpop::check_session(state, headers, &method, path, bound, defer).await {
        Ok(unrecorded) => Ok(unrecorded),
        Err(e) => Err(refused(state, session, caller, path, e).await),
    }
}

/// `e`, a refused proof for `session`, recorded as a security event where the session is bound
/// (a few per session and ten minutes; the rest in metrics only).
async fn refused(
    state: &AppState,
    session: &SessionRow,
    caller: &Caller,
    path: &str,
    e: ApiError,
) -> ApiError {
    let bound = session.dpop_jkt.as_deref();
    if e.code == ErrorCode::DpopProofInvalid && bound.is_some() {
        let now = now_ms();
        let key = crate::limits::dpop_refusal_key(&session.id);
        let limit = crate::limits::DPOP_REFUSALS_RECORDED;
        let hit = state.limits.hit(&state.store, &key, limit, now).await;
        let record = matches!(hit, Ok(Ok(_)));
        if record {
            let detail = format!(
                "{path} without a valid proof of the session's DPoP key ({}): refused, the \
                 session stays signed in",
                e.message
            );
            let ev = event(
                Some(&session.user_id),
                "dpop_proof_refused",
                "warning",
                Some(&session.id),
                caller,
                &detail,
            );
            if let Err(err) = state.store.insert_event(&ev).await {
                tracing::warn!(error = %err, "recording a DPoP refusal failed");
            }
        }
    }
    e
}

/// The refresh of a token that did not rotate on the first try, judged on the current row.
async fn careful(
    state: &AppState,
    mut session: SessionRow,
    user: &UserRow,
    presented: i64,
    caller: &Caller,
    now: i64,
) -> ApiResult<Issued> {
    if presented > session.generation {
        return Err(invalid());
    }
    if let Some(reason) = &session.revoked_at.and(session.revoked_reason.clone()) {
        state.metrics.refresh("revoked");
        return Err(revoked_error(reason));
    }
    if now >= session.ends_at() {
        end_expired(state, &session, caller, now).await?;
        return Err(expired_error());
    }
    // Up to two passes: a lost compare-and-swap re-reads the row and is judged as a spent token.
    for _ in 0..2 {
        if presented == session.generation {
            check_device(state, &session, caller, now).await?;
            let idle_expires_at = now + state.config.refresh_idle_ttl.as_millis() as i64;
            let rotated = rotate(
                state,
                &session,
                presented,
                caller,
                now,
                idle_expires_at,
                Extra::default(),
            )
            .await?;
            if rotated == Rotated::Yes {
                session.generation = presented + 1;
                session.idle_expires_at = idle_expires_at;
                session.last_used_at = now;
                session.rotated_at = now;
                return finish(state, session, user, now, "success");
            }
            session = state
                .store
                .session(&session.id)
                .await?
                .ok_or_else(invalid)?;
            if session.revoked_at.is_some() {
                state.metrics.refresh("revoked");
                return Err(revoked_error(
                    session.revoked_reason.as_deref().unwrap_or(""),
                ));
            }
            continue;
        }
        // A spent token: a concurrent refresh, a retried request, or theft (see `spent`).
        let facts = SpentFacts {
            presented,
            generation: session.generation,
            rotated_at: session.rotated_at,
            same_device: session.rotated_by_device == caller.device_id,
            same_request: caller.request_key.is_some()
                && session.rotated_by_key == caller.request_key,
        };
        let config = &state.config;
        let verdict = spent::judge(
            facts,
            now,
            config.reuse_grace.as_millis() as i64,
            config.refresh_recovery.as_millis() as i64,
        );
        let (status, detail) = match verdict {
            Spent::Grace => (
                "grace",
                "concurrent refresh within the grace window: same successor returned",
            ),
            Spent::Retry => (
                "retry",
                "retried refresh (same Idempotency-Key): same successor returned",
            ),
            Spent::Theft => return Err(reuse_detected(state, &session, caller, now).await),
        };
        let uid = Some(session.user_id.as_str());
        let e = event(
            uid,
            "token_refreshed",
            "info",
            Some(&session.id),
            caller,
            detail,
        );
        state.store.insert_event(&e).await?;
        return finish(state, session, user, now, status);
    }
    Err(invalid())
}

/// What a rotation's transaction also writes, besides its event.
#[derive(Debug, Default)]
struct Extra {
    /// The DPoP proof's row of the replay table (PostgreSQL).
    proof: Option<(String, i64)>,
    /// The session's refresh limit, checked and counted (SQLite).
    limit: Option<RotationLimit>,
}

/// Counts a refresh against its session's limit; a refusal is 429, and a DPoP proof presented
/// with it is recorded as used all the same.
async fn count_attempt(
    state: &AppState,
    key: &str,
    caller: &Caller,
    subject: Subject<'_>,
    unrecorded: Option<&crate::dpop::Unrecorded>,
) -> ApiResult<()> {
    let rule = crate::limits::REFRESH_PER_SESSION;
    if let Err(e) = throttle::limit(state, key, rule, "refresh_session", caller, subject).await {
        if e.code == ErrorCode::RateLimited {
            state.metrics.refresh("rate_limited");
        }
        if let Some(u) = unrecorded {
            let _ = crate::dpop::record_deferred(state, u).await;
        }
        return Err(e);
    }
    Ok(())
}

/// The rotation compare-and-swap, with its `token_refreshed` event (and what `with` holds)
/// stored in the same transaction (through the group commit of `Rotator`).
async fn rotate(
    state: &AppState,
    session: &SessionRow,
    presented: i64,
    caller: &Caller,
    now: i64,
    idle_expires_at: i64,
    with: Extra,
) -> ApiResult<Rotated> {
    let mut e = event(
        Some(&session.user_id),
        "token_refreshed",
        "info",
        Some(&session.id),
        caller,
        "refresh token rotated",
    );
    e.at = now;
    state
        .rotator
        .rotate(OwnedRotation {
            session_id: session.id.clone(),
            generation: presented,
            now,
            device_id: caller.device_id.clone(),
            idle_expires_at,
            ip: Some(caller.ip.clone()),
            user_agent: caller.user_agent.clone(),
            key: caller.request_key.clone(),
            event: e,
            proof: with.proof,
            limit: with.limit,
        })
        .await
}

/// The token response of a refresh whose outcome is already stored.
fn finish(
    state: &AppState,
    session: SessionRow,
    user: &UserRow,
    now: i64,
    status: &'static str,
) -> ApiResult<Issued> {
    let body = token_response(state, &session, user, session.generation, now)?;
    state.metrics.refresh(status);
    Ok(Issued { body, session })
}

/// The refusal of a refresh of a session revoked for `reason`: an expired session is 401
/// `session_expired`, one ended by disabling its account 403 `user_disabled`, any other 401
/// `session_revoked`.
fn revoked_error(reason: &str) -> ApiError {
    match reason {
        "expired" => expired_error(),
        crate::store::accounts::DISABLED => super::issue::disabled(),
        _ => ApiError::unauthorized(ErrorCode::SessionRevoked, "the session was revoked"),
    }
}

fn expired_error() -> ApiError {
    ApiError::unauthorized(ErrorCode::SessionExpired, "the session has expired")
}

async fn end_expired(
    state: &AppState,
    session: &SessionRow,
    caller: &Caller,
    now: i64,
) -> ApiResult<()> {
    state.metrics.refresh("expired");
    let which = if session.idle_expires_at <= session.absolute_expires_at {
        "idle lifetime reached"
    } else {
        "absolute lifetime reached"
    };
    let uid = Some(session.user_id.as_str());
    let e = event(
        uid,
        "session_expired",
        "info",
        Some(&session.id),
        caller,
        which,
    );
    if state.store.revoke(&session.id, "expired", now, &e).await? {
        state.revoked.insert(&session.id, now);
        state.metrics.revocation("expired");
    }
    Ok(())
}

async fn check_device(
    state: &AppState,
    session: &SessionRow,
    caller: &Caller,
    now: i64,
) -> ApiResult<()> {
    if state.config.device_binding == DeviceBinding::Off || session.device_id == caller.device_id {
        return Ok(());
    }
    let strict = state.config.device_binding == DeviceBinding::Strict;
    let detail = if strict {
        "refresh from another device: session revoked"
    } else {
        "refresh from another device (device binding: warn)"
    };
    audit(
        state,
        Some(&session.user_id),
        "device_mismatch",
        if strict { "critical" } else { "warning" },
        Some(&session.id),
        caller,
        detail,
    )
    .await;
    if !strict {
        return Ok(());
    }
    state.metrics.refresh("device_mismatch");
    revoke(state, session, "device_mismatch", caller, now).await?;
    Err(ApiError::unauthorized(
        ErrorCode::DeviceMismatch,
        "this refresh token belongs to another device",
    ))
}

async fn reuse_detected(
    state: &AppState,
    session: &SessionRow,
    caller: &Caller,
    now: i64,
) -> ApiError {
    state.metrics.refresh("reused");
    state.metrics.reuse_detected();
    tracing::warn!(session_id = %session.id, ip = %caller.ip, "refresh token reuse detected");
    audit(
        state,
        Some(&session.user_id),
        "refresh_reused",
        "critical",
        Some(&session.id),
        caller,
        "a spent refresh token was presented again: session revoked",
    )
    .await;
    if let Err(e) = revoke(state, session, "reuse", caller, now).await {
        return e;
    }
    ApiError::unauthorized(
        ErrorCode::RefreshTokenReused,
        "this refresh token was already used; the session has been revoked",
    )
}
