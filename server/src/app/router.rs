//! The HTTP application: every area's routes, the OpenAPI document, static files, and the
//! layers every request passes (body limit, `middleware::guard`, CORS).

use super::middleware::guard;
use crate::api::extract::MAX_BODY;
use crate::config;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use baton_core::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let (routes, doc) = crate::api::documented_routes().split_for_parts();
    let doc = Arc::new(crate::api::schema::document(doc, &state.config.base_url()));
    let mut router = routes.route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    doc.as_str().to_owned(),
                )
            }
        }),
    );
    if let Some(dir) = &state.config.package_dir {
        router = router.nest_service("/pkg", tower_http::services::ServeDir::new(dir));
    }
    router = match &state.config.static_dir {
        Some(dir) => router.fallback_service(
            tower_http::services::ServeDir::new(dir).fallback(axum::routing::any(not_found)),
        ),
        None => router.fallback(not_found),
    };
    let cors = cors_layer(&state.config.cors_origins);
    router
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(cors)
        .with_state(state)
}

/// Cross-origin access for the configured origins only, with credentials for the cookie.
fn cors_layer(origins: &config::Origins) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method};
    let list: Vec<HeaderValue> = origins
        .0
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(list))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-device-id"),
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("dpop"),
        ])
        .expose_headers([header::DATE, header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(600))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed",
    )
}
