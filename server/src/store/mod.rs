//! Storage: one sqlx `Any` pool over SQLite or PostgreSQL, with the same SQL for both.
//!
//! Every SQL statement of the server is in this folder: one `impl Store` block per table (or
//! pair of tables that live together), in a file named after it. A write that spans tables is
//! one transaction in here, and its audit events are inserted in that transaction and
//! published (`BATON_EVENTS_FILE`) only after it commits. Connection, migrations and readiness
//! are here; group commit (`batch`, `rotator`) and the in-memory views of tables
//! (`session_cache`, `revocation`) beside them.

pub mod accounts;
pub mod admin_tokens;
pub mod audit;
pub(crate) mod batch;
pub(crate) mod checkpoint;
pub mod dpop_proofs;
pub mod event;
pub mod events_file;
pub mod identities;
pub mod keys;
pub mod limits;
pub mod mail_tokens;
pub mod mfa;
pub mod passkeys;
pub mod revocation;
pub mod rotator;
pub mod session_cache;
pub mod sessions;
pub mod settings;
pub mod users;

use audit::insert_events;
pub use audit::AuditEvent;
pub use event::NewEvent;
pub use keys::KeyRow;
pub use sessions::{OwnedRotation, RotationLimit, SessionRow};
pub use users::UserRow;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// Reads. On SQLite, WAL lets many readers run beside the one writer.
    pool: AnyPool,
    /// Writes. On SQLite a single connection: writers queue here instead of colliding on the
    /// file lock and sleeping in SQLite's busy handler. On PostgreSQL the same pool as reads.
    writer: AnyPool,
    pub backend: Backend,
    /// An in-memory SQLite database: its one connection is the database.
    memory: bool,
    /// The last readiness probe: its time and verdict, shared by concurrent callers.
    probe: Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>,
    /// `BATON_EVENTS_FILE`: committed events are handed to it (see `events_file`).
    events_out: Option<events_file::Sink>,
    /// On a SQLite file, the connection that copies the write-ahead log back (`checkpoint`).
    checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

/// A readiness verdict younger than this is reused, so a flood of probes costs the writer
/// at most a few probes a second.
const PROBE_REUSE: Duration = Duration::from_millis(200);

/// How long a starting server waits for its database to open: one that is still starting
/// (refused connections), or slower to open a connection than the requests' connection wait
/// (40 % of `BATON_REQUEST_TIMEOUT`), is tried again until then.
const OPEN_WAIT: Duration = Duration::from_secs(30);

