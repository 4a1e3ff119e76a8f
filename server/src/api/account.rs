//! The account: `POST /auth/register`, `GET`, `PATCH` and `DELETE /auth/me`, its export, and
//! the owner's changes of password and address.

use super::extract::{ApiJson, AuthUser};
use super::schema::{Account, AccountExport, ExportedSession, Me, Registered};
use crate::audit::Caller;
use crate::clock::now_ms;
use crate::error::ApiResult;
use crate::session::issue::user_json;
use crate::signin::profile;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(export))
        .routes(routes!(change_password))
        .routes(routes!(change_email))
        .routes(routes!(confirm_email_change))
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
    let user = profile::account(&state, &auth.claims.sub).await?;
    Ok(Json(Me {
        user: Account::of(&user, now_ms()),
        session_id: auth.claims.sid,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    /// Replaces the user's metadata: a JSON object of at most 4 KB.
    #[schema(value_type = Object)]
    user_metadata: serde_json::Value,
}

#[utoipa::path(patch, path = "/auth/me", tag = "account", security(("access_token" = [])), request_body = UpdateMeBody,
    responses((status = 200, body = crate::api::schema::Me), (status = 401, description = "token_missing, token_invalid, token_expired, token_revoked", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed: not an object, or larger than 4 KB", body = baton_core::ErrorBody)))]
pub async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<UpdateMeBody>,
) -> ApiResult<Json<Me>> {
    let user = profile::update_metadata(&state, &c, &auth.claims.sub, &body.user_metadata).await?;
    Ok(Json(Me {
        user: Account::of(&user, now_ms()),
        session_id: auth.claims.sid,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMeBody {
    /// The account's password; an account without one instead needs a sign-in of this
    /// session at most 5 minutes ago.
    password: Option<String>,
}

#[utoipa::path(delete, path = "/auth/me", tag = "account", security(("access_token" = [])), request_body = DeleteMeBody,
    responses((status = 204, description = "deleted: every session ended, personal data erased"),
        (status = 401, description = "invalid_credentials (counted by the lockout), or the access token's codes", body = baton_core::ErrorBody),
        (status = 403, description = "forbidden: no password, and the sign-in is older than 5 minutes", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed: the account has a password and none was sent", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited, account_locked", body = baton_core::ErrorBody)))]
pub async fn delete_me(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<DeleteMeBody>,
) -> ApiResult<StatusCode> {
    profile::delete(
        &state,
        &c,
        &auth.claims.sub,
        &auth.claims.sid,
        body.password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/auth/me/export", tag = "account", security(("access_token" = [])),
    responses((status = 200, body = crate::api::schema::AccountExport), (status = 401, body = baton_core::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<AccountExport>> {
    let all = profile::export(&state, &auth.claims.sub).await?;
    let now = now_ms();
    Ok(Json(AccountExport {
        user: Account::of(&all.user, now),
        sessions: all.sessions.iter().map(ExportedSession::of).collect(),
        events: all
            .events
            .into_iter()
            .map(|mut e| {
                e.at /= 1000;
                e
            })
            .collect(),
        exported_at: now / 1000,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    current_password: String,
    /// 8 to 1024 characters.
    new_password: String,
}

#[utoipa::path(post, path = "/auth/password/change", tag = "account", security(("access_token" = [])), request_body = ChangePasswordBody,
    responses((status = 204, description = "changed: every other session of the user ended, this one stays"),
        (status = 401, description = "invalid_credentials (a wrong current password, counted by the lockout), or the access token's codes", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited, account_locked", body = baton_core::ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> ApiResult<StatusCode> {
    profile::change_password(
        &state,
        &c,
        &auth.claims.sub,
        &auth.claims.sid,
        body.current_password,
        body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailBody {
    new_email: String,
}

#[utoipa::path(post, path = "/auth/email/change", tag = "account", security(("access_token" = [])), request_body = ChangeEmailBody,
    responses((status = 202, description = "a link to the new address (`email_change_token=`) and a notice to the current one are on their way", body = crate::api::schema::Status),
        (status = 401, body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn change_email(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    ApiJson(body): ApiJson<ChangeEmailBody>,
) -> ApiResult<axum::response::Response> {
    profile::request_email_change(&state, &c, &auth.claims.sub, &body.new_email).await?;
    Ok(super::reply::accepted())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmEmailBody {
    /// The `email_change_token` of the mailed link.
    token: String,
}

#[utoipa::path(post, path = "/auth/email/change/confirm", tag = "account", request_body = ConfirmEmailBody,
    responses((status = 204, description = "the account's address is the new one, verified"),
        (status = 401, description = "invalid_code: unknown, used or expired link", body = baton_core::ErrorBody),
        (status = 409, description = "email_taken: another account took the address meanwhile", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody),
        (status = 503, description = "email_unavailable", body = baton_core::ErrorBody)))]
pub async fn confirm_email_change(
    State(state): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<ConfirmEmailBody>,
) -> ApiResult<StatusCode> {
    profile::confirm_email_change(&state, &c, &body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}
