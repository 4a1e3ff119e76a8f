//! RFC 7662 token introspection, `POST /auth/introspect`, for resource servers that must refuse
//! the tokens of signed-out sessions at once instead of at their expiry.
//!
//! The request is a form (`token=...`, optionally `token_type_hint`), authenticated with the
//! secret `BATON_INTROSPECTION_TOKEN` as `Authorization: Bearer <secret>` or as the password of
//! HTTP Basic (`client_secret_basic`; any user name). Access tokens are introspected; anything
//! else (refresh tokens included: they never leave the client and Baton) is `active: false`.
//! A revoked session's tokens are inactive as soon as the revocation view has it: at once on
//! the instance that revoked, within about a second on the others. An active token's answer
//! also carries the user's `roles` (as the token has them) and `app_metadata` (as stored now).

use super::extract::Service;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::ErrorCode;
use serde_json::json;
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
    _service: Service,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
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
    let claims = state
        .keys
        .verify_access(&token)
        .ok()
        .filter(|c| !state.revoked.is_revoked(&c.sid));
    let user = match &claims {
        Some(c) => state.store.user_by_id(&c.sub).await?,
        None => None,
    };
    let answer = match (claims, user) {
        (Some(c), Some(user)) => {
            let app_metadata: serde_json::Value =
                serde_json::from_str(&user.app_metadata).unwrap_or_else(|_| json!({}));
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
            "roles": c.roles,
            "app_metadata": app_metadata,
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
