//! `identities`, `oauth_flows` and `oauth_codes`: accounts' identities at identity providers,
//! the sign-in flows in progress through them, and the one-time codes that end those flows.

use super::{NewEvent, Store};
use crate::rules::oauth::OtherWays;
use sqlx::Row;

/// An identity at a provider, linked to an account.
#[derive(Debug, Clone)]
pub struct IdentityRow {
    /// The provider's name in the providers file.
    pub provider: String,
    /// Its id for the user (`sub`, GitHub's user id).
    pub subject: String,
    pub user_id: String,
    /// The address the provider last gave, if any.
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A flow between its start and its callback.
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub state_hash: String,
    pub provider: String,
    /// HMAC of the browser cookie set at the start: only that browser may finish it.
    pub browser_hash: String,
    pub redirect_to: String,
    /// The signed-in account a link flow adds the identity to; `None`: a sign-in.
    pub link_user_id: Option<String>,
    pub expires_at: i64,
}

/// A one-time code between the callback and the exchange.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub code_hash: String,
    pub browser_hash: String,
    pub user_id: String,
    pub provider: String,
    pub expires_at: i64,
}

/// What linking an identity did.
#[derive(Debug, PartialEq, Eq)]
pub enum Linked {
    Linked,
    /// Linked to this account already.
    Already,
    /// The identity is another account's, or this account has one of this provider.
    Taken,
}

const COLUMNS: &str = "provider, subject, user_id, email, created_at, last_used_at";

