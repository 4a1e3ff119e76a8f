//! Abuse limits as requests meet them: count an attempt, record the first refusal of a key in
//! the audit log, answer 429 with `Retry-After`. The counting itself is `limits`.

use crate::audit::{audit, Caller};
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::limits::Refused;
use crate::state::AppState;
use baton_core::ErrorCode;
use std::time::Duration;

/// Who an attempt concerns, for the `rate_limited` event of its refusal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

/// Counts one attempt under `key` against `rule`; a refusal is recorded (`refuse`) and
/// answered 429 with `Retry-After`. The counted attempt's row id (`None` with limits off), so
/// that it can be given back.
pub async fn limit(
    state: &AppState,
    key: &str,
    rule: (i64, Duration),
    which: &'static str,
    c: &Caller,
    subject: Subject<'_>,
) -> ApiResult<Option<i64>> {
    match state.limits.hit(&state.store, key, rule, now_ms()).await? {
        Ok(id) => Ok(id),
        Err(refused) => {
            refuse(state, subject, c, which, refused).await;
            Err(ApiError::too_many(
                ErrorCode::RateLimited,
                refused.retry_after,
            ))
        }
    }
}

/// 429 at once while this instance remembers a refusal of `key` (`Limits::refused_now`): a
/// call that would be refused anyway costs no further work, not even a DPoP signature check.
pub fn refused_early(state: &AppState, key: &str, which: &'static str) -> ApiResult<()> {
    match state.limits.refused_now(key, now_ms()) {
        Some(refused) => {
            state.metrics.rate_limited(which);
            Err(ApiError::too_many(
                ErrorCode::RateLimited,
                refused.retry_after,
            ))
        }
        None => Ok(()),
    }
}

/// Counts a refused attempt in the metrics, and records a `rate_limited` event only for the
/// first refusal of `key` until its limit lifts: a flood of refused requests costs neither
/// database rows nor writer time.
pub async fn refuse(
    state: &AppState,
    subject: Subject<'_>,
    c: &Caller,
    which: &'static str,
    refused: Refused,
) {
    state.metrics.rate_limited(which);
    if refused.first {
        let detail = format!(
            "{which} limit reached: refused for {} s (further refusals until then are only \
             counted in metrics)",
            refused.retry_after
        );
        let (user_id, session_id) = (subject.user_id, subject.session_id);
        audit(
            state,
            user_id,
            "rate_limited",
            "warning",
            session_id,
            c,
            &detail,
        )
        .await;
    }
}

/// After a failed attempt counted by the lockout (`rules::lockout`): locks `source` of the
/// account once five in a row failed, the n-th lock in a row longer, recorded as
/// `account_locked` ("`what` in a row: `whom` locked for ...").
pub async fn lock_if_reached(
    state: &AppState,
    user_id: &str,
    source: &str,
    c: &Caller,
    now: i64,
    (what, whom): (&str, &str),
) -> ApiResult<()> {
    use crate::rules::lockout;
    let base = state.limits.lockout;
    let durations: Vec<i64> = (1..=8)
        .map(|n| lockout::lock_duration(n, base).as_millis() as i64)
        .collect();
    let locked = state
        .store
        .lock_if_reached(user_id, source, lockout::LOCK_AFTER, now, &durations)
        .await?;
    if let Some((nth, until)) = locked {
        state.metrics.anomaly("account_locked");
        let lasts = Duration::from_millis((until - now).max(0) as u64);
        let detail = format!(
            "{} {what} in a row: {whom} locked for {} (lock {nth} in a row)",
            lockout::LOCK_AFTER,
            humantime::format_duration(lasts)
        );
        audit(
            state,
            Some(user_id),
            "account_locked",
            "critical",
            None,
            c,
            &detail,
        )
        .await;
    }
    Ok(())
}
