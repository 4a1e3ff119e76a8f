//! What signed-in users change on their own account: the password (proven again, counted by
//! the lockout like a sign-in), the address (proven by a mailed link), their metadata, the
//! account's deletion, and a copy of everything stored about them.

use super::account::check_password;
use super::mail::{mailer, send_later, Audit};
use super::password::prove;
use crate::audit::{event, Caller};
use crate::clock::now_ms;
use crate::crypto::password::NO_PASSWORD;
use crate::error::{ApiError, ApiResult};
use crate::rules::account::fresh_sign_in;
use crate::state::AppState;
use crate::store::accounts::{EmailChanged, DELETED, EMAIL_CHANGE};
use crate::store::audit::EventFilter;
use crate::store::{AuditEvent, NewEvent, SessionRow, UserRow};
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;
use http::StatusCode;

/// The signed-in user's account; 401 when it is gone.
pub async fn account(state: &AppState, user_id: &str) -> ApiResult<UserRow> {
    state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::TokenInvalid, "unknown user"))
}

/// A new password, proven by the current one (a wrong one is 401 `invalid_credentials` and
/// counts toward the lockout). Every other session of the user ends; `session_id` stays.
pub async fn change_password(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    session_id: &str,
    current: String,
    new: String,
) -> ApiResult<()> {
    check_password(&new)?;
    let user = account(state, user_id).await?;
    let now = now_ms();
    prove(state, c, Some(user), current, now).await?;
    let hash = state.password.hash(new).await?;
    let ended = state
        .store
        .change_password(user_id, &hash, session_id, now, |n| {
            let others = if n == 1 { "session" } else { "sessions" };
            let detail = format!("password changed by the user: {n} other {others} signed out");
            event(
                Some(user_id),
                "password_changed",
                "info",
                Some(session_id),
                c,
                &detail,
            )
        })
        .await?
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::TokenInvalid, "unknown user"))?;
    crate::session::end::ended(state, &ended, "password_changed", now);
    Ok(())
}

/// Mails a link that moves the account to `new_email`, and a notice to the current address.
/// Whether another account has the address is not said here (the confirmation says it).
pub async fn request_email_change(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    new_email: &str,
) -> ApiResult<()> {
    let mailer = mailer(state)?;
    let new_email = crate::rules::email::normalize(new_email)
        .ok_or_else(|| ApiError::validation("new_email is not a valid address"))?;
    let user = account(state, user_id).await?;
    if new_email == user.email {
        return Err(ApiError::validation(
            "new_email is the account's address already",
        ));
    }
    let key = format!("email_change:{user_id}");
    let rule = crate::limits::OTP_PER_EMAIL;
    let subject = Subject {
        user_id: Some(user_id),
        session_id: None,
    };
    throttle::limit(state, &key, rule, "email_change", c, subject).await?;
    let token = crate::crypto::keys::random_nonce();
    let now = now_ms();
    let expires_at = crate::rules::codes::expires_at(now, state.config.otp_ttl);
    let hash = state.keys.secret_mac(EMAIL_CHANGE, &token);
    state
        .store
        .insert_email_change(&hash, user_id, &new_email, now, expires_at)
        .await?;
    let minutes = state.config.otp_ttl.as_secs().div_ceil(60);
    let link = mailer.link("email_change_token", &token);
    let text = format!(
        "Open this link to make this address the one of your account:\n{link}\n\nIt works \
         once, for {minutes} minutes. If you did not ask for it, ignore this mail.\n"
    );
    let audit = |what| Audit {
        user_id: Some(user_id.to_owned()),
        caller: c.clone(),
        kinds: ("mail_sent", "mail_send_failed"),
        what,
    };
    send_later(
        state,
        mailer,
        new_email.clone(),
        "Confirm your new email address",
        text,
        audit("email_change"),
    );
    let notice = format!(
        "Someone signed in to your account asked to move it to {new_email}. It moves once that \
         address confirms. If this was not you, change your password now.\n"
    );
    send_later(
        state,
        mailer,
        user.email.clone(),
        "Your account's email address is changing",
        notice,
        audit("email_change_notice"),
    );
    let e = event(
        Some(user_id),
        "email_change_requested",
        "info",
        None,
        c,
        "a change of address was asked for: link mailed to the new address",
    );
    state.store.insert_event(&e).await?;
    Ok(())
}

