//! The composition root: builds the state (`AppState::new`), the HTTP application (`router`),
//! the background tasks (`background`), and serves (`serve`), until a signal stops it. Also the
//! subcommands `migrate`, `keys rotate` and `admin` (`admin_cli`).

pub mod admin_cli;
pub mod background;
pub mod csrf;
pub mod middleware;
pub mod peers;
pub mod router;
pub mod serve;

use crate::clock::now_ms;
use crate::config::Config;
use crate::crypto::keys::Keys;
use crate::crypto::keystore;
use crate::crypto::password::PasswordHasher;
use crate::crypto::webauthn::RelyingParty;
use crate::idp::Providers;
use crate::limits::Limits;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::dpop_proofs::ReplayCache;
use crate::store::revocation::RevocationView;
use crate::store::rotator::Rotator;
use crate::store::{at_start, events_file, Schema, Store};
use std::sync::Arc;
use tokio::net::TcpListener;

impl AppState {
    /// Connects to the database, runs migrations, loads (or creates) keys and the revocation view.
    pub async fn new(mut config: Config) -> anyhow::Result<Self> {
        let schema = if config.migrate_on_start {
            Schema::Migrate
        } else {
            Schema::Require
        };
        let mut store =
            Store::connect_with(&config.database_url, config.request_timeout, schema).await?;
        if config.issuer.is_none() && config.public_url.is_none() {
            // No issuer set: the first start's listen address is the deployment's, stored, so
            // a restart on another port, or another instance, keeps accepting its tokens.
            let own = config.issuer();
            let stored = store
                .setting_or_insert("default_issuer", &own, now_ms())
                .await?;
            if stored != own {
                tracing::warn!(
                    issuer = %stored,
                    listen = %own,
                    "BATON_PUBLIC_URL is not set: the issuer stays the one the first start \
                     stored; set BATON_PUBLIC_URL (or BATON_ISSUER) to choose it"
                );
            }
            config.issuer = Some(stored);
        } else {
            config.issuer = Some(config.issuer());
        }
        if let Some(path) = &config.events_file {
            let sink = events_file::Sink::open(path).map_err(|e| {
                anyhow::anyhow!("BATON_EVENTS_FILE {}: cannot open: {e}", path.display())
            })?;
            background::reopen_on_sighup(sink.clone());
            store = store.with_events_file(sink);
        }
        let sealer = keystore::Sealer::from_settings(
            config.key_encryption_key.as_deref(),
            config.key_encryption_key_file.as_deref(),
        )?;
        let keys = Keys::load(&store, sealer, &config).await?;
        let ttl = config.access_ttl.as_millis() as i64;
        at_start(|| store.record_access_ttl(ttl, now_ms())).await?;
        let revoked = RevocationView::new(config.access_ttl);
        at_start(|| revoked.sync(&store)).await?;
        let password = Arc::new(PasswordHasher::new(config.hash_queue as usize));
        let mailer = Mailer::from_config(&config)?;
        let passkeys = RelyingParty::from_config(&config).map_err(|e| anyhow::anyhow!(e))?;
        let (providers, redirects) = identity_providers(&config)?;
        Ok(Self::from_parts(crate::state::Shared {
            password,
            limits: Arc::new(Limits::new(&config)),
            session_cache: Arc::default(),
            dpop_replay: Arc::new(ReplayCache::new(&store)),
            mailer,
            passkeys,
            providers,
            redirects,
            rotator: Rotator::spawn(store.clone()),
            config: Arc::new(config),
            store,
            keys: Arc::new(keys),
            revoked: Arc::new(revoked),
            metrics: Arc::new(Metrics::default()),
        }))
    }
}

/// The providers file and the return pages, checked together: providers without any page to
/// return to could never finish a sign-in.
fn identity_providers(
    config: &Config,
) -> anyhow::Result<(Providers, Vec<crate::rules::oauth::Allowed>)> {
    let specs = match &config.providers_file {
        Some(path) => crate::idp::file::load(path).map_err(|e| anyhow::anyhow!(e))?,
        None => Vec::new(),
    };
    let redirects =
        crate::rules::oauth::allowlist(config.redirect_allowlist.as_deref().unwrap_or(""))
            .map_err(|e| anyhow::anyhow!("BATON_REDIRECT_ALLOWLIST: {e}"))?;
    if !specs.is_empty() && redirects.is_empty() {
        anyhow::bail!(
            "BATON_PROVIDERS_FILE is set: set BATON_REDIRECT_ALLOWLIST too (the app pages a \
             provider sign-in may return to, e.g. https://app.example.com/signed-in)"
        );
    }
    Ok((Providers::new(specs)?, redirects))
}

/// `baton-server migrate`: applies the pending migrations; returns how many ran.
pub async fn migrate(config: &Config) -> anyhow::Result<usize> {
    let store =
        Store::connect_with(&config.database_url, config.request_timeout, Schema::AsIs).await?;
    let ran = store.migrate().await;
    store.close().await;
    ran
}

/// `baton-server keys rotate`: adds a signing key to the database the server uses.
/// The new key is published at once and signs from `BATON_KEY_PUBLISH_AHEAD` later: its kid
/// and that time (unix ms).
pub async fn rotate_keys(config: &Config) -> anyhow::Result<(String, i64)> {
    // The schema as the running instances have it: rotating never migrates.
    let store = Store::connect_with(
        &config.database_url,
        config.request_timeout,
        Schema::Require,
    )
    .await?;
    let sealer = keystore::Sealer::from_settings(
        config.key_encryption_key.as_deref(),
        config.key_encryption_key_file.as_deref(),
    )?;
    let signs_from = now_ms() + config.key_publish_ahead.as_millis() as i64;
    let kid = keystore::rotate(&store, &sealer, signs_from).await;
    store.close().await;
    Ok((kid?, signs_from))
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
    let background = background::spawn(&state);
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
    serve::serve(
        listener,
        router::app(state),
        opts.clone(),
        shutdown_signal(),
    )
    .await;
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
