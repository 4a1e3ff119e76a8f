//! `passkeys` and `passkey_challenges`: users' WebAuthn credentials and the ceremonies in
//! progress (a registration or a sign-in), each single use.

use super::{NewEvent, Store};
use sqlx::Row;

/// A passkey as stored.
#[derive(Debug, Clone)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    /// The credential id, base64url.
    pub credential_id: String,
    /// The verified credential (public key, flags) as the WebAuthn library keeps it, JSON.
    pub credential: String,
    pub sign_count: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A ceremony in progress.
#[derive(Debug, Clone)]
pub struct CeremonyRow {
    pub id: String,
    /// `register` or `login`.
    pub kind: String,
    /// The user a registration is for; `None` for a sign-in (usernameless).
    pub user_id: Option<String>,
    /// Who asked for a sign-in ceremony (device id, else client address): only they may answer.
    pub requester: Option<String>,
    /// The library's state (the challenge, the policy), JSON.
    pub state: String,
    /// The name a registration asked for.
    pub name: Option<String>,
    pub expires_at: i64,
}

/// What adding a passkey did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    Added,
    /// The user has `max` passkeys already.
    Full,
    /// This credential is registered already (to this user or another).
    Taken,
}

const COLUMNS: &str =
    "id, user_id, credential_id, credential, sign_count, name, created_at, last_used_at";

fn passkey_row(r: &sqlx::any::AnyRow) -> Result<PasskeyRow, sqlx::Error> {
    Ok(PasskeyRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        credential_id: r.try_get("credential_id")?,
        credential: r.try_get("credential")?,
        sign_count: r.try_get("sign_count")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Store {
    /// Records a ceremony; it can be taken once, until `expires_at`.
    pub async fn insert_passkey_ceremony(
        &self,
        c: &CeremonyRow,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO passkey_challenges (id, kind, user_id, requester, state, name, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.id)
        .bind(&c.kind)
        .bind(&c.user_id)
        .bind(&c.requester)
        .bind(&c.state)
        .bind(&c.name)
        .bind(now)
        .bind(c.expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes the live ceremony `id` of `kind` asked for by `requester` (or by anyone, for a
    /// ceremony bound to no requester): marked used in the statement that finds it, so two
    /// answers to one challenge cannot both be checked, and someone else's answer does not
    /// spend it. `None` when unknown, used, dead or another requester's.
    pub async fn take_passkey_ceremony(
        &self,
        id: &str,
        kind: &str,
        requester: &str,
        now: i64,
    ) -> Result<Option<CeremonyRow>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE passkey_challenges SET used_at = $1 \
             WHERE id = $2 AND kind = $3 AND used_at IS NULL AND expires_at > $1 \
             AND (requester IS NULL OR requester = $4) \
             RETURNING id, kind, user_id, requester, state, name, expires_at",
        )
        .bind(now)
        .bind(id)
        .bind(kind)
        .bind(requester)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok(CeremonyRow {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                user_id: r.try_get("user_id")?,
                requester: r.try_get("requester")?,
                state: r.try_get("state")?,
                name: r.try_get("name")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Drops ceremonies that died before `before`.
    pub async fn purge_passkey_ceremonies(&self, before: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM passkey_challenges WHERE expires_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// Adds a passkey with its event, unless the user has `max` already or the credential is
    /// known; counted and added in one transaction.
    pub async fn insert_passkey(
        &self,
        p: &PasskeyRow,
        max: i64,
        event: &NewEvent,
    ) -> Result<Added, sqlx::Error> {
        let mut tx = self.begin().await?;
        // Serializes the user's additions (on PostgreSQL; SQLite has one writer).
        sqlx::query("UPDATE users SET changed_at = changed_at WHERE id = $1")
            .bind(&p.user_id)
            .execute(&mut *tx)
            .await?;
        let (has, known): (i64, i64) = {
            let r = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM passkeys WHERE user_id = $1) AS has, \
                 (SELECT COUNT(*) FROM passkeys WHERE credential_id = $2) AS known",
            )
            .bind(&p.user_id)
            .bind(&p.credential_id)
            .fetch_one(&mut *tx)
            .await?;
            (r.try_get("has")?, r.try_get("known")?)
        };
        let verdict = if known > 0 {
            Added::Taken
        } else if has >= max {
            Added::Full
        } else {
            Added::Added
        };
        if verdict != Added::Added {
            tx.rollback().await?;
            return Ok(verdict);
        }
        let done = sqlx::query(&format!(
            "INSERT INTO passkeys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (credential_id) DO NOTHING"
        ))
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(&p.credential_id)
        .bind(&p.credential)
        .bind(p.sign_count)
        .bind(&p.name)
        .bind(p.created_at)
        .bind(p.last_used_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Added::Taken);
        }
        self.commit_with(tx, &[event]).await?;
        Ok(Added::Added)
    }

    /// The user's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: &str) -> Result<Vec<PasskeyRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(passkey_row)
        .collect()
    }

    /// Whether the user has a passkey.
    pub async fn has_passkey(&self, user_id: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// The passkey with this credential id (base64url), whoever's.
    pub async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(passkey_row)
        .transpose()
    }

    /// Records a use: the new counter and credential, only if the stored counter is still
    /// `seen` (the one the check was made against), so that of two uses racing with one
    /// counter value only one counts. `false` when another use came first.
    pub async fn use_passkey(
        &self,
        id: &str,
        seen: i64,
        sign_count: i64,
        credential: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE passkeys SET sign_count = $1, credential = $2, last_used_at = $3 \
             WHERE id = $4 AND sign_count = $5",
        )
        .bind(sign_count)
        .bind(credential)
        .bind(now)
        .bind(id)
        .bind(seen)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Renames the user's passkey: the passkey as it is now, `None` when the user has no such
    /// passkey.
    pub async fn rename_passkey(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<PasskeyRow>, sqlx::Error> {
        sqlx::query(&format!(
            "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3 RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(passkey_row)
        .transpose()
    }

    /// Removes the user's passkey with its event; `false` when the user has no such passkey.
    pub async fn delete_passkey(
        &self,
        user_id: &str,
        id: &str,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
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
}

/// Every passkey and ceremony of a user (an erased account; an address proven by its owner
/// after someone else set the account up).
pub(super) async fn delete_all_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<u64, sqlx::Error> {
    let n = sqlx::query("DELETE FROM passkeys WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM passkey_challenges WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(n)
}
