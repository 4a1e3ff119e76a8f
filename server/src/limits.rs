//! Abuse limits (docs/api.md "Abuse limits"), with their state in the database so they hold across
//! every instance sharing it.
//!
//! Rate limits are sliding windows: each attempt is a row in `rate_hits`; an attempt is allowed
//! when fewer than `limit` earlier rows of its key fall in the window. Refused attempts are
//! removed again, so `Retry-After` is exactly when the oldest counted attempt leaves the window.
//!
//! A refusal is also remembered here until it lifts: further attempts under that key are
//! refused without touching the database (the answer could only be the same or longer, since
//! other instances can only add attempts), so a flood of refused requests costs no writes.

use crate::config::{Config, RateLimits};
use crate::store::Store;
use std::time::Duration;

/// Login attempts per IP per minute.
pub const LOGIN_PER_IP: (i64, Duration) = (5, Duration::from_secs(60));
/// Registrations per IP per ten minutes.
pub const REGISTER_PER_IP: (i64, Duration) = (10, Duration::from_secs(600));
/// Failed logins per account and source (see `lockout`) per hour.
pub const FAILURES_PER_ACCOUNT: (i64, Duration) = (10, Duration::from_secs(3600));
/// Refreshes per session per minute.
pub const REFRESH_PER_SESSION: (i64, Duration) = (60, Duration::from_secs(60));
/// Mails (sign-in codes, reset links) per address and requester (device id, else client
/// address) per ten minutes. Every request counts, known address or not, so the answer says
/// nothing about accounts; a stranger's requests count apart from the owner's.
pub const OTP_PER_EMAIL: (i64, Duration) = (3, Duration::from_secs(600));
/// Mails per address per ten minutes, whoever asks, except from a device the account has
/// signed in from before: bounds how much mail strangers can send one mailbox without letting
/// them keep its owner out on a known device.
pub const OTP_PER_ADDRESS: (i64, Duration) = (10, Duration::from_secs(600));
/// Emailed sign-in codes requested per IP per ten minutes.
pub const OTP_PER_IP: (i64, Duration) = (20, Duration::from_secs(600));
/// Code and link verifications per IP per ten minutes (a code also dies after 5 tries).
pub const OTP_VERIFY_PER_IP: (i64, Duration) = (30, Duration::from_secs(600));
/// Passkey sign-in ceremonies started per IP per ten minutes (a page with passkey autofill
/// starts one per visit).
pub const PASSKEY_OPTIONS_PER_IP: (i64, Duration) = (60, Duration::from_secs(600));
/// Passkey answers (sign-in, second factor) checked per IP per ten minutes.
pub const PASSKEY_VERIFY_PER_IP: (i64, Duration) = (30, Duration::from_secs(600));
/// Passkey registrations started or finished per account per ten minutes.
pub const PASSKEY_REGISTER_PER_USER: (i64, Duration) = (30, Duration::from_secs(600));
/// Identity-provider flows started (sign-in or link) per IP per ten minutes.
pub const OAUTH_START_PER_IP: (i64, Duration) = (30, Duration::from_secs(600));
/// Provider callbacks and one-time code exchanges per IP per ten minutes.
pub const OAUTH_FINISH_PER_IP: (i64, Duration) = (30, Duration::from_secs(600));
/// Refused DPoP proofs per session per ten minutes that are recorded as audit events; further
/// refusals are counted in metrics only, so a thief's flood cannot flood the owner's log.
pub const DPOP_REFUSALS_RECORDED: (i64, Duration) = (5, Duration::from_secs(600));
/// Introspection requests with a missing or wrong secret per client address per minute.
pub const INTROSPECT_FAILURES_PER_IP: (i64, Duration) = (10, Duration::from_secs(60));
/// Admin API requests with a missing or wrong admin token per client address per minute.
pub const ADMIN_FAILURES_PER_IP: (i64, Duration) = (10, Duration::from_secs(60));
/// Logins per account per hour above which `suspicious_activity` is recorded.
pub const SUSPICIOUS_LOGINS: i64 = 10;
/// Distinct IPs per account per hour above which `suspicious_activity` is recorded.
pub const SUSPICIOUS_IPS: i64 = 5;

