//! `mfa_factors`, `recovery_codes` and `mfa_challenges`: second factors, their recovery codes,
//! and sign-ins waiting for a second factor; a session's step-up.

use super::{NewEvent, Store};
use sqlx::Row;

/// A second factor as stored (its secret sealed).
#[derive(Debug, Clone)]
pub struct FactorRow {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub secret: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_step: Option<i64>,
}

/// A sign-in waiting for its second factor.
#[derive(Debug, Clone)]
pub struct ChallengeRow {
    pub user_id: String,
    /// The device id (else the client address) of the sign-in: only it may finish.
    pub requester: String,
    /// The DPoP key of the sign-in, if it carried a proof.
    pub dpop_jkt: Option<String>,
    pub remember_me: bool,
    pub cookie: bool,
    /// How the first factor was proven.
    pub amr: String,
    pub expires_at: i64,
}

const FACTOR_COLUMNS: &str = "id, user_id, kind, secret, created_at, confirmed_at, last_step";

fn factor_row(r: &sqlx::any::AnyRow) -> Result<FactorRow, sqlx::Error> {
    Ok(FactorRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        kind: r.try_get("kind")?,
        secret: r.try_get("secret")?,
        created_at: r.try_get("created_at")?,
        confirmed_at: r.try_get("confirmed_at")?,
        last_step: r.try_get("last_step")?,
    })
}

impl Store {
    /// A new, unconfirmed factor; the user's other unconfirmed ones go (one enrolment at a time).
    pub async fn insert_factor(&self, f: &FactorRow) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NULL")
            .bind(&f.user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO mfa_factors (id, user_id, kind, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&f.id)
        .bind(&f.user_id)
        .bind(&f.kind)
        .bind(&f.secret)
        .bind(f.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The user's factor `id`, confirmed or not.
    pub async fn factor(&self, user_id: &str, id: &str) -> Result<Option<FactorRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {FACTOR_COLUMNS} FROM mfa_factors WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(factor_row)
        .transpose()
    }

    /// The user's confirmed factors, oldest first.
    pub async fn confirmed_factors(&self, user_id: &str) -> Result<Vec<FactorRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {FACTOR_COLUMNS} FROM mfa_factors WHERE user_id = $1 \
             AND confirmed_at IS NOT NULL ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(factor_row)
        .collect()
    }

    /// Whether the account needs a second factor to sign in.
    pub async fn has_second_factor(&self, user_id: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Takes time step `step` of a factor: `false` when it (or a later one) was taken before,
    /// so a code is accepted once, also by racing requests.
    pub async fn take_step(&self, factor_id: &str, step: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE mfa_factors SET last_step = $1 WHERE id = $2 \
             AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(factor_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Confirms a factor with the step of its first code, and gives the user a new set of
    /// recovery codes (HMACs), with `event`, in one transaction; `false` when the factor is
    /// no longer unconfirmed or the step was taken.
    pub async fn confirm_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        step: i64,
        code_hashes: &[String],
        now: i64,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE mfa_factors SET confirmed_at = $1, last_step = $2 \
             WHERE id = $3 AND user_id = $4 AND confirmed_at IS NULL \
             AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(now)
        .bind(step)
        .bind(factor_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        replace_codes_in(&mut tx, user_id, code_hashes, now).await?;
        self.commit_with(tx, &[event]).await?;
        Ok(true)
    }

    /// A new set of recovery codes; the old ones stop working.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[String],
        now: i64,
        event: &NewEvent,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        replace_codes_in(&mut tx, user_id, code_hashes, now).await?;
        self.commit_with(tx, &[event]).await?;
        Ok(())
    }

    /// Spends a recovery code: `false` when it is unknown or used.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 \
             AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
    }

    /// Removes one factor (with `event`); the recovery codes go with the last one. `false`
    /// when the user has no such factor.
    pub async fn delete_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM mfa_factors WHERE id = $1 AND user_id = $2")
            .bind(factor_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
        )
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        if left == 0 {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        self.commit_with(tx, &[event]).await?;
        Ok(true)
    }

    /// Removes every factor and recovery code of a user (an administrator's reset).
    pub async fn reset_second_factors(
        &self,
        user_id: &str,
        event: &NewEvent,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin().await?;
        let n = reset_in(&mut tx, user_id).await?;
        self.commit_with(tx, &[event]).await?;
        Ok(n)
    }

    /// A sign-in that waits for its second factor, under the HMAC of its `mfa_token`.
    pub async fn insert_mfa_challenge(
        &self,
        token_hash: &str,
        c: &ChallengeRow,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, requester, dpop_jkt, remember_me, \
             cookie, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(token_hash)
        .bind(&c.user_id)
        .bind(&c.requester)
        .bind(&c.dpop_jkt)
        .bind(i64::from(c.remember_me))
        .bind(i64::from(c.cookie))
        .bind(&c.amr)
        .bind(now)
        .bind(c.expires_at)
        .execute(&self.writer)
        .await
        .map(|_| ())
    }

    /// The live, unused challenge of an `mfa_token` (not spent by this).
    pub async fn mfa_challenge(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ChallengeRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT user_id, requester, dpop_jkt, remember_me, cookie, amr, expires_at \
             FROM mfa_challenges WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok(ChallengeRow {
                user_id: r.try_get("user_id")?,
                requester: r.try_get("requester")?,
                dpop_jkt: r.try_get("dpop_jkt")?,
                remember_me: r.try_get::<i64, _>("remember_me")? != 0,
                cookie: r.try_get::<i64, _>("cookie")? != 0,
                amr: r.try_get("amr")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Spends a challenge once: `false` when a parallel request did, or it died.
    pub async fn spend_mfa_challenge(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE mfa_challenges SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
             AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Drops challenges that died before `before`.
    pub async fn purge_mfa_challenges(&self, before: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// Raises a session to level 2 until `until`, with `event`; every instance forgets the
    /// user's cached sessions (`users.changed_at`), so their next refresh reads it. `false`
    /// when the session is not live.
    pub async fn step_up(
        &self,
        session_id: &str,
        user_id: &str,
        until: i64,
        now: i64,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET step_up_until = $1 WHERE id = $2 AND user_id = $3 \
             AND revoked_at IS NULL",
        )
        .bind(until)
        .bind(session_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE users SET changed_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        self.commit_with(tx, &[event]).await?;
        Ok(true)
    }
}

async fn replace_codes_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    code_hashes: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    for h in code_hashes {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(h)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Every factor, recovery code and waiting sign-in of a user; how many factors there were.
pub(super) async fn reset_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<u64, sqlx::Error> {
    let n = sqlx::query("DELETE FROM mfa_factors WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    for sql in [
        "DELETE FROM recovery_codes WHERE user_id = $1",
        "DELETE FROM mfa_challenges WHERE user_id = $1",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut *conn).await?;
    }
    Ok(n)
}
