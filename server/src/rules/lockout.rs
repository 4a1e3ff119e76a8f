//! The login lockout rule. Pure and clock-injected; `login_failures` in the database holds the
//! counters (see `Store::reserve_login_attempt`, `store::limits`).
//!
//! Failures are counted per account **and source**. The source is the device (`X-Device-ID`)
//! when that device has signed in to the account successfully before; every other attempt
//! (unknown devices, no device id, any address) shares the account's `untrusted` source.
//!
//! - Five consecutive failures from one source lock that source only: the account's own known
//!   devices keep signing in while strangers hammer it. Locks grow: the n-th lock in a row lasts
//!   `BATON_LOCKOUT_DURATION` × 2^(n-1), at most a day. A success from a source clears its
//!   counters; locks older than a day are forgotten.
//! - An attempt is counted **before** its password is checked (and given back if it succeeds),
//!   so however many arrive at once, on however many instances, at most five passwords are
//!   checked per source between locks.
//! - An attempt whose request is given up before its password is checked is given back; one
//!   left counted by a crash stops counting after `ABANDONED_AFTER`.
//! - On top, each source may fail at most ten times an hour (`limits`).

use std::time::Duration;

/// Consecutive failures that lock a source.
pub const LOCK_AFTER: i64 = 5;
/// The longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(24 * 3600);
/// After this long without a lock, the next lock is a first lock again.
pub const FORGET_LOCKS_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A source counted full without a lock, untouched this long, holds attempts that were never
/// settled (the process died between counting one and checking its password): the next
/// attempt starts counting anew instead of the source staying shut for good. Far longer than
/// any request may take (`BATON_REQUEST_TIMEOUT`).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// The source shared by every attempt not from a known device.
pub const UNTRUSTED: &str = "untrusted";

/// The source of an attempt: its device when that device signed in to the account before.
pub fn source(device_id: Option<&str>, known_device: bool) -> String {
    match device_id {
        Some(d) if known_device => format!("device:{d}"),
        _ => UNTRUSTED.to_owned(),
    }
}

/// How long the `nth` lock in a row lasts (1-based).
pub fn lock_duration(nth: i64, base: Duration) -> Duration {
    let doublings = u32::try_from(nth.saturating_sub(1).max(0))
        .unwrap_or(u32::MAX)
        .min(20);
    base.saturating_mul(1u32 << doublings)
        .min(MAX_LOCK)
        .max(base.min(MAX_LOCK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_up_to_a_day() {
        let base = Duration::from_secs(900);
        assert_eq!(lock_duration(1, base), base);
        assert_eq!(lock_duration(2, base), base * 2);
        assert_eq!(lock_duration(3, base), base * 4);
        assert_eq!(lock_duration(7, base), base * 64);
        assert_eq!(lock_duration(8, base), MAX_LOCK);
        assert_eq!(lock_duration(1_000, base), MAX_LOCK);
        assert_eq!(lock_duration(0, base), base);
    }

    #[test]
    fn only_known_devices_get_a_source_of_their_own() {
        assert_eq!(source(Some("abc"), true), "device:abc");
        assert_eq!(source(Some("abc"), false), UNTRUSTED);
        assert_eq!(source(None, true), UNTRUSTED);
    }
}
