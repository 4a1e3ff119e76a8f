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
