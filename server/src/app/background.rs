//! Background work of an instance: the revocation view's polling, key reloads, verified
//! addresses seen by other instances, and the periodic purges.

use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::events_file;
use crate::store::session_cache::ChangeWatch;
use std::time::Duration;

/// How often every instance re-reads the signing keys (a rotation takes effect that fast).
pub const KEY_RELOAD: Duration = Duration::from_secs(2);

/// `SIGHUP` reopens the events file (log rotation: move the file away, then signal).
pub(crate) fn reopen_on_sighup(sink: events_file::Sink) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be handled: BATON_EVENTS_FILE is not reopened");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reopening BATON_EVENTS_FILE");
            sink.reopen();
        }
    });
    #[cfg(not(unix))]
    let _ = sink;
}

/// Background work of an instance: the revocation view's polling and the periodic purge.
pub fn spawn(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::store::revocation::POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = std::time::Instant::now();
        let mut last_hits_purge = std::time::Instant::now();
        let mut last_key_reload = std::time::Instant::now();
        let mut last_verified = std::time::Instant::now();
        let mut changed = ChangeWatch::default();
        loop {
            tick.tick().await;
            // Users changed by another instance (or by `baton-server admin` on this machine):
            // one indexed read a second, on either database.
            if last_verified.elapsed() >= Duration::from_secs(1) {
                last_verified = std::time::Instant::now();
                let now = now_ms();
                let since = ChangeWatch::since(now);
                match tokio::time::timeout(
                    Duration::from_secs(2),
                    state.store.changed_since(since, ChangeWatch::PAGE),
                )
                .await
                {
                    Ok(Ok(rows)) => {
                        let fresh = changed.fresh(rows, now);
                        state.session_cache.forget_users(&fresh);
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "changed-users poll failed"),
                    Err(_) => tracing::debug!("changed-users poll timed out"),
                }
            }
            if last_hits_purge.elapsed() >= Duration::from_secs(60) {
                last_hits_purge = std::time::Instant::now();
                // Every rate-limit window is at most an hour long.
                let before = now_ms() - 3_600_000;
                if let Err(e) = state.store.purge_hits(before).await {
                    tracing::debug!(error = %e, "rate-limit purge failed");
                }
                state.dpop_replay.purge(&state.store, now_ms()).await;
                // Still issuing tokens of this lifetime: every instance keeps revocations that
                // long (see `revocation`).
                let ttl = state.config.access_ttl.as_millis() as i64;
                if let Err(e) = state.store.record_access_ttl(ttl, now_ms()).await {
                    tracing::debug!(error = %e, "recording the access-token lifetime failed");
                }
            }
            match tokio::time::timeout(Duration::from_secs(2), state.revoked.sync(&state.store))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "revocation sync failed"),
                Err(_) => tracing::debug!("revocation sync timed out"),
            }
            if last_key_reload.elapsed() >= KEY_RELOAD {
                last_key_reload = std::time::Instant::now();
                match tokio::time::timeout(Duration::from_secs(2), state.keys.reload(&state.store))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "reloading the signing keys failed"),
                    Err(_) => tracing::debug!("reloading the signing keys timed out"),
                }
            }
            if last_purge.elapsed() >= state.config.purge_interval {
                last_purge = std::time::Instant::now();
                purge(&state).await;
            }
        }
    })
}

/// Deletes ended sessions and old audit events past their retention, and expired mailed
/// codes and tokens.
pub async fn purge(state: &AppState) {
    let now = now_ms();
    let cutoff = now - state.config.session_retention.as_millis() as i64;
    let audit_cutoff = now - state.config.audit_retention.as_millis() as i64;
    let purged = async {
        let s = state.store.purge_sessions(cutoff).await?;
        let a = state.store.purge_events(audit_cutoff).await?;
        // Codes and mailed tokens are worthless once expired; they only hold addresses.
        let m = state.store.purge_mail_tokens(now).await?
            + state.store.purge_mfa_challenges(now).await?
            + state.store.purge_passkey_ceremonies(now).await?
            + state.store.purge_oauth(now).await?;
        Ok::<_, sqlx::Error>((s, a, m))
    };
    match purged.await {
        Ok((s, a, m)) if s + a + m > 0 => {
            tracing::info!(
                sessions = s,
                audit_events = a,
                mail_tokens = m,
                "purged ended sessions, old events and expired mailed codes"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "purge failed"),
    }
}
