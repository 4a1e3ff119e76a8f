//! What every request passes: the early refusals (body size, device id, CSRF), the time
//! bound, the metrics and the access log, and errors in the documented shape.

use crate::api::extract;
use crate::config;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use baton_core::ErrorCode;

/// Every request: forwarding headers only from trusted proxies, refuse oversized bodies and
/// bad device ids early, bound the time, record the duration.
pub(crate) async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // What a proxy says about the scheme and host the client used (DPoP proofs name that URL)
    // counts only from a trusted proxy: anyone else's is dropped here, before any handler.
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| config::canonical(c.0.ip()));
    if !peer.is_some_and(|p| state.config.trusted_proxies.contains(p)) {
        let headers = req.headers_mut();
        headers.remove("x-forwarded-proto");
        headers.remove("x-forwarded-host");
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > extract::MAX_BODY as u64) {
        return extract::payload_too_large().into_response();
    }
    // docs/api.md: an invalid X-Device-ID is 400 on every request, not only where it is used.
    if let Err(e) = extract::device_id(req.headers()) {
        return e.into_response();
    }
    if super::csrf::applies(req.method(), req.uri().path()) {
        let host = own_host(&req, &state.config.trusted_proxies);
        if let Err(e) =
            super::csrf::check(req.headers(), host.as_deref(), &state.config.cors_origins)
        {
            return e.into_response();
        }
    }
    let endpoint = endpoint_label(req.extensions().get::<MatchedPath>());
    let method = req.method().clone();
    // The path without the query (a query could carry something private).
    let path = req.uri().path().to_owned();
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| extract::client_ip(c.0.ip(), req.headers(), &state.config.trusted_proxies));
    let started = std::time::Instant::now();
    let res = match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(endpoint, "request timed out");
            ApiError::unavailable().into_response()
        }
    };
    let took = started.elapsed();
    if let Some(endpoint) = endpoint {
        state.metrics.observe(endpoint, took);
    }
    let res = json_errors(res);
    // The access log: one line per request (`BATON_LOG=...,baton_server::access=off` to mute).
    tracing::info!(
        target: "baton_server::access",
        %method,
        path,
        status = res.status().as_u16(),
        ms = (took.as_secs_f64() * 1e6).round() / 1e3,
        client = client.map(tracing::field::display),
        "request"
    );
    res
}

/// Every error leaves in the documented JSON shape, also the rejections axum and tower-http
/// produce themselves (a path that does not decode, a body limit, a static-file error).
fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "not found"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "request body larger than 16 KiB",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "request bodies must be application/json",
        ),
        StatusCode::SERVICE_UNAVAILABLE => {
            return ApiError::unavailable().into_response();
        }
        s if s.is_server_error() => (ErrorCode::Internal, "internal error"),
        _ => (ErrorCode::InvalidRequest, "the request is malformed"),
    };
    let mut e = ApiError::new(status, code, message).into_response();
    // Keep what the original answer said about methods or ranges.
    for name in [header::ALLOW, header::CONTENT_RANGE] {
        if let Some(v) = res.headers().get(&name) {
            e.headers_mut().insert(name, v.clone());
        }
    }
    e
}

/// The host this server was reached at: `Host`, or `X-Forwarded-Host` set by a trusted proxy.
fn own_host(req: &Request, trusted: &config::TrustedProxies) -> Option<String> {
    let headers = req.headers();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| config::canonical(c.0.ip()));
    let forwarded = peer
        .filter(|p| trusted.contains(*p))
        .and_then(|_| headers.get("x-forwarded-host"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next());
    forwarded
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .map(|h| h.trim().to_owned())
}

fn endpoint_label(path: Option<&MatchedPath>) -> Option<&'static str> {
    Some(match path?.as_str() {
        "/auth/register" => "register",
        "/auth/login" => "login",
        "/auth/refresh" => "refresh",
        "/auth/logout" => "logout",
        "/auth/logout-all" => "logout_all",
        "/auth/me" => "me",
        "/auth/sessions" => "sessions",
        "/auth/sessions/{id}" => "session_delete",
        "/auth/audit-log" => "audit_log",
        "/auth/me/export" => "me_export",
        "/auth/password/change" => "password_change",
        "/auth/email/change" => "email_change",
        "/auth/email/change/confirm" => "email_change_confirm",
        p if p.starts_with("/admin/") => "admin",
        p if p.starts_with("/auth/mfa/") => "mfa",
        p if p.starts_with("/auth/passkeys") => "passkeys",
        p if p.starts_with("/auth/oauth/") || p.starts_with("/auth/identities") => "oauth",
        "/api/ping" => "ping",
        "/.well-known/jwks.json" => "jwks",
        "/.well-known/openid-configuration" => "discovery",
        "/auth/introspect" => "introspect",
        "/auth/revocations" => "revocations",
        _ => return None,
    })
}
