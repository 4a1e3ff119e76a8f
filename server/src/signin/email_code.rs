//! Sign-in by email: a 6-digit code and a sign-in link are mailed (`request`); either is
//! traded for a session like a password (`verify_code`, `verify_link`).
//!
//! A request always answers the same, whether the address has an account or not, and the mail
//! is sent after the answer, so neither the answer nor its timing tells who has an account.
//! With registration open, an unknown address gets its account on its first verified sign-in.
//! Codes and link tokens are stored as HMACs under the server's secret (`email_codes`), and die
//! on first use (code or link), after `rules::codes::MAX_TRIES` tries of the code, and at
//! `BATON_OTP_TTL`.

use super::account::{prove_address, register_by_mail};
use super::mail::{mail_limits, mailer, send_later, Audit};
use crate::audit::{event, Caller};
use crate::clock::now_ms;
use crate::config::Registration;
use crate::error::{ApiError, ApiResult};
use crate::rules::codes;
use crate::session::start::{begin, Choice, SignedIn, Start};
use crate::state::AppState;
use crate::store::mail_tokens::NewEmailCode;
use crate::store::UserRow;
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;
use http::{HeaderMap, Method};

const CODE: &str = "email-code";
const LINK: &str = "email-link";

fn invalid_code(message: &'static str) -> ApiError {
    ApiError::unauthorized(ErrorCode::InvalidCode, message)
}

/// Mails a code and a link to `email` if it may sign in (an account, or open registration).
pub async fn request(state: &AppState, c: &Caller, email: &str) -> ApiResult<()> {
    let mailer = mailer(state)?;
    let email = crate::rules::email::normalize(email)
        .ok_or_else(|| ApiError::validation("email is not a valid address"))?;
    let user = state.store.user_by_email(&email).await?;
    mail_limits(state, c, &email, user.as_ref(), "otp_email").await?;
    state.metrics.email("requested");
    // Nobody to sign in and nobody may register: the same work and answer, but no mail.
    let may_sign_in = user.is_some() || state.config.registration == Registration::Open;
    let now = now_ms();
    let code = loop {
        if let Some(code) = codes::code_from(rand::random()) {
            break code;
        }
    };
    let link_token = crate::crypto::keys::random_nonce();
    let row_id = uuid::Uuid::new_v4().to_string();
    state
        .store
        .insert_email_code(&NewEmailCode {
            id: &row_id,
            email: &email,
            code_hash: &state.keys.secret_mac(CODE, &code),
            link_hash: &state.keys.secret_mac(LINK, &link_token),
            created_at: now,
            expires_at: codes::expires_at(now, state.config.otp_ttl),
            requested_by: &c.requester(),
        })
        .await?;
    let uid = user.as_ref().map(|u| u.id.clone());
    let generated = event(
        uid.as_deref(),
        "otp_generated",
        "info",
        None,
        c,
        "sign-in code and link made",
    );
    state.store.insert_event(&generated).await?;
    if !may_sign_in {
        return Ok(());
    }
    // Sent after the answer: its time says nothing about the address.
    let minutes = state.config.otp_ttl.as_secs().div_ceil(60);
    let text = format!(
        "Your sign-in code: {code}\n\nOr open this link to sign in:\n{}\n\nBoth work once, for {minutes} minutes. \
         If you did not ask to sign in, ignore this mail.\n",
        mailer.link("token", &link_token)
    );
    let audit = Audit {
        user_id: uid,
        caller: c.clone(),
        kinds: ("otp_sent", "otp_send_failed"),
        what: "sign-in",
    };
    send_later(state, mailer, email, "Your sign-in code", text, audit);
    Ok(())
}

/// Trades the mailed code of `email` for a session.
pub async fn verify_code(
    state: &AppState,
    c: &Caller,
    headers: &HeaderMap,
    email: &str,
    code: &str,
    choice: Choice,
) -> ApiResult<SignedIn> {
    if !codes::is_code(code) {
        return Err(ApiError::validation(
            "code must be the 6 digits of the mail",
        ));
    }
    let dpop = admit(state, c, headers, "/auth/otp/verify").await?;
    let wrong = || invalid_code("wrong or expired code: ask for a new one after 5 tries");
    let email = crate::rules::email::normalize(email).ok_or_else(wrong)?;
    let now = now_ms();
    // The newest live code of the address; its try is counted before the code is compared, so
    // parallel guesses cannot exceed the tries.
    let counted = state
        .store
        .count_code_try(&email, &c.requester(), now, codes::MAX_TRIES)
        .await?;
    let user = state.store.user_by_email(&email).await?;
    let uid = user.as_ref().map(|u| u.id.as_str());
    let Some((row_id, _)) = counted.filter(|(_, h)| state.keys.secret_mac_ok(CODE, code, h)) else {
        state.metrics.email("refused");
        let detail = "wrong or expired sign-in code";
        let e = event(uid, "otp_refused", "warning", None, c, detail);
        state.store.insert_event(&e).await?;
        return Err(wrong());
    };
    if !state.store.use_code(&row_id, now).await? {
        return Err(wrong());
    }
    let how = Start::new(choice, dpop, "signed in with an emailed code", "email");
    let signed_in = sign_in(state, &email, user, c, how, now).await;
    give_back_on_failure(state, &row_id, now, signed_in).await
}

