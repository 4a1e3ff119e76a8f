//! Where other services find what they need to check Baton's tokens: `GET
//! /.well-known/jwks.json` (the keys) and `GET /.well-known/openid-configuration` (the issuer,
//! the keys' address and the introspection endpoint).
//!
//! Baton is not an OpenID provider (no authorization endpoint, no ID tokens): the discovery
//! document carries the fields a resource server's JWT library reads from it, in their RFC 8414
//! names, plus `access_token_signing_alg_values_supported`, Baton's own field for the one
//! algorithm its access tokens are signed with.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "verification",
    responses((status = 200, body = crate::api::schema::Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut res = Json(state.keys.jwks()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "verification",
    responses((status = 200, body = crate::api::schema::Discovery)))]
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let base = state.config.base_url();
    let mut doc = json!({
        "issuer": state.config.issuer(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "access_token_signing_alg_values_supported": ["EdDSA"],
    });
    if state.config.dpop != crate::config::DpopMode::Off {
        // RFC 9449 5.1: the algorithms accepted for DPoP proofs.
        doc["dpop_signing_alg_values_supported"] = json!(baton_core::dpop::ALGS);
    }
    if state.config.introspection_token.is_some() {
        doc["introspection_endpoint"] = json!(format!("{base}/auth/introspect"));
        doc["introspection_endpoint_auth_methods_supported"] = json!(["client_secret_basic"]);
        // Baton's own: the revocation feed, authenticated like introspection.
        doc["revocations_endpoint"] = json!(format!("{base}/auth/revocations"));
    }
    let mut res = Json(doc).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}
