//! SQLite's write-ahead log is copied back into the database file by a connection of its own,
//! beside the writer, instead of by the writer after a commit.
//!
//! By default the connection that commits past 1,000 pages of log copies them back before
//! its commit returns, with two `fsync`s: under load that stalled the single writer, and with
//! it every rotation queued behind it, for 5 to 13 ms a few times a second (most of the
//! refreshes slower than the 99th percentile). Here the server's connections never do it
//! (`wal_autocheckpoint = 0`) and this connection runs a passive checkpoint every
//! `INTERVAL`: it copies what readers no longer need while the writer goes on appending, and
//! the writer starts the log over once everything was copied back. An instance that stops
//! leaves no log behind: its last connection to close checkpoints it, as SQLite does.

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use std::time::{Duration, Instant};

/// How often the log is copied back: at a few thousand refreshes a second the log grows by
/// about a hundred pages in this time, so it stays a few hundred KB long.
const INTERVAL: Duration = Duration::from_millis(200);

/// A failure to checkpoint is logged at most this often (a full disk fails every tick).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The checkpointing task of one store; it ends with `close`, or when the last clone of the
/// store is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    pool: AnyPool,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Checkpointer {
    /// Opens the checkpointing connection to the SQLite file `url` (`single`: the options of
    /// the writer's one lasting connection) and starts its task.
    pub(super) async fn start(single: AnyPoolOptions, url: &str) -> anyhow::Result<Self> {
        let pool = super::open_or_explain(single, url).await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task_pool = pool.clone();
        tokio::spawn(async move {
            let pool = task_pool;
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut warned: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                if let Err(e) = checkpoint(&pool).await {
                    if pool.is_closed() {
                        break;
                    }
                    if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                        warned = Some(Instant::now());
                        tracing::warn!(error = %e, every = ?INTERVAL, "copying SQLite's write-ahead log into the database file failed; it is tried again");
                    }
                }
            }
            pool.close().await;
        });
        Ok(Self { pool, _stop: stop })
    }

    /// Closes the checkpointing connection (`Store::close`): the last of an instance's
    /// connections to close copies what is left of the log back and removes it.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// One passive checkpoint: copies what it can without waiting for readers or the writer.
async fn checkpoint(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await
        .map(drop)
}
