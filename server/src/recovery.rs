//! Account actions proven by mail (docs/api.md, "Password reset and email verification"):
//! a password reset (`POST /auth/password/reset-request`, then `POST /auth/password/reset`
//! with the mailed token, which signs the user out everywhere) and the verification of the
//! address (`POST /auth/email/verify-request`, then `POST /auth/email/verify`).
//!
//! Tokens are single-use, live `BATON_OTP_TTL`, and are stored as HMACs under the server's
//! secret (`account_tokens`). The mailed links open `BATON_MAGIC_LINK_URL` with `reset_token=`
//! or `verify_token=` added. A reset request answers 202 for any address, like the sign-in
//! codes (`otp`), and its mail goes out after the answer.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser, ClientIp, DeviceId};
use crate::handlers::caller;
use crate::otp::{accepted, limit, unavailable};
use crate::sessions::{self, Caller};
use crate::{limits, now_ms, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use baton_core::ErrorCode;
use serde::Deserialize;

const RESET: &str = "password_reset";
const VERIFY: &str = "email_verification";

fn invalid_token() -> ApiError {
    ApiError::unauthorized(
        ErrorCode::InvalidCode,
        "this link is unknown, used or expired: ask for a new one",
    )
}

/// Stores a new token for `user_id` and mails its link; the mail goes out in the background.
async fn mail_token(
    state: &AppState,
    user_id: &str,
    email: &str,
    purpose: &'static str,
    c: &Caller,
) -> ApiResult<()> {
    let mailer = state.mailer.clone().ok_or_else(unavailable)?;
    let token = crate::tokens::random_nonce();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(state.keys.secret_mac(purpose, &token))
    .bind(user_id)
    .bind(purpose)
    .bind(now)
    .bind(crate::otp::policy::expires_at(now, state.config.otp_ttl))
    .execute(state.store.writer())
    .await?;
    let (param, subject, what) = if purpose == RESET {
        (
            "reset_token",
            "Reset your password",
            "choose a new password",
        )
    } else {
        (
            "verify_token",
            "Confirm your email address",
            "confirm this address",
        )
    };
    let link = mailer.link(param, &token);
    let minutes = state.config.otp_ttl.as_secs().div_ceil(60);
    let text = format!(
        "Open this link to {what}:\n{link}\n\nIt works once, for {minutes} minutes. If you did \
         not ask for it, ignore this mail.\n"
    );
    let audit = crate::mail::Audit {
        user_id: Some(user_id.to_owned()),
        caller: c.clone(),
        kinds: ("mail_sent", "mail_send_failed"),
        what: purpose,
    };
    mailer.send_later(state, email.to_owned(), subject, text, audit);
    Ok(())
}

/// Spends a token: the user it was for, once, while it lives.
async fn spend(state: &AppState, purpose: &str, token: &str) -> ApiResult<Option<String>> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let now = now_ms();
    Ok(sqlx::query_scalar(
        "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
         AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
    )
    .bind(now)
    .bind(state.keys.secret_mac(purpose, token))
    .bind(purpose)
    .fetch_optional(state.store.writer())
    .await?)
}