/// Opens a pool, trying again while the database cannot be reached yet (`OPEN_WAIT`); wrong
/// credentials, an unknown database and the like fail at once.
async fn open(opts: AnyPoolOptions, url: &str) -> Result<AnyPool, sqlx::Error> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut said_at: Option<Instant> = None;
    loop {
        match opts.clone().connect(url).await {
            Ok(pool) => return Ok(pool),
            Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
                if started.elapsed() + pause < OPEN_WAIT =>
            {
                if said_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                    tracing::warn!(error = %e, database = %where_is(url), "the database cannot be opened yet: trying again");
                    said_at = Some(Instant::now());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn open_or_explain(opts: AnyPoolOptions, url: &str) -> anyhow::Result<AnyPool> {
    match open(opts, url).await {
        Ok(pool) => Ok(pool),
        Err(e) => Err(explain(url, e).await),
    }
}

/// A SQLite file in a directory that does not exist cannot be created: said as such, with the
/// path, instead of SQLite's "unable to open database file".
fn sqlite_directory_exists(url: &str) -> anyhow::Result<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => anyhow::bail!(
            "cannot open the database (SQLite file {}): the directory {} does not exist",
            path.display(),
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Why the database cannot be opened, in words an operator can act on: where it was looked
/// for, and what the connection attempt itself said (a pool only says it timed out).
async fn explain(url: &str, e: sqlx::Error) -> anyhow::Error {
    let place = where_is(url);
    let cause = match e {
        sqlx::Error::PoolTimedOut => {
            // Ask once without the pool, for the reason the connections failed.
            use sqlx::Connection as _;
            match tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(url)).await {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(c)) => {
                    let _ = c.close().await;
                    "connections took too long to open".to_owned()
                }
                Err(_) => "no connection could be opened in 5 s".to_owned(),
            }
        }
        e => e.to_string(),
    };
    anyhow::anyhow!("cannot open the database {place}: {cause}")
}

/// The database a URL names, without its password: `PostgreSQL at host:port, database d`, or
/// `SQLite file PATH`.
fn where_is(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        return format!("(SQLite file {path})");
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
    let db = db.split('?').next().unwrap_or(db);
    let host = if host.is_empty() { "localhost" } else { host };
    format!("(PostgreSQL at {host}, database {db:?})")
}

/// What connecting does to the database schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply the pending migrations.
    Migrate,
    /// Refuse a schema that is behind this build.
    Require,
    /// Nothing (`baton-server migrate` looks first, then migrates).
    AsIs,
}

impl Store {
    /// Connects, creating the SQLite file if needed, and runs the migrations.
    pub async fn connect(url: &str, request_timeout: Duration) -> anyhow::Result<Self> {
        Self::connect_with(url, request_timeout, Schema::Migrate).await
    }

    /// Connects, and does to the schema what `schema` says.
    pub async fn connect_with(
        url: &str,
        request_timeout: Duration,
        schema: Schema,
    ) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else {
            anyhow::bail!(
                "unsupported database URL (expected sqlite://PATH, sqlite::memory: or postgres://...)"
            );
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        // Waiting for a connection and waiting for a lock each give up at 40 % of the request
        // timeout, so a blocked statement fails (503) before the request's deadline instead of
        // completing after the client was told it failed.
        let busy_ms = (request_timeout.as_millis() * 2 / 5).clamp(1, 30_000) as i64;
        let acquire_timeout = Duration::from_millis(busy_ms as u64);
        let opts = AnyPoolOptions::new()
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // The log is copied back by a connection of its own (`checkpoint`).
                        conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute(format!("PRAGMA busy_timeout = {busy_ms}").as_str())
                            .await?;
                    } else {
                        // A hung query must not outlive the request that waits for it.
                        conn.execute(format!("SET statement_timeout = {busy_ms}").as_str())
                            .await?;
                    }
                    Ok(())
                })
            });
        let single = |o: AnyPoolOptions| {
            o.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        };
        let mut checkpointer = None;
        let (pool, writer) = match (backend, memory) {
            // Each connection to `:memory:` is its own database: exactly one, forever.
            (Backend::Sqlite, true) => {
                let p = open_or_explain(single(opts), &url).await?;
                (p.clone(), p)
            }
            (Backend::Sqlite, false) => {
                sqlite_directory_exists(&url)?;
                let writer = open_or_explain(single(opts.clone()), &url).await?;
                checkpointer = Some(Arc::new(
                    checkpoint::Checkpointer::start(single(opts.clone()), &url).await?,
                ));
                (
                    open_or_explain(opts.max_connections(8), &url).await?,
                    writer,
                )
            }
            (Backend::Postgres, _) => {
                let p = open_or_explain(opts.max_connections(32), &url).await?;
                (p.clone(), p)
            }
        };
        let store = Self {
            pool,
            writer,
            backend,
            memory,
            probe: Arc::default(),
            events_out: None,
            checkpointer,
        };
        if schema == Schema::Migrate {
            store.migrate().await?;
        } else if schema == Schema::Require {
            let pending = store.pending_migrations().await?;
            if pending > 0 {
                anyhow::bail!(
                    "the database schema is behind this baton-server ({pending} migration(s) \
                     pending): run `baton-server migrate` with the same settings, or start with \
                     BATON_MIGRATE_ON_START=true"
                );
            }
        }
        Ok(store)
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        }
    }

    /// Runs the pending migrations; returns how many ran.
    ///
    /// They run on a connection of their own, outside the pools and their time limits (on
    /// PostgreSQL without the requests' statement timeout): building an index on a large
    /// table, or waiting while another instance migrates (the migrator's lock), takes as long
    /// as it takes. The connection is closed afterwards. An in-memory SQLite database has only
    /// its one connection: migrated on it.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        if self.memory {
            let mut conn = self.writer.acquire().await?;
            let before = self.pending_on(&mut conn).await?;
            self.migrator().run(&mut *conn).await?;
            return Ok(before);
        }
        let mut conn = self.migration_connection().await?;
        let ran = async {
            let before = self.pending_on(&mut conn).await?;
            self.migrator().run(&mut conn).await?;
            anyhow::Ok(before)
        }
        .await;
        let _ = sqlx::Connection::close(conn).await;
        ran
    }

    /// A connection for migrations alone (see `migrate`).
    async fn migration_connection(&self) -> anyhow::Result<AnyConnection> {
        use sqlx::ConnectOptions as _;
        let opts = self.writer.connect_options();
        let mut conn = tokio::time::timeout(OPEN_WAIT, opts.connect())
            .await
            .map_err(|_| anyhow::anyhow!("the database did not open a connection in 30 s"))??;
        match self.backend {
            Backend::Postgres => {
                conn.execute("SET statement_timeout = 0").await?;
            }
            Backend::Sqlite => {
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 30000").await?;
            }
        }
        Ok(conn)
    }

    /// How many of this build's migrations the database has not applied.
    pub async fn pending_migrations(&self) -> anyhow::Result<usize> {
        let mut conn = self.writer.acquire().await?;
        self.pending_on(&mut conn).await
    }

    async fn pending_on(&self, conn: &mut AnyConnection) -> anyhow::Result<usize> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&mut *conn)
                .await
            {
                Ok(v) => v,
                // No migration table yet: nothing applied (SQLite says "no such table",
                // PostgreSQL 42P01).
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("42P01")
                        || e.message().contains("no such table") =>
                {
                    Vec::new()
                }
                Err(e) => return Err(e.into()),
            };
        Ok(self
            .migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
        if let Some(c) = &self.checkpointer {
            c.close().await;
        }
    }

    /// Whether the database can serve requests. On SQLite this takes (and releases) the write
    /// lock, so a file whose write lock another process holds reads as not ready.
    ///
    /// The probe runs in a task of its own: a caller that gives up (a client hanging up, a load
    /// balancer's probe timeout) cannot stop it halfway and hand the single writer connection
    /// back inside an open transaction. Concurrent callers share one probe.
    pub async fn ready(&self) -> bool {
        let store = self.clone();
        tokio::spawn(async move {
            let mut last = store.probe.clone().lock_owned().await;
            if let Some((at, ok)) = *last {
                if at.elapsed() < PROBE_REUSE {
                    return ok;
                }
            }
            let ok = match store.probe_once().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "readiness probe failed");
                    false
                }
            };
            *last = Some((Instant::now(), ok));
            ok
        })
        .await
        .unwrap_or(false)
    }

    async fn probe_once(&self) -> Result<(), sqlx::Error> {
        match self.backend {
            Backend::Postgres => sqlx::query("SELECT 1")
                .execute(&self.writer)
                .await
                .map(|_| ()),
            Backend::Sqlite => {
                // A sqlx transaction, so even a dropped probe is rolled back; the DELETE matches
                // no row but must take the write lock.
                let mut tx = self.begin().await?;
                sqlx::query("DELETE FROM rate_hits WHERE id < 0")
                    .execute(&mut *tx)
                    .await?;
                tx.rollback().await
            }
        }
    }

    /// A transaction on the writer that a caller given up halfway cannot leave open. sqlx
    /// arms its rollback guard only once `BEGIN` is done: on PostgreSQL once the server has
    /// answered it, on SQLite with a statement of our own only after a further check that
    /// awaits the connection. A request dropped in between (a client hanging up) would hand
    /// its connection back to the pool inside a transaction, where the next borrower's
    /// statements would run and stay uncommitted (or, on SQLite, the next `BEGIN` fail). So
    /// the `BEGIN` runs in a task of its own, which finishes it whatever the caller does; a
    /// transaction nobody takes is then rolled back as usual.
    ///
    /// On SQLite the transaction is `BEGIN IMMEDIATE`: the write lock is taken (waiting up to
    /// the busy timeout) before anything is read. A transaction that read first and wrote
    /// afterwards would be refused at once, without waiting, if another instance on the same
    /// file had committed in between.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let writer = self.writer.clone();
        let sqlite = self.backend == Backend::Sqlite;
        tokio::spawn(async move {
            if sqlite {
                writer.begin_with("BEGIN IMMEDIATE").await
            } else {
                writer.begin().await
            }
        })
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?
    }

    /// Sends every committed audit event to `BATON_EVENTS_FILE` as well.
    pub fn with_events_file(mut self, sink: events_file::Sink) -> Self {
        self.events_out = Some(sink);
        self
    }

    pub fn events_file(&self) -> Option<&events_file::Sink> {
        self.events_out.as_ref()
    }

    /// Events just committed: to the events file, if there is one.
    fn published(&self, events: &[&NewEvent]) {
        if let Some(sink) = &self.events_out {
            sink.publish(events);
        }
    }
}

