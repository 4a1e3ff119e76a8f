//! Sign-in by email (docs/api.md, "Email sign-in"): `POST /auth/otp/request` mails a 6-digit
//! code and a sign-in link; `POST /auth/otp/verify` and `POST /auth/magic-link/verify` trade
//! either for a session, like `POST /auth/login`.
//!
//! A request always answers 202, whether the address has an account or not, and the mail is
//! sent after the answer, so neither the answer nor its timing tells who has an account. With
//! registration open, an unknown address gets its account on its first verified sign-in. Codes
//! and link tokens are stored as HMACs under the server's secret (`email_codes`), and die on
//! first use (code or link), after `policy::MAX_TRIES` tries of the code, and at
//! `BATON_OTP_TTL`.

use crate::config::Registration;
use crate::db::UserRow;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientIp, DeviceId};
use crate::handlers::{caller, refuse, start_session, RefreshTransport, Start};
use crate::sessions::{self, Caller};
use crate::{limits, now_ms, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::ErrorCode;
use serde::Deserialize;

/// The pure rules: code shape and lifetime (the clock is the caller's).
pub mod policy {
    /// Tries of one code; the next is refused even when right.
    pub const MAX_TRIES: i64 = 5;

    /// A 6-digit code from 4 random bytes, uniform over 000000..=999999 (values past the
    /// largest multiple of a million are drawn again by the caller: `None`).
    pub fn code_from(random: u32) -> Option<String> {
        const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000);
        (random < LIMIT).then(|| format!("{:06}", random % 1_000_000))
    }

    /// Six ASCII digits.
    pub fn is_code(s: &str) -> bool {
        s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
    }

    /// When a code made at `now_ms` dies.
    pub fn expires_at(now_ms: i64, ttl: std::time::Duration) -> i64 {
        now_ms.saturating_add(ttl.as_millis() as i64)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn codes_are_six_digits_and_uniform() {
            assert_eq!(code_from(0).as_deref(), Some("000000"));
            assert_eq!(code_from(1_000_123).as_deref(), Some("000123"));
            assert_eq!(code_from(999_999).as_deref(), Some("999999"));
            // The top partial range would favour low codes: drawn again.
            assert_eq!(code_from(u32::MAX), None);
            assert_eq!(code_from(4_294_000_000), None);
            assert!(code_from(4_293_999_999).is_some());
            assert!(is_code("012345"));
            for bad in ["12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345"] {
                assert!(!is_code(bad), "{bad}");
            }
            let ttl = std::time::Duration::from_secs(600);
            assert_eq!(expires_at(1_000, ttl), 601_000);
        }
    }
}

const CODE: &str = "email-code";
const LINK: &str = "email-link";

/// 503 `email_unavailable`: no mail set up (shared with `recovery`).
pub(crate) fn unavailable() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::EmailUnavailable,
        "mail is not set up on this server (BATON_SMTP_URL)",
    );
    e.retry_after = Some(3600);
    e
}

fn invalid_code(message: &'static str) -> ApiError {
    ApiError::unauthorized(ErrorCode::InvalidCode, message)
}

