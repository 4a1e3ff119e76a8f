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
    pub user: Account,
    pub session_id: String,
}

/// An account as its owner (`GET /auth/me`) and administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The user proved they receive mail at `email`.
    pub email_verified: bool,
    /// Set by administrators; a claim of every access token.
    pub roles: Vec<String>,
    /// A JSON object the user edits (`PATCH /auth/me`), at most 4 KB.
    #[schema(value_type = Object)]
    pub user_metadata: serde_json::Value,
    /// A JSON object set by administrators, at most 4 KB; not in tokens.
    #[schema(value_type = Object)]
    pub app_metadata: serde_json::Value,
    /// Unix seconds; `null`: never.
    pub last_sign_in_at: Option<i64>,
    /// `null` (the account may sign in), `"forever"`, or an RFC 3339 time.
    pub disabled_until: Option<String>,
}

impl Account {
    pub fn of(u: &crate::store::UserRow, now: i64) -> Self {
        let object = |text: &str| {
            serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
        };
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            created_at: u.created_at / 1000,
            email_verified: u.email_verified,
            roles: u.roles.clone(),
            user_metadata: object(&u.user_metadata),
            app_metadata: object(&u.app_metadata),
            last_sign_in_at: u.last_sign_in_at.map(|t| t / 1000),
            disabled_until: crate::rules::account::disabled_json(u.disabled_until, now),
        }
    }
}

/// `GET /auth/me/export`: everything stored about the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountExport {
    pub user: Account,
    /// Every session still stored (live, ended or revoked), newest first.
    pub sessions: Vec<ExportedSession>,
    /// Every audit event about the user, newest first.
    pub events: Vec<AuditEvent>,
    /// Unix seconds: when this copy was made.
    pub exported_at: i64,
}

/// A session as exported and as administrators list them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedSession {
    pub id: String,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_used_at: i64,
    /// Unix seconds: when it ends (or ended) unless revoked.
    pub expires_at: i64,
    pub remember_me: bool,
    /// Unix seconds, when revoked.
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// Bound to a DPoP key.
    pub dpop_bound: bool,
}

impl ExportedSession {
    pub fn of(s: &crate::store::SessionRow) -> Self {
        Self {
            id: s.id.clone(),
            device_id: s.device_id.clone(),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
            created_at: s.created_at / 1000,
            last_used_at: s.last_used_at / 1000,
            expires_at: s.ends_at() / 1000,
            remember_me: s.remember_me,
            revoked_at: s.revoked_at.map(|t| t / 1000),
            revoked_reason: s.revoked_reason.clone(),
            dpop_bound: s.dpop_jkt.is_some(),
        }
    }
}

/// `GET /admin/users`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// In creation order.
    pub users: Vec<Account>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// One account (`GET`, `POST` and `PATCH /admin/users/...`).
#[derive(Debug, Serialize, ToSchema)]
pub struct OneUser {
    pub user: Account,
}

/// `GET /admin/users/{id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSessions {
    /// The live sessions, newest first.
    pub sessions: Vec<ExportedSession>,
}

/// `GET /admin/audit-log`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for older events; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A sign-in whose account has a second factor: no session yet; `POST /auth/mfa/verify` with
/// the `mfa_token` and a second factor finishes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single use, for 5 minutes, only from this browser (and DPoP key).
    pub mfa_token: String,
    /// `totp`, `recovery_code`.
    pub methods: Vec<String>,
}

/// A sign-in's answer: the token response, or `mfa_required`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignInAnswer {
    Tokens(TokenResponse),
    SecondFactor(MfaRequired),
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
    /// The user's roles, as the token carries them.
    pub roles: Option<Vec<String>>,
    /// The user's `app_metadata` (set by administrators), as stored now.
    #[schema(value_type = Option<Object>)]
    pub app_metadata: Option<serde_json::Value>,
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
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
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
