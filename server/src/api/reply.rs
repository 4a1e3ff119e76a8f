//! How answers leave: errors in the documented JSON shape, token responses with the refresh
//! cookie, the cookie itself, and the plain 202 of the email flows.

use crate::error::ApiError;
use crate::session::issue::Issued;
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::{ErrorBody, ErrorCode};

/// The refresh cookie's name.
pub const REFRESH_COOKIE: &str = "baton_refresh";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(self.code, self.message);
        if let Some(secs) = self.retry_after {
            body = body.with_retry_after(secs);
        }
        let mut res = (self.status, Json(body)).into_response();
        let headers = res.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            let v = match (self.dpop, self.code) {
                (true, ErrorCode::DpopProofInvalid) => {
                    r#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA""#
                }
                (true, _) => r#"DPoP error="invalid_token", algs="ES256 EdDSA""#,
                (false, ErrorCode::TokenMissing) => r#"Bearer error="invalid_request""#,
                (false, _) => r#"Bearer error="invalid_token""#,
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The answer of a sign-in: its tokens, or the wait for its second factor (200
/// `{mfa_required: true, mfa_token, methods}`, never cached).
pub fn respond_signed_in(
    state: &AppState,
    signed_in: &crate::session::start::SignedIn,
) -> Result<Response, ApiError> {
    use crate::session::start::SignedIn;
    match signed_in {
        SignedIn::Session(issued) => respond_tokens(state, issued),
        SignedIn::SecondFactor(wait) => {
            let body = crate::api::schema::MfaRequired {
                mfa_required: true,
                mfa_token: wait.mfa_token.clone(),
                methods: wait.methods.iter().map(|m| (*m).to_owned()).collect(),
            };
            let mut res = Json(body).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
    }
}

/// The answer of a sign-in or refresh: the token response, never cached, and for a session
/// whose refresh token travels in the cookie, the cookie.
pub fn respond_tokens(state: &AppState, issued: &Issued) -> Result<Response, ApiError> {
    let (body, session) = (&issued.body, &issued.session);
    let generation = session.generation;
    let mut res = Json(body).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if session.cookie_transport {
        let token = crate::session::issue::cookie_token(&state.keys, session, generation)?;
        // A session without remember-me gets a browser-session cookie (no Max-Age): it ends
        // when the browser does, whatever its server-side lifetime left.
        let max_age = session.remember_me.then_some(body.refresh_expires_in);
        h.insert(header::SET_COOKIE, refresh_cookie(state, &token, max_age));
    }
    Ok(res)
}

/// The refresh cookie; `max_age: None` makes it a browser-session cookie.
pub fn refresh_cookie(state: &AppState, token: &str, max_age: Option<u64>) -> HeaderValue {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let max_age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/auth{max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn cleared_cookie(state: &AppState) -> HeaderValue {
    refresh_cookie(state, "", Some(0))
}

/// 204, clearing the refresh cookie only when the request presented one: a request that
/// carried none (a cross-site one, with the cookie held back by SameSite) clears nothing.
pub fn no_content_clearing_cookie(state: &AppState, headers: &HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if cookie_value(headers, REFRESH_COOKIE).is_some() {
        res.headers_mut()
            .insert(header::SET_COOKIE, cleared_cookie(state));
    }
    res
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// 202 `{"status": "accepted"}`: the email flows' answer, the same whoever the address is.
pub fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(crate::api::schema::Status {
            status: "accepted".into(),
        }),
    )
        .into_response()
}
