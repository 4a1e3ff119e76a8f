//! Sign-in by email: `POST /auth/otp/request`, `POST /auth/otp/verify`,
//! `POST /auth/magic-link/verify`.

use super::extract::{choice, ApiJson, RefreshTransport};
use super::reply::{accepted, respond_signed_in};
use crate::audit::Caller;
use crate::error::ApiResult;
use crate::signin::email_code;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request))
        .routes(routes!(verify_code))
        .routes(routes!(verify_link))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    email: String,
}

#[utoipa::path(post, path = "/auth/otp/request", tag = "email", request_body = CodeRequest,
    responses((status = 202, description = "a code and a link are on their way, if the address may sign in", body = crate::api::schema::Status),
        (status = 422, description = "validation_failed: not an email address", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable: no SMTP server set up", body = baton_core::ErrorBody)))]

pub async fn request(
    State(state): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<CodeRequest>,
) -> ApiResult<Response> {
    email_code::request(&state, &c, &body.email).await?;
    Ok(accepted())
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
    responses((status = 200, description = "the token response, or `mfa_required` when the account has a second factor", body = crate::api::schema::SignInAnswer),
        (status = 401, description = "invalid_code (wrong, used, expired or tried too often), dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]

pub async fn verify_code(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CodeVerify>,
) -> ApiResult<Response> {
    let choice = choice(body.remember_me, body.refresh_transport);
    let issued =
        email_code::verify_code(&state, &c, &headers, &body.email, &body.code, choice).await?;
    respond_signed_in(&state, &issued)
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
    responses((status = 200, description = "the token response, or `mfa_required` when the account has a second factor", body = crate::api::schema::SignInAnswer),
        (status = 401, description = "invalid_code (unknown, used or expired link), dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]

pub async fn verify_link(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LinkVerify>,
) -> ApiResult<Response> {
    let choice = choice(body.remember_me, body.refresh_transport);
    let issued = email_code::verify_link(&state, &c, &headers, &body.token, choice).await?;
    respond_signed_in(&state, &issued)
}
