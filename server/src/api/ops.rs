//! Operations and the sample resource: `GET /metrics`, `GET /healthz`, `GET /readyz`, and
//! `GET /api/ping` (what a protected endpoint sees).

use super::extract::{bearer, client_ip, peer, AuthUser};
use super::schema::{Ping, Status};
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ping))
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[utoipa::path(get, path = "/api/ping", tag = "sample", security(("access_token" = [])),
    responses((status = 200, body = crate::api::schema::Ping), (status = 401, body = baton_core::ErrorBody)))]
pub async fn ping(auth: AuthUser) -> Json<Ping> {
    Json(Ping {
        ok: true,
        sub: auth.claims.sub,
        sid: auth.claims.sid,
        at: now_ms() / 1000,
    })
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 403, description = "forbidden: not loopback and no BATON_METRICS_TOKEN", body = baton_core::ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, _) = req.into_parts();
    // The resolved client, not the socket peer: behind a local reverse proxy every peer is
    // loopback.
    let client = client_ip(peer(&parts), &parts.headers, &state.config.trusted_proxies);
    let loopback = client.is_loopback();
    let token = &state.config.metrics_token;
    let by_token = !token.is_empty()
        && bearer(&parts.headers)
            .ok()
            .flatten()
            .is_some_and(|t| constant_eq(t.as_bytes(), token.as_bytes()));
    if !loopback && !by_token {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "metrics are served to loopback peers or with the metrics token",
        ));
    }
    if let Ok(n) = state.store.count_live_sessions(now_ms()).await {
        state.metrics.set_active_sessions(n);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state
            .metrics
            .render_with(state.store.events_file().map(|s| s.dropped())),
    )
        .into_response())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = crate::api::schema::Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = crate::api::schema::Status), (status = 503, description = "unavailable", body = baton_core::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Status>> {
    let wait = state
        .config
        .request_timeout
        .min(std::time::Duration::from_secs(2));
    match tokio::time::timeout(wait, state.store.ready()).await {
        Ok(true) => Ok(Json(Status {
            status: "ready".into(),
        })),
        _ => Err(ApiError::unavailable()),
    }
}
