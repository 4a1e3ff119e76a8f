//! Sessions: issuing token responses, rotation with reuse detection, revocation, audit events.

use crate::config::DeviceBinding;
use crate::db::{NewEvent, Rotation, SessionRow, UserRow};
use crate::error::{ApiError, ApiResult};
use crate::tokens::{AccessClaims, Keys};
use crate::{now_ms, AppState};
use baton_core::{ErrorCode, TokenResponse, User};

/// Request facts recorded with sessions and events.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: String,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
}

pub fn user_json(u: &UserRow) -> User {
    User {
        id: u.id.clone(),
        email: u.email.clone(),
        created_at: u.created_at / 1000,
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
        iss: state.config.issuer.clone(),
        aud: state.config.audience.clone(),
        sub: user.id.clone(),
        sid: session.id.clone(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now_s,
        exp,
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
        token_type: "Bearer".into(),
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
pub async fn refresh(state: &AppState, token: &str, caller: &Caller) -> ApiResult<Refreshed> {
    let (mut session, presented) = resolve(state, token).await?;
    let now = now_ms();
    let limits = &state.limits;
    let key = crate::limits::refresh_key(&session.id);
    if let Err(refused) = limits
        .hit(&state.store, &key, crate::limits::REFRESH_PER_SESSION, now)
        .await?
    {
        state.metrics.refresh("rate_limited");
        state.metrics.rate_limited("refresh_session");
        audit(
            state,
            Some(&session.user_id),
            "rate_limited",
            "warning",
            Some(&session.id),
            caller,
            "refresh refused: more than 60 per session per minute",
        )
        .await;
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            refused.retry_after,
        ));
    }
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
            let rotated = state
                .store
                .rotate(&Rotation {
                    session_id: &session.id,
                    generation: presented,
                    now,
                    device_id: caller.device_id.as_deref(),
                    idle_expires_at,
                    ip: Some(&caller.ip),
                    user_agent: caller.user_agent.as_deref(),
                })
                .await?;
            if rotated {
                session.generation = presented + 1;
                session.idle_expires_at = idle_expires_at;
                session.last_used_at = now;
                return finish(state, session, caller, now, "success").await;
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
        // A spent token. Within the grace window, from the device that rotated it, and while
        // its successor is unused (generation is exactly one ahead), it is a concurrent refresh:
        // hand out the same successor again.
        let in_grace = presented + 1 == session.generation
            && now - session.rotated_at <= state.config.reuse_grace.as_millis() as i64
            && session.rotated_by_device == caller.device_id;
        if in_grace {
            return finish(state, session, caller, now, "grace").await;
        }
        return Err(reuse_detected(state, &session, caller, now).await);
    }
    Err(invalid())
}

async fn finish(
    state: &AppState,
    session: SessionRow,
    caller: &Caller,
    now: i64,
    status: &'static str,
) -> ApiResult<Refreshed> {
    let user = state
        .store
        .user_by_id(&session.user_id)
        .await?
        .ok_or_else(invalid)?;
    let body = token_response(state, &session, &user, session.generation, now)?;
    state.metrics.refresh(status);
    audit(
        state,
        Some(&session.user_id),
        "token_refreshed",
        "info",
        Some(&session.id),
        caller,
        if status == "grace" {
            "concurrent refresh within the grace window: same successor returned"
        } else {
            "refresh token rotated"
        },
    )
    .await;
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
    if state.store.revoke(&session.id, "expired", now).await? {
        state.revoked.insert(&session.id, now);
        state.metrics.revocation("expired");
        let which = if session.idle_expires_at <= session.absolute_expires_at {
            "idle lifetime reached"
        } else {
            "absolute lifetime reached"
        };
        audit(
            state,
            Some(&session.user_id),
            "session_expired",
            "info",
            Some(&session.id),
            caller,
            which,
        )
        .await;
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

/// Revokes one session now: the database row, this instance's view, the metric and the event.
pub async fn revoke(
    state: &AppState,
    session: &SessionRow,
    reason: &'static str,
    caller: &Caller,
    now: i64,
) -> ApiResult<bool> {
    let done = state.store.revoke(&session.id, reason, now).await?;
    state.revoked.insert(&session.id, now);
    if done {
        state.metrics.revocation(reason);
        if reason != "logout" {
            audit(
                state,
                Some(&session.user_id),
                "session_revoked",
                "warning",
                Some(&session.id),
                caller,
                &format!("session revoked: {reason}"),
            )
            .await;
        }
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
    let event = NewEvent {
        user_id: user_id.map(str::to_owned),
        at: now_ms(),
        kind,
        severity,
        session_id: session_id.map(str::to_owned),
        device_id: caller.device_id.clone(),
        ip: Some(caller.ip.clone()),
        detail: detail.to_owned(),
    };
    if let Err(e) = state.store.insert_event(&event).await {
        tracing::warn!(error = %e, kind, "could not record audit event");
    }
}
