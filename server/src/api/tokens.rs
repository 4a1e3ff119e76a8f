//! `POST /auth/refresh`, `POST /auth/logout` and `POST /auth/logout-all`.

use super::extract::{authorization, request_key, ApiJson, AuthUser, Scheme};
use super::reply::{
    cleared_cookie, cookie_value, no_content_clearing_cookie, respond_tokens, REFRESH_COOKIE,
};
use crate::audit::{event, Caller};
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::session::refresh::{proof_of_key, resolve};
use crate::session::{end, refresh as rotation};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use baton_core::ErrorCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The refresh token of a request: the body's, else the cookie's. A cookie-authenticated
/// request must carry `X-Device-ID` (a cross-site form cannot set it).
fn presented_token<'a>(
    body: &'a RefreshBody,
    headers: &'a HeaderMap,
    c: &Caller,
) -> ApiResult<Option<&'a str>> {
    if let Some(t) = body.refresh_token.as_deref() {
        return Ok(Some(t));
    }
    match cookie_value(headers, REFRESH_COOKIE) {
        Some(t) if c.device_id.is_none() => {
            let _ = t;
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CsrfCheckFailed,
                "a request authenticated by the refresh cookie must carry X-Device-ID",
            ))
        }
        other => Ok(other),
    }
}

#[utoipa::path(post, path = "/auth/refresh", tag = "tokens",
    request_body(content = RefreshBody, description = "the refresh token, unless it travels in the baton_refresh cookie"),
    params(("X-Device-ID" = Option<String>, Header, description = "required with the cookie"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same for every retry of one refresh"),
        ("DPoP" = Option<String>, Header, description = "a DPoP proof by the session's key; required for a DPoP-bound session")),
    responses((status = 200, body = baton_core::TokenResponse),
        (status = 401, description = "refresh_token_invalid, refresh_token_reused, session_expired, session_revoked, device_mismatch, dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "csrf_check_failed", body = baton_core::ErrorBody), (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    mut c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Response> {
    let token = presented_token(&body, &headers, &c)?
        .ok_or_else(|| {
            ApiError::unauthorized(ErrorCode::RefreshTokenInvalid, "no refresh token was sent")
        })?
        .to_owned();
    c.request_key = request_key(&headers)?;
    match rotation::refresh(&state, &token, &c, &headers).await {
        Ok(issued) => respond_tokens(&state, &issued),
        Err(e) => {
            let mut res = e.into_response();
            if res.status() == StatusCode::UNAUTHORIZED
                && cookie_value(&headers, REFRESH_COOKIE).is_some()
            {
                res.headers_mut()
                    .insert(header::SET_COOKIE, cleared_cookie(&state));
            }
            Ok(res)
        }
    }
}

#[utoipa::path(post, path = "/auth/logout", tag = "tokens",
    request_body(content = RefreshBody, description = "or an access token (Authorization), or the cookie"),
    params(("DPoP" = Option<String>, Header, description = "a DPoP proof by the session's key; required for a DPoP-bound session")),
    responses((status = 204, description = "signed out (also for an unknown token)"), (status = 403, description = "csrf_check_failed", body = baton_core::ErrorBody),
        (status = 401, description = "dpop_proof_invalid: a DPoP-bound session without a proof of its key", body = baton_core::ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Response> {
    let token = presented_token(&body, &headers, &c)?.map(str::to_owned);
    let now = now_ms();
    // The access token first; a bad or expired one falls back to the refresh token. Either
    // way a DPoP-bound session is only ended with a proof of its key.
    let by_access = match authorization(&headers) {
        Ok(Some((t, scheme))) => state
            .keys
            .verify_access(t)
            .ok()
            .map(|claims| (claims, t, scheme == Scheme::Dpop)),
        _ => None,
    };
    let session = match by_access {
        Some((claims, t, dpop)) => {
            let bound = claims.cnf.as_ref().map(|c| c.jkt.as_str());
            let post = http::Method::POST;
            crate::dpop::check_access(&state, &headers, &post, "/auth/logout", t, dpop, bound)
                .await?;
            state.store.session(&claims.sid).await?
        }
        None => match token {
            Some(t) => match resolve(&state, &t).await {
                Ok((s, _)) => {
                    proof_of_key(&state, &s, &c, &headers, "/auth/logout").await?;
                    Some(s)
                }
                Err(e) if e.status == StatusCode::UNAUTHORIZED => None,
                Err(e) => return Err(e),
            },
            None => None,
        },
    };
    if let Some(s) = session {
        end::revoke(&state, &s, "logout", &c, now).await?;
    }
    Ok(no_content_clearing_cookie(&state, &headers))
}

#[utoipa::path(post, path = "/auth/logout-all", tag = "tokens", security(("access_token" = [])),
    responses((status = 204, description = "every session of the user revoked"), (status = 401, body = baton_core::ErrorBody)))]
pub async fn logout_all(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let now = now_ms();
    let (uid, sid) = (&auth.claims.sub, &auth.claims.sid);
    end::all(&state, uid, "logout_all", now, |n| {
        let detail = format!("signed out of {n} sessions");
        event(Some(uid), "logout_all", "info", Some(sid), &c, &detail)
    })
    .await?;
    Ok(no_content_clearing_cookie(&state, &headers))
}
