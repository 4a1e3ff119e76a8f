//! `audit_events`: the audit log.

use super::{placeholder_rows, NewEvent, Store};
use sqlx::AnyConnection;
use sqlx::Row;

// As stored and as `GET /auth/audit-log` shows it: the store reads `at` in unix milliseconds,
// the API answers seconds. The doc comments are the OpenAPI document's descriptions.
/// An audit event of the user.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    /// The account the event is about, if any.
    pub user_id: Option<String>,
    /// Unix seconds.
    pub at: i64,
    /// `login_succeeded`, `login_failed`, `token_refreshed`, `refresh_reused`, ...
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// `info`, `warning`, `error` or `critical`.
    pub severity: String,
    pub session_id: Option<String>,
    pub device_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

impl Store {
    pub async fn insert_event(&self, e: &NewEvent) -> Result<(), sqlx::Error> {
        let mut conn = self.writer.acquire().await?;
        insert_events(&mut conn, &[e]).await?;
        self.published(&[e]);
        Ok(())
    }

    pub async fn events_for_user(
        &self,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, user_id, at, type, severity, session_id, device_id, ip, detail \
             FROM audit_events WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_event).collect()
    }

    /// Events newest first, before the event `before` (an id), filtered by the user, the type
    /// and the time (unix ms) where given; at most `limit`.
    pub async fn events_page(
        &self,
        filter: &EventFilter<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let mut sql = String::from(
            "SELECT id, user_id, at, type, severity, session_id, device_id, ip, detail \
             FROM audit_events WHERE id < $1",
        );
        let mut n = 1;
        let mut cond = |sql: &mut String, column: &str, op: &str| {
            n += 1;
            sql.push_str(&format!(" AND {column} {op} ${n}"));
        };
        if filter.user_id.is_some() {
            cond(&mut sql, "user_id", "=");
        }
        if filter.kind.is_some() {
            cond(&mut sql, "type", "=");
        }
        if filter.since.is_some() {
            cond(&mut sql, "at", ">=");
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql).bind(before.unwrap_or(i64::MAX));
        if let Some(u) = filter.user_id {
            q = q.bind(u);
        }
        if let Some(k) = filter.kind {
            q = q.bind(k);
        }
        if let Some(t) = filter.since {
            q = q.bind(t);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(audit_event).collect()
    }

    /// Counts a user's events of one type since `since` (abuse heuristics).
    pub async fn count_events(
        &self,
        user_id: &str,
        kind: &str,
        since: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE user_id = $1 AND type = $2 AND at >= $3",
        )
        .bind(user_id)
        .bind(kind)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    /// Distinct IPs of a user's events of one type since `since`.
    pub async fn count_distinct_ips(
        &self,
        user_id: &str,
        kind: &str,
        since: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(DISTINCT ip) FROM audit_events \
             WHERE user_id = $1 AND type = $2 AND at >= $3",
        )
        .bind(user_id)
        .bind(kind)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    /// Deletes audit events older than `cutoff`.
    pub async fn purge_events(&self, cutoff: i64) -> Result<u64, sqlx::Error> {
        let a = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(cutoff)
            .execute(&self.writer)
            .await?;
        Ok(a.rows_affected())
    }
}

/// Which events `events_page` reads.
#[derive(Debug, Default)]
pub struct EventFilter<'a> {
    pub user_id: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Unix ms.
    pub since: Option<i64>,
}

fn audit_event(r: &sqlx::any::AnyRow) -> Result<AuditEvent, sqlx::Error> {
    Ok(AuditEvent {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        at: r.try_get("at")?,
        kind: r.try_get("type")?,
        severity: r.try_get("severity")?,
        session_id: r.try_get("session_id")?,
        device_id: r.try_get("device_id")?,
        ip: r.try_get("ip")?,
        detail: r.try_get("detail")?,
    })
}

/// Inserts events inside a transaction, with few statements.
pub(super) async fn insert_events(
    conn: &mut AnyConnection,
    events: &[&NewEvent],
) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(100) {
        let sql = events_insert(chunk.len());
        bind_events(sqlx::query(&sql), chunk)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The statement inserting `n` events, its placeholders from `$1` (see `bind_events`).
pub(super) fn events_insert(n: usize) -> String {
    let rows = placeholder_rows(n, 8, |p| format!("({})", p.join(", ")));
    format!(
        "INSERT INTO audit_events (user_id, at, type, severity, session_id, device_id, ip, \
         detail) VALUES {}",
        rows.join(", ")
    )
}

/// A statement being built, its arguments bound one after the other.
pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds `events` to the placeholders of `events_insert`.
pub(super) fn bind_events<'q>(q: AnyQuery<'q>, events: &[&'q NewEvent]) -> AnyQuery<'q> {
    events.iter().fold(q, |q, e| bind_event(q, e))
}

/// Binds one event's eight columns, in `events_insert`'s order.
pub(super) fn bind_event<'q>(q: AnyQuery<'q>, e: &'q NewEvent) -> AnyQuery<'q> {
    q.bind(&e.user_id)
        .bind(e.at)
        .bind(e.kind)
        .bind(e.severity)
        .bind(&e.session_id)
        .bind(&e.device_id)
        .bind(&e.ip)
        .bind(&e.detail)
}
