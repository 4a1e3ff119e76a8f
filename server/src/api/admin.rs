//! The admin API, `/admin/*`: users, their sessions, the audit log. Authenticated by admin
//! tokens (`baton-server admin token create`) sent as `Authorization: Bearer`, never by a
//! user's access token; each route needs one scope. Every change is an `admin_action` event.

use super::extract::bearer;
use super::schema::{Account, AdminSessions, EventPage, ExportedSession, OneUser, UserPage};
use crate::audit::Caller;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::rules::account::{self as rules, Scope};
use crate::signin::admin::{self, Admin, NewAccount, Patch};
use crate::state::AppState;
use crate::store::audit::EventFilter;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use baton_core::ErrorCode;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(user_sessions, sign_out_user))
        .routes(routes!(revoke_session))
        .routes(routes!(reset_mfa))
        .routes(routes!(audit_log))
}

/// A request authenticated by an admin token. Missing or wrong: 401 `token_invalid` (a user's
/// access token is wrong here too); 10 of those from one client address in a minute make
/// further requests 429 until the minute is over, answered before any lookup.
#[derive(Debug)]
pub struct AdminAuth {
    pub admin: Admin,
    pub caller: Caller,
}

impl<S> FromRequestParts<S> for AdminAuth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(s);
        let caller = Caller::from_request_parts(parts, s).await?;
        let key = format!("admin_failed:{}", caller.ip);
        let which = "admin_failed";
        crate::throttle::refused_early(&state, &key, which)?;
        let token = bearer(&parts.headers).ok().flatten();
        if let Some(admin) = match token {
            Some(t) => admin::authenticate(&state, t).await?,
            None => None,
        } {
            return Ok(AdminAuth { admin, caller });
        }
        let rule = crate::limits::ADMIN_FAILURES_PER_IP;
        let none = crate::throttle::Subject::default();
        crate::throttle::limit(&state, &key, rule, which, &caller, none).await?;
        Err(ApiError::unauthorized(
            ErrorCode::TokenInvalid,
            if token.is_some() {
                "not a valid admin token"
            } else {
                "the admin API needs an admin token: Authorization: Bearer baton_admin_..."
            },
        ))
    }
}

fn limit(q: &HashMap<String, String>) -> ApiResult<i64> {
    let n = q
        .get("limit")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request("limit must be an integer from 1 to 1000"))
        })
        .transpose()?;
    rules::page(n).map_err(ApiError::bad_request)
}

#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("admin_token" = ["users:read"])),
    params(("limit" = Option<i64>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("email" = Option<String>, Query, description = "exact lookup of an address (compared as sign-in compares it)")),
    responses((status = 200, body = UserPage), (status = 400, description = "invalid_request: a bad limit or cursor", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed: `email` is not an address", body = baton_core::ErrorBody),
        (status = 401, description = "token_invalid", body = baton_core::ErrorBody), (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    auth: AdminAuth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<UserPage>> {
    auth.admin.may(Scope::UsersRead)?;
    let now = now_ms();
    if let Some(email) = q.get("email") {
        let found = admin::find(&state, email).await?;
        return Ok(Json(UserPage {
            users: found.iter().map(|u| Account::of(u, now)).collect(),
            next_cursor: None,
        }));
    }
    let limit = limit(&q)?;
    let cursor = q.get("cursor").map(String::as_str);
    let (users, next) = admin::list(&state, cursor, limit)
        .await
        .map_err(|e| match e.code {
            ErrorCode::ValidationFailed => ApiError::bad_request(e.message),
            _ => e,
        })?;
    Ok(Json(UserPage {
        users: users.iter().map(|u| Account::of(u, now)).collect(),
        next_cursor: next,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    email: String,
    /// 8 to 1024 characters; without one the account signs in by mail (or a password reset).
    password: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    roles: Vec<String>,
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/admin/users", tag = "admin", security(("admin_token" = ["users:write"])), request_body = CreateUserBody,
    responses((status = 201, body = OneUser), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 409, description = "email_taken", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    super::extract::ApiJson(body): super::extract::ApiJson<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<OneUser>)> {
    auth.admin.may(Scope::UsersWrite)?;
    let new = NewAccount {
        email: body.email,
        password: body.password,
        email_verified: body.email_verified,
        roles: body.roles,
        app_metadata: body.app_metadata,
    };
    let user = admin::create_user(&state, &auth.admin, &auth.caller, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(OneUser {
            user: Account::of(&user, now_ms()),
        }),
    ))
}

#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", security(("admin_token" = ["users:read"])),
    params(("id" = String, Path, description = "a user id")),
    responses((status = 200, body = OneUser), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 404, description = "not_found", body = baton_core::ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<OneUser>> {
    auth.admin.may(Scope::UsersRead)?;
    let user = admin::user(&state, &id).await?;
    Ok(Json(OneUser {
        user: Account::of(&user, now_ms()),
    }))
}

/// A field that may be sent as `null`: absent is `None`, `null` is `Some(Null)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    email: Option<String>,
    email_verified: Option<bool>,
    roles: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<serde_json::Value>,
    /// An RFC 3339 time, `"forever"`, or `null` (enabled). Disabling ends every session.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    disabled_until: Option<serde_json::Value>,
}

#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", security(("admin_token" = ["users:write"])), request_body = PatchUserBody,
    params(("id" = String, Path, description = "a user id")),
    responses((status = 200, body = OneUser), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 404, description = "not_found", body = baton_core::ErrorBody),
        (status = 409, description = "email_taken", body = baton_core::ErrorBody), (status = 422, description = "validation_failed", body = baton_core::ErrorBody)))]
pub async fn patch_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    super::extract::ApiJson(body): super::extract::ApiJson<PatchUserBody>,
) -> ApiResult<Json<OneUser>> {
    auth.admin.may(Scope::UsersWrite)?;
    let patch = Patch {
        email: body.email,
        email_verified: body.email_verified,
        roles: body.roles,
        app_metadata: body.app_metadata,
        disabled_until: body.disabled_until,
    };
    let user = admin::change(&state, &auth.admin, &auth.caller, &id, patch).await?;
    Ok(Json(OneUser {
        user: Account::of(&user, now_ms()),
    }))
}

#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", security(("admin_token" = ["users:write"])),
    params(("id" = String, Path, description = "a user id")),
    responses((status = 204, description = "deleted: every session ended, personal data erased"), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 404, description = "not_found", body = baton_core::ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.admin.may(Scope::UsersWrite)?;
    admin::delete_user(&state, &auth.admin, &auth.caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin", security(("admin_token" = ["users:read"])),
    params(("id" = String, Path, description = "a user id")),
    responses((status = 200, body = AdminSessions), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 404, description = "not_found", body = baton_core::ErrorBody)))]
pub async fn user_sessions(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminSessions>> {
    auth.admin.may(Scope::UsersRead)?;
    admin::user(&state, &id).await?;
    let rows = state.store.live_sessions(&id, now_ms()).await?;
    Ok(Json(AdminSessions {
        sessions: rows.iter().map(ExportedSession::of).collect(),
    }))
}

#[utoipa::path(delete, path = "/admin/users/{id}/sessions", tag = "admin", security(("admin_token" = ["sessions:write"])),
    params(("id" = String, Path, description = "a user id")),
    responses((status = 204, description = "every session of the user ended"), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 404, description = "not_found", body = baton_core::ErrorBody)))]
