//! Sessions: issuing token responses, rotation with reuse detection, revocation, audit events.

use crate::config::DeviceBinding;
use crate::db::{NewEvent, OwnedRotation, SessionRow, UserRow};
use crate::error::{ApiError, ApiResult};
use crate::spent::{self, Spent, SpentFacts};
use crate::tokens::{AccessClaims, Keys};
use crate::{now_ms, AppState};
use baton_core::{ErrorCode, TokenResponse, User};

/// Request facts recorded with sessions and events.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: String,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    /// SHA-256 (hex) of the request's `Idempotency-Key`, when it sent one.
    pub request_key: Option<String>,
}

pub fn user_json(u: &UserRow) -> User {
    User {
        id: u.id.clone(),
        email: u.email.clone(),
        created_at: u.created_at / 1000,
        email_verified: u.email_verified,
    }
}

/// A token response for `session` at `generation`, with an access token whose `exp` never
/// passes the session's end.
pub fn token_response(
    state: &AppState,
    session: &SessionRow,
    user: &UserRow,
    generation: i64,
    now: i64,
) -> ApiResult<TokenResponse> {
    let now_s = now / 1000;
    let ends_s = session.ends_at() / 1000;
    let exp = (now_s + state.config.access_ttl.as_secs() as i64).min(ends_s);
    let claims = AccessClaims {
        iss: state.config.issuer(),
        aud: state.config.audience.clone(),
        sub: user.id.clone(),
        sid: session.id.clone(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now_s,
        exp,
        email_verified: user.email_verified,
        cnf: session
            .dpop_jkt
            .clone()
            .map(|jkt| baton_core::Confirmation { jkt }),
    };
    let access_token = state.keys.sign_access(&claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        ApiError::internal()
    })?;
    let sid = parse_sid(&session.id)?;
    let refresh = state.keys.refresh_token(&sid, generation, &session.nonce);
    state.metrics.token_issued("access");
    state.metrics.token_issued("refresh");
    Ok(TokenResponse {
        access_token,
        token_type: if session.dpop_jkt.is_some() {
            "DPoP".into()
        } else {
            "Bearer".into()
        },
        expires_in: (exp - now_s).max(0) as u64,
        expires_at: exp,
        refresh_token: (!session.cookie_transport).then_some(refresh),
        refresh_expires_in: (ends_s - now_s).max(0) as u64,
        session_id: session.id.clone(),
        user: user_json(user),
    })
}

/// The refresh token for a token response in cookie mode (the body omits it).
pub fn cookie_token(keys: &Keys, session: &SessionRow, generation: i64) -> ApiResult<String> {
    Ok(keys.refresh_token(&parse_sid(&session.id)?, generation, &session.nonce))
}

fn parse_sid(id: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::internal())
}

