//! `baton-server`: login, rotating refresh tokens with reuse detection, sessions, audit log and
//! metrics, over SQLite or PostgreSQL. `main.rs` only parses the config and calls [`run`].

mod batch;
pub mod config;
pub mod csrf;
pub mod db;
pub mod discovery;
pub mod dpop;
pub mod email;
pub mod error;
pub mod events_file;
pub mod extract;
pub mod handlers;
pub mod introspect;
pub mod keystore;
pub mod limits;
pub mod lockout;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod otp;
pub mod peers;
pub mod recovery;
pub mod revocation;
pub mod schema;
pub mod serve;
pub mod sessions;
pub mod spent;
pub mod tokens;

use crate::config::Config;
use crate::db::Store;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::revocation::RevocationView;
use crate::tokens::Keys;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use baton_core::ErrorCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Shared state of one server instance.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: Arc<Keys>,
    pub revoked: Arc<RevocationView>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<limits::Limits>,
    pub session_cache: Arc<sessions::SessionCache>,
    pub rotator: sessions::Rotator,
    pub password: Arc<handlers::PasswordHasher>,
    pub dpop_replay: Arc<dpop::ReplayCache>,
    /// `BATON_SMTP_URL`'s mailer; `None`: the email endpoints answer 503.
    pub mailer: Option<mail::Mailer>,
}

impl AppState {
    /// Connects to the database, runs migrations, loads (or creates) keys and the revocation view.
    pub async fn new(mut config: Config) -> anyhow::Result<Self> {
        if config.issuer.is_none()
            && config.public_url.is_none()
            && config.database_url.starts_with("postgres")
        {
            tracing::warn!(
                issuer = %config.issuer(),
                "BATON_PUBLIC_URL is not set: the issuer is this instance's listen address; \
                 instances sharing this database must be reached at one URL and agree on it"
            );
        }
        // Resolved once, from the address actually bound when `run` started this instance.
        config.issuer = Some(config.issuer());
        let schema = if config.migrate_on_start {
            db::Schema::Migrate
        } else {
            db::Schema::Require
        };
        let mut store =
            Store::connect_with(&config.database_url, config.request_timeout, schema).await?;
        if let Some(path) = &config.events_file {
            let sink = events_file::Sink::open(path).map_err(|e| {
                anyhow::anyhow!("BATON_EVENTS_FILE {}: cannot open: {e}", path.display())
            })?;
            reopen_on_sighup(sink.clone());
            store = store.with_events_file(sink);
        }
        let sealer = keystore::Sealer::from_settings(
            config.key_encryption_key.as_deref(),
            config.key_encryption_key_file.as_deref(),
        )?;
        let keys = Keys::load(&store, sealer, &config).await?;
        store
            .record_access_ttl(config.access_ttl.as_millis() as i64, now_ms())
            .await?;
        let revoked = RevocationView::new(config.access_ttl);
        revoked.sync(&store).await?;
        let password = Arc::new(handlers::PasswordHasher::new(config.hash_queue as usize));
        let mailer = mail::Mailer::from_config(&config)?;
        Ok(Self {
            password,
            limits: Arc::new(limits::Limits::new(&config)),
            session_cache: Arc::default(),
            dpop_replay: Arc::new(dpop::ReplayCache::new(&store)),
            mailer,
            rotator: sessions::Rotator::spawn(store.clone()),
            config: Arc::new(config),
            store,
            keys: Arc::new(keys),
            revoked: Arc::new(revoked),
            metrics: Arc::new(Metrics::default()),
        })
    }
}

/// Every API route with its handler, registered together with the handler's OpenAPI
/// description: a route cannot be served without being documented (schema.rs).
pub fn documented_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::with_openapi(schema::ApiDoc::openapi())
        .routes(routes!(handlers::register))
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::refresh))
        .routes(routes!(handlers::logout))
        .routes(routes!(handlers::logout_all))
        .routes(routes!(handlers::me))
        .routes(routes!(handlers::list_sessions))
        .routes(routes!(handlers::delete_session))
        .routes(routes!(handlers::audit_log))
        .routes(routes!(handlers::ping))
        .routes(routes!(otp::request))
        .routes(routes!(otp::verify_code))
        .routes(routes!(otp::verify_link))
        .routes(routes!(recovery::reset_request))
        .routes(routes!(recovery::reset))
        .routes(routes!(recovery::verify_request))
        .routes(routes!(recovery::verify))
        .routes(routes!(introspect::introspect))
        .routes(routes!(handlers::jwks))
        .routes(routes!(discovery::openid_configuration))
        .routes(routes!(handlers::metrics))
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::readyz))
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let (routes, doc) = documented_routes().split_for_parts();
    let doc = Arc::new(schema::document(doc, &state.config.base_url()));
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
        .layer(axum::extract::DefaultBodyLimit::max(extract::MAX_BODY))
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
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
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

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed",
    )
}

