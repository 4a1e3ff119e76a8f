//! This instance's memory of sessions it has seen, and of addresses verified elsewhere.

use super::{SessionRow, UserRow};

/// Immutable parts of sessions (and their users) seen by this instance, so a refresh can check
/// the token's MAC without reading the row. Nothing cached here changes, except what a user's
/// access tokens carry (the address, its verification, roles): the instance that changes it
/// forgets the user at once (`forget_user`), the others within about a second (`ChangeWatch`).
#[derive(Debug, Default)]
pub struct SessionCache {
    map: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<(SessionRow, UserRow)>>>,
}

const SESSION_CACHE_MAX: usize = 100_000;

impl SessionCache {
    pub fn get(&self, id: &str) -> Option<std::sync::Arc<(SessionRow, UserRow)>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Forgets the sessions of a user whose row changed (a verified address, roles), so this
    /// instance's next refresh reads it again. Other instances learn of it through
    /// `ChangeWatch`; `/auth/me` reads the row every time.
    pub fn forget_user(&self, user_id: &str) {
        self.forget_users(&[user_id]);
    }

    /// Forgets the sessions of all these users, in one pass over the cache.
    pub fn forget_users(&self, user_ids: &[impl AsRef<str>]) {
        if user_ids.is_empty() {
            return;
        }
        let users: std::collections::HashSet<&str> = user_ids.iter().map(AsRef::as_ref).collect();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| !users.contains(e.1.id.as_str()));
    }

    pub fn insert(&self, s: SessionRow, u: UserRow) -> std::sync::Arc<(SessionRow, UserRow)> {
        let entry = std::sync::Arc::new((s, u));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SESSION_CACHE_MAX {
            map.clear();
        }
        map.insert(entry.0.id.clone(), entry.clone());
        entry
    }
}

/// Users changed by any instance (`users.changed_at`: an address verified or changed, roles,
/// an account deleted), found by asking the database every second (on PostgreSQL, where
/// instances share it), so that this instance's `SessionCache` forgets those users and its
/// next access tokens carry what they hold now. Pure: the clock is passed in.
#[derive(Debug, Default)]
pub struct ChangeWatch {
    /// Changes (user, when) already handled, until they are older than the margin.
    handled: std::collections::HashSet<(String, i64)>,
}

impl ChangeWatch {
    /// How far back each question looks: other instances' clocks may lag, and their
    /// transactions commit a moment after the time they wrote.
    pub const MARGIN_MS: i64 = 30_000;

    /// Rows read from the database at a time.
    pub const PAGE: u32 = 1_000;

    /// From when to ask at `now`.
    pub fn since(now: i64) -> i64 {
        now - Self::MARGIN_MS
    }

    /// The users of `rows` (id, changed at) whose change was not handled before.
    pub fn fresh(&mut self, rows: Vec<(String, i64)>, now: i64) -> Vec<String> {
        self.handled.retain(|(_, at)| *at >= Self::since(now));
        rows.into_iter()
            .filter(|row| self.handled.insert(row.clone()))
            .map(|(id, _)| id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeWatch as VerifiedWatch;

    #[test]
    fn each_change_is_handled_once_within_the_margin() {
        let mut w = VerifiedWatch::default();
        let now = 1_000_000;
        assert_eq!(VerifiedWatch::since(now), now - VerifiedWatch::MARGIN_MS);
        let rows = vec![("a".to_owned(), now - 5), ("b".to_owned(), now - 1)];
        assert_eq!(w.fresh(rows.clone(), now), ["a", "b"]);
        // Asked again a second later, the same rows come back: nothing new.
        assert!(w.fresh(rows, now + 1000).is_empty());
        let more = vec![("b".to_owned(), now - 1), ("c".to_owned(), now + 900)];
        assert_eq!(w.fresh(more, now + 1000), ["c"]);
        // A second change of the same user is news.
        let again = vec![("b".to_owned(), now - 1), ("b".to_owned(), now + 950)];
        assert_eq!(w.fresh(again, now + 1000), ["b"]);
        // Handled rows are forgotten once older than the margin.
        w.fresh(Vec::new(), now + VerifiedWatch::MARGIN_MS + 10);
        assert_eq!(w.handled.len(), 2);
    }
}