/// What a successful refresh produced.
#[derive(Debug)]
pub struct Refreshed {
    pub body: TokenResponse,
    pub session: SessionRow,
    pub generation: i64,
}

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
    headers: &axum::http::HeaderMap,
) -> ApiResult<Refreshed> {
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
    if let Err(e) = proof_of_key(state, cached, caller, headers, "/auth/refresh").await {
        state.metrics.refresh("dpop_refused");
        return Err(e);
    }
    let now = now_ms();
    let limits = &state.limits;
    let key = crate::limits::refresh_key(&sid_s);
    if let Err(refused) = limits
        .hit(&state.store, &key, crate::limits::REFRESH_PER_SESSION, now)
        .await?
    {
        state.metrics.refresh("rate_limited");
        let uid = Some(cached.user_id.as_str());
        let which = "refresh_session";
        crate::handlers::refuse(state, uid, Some(&sid_s), caller, which, refused).await;
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            refused.retry_after,
        ));
    }
    let device_ok =
        state.config.device_binding == DeviceBinding::Off || cached.device_id == caller.device_id;
    if device_ok {
        let idle_expires_at = now + state.config.refresh_idle_ttl.as_millis() as i64;
        let rotated = rotate(state, cached, presented, caller, now, idle_expires_at).await?;
        if rotated {
            let mut session = cached.clone();
            session.generation = presented + 1;
            session.idle_expires_at = idle_expires_at;
            session.last_used_at = now;
            session.rotated_at = now;
            return finish(state, session, user, now, "success");
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
    headers: &axum::http::HeaderMap,
    path: &str,
) -> ApiResult<()> {
    let method = axum::http::Method::POST;
    let bound = session.dpop_jkt.as_deref();
    let Err(e) = crate::dpop::check_session(state, headers, &method, path, bound).await else {
        return Ok(());
    };
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
    Err(e)
}

/// The refresh of a token that did not rotate on the first try, judged on the current row.
async fn careful(
    state: &AppState,
    mut session: SessionRow,
    user: &UserRow,
    presented: i64,
    caller: &Caller,
    now: i64,
) -> ApiResult<Refreshed> {
    if presented > session.generation {
        return Err(invalid());
    }
    if let Some(reason) = &session.revoked_at.and(session.revoked_reason.clone()) {
        state.metrics.refresh("revoked");
        return Err(if reason == "expired" {
            expired_error()
        } else {
            ApiError::unauthorized(ErrorCode::SessionRevoked, "the session was revoked")
        });
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
            let rotated = rotate(state, &session, presented, caller, now, idle_expires_at).await?;
            if rotated {
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
                return Err(ApiError::unauthorized(
                    ErrorCode::SessionRevoked,
                    "the session was revoked",
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

/// The rotation compare-and-swap, with its `token_refreshed` event stored in the same
/// transaction (through the group commit of `Rotator`).
async fn rotate(
    state: &AppState,
    session: &SessionRow,
    presented: i64,
    caller: &Caller,
    now: i64,
    idle_expires_at: i64,
) -> ApiResult<bool> {
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
) -> ApiResult<Refreshed> {
    let body = token_response(state, &session, user, session.generation, now)?;
    state.metrics.refresh(status);
    let generation = session.generation;
    Ok(Refreshed {
        body,
        session,
        generation,
    })
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

/// Revokes one session now: the database row with its event (`logout`, or
/// `session_revoked`), this instance's view, the metric.
pub async fn revoke(
    state: &AppState,
    session: &SessionRow,
    reason: &'static str,
    caller: &Caller,
    now: i64,
) -> ApiResult<bool> {
    let uid = Some(session.user_id.as_str());
    let sid = Some(session.id.as_str());
    let e = if reason == "logout" {
        event(uid, "logout", "info", sid, caller, "signed out")
    } else {
        let detail = format!("session revoked: {reason}");
        event(uid, "session_revoked", "warning", sid, caller, &detail)
    };
    let done = state.store.revoke(&session.id, reason, now, &e).await?;
    state.revoked.insert(&session.id, now);
    if done {
        state.metrics.revocation(reason);
    }
    Ok(done)
}

/// Records an audit event; a failure to record is logged, not shown to the client.
pub async fn audit(
    state: &AppState,
    user_id: Option<&str>,
    kind: &'static str,
    severity: &'static str,
    session_id: Option<&str>,
    caller: &Caller,
    detail: &str,
) {
    let event = event(user_id, kind, severity, session_id, caller, detail);
    if let Err(e) = state.store.insert_event(&event).await {
        tracing::warn!(error = %e, kind, "could not record audit event");
    }
}

/// An audit event to record. Security events (severity `warning` or `critical`: failed logins,
/// lockouts, refresh-token reuse, device mismatches, revocations, rate limiting) also go to the
/// log, target `baton_server::security`; details never hold secrets.
pub fn event(
    user_id: Option<&str>,
    kind: &'static str,
    severity: &'static str,
    session_id: Option<&str>,
    caller: &Caller,
    detail: &str,
) -> NewEvent {
    if severity != "info" {
        tracing::warn!(
            target: "baton_server::security",
            event = kind,
            severity,
            user_id,
            session_id,
            device_id = caller.device_id.as_deref(),
            ip = %caller.ip,
            detail,
            "security event"
        );
    }
    NewEvent {
        user_id: user_id.map(str::to_owned),
        at: now_ms(),
        kind,
        severity,
        session_id: session_id.map(str::to_owned),
        device_id: caller.device_id.clone(),
        ip: Some(caller.ip.clone()),
        detail: detail.to_owned(),
    }
}

/// Immutable parts of sessions (and their users) seen by this instance, so a refresh can check
/// the token's MAC without reading the row. Nothing cached here changes, except a user's
/// `email_verified`, which only ever becomes true: the instance that verifies forgets the
/// user at once (`forget_user`), the others within about a second (`VerifiedWatch`).
#[derive(Debug, Default)]
pub struct SessionCache {
    map: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<(SessionRow, UserRow)>>>,
}

const SESSION_CACHE_MAX: usize = 100_000;

impl SessionCache {
    pub fn get(&self, id: &str) -> Option<std::sync::Arc<(SessionRow, UserRow)>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Forgets the sessions of a user whose row changed (a verified address), so this
    /// instance's next refresh reads it again. Other instances learn of it through
    /// `VerifiedWatch`; `/auth/me` reads the row every time.
    pub fn forget_user(&self, user_id: &str) {
        self.forget_users(&[user_id]);
    }

    /// Forgets the sessions of all these users, in one pass over the cache.
    pub fn forget_users(&self, user_ids: &[impl AsRef<str>]) {
        if user_ids.is_empty() {
            return;
        }
        let users: std::collections::HashSet<&str> = user_ids.iter().map(AsRef::as_ref).collect();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| !users.contains(e.1.id.as_str()));
    }

    pub fn insert(&self, s: SessionRow, u: UserRow) -> std::sync::Arc<(SessionRow, UserRow)> {
        let entry = std::sync::Arc::new((s, u));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SESSION_CACHE_MAX {
            map.clear();
        }
        map.insert(entry.0.id.clone(), entry.clone());
        entry
    }
}

/// Addresses verified by any instance, found by asking the database every second (on
/// PostgreSQL, where instances share it), so that this instance's `SessionCache` forgets those
/// users and its next access tokens say `email_verified: true`. Pure: the clock is passed in.
#[derive(Debug, Default)]
pub struct VerifiedWatch {
    /// Verifications already handled, until they are older than the margin.
    handled: std::collections::HashMap<String, i64>,
}

impl VerifiedWatch {
    /// How far back each question looks: other instances' clocks may lag, and their
    /// transactions commit a moment after the time they wrote.
    pub const MARGIN_MS: i64 = 30_000;

    /// Rows read from the database at a time.
    pub const PAGE: u32 = 1_000;

    /// From when to ask at `now`.
    pub fn since(now: i64) -> i64 {
        now - Self::MARGIN_MS
    }

    /// The users of `rows` (id, verified at) not handled before.
    pub fn fresh(&mut self, rows: Vec<(String, i64)>, now: i64) -> Vec<String> {
        self.handled.retain(|_, at| *at >= Self::since(now));
        rows.into_iter()
            .filter(|(id, at)| self.handled.insert(id.clone(), *at).is_none())
            .map(|(id, _)| id)
            .collect()
    }
}

/// Group commit for rotations: concurrent refreshes queue here and go to the database as one
/// statement per batch, so the database's per-statement cost is paid once per batch.
#[derive(Debug, Clone)]
pub struct Rotator {
    tx: tokio::sync::mpsc::Sender<crate::batch::Queued<OwnedRotation, bool>>,
}

const ROTATION_BATCH: usize = 64;

impl Rotator {
    pub fn spawn(store: crate::db::Store) -> Self {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<crate::batch::Queued<OwnedRotation, bool>>(4_096);
        tokio::spawn(async move {
            while let Some(batch) = crate::batch::next(&mut rx, ROTATION_BATCH).await {
                // One rotation per session per batch: a second one for the same session
                // lost the race and is judged by the careful path (grace or reuse).
                let (unique, duplicate) =
                    crate::batch::split_repeats(batch, |(r, _)| &r.session_id);
                for (_, done) in duplicate {
                    let _ = done.send(Ok(false));
                }
                let mut rows: Vec<OwnedRotation> = unique.iter().map(|(r, _)| r.clone()).collect();
                // One lock order for every instance's batches: no deadlock between them.
                rows.sort_by(|a, b| a.session_id.cmp(&b.session_id));
                let mut outcome = store.rotate_batch(&rows).await;
                for _ in 0..3 {
                    // A serialization failure or deadlock rolled the whole batch back: retrying
                    // it cannot apply anything twice.
                    match &outcome {
                        Err(e) if crate::error::is_retryable(e) => {
                            outcome = store.rotate_batch(&rows).await;
                        }
                        _ => break,
                    }
                }
                match outcome {
                    Ok(rotated) => {
                        for (r, done) in unique {
                            let _ = done.send(Ok(rotated.contains(&r.session_id)));
                        }
                    }
                    Err(e) => crate::batch::fail(unique, &e, "rotation batch"),
                }
            }
        });
        Self { tx }
    }

    /// Whether the rotation happened (the compare-and-swap matched).
    pub async fn rotate(&self, r: OwnedRotation) -> ApiResult<bool> {
        crate::batch::submit(&self.tx, r).await
    }
}

#[cfg(test)]
mod tests {
    use super::VerifiedWatch;

    #[test]
    fn each_verification_is_handled_once_within_the_margin() {
        let mut w = VerifiedWatch::default();
        let now = 1_000_000;
        assert_eq!(VerifiedWatch::since(now), now - VerifiedWatch::MARGIN_MS);
        let rows = vec![("a".to_owned(), now - 5), ("b".to_owned(), now - 1)];
        assert_eq!(w.fresh(rows.clone(), now), ["a", "b"]);
        // Asked again a second later, the same rows come back: nothing new.
        assert!(w.fresh(rows, now + 1000).is_empty());
        let more = vec![("b".to_owned(), now - 1), ("c".to_owned(), now + 900)];
        assert_eq!(w.fresh(more, now + 1000), ["c"]);
        // Handled rows are forgotten once older than the margin.
        w.fresh(Vec::new(), now + VerifiedWatch::MARGIN_MS + 10);
        assert_eq!(w.handled.len(), 1);
    }
}
