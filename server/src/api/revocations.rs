//! `GET /auth/revocations`: the revocation feed. Other services poll it (about once a second,
//! one request per process) and refuse the access tokens of the sessions it lists, so a
//! sign-out reaches them without an introspection request per token.

use super::extract::Service;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(revocations))
}

/// Each answer starts this much before its own time, so revocations committed a moment late,
/// or stamped by an instance whose clock lags, are not stepped over by the cursor.
const OVERLAP_MS: i64 = 10_000;

/// Beyond an access token's `exp`: the verifiers' leeway and clocks.
const KEEP_MARGIN_MS: i64 = 10_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Since {
    /// The `next` of the previous answer; absent on the first call.
    since: Option<i64>,
}

/// A revoked session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The session id (`sid` of its access tokens).
    pub sid: String,
    /// When it was revoked (unix milliseconds).
    pub at: i64,
}

/// The sessions revoked since the cursor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revocations {
    /// Revoked at or after `since` (or within `keep` of now, on the first call); the same
    /// session may come again in the next answer.
    pub revoked: Vec<Revoked>,
    /// The `since` of the next call.
    pub next: i64,
    /// Seconds to keep refusing a listed session's tokens: no access token of it lives
    /// longer.
    pub keep: i64,
}

#[utoipa::path(get, path = "/auth/revocations", tag = "verification", security(("introspection_secret" = [])),
    params(Since),
    responses((status = 200, body = Revocations),
        (status = 401, description = "token_missing, token_invalid: not the introspection secret", body = baton_core::ErrorBody),
        (status = 404, description = "off: BATON_INTROSPECTION_TOKEN is not set", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited: too many wrong secrets from this address", body = baton_core::ErrorBody)))]
pub async fn revocations(
    State(state): State<AppState>,
    _service: Service,
    Query(q): Query<Since>,
) -> ApiResult<Response> {
    let now = now_ms();
    let own = state.config.access_ttl.as_millis() as i64;
    let longest = state
        .store
        .longest_live_access_ttl(now)
        .await?
        .unwrap_or(0)
        .max(own);
    let keep = longest + KEEP_MARGIN_MS;
    let horizon = now - keep;
    let since = q.since.map_or(horizon, |s| s.max(horizon));
    if since > now + OVERLAP_MS {
        return Err(ApiError::bad_request("since is in the future"));
    }
    let rows = state.store.revoked_since(since).await?;
    let revoked = rows
        .into_iter()
        .map(|(sid, at)| Revoked { sid, at })
        .collect();
    let next = (now - OVERLAP_MS).max(since);
    let mut res = Json(Revocations {
        revoked,
        next,
        keep: (keep + 999) / 1000,
    })
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
