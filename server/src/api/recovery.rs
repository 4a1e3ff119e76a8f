//! Account actions proven by mail: `POST /auth/password/reset-request`, `POST
//! /auth/password/reset`, `POST /auth/email/verify-request`, `POST /auth/email/verify`.

use super::extract::{ApiJson, AuthUser};
use super::reply::accepted;
use crate::audit::Caller;
use crate::error::ApiResult;
use crate::signin::recovery;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reset_request))
        .routes(routes!(reset))
        .routes(routes!(verify_request))
        .routes(routes!(verify))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    email: String,
}

#[utoipa::path(post, path = "/auth/password/reset-request", tag = "email", request_body = ResetRequest,
    responses((status = 202, description = "a reset link is on its way, if the address has an account", body = crate::api::schema::Status),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]

pub async fn reset_request(
    State(state): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<Response> {
    recovery::reset_request(&state, &c, &body.email).await?;
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
    c: Caller,
    ApiJson(body): ApiJson<Reset>,
) -> ApiResult<StatusCode> {
    recovery::reset(&state, &c, &body.token, body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/auth/email/verify-request", tag = "email", security(("access_token" = [])),
    responses((status = 202, description = "a verification link is on its way", body = crate::api::schema::Status),
        (status = 204, description = "the address is verified already"),
        (status = 401, body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]

pub async fn verify_request(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
) -> ApiResult<Response> {
    if recovery::verify_request(&state, &c, &auth.claims.sub).await? {
        Ok(accepted())
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The `verify_token` of the mailed link.
    token: String,
}

#[utoipa::path(post, path = "/auth/email/verify", tag = "email", request_body = Verify, security((), ("access_token" = [])),
    responses((status = 204, description = "the address is verified"),
        (status = 401, description = "invalid_code: unknown, used or expired token", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]

pub async fn verify(
    State(state): State<AppState>,
    auth: Option<AuthUser>,
    c: Caller,
    ApiJson(body): ApiJson<Verify>,
) -> ApiResult<StatusCode> {
    let signed_in = auth.as_ref().map(|a| a.claims.sub.as_str());
    recovery::verify(&state, &c, &body.token, signed_in).await?;
    Ok(StatusCode::NO_CONTENT)
}
