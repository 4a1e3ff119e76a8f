//! `POST /auth/register` and `GET /auth/me`.

use super::extract::{ApiJson, AuthUser};
use super::schema::{Me, Registered};
use crate::audit::Caller;
use crate::error::{ApiError, ApiResult};
use crate::session::issue::user_json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use baton_core::ErrorCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
}

#[utoipa::path(post, path = "/auth/register", tag = "account", request_body = RegisterBody,
    responses((status = 201, body = crate::api::schema::Registered),
        (status = 409, description = "email_taken", body = baton_core::ErrorBody), (status = 403, description = "registration_closed", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody), (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let user = crate::signin::account::register(&state, &c, &body.email, body.password).await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user: user_json(&user),
        }),
    ))
}

#[utoipa::path(get, path = "/auth/me", tag = "account", security(("access_token" = [])),
    responses((status = 200, body = crate::api::schema::Me), (status = 401, description = "token_missing, token_invalid, token_expired, token_revoked", body = baton_core::ErrorBody)))]
pub async fn me(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Me>> {
    let user = state
        .store
        .user_by_id(&auth.claims.sub)
        .await?
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::TokenInvalid, "unknown user"))?;
    Ok(Json(Me {
        user: user_json(&user),
        session_id: auth.claims.sid,
    }))
}
