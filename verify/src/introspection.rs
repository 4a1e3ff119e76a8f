//! Introspection answers kept for a short while ([`Options::introspection_cache`]), so a busy
//! service does not ask Baton once per request. The price is said plainly: a session signed out
//! meanwhile is refused up to that much later. Keyed by the SHA-256 of the token (the cache
//! holds no tokens); the clock is passed in.
//!
//! With the cache on, checks of one token that arrive while Baton is being asked wait for that
//! answer instead of asking again, so a burst of requests with a new token costs Baton one
//! request. An error is shared the same way (and not kept); a check whose caller gave up hands
//! the asking to the next one waiting. Without the cache every check asks on its own: a live
//! check never takes an answer asked before it arrived.
//!
//! [`Options::introspection_cache`]: crate::Options::introspection_cache

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Answers kept at most; when full, the expired ones go, then all.
const MAX_ANSWERS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct Answers {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
    /// The questions under way, one per token.
    asking: Mutex<HashMap<[u8; 32], Asking>>,
}

type Asking = Arc<OnceCell<Result<bool, crate::Error>>>;

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Answers {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::default(),
            asking: Mutex::default(),
        }
    }

    /// The answer for `token`: kept, being asked by another check, or asked now with `ask`
    /// (which is given the time it starts, from `now`).
    pub(crate) async fn answer<F, Fut>(
        &self,
        token: &str,
        now: impl Fn() -> Instant,
        ask: F,
    ) -> Result<bool, crate::Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, crate::Error>>,
    {
        if self.ttl.is_zero() {
            return ask().await;
        }
        if let Some(active) = self.get(token, now()) {
            return Ok(active);
        }
        let k = key(token);
        let waiting = Waiting {
            asking: &self.asking,
            key: k,
            cell: Some(
                self.asking
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(k)
                    .or_default()
                    .clone(),
            ),
        };
        let answer = waiting
            .cell()
            .get_or_init(|| async {
                let asked = now();
                let answer = ask().await;
                if let Ok(active) = answer {
                    self.put(token, active, asked);
                }
                answer
            })
            .await
            .clone();
        drop(waiting);
        answer
    }

    /// The answer for `token` asked at most `ttl` before `now`.
    pub(crate) fn get(&self, token: &str, now: Instant) -> Option<bool> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (active, asked) = map.get(&key(token))?;
        (now.saturating_duration_since(*asked) < self.ttl).then_some(*active)
    }

    /// Keeps Baton's answer for `token`, asked at `asked`.
    pub(crate) fn put(&self, token: &str, active: bool, asked: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ANSWERS {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| asked.saturating_duration_since(*at) < ttl);
            if map.len() >= MAX_ANSWERS {
                map.clear();
            }
        }
        map.insert(key(token), (active, asked));
    }
}

/// One check waiting on a question; when the last one is done (answered or given up), the
/// question goes from the list.
struct Waiting<'a> {
    asking: &'a Mutex<HashMap<[u8; 32], Asking>>,
    key: [u8; 32],
    cell: Option<Asking>,
}

