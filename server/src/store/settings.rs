//! `server_settings`: values every instance of a deployment must agree on, fixed by the
//! first start that needs them.

use super::Store;

impl Store {
    /// The stored value of `name`; stores `value` first when there is none (the first of
    /// several instances starting at once wins, and every one reads the winner's).
    pub async fn setting_or_insert(
        &self,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<String, sqlx::Error> {
        sqlx::query(
            "INSERT INTO server_settings (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&self.writer)
        .await?;
        sqlx::query_scalar("SELECT value FROM server_settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.writer)
            .await
    }
}
