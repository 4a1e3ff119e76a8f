//! `users`, as accounts are managed: listed and changed by administrators, changed by their
//! owners (password, address, metadata), erased. Each change that ends sessions does so in its
//! own transaction, with its event; `changed_at` tells every instance to forget what it cached.

use super::users::{mark_verified_in, user_row, USER_COLUMNS};
use super::{NewEvent, Store, UserRow};

/// What an administrator changes on an account; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct AccountChange {
    /// A canonical address.
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub roles: Option<Vec<String>>,
    /// A JSON object (text).
    pub app_metadata: Option<String>,
    /// `Some(None)`: enabled again; `Some(Some(t))`: disabled until unix ms `t`.
    pub disabled_until: Option<Option<i64>>,
}

/// What a change to an account did.
#[derive(Debug)]
pub enum Changed {
    /// Stored: the account now, and the sessions that ended with it.
    Done {
        user: Box<UserRow>,
        ended: Vec<String>,
    },
    /// Another account has the address.
    EmailTaken,
    /// No such account (or it was deleted).
    NotFound,
}

/// The reason recorded on the sessions a disabling ends (a refresh of one is 403
/// `user_disabled`).
pub const DISABLED: &str = "user_disabled";
/// The reason recorded on the sessions a deletion ends.
pub const DELETED: &str = "account_deleted";

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// Accounts in creation order (then id), after the account `after` (created at, id), at
    /// most `limit`: keyset paging, so rows inserted meanwhile never shift a page.
    pub async fn list_users(
        &self,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<UserRow>, sqlx::Error> {
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE deleted_at IS NULL \
             AND (created_at > $1 OR (created_at = $1 AND id > $2)) \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user_row)
        .collect()
    }

    /// An administrator's change, all or nothing, with `event`. Disabling ends every session
    /// of the account (reason `user_disabled`) in the same transaction.
    pub async fn change_account(
        &self,
        user_id: &str,
        change: &AccountChange,
        now: i64,
        event: &NewEvent,
    ) -> Result<Changed, sqlx::Error> {
        let mut tx = self.begin().await?;
        // The row first (on PostgreSQL this locks it: a sign-in starting a session waits).
        let found =
            sqlx::query("UPDATE users SET changed_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if found.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Changed::NotFound);
        }
        if let Some(email) = &change.email {
            let old: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
            let r = sqlx::query("UPDATE users SET email = $1 WHERE id = $2 AND email <> $1")
                .bind(email)
                .bind(user_id)
                .execute(&mut *tx)
                .await;
            match r {
                Ok(done) if done.rows_affected() == 1 => {
                    // A new address is unproven until said otherwise, and what was mailed to
                    // the old one signs in no more.
                    sqlx::query("UPDATE users SET email_verified_at = NULL WHERE id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    super::mail_tokens::spend_email_codes_in(&mut tx, &old, now).await?;
                }
                Ok(_) => {}
                Err(e) if unique_violation(&e) => {
                    tx.rollback().await?;
                    return Ok(Changed::EmailTaken);
                }
                Err(e) => return Err(e),
            }
        }
        match change.email_verified {
            Some(true) => {
                mark_verified_in(&mut tx, user_id, now).await?;
            }
            Some(false) => {
                sqlx::query("UPDATE users SET email_verified_at = NULL WHERE id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        if let Some(roles) = &change.roles {
            let roles =
                serde_json::to_string(roles).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
                .bind(roles)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(meta) = &change.app_metadata {
            sqlx::query("UPDATE users SET app_metadata = $1 WHERE id = $2")
                .bind(meta)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut ended = Vec::new();
        if let Some(until) = change.disabled_until {
            sqlx::query("UPDATE users SET disabled_until = $1 WHERE id = $2")
                .bind(until)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            if until.is_some_and(|t| t > now) {
                ended = super::sessions::revoke_all_in(&mut tx, user_id, DISABLED, now).await?;
            }
        }
        let user = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let user = user_row(&user)?;
        self.commit_with(tx, &[event]).await?;
        Ok(Changed::Done {
            user: Box::new(user),
            ended,
        })
    }

    /// The user's own metadata (a JSON object, text); false when the account is gone.
    pub async fn set_user_metadata(
        &self,
        user_id: &str,
        json: &str,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("UPDATE users SET user_metadata = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(json)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        self.commit_with(tx, &[event]).await?;
        Ok(true)
    }

    /// A new password set by the signed-in user: every other session ends (reason
    /// `password_changed`), the reset links die, the lockout counters clear; `event(n)` with
    /// `n` the sessions ended. The ended sessions' ids; `None` when the account is gone.
    pub async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
        now: i64,
        event: impl FnOnce(usize) -> NewEvent,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let ended: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = 'password_changed' \
             WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep_session)
        .fetch_all(&mut *tx)
        .await?;
        super::mail_tokens::spend_all_account_tokens_in(&mut tx, user_id, "password_reset", now)
            .await?;
        super::limits::clear_all_login_failures_in(&mut tx, user_id).await?;
        let e = event(ended.len());
        self.commit_with(tx, &[&e]).await?;
        Ok(Some(ended))
    }

    /// Stores the token of an email-change link (its HMAC) with the address it moves to.
    pub async fn insert_email_change(
        &self,
        token_hash: &str,
        user_id: &str,
        new_email: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO account_tokens \
             (token_hash, user_id, purpose, created_at, expires_at, new_email) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(EMAIL_CHANGE)
        .bind(now)
        .bind(expires_at)
        .bind(new_email)
        .execute(&self.writer)
        .await
        .map(|_| ())
    }

    /// Moves an account to the address of a live email-change link, all or nothing: the link
    /// spent, the address the account's and proven, the old address's codes dead, with
    /// `event(old, new)`.
    pub async fn confirm_email_change(
        &self,
        token_hash: &str,
        now: i64,
        event: impl FnOnce(&str) -> NewEvent,
    ) -> Result<EmailChanged, sqlx::Error> {
        let mut tx = self.begin().await?;
        let spent: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
             AND used_at IS NULL AND expires_at > $1 RETURNING user_id, new_email",
        )
        .bind(now)
        .bind(token_hash)
        .bind(EMAIL_CHANGE)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id, Some(new_email))) = spent else {
            tx.rollback().await?;
            return Ok(EmailChanged::NoLink);
        };
        let old: Option<String> =
            sqlx::query_scalar("SELECT email FROM users WHERE id = $1 AND deleted_at IS NULL")
                .bind(&user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(old) = old else {
            tx.rollback().await?;
            return Ok(EmailChanged::NoLink);
        };
        let moved = sqlx::query(
            "UPDATE users SET email = $1, email_verified_at = $2, changed_at = $2 WHERE id = $3",
        )
        .bind(&new_email)
        .bind(now)
        .bind(&user_id)
        .execute(&mut *tx)
        .await;
        match moved {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => {
                tx.rollback().await?;
                return Ok(EmailChanged::Taken);
            }
            Err(e) => return Err(e),
        }
        super::mail_tokens::spend_email_codes_in(&mut tx, &old, now).await?;
        super::mail_tokens::spend_all_account_tokens_in(&mut tx, &user_id, EMAIL_CHANGE, now)
            .await?;
        let e = event(&user_id);
        self.commit_with(tx, &[&e]).await?;
        Ok(EmailChanged::Moved { user_id, old })
    }

    /// Erases an account, all or nothing: every session ends (reason `account_deleted`), the
    /// address, password hash, roles, metadata, second factors and passkeys are gone (the row stays, emptied, so the
    /// account's sessions stay known as revoked), with its codes, tokens, lockout counters and
    /// the addresses and devices of its sessions and audit events; the events keep the user id.
    /// The ended sessions' ids, recorded with `event(n)`; `None` when there is no such account.
    pub async fn erase_user(
        &self,
        user_id: &str,
        no_password: &str,
        now: i64,
        event: impl FnOnce(usize) -> NewEvent,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let old: Option<String> = sqlx::query_scalar(
            "UPDATE users SET deleted_at = $1, changed_at = $1 \
             WHERE id = $2 AND deleted_at IS NULL RETURNING email",
        )
        .bind(now)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(old) = old else {
            tx.rollback().await?;
            return Ok(None);
        };
        // `deleted:` is no address (no `@`): it never matches a sign-in, and frees the real one.
        sqlx::query(
            "UPDATE users SET email = $1, password_hash = $2, email_verified_at = NULL, \
             roles = '[]', app_metadata = '{}', user_metadata = '{}', failed_logins = 0, \
             locked_until = NULL WHERE id = $3",
        )
        .bind(format!("deleted:{user_id}"))
        .bind(no_password)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let ended = super::sessions::revoke_all_in(&mut tx, user_id, DELETED, now).await?;
        super::mfa::reset_in(&mut tx, user_id).await?;
        super::passkeys::delete_all_in(&mut tx, user_id).await?;
        super::identities::delete_all_in(&mut tx, user_id).await?;
        for sql in [
            "UPDATE sessions SET device_id = NULL, user_agent = NULL, ip = NULL, \
             rotated_by_device = NULL WHERE user_id = $1",
            "UPDATE audit_events SET ip = NULL, device_id = NULL WHERE user_id = $1",
            "DELETE FROM account_tokens WHERE user_id = $1",
            "DELETE FROM login_failures WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM email_codes WHERE email = $1")
            .bind(&old)
            .execute(&mut *tx)
            .await?;
        let e = event(ended.len());
        self.commit_with(tx, &[&e]).await?;
        Ok(Some(ended))
    }
}

/// The purpose of an email-change link's token.
pub const EMAIL_CHANGE: &str = "email_change";

/// What confirming an email change did.
#[derive(Debug)]
pub enum EmailChanged {
    /// The account `user_id` moved from `old`.
    Moved { user_id: String, old: String },
    /// Another account has the address now: nothing changed, the link stays usable.
    Taken,
    /// The link is unknown, used or expired.
    NoLink,
}
