//! Account actions proven by mail: a password reset (a mailed link, then a new password, which
//! signs the user out everywhere) and the verification of the address.
//!
//! Tokens are single-use, live `BATON_OTP_TTL`, and are stored as HMACs under the server's
//! secret (`account_tokens`). The mailed links open `BATON_MAGIC_LINK_URL` with `reset_token=`
//! or `verify_token=` added. A reset request answers the same for any address, like the
//! sign-in codes, and its mail goes out after the answer.

use super::account::{check_password, prove_address};
use super::mail::{mail_limits, mailer, send_later, Audit};
use crate::audit::{event, Caller};
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::users::PasswordReset;
use crate::store::UserRow;
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;

const RESET: &str = "password_reset";
const VERIFY: &str = "email_verification";

fn invalid_token() -> ApiError {
    ApiError::unauthorized(
        ErrorCode::InvalidCode,
        "this link is unknown, used or expired: ask for a new one",
    )
}

/// Stores a new token for `user_id` and mails its link; the mail goes out in the background.
async fn mail_token(
    state: &AppState,
    user_id: &str,
    email: &str,
    purpose: &'static str,
    c: &Caller,
) -> ApiResult<()> {
    let mailer = mailer(state)?;
    let token = crate::crypto::keys::random_nonce();
    let now = now_ms();
    let expires_at = crate::rules::codes::expires_at(now, state.config.otp_ttl);
    let hash = state.keys.secret_mac(purpose, &token);
    state
        .store
        .insert_account_token(&hash, user_id, purpose, now, expires_at)
        .await?;
    let (param, subject, what) = if purpose == RESET {
        (
            "reset_token",
            "Reset your password",
            "choose a new password",
        )
    } else {
        (
            "verify_token",
            "Confirm your email address",
            "confirm this address",
        )
    };
    let link = mailer.link(param, &token);
    let minutes = state.config.otp_ttl.as_secs().div_ceil(60);
    let text = format!(
        "Open this link to {what}:\n{link}\n\nIt works once, for {minutes} minutes. If you did \
         not ask for it, ignore this mail.\n"
    );
    let audit = Audit {
        user_id: Some(user_id.to_owned()),
        caller: c.clone(),
        kinds: ("mail_sent", "mail_send_failed"),
        what: purpose,
    };
    send_later(state, mailer, email.to_owned(), subject, text, audit);
    Ok(())
}

/// The limit on verifications of mailed tokens, per IP (shared with the sign-in codes).
async fn verify_limit(state: &AppState, c: &Caller) -> ApiResult<()> {
    let key = format!("otp_verify_ip:{}", c.ip);
    let rule = crate::limits::OTP_VERIFY_PER_IP;
    throttle::limit(state, &key, rule, "otp_verify_ip", c, Subject::default()).await?;
    Ok(())
}

/// Mails a reset link to `email` if it has an account. Only the limits run before the
/// answer, the same for any address; the link is made and mailed after it, so neither the
/// answer nor its timing tells whether the address has an account.
pub async fn reset_request(state: &AppState, c: &Caller, email: &str) -> ApiResult<()> {
    mailer(state)?;
    let email = crate::rules::email::normalize(email)
        .ok_or_else(|| ApiError::validation("email is not a valid address"))?;
    let user = state.store.user_by_email(&email).await?;
    mail_limits(state, c, &email, user.as_ref(), "reset_email").await?;
    let Some(user) = user else {
        return Ok(());
    };
    let (state, c) = (state.clone(), c.clone());
    tokio::spawn(async move {
        let made = async {
            mail_token(&state, &user.id, &email, RESET, &c).await?;
            let detail = "password reset link made";
            let e = event(
                Some(&user.id),
                "password_reset_requested",
                "info",
                None,
                &c,
                detail,
            );
            state.store.insert_event(&e).await?;
            Ok::<(), ApiError>(())
        };
        if let Err(e) = made.await {
            tracing::warn!(code = ?e.code, "a password reset link could not be made");
        }
    });
    Ok(())
}

/// Sets a new password with a mailed reset link. All or nothing (`Store::reset_password`): the
/// link spent, the password, the lockout, the verified address and the end of every session
/// commit together, or none of them does and the link stays usable.
pub async fn reset(state: &AppState, c: &Caller, token: &str, password: String) -> ApiResult<()> {
    mailer(state)?;
    check_password(&password)?;
    verify_limit(state, c).await?;
    if token.is_empty() || token.len() > 128 {
        return Err(invalid_token());
    }
    let token_hash = state.keys.secret_mac(RESET, token);
    let Some(user_id) = state
        .store
        .account_token_user(&token_hash, RESET, now_ms())
        .await?
    else {
        return Err(invalid_token());
    };
    let user = state
        .store
        .user_by_id(&user_id)
        .await?
        .ok_or_else(invalid_token)?;
    // Hashed before anything is written: a full hashing queue (503) leaves the link usable.
    let password_hash = state.password.hash(password).await?;
    let now = now_ms();
    let reset = PasswordReset {
        user_id: &user_id,
        email: &user.email,
        token_hash: &token_hash,
        purpose: RESET,
        password_hash: &password_hash,
        now,
    };
    // Whoever knew the old password, or holds a session, is signed out.
    let ended = state
        .store
        .reset_password(&reset, |n| {
            let detail = format!("password changed by a mailed link: signed out of {n} sessions");
            event(
                Some(&user_id),
                "password_reset",
                "warning",
                None,
                c,
                &detail,
            )
        })
        .await?;
    let Some(ids) = ended else {
        // Used by a parallel request meanwhile.
        return Err(invalid_token());
    };
    state.session_cache.forget_user(&user_id);
    crate::session::end::ended(state, &ids, "password_reset", now);
    Ok(())
}

/// Mails a link that verifies the address of `user`; `false` when it is verified already.
pub async fn verify_request(state: &AppState, c: &Caller, user_id: &str) -> ApiResult<bool> {
    mailer(state)?;
    let user: UserRow = state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::TokenInvalid, "unknown user"))?;
    if user.email_verified {
        return Ok(false);
    }
    let key = format!("verify_user:{}", user.id);
    let rule = crate::limits::OTP_PER_EMAIL;
    throttle::limit(state, &key, rule, "verify_user", c, Subject::default()).await?;
    mail_token(state, &user.id, &user.email, VERIFY, c).await?;
    Ok(true)
}

/// Verifies an address with the token of its mailed link. `signed_in`: the user of the
/// access token the request carried, if any. A prover signed in to the account proved both
/// the mailbox and the account's credentials; anyone else proved only the mailbox, and the
/// first proof then ends the sessions and password set up while the address was unproven
/// (see `account::prove_address`).
pub async fn verify(
    state: &AppState,
    c: &Caller,
    token: &str,
    signed_in: Option<&str>,
) -> ApiResult<()> {
    mailer(state)?;
    verify_limit(state, c).await?;
    if token.is_empty() || token.len() > 128 {
        return Err(invalid_token());
    }
    let hash = state.keys.secret_mac(VERIFY, token);
    let now = now_ms();
    let Some(user_id) = state.store.account_token_user(&hash, VERIFY, now).await? else {
        return Err(invalid_token());
    };
    let keep = signed_in == Some(user_id.as_str());
    if !prove_address(state, c, &user_id, Some((&hash, VERIFY)), keep, now).await? {
        return Err(invalid_token());
    }
    let detail = "address confirmed by a mailed link";
    let e = event(Some(&user_id), "email_verified", "info", None, c, detail);
    state.store.insert_event(&e).await?;
    Ok(())
}
