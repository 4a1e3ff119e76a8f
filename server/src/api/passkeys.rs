//! Passkeys: `/auth/passkeys/*` (registration, usernameless sign-in, the user's list).

use super::extract::{choice, ApiJson, AuthUser, RefreshTransport};
use super::reply::respond_signed_in;
use crate::audit::Caller;
use crate::error::ApiResult;
use crate::signin::passkey::{self, Ceremony};
use crate::state::AppState;
use crate::store::passkeys::PasskeyRow;
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
        .routes(routes!(register_options))
        .routes(routes!(register_verify))
        .routes(routes!(login_options))
        .routes(routes!(login_verify))
        .routes(routes!(list))
        .routes(routes!(rename, remove))
}

/// A ceremony: send `options` to the browser's WebAuthn call, then its answer with
/// `challenge_id` (single use, 5 minutes).
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyJson {
    pub challenge_id: String,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`
    /// (WebAuthn Level 3), for `PublicKeyCredential.parseCreationOptionsFromJSON` /
    /// `parseRequestOptionsFromJSON`.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

impl From<Ceremony> for CeremonyJson {
    fn from(c: Ceremony) -> Self {
        Self {
            challenge_id: c.challenge_id,
            options: c.options,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Passkey {
    pub id: String,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `null` until it first signs in.
    pub last_used_at: Option<i64>,
}

impl From<PasskeyRow> for Passkey {
    fn from(p: PasskeyRow) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at / 1000,
            last_used_at: p.last_used_at.map(|t| t / 1000),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyJson {
    pub passkey: Passkey,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Passkeys {
    pub passkeys: Vec<Passkey>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterOptionsBody {
    /// The passkey's name in the user's list (default `Passkey N`); at most 64 characters.
    #[serde(default)]
    name: Option<String>,
}

#[utoipa::path(post, path = "/auth/passkeys/register/options", tag = "passkeys", security(("access_token" = [])), request_body = RegisterOptionsBody,
    responses((status = 200, body = CeremonyJson), (status = 401, body = baton_core::ErrorBody),
        (status = 409, description = "invalid_request: the account has 20 passkeys", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed: the name", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "passkeys_unavailable", body = baton_core::ErrorBody)))]
pub async fn register_options(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<RegisterOptionsBody>,
) -> ApiResult<Json<CeremonyJson>> {
    let made = passkey::register_options(&state, &c, &auth.claims.sub, body.name).await?;
    Ok(Json(made.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterVerifyBody {
    challenge_id: String,
    /// `RegistrationResponseJSON`: `PublicKeyCredential.toJSON()` of the new credential.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    /// Overrides the name given with the options.
    #[serde(default)]
    name: Option<String>,
}

#[utoipa::path(post, path = "/auth/passkeys/register/verify", tag = "passkeys", security(("access_token" = [])), request_body = RegisterVerifyBody,
    responses((status = 201, body = PasskeyJson),
        (status = 400, description = "passkey_invalid: the reason is in the message", body = baton_core::ErrorBody),
        (status = 401, body = baton_core::ErrorBody),
        (status = 409, description = "passkey_invalid (registered already), invalid_request (20 passkeys)", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "passkeys_unavailable", body = baton_core::ErrorBody)))]
pub async fn register_verify(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<RegisterVerifyBody>,
) -> ApiResult<(StatusCode, Json<PasskeyJson>)> {
    let row = passkey::register_verify(
        &state,
        &c,
        &auth.claims.sub,
        &body.challenge_id,
        &body.credential,
        body.name,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(PasskeyJson {
            passkey: row.into(),
        }),
    ))
}

/// Nothing: the sign-in is usernameless.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginOptionsBody {}

#[utoipa::path(post, path = "/auth/passkeys/login/options", tag = "passkeys", request_body = LoginOptionsBody,
    responses((status = 200, description = "options with no allowCredentials: the browser offers the passkeys it has for this site", body = CeremonyJson),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "passkeys_unavailable", body = baton_core::ErrorBody)))]
pub async fn login_options(
    State(state): State<AppState>,
    c: Caller,
    ApiJson(_body): ApiJson<LoginOptionsBody>,
) -> ApiResult<Json<CeremonyJson>> {
    Ok(Json(passkey::login_options(&state, &c).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginVerifyBody {
    challenge_id: String,
    /// `AuthenticationResponseJSON`: `PublicKeyCredential.toJSON()` of the assertion.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    refresh_transport: RefreshTransport,
}

#[utoipa::path(post, path = "/auth/passkeys/login/verify", tag = "passkeys", request_body = LoginVerifyBody,
    params(("X-Device-ID" = Option<String>, Header, description = "the browser profile's device id"),
        ("DPoP" = Option<String>, Header, description = "a DPoP proof (RFC 9449): binds the session to its key")),
    responses((status = 200, description = "the token response; the access token says `amr: [\"webauthn\"]`, `aal: 2`", body = baton_core::TokenResponse),
        (status = 401, description = "passkey_invalid (the reason is in the message), dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "user_disabled", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "passkeys_unavailable", body = baton_core::ErrorBody)))]
pub async fn login_verify(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginVerifyBody>,
) -> ApiResult<Response> {
    let choice = choice(body.remember_me, body.refresh_transport);
    let signed_in = passkey::login_verify(
        &state,
        &c,
        &headers,
        &body.challenge_id,
        &body.credential,
        choice,
    )
    .await?;
    respond_signed_in(&state, &signed_in)
}

#[utoipa::path(get, path = "/auth/passkeys", tag = "passkeys", security(("access_token" = [])),
    responses((status = 200, body = Passkeys), (status = 401, body = baton_core::ErrorBody)))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Passkeys>> {
    let rows = passkey::list(&state, &auth.claims.sub).await?;
    Ok(Json(Passkeys {
        passkeys: rows.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    /// At most 64 characters.
    name: String,
}

#[utoipa::path(patch, path = "/auth/passkeys/{id}", tag = "passkeys", security(("access_token" = [])), request_body = RenameBody,
    params(("id" = String, Path, description = "a passkey id")),
    responses((status = 200, body = PasskeyJson), (status = 401, body = baton_core::ErrorBody),
        (status = 404, description = "not_found: no such passkey of this user", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody)))]
pub async fn rename(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameBody>,
) -> ApiResult<Json<PasskeyJson>> {
    let row = passkey::rename(&state, &auth.claims.sub, &id, &body.name).await?;
    Ok(Json(PasskeyJson {
        passkey: row.into(),
    }))
}

#[utoipa::path(delete, path = "/auth/passkeys/{id}", tag = "passkeys", security(("access_token" = [])),
    params(("id" = String, Path, description = "a passkey id")),
    responses((status = 204, description = "removed: it no longer signs in"),
        (status = 401, body = baton_core::ErrorBody),
        (status = 404, description = "not_found: no such passkey of this user", body = baton_core::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    passkey::remove(&state, &c, &auth.claims.sub, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
