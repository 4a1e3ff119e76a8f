//! `server_keys` (sealed secrets, see `crypto::keystore`) and `access_ttls` (the access-token
//! lifetimes instances issue with, which bound how long revocations and retired keys matter).

use super::Store;
use sqlx::Row;

impl Store {
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
    /// changed meanwhile. On SQLite the plain form does not stay behind in the file: the
    /// freed bytes are zeroed (`secure_delete`) and the write-ahead log is checkpointed and
    /// truncated at once, instead of holding the plain page until a checkpoint hours later.
    /// (PostgreSQL keeps the old row version until VACUUM: see docs/operations.md.)
    pub async fn reseal_key(&self, name: &str, from: &str, to: &str) -> Result<bool, sqlx::Error> {
        let mut conn = self.writer.acquire().await?;
        let sqlite = self.backend == super::Backend::Sqlite;
        if sqlite {
            sqlx::query("PRAGMA secure_delete = ON")
                .execute(&mut *conn)
                .await?;
        }
        let done =
            sqlx::query("UPDATE server_keys SET secret = $1 WHERE name = $2 AND secret = $3")
                .bind(to)
                .bind(name)
                .bind(from)
                .execute(&mut *conn)
                .await;
        if sqlite {
            let off = sqlx::query("PRAGMA secure_delete = OFF")
                .execute(&mut *conn)
                .await;
            let done = done?;
            off?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await?;
            return Ok(done.rows_affected() == 1);
        }
        Ok(done?.rows_affected() == 1)
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
