//! `admin_tokens`: the admin API's credentials, stored as SHA-256 digests.

use super::Store;
use sqlx::Row;

/// An admin token as stored (its secret is never stored).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminTokenRow {
    pub name: String,
    /// Space-separated scopes (see `rules::account::Scope`).
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// How often a token's `last_used_at` is written at most.
const LAST_USED_EVERY_MS: i64 = 60_000;

impl Store {
    /// Stores a new admin token; `Ok(false)` when the name is taken.
    pub async fn insert_admin_token(
        &self,
        row: &AdminTokenRow,
        token_hash: &str,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "INSERT INTO admin_tokens (name, token_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.name)
        .bind(token_hash)
        .bind(&row.scopes)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&self.writer)
        .await;
        match r {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>, sqlx::Error> {
        sqlx::query(
            "SELECT name, scopes, created_at, expires_at, last_used_at FROM admin_tokens \
             ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(admin_token_row)
        .collect()
    }

    /// The live token with this digest, noting its use (at most once a minute).
    pub async fn admin_token_by_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<AdminTokenRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT name, scopes, created_at, expires_at, last_used_at FROM admin_tokens \
             WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row.as_ref().map(admin_token_row).transpose()? else {
            return Ok(None);
        };
        if row
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_EVERY_MS)
        {
            sqlx::query("UPDATE admin_tokens SET last_used_at = $1 WHERE name = $2")
                .bind(now)
                .bind(&row.name)
                .execute(&self.writer)
                .await?;
        }
        Ok(Some(row))
    }

    /// Deletes a token by name; false when there was none.
    pub async fn delete_admin_token(&self, name: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM admin_tokens WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn admin_token_row(r: &sqlx::any::AnyRow) -> Result<AdminTokenRow, sqlx::Error> {
    Ok(AdminTokenRow {
        name: r.try_get("name")?,
        scopes: r.try_get("scopes")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}
