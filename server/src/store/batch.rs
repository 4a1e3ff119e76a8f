//! Group commit, the shared part: a queue is drained into batches, and a batch holds each item
//! once (`rotator` for rotations, `dpop_proofs` for the replay table on PostgreSQL).

use crate::error::{ApiError, ApiResult};
use std::collections::HashSet;
use std::hash::Hash;
use tokio::sync::mpsc::{Receiver, Sender};
use tokio::sync::oneshot;

/// What a batch tells each of its items: the item's answer, or `Err(unavailable)` when the
/// batch failed (true: the database cannot be reached now, 503; false: another error, 500).
pub(crate) type Verdict<T> = Result<T, bool>;

/// An item queued for a batch, with the channel its verdict comes back on.
pub(crate) type Queued<I, T> = (I, oneshot::Sender<Verdict<T>>);

/// Queues `item` and waits for its verdict. The batch runs in a task of its own: an item
/// whose caller gives up meanwhile is still carried out.
pub(crate) async fn submit<I, T>(tx: &Sender<Queued<I, T>>, item: I) -> ApiResult<T> {
    let (done, verdict) = oneshot::channel();
    tx.send((item, done))
        .await
        .map_err(|_| ApiError::unavailable())?;
    match verdict.await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(true)) | Err(_) => Err(ApiError::unavailable()),
        Ok(Err(false)) => Err(ApiError::internal()),
    }
}

/// Tells every item of a failed batch; an error other than an unavailable database is logged
/// (`what` failed).
pub(crate) fn fail<I, T>(items: Vec<Queued<I, T>>, e: &sqlx::Error, what: &str) {
    let unavailable = crate::error::is_unavailable(e);
    if !unavailable {
        tracing::error!(error = %e, "{what} failed");
    }
    for (_, done) in items {
        let _ = done.send(Err(unavailable));
    }
}

/// Waits for the next item, then takes what else is queued already, `max` in all; `None` once
/// every sender is gone.
pub(crate) async fn next<T>(rx: &mut Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Splits a batch into the first item of each key and the repeats (a second rotation of one
/// session lost the race; the same proof twice is a replay of the first).
pub(crate) fn split_repeats<T, K: Hash + Eq + Clone>(
    batch: Vec<T>,
    key: impl Fn(&T) -> &K,
) -> (Vec<T>, Vec<T>) {
    let mut seen = HashSet::new();
    batch
        .into_iter()
        .partition(|item| seen.insert(key(item).clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeats_are_split_off_in_order() {
        let batch: Vec<String> = ["a", "b", "a", "c", "b", "a"].map(String::from).to_vec();
        let (first, again) = super::split_repeats(batch, |p| p);
        assert_eq!(first, ["a", "b", "c"]);
        assert_eq!(again, ["a", "b", "a"]);
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_its_size() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(super::next(&mut rx, 3).await, Some(vec![0, 1, 2]));
        assert_eq!(super::next(&mut rx, 3).await, Some(vec![3, 4]));
        drop(tx);
        assert_eq!(super::next(&mut rx, 3).await, None);
    }
}
