//! Group commit for rotations (see `Store::rotate_batch`).

use super::{batch, OwnedRotation, Store};
use crate::error::ApiResult;

/// How one rotation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// Rotated, its event (and DPoP proof) stored.
    Yes,
    /// The compare-and-swap did not match (a spent token, a revoked or expired session, or a
    /// second rotation of the session in the batch); `proof_recorded` tells whether its DPoP
    /// proof was written all the same (as used: it was).
    No { proof_recorded: bool },
    /// Not tried: its DPoP proof was used before.
    ProofReplayed,
}

/// Group commit for rotations: concurrent refreshes queue here and go to the database as one
/// statement per batch, so the database's per-statement cost is paid once per batch.
#[derive(Debug, Clone)]
pub struct Rotator {
    tx: tokio::sync::mpsc::Sender<batch::Queued<OwnedRotation, Rotated>>,
}

const ROTATION_BATCH: usize = 64;

impl Rotator {
    pub fn spawn(store: Store) -> Self {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<batch::Queued<OwnedRotation, Rotated>>(4_096);
        tokio::spawn(async move {
            while let Some(batch) = batch::next(&mut rx, ROTATION_BATCH).await {
                // One rotation per session per batch: a second one for the same session
                // lost the race and is judged by the careful path (grace or reuse).
                let (unique, duplicate) = batch::split_repeats(batch, |(r, _)| &r.session_id);
                for (_, done) in duplicate {
                    let _ = done.send(Ok(Rotated::No {
                        proof_recorded: false,
                    }));
                }
                let mut rows: Vec<OwnedRotation> = unique.iter().map(|(r, _)| r.clone()).collect();
                // One lock order for every instance's batches: no deadlock between them.
                rows.sort_by(|a, b| a.session_id.cmp(&b.session_id));
                let mut outcome = store.rotate_batch(&rows).await;
                for _ in 0..3 {
                    // A serialization failure or deadlock rolled the whole batch back: retrying
                    // it cannot apply anything twice.
                    match &outcome {
                        Err(e) if crate::error::is_retryable(e) => {
                            outcome = store.rotate_batch(&rows).await;
                        }
                        _ => break,
                    }
                }
                match outcome {
                    Ok(outcome) => {
                        for (r, done) in unique {
                            let verdict = if outcome.replayed.contains(&r.session_id) {
                                Rotated::ProofReplayed
                            } else if outcome.rotated.contains(&r.session_id) {
                                Rotated::Yes
                            } else {
                                Rotated::No {
                                    proof_recorded: r.proof.is_some(),
                                }
                            };
                            let _ = done.send(Ok(verdict));
                        }
                    }
                    Err(e) => batch::fail(unique, &e, "rotation batch"),
                }
            }
        });
        Self { tx }
    }

    /// Whether the rotation happened (the compare-and-swap matched).
    pub async fn rotate(&self, r: OwnedRotation) -> ApiResult<Rotated> {
        batch::submit(&self.tx, r).await
    }
}
