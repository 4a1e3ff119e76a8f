//! `email_codes` (the sign-in codes and links of the email flows) and `account_tokens` (the
//! mailed password-reset and address-verification links). Both hold HMACs of what was mailed,
//! never the codes or tokens themselves.

use super::Store;

/// A sign-in code and link as stored: both as HMACs.
#[derive(Debug, Clone)]
pub struct NewEmailCode<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub code_hash: &'a str,
    pub link_hash: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
    /// Who asked (see `count_code_try`).
    pub requested_by: &'a str,
}

impl Store {
    /// Stores a new code; the requester's older codes of the address (and their links) die
    /// with it, in the same transaction: a newer request replaces the older code.
    pub async fn insert_email_code(&self, c: &NewEmailCode<'_>) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE email_codes SET used_at = $1 WHERE email = $2 AND requested_by = $3 \
             AND used_at IS NULL",
        )
        .bind(c.created_at)
        .bind(c.email)
        .bind(c.requested_by)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO email_codes (id, email, code_hash, link_hash, created_at, expires_at, \
             attempts, requested_by) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        )
        .bind(c.id)
        .bind(c.email)
        .bind(c.code_hash)
        .bind(c.link_hash)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.requested_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Counts a try of the newest live code `requested_by` asked for at `email`, before it is
    /// compared, so parallel guesses cannot exceed `max_tries`; its id and code HMAC, or `None`
    /// when there is no live code or it has no tries left. Only the requester's own code is
    /// tried: a stranger's guesses cannot use up the tries of the owner's code.
    pub async fn count_code_try(
        &self,
        email: &str,
        requested_by: &str,
        now: i64,
        max_tries: i64,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE email_codes SET attempts = attempts + 1 WHERE id = (SELECT id FROM email_codes \
             WHERE email = $1 AND requested_by = $2 AND used_at IS NULL AND expires_at > $3 \
             ORDER BY created_at DESC LIMIT 1) AND attempts < $4 RETURNING id, code_hash",
        )
        .bind(email)
        .bind(requested_by)
        .bind(now)
        .bind(max_tries)
        .fetch_optional(&self.writer)
        .await
    }

    /// Marks a code's row used; false when a parallel request used it first.
    pub async fn use_code(&self, id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE email_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Uses the live link whose HMAC is `link_hash`, in the statement that finds it (single
    /// use); its row id and the address it was mailed to.
    pub async fn use_link(
        &self,
        link_hash: &str,
        now: i64,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE email_codes SET used_at = $1 WHERE link_hash = $2 AND used_at IS NULL \
             AND expires_at > $1 RETURNING id, email",
        )
        .bind(now)
        .bind(link_hash)
        .fetch_optional(&self.writer)
        .await
    }

    /// Gives a code (and its link) back, unused, when what it was used for failed on the
    /// server's side (the session could not be stored): `used_at` must still be `used_at`.
    pub async fn unuse_code(&self, id: &str, used_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE email_codes SET used_at = NULL WHERE id = $1 AND used_at = $2")
            .bind(id)
            .bind(used_at)
            .execute(&self.writer)
            .await
            .map(|_| ())
    }

    pub async fn insert_account_token(
        &self,
        token_hash: &str,
        user_id: &str,
        purpose: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO account_tokens (token_hash, user_id, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(purpose)
        .bind(now)
        .bind(expires_at)
        .execute(&self.writer)
        .await
        .map(|_| ())
    }

    /// The user of a live, unused account token (not spent by this: see `spend_account_token`).
    pub async fn account_token_user(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT user_id FROM account_tokens WHERE token_hash = $1 AND purpose = $2 \
             AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
    }

    /// Spends an account token: the user it was for, once, while it lives.
    pub async fn spend_account_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> Result<Option<String>, sqlx::Error> {
        let mut conn = self.writer.acquire().await?;
        spend_account_token_in(&mut conn, token_hash, purpose, now).await
    }
}

impl Store {
    /// Drops sign-in codes and account tokens that died before `before` (used or not): they
    /// hold addresses of people who may never have signed up.
    pub async fn purge_mail_tokens(&self, before: i64) -> Result<u64, sqlx::Error> {
        let codes = sqlx::query("DELETE FROM email_codes WHERE expires_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        let tokens = sqlx::query("DELETE FROM account_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(codes.rows_affected() + tokens.rows_affected())
    }
}

pub(super) async fn spend_account_token_in(
    conn: &mut sqlx::AnyConnection,
    token_hash: &str,
    purpose: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
         AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
    )
    .bind(now)
    .bind(token_hash)
    .bind(purpose)
    .fetch_optional(&mut *conn)
    .await
}

/// Spends every live token of `purpose` of a user (one reset link used: the others die).
pub(super) async fn spend_all_account_tokens_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    purpose: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE account_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 \
         AND used_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(purpose)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Spends every live sign-in code and link mailed to `email` (a password reset ends them).
pub(super) async fn spend_email_codes_in(
    conn: &mut sqlx::AnyConnection,
    email: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE email_codes SET used_at = $1 WHERE email = $2 AND used_at IS NULL")
        .bind(now)
        .bind(email)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}