/// Every request: refuse oversized bodies and bad device ids early, bound the time, record the
/// duration.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > extract::MAX_BODY as u64) {
        return extract::payload_too_large().into_response();
    }
    // docs/api.md: an invalid X-Device-ID is 400 on every request, not only where it is used.
    if let Err(e) = extract::device_id(req.headers()) {
        return e.into_response();
    }
    if csrf::applies(req.method(), req.uri().path()) {
        let host = own_host(&req, &state.config.trusted_proxies);
        if let Err(e) = csrf::check(req.headers(), host.as_deref(), &state.config.cors_origins) {
            return e.into_response();
        }
    }
    let endpoint = endpoint_label(req.extensions().get::<MatchedPath>());
    let method = req.method().clone();
    // The path without the query (a query could carry something private).
    let path = req.uri().path().to_owned();
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| extract::client_ip(c.0.ip(), req.headers(), &state.config.trusted_proxies));
    let started = std::time::Instant::now();
    let res = match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(endpoint, "request timed out");
            ApiError::unavailable().into_response()
        }
    };
    let took = started.elapsed();
    if let Some(endpoint) = endpoint {
        state.metrics.observe(endpoint, took);
    }
    let res = json_errors(res);
    // The access log: one line per request (`BATON_LOG=...,baton_server::access=off` to mute).
    tracing::info!(
        target: "baton_server::access",
        %method,
        path,
        status = res.status().as_u16(),
        ms = (took.as_secs_f64() * 1e6).round() / 1e3,
        client = client.map(tracing::field::display),
        "request"
    );
    res
}

/// Every error leaves in the documented JSON shape, also the rejections axum and tower-http
/// produce themselves (a path that does not decode, a body limit, a static-file error).
fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "not found"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "request body larger than 16 KiB",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "request bodies must be application/json",
        ),
        StatusCode::SERVICE_UNAVAILABLE => {
            return ApiError::unavailable().into_response();
        }
        s if s.is_server_error() => (ErrorCode::Internal, "internal error"),
        _ => (ErrorCode::InvalidRequest, "the request is malformed"),
    };
    let mut e = ApiError::new(status, code, message).into_response();
    // Keep what the original answer said about methods or ranges.
    for name in [header::ALLOW, header::CONTENT_RANGE] {
        if let Some(v) = res.headers().get(&name) {
            e.headers_mut().insert(name, v.clone());
        }
    }
    e
}

/// The host this server was reached at: `Host`, or `X-Forwarded-Host` set by a trusted proxy.
fn own_host(req: &Request, trusted: &config::TrustedProxies) -> Option<String> {
    let headers = req.headers();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| config::canonical(c.0.ip()));
    let forwarded = peer
        .filter(|p| trusted.contains(*p))
        .and_then(|_| headers.get("x-forwarded-host"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next());
    forwarded
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .map(|h| h.trim().to_owned())
}

fn endpoint_label(path: Option<&MatchedPath>) -> Option<&'static str> {
    Some(match path?.as_str() {
        "/auth/register" => "register",
        "/auth/login" => "login",
        "/auth/refresh" => "refresh",
        "/auth/logout" => "logout",
        "/auth/logout-all" => "logout_all",
        "/auth/me" => "me",
        "/auth/sessions" => "sessions",
        "/auth/sessions/{id}" => "session_delete",
        "/auth/audit-log" => "audit_log",
        "/api/ping" => "ping",
        "/.well-known/jwks.json" => "jwks",
        "/.well-known/openid-configuration" => "discovery",
        "/auth/introspect" => "introspect",
        _ => return None,
    })
}

/// How often every instance re-reads the signing keys (a rotation takes effect that fast).
pub const KEY_RELOAD: Duration = Duration::from_secs(2);

/// `baton-server migrate`: applies the pending migrations; returns how many ran.
pub async fn migrate(config: &Config) -> anyhow::Result<usize> {
    let store = Store::connect_with(
        &config.database_url,
        config.request_timeout,
        db::Schema::AsIs,
    )
    .await?;
    let ran = store.migrate().await;
    store.close().await;
    ran
}

/// `baton-server keys rotate`: adds a signing key to the database the server uses.
pub async fn rotate_keys(config: &Config) -> anyhow::Result<String> {
    let store = Store::connect(&config.database_url, config.request_timeout).await?;
    let sealer = keystore::Sealer::from_settings(
        config.key_encryption_key.as_deref(),
        config.key_encryption_key_file.as_deref(),
    )?;
    let kid = keystore::rotate(&store, &sealer, now_ms()).await;
    store.close().await;
    kid
}

