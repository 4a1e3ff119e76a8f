//! Storage: one sqlx `Any` pool over SQLite or PostgreSQL, with the same SQL for both.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Executor, Row};
use std::collections::HashSet;
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
    events_out: Option<crate::events_file::Sink>,
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
                    tracing::warn!(error = %e, "the database cannot be opened yet: trying again");
                    said_at = Some(Instant::now());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    /// The user proved they receive mail at `email` (see `recovery`).
    pub email_verified: bool,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub generation: i64,
    pub nonce: String,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub remember_me: bool,
    pub cookie_transport: bool,
    pub created_at: i64,
    pub last_used_at: i64,
    pub rotated_at: i64,
    pub rotated_by_device: Option<String>,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// SHA-256 (hex) of the `Idempotency-Key` of the request that made the last rotation.
    pub rotated_by_key: Option<String>,
    /// The thumbprint of the DPoP key the session is bound to (see `dpop`).
    pub dpop_jkt: Option<String>,
}

impl SessionRow {
    /// The session ends at the earlier of its idle and absolute deadlines.
    pub fn ends_at(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub severity: String,
    pub session_id: Option<String>,
    pub device_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

/// A new audit event.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub user_id: Option<String>,
    pub at: i64,
    pub kind: &'static str,
    pub severity: &'static str,
    pub session_id: Option<String>,
    pub device_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

const USER_COLUMNS: &str = "id, email, password_hash, created_at, email_verified_at";

const SESSION_COLUMNS: &str = "id, user_id, generation, nonce, device_id, user_agent, ip, \
    remember_me, cookie_transport, created_at, last_used_at, rotated_at, rotated_by_device, \
    idle_expires_at, absolute_expires_at, revoked_at, revoked_reason, rotated_by_key, dpop_jkt";

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
        let (pool, writer) = match (backend, memory) {
            // Each connection to `:memory:` is its own database: exactly one, forever.
            (Backend::Sqlite, true) => {
                let p = open(single(opts), &url).await?;
                (p.clone(), p)
            }
            (Backend::Sqlite, false) => {
                let writer = open(single(opts.clone()), &url).await?;
                (open(opts.max_connections(8), &url).await?, writer)
            }
            (Backend::Postgres, _) => {
                let p = open(opts.max_connections(32), &url).await?;
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
                let mut tx = self.writer.begin().await?;
                sqlx::query("DELETE FROM rate_hits WHERE id < 0")
                    .execute(&mut *tx)
                    .await?;
                tx.rollback().await
            }
        }
    }

    // ---- users ---------------------------------------------------------------------------

