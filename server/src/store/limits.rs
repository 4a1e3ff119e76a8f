//! `login_failures` (the lockout counters, see `rules::lockout`) and `rate_hits` (the sliding
//! windows of `limits`).

use super::Store;
use sqlx::Row;

impl Store {
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

    /// Counts an attempt of `key` at `at`: its row id, and how many attempts of `key` after
    /// `since` were counted before it (a lower id), with the oldest one's time.
    ///
    /// On SQLite one statement does both: its single writer runs the statements one after
    /// the other, so every earlier attempt is committed when this one counts. On PostgreSQL
    /// the count is a statement of its own after the insert committed: a statement sees only
    /// what was committed when it started, so counting in the insert itself would let a burst
    /// of concurrent attempts miss each other.
    pub async fn insert_hit(
        &self,
        key: &str,
        at: i64,
        since: i64,
    ) -> Result<(i64, i64, Option<i64>), sqlx::Error> {
        if self.backend == super::Backend::Sqlite {
            let row = sqlx::query(
                "INSERT INTO rate_hits (key, at) VALUES ($1, $2) RETURNING id, \
                 (SELECT COUNT(*) FROM rate_hits h WHERE h.key = $1 AND h.at > $3 \
                  AND h.id < rate_hits.id) AS n, \
                 (SELECT MIN(h.at) FROM rate_hits h WHERE h.key = $1 AND h.at > $3 \
                  AND h.id < rate_hits.id) AS oldest",
            )
            .bind(key)
            .bind(at)
            .bind(since)
            .fetch_one(&self.writer)
            .await?;
            return Ok((
                row.try_get("id")?,
                row.try_get("n")?,
                row.try_get("oldest")?,
            ));
        }
        let id: i64 =
            sqlx::query_scalar("INSERT INTO rate_hits (key, at) VALUES ($1, $2) RETURNING id")
                .bind(key)
                .bind(at)
                .fetch_one(&self.writer)
                .await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM rate_hits \
             WHERE key = $1 AND at > $2 AND id < $3",
        )
        .bind(key)
        .bind(since)
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok((id, row.try_get("n")?, row.try_get("oldest")?))
    }

    pub async fn delete_hit(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM rate_hits WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map(|_| ())
    }

    /// Drops rate-limit rows older than every window.
    pub async fn purge_hits(&self, before: i64) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM rate_hits WHERE at < $1")
            .bind(before)
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected())
    }
}

/// Clears every lockout counter of a user inside a transaction (a password reset).
pub(super) async fn clear_all_login_failures_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}