#[derive(Debug)]
pub struct Limits {
    pub enabled: bool,
    /// Attempts allowed per window are multiplied by this (`relaxed`: 10).
    scale: i64,
    pub lockout: Duration,
    refusals: Refusals,
}

/// A refused attempt: wait this many seconds. `first` is set for the first refusal of its key
/// until the limit lifts (the one worth an audit event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: u64,
    pub first: bool,
}

/// Keys refused until a time (unix ms), remembered by this instance.
#[derive(Debug, Default)]
pub struct Refusals {
    until: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// Remembered refusals at most; past it, lifted ones are dropped first, then all.
const REFUSALS_MAX: usize = 100_000;

impl Refusals {
    /// The refusal still in force for `key` at `now`.
    pub fn current(&self, key: &str, now: i64) -> Option<Refused> {
        let map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        let until = *map.get(key)?;
        (until > now).then(|| Refused {
            retry_after: ((until - now) as u64).div_ceil(1000),
            first: false,
        })
    }

    /// Remembers a refusal found in the database.
    pub fn remember(&self, key: &str, now: i64, refused: Refused) {
        let mut map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= REFUSALS_MAX {
            map.retain(|_, until| *until > now);
            if map.len() >= REFUSALS_MAX {
                map.clear();
            }
        }
        map.insert(key.to_owned(), now + refused.retry_after as i64 * 1000);
    }
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        Self {
            enabled: config.rate_limits != RateLimits::Off,
            scale: if config.rate_limits == RateLimits::Relaxed {
                10
            } else {
                1
            },
            lockout: config.lockout_duration,
            refusals: Refusals::default(),
        }
    }

    /// The refusal this instance remembers for `key` at `now`, if one is in force: a call
    /// that would be refused anyway can be answered before any other work.
    pub fn refused_now(&self, key: &str, now: i64) -> Option<Refused> {
        if !self.enabled {
            return None;
        }
        self.refusals.current(key, now)
    }

    /// `limit` as the setting scales it; `None` with limits off.
    pub fn scaled(&self, limit: i64) -> Option<i64> {
        self.enabled.then(|| limit.saturating_mul(self.scale))
    }

    /// Counts one attempt under `key`; refuses it when `limit` attempts already fall in the
    /// window. The counted attempt's row id comes back (`None` with limits off), so an attempt
    /// can be given back (`Store::delete_hit`).
    pub async fn hit(
        &self,
        store: &Store,
        key: &str,
        (limit, window): (i64, Duration),
        now: i64,
    ) -> Result<Result<Option<i64>, Refused>, sqlx::Error> {
        if !self.enabled {
            return Ok(Ok(None));
        }
        let limit = limit.saturating_mul(self.scale);
        if let Some(refused) = self.refusals.current(key, now) {
            return Ok(Err(refused));
        }
        let window_ms = window.as_millis() as i64;
        let (id, earlier, oldest) = store.insert_hit(key, now, now - window_ms).await?;
        let verdict = judge(earlier, oldest, limit, window_ms, now);
        if let Err(refused) = verdict {
            store.delete_hit(id).await?;
            self.refusals.remember(key, now, refused);
        }
        Ok(verdict.map(|()| Some(id)))
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
        first: true,
    })
}

pub fn login_ip_key(ip: &str) -> String {
    format!("login_ip:{ip}")
}

pub fn register_ip_key(ip: &str) -> String {
    format!("register_ip:{ip}")
}

pub fn failures_key(user_id: &str, source: &str) -> String {
    format!("login_fail:{user_id}:{source}")
}

pub fn dpop_refusal_key(session_id: &str) -> String {
    format!("dpop_refused:{session_id}")
}

pub fn refresh_key(session_id: &str) -> String {
    format!("refresh:{session_id}")
}
