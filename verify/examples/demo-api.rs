//! The demo's "orders" service: a separate backend that accepts Baton's tokens with
//! baton-verify, the way your own APIs would. It checks every token with introspection too, so a
//! session signed out elsewhere is refused here at once.
//!
//! Settings (environment): `BATON_URL` (the Baton server, default `http://127.0.0.1:8080`),
//! `BATON_INTROSPECTION_TOKEN` (the same secret the server has), `DEMO_API_BIND` (default
//! `127.0.0.1:8081`), `DEMO_API_ORIGINS` (comma-separated page origins allowed to call it
//! from a browser; default `BATON_URL`). Prints `listening on http://ADDR` when ready.

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::get;
use axum::{Json, Router};
use baton_verify::{Live, Options, Verifier};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let baton = env("BATON_URL", "http://127.0.0.1:8080");
    let secret = std::env::var("BATON_INTROSPECTION_TOKEN")
        .map_err(|_| "set BATON_INTROSPECTION_TOKEN to the Baton server's introspection secret")?;
    let verifier = Verifier::discover(
        &baton,
        Options {
            introspection_secret: Some(secret),
            ..Options::default()
        },
    )
    .await?;
    let origins: Vec<HeaderValue> = env("DEMO_API_ORIGINS", &baton)
        .split(',')
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET])
        .allow_headers([
            header::AUTHORIZATION,
            HeaderName::from_static("x-device-id"),
            HeaderName::from_static("dpop"),
        ]);
    let app = Router::new()
        .route("/orders", get(orders))
        .layer(cors)
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(env("DEMO_API_BIND", "127.0.0.1:8081")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The signed-in user's orders (made up): reachable only with a live Baton session.
async fn orders(Live(claims): Live) -> Json<serde_json::Value> {
    Json(json!({
        "service": "orders (a separate backend using baton-verify)",
        "user": claims.sub,
        "session": claims.sid,
        "orders": [
            { "id": "A-1001", "item": "baton, relay, aluminium", "qty": 4 },
            { "id": "A-1002", "item": "starting blocks", "qty": 1 },
        ],
    }))
}