fn identity_row(r: &sqlx::any::AnyRow) -> Result<IdentityRow, sqlx::Error> {
    Ok(IdentityRow {
        provider: r.try_get("provider")?,
        subject: r.try_get("subject")?,
        user_id: r.try_get("user_id")?,
        email: r.try_get("email")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Store {
    /// Records a flow; its callback can take it once, until `expires_at`.
    pub async fn insert_oauth_flow(&self, f: &FlowRow, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO oauth_flows (state_hash, provider, browser_hash, redirect_to, \
             link_user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&f.state_hash)
        .bind(&f.provider)
        .bind(&f.browser_hash)
        .bind(&f.redirect_to)
        .bind(&f.link_user_id)
        .bind(now)
        .bind(f.expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes the live flow of this state, provider and browser: marked used in the statement
    /// that finds it, so a state works once, and another browser's callback does not spend
    /// it. `None` when unknown, used, expired or another browser's.
    pub async fn take_oauth_flow(
        &self,
        state_hash: &str,
        provider: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<Option<FlowRow>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE oauth_flows SET used_at = $1 \
             WHERE state_hash = $2 AND provider = $3 AND browser_hash = $4 \
             AND used_at IS NULL AND expires_at > $1 \
             RETURNING state_hash, provider, browser_hash, redirect_to, link_user_id, expires_at",
        )
        .bind(now)
        .bind(state_hash)
        .bind(provider)
        .bind(browser_hash)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok(FlowRow {
                state_hash: r.try_get("state_hash")?,
                provider: r.try_get("provider")?,
                browser_hash: r.try_get("browser_hash")?,
                redirect_to: r.try_get("redirect_to")?,
                link_user_id: r.try_get("link_user_id")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Where the flow of this state returns to, whether or not it can still be taken (to tell
    /// the app that its callback was refused); `None` for a state never issued.
    pub async fn oauth_flow_return(&self, state_hash: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT redirect_to FROM oauth_flows WHERE state_hash = $1")
            .bind(state_hash)
            .fetch_optional(&self.writer)
            .await
    }

    /// Records a one-time code.
    pub async fn insert_oauth_code(&self, c: &CodeRow, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, browser_hash, user_id, provider, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.code_hash)
        .bind(&c.browser_hash)
        .bind(&c.user_id)
        .bind(&c.provider)
        .bind(now)
        .bind(c.expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes the live code for this browser, in the statement that finds it (single use).
    pub async fn take_oauth_code(
        &self,
        code_hash: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<Option<CodeRow>, sqlx::Error> {
        let row = sqlx::query(
            "UPDATE oauth_codes SET used_at = $1 \
             WHERE code_hash = $2 AND browser_hash = $3 AND used_at IS NULL AND expires_at > $1 \
             RETURNING code_hash, browser_hash, user_id, provider, expires_at",
        )
        .bind(now)
        .bind(code_hash)
        .bind(browser_hash)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok(CodeRow {
                code_hash: r.try_get("code_hash")?,
                browser_hash: r.try_get("browser_hash")?,
                user_id: r.try_get("user_id")?,
                provider: r.try_get("provider")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Gives back a code spent at `used_at` by an exchange the server could not finish.
    pub async fn unuse_oauth_code(&self, code_hash: &str, used_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE oauth_codes SET used_at = NULL WHERE code_hash = $1 AND used_at = $2")
            .bind(code_hash)
            .bind(used_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Drops flows and codes that died before `before`.
    pub async fn purge_oauth(&self, before: i64) -> Result<u64, sqlx::Error> {
        let mut n = 0;
        for sql in [
            "DELETE FROM oauth_flows WHERE expires_at < $1",
            "DELETE FROM oauth_codes WHERE expires_at < $1",
        ] {
            n += sqlx::query(sql)
                .bind(before)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    /// The identity `subject` at `provider`, whoever's.
    pub async fn identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<IdentityRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM identities WHERE provider = $1 AND subject = $2"
        ))
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(identity_row)
        .transpose()
    }

    /// The account's identities, oldest first.
    pub async fn identities(&self, user_id: &str) -> Result<Vec<IdentityRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM identities WHERE user_id = $1 ORDER BY created_at, provider"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(identity_row)
        .collect()
    }

    /// Links an identity to its account with its event.
    pub async fn link_identity(
        &self,
        i: &IdentityRow,
        event: &NewEvent,
    ) -> Result<Linked, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(&format!(
            "INSERT INTO identities ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
        ))
        .bind(&i.provider)
        .bind(&i.subject)
        .bind(&i.user_id)
        .bind(&i.email)
        .bind(i.created_at)
        .bind(i.last_used_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            self.commit_with(tx, &[event]).await?;
            return Ok(Linked::Linked);
        }
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM identities WHERE provider = $1 AND subject = $2",
        )
        .bind(&i.provider)
        .bind(&i.subject)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(if owner.as_deref() == Some(i.user_id.as_str()) {
            Linked::Already
        } else {
            Linked::Taken
        })
    }

    /// Records a sign-in by the identity, with the address the provider gave this time.
    pub async fn touch_identity(
        &self,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE identities SET last_used_at = $1, email = COALESCE($2, email) \
             WHERE provider = $3 AND subject = $4",
        )
        .bind(now)
        .bind(email)
        .bind(provider)
        .bind(subject)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Unlinks the account's identity at `provider` with its event, if `may` allows it given
    /// the other ways the account has to sign in, counted in the same transaction (two
    /// unlinks at once cannot leave the account without any). `None`: no such identity;
    /// `Some(false)`: refused by `may`.
    pub async fn unlink_identity(
        &self,
        user_id: &str,
        provider: &str,
        no_password: &str,
        may: impl FnOnce(OtherWays) -> bool,
        event: &NewEvent,
    ) -> Result<Option<bool>, sqlx::Error> {
        let mut tx = self.begin().await?;
        // Serializes the account's changes (on PostgreSQL; SQLite has one writer).
        let user = sqlx::query(
            "UPDATE users SET changed_at = changed_at WHERE id = $1 \
             RETURNING password_hash, email_verified_at",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = user else {
            tx.rollback().await?;
            return Ok(None);
        };
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM identities WHERE user_id = $1 AND provider = $2) AS this, \
             (SELECT COUNT(*) FROM identities WHERE user_id = $1 AND provider <> $2) AS others, \
             (SELECT COUNT(*) FROM passkeys WHERE user_id = $1) AS passkeys",
        )
        .bind(user_id)
        .bind(provider)
        .fetch_one(&mut *tx)
        .await?;
        if r.try_get::<i64, _>("this")? == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let hash: String = user.try_get("password_hash")?;
        let ways = OtherWays {
            password: hash != no_password,
            passkeys: r.try_get("passkeys")?,
            identities: r.try_get("others")?,
            email_verified: user
                .try_get::<Option<i64>, _>("email_verified_at")?
                .is_some(),
        };
        if !may(ways) {
            tx.rollback().await?;
            return Ok(Some(false));
        }
        sqlx::query("DELETE FROM identities WHERE user_id = $1 AND provider = $2")
            .bind(user_id)
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        self.commit_with(tx, &[event]).await?;
        Ok(Some(true))
    }
}

/// Every identity and flow of a user (an erased account; an address proven by its owner after
/// someone else set the account up).
pub(super) async fn delete_all_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM identities WHERE user_id = $1",
        "DELETE FROM oauth_flows WHERE link_user_id = $1",
        "DELETE FROM oauth_codes WHERE user_id = $1",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut *conn).await?;
    }
    Ok(())
}
