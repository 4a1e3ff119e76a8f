//! The user's own sessions and audit log: `GET /auth/sessions`, `DELETE /auth/sessions/{id}`,
//! `GET /auth/audit-log`.

use super::extract::AuthUser;
use super::schema::{AuditLog, SessionInfo, SessionList};
use crate::audit::Caller;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::session::end;
use crate::state::AppState;
use crate::store::SessionRow;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use std::collections::HashMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(delete_session))
        .routes(routes!(audit_log))
}

fn session_json(s: &SessionRow, current_sid: &str) -> SessionInfo {
    SessionInfo {
        id: s.id.clone(),
        device_id: s.device_id.clone(),
        user_agent: s.user_agent.clone(),
        ip: s.ip.clone(),
        created_at: s.created_at / 1000,
        last_used_at: s.last_used_at / 1000,
        expires_at: s.ends_at() / 1000,
        remember_me: s.remember_me,
        current: s.id == current_sid,
    }
}

#[utoipa::path(get, path = "/auth/sessions", tag = "account", security(("access_token" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = baton_core::ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<SessionList>> {
    let rows = state
        .store
        .live_sessions(&auth.claims.sub, now_ms())
        .await?;
    let list: Vec<_> = rows
        .iter()
        .map(|s| session_json(s, &auth.claims.sid))
        .collect();
    Ok(Json(SessionList { sessions: list }))
}

#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "account", security(("access_token" = [])),
    params(("id" = String, Path, description = "a session id of the caller")),
    responses((status = 204, description = "revoked"), (status = 401, body = baton_core::ErrorBody), (status = 404, description = "not_found (also another user's session)", body = baton_core::ErrorBody)))]
pub async fn delete_session(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let session = match uuid::Uuid::parse_str(&id) {
        Ok(_) => state.store.session(&id).await?,
        Err(_) => None,
    };
    let Some(session) = session.filter(|s| s.user_id == auth.claims.sub && s.revoked_at.is_none())
    else {
        return Err(ApiError::not_found());
    };
    end::revoke(&state, &session, "revoked_by_user", &c, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/auth/audit-log", tag = "account", security(("access_token" = [])),
    params(("limit" = Option<i64>, Query, description = "1 to 1000, default 50")),
    responses((status = 200, body = AuditLog), (status = 400, body = baton_core::ErrorBody), (status = 401, body = baton_core::ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<AuditLog>> {
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 1000"))?,
    };
    let mut events = state.store.events_for_user(&auth.claims.sub, limit).await?;
    for e in &mut events {
        e.at /= 1000;
    }
    Ok(Json(AuditLog { events }))
}
