//! Baton's revocation feed ([`Options::revocation_feed`](crate::Options::revocation_feed)):
//! one task per verifier asks `GET /auth/revocations` every second and keeps the sessions it
//! lists for as long as their tokens may live, so [`Verifier::verify`](crate::Verifier::verify)
//! refuses a signed-out session's tokens within about a second, without a request per token.
//! The rule of when the feed is too old to trust is pure ([`Feed::check`]), the clock passed in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A feed that has not answered for this long makes every check fail (503) rather than accept
/// tokens that may have been signed out meanwhile.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// How often the feed is asked.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// What the feed said so far.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Revoked sessions, until when to refuse them.
    revoked: HashMap<String, Instant>,
    /// The `next` of the last answer.
    cursor: Option<i64>,
    /// When the feed last answered.
    answered: Option<Instant>,
}

/// One answer of the feed.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Answer {
    revoked: Vec<Revoked>,
    next: i64,
    keep: u64,
}

#[derive(Debug, serde::Deserialize)]
struct Revoked {
    sid: String,
}

/// What the feed says of a session now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Live,
    Revoked,
    /// Never answered, or not for [`STALE_AFTER`].
    Unknown,
}

impl Feed {
    /// The `since` of the next request.
    pub(crate) fn cursor(&self) -> Option<i64> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).cursor
    }

    /// Takes in an answer received at `now`.
    pub(crate) fn take(&self, answer: Answer, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = now + Duration::from_secs(answer.keep);
        for r in answer.revoked {
            s.revoked.insert(r.sid, until);
        }
        s.revoked.retain(|_, u| *u > now);
        s.cursor = Some(answer.next);
        s.answered = Some(now);
    }

    /// The session `sid` at `now`.
    pub(crate) fn check(&self, sid: &str, now: Instant) -> Verdict {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.answered {
            Some(at) if now.saturating_duration_since(at) <= STALE_AFTER => {}
            _ => return Verdict::Unknown,
        }
        match s.revoked.get(sid) {
            Some(until) if *until > now => Verdict::Revoked,
            _ => Verdict::Live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(sids: &[&str], next: i64, keep: u64) -> Answer {
        Answer {
            revoked: sids
                .iter()
                .map(|s| Revoked {
                    sid: (*s).to_owned(),
                })
                .collect(),
            next,
            keep,
        }
    }

    #[test]
    fn sessions_are_refused_while_their_tokens_may_live_and_a_silent_feed_is_not_trusted() {
        let feed = Feed::default();
        let t0 = Instant::now();
        assert_eq!(feed.check("a", t0), Verdict::Unknown);
        feed.take(answer(&["a"], 10, 60), t0);
        assert_eq!(feed.cursor(), Some(10));
        assert_eq!(feed.check("a", t0), Verdict::Revoked);
        assert_eq!(feed.check("b", t0), Verdict::Live);
        // Listed again by the next answer (the overlap): still refused, once.
        feed.take(answer(&["a"], 20, 60), t0 + Duration::from_secs(1));
        assert_eq!(
            feed.check("a", t0 + Duration::from_secs(2)),
            Verdict::Revoked
        );
        // Silent for longer than STALE_AFTER: nothing is trusted.
        let late = t0 + Duration::from_secs(1) + STALE_AFTER + Duration::from_secs(1);
        assert_eq!(feed.check("b", late), Verdict::Unknown);
        // Past `keep`, a listed session is forgotten (its tokens have all expired).
        let much_later = t0 + Duration::from_secs(100);
        feed.take(answer(&[], 30, 60), much_later);
        assert_eq!(feed.check("a", much_later), Verdict::Live);
    }
}
