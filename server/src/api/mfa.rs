//! Two-factor sign-in: `/auth/mfa/*` (TOTP enrolment, the second step of a sign-in, step-up,
//! recovery codes, factors).

use super::extract::{ApiJson, AuthUser};
use super::reply::respond_tokens;
use crate::audit::Caller;
use crate::error::{ApiError, ApiResult};
use crate::signin::totp::{self, Second};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enroll))
        .routes(routes!(confirm))
        .routes(routes!(verify))
        .routes(routes!(step_up))
        .routes(routes!(recovery_codes))
        .routes(routes!(list_factors))
        .routes(routes!(remove_factor))
}

/// `POST /auth/mfa/totp/enroll`'s answer: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    pub factor_id: String,
    /// The secret in base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/...`, for a QR code.
    pub otpauth_url: String,
}

/// Recovery codes: shown once, each works once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Factor {
    pub id: String,
    /// `totp`.
    pub kind: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Factors {
    pub factors: Vec<Factor>,
    pub recovery_codes_left: i64,
}

/// A second factor, one of: a TOTP code, a recovery code, or a passkey's answer to a sign-in
/// ceremony (`challenge_id` of `POST /auth/passkeys/login/options` with `credential`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondBody {
    totp: Option<String>,
    recovery_code: Option<String>,
    challenge_id: Option<String>,
    /// `AuthenticationResponseJSON`.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

impl SecondBody {
    fn second(self) -> ApiResult<Second> {
        match (self.totp, self.recovery_code, self.challenge_id, self.credential) {
            (Some(t), None, None, None) => Ok(Second::Totp(t)),
            (None, Some(r), None, None) => Ok(Second::RecoveryCode(r)),
            (None, None, Some(challenge_id), Some(credential)) => Ok(Second::Passkey {
                challenge_id,
                credential,
            }),
            _ => Err(ApiError::validation(
                "send one second factor: `totp`, `recovery_code`, or a passkey's                  `challenge_id` and `credential`",
            )),
        }
    }
}

#[utoipa::path(post, path = "/auth/mfa/totp/enroll", tag = "mfa", security(("access_token" = [])),
    responses((status = 200, body = Enrolled), (status = 401, body = baton_core::ErrorBody),
        (status = 409, description = "invalid_request: TOTP is set up already", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
) -> ApiResult<Json<Enrolled>> {
    let e = totp::enroll(&state, &c, &auth.claims.sub).await?;
    Ok(Json(Enrolled {
        factor_id: e.factor_id,
        secret: e.secret,
        otpauth_url: e.otpauth_url,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    factor_id: String,
    /// The code the app shows now.
    code: String,
}

#[utoipa::path(post, path = "/auth/mfa/totp/confirm", tag = "mfa", security(("access_token" = [])), request_body = ConfirmBody,
    responses((status = 200, description = "TOTP is in force; the recovery codes, shown once", body = RecoveryCodes),
        (status = 401, description = "invalid_code, or the access token's codes", body = baton_core::ErrorBody),
        (status = 404, description = "not_found: no set-up in progress with this factor_id", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let codes = totp::confirm(&state, &c, &auth.claims.sub, &body.factor_id, &body.code).await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// From the sign-in's `mfa_required` answer.
    mfa_token: String,
    totp: Option<String>,
    recovery_code: Option<String>,
    /// With `credential`: a passkey as the second factor.
    challenge_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
    /// Ignored: the first step's choice holds (clients may send the fields of every sign-in).
    #[serde(default)]
    #[allow(dead_code)]
    remember_me: Option<bool>,
    /// Ignored, as `remember_me`.
    #[serde(default)]
    #[allow(dead_code)]
    refresh_transport: Option<super::extract::RefreshTransport>,
}

#[utoipa::path(post, path = "/auth/mfa/verify", tag = "mfa", request_body = VerifyBody,
    params(("DPoP" = Option<String>, Header, description = "a proof of the sign-in's DPoP key, when it had one")),
    responses((status = 200, body = baton_core::TokenResponse),
        (status = 401, description = "invalid_code (a wrong second factor), passkey_invalid (a refused passkey), mfa_token_invalid, dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "user_disabled", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "account_locked, rate_limited", body = baton_core::ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Response> {
    let second = SecondBody {
        totp: body.totp,
        recovery_code: body.recovery_code,
        challenge_id: body.challenge_id,
        credential: body.credential,
    }
    .second()?;
    let issued = totp::verify(&state, &c, &headers, &body.mfa_token, second).await?;
    respond_tokens(&state, &issued)
}

#[utoipa::path(post, path = "/auth/mfa/step-up", tag = "mfa", security(("access_token" = [])), request_body = SecondBody,
    responses((status = 200, description = "new tokens: the access token says `aal: 2` until the step-up ends", body = baton_core::TokenResponse),
        (status = 400, description = "invalid_request: no second factor is set up", body = baton_core::ErrorBody),
        (status = 401, description = "invalid_code, or the access token's codes", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "account_locked", body = baton_core::ErrorBody)))]
pub async fn step_up(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<SecondBody>,
) -> ApiResult<Response> {
    let second = body.second()?;
    let issued = totp::step_up(&state, &c, &auth.claims.sub, &auth.claims.sid, second).await?;
    respond_tokens(&state, &issued)
}

#[utoipa::path(post, path = "/auth/mfa/recovery-codes", tag = "mfa", security(("access_token" = [])), request_body = SecondBody,
    responses((status = 200, description = "a new set; the old one stops working", body = RecoveryCodes),
        (status = 401, description = "invalid_code, or the access token's codes", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "account_locked", body = baton_core::ErrorBody)))]
pub async fn recovery_codes(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<SecondBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let codes = totp::new_recovery_codes(&state, &c, &auth.claims.sub, body.second()?).await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

#[utoipa::path(get, path = "/auth/mfa/factors", tag = "mfa", security(("access_token" = [])),
    responses((status = 200, body = Factors), (status = 401, body = baton_core::ErrorBody)))]
pub async fn list_factors(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<Factors>> {
    let (factors, left) = totp::factors(&state, &auth.claims.sub).await?;
    Ok(Json(Factors {
        factors: factors
            .into_iter()
            .map(|f| Factor {
                id: f.id,
                kind: f.kind,
                created_at: f.created_at / 1000,
            })
            .collect(),
        recovery_codes_left: left,
    }))
}

#[utoipa::path(delete, path = "/auth/mfa/factors/{id}", tag = "mfa", security(("access_token" = [])),
    params(("id" = String, Path, description = "a factor id")),
    responses((status = 204, description = "removed; with the last factor, the recovery codes too"),
        (status = 401, body = baton_core::ErrorBody),
        (status = 403, description = "step_up_required: the session is not at level 2", body = baton_core::ErrorBody),
        (status = 404, description = "not_found", body = baton_core::ErrorBody)))]
pub async fn remove_factor(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    totp::remove(&state, &c, &auth.claims.sub, auth.claims.aal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