/// Counts one attempt under `key`; a refusal is 429 with `Retry-After` (shared with
/// `recovery`).
pub(crate) async fn limit(
    state: &AppState,
    key: &str,
    rule: (i64, std::time::Duration),
    which: &'static str,
    c: &Caller,
) -> ApiResult<()> {
    if let Err(refused) = state.limits.hit(&state.store, key, rule, now_ms()).await? {
        refuse(state, None, None, c, which, refused).await;
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            refused.retry_after,
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    email: String,
}

#[utoipa::path(post, path = "/auth/otp/request", tag = "email", request_body = CodeRequest,
    responses((status = 202, description = "a code and a link are on their way, if the address may sign in", body = crate::schema::Status),
        (status = 422, description = "validation_failed: not an email address", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable: no SMTP server set up", body = baton_core::ErrorBody)))]
pub async fn request(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CodeRequest>,
) -> ApiResult<Response> {
    let mailer = state.mailer.clone().ok_or_else(unavailable)?;
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
    let key = format!("otp_email:{email}");
    limit(&state, &key, limits::OTP_PER_EMAIL, "otp_email", &c).await?;
    state.metrics.email("requested");
    let user = state.store.user_by_email(&email).await?;
    // Nobody to sign in and nobody may register: the same work and answer, but no mail.
    let may_sign_in = user.is_some() || state.config.registration == Registration::Open;
    let now = now_ms();
    let code = loop {
        if let Some(code) = policy::code_from(rand::random()) {
            break code;
        }
    };
    let link_token = crate::tokens::random_nonce();
    let row_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO email_codes (id, email, code_hash, link_hash, created_at, expires_at, \
         attempts) VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(&row_id)
    .bind(&email)
    .bind(state.keys.secret_mac(CODE, &code))
    .bind(state.keys.secret_mac(LINK, &link_token))
    .bind(now)
    .bind(policy::expires_at(now, state.config.otp_ttl))
    .execute(state.store.writer())
    .await?;
    let uid = user.as_ref().map(|u| u.id.clone());
    let generated = sessions::event(
        uid.as_deref(),
        "otp_generated",
        "info",
        None,
        &c,
        "sign-in code and link made",
    );
    state.store.insert_event(&generated).await?;
    if !may_sign_in {
        return Ok(accepted());
    }
    // Sent after the answer: its time says nothing about the address.
    let minutes = state.config.otp_ttl.as_secs().div_ceil(60);
    let text = format!(
        "Your sign-in code: {code}\n\nOr open this link to sign in:\n{}\n\nBoth work once, for {minutes} minutes. \
         If you did not ask to sign in, ignore this mail.\n",
        mailer.link("token", &link_token)
    );
    let audit = crate::mail::Audit {
        user_id: uid,
        caller: c,
        kinds: ("otp_sent", "otp_send_failed"),
        what: "sign-in",
    };
    mailer.send_later(&state, email, "Your sign-in code", text, audit);
    Ok(accepted())
}

/// 202 `{"status": "accepted"}` (shared with `recovery`).
pub(crate) fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(crate::schema::Status {
            status: "accepted".into(),
        }),
    )
        .into_response()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeVerify {
    email: String,
    code: String,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    refresh_transport: RefreshTransport,
}

#[utoipa::path(post, path = "/auth/otp/verify", tag = "email", request_body = CodeVerify,
    params(("X-Device-ID" = Option<String>, Header, description = "the browser profile's device id"),
        ("DPoP" = Option<String>, Header, description = "a DPoP proof: binds the session to its key")),
    responses((status = 200, body = baton_core::TokenResponse),
        (status = 401, description = "invalid_code (wrong, used, expired or tried too often), dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn verify_code(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CodeVerify>,
) -> ApiResult<Response> {
    if !policy::is_code(&body.code) {
        return Err(ApiError::validation(
            "code must be the 6 digits of the mail",
        ));
    }
    let (c, dpop) = admit(&state, ip, device, &headers, "/auth/otp/verify").await?;
    let wrong = || invalid_code("wrong or expired code: ask for a new one after 5 tries");
    let email = crate::email::normalize(&body.email).ok_or_else(wrong)?;
    let now = now_ms();
    // The newest live code of the address; its try is counted before the code is compared, so
    // parallel guesses cannot exceed the tries.
    let counted: Option<(String, String)> = sqlx::query_as(
        "UPDATE email_codes SET attempts = attempts + 1 WHERE id = (SELECT id FROM email_codes \
         WHERE email = $1 AND used_at IS NULL AND expires_at > $2 ORDER BY created_at DESC \
         LIMIT 1) AND attempts < $3 RETURNING id, code_hash",
    )
    .bind(&email)
    .bind(now)
    .bind(policy::MAX_TRIES)
    .fetch_optional(state.store.writer())
    .await?;
    let user = state.store.user_by_email(&email).await?;
    let uid = user.as_ref().map(|u| u.id.as_str());
    let Some((row_id, _)) = counted.filter(|(_, h)| state.keys.secret_mac_ok(CODE, &body.code, h))
    else {
        state.metrics.email("refused");
        let e = sessions::event(
            uid,
            "otp_refused",
            "warning",
            None,
            &c,
            "wrong or expired sign-in code",
        );
        state.store.insert_event(&e).await?;
        return Err(wrong());
    };
    if !use_row(&state, &row_id, now).await? {
        return Err(wrong());
    }
    let how = Start::new(
        body.remember_me,
        body.refresh_transport,
        dpop,
        "signed in with an emailed code",
    );
    sign_in(&state, &email, user, &c, how, now).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkVerify {
    /// The `token` of the sign-in link.
    token: String,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    refresh_transport: RefreshTransport,
}

#[utoipa::path(post, path = "/auth/magic-link/verify", tag = "email", request_body = LinkVerify,
    params(("X-Device-ID" = Option<String>, Header, description = "the browser profile's device id"),
        ("DPoP" = Option<String>, Header, description = "a DPoP proof: binds the session to its key")),
    responses((status = 200, body = baton_core::TokenResponse),
        (status = 401, description = "invalid_code (unknown, used or expired link), dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn verify_link(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LinkVerify>,
) -> ApiResult<Response> {
    let (c, dpop) = admit(&state, ip, device, &headers, "/auth/magic-link/verify").await?;
    let now = now_ms();
    let bad = || invalid_code("this sign-in link is unknown, used or expired: ask for a new one");
    if body.token.is_empty() || body.token.len() > 128 {
        return Err(bad());
    }
    // Single use: the row is taken in the same statement that finds it.
    let email: Option<String> = sqlx::query_scalar(
        "UPDATE email_codes SET used_at = $1 WHERE link_hash = $2 AND used_at IS NULL \
         AND expires_at > $1 RETURNING email",
    )
    .bind(now)
    .bind(state.keys.secret_mac(LINK, &body.token))
    .fetch_optional(state.store.writer())
    .await?;
    let Some(email) = email else {
        state.metrics.email("refused");
        let e = sessions::event(
            None,
            "otp_refused",
            "warning",
            None,
            &c,
            "unknown, used or expired sign-in link",
        );
        state.store.insert_event(&e).await?;
        return Err(bad());
    };
    let user = state.store.user_by_email(&email).await?;
    let how = Start::new(
        body.remember_me,
        body.refresh_transport,
        dpop,
        "signed in with an emailed link",
    );
    sign_in(&state, &email, user, &c, how, now).await
}

/// The start of both verifications: mail set up, a refusal in force (answered before any
/// work), the DPoP proof (checked before anything is counted), the per-address limit. The
/// caller, and the checked proof whose key the session is bound to.
async fn admit(
    state: &AppState,
    ip: ClientIp,
    device: DeviceId,
    headers: &HeaderMap,
    path: &str,
) -> ApiResult<(Caller, Option<baton_core::dpop::Proof>)> {
    state.mailer.as_ref().ok_or_else(unavailable)?;
    let c = caller(ip, device, headers);
    let key = format!("otp_verify_ip:{}", c.ip);
    crate::handlers::refused_early(state, &key, "otp_verify_ip")?;
    let dpop = crate::dpop::bind_new_session(state, headers, &Method::POST, path)?;
    limit(state, &key, limits::OTP_VERIFY_PER_IP, "otp_verify_ip", &c).await?;
    Ok((c, dpop))
}

/// The end of both verifications: the account (made now for a new address), the
/// `otp_verified` event, the session.
async fn sign_in(
    state: &AppState,
    email: &str,
    user: Option<UserRow>,
    c: &Caller,
    how: Start,
    now: i64,
) -> ApiResult<Response> {
    let mut user = match user {
        Some(u) => u,
        None => register(state, email, c).await?,
    };
    verified(state, &user, c, how.detail).await?;
    // The mail arrived: the address is proven.
    if !user.email_verified {
        crate::recovery::mark_verified(state, &user.id, now).await?;
        user.email_verified = true;
    }
    start_session(state, &user, c, how, now).await
}

/// Marks a code's row used; false when a parallel request used it first.
async fn use_row(state: &AppState, id: &str, now: i64) -> ApiResult<bool> {
    let done = sqlx::query("UPDATE email_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(state.store.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

async fn verified(state: &AppState, user: &UserRow, c: &Caller, detail: &str) -> ApiResult<()> {
    state.metrics.email("verified");
    let e = sessions::event(Some(&user.id), "otp_verified", "info", None, c, detail);
    Ok(state.store.insert_event(&e).await?)
}

/// The account of an address seen for the first time (registration is open: a code was only
/// sent because it is). Its password is a random secret nobody knows: password sign-in fails
/// (and takes as long as for any account) until a password is set.
async fn register(state: &AppState, email: &str, c: &Caller) -> ApiResult<UserRow> {
    if state.config.registration == Registration::Closed {
        return Err(invalid_code("registration is closed"));
    }
    let hash = state.password.hash(crate::tokens::random_nonce()).await?;
    let user = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_owned(),
        password_hash: hash,
        created_at: now_ms(),
        email_verified: false,
    };
    let e = sessions::event(
        Some(&user.id),
        "user_registered",
        "info",
        None,
        c,
        "account created by an emailed sign-in",
    );
    if state.store.insert_user(&user, &e).await? {
        return Ok(user);
    }
    // Registered a moment ago by a parallel request.
    state
        .store
        .user_by_email(email)
        .await?
        .ok_or_else(ApiError::internal)
}
