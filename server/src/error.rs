//! One error type for every layer: status and code mapping in one place (its HTTP answer is
//! `api::reply`).
//!
//! Database and internal failures are logged and never shown to clients; an unreachable or
//! locked database is 503 `unavailable` with `Retry-After`, not a 500.

use baton_core::ErrorCode;
use http::StatusCode;
use std::borrow::Cow;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub retry_after: Option<u64>,
    /// A 401 about a DPoP-bound token or proof: the challenge is `DPoP`, not `Bearer`.
    pub dpop: bool,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            dpop: false,
        }
    }

    pub fn unauthorized(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            message,
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "not found")
    }

    pub fn too_many(code: ErrorCode, retry_after: u64) -> Self {
        let message = match code {
            ErrorCode::AccountLocked => "account temporarily locked after repeated failed logins",
            _ => "too many requests",
        };
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    pub fn unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the service is temporarily unavailable",
        );
        e.retry_after = Some(1);
        e
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            Self::unavailable()
        } else {
            tracing::error!(error = %e, "database error");
            Self::internal()
        }
    }
}

/// Errors that mean "the database cannot answer right now" rather than "the server is broken".
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR (10), SQLITE_FULL (13:
            // the disk is full) and their extended codes; PostgreSQL: class 08 (connection), 53
            // (resources, among them 53100 disk full), 57P0x (shutdown), 57014 (statement
            // timeout: a lock held too long), 55P03 (lock not available), and the transaction
            // rollbacks 40001 (serialization) and 40P01 (deadlock).
            let code = db.code().unwrap_or_default();
            let sqlite_busy = code
                .parse::<i64>()
                .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13));
            sqlite_busy
                || code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(&*code, "57014" | "55P03" | "40001" | "40P01")
        }
        _ => false,
    }
}

/// Errors after which the whole transaction was rolled back by the database and may simply be
/// run again: PostgreSQL serialization failures and deadlocks.
pub fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A database error with a given code, as a driver reports it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "database error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            "test"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn status(code: &'static str) -> StatusCode {
        ApiError::from(sqlx::Error::Database(Box::new(Coded(code)))).status
    }

    #[test]
    fn a_full_disk_or_a_busy_database_is_503_not_500() {
        // SQLite: SQLITE_FULL (13), SQLITE_IOERR_WRITE (778 = 10 | 3 << 8), SQLITE_BUSY (5),
        // SQLITE_BUSY_SNAPSHOT (517); PostgreSQL: disk full, too many connections.
        for code in ["13", "778", "5", "517", "53100", "53300", "40001"] {
            assert_eq!(status(code), StatusCode::SERVICE_UNAVAILABLE, "{code}");
        }
        // A constraint violation or a syntax error is a bug: 500.
        for code in ["2067", "1", "23505", "42601"] {
            assert_eq!(status(code), StatusCode::INTERNAL_SERVER_ERROR, "{code}");
        }
    }
}