pub async fn sign_out_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.admin.may(Scope::SessionsWrite)?;
    admin::sign_out(&state, &auth.admin, &auth.caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/admin/sessions/{id}", tag = "admin", security(("admin_token" = ["sessions:write"])),
    params(("id" = String, Path, description = "a session id")),
    responses((status = 204, description = "revoked"), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 404, description = "not_found: no such live session", body = baton_core::ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.admin.may(Scope::SessionsWrite)?;
    admin::revoke_session(&state, &auth.admin, &auth.caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/audit-log", tag = "admin", security(("admin_token" = ["audit:read"])),
    params(("user_id" = Option<String>, Query, description = "only this user's events"),
        ("type" = Option<String>, Query, description = "only events of this type"),
        ("since" = Option<String>, Query, description = "only events at or after this time: RFC 3339, or unix seconds"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = EventPage), (status = 400, description = "invalid_request", body = baton_core::ErrorBody),
        (status = 401, description = "token_invalid", body = baton_core::ErrorBody), (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    auth: AdminAuth,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<EventPage>> {
    auth.admin.may(Scope::AuditRead)?;
    let limit = limit(&q)?;
    let since = q
        .get("since")
        .map(|s| match s.parse::<i64>() {
            Ok(secs) => Ok(secs.saturating_mul(1000)),
            Err(_) => rules::parse_time(s),
        })
        .transpose()
        .map_err(ApiError::bad_request)?;
    let before = q
        .get("cursor")
        .map(|c| rules::read_event_cursor(c))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let filter = EventFilter {
        user_id: q.get("user_id").map(String::as_str),
        kind: q.get("type").map(String::as_str),
        since,
    };
    let mut events = state.store.events_page(&filter, before, limit).await?;
    let next_cursor = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| rules::event_cursor(e.id)))
        .flatten();
    for e in &mut events {
        e.at /= 1000;
    }
    Ok(Json(EventPage {
        events,
        next_cursor,
    }))
}

#[utoipa::path(delete, path = "/admin/users/{id}/mfa", tag = "admin", security(("admin_token" = ["users:write"])),
    params(("id" = String, Path, description = "a user id")),
    responses((status = 204, description = "every second factor and recovery code of the user removed"), (status = 401, description = "token_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "insufficient_scope", body = baton_core::ErrorBody), (status = 404, description = "not_found", body = baton_core::ErrorBody)))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.admin.may(Scope::UsersWrite)?;
    admin::reset_second_factors(&state, &auth.admin, &auth.caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
