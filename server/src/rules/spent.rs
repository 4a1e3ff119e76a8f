//! What a spent refresh token means: a concurrent refresh, a retried request, or theft.
//!
//! Pure and clock-injected: the caller passes the session's facts and `now`, so every rule is
//! tested without a database or a clock.
//!
//! A token is spent once its session rotated past it. Presenting it again is judged so:
//! - **Grace**: the immediate predecessor of the current token (its successor was never used),
//!   from the device that rotated it, within `BATON_REUSE_GRACE` of the rotation: two tabs
//!   refreshed at once. The same successor is returned again.
//! - **Retry**: the same, after the grace window but within `BATON_REFRESH_RECOVERY`, and
//!   carrying the `Idempotency-Key` of the request that made the rotation: that request's
//!   response was lost (a crash, a network drop, a timeout) and the client sends it again. The
//!   same successor is returned again.
//! - **Theft**: anything else.
//!
//! A thief replaying a stolen token does not hold the key of the legitimate client's request
//! (the client keeps it in memory, never in storage), so theft detection is as strict as
//! without retries.

/// The facts about a session that decide what a spent token means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpentFacts {
    /// Generation of the presented token.
    pub presented: i64,
    /// The session's current generation.
    pub generation: i64,
    /// When the session last rotated (unix ms).
    pub rotated_at: i64,
    /// Whether the caller is the device that made the last rotation.
    pub same_device: bool,
    /// Whether the caller sent the `Idempotency-Key` of the request that made the last
    /// rotation.
    pub same_request: bool,
}

/// The verdict on a spent token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    Grace,
    Retry,
    Theft,
}

/// Judges a spent token at `now` (unix ms) with the grace and recovery windows (ms).
pub fn judge(f: SpentFacts, now: i64, grace_ms: i64, recovery_ms: i64) -> Spent {
    let predecessor = f.presented + 1 == f.generation;
    if !predecessor || !f.same_device {
        return Spent::Theft;
    }
    let since = now - f.rotated_at;
    if since <= grace_ms {
        Spent::Grace
    } else if f.same_request && since <= recovery_ms {
        Spent::Retry
    } else {
        Spent::Theft
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: i64 = 10_000;
    const RECOVERY: i64 = 3_600_000;
    const ROTATED: i64 = 1_000_000;

    fn retried() -> SpentFacts {
        SpentFacts {
            presented: 4,
            generation: 5,
            rotated_at: ROTATED,
            same_device: true,
            same_request: true,
        }
    }

    #[test]
    fn concurrent_refresh_within_grace() {
        let other_request = SpentFacts {
            same_request: false,
            ..retried()
        };
        assert_eq!(
            judge(other_request, ROTATED + GRACE, GRACE, RECOVERY),
            Spent::Grace
        );
    }

    #[test]
    fn a_retried_request_gets_its_successor_within_the_recovery_window() {
        assert_eq!(
            judge(retried(), ROTATED + GRACE + 1, GRACE, RECOVERY),
            Spent::Retry
        );
        assert_eq!(
            judge(retried(), ROTATED + RECOVERY, GRACE, RECOVERY),
            Spent::Retry
        );
        assert_eq!(
            judge(retried(), ROTATED + RECOVERY + 1, GRACE, RECOVERY),
            Spent::Theft
        );
        assert_eq!(
            judge(retried(), ROTATED + GRACE + 1, GRACE, 0),
            Spent::Theft
        );
    }

    #[test]
    fn after_grace_without_the_request_key_is_theft() {
        let replay = SpentFacts {
            same_request: false,
            ..retried()
        };
        assert_eq!(
            judge(replay, ROTATED + GRACE + 1, GRACE, RECOVERY),
            Spent::Theft
        );
    }

    #[test]
    fn other_device_or_a_used_successor_is_theft() {
        let other = SpentFacts {
            same_device: false,
            ..retried()
        };
        assert_eq!(judge(other, ROTATED + 1, GRACE, RECOVERY), Spent::Theft);
        let older = SpentFacts {
            presented: 3,
            ..retried()
        };
        assert_eq!(judge(older, ROTATED + 1, GRACE, RECOVERY), Spent::Theft);
        assert_eq!(
            judge(older, ROTATED + GRACE + 1, GRACE, RECOVERY),
            Spent::Theft
        );
    }
}