/// One SQL fragment per row of a multi-row statement: `row(["$1", ...])` receives one row's
/// placeholders (`cols` per row, numbered across rows).
pub(crate) fn placeholder_rows(
    rows: usize,
    cols: usize,
    row: impl Fn(&[String]) -> String,
) -> Vec<String> {
    (0..rows)
        .map(|i| {
            let p: Vec<String> = (1..=cols).map(|c| format!("${}", i * cols + c)).collect();
            row(&p)
        })
        .collect()
}

/// `sqlite://baton.db` → create the file when missing.
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

impl Store {
    /// Commits `tx` with `events` inserted in it, then publishes them (`BATON_EVENTS_FILE`):
    /// the end of every write that records what it did.
    pub(crate) async fn commit_with(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        events: &[&NewEvent],
    ) -> Result<(), sqlx::Error> {
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        self.published(events);
        Ok(())
    }
}

/// A database step of the start, tried again while the database is only slow to answer (a
/// busy machine, a connection still opening: the pools give up at 40 % of the request timeout),
/// for up to 30 s; any other error stops the start at once.
pub async fn at_start<T, F, Fut>(mut step: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        match step().await {
            Err(e)
                if crate::error::is_unavailable(&e)
                    && started.elapsed() < std::time::Duration::from_secs(30) =>
            {
                tracing::debug!(error = %e, "the database is slow at start: trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_named_without_its_password() {
        assert_eq!(
            where_is("postgres://baton:s3cret@db.internal:5433/auth?sslmode=require"),
            "(PostgreSQL at db.internal:5433, database \"auth\")"
        );
        assert_eq!(
            where_is("sqlite:///var/lib/baton/baton.db?mode=rwc"),
            "(SQLite file /var/lib/baton/baton.db)"
        );
    }

    #[tokio::test]
    async fn an_unreachable_postgresql_says_where_and_why() {
        sqlx::any::install_default_drivers();
        // A closed loopback port: refused at once.
        let url = "postgres://baton:s3cret@127.0.0.1:1/auth";
        let e = explain(url, sqlx::Error::PoolTimedOut).await.to_string();
        assert!(e.contains("127.0.0.1:1") && e.contains("\"auth\""), "{e}");
        assert!(e.to_lowercase().contains("refused"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