/// `SIGHUP` reopens the events file (log rotation: move the file away, then signal).
fn reopen_on_sighup(sink: events_file::Sink) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be handled: BATON_EVENTS_FILE is not reopened");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reopening BATON_EVENTS_FILE");
            sink.reopen();
        }
    });
    #[cfg(not(unix))]
    let _ = sink;
}

/// Background work of an instance: the revocation view's polling and the periodic purge.
pub fn spawn_background(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(revocation::POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = std::time::Instant::now();
        let mut last_hits_purge = std::time::Instant::now();
        let mut last_key_reload = std::time::Instant::now();
        let mut last_verified = std::time::Instant::now();
        let mut verified = sessions::VerifiedWatch::default();
        loop {
            tick.tick().await;
            // Instances share the database only on PostgreSQL.
            if state.store.backend == db::Backend::Postgres
                && last_verified.elapsed() >= Duration::from_secs(1)
            {
                last_verified = std::time::Instant::now();
                let now = now_ms();
                let since = sessions::VerifiedWatch::since(now);
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    state
                        .store
                        .verified_since(since, sessions::VerifiedWatch::PAGE),
                )
                .await
                {
                    Ok(Ok(rows)) => {
                        let fresh = verified.fresh(rows, now);
                        state.session_cache.forget_users(&fresh);
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "verified-address poll failed"),
                    Err(_) => tracing::debug!("verified-address poll timed out"),
                }
            }
            if last_hits_purge.elapsed() >= Duration::from_secs(60) {
                last_hits_purge = std::time::Instant::now();
                // Every rate-limit window is at most an hour long.
                let before = now_ms() - 3_600_000;
                if let Err(e) = state.store.purge_hits(before).await {
                    tracing::debug!(error = %e, "rate-limit purge failed");
                }
                state.dpop_replay.purge(&state, now_ms()).await;
                // Still issuing tokens of this lifetime: every instance keeps revocations that
                // long (see `revocation`).
                let ttl = state.config.access_ttl.as_millis() as i64;
                if let Err(e) = state.store.record_access_ttl(ttl, now_ms()).await {
                    tracing::debug!(error = %e, "recording the access-token lifetime failed");
                }
            }
            match tokio::time::timeout(Duration::from_secs(2), state.revoked.sync(&state.store))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "revocation sync failed"),
                Err(_) => tracing::debug!("revocation sync timed out"),
            }
            if last_key_reload.elapsed() >= KEY_RELOAD {
                last_key_reload = std::time::Instant::now();
                match tokio::time::timeout(Duration::from_secs(2), state.keys.reload(&state.store))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "reloading the signing keys failed"),
                    Err(_) => tracing::debug!("reloading the signing keys timed out"),
                }
            }
            if last_purge.elapsed() >= state.config.purge_interval {
                last_purge = std::time::Instant::now();
                purge(&state).await;
            }
        }
    })
}

/// Deletes ended sessions and old audit events past their retention.
pub async fn purge(state: &AppState) {
    let now = now_ms();
    let cutoff = now - state.config.session_retention.as_millis() as i64;
    let audit_cutoff = now - state.config.audit_retention.as_millis() as i64;
    match state.store.purge(cutoff, audit_cutoff).await {
        Ok((s, a)) if s + a > 0 => {
            tracing::info!(
                sessions = s,
                audit_events = a,
                "purged ended sessions and old events"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "purge failed"),
    }
}

/// Binds, prints `listening on http://ADDR`, and serves until SIGTERM or Ctrl-C.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    if let Some(limit) = serve::raise_open_file_limit() {
        // Room for the database connections, the SQLite files and the listener.
        let allowed = limit.saturating_sub(128).max(1);
        if u64::from(config.max_connections) > allowed {
            tracing::warn!(
                open_file_limit = limit,
                max_connections = allowed,
                "BATON_MAX_CONNECTIONS lowered to fit the open-file limit"
            );
            config.max_connections = u32::try_from(allowed).unwrap_or(u32::MAX);
        }
    }
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
    let addr = listener.local_addr()?;
    // The port actually bound (port 0 picks one): the default issuer names it.
    config.bind = addr;
    let state = AppState::new(config).await?;
    let background = spawn_background(&state);
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(
        %addr,
        issuer = %state.config.issuer(),
        backend = ?state.store.backend,
        "baton-server started"
    );
    let store = state.store.clone();
    let opts = serve::ServeOptions::new(&state);
    serve::serve(listener, app(state), opts.clone(), shutdown_signal()).await;
    background.abort();
    // Rotations already sent to the database finish (each with its audit event, in one
    // transaction); closing waits for them, within the same bound.
    if tokio::time::timeout(opts.shutdown_timeout, store.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still busy at shutdown");
    }
    tracing::info!("baton-server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
