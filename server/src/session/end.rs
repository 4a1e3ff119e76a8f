//! Ending sessions: one (logout, revocation by the user, theft, expiry), or all of a user's.

use crate::audit::{event, Caller};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store::{NewEvent, SessionRow};

/// Revokes one session now: the database row with its event (`logout`, or
/// `session_revoked`), this instance's view, the metric.
pub async fn revoke(
    state: &AppState,
    session: &SessionRow,
    reason: &'static str,
    caller: &Caller,
    now: i64,
) -> ApiResult<bool> {
    let uid = Some(session.user_id.as_str());
    let sid = Some(session.id.as_str());
    let e = if reason == "logout" {
        event(uid, "logout", "info", sid, caller, "signed out")
    } else {
        let detail = format!("session revoked: {reason}");
        event(uid, "session_revoked", "warning", sid, caller, &detail)
    };
    let done = state.store.revoke(&session.id, reason, now, &e).await?;
    state.revoked.insert(&session.id, now);
    if done {
        state.metrics.revocation(reason);
    }
    Ok(done)
}

/// Ends every live session of a user, with the event `event(n)`, in one transaction; this
/// instance's view and the metrics learn of it at once.
pub async fn all(
    state: &AppState,
    user_id: &str,
    reason: &'static str,
    now: i64,
    event: impl FnOnce(usize) -> NewEvent,
) -> ApiResult<()> {
    let ids = state.store.revoke_all(user_id, reason, now, event).await?;
    ended(state, &ids, reason, now);
    Ok(())
}

/// Sessions the database has just ended (`reason`): this instance refuses their access tokens
/// at once (the others within a second, `store::revocation`), and the metrics count them.
pub fn ended(state: &AppState, ids: &[String], reason: &'static str, now: i64) {
    for id in ids {
        state.revoked.insert(id, now);
        state.metrics.revocation(reason);
    }
}
