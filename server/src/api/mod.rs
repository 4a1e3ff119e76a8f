//! HTTP, one file per area: each owns its routes, request bodies and OpenAPI annotations, and
//! calls the layers below (`signin`, `session`, `store`) with plain data. `extract` reads
//! requests (bodies, who asked, the access token), `reply` writes answers (errors, tokens,
//! the refresh cookie), `schema` holds the answer types and the OpenAPI document.
//!
//! A new area is a new file here with its `routes()`, and one line in `documented_routes`.

pub mod account;
pub mod admin;
pub mod email;
pub mod extract;
pub mod introspect;
pub mod login;
pub mod mfa;
pub mod oauth;
pub mod ops;
pub mod passkeys;
pub mod recovery;
pub mod reply;
pub mod revocations;
pub mod schema;
pub mod sessions;
pub mod tokens;
pub mod wellknown;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// Every API route with its handler, registered together with the handler's OpenAPI
/// description: a route cannot be served without being documented.
pub fn documented_routes() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    OpenApiRouter::with_openapi(schema::ApiDoc::openapi())
        .merge(account::routes())
        .merge(login::routes())
        .merge(tokens::routes())
        .merge(sessions::routes())
        .merge(email::routes())
        .merge(recovery::routes())
        .merge(introspect::routes())
        .merge(revocations::routes())
        .merge(wellknown::routes())
        .merge(ops::routes())
        .merge(admin::routes())
        .merge(mfa::routes())
        .merge(passkeys::routes())
        .merge(oauth::routes())
}
