//! Accounts as the sign-in methods make and prove them: created once (by password, or by a
//! first emailed sign-in), marked verified when mail to the address arrived.

use crate::audit::{event, Caller};
use crate::clock::now_ms;
use crate::config::Registration;
use crate::crypto::password::NO_PASSWORD;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::users::AddressProof;
use crate::store::UserRow;
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;
use http::StatusCode;

/// 8 to 1024 characters.
pub fn check_password(password: &str) -> ApiResult<()> {
    let n = password.chars().count();
    if n < 8 {
        return Err(ApiError::validation(
            "password must be at least 8 characters",
        ));
    }
    if n > 1024 {
        return Err(ApiError::validation(
            "password must be at most 1024 characters",
        ));
    }
    Ok(())
}

/// Stores a new account with its `user_registered` event (`detail` says how); `None` when the
/// address has an account already.
async fn create(
    state: &AppState,
    email: &str,
    password_hash: String,
    c: &Caller,
    detail: &str,
) -> ApiResult<Option<UserRow>> {
    let user = UserRow::new(
        uuid::Uuid::new_v4().to_string(),
        email.to_owned(),
        password_hash,
        now_ms(),
    );
    let e = event(Some(&user.id), "user_registered", "info", None, c, detail);
    Ok(state.store.insert_user(&user, &e).await?.then_some(user))
}

/// Registration with a password (`POST /auth/register`): open registration, a valid address
/// and password, the per-IP limit, then the account; 409 `email_taken` when it exists.
pub async fn register(
    state: &AppState,
    c: &Caller,
    email: &str,
    password: String,
) -> ApiResult<UserRow> {
    if state.config.registration == Registration::Closed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::RegistrationClosed,
            "registration is closed",
        ));
    }
    let email = crate::rules::email::normalize(email)
        .ok_or_else(|| ApiError::validation("email is not a valid address"))?;
    check_password(&password)?;
    let key = crate::limits::register_ip_key(&c.ip);
    let rule = crate::limits::REGISTER_PER_IP;
    throttle::limit(state, &key, rule, "register_ip", c, Subject::default()).await?;
    let hash = state.password.hash(password).await?;
    create(state, &email, hash, c, "account created")
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::EmailTaken,
                "an account with this email exists",
            )
        })
}

/// The account of an address seen for the first time by an emailed sign-in (registration is
/// open: a code was only sent because it is). It has no password (`NO_PASSWORD`): password
/// sign-in fails (and takes as long as for any account) until a password is set, and deleting
/// the account asks for a recent sign-in instead.
/// True when this call made it (false: a parallel request did, maybe another registration).
pub async fn register_by_mail(
    state: &AppState,
    email: &str,
    c: &Caller,
) -> ApiResult<(UserRow, bool)> {
    register_without_password(state, email, c, "account created by an emailed sign-in").await
}

/// The account of an address first seen by a sign-in that proves it (mail, an identity
/// provider that vouches for it), without a password; `detail` says how. True when this call
/// made it (false: a parallel request did).
pub async fn register_without_password(
    state: &AppState,
    email: &str,
    c: &Caller,
    detail: &str,
) -> ApiResult<(UserRow, bool)> {
    let hash = NO_PASSWORD.to_owned();
    if let Some(user) = create(state, email, hash, c, detail).await? {
        return Ok((user, true));
    }
    // Registered a moment ago by a parallel request.
    let user = state
        .store
        .user_by_email(email)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((user, false))
}

/// Proves the address of `user_id` by mail (`token`: the mailed token to spend with it, HMAC
/// and purpose). The first proof ends what was set up while the address was unproven (its
/// sessions and password: whoever registered it may not own it), unless `keep_credentials`
/// (the prover is signed in to the account). `false` when the token is no longer live.
/// This instance's cached sessions of the user are forgotten, so their next access tokens say
/// `email_verified: true`.
pub async fn prove_address(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    token: Option<(&str, &str)>,
    keep_credentials: bool,
    now: i64,
) -> ApiResult<bool> {
    let proof = AddressProof {
        user_id,
        token,
        keep_credentials,
        no_password: NO_PASSWORD,
        now,
    };
    let proven = state
        .store
        .prove_address(&proof, |n| {
            let sessions = if n == 1 { "session" } else { "sessions" };
            let detail = format!(
                "address proven by mail: the password, second factors and {n} {sessions} set up \
                 before were ended"
            );
            event(
                Some(user_id),
                "unproven_access_ended",
                "warning",
                None,
                c,
                &detail,
            )
        })
        .await?;
    let Some(proven) = proven else {
        return Ok(false);
    };
    if proven.first {
        state.session_cache.forget_user(user_id);
    }
    crate::session::end::ended(state, &proven.ended, "address_proven", now);
    Ok(true)
}