/// Trades the token of a mailed sign-in link for a session.
pub async fn verify_link(
    state: &AppState,
    c: &Caller,
    headers: &HeaderMap,
    token: &str,
    choice: Choice,
) -> ApiResult<SignedIn> {
    let dpop = admit(state, c, headers, "/auth/magic-link/verify").await?;
    let now = now_ms();
    let bad = || invalid_code("this sign-in link is unknown, used or expired: ask for a new one");
    if token.is_empty() || token.len() > 128 {
        return Err(bad());
    }
    // Single use: the row is taken in the same statement that finds it.
    let link_hash = state.keys.secret_mac(LINK, token);
    let Some((row_id, email)) = state.store.use_link(&link_hash, now).await? else {
        state.metrics.email("refused");
        let detail = "unknown, used or expired sign-in link";
        let e = event(None, "otp_refused", "warning", None, c, detail);
        state.store.insert_event(&e).await?;
        return Err(bad());
    };
    let user = state.store.user_by_email(&email).await?;
    let how = Start::new(choice, dpop, "signed in with an emailed link", "email");
    let signed_in = sign_in(state, &email, user, c, how, now).await;
    give_back_on_failure(state, &row_id, now, signed_in).await
}

/// A sign-in that failed on the server's side after its code was spent (the database could
/// not store the session, the hashing queue was full) gives the code back, so the mail still
/// works for the retry; a refusal (registration closed, a DPoP proof replayed) does not.
async fn give_back_on_failure(
    state: &AppState,
    row_id: &str,
    used_at: i64,
    signed_in: ApiResult<SignedIn>,
) -> ApiResult<SignedIn> {
    if let Err(e) = &signed_in {
        if e.status.is_server_error() {
            if let Err(err) = state.store.unuse_code(row_id, used_at).await {
                tracing::warn!(error = %err, "giving back a spent sign-in code failed");
            }
        }
    }
    signed_in
}

/// The start of both verifications: mail set up, a refusal in force (answered before any
/// work), the DPoP proof (checked before anything is counted), the per-address limit. The
/// checked proof whose key the session is bound to.
async fn admit(
    state: &AppState,
    c: &Caller,
    headers: &HeaderMap,
    path: &str,
) -> ApiResult<Option<baton_core::dpop::Proof>> {
    mailer(state)?;
    let key = format!("otp_verify_ip:{}", c.ip);
    throttle::refused_early(state, &key, "otp_verify_ip")?;
    let dpop = crate::dpop::bind_new_session(state, headers, &Method::POST, path)?;
    let rule = crate::limits::OTP_VERIFY_PER_IP;
    throttle::limit(state, &key, rule, "otp_verify_ip", c, Subject::default()).await?;
    Ok(dpop)
}

/// The end of both verifications: the account (made now for a new address), the
/// `otp_verified` event, the session.
async fn sign_in(
    state: &AppState,
    email: &str,
    user: Option<UserRow>,
    c: &Caller,
    how: Start,
    now: i64,
) -> ApiResult<SignedIn> {
    let (mut user, created) = match user {
        Some(u) => (u, false),
        None if state.config.registration == Registration::Closed => {
            return Err(invalid_code("registration is closed"));
        }
        None => register_by_mail(state, email, c).await?,
    };
    state.metrics.email("verified");
    let e = event(Some(&user.id), "otp_verified", "info", None, c, how.detail);
    state.store.insert_event(&e).await?;
    // The mail arrived: the address is proven, and whatever was set up while it was not (by
    // whoever registered it) ends, unless this very request made the account.
    if !user.email_verified {
        prove_address(state, c, &user.id, None, created, now).await?;
        user.email_verified = true;
    }
    begin(state, &user, c, how, now).await
}