impl Waiting<'_> {
    fn cell(&self) -> &Asking {
        self.cell.as_ref().expect("taken only when dropped")
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut asking = self.asking.lock().unwrap_or_else(|e| e.into_inner());
        // Every clone but the list's is made and dropped under this lock.
        let Some(cell) = self.cell.take() else { return };
        let listed = asking.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, &cell));
        drop(cell);
        if listed
            && asking
                .get(&self.key)
                .is_some_and(|c| Arc::strong_count(c) == 1)
        {
            asking.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn an_answer_is_kept_for_the_ttl_only() {
        let t0 = Instant::now();
        let a = Answers::new(Duration::from_secs(2));
        assert_eq!(a.get("tok", t0), None);
        a.put("tok", true, t0);
        assert_eq!(a.get("tok", t0 + Duration::from_millis(1999)), Some(true));
        assert_eq!(a.get("tok", t0 + Duration::from_secs(2)), None);
        assert_eq!(a.get("other", t0), None);
        a.put("tok", false, t0 + Duration::from_secs(3));
        assert_eq!(a.get("tok", t0 + Duration::from_secs(4)), Some(false));
    }

    /// An `ask` that counts its calls and answers `answer` once `open` is notified.
    fn asker<'a>(
        calls: &'a AtomicUsize,
        open: &'a tokio::sync::Notify,
        answer: Result<bool, crate::Error>,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<bool, crate::Error>> + 'a>>
    {
        move || {
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                open.notified().await;
                answer
            })
        }
    }

    fn asking(a: &Answers) -> usize {
        a.asking.lock().unwrap().len()
    }

    #[tokio::test]
    async fn checks_of_one_token_under_way_share_one_question() {
        let a = Answers::new(Duration::from_secs(2));
        let (calls, open) = (AtomicUsize::new(0), tokio::sync::Notify::new());
        let checks = (0..20).map(|_| a.answer("tok", Instant::now, asker(&calls, &open, Ok(true))));
        let all = futures_join(checks, &open).await;
        assert_eq!(all, vec![Ok(true); 20]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(asking(&a), 0, "nothing left behind");
        assert_eq!(a.get("tok", Instant::now()), Some(true));
    }

    #[tokio::test]
    async fn an_error_is_shared_but_not_kept() {
        let a = Answers::new(Duration::from_secs(2));
        let (calls, open) = (AtomicUsize::new(0), tokio::sync::Notify::new());
        let down = Err(crate::Error::Unavailable("down".into()));
        let checks =
            (0..5).map(|_| a.answer("tok", Instant::now, asker(&calls, &open, down.clone())));
        assert_eq!(futures_join(checks, &open).await, vec![down; 5]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(asking(&a), 0);
        open.notify_one();
        assert_eq!(
            a.answer("tok", Instant::now, asker(&calls, &open, Ok(false)))
                .await,
            Ok(false)
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "asked again after the error"
        );
    }

    #[tokio::test]
    async fn a_check_given_up_hands_the_question_on() {
        let a = Answers::new(Duration::from_secs(2));
        let (calls, open) = (AtomicUsize::new(0), tokio::sync::Notify::new());
        let mut first = Box::pin(a.answer("tok", Instant::now, asker(&calls, &open, Ok(true))));
        let mut second = Box::pin(a.answer("tok", Instant::now, asker(&calls, &open, Ok(true))));
        // Both start; the first asks, the second waits on it.
        assert!(futures_poll(first.as_mut()).is_none());
        assert!(futures_poll(second.as_mut()).is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(first);
        assert!(futures_poll(second.as_mut()).is_none());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the waiting check asks itself"
        );
        open.notify_one();
        assert_eq!(second.await, Ok(true));
        assert_eq!(asking(&a), 0);
        // All given up: nothing is left in the list either.
        let mut given_up =
            Box::pin(a.answer("other", Instant::now, asker(&calls, &open, Ok(true))));
        assert!(futures_poll(given_up.as_mut()).is_none());
        assert_eq!(asking(&a), 1);
        drop(given_up);
        assert_eq!(asking(&a), 0);
    }

    #[tokio::test]
    async fn without_the_cache_every_check_asks() {
        let a = Answers::new(Duration::ZERO);
        let (calls, open) = (AtomicUsize::new(0), tokio::sync::Notify::new());
        let checks = (0..3).map(|_| a.answer("tok", Instant::now, asker(&calls, &open, Ok(true))));
        assert_eq!(futures_join(checks, &open).await, vec![Ok(true); 3]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    /// Polls every check until each waits, then lets the questions answer, and collects.
    async fn futures_join<F: Future>(
        checks: impl Iterator<Item = F>,
        open: &tokio::sync::Notify,
    ) -> Vec<F::Output> {
        let mut checks: Vec<_> = checks.map(Box::pin).collect();
        for c in &mut checks {
            assert!(futures_poll(c.as_mut()).is_none());
        }
        open.notify_waiters();
        let mut out = Vec::new();
        for c in checks {
            out.push(c.await);
        }
        out
    }

    /// One poll with a no-op waker.
    fn futures_poll<F: Future + ?Sized>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let t0 = Instant::now();
        let a = Answers::new(Duration::ZERO);
        a.put("tok", true, t0);
        assert_eq!(a.get("tok", t0), None);
    }
}
