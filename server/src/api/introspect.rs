//! RFC 7662 token introspection, `POST /auth/introspect`, for resource servers that must refuse
//! the tokens of signed-out sessions at once instead of at their expiry.
//!
//! The request is a form (`token=...`, optionally `token_type_hint`), authenticated with the
//! secret `BATON_INTROSPECTION_TOKEN` as `Authorization: Bearer <secret>` or as the password of
//! HTTP Basic (`client_secret_basic`; any user name). Access tokens are introspected; anything
//! else (refresh tokens included: they never leave the client and Baton) is `active: false`.
//! A revoked session's tokens are inactive as soon as the revocation view has it: at once on
//! the instance that revoked, within about a second on the others.

use crate::audit::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::throttle::{self, Subject};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use baton_core::ErrorCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(introspect))
}

#[utoipa::path(post, path = "/auth/introspect", tag = "verification", security(("introspection_secret" = [])),
    request_body(content = crate::api::schema::IntrospectionForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = crate::api::schema::Introspection),
        (status = 401, description = "token_missing, token_invalid: not the introspection secret", body = baton_core::ErrorBody),
        (status = 404, description = "introspection is off", body = baton_core::ErrorBody), (status = 415, description = "not a form", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited: too many wrong secrets from this address", body = baton_core::ErrorBody)))]
pub async fn introspect(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let Some(secret) = &state.config.introspection_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "token introspection is off: set BATON_INTROSPECTION_TOKEN",
        ));
    };
    // Wrong secrets are limited per client address: guessing costs a 429 soon, and a flood
    // of them is answered before any comparison.
    let key = format!("introspect_failed:{}", c.ip);
    throttle::refused_early(&state, &key, "introspect_failed")?;
    if let Some(refusal) = refusal(&headers, secret) {
        let rule = crate::limits::INTROSPECT_FAILURES_PER_IP;
        throttle::limit(
            &state,
            &key,
            rule,
            "introspect_failed",
            &c,
            Subject::default(),
        )
        .await?;
        return Ok(refusal);
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "introspection requests are forms: application/x-www-form-urlencoded with token=...",
        ));
    }
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("the form field `token` is required"))?;
    let answer = match state.keys.verify_access(&token) {
        Ok(c) if !state.revoked.is_revoked(&c.sid) => {
            let mut answer = json!({
            "active": true,
            // RFC 9449 6.2: a bound token's type and key, for resource servers enforcing DPoP.
            "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
            "iss": c.iss,
            "aud": c.aud,
            "sub": c.sub,
            "sid": c.sid,
            "jti": c.jti,
            "iat": c.iat,
            "exp": c.exp,
            });
            if let Some(cnf) = c.cnf {
                answer["cnf"] = json!(cnf);
            }
            answer
        }
        _ => json!({ "active": false }),
    };
    let mut res = Json(answer).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The caller must present the introspection secret, as a Bearer token or a Basic password:
/// the 401 to answer when it does not.
fn refusal(headers: &HeaderMap, secret: &str) -> Option<Response> {
    let challenge = |code, message: &'static str| {
        let mut res = ApiError::unauthorized(code, message).into_response();
        // The usual Bearer challenge, and Basic for client_secret_basic.
        let bearer = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("Bearer")
            .to_owned();
        if let Ok(v) =
            HeaderValue::from_str(&format!(r#"{bearer}, Basic realm="baton-introspection""#))
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Some(res)
    };
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return challenge(
            ErrorCode::TokenMissing,
            "introspection needs the BATON_INTROSPECTION_TOKEN secret in Authorization",
        );
    };
    let presented = v.to_str().ok().and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(rest.to_owned())
        } else if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let pair = String::from_utf8(raw).ok()?;
            // RFC 6749 2.3.1: both parts are form-urlencoded.
            let secret = pair.split_once(':')?.1;
            Some(
                form_urlencoded::parse(format!("s={secret}").as_bytes())
                    .next()
                    .map_or_else(String::new, |(_, v)| v.into_owned()),
            )
        } else {
            None
        }
    });
    // Compared as digests: equal lengths, and the time taken says nothing about the secret.
    let digest = |s: &str| Sha256::digest(s.as_bytes());
    match presented {
        Some(p) if digest(&p) == digest(secret) => None,
        _ => challenge(ErrorCode::TokenInvalid, "wrong introspection credentials"),
    }
}