    /// Inserts a user with its event, in one transaction; `Ok(false)` when the email is taken.
    pub async fn insert_user(&self, u: &UserRow, event: &NewEvent) -> Result<bool, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at, failed_logins) \
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Ok(false),
            Err(e) => return Err(e),
        }
        insert_events(&mut tx, &[event]).await?;
        tx.commit().await?;
        self.published(&[event]);
        Ok(true)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| user_row(&r))
        .transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_row(&r))
            .transpose()
    }

    /// Counts an attempt of `source` on `user_id` before its password is checked (see
    /// `lockout`); `false` when the source is locked or already has `limit` attempts counted.
    /// Locks that ended before `forget_before` no longer count towards longer locks.
    pub async fn reserve_login_attempt(
        &self,
        user_id: &str,
        source: &str,
        limit: i64,
        now: i64,
        forget_before: i64,
        abandoned_before: i64,
    ) -> Result<bool, sqlx::Error> {
        // Full without a lock and untouched since `abandoned_before`: the attempts that filled
        // it were never settled (a crash); they are not failures, and counting starts anew.
        let counted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO login_failures (user_id, source, failures, locks, locked_until, \
             updated_at) VALUES ($1, $2, 1, 0, NULL, $3) \
             ON CONFLICT (user_id, source) DO UPDATE SET \
             failures = CASE WHEN login_failures.failures >= $4 \
                 AND login_failures.locked_until IS NULL \
                 AND login_failures.updated_at < $6 THEN 1 \
                 ELSE login_failures.failures + 1 END, \
             updated_at = $3, \
             locks = CASE WHEN login_failures.locked_until IS NOT NULL \
                 AND login_failures.locked_until < $5 THEN 0 ELSE login_failures.locks END \
             WHERE (login_failures.failures < $4 OR (login_failures.locked_until IS NULL \
                 AND login_failures.updated_at < $6)) \
             AND (login_failures.locked_until IS NULL OR login_failures.locked_until <= $3) \
             RETURNING failures",
        )
        .bind(user_id)
        .bind(source)
        .bind(now)
        .bind(limit)
        .bind(forget_before)
        .bind(abandoned_before)
        .fetch_optional(&self.writer)
        .await?;
        Ok(counted.is_some())
    }

    /// When the lock of `source` on `user_id` ends, if it holds at `now`.
    pub async fn login_locked_until(
        &self,
        user_id: &str,
        source: &str,
        now: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let until: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT locked_until FROM login_failures WHERE user_id = $1 AND source = $2",
        )
        .bind(user_id)
        .bind(source)
        .fetch_optional(&self.writer)
        .await?;
        Ok(until.flatten().filter(|t| *t > now))
    }

    /// Gives back an attempt counted by `reserve_login_attempt` whose password was never
    /// checked (the server could not check it).
    pub async fn release_login_attempt(
        &self,
        user_id: &str,
        source: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE login_failures SET failures = failures - 1 \
             WHERE user_id = $1 AND source = $2 AND failures > 0",
        )
        .bind(user_id)
        .bind(source)
        .execute(&self.writer)
        .await
        .map(|_| ())
    }

    /// A successful login clears its source's counters.
    pub async fn clear_login_failures(
        &self,
        user_id: &str,
        source: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_failures WHERE user_id = $1 AND source = $2")
            .bind(user_id)
            .bind(source)
            .execute(&self.writer)
            .await
            .map(|_| ())
    }

    /// After a failed attempt: locks the source once `limit` failures are counted. The n-th
    /// lock in a row lasts `durations[n - 1]` (the last one beyond). Returns (n, end) when
    /// this call locked.
    pub async fn lock_if_reached(
        &self,
        user_id: &str,
        source: &str,
        limit: i64,
        now: i64,
        durations: &[i64],
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let arms: String = (0..durations.len().saturating_sub(1))
            .map(|i| format!(" WHEN {i} THEN ${}", i + 5))
            .collect();
        let sql = format!(
            "UPDATE login_failures SET failures = 0, locks = locks + 1, updated_at = $3, \
             locked_until = $3 + CASE locks{arms} ELSE ${} END \
             WHERE user_id = $1 AND source = $2 AND failures >= $4 \
             AND (locked_until IS NULL OR locked_until <= $3) RETURNING locks, locked_until",
            durations.len() + 4
        );
        let mut q = sqlx::query(&sql)
            .bind(user_id)
            .bind(source)
            .bind(now)
            .bind(limit);
        for d in durations {
            q = q.bind(*d);
        }
        q.fetch_optional(&self.writer)
            .await?
            .map(|r| Ok((r.try_get("locks")?, r.try_get("locked_until")?)))
            .transpose()
    }

    // ---- sessions ------------------------------------------------------------------------

    /// Inserts a session with its events (sign-in, new device), in one transaction.
    pub async fn insert_session(
        &self,
        s: &SessionRow,
        events: &[&NewEvent],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, generation, nonce, device_id, user_agent, ip, \
             remember_me, cookie_transport, created_at, last_used_at, rotated_at, \
             rotated_by_device, idle_expires_at, absolute_expires_at, dpop_jkt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.generation)
        .bind(&s.nonce)
        .bind(&s.device_id)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .bind(i64::from(s.remember_me))
        .bind(i64::from(s.cookie_transport))
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.rotated_at)
        .bind(&s.rotated_by_device)
        .bind(s.idle_expires_at)
        .bind(s.absolute_expires_at)
        .bind(&s.dpop_jkt)
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        self.published(events);
        Ok(())
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| session_row(&r))
        .transpose()
    }

    /// Many rotations (group commit) and their `token_refreshed` events in one transaction:
    /// a rotation is never stored without its event, nor an event without its rotation.
    /// Returns the ids that rotated; each session id may appear once.
    pub async fn rotate_batch(
        &self,
        batch: &[OwnedRotation],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let rows = placeholder_rows(batch.len(), 8, |p| {
            format!(
                "SELECT CAST({} AS TEXT) AS id, CAST({} AS BIGINT) AS gen, \
                 CAST({} AS BIGINT) AS now, CAST({} AS TEXT) AS dev, \
                 CAST({} AS BIGINT) AS idle, CAST({} AS TEXT) AS ip, CAST({} AS TEXT) AS ua, \
                 CAST({} AS TEXT) AS rkey",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
            )
        })
        .join(" UNION ALL ");
        let sql = format!(
            "UPDATE sessions SET generation = sessions.generation + 1, rotated_at = v.now, \
             rotated_by_device = v.dev, last_used_at = v.now, idle_expires_at = v.idle, \
             ip = v.ip, user_agent = v.ua, rotated_by_key = v.rkey \
             FROM ({rows}) AS v \
             WHERE sessions.id = v.id AND sessions.generation = v.gen \
             AND sessions.revoked_at IS NULL AND sessions.idle_expires_at > v.now \
             AND sessions.absolute_expires_at > v.now RETURNING sessions.id"
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for r in batch {
            q = q
                .bind(&r.session_id)
                .bind(r.generation)
                .bind(r.now)
                .bind(&r.device_id)
                .bind(r.idle_expires_at)
                .bind(&r.ip)
                .bind(&r.user_agent)
                .bind(&r.key);
        }
        let mut tx = self.writer.begin().await?;
        let rotated: HashSet<String> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let events: Vec<&NewEvent> = batch
            .iter()
            .filter(|r| rotated.contains(&r.session_id))
            .map(|r| &r.event)
            .collect();
        insert_events(&mut tx, &events).await?;
        tx.commit().await?;
        self.published(&events);
        Ok(rotated)
    }

    /// Ends a session for good, with its event, in one transaction; `false` (and no event)
    /// when it had already ended.
    pub async fn revoke(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            insert_events(&mut tx, &[event]).await?;
            tx.commit().await?;
            self.published(&[event]);
        }
        Ok(done)
    }

    /// Ends every live session of a user, with the event `event(count)`, in one transaction;
    /// returns their ids.
    pub async fn revoke_all(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        event: impl FnOnce(usize) -> NewEvent,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE user_id = $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(reason)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let e = event(ids.len());
        insert_events(&mut tx, &[&e]).await?;
        tx.commit().await?;
        self.published(&[&e]);
        Ok(ids)
    }

    /// The user's sessions that are neither revoked nor past their end, newest first.
    pub async fn live_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
             AND idle_expires_at > $2 AND absolute_expires_at > $2 ORDER BY created_at DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session_row)
        .collect()
    }

    /// Sessions revoked at or after `since` (for the revocation view of every instance).
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("revoked_at")?)))
            .collect()
    }

    pub async fn count_live_sessions(&self, now: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL \
             AND idle_expires_at > $1 AND absolute_expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
    }

    /// Whether `device_id` was ever used by one of the user's sessions.
    pub async fn device_known(&self, user_id: &str, device_id: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Whether the user has any session on record (live or ended, within the retention).
    pub async fn has_sessions(&self, user_id: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Deletes sessions that ended before `cutoff` and audit events older than `audit_cutoff`.
    pub async fn purge(&self, cutoff: i64, audit_cutoff: i64) -> Result<(u64, u64), sqlx::Error> {
        let s = sqlx::query(
            "DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < $1) \
             OR idle_expires_at < $1 OR absolute_expires_at < $1",
        )
        .bind(cutoff)
        .execute(&self.writer)
        .await?;
        let a = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(audit_cutoff)
            .execute(&self.writer)
            .await?;
        Ok((s.rows_affected(), a.rows_affected()))
    }

    // ---- rate limits ---------------------------------------------------------------------

    pub async fn insert_hit(&self, key: &str, at: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("INSERT INTO rate_hits (key, at) VALUES ($1, $2) RETURNING id")
            .bind(key)
            .bind(at)
            .fetch_one(&self.writer)
            .await
    }

    /// Hits of `key` after `since` with an id below `before`: their count and the oldest time.
    pub async fn hits_before(
        &self,
        key: &str,
        since: i64,
        before: i64,
    ) -> Result<(i64, Option<i64>), sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM rate_hits \
             WHERE key = $1 AND at > $2 AND id < $3",
        )
        .bind(key)
        .bind(since)
        .bind(before)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("oldest")?))
    }

    pub async fn delete_hit(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM rate_hits WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map(|_| ())
    }

    /// Records DPoP proofs (`id`: a hash of the key and `jti`, see `dpop::ReplayCache`), each
    /// until its `expires_at`, in one statement; returns the ids that were new (the others were
    /// recorded before, by this instance or another). The ids must be distinct.
    pub async fn dpop_proofs_first_use(
        &self,
        proofs: &[(String, i64)],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let values = placeholder_rows(proofs.len(), 2, |p| format!("({}, {})", p[0], p[1]));
        let sql = format!(
            "INSERT INTO dpop_proofs (id, expires_at) VALUES {} ON CONFLICT (id) DO NOTHING \
             RETURNING id",
            values.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for (id, expires_at) in proofs {
            q = q.bind(id).bind(expires_at);
        }
        Ok(q.fetch_all(&self.writer).await?.into_iter().collect())
    }

    /// The users whose address was verified at `since` or later, with when, oldest first;
    /// read `page` rows at a time, so that no burst of verifications is cut off.
    pub async fn verified_since(
        &self,
        since: i64,
        page: u32,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let page = page.max(1);
        let mut all: Vec<(String, i64)> = Vec::new();
        loop {
            // Keyset paging on (verified at, id): one row after the last row read.
            let (at, id) = all
                .last()
                .map_or((since, ""), |(id, at)| (*at, id.as_str()));
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT id, email_verified_at FROM users \
                 WHERE email_verified_at > $1 OR (email_verified_at = $1 AND id > $2) \
                 ORDER BY email_verified_at, id LIMIT $3",
            )
            .bind(at)
            .bind(id)
            .bind(i64::from(page))
            .fetch_all(&self.pool)
            .await?;
            let full = rows.len() == page as usize;
            all.extend(rows);
            if !full {
                return Ok(all);
            }
        }
    }

    /// DPoP proofs remembered now.
    pub async fn dpop_proofs_remembered(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM dpop_proofs")
            .fetch_one(&self.pool)
            .await
    }

    /// Drops DPoP proofs whose window has passed.
    pub async fn purge_dpop_proofs(&self, now: i64) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM dpop_proofs WHERE expires_at < $1")
            .bind(now)
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected())
    }

    /// Drops rate-limit rows older than every window.
    pub async fn purge_hits(&self, before: i64) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM rate_hits WHERE at < $1")
            .bind(before)
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected())
    }

    /// The write pool, for an area module with queries of its own (`otp`).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    // ---- audit ---------------------------------------------------------------------------

    /// Sends every committed audit event to `BATON_EVENTS_FILE` as well.
    pub fn with_events_file(mut self, sink: crate::events_file::Sink) -> Self {
        self.events_out = Some(sink);
        self
    }

    pub fn events_file(&self) -> Option<&crate::events_file::Sink> {
        self.events_out.as_ref()
    }

    /// Events just committed: to the events file, if there is one.
    fn published(&self, events: &[&NewEvent]) {
        if let Some(sink) = &self.events_out {
            sink.publish(events);
        }
    }

    pub async fn insert_event(&self, e: &NewEvent) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_events (user_id, at, type, severity, session_id, device_id, ip, \
             detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.user_id)
        .bind(e.at)
        .bind(e.kind)
        .bind(e.severity)
        .bind(&e.session_id)
        .bind(&e.device_id)
        .bind(&e.ip)
        .bind(&e.detail)
        .execute(&self.writer)
        .await?;
        self.published(&[e]);
        Ok(())
    }

    pub async fn events_for_user(
        &self,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<EventRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, at, type, severity, session_id, device_id, ip, detail FROM audit_events \
             WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("type")?,
                    severity: r.try_get("severity")?,
                    session_id: r.try_get("session_id")?,
                    device_id: r.try_get("device_id")?,
                    ip: r.try_get("ip")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Counts a user's events of one type since `since` (abuse heuristics).
    pub async fn count_events(
        &self,
        user_id: &str,
        kind: &str,
        since: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE user_id = $1 AND type = $2 AND at >= $3",
        )
        .bind(user_id)
        .bind(kind)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    /// Distinct IPs of a user's events of one type since `since`.
    pub async fn count_distinct_ips(
        &self,
        user_id: &str,
        kind: &str,
        since: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(DISTINCT ip) FROM audit_events \
             WHERE user_id = $1 AND type = $2 AND at >= $3",
        )
        .bind(user_id)
        .bind(kind)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    // ---- access-token lifetimes -------------------------------------------------------------

    /// Records that this instance issues access tokens living `ttl_ms` (at start, then
    /// periodically).
    pub async fn record_access_ttl(&self, ttl_ms: i64, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO access_ttls (ttl_ms, seen_at) VALUES ($1, $2) \
             ON CONFLICT (ttl_ms) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(ttl_ms)
        .bind(now)
        .execute(&self.writer)
        .await
        .map(|_| ())
    }

    /// The longest access-token lifetime any instance issued with recently enough that such a
    /// token may still be valid.
    pub async fn longest_live_access_ttl(&self, now: i64) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT MAX(ttl_ms) FROM access_ttls WHERE seen_at + ttl_ms > $1")
            .bind(now)
            .fetch_one(&self.pool)
            .await
    }

    // ---- keys ----------------------------------------------------------------------------

    /// Stores a key unless one named `name` exists; `true` when this call stored it.
    pub async fn insert_key(
        &self,
        name: &str,
        kid: &str,
        secret: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO server_keys (name, kid, secret, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(kid)
        .bind(secret)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every stored key, oldest first (read on the writer: always the latest).
    pub async fn keys(&self) -> Result<Vec<KeyRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, kid, secret, created_at FROM server_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyRow {
                    name: r.try_get("name")?,
                    kid: r.try_get("kid")?,
                    secret: r.try_get("secret")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Replaces a stored secret by another form of it (sealing a plain key); `false` when it
    /// changed meanwhile.
    pub async fn reseal_key(&self, name: &str, from: &str, to: &str) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE server_keys SET secret = $1 WHERE name = $2 AND secret = $3")
                .bind(to)
                .bind(name)
                .bind(from)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A row of `server_keys`: the secret as stored (sealed or plain, see `keystore`).
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub name: String,
    pub kid: String,
    pub secret: String,
    pub created_at: i64,
}

/// Inserts events inside a transaction, with few statements.
async fn insert_events(conn: &mut AnyConnection, events: &[&NewEvent]) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(100) {
        let rows = placeholder_rows(chunk.len(), 8, |p| format!("({})", p.join(", ")));
        let sql = format!(
            "INSERT INTO audit_events (user_id, at, type, severity, session_id, device_id, ip, \
             detail) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(&e.user_id)
                .bind(e.at)
                .bind(e.kind)
                .bind(e.severity)
                .bind(&e.session_id)
                .bind(&e.device_id)
                .bind(&e.ip)
                .bind(&e.detail);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One SQL fragment per row of a multi-row statement: `row(["$1", ...])` receives one row's
/// placeholders (`cols` per row, numbered across rows).
fn placeholder_rows(rows: usize, cols: usize, row: impl Fn(&[String]) -> String) -> Vec<String> {
    (0..rows)
        .map(|i| {
            let p: Vec<String> = (1..=cols).map(|c| format!("${}", i * cols + c)).collect();
            row(&p)
        })
        .collect()
}

/// A rotation that can wait in a queue, with the event that records it.
#[derive(Debug, Clone)]
pub struct OwnedRotation {
    pub session_id: String,
    pub generation: i64,
    pub now: i64,
    pub device_id: Option<String>,
    pub idle_expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// SHA-256 (hex) of the request's `Idempotency-Key`.
    pub key: Option<String>,
    pub event: NewEvent,
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

fn user_row(r: &AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        created_at: r.try_get("created_at")?,
        email_verified: r.try_get::<Option<i64>, _>("email_verified_at")?.is_some(),
    })
}

fn session_row(r: &AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        generation: r.try_get("generation")?,
        nonce: r.try_get("nonce")?,
        device_id: r.try_get("device_id")?,
        user_agent: r.try_get("user_agent")?,
        ip: r.try_get("ip")?,
        remember_me: r.try_get::<i64, _>("remember_me")? != 0,
        cookie_transport: r.try_get::<i64, _>("cookie_transport")? != 0,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        rotated_at: r.try_get("rotated_at")?,
        rotated_by_device: r.try_get("rotated_by_device")?,
        idle_expires_at: r.try_get("idle_expires_at")?,
        absolute_expires_at: r.try_get("absolute_expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revoked_reason: r.try_get("revoked_reason")?,
        rotated_by_key: r.try_get("rotated_by_key")?,
        dpop_jkt: r.try_get("dpop_jkt")?,
    })
}
