//! `users`: accounts.

use super::{insert_events, NewEvent, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    /// The user proved they receive mail at `email` (see `recovery`).
    pub email_verified: bool,
    /// Set by administrators; a claim of every access token.
    pub roles: Vec<String>,
    /// JSON objects (text): set by administrators, and by the user.
    pub app_metadata: String,
    pub user_metadata: String,
    /// Unix ms until which the account may not sign in (see `rules::account`).
    pub disabled_until: Option<i64>,
    pub last_sign_in_at: Option<i64>,
}

impl UserRow {
    /// A new account's row: no roles, no metadata, never signed in.
    pub fn new(id: String, email: String, password_hash: String, created_at: i64) -> Self {
        Self {
            id,
            email,
            password_hash,
            created_at,
            email_verified: false,
            roles: Vec::new(),
            app_metadata: "{}".into(),
            user_metadata: "{}".into(),
            disabled_until: None,
            last_sign_in_at: None,
        }
    }
}

pub(super) const USER_COLUMNS: &str = "id, email, password_hash, created_at, email_verified_at, \
    roles, app_metadata, user_metadata, disabled_until, last_sign_in_at";

impl Store {
    /// Inserts a user with its event, in one transaction; `Ok(false)` when the email is taken.
    pub async fn insert_user(&self, u: &UserRow, event: &NewEvent) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
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
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| user_row(&r))
        .transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| user_row(&r))
        .transpose()
    }

    /// The users whose row changed in what access tokens carry (address, its verification,
    /// roles, the account's end) at `since` or later, with when, oldest first; read `page` rows
    /// at a time, so that no burst of changes is cut off.
    pub async fn changed_since(
        &self,
        since: i64,
        page: u32,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let page = page.max(1);
        let mut all: Vec<(String, i64)> = Vec::new();
        loop {
            // Keyset paging on (changed at, id): one row after the last row read.
            let (at, id) = all
                .last()
                .map_or((since, ""), |(id, at)| (*at, id.as_str()));
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT id, changed_at FROM users \
                 WHERE changed_at > $1 OR (changed_at = $1 AND id > $2) \
                 ORDER BY changed_at, id LIMIT $3",
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
}

/// A password reset by a mailed link (see `Store::reset_password`).
#[derive(Debug)]
pub struct PasswordReset<'a> {
    pub user_id: &'a str,
    /// The account's address: its sign-in codes and links die too.
    pub email: &'a str,
    /// The HMAC of the link's token and its purpose.
    pub token_hash: &'a str,
    pub purpose: &'a str,
    pub password_hash: &'a str,
    pub now: i64,
}

impl Store {
    /// A password reset, all or nothing, in one transaction: the link is spent, the password
    /// replaced, the user's other links of the purpose and sign-in codes spent, the lockout
    /// counters cleared, the
    /// address verified (the mail arrived), every session revoked, and `event(n)` recorded with
    /// `n` the sessions ended. `None` (and nothing changed) when the link is no longer live. The
    /// ended sessions' ids come back.
    pub async fn reset_password(
        &self,
        r: &PasswordReset<'_>,
        event: impl FnOnce(usize) -> NewEvent,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let spent =
            super::mail_tokens::spend_account_token_in(&mut tx, r.token_hash, r.purpose, r.now)
                .await?;
        if spent.as_deref() != Some(r.user_id) {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(r.password_hash)
            .bind(r.user_id)
            .execute(&mut *tx)
            .await?;
        super::mail_tokens::spend_all_account_tokens_in(&mut tx, r.user_id, r.purpose, r.now)
            .await?;
        super::limits::clear_all_login_failures_in(&mut tx, r.user_id).await?;
        super::mail_tokens::spend_email_codes_in(&mut tx, r.email, r.now).await?;
        mark_verified_in(&mut tx, r.user_id, r.now).await?;
        let ids =
            super::sessions::revoke_all_in(&mut tx, r.user_id, "password_reset", r.now).await?;
        let e = event(ids.len());
        insert_events(&mut tx, &[&e]).await?;
        tx.commit().await?;
        self.published(&[&e]);
        Ok(Some(ids))
    }
}

/// An address proven by mail (see `Store::prove_address`).
#[derive(Debug)]
pub struct AddressProof<'a> {
    pub user_id: &'a str,
    /// The mailed token that proves it (HMAC, purpose), spent in the same transaction; `None`
    /// when it was spent already (a sign-in code).
    pub token: Option<(&'a str, &'a str)>,
    /// The prover also proved the account's credentials (a session of the account asked):
    /// nothing set up before is in doubt.
    pub keep_credentials: bool,
    /// The password hash that replaces one set while the address was unproven.
    pub no_password: &'a str,
    pub now: i64,
}

/// What proving an address did.
#[derive(Debug, Default)]
pub struct Proven {
    /// The address was not proven before.
    pub first: bool,
    /// Sessions ended because they were set up while the address was unproven.
    pub ended: Vec<String>,
}

impl Store {
    /// Proves an address, in one transaction. The first proof of an address whose account
    /// was made without one (someone registered it with a password) ends what was set up
    /// until then, unless `keep_credentials`: every session is revoked (reason
    /// `address_proven`), the second factors removed and the password replaced by
    /// `no_password`, recorded as
    /// `event(sessions ended)`. `None` (nothing changed) when the token is no longer live.
    pub async fn prove_address(
        &self,
        p: &AddressProof<'_>,
        event: impl FnOnce(usize) -> NewEvent,
    ) -> Result<Option<Proven>, sqlx::Error> {
        let mut tx = self.begin().await?;
        if let Some((hash, purpose)) = p.token {
            let spent =
                super::mail_tokens::spend_account_token_in(&mut tx, hash, purpose, p.now).await?;
            if spent.as_deref() != Some(p.user_id) {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        let first = mark_verified_in(&mut tx, p.user_id, p.now).await?;
        let mut proven = Proven {
            first,
            ended: Vec::new(),
        };
        let mut events = Vec::new();
        if first && !p.keep_credentials {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(p.no_password)
                .bind(p.user_id)
                .execute(&mut *tx)
                .await?;
            proven.ended =
                super::sessions::revoke_all_in(&mut tx, p.user_id, "address_proven", p.now).await?;
            // Second factors, passkeys and linked identities set up while the address was
            // unproven are not the owner's either.
            super::mfa::reset_in(&mut tx, p.user_id).await?;
            super::passkeys::delete_all_in(&mut tx, p.user_id).await?;
            super::identities::delete_all_in(&mut tx, p.user_id).await?;
            events.push(event(proven.ended.len()));
        }
        let events: Vec<&NewEvent> = events.iter().collect();
        insert_events(&mut tx, &events).await?;
        tx.commit().await?;
        self.published(&events);
        Ok(Some(proven))
    }
}

/// Marks the address verified; true when it was not before.
pub(super) async fn mark_verified_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET email_verified_at = $1, changed_at = $1 \
         WHERE id = $2 AND email_verified_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) fn user_row(r: &AnyRow) -> Result<UserRow, sqlx::Error> {
    let roles: String = r.try_get("roles")?;
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        created_at: r.try_get("created_at")?,
        email_verified: r.try_get::<Option<i64>, _>("email_verified_at")?.is_some(),
        roles: serde_json::from_str(&roles).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        app_metadata: r.try_get("app_metadata")?,
        user_metadata: r.try_get("user_metadata")?,
        disabled_until: r.try_get("disabled_until")?,
        last_sign_in_at: r.try_get("last_sign_in_at")?,
    })
}