/// Moves the account to the address of a mailed email-change link; 409 `email_taken` when
/// another account took it meanwhile (the link stays usable), 401 `invalid_code` for a link
/// that is unknown, used or expired.
pub async fn confirm_email_change(state: &AppState, c: &Caller, token: &str) -> ApiResult<()> {
    mailer(state)?;
    let key = format!("otp_verify_ip:{}", c.ip);
    let rule = crate::limits::OTP_VERIFY_PER_IP;
    throttle::limit(state, &key, rule, "otp_verify_ip", c, Subject::default()).await?;
    let invalid = || {
        ApiError::unauthorized(
            ErrorCode::InvalidCode,
            "this link is unknown, used or expired: ask for a new one",
        )
    };
    if token.is_empty() || token.len() > 128 {
        return Err(invalid());
    }
    let hash = state.keys.secret_mac(EMAIL_CHANGE, token);
    let now = now_ms();
    let changed = state
        .store
        .confirm_email_change(&hash, now, |user_id| {
            let detail = "address changed by a mailed link (the new address is proven)";
            event(Some(user_id), "email_changed", "info", None, c, detail)
        })
        .await?;
    match changed {
        EmailChanged::Moved { user_id, .. } => {
            state.session_cache.forget_user(&user_id);
            Ok(())
        }
        EmailChanged::Taken => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::EmailTaken,
            "another account has this address now",
        )),
        EmailChanged::NoLink => Err(invalid()),
    }
}

/// Replaces the user's own metadata (a JSON object of at most 4 KB).
pub async fn update_metadata(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    value: &serde_json::Value,
) -> ApiResult<UserRow> {
    let json =
        crate::rules::account::metadata("user_metadata", value).map_err(ApiError::validation)?;
    let e = event(
        Some(user_id),
        "user_updated",
        "info",
        None,
        c,
        "user_metadata changed by the user",
    );
    if !state.store.set_user_metadata(user_id, &json, &e).await? {
        return Err(ApiError::unauthorized(
            ErrorCode::TokenInvalid,
            "unknown user",
        ));
    }
    account(state, user_id).await
}

/// Deletes the signed-in user's account, proven by the password; an account without a usable
/// password by a sign-in of this session at most 5 minutes ago instead.
pub async fn delete(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    session_id: &str,
    password: Option<String>,
) -> ApiResult<()> {
    let user = account(state, user_id).await?;
    let now = now_ms();
    match password {
        Some(p) => {
            prove(state, c, Some(user), p, now).await?;
        }
        None if user.password_hash == NO_PASSWORD => {
            let signed_in = state.store.session(session_id).await?.map(|s| s.created_at);
            if !signed_in.is_some_and(|at| fresh_sign_in(at, now)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "sign in again (at most 5 minutes before) to delete this account",
                ));
            }
        }
        None => {
            return Err(ApiError::validation(
                "password is required to delete this account",
            ))
        }
    }
    erase(state, user_id, "deleted by the user", now).await?;
    Ok(())
}

/// Erases an account (see `Store::erase_user`) and ends its sessions everywhere; the event
/// keeps the user id only. False when there was no such account.
pub async fn erase(state: &AppState, user_id: &str, how: &str, now: i64) -> ApiResult<bool> {
    let ended = state
        .store
        .erase_user(user_id, NO_PASSWORD, now, |n| {
            let sessions = if n == 1 { "session" } else { "sessions" };
            NewEvent {
                user_id: Some(user_id.to_owned()),
                at: now,
                kind: "account_deleted",
                severity: "warning",
                detail: format!("account {how}: personal data erased, {n} {sessions} ended"),
                ..NewEvent::default()
            }
        })
        .await?;
    let Some(ended) = ended else {
        return Ok(false);
    };
    state.session_cache.forget_user(user_id);
    crate::session::end::ended(state, &ended, DELETED, now);
    Ok(true)
}

/// Everything stored about the user: the account, every session known, every audit event.
#[derive(Debug)]
pub struct Export {
    pub user: UserRow,
    pub sessions: Vec<SessionRow>,
    pub events: Vec<AuditEvent>,
}

pub async fn export(state: &AppState, user_id: &str) -> ApiResult<Export> {
    let user = account(state, user_id).await?;
    let sessions = state.store.sessions_of_user(user_id).await?;
    let filter = EventFilter {
        user_id: Some(user_id),
        ..EventFilter::default()
    };
    let mut events: Vec<AuditEvent> = Vec::new();
    loop {
        let before = events.last().map(|e| e.id);
        let page = state.store.events_page(&filter, before, 1000).await?;
        let full = page.len() == 1000;
        events.extend(page);
        if !full {
            break;
        }
    }
    Ok(Export {
        user,
        sessions,
        events,
    })
}
