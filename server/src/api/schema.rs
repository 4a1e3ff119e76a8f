//! The response bodies of the HTTP API as types, and the OpenAPI 3.1 document generated from
//! them and from the handlers' `#[utoipa::path]` annotations, served at `/openapi.json`
//! (docs/api.md is the prose reference). `tests/openapi.rs` checks real answers against it.

use baton_core::{ErrorBody, TokenResponse, User};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// One of the user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_used_at: i64,
    /// Unix seconds: the absolute end (the idle lifetime may end it sooner).
    pub expires_at: i64,
    pub remember_me: bool,
    /// The session of the access token that asked.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionInfo>,
}

/// An audit event of the user (its one definition is the store's).
pub use crate::store::AuditEvent;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    /// Newest first.
    pub events: Vec<AuditEvent>,
}

/// `POST /auth/register`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user: User,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub session_id: String,
}

/// The sample protected endpoint's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ping {
    pub ok: bool,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Unix seconds.
    pub at: i64,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: String,
}

/// The public keys of access tokens (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    /// `{kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig"}`.
    pub keys: Vec<serde_json::Value>,
}

/// The discovery document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    pub access_token_signing_alg_values_supported: Vec<String>,
    /// Present when introspection is on.
    pub introspection_endpoint: Option<String>,
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Baton's revocation feed (`GET /auth/revocations`), present when introspection is on.
    pub revocations_endpoint: Option<String>,
    /// The algorithms accepted for DPoP proofs; absent with `BATON_DPOP=off`.
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// RFC 7662: `{active: false}`, or `active: true` with the token's claims.
#[derive(Debug, Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    pub token_type: Option<String>,
    pub iss: Option<String>,
    pub aud: Option<String>,
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
    /// A DPoP-bound token's key thumbprint (RFC 9449 6.2); absent for Bearer tokens.
    pub cnf: Option<baton_core::Confirmation>,
}

/// `POST /auth/introspect`'s form.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct IntrospectionForm {
    /// The access token to check.
    pub token: String,
    /// Ignored (RFC 7662 allows it).
    pub token_type_hint: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "baton-server",
        description = "Login, rotating refresh tokens with reuse detection, sessions, audit log, \
            token verification for other services. The prose reference is docs/api.md."
    ),
    components(schemas(ErrorBody, TokenResponse, User)),
    modifiers(&Security)
)]
#[derive(Debug)]
pub struct ApiDoc;

#[derive(Debug)]
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "introspection_secret",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `doc` (from [`crate::api::documented_routes`]) as JSON, its `servers` entry the server's URL.
pub fn document(mut doc: utoipa::openapi::OpenApi, base_url: &str) -> String {
    doc.servers = Some(vec![utoipa::openapi::Server::new(base_url)]);
    doc.to_json().unwrap_or_else(|_| "{}".into())
}
