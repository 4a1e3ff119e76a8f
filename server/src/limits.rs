//! Abuse limits (API.md "Abuse limits"), with their state in the database so they hold across
//! every instance sharing it.
//!
//! Rate limits are sliding windows: each attempt is a row in `rate_hits`; an attempt is allowed
//! when fewer than `limit` earlier rows of its key fall in the window. Refused attempts are
//! removed again, so `Retry-After` is exactly when the oldest counted attempt leaves the window.

use crate::config::{Config, OnOff};
use crate::db::Store;
use std::time::Duration;

/// Login attempts per IP per minute.
pub const LOGIN_PER_IP: (i64, Duration) = (5, Duration::from_secs(60));
/// Failed logins per account per hour.
pub const FAILURES_PER_ACCOUNT: (i64, Duration) = (10, Duration::from_secs(3600));
/// Refreshes per session per minute.
pub const REFRESH_PER_SESSION: (i64, Duration) = (60, Duration::from_secs(60));
/// Consecutive failed logins that lock an account.
pub const LOCK_AFTER: i64 = 5;
/// Logins per account per hour above which `suspicious_activity` is recorded.
pub const SUSPICIOUS_LOGINS: i64 = 10;
/// Distinct IPs per account per hour above which `suspicious_activity` is recorded.
pub const SUSPICIOUS_IPS: i64 = 5;

#[derive(Debug)]
pub struct Limits {
    pub enabled: bool,
    pub lockout: Duration,
}

/// A refused attempt: wait this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: u64,
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        Self {
            enabled: config.rate_limits == OnOff::On,
            lockout: config.lockout_duration,
        }
    }

    /// Counts one attempt under `key`; refuses it when `limit` attempts already fall in the window.
    pub async fn hit(
        &self,
        store: &Store,
        key: &str,
        (limit, window): (i64, Duration),
        now: i64,
    ) -> Result<Result<(), Refused>, sqlx::Error> {
        if !self.enabled {
            return Ok(Ok(()));
        }
        let window_ms = window.as_millis() as i64;
        let id = store.insert_hit(key, now).await?;
        let (earlier, oldest) = store.hits_before(key, now - window_ms, id).await?;
        let verdict = judge(earlier, oldest, limit, window_ms, now);
        if verdict.is_err() {
            store.delete_hit(id).await?;
        }
        Ok(verdict)
    }

    /// Refuses when `limit` attempts under `key` fall in the window, without counting one.
    pub async fn check(
        &self,
        store: &Store,
        key: &str,
        (limit, window): (i64, Duration),
        now: i64,
    ) -> Result<Result<(), Refused>, sqlx::Error> {
        if !self.enabled {
            return Ok(Ok(()));
        }
        let window_ms = window.as_millis() as i64;
        let (count, oldest) = store.hits_before(key, now - window_ms, i64::MAX).await?;
        Ok(judge(count, oldest, limit, window_ms, now))
    }

    /// Records an attempt under `key` without checking (failed logins, counted after the fact).
    pub async fn record(&self, store: &Store, key: &str, now: i64) -> Result<(), sqlx::Error> {
        if self.enabled {
            store.insert_hit(key, now).await?;
        }
        Ok(())
    }
}

/// Allowed below `limit`; otherwise refused until the oldest counted attempt leaves the window.
fn judge(
    count: i64,
    oldest: Option<i64>,
    limit: i64,
    window_ms: i64,
    now: i64,
) -> Result<(), Refused> {
    if count < limit {
        return Ok(());
    }
    let wait_ms = (oldest.unwrap_or(now) + window_ms - now).max(1);
    Err(Refused {
        retry_after: (wait_ms as u64).div_ceil(1000),
    })
}

pub fn login_ip_key(ip: &str) -> String {
    format!("login_ip:{ip}")
}

pub fn failures_key(user_id: &str) -> String {
    format!("login_fail:{user_id}")
}

pub fn refresh_key(session_id: &str) -> String {
    format!("refresh:{session_id}")
}