/// Records that the user receives mail at their address.
pub async fn mark_verified(state: &AppState, user_id: &str, now: i64) -> ApiResult<()> {
    sqlx::query(
        "UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(state.store.writer())
    .await?;
    state.session_cache.forget_user(user_id);
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    email: String,
}

#[utoipa::path(post, path = "/auth/password/reset-request", tag = "email", request_body = ResetRequest,
    responses((status = 202, description = "a reset link is on its way, if the address has an account", body = crate::schema::Status),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn reset_request(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<Response> {
    state.mailer.as_ref().ok_or_else(unavailable)?;
    let email = crate::email::normalize(&body.email)
        .ok_or_else(|| ApiError::validation("email is not a valid address"))?;
    let c = caller(ip, device, &headers);
    limit(
        &state,
        &format!("otp_ip:{}", c.ip),
        limits::OTP_PER_IP,
        "otp_ip",
        &c,
    )
    .await?;
    limit(
        &state,
        &format!("reset_email:{email}"),
        limits::OTP_PER_EMAIL,
        "reset_email",
        &c,
    )
    .await?;
    // Only an account gets mail; the answer is the same either way, and the mail goes out
    // after it.
    if let Some(user) = state.store.user_by_email(&email).await? {
        mail_token(&state, &user.id, &email, RESET, &c).await?;
        let e = sessions::event(
            Some(&user.id),
            "password_reset_requested",
            "info",
            None,
            &c,
            "password reset link made",
        );
        state.store.insert_event(&e).await?;
    }
    Ok(accepted())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    /// The `reset_token` of the mailed link.
    token: String,
    /// The new password (8 to 1024 characters).
    password: String,
}

#[utoipa::path(post, path = "/auth/password/reset", tag = "email", request_body = Reset,
    responses((status = 204, description = "password changed; every session of the user signed out"),
        (status = 401, description = "invalid_code: unknown, used or expired token", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed: the password", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn reset(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Reset>,
) -> ApiResult<Response> {
    state.mailer.as_ref().ok_or_else(unavailable)?;
    crate::handlers::check_password(&body.password)?;
    let c = caller(ip, device, &headers);
    limit(
        &state,
        &format!("otp_verify_ip:{}", c.ip),
        limits::OTP_VERIFY_PER_IP,
        "otp_verify_ip",
        &c,
    )
    .await?;
    let Some(user_id) = spend(&state, RESET, &body.token).await? else {
        return Err(invalid_token());
    };
    let hash = match state.password.hash(body.password).await {
        Ok(h) => h,
        Err(e) => {
            // Not hashed now (the hashing queue is full): the link stays good for a retry.
            sqlx::query("UPDATE account_tokens SET used_at = NULL WHERE token_hash = $1")
                .bind(state.keys.secret_mac(RESET, &body.token))
                .execute(state.store.writer())
                .await?;
            return Err(e);
        }
    };
    let now = now_ms();
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(&hash)
        .bind(&user_id)
        .execute(state.store.writer())
        .await?;
    // Other reset links of the user die with this one; the lockout starts afresh.
    sqlx::query("UPDATE account_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL")
        .bind(now)
        .bind(&user_id)
        .bind(RESET)
        .execute(state.store.writer())
        .await?;
    sqlx::query("DELETE FROM login_failures WHERE user_id = $1")
        .bind(&user_id)
        .execute(state.store.writer())
        .await?;
    mark_verified(&state, &user_id, now).await?;
    // Whoever knew the old password, or holds a session, is signed out.
    let ids = state
        .store
        .revoke_all(&user_id, "password_reset", now, |n| {
            let detail = format!("password changed by a mailed link: signed out of {n} sessions");
            sessions::event(
                Some(&user_id),
                "password_reset",
                "warning",
                None,
                &c,
                &detail,
            )
        })
        .await?;
    for id in &ids {
        state.revoked.insert(id, now);
        state.metrics.revocation("password_reset");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/auth/email/verify-request", tag = "email", security(("access_token" = [])),
    responses((status = 202, description = "a verification link is on its way", body = crate::schema::Status),
        (status = 204, description = "the address is verified already"),
        (status = 401, body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn verify_request(
    State(state): State<AppState>,
    auth: AuthUser,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state.mailer.as_ref().ok_or_else(unavailable)?;
    let user = state
        .store
        .user_by_id(&auth.claims.sub)
        .await?
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::TokenInvalid, "unknown user"))?;
    if user.email_verified {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let c = caller(ip, device, &headers);
    limit(
        &state,
        &format!("verify_user:{}", user.id),
        limits::OTP_PER_EMAIL,
        "verify_user",
        &c,
    )
    .await?;
    mail_token(&state, &user.id, &user.email, VERIFY, &c).await?;
    Ok(accepted())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The `verify_token` of the mailed link.
    token: String,
}

#[utoipa::path(post, path = "/auth/email/verify", tag = "email", request_body = Verify,
    responses((status = 204, description = "the address is verified"),
        (status = 401, description = "invalid_code: unknown, used or expired token", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Verify>,
) -> ApiResult<Response> {
    state.mailer.as_ref().ok_or_else(unavailable)?;
    let c = caller(ip, device, &headers);
    limit(
        &state,
        &format!("otp_verify_ip:{}", c.ip),
        limits::OTP_VERIFY_PER_IP,
        "otp_verify_ip",
        &c,
    )
    .await?;
    let Some(user_id) = spend(&state, VERIFY, &body.token).await? else {
        return Err(invalid_token());
    };
    mark_verified(&state, &user_id, now_ms()).await?;
    let e = sessions::event(
        Some(&user_id),
        "email_verified",
        "info",
        None,
        &c,
        "address confirmed by a mailed link",
    );
    state.store.insert_event(&e).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
