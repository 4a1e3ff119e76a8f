//! Sign-in by password (`POST /auth/login`), with the login limits: attempts per IP, and per
//! account and source the hourly failures and the lockout (`rules::lockout`), each counted
//! before the password is checked and settled after.

use crate::audit::{audit, Caller};
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::rules::lockout;
use crate::session::start::{begin, Choice, SignedIn, Start};
use crate::state::AppState;
use crate::store::{Store, UserRow};
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;
use http::{HeaderMap, Method};

/// What a password sign-in asks for.
#[derive(Debug)]
pub struct Login {
    pub email: String,
    pub password: String,
    pub choice: Choice,
}

/// Signs in with a password: the tokens of a new session, or 401 `invalid_credentials` (the
/// same answer, after the same work, for an unknown address and a wrong password).
pub async fn login(
    state: &AppState,
    c: &Caller,
    headers: &HeaderMap,
    body: Login,
) -> ApiResult<SignedIn> {
    // An address refused for now gets its 429 before anything costs work (the DPoP proof's
    // signature, the account lookup).
    let now = now_ms();
    let ip_key = crate::limits::login_ip_key(&c.ip);
    throttle::refused_early(state, &ip_key, "login_ip")?;
    // The proof first: a call refused for it costs no password check and counts no attempt.
    let dpop = crate::dpop::bind_new_session(state, headers, &Method::POST, "/auth/login")?;
    let email = crate::rules::email::normalize(&body.email);
    let user = match &email {
        Some(e) => state.store.user_by_email(e).await?,
        None => None,
    };
    let user = prove(state, c, user, body.password, now).await?;
    let how = Start::new(body.choice, dpop, "signed in", "pwd");
    begin(state, &user, c, how, now).await
}

/// Checks `password` against `user` (`None`: an unknown address, checked all the same) under
/// the login limits: counted before the check, settled after, a wrong password recorded
/// (`login_failed`) and counted by the lockout. The user, or 401 `invalid_credentials`.
/// Sign-in and every account change that asks for the password again go through here.
pub async fn prove(
    state: &AppState,
    c: &Caller,
    user: Option<UserRow>,
    password: String,
    now: i64,
) -> ApiResult<UserRow> {
    let known_id = user.as_ref().map(|u| u.id.clone());
    let attempt = admit_login(state, user.as_ref(), c, now).await?;
    // Always one argon2 verification, so unknown emails and wrong passwords take the same time.
    let verified = state
        .password
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await;
    let ok = match verified {
        Ok(ok) => ok,
        Err(e) => {
            // Not checked (the hashing queue is full): the attempt does not count.
            if let Some(a) = attempt {
                a.settle(None).await?;
            }
            return Err(e);
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        state.metrics.login("failure");
        audit(
            state,
            known_id.as_deref(),
            "login_failed",
            "warning",
            None,
            c,
            "wrong email or password",
        )
        .await;
        if let Some(a) = attempt {
            a.settle(Some(Settle::Failure(c.clone(), now))).await?;
        }
        return Err(ApiError::unauthorized(
            ErrorCode::InvalidCredentials,
            "wrong email or password",
        ));
    };
    if let Some(a) = attempt {
        a.settle(Some(Settle::Success)).await?;
    }
    Ok(user)
}

/// What the login limits counted for one attempt on an existing account, settled once its
/// password is checked (`settle`). The settlement runs in a task of its own, so it completes
/// even when the request is given up meanwhile (the client left, the request timed out); and
/// an attempt dropped before it was settled is given back. An abandoned login never counts as
/// a failure, and cannot leave its source counted full without a lock.
#[derive(Debug)]
struct Attempt {
    user_id: String,
    /// The lockout source (see `lockout`).
    source: String,
    /// The attempt's row in the hourly failure count.
    counted: Option<i64>,
    /// Set until the attempt is settled.
    state: Option<AppState>,
}

/// How a checked attempt ended.
#[derive(Debug)]
enum Settle {
    /// A wrong password: the attempt stays counted, the fifth in a row locks the source.
    Failure(Caller, i64),
    /// The right password: the source's count is cleared, the hourly count gets its back.
    Success,
}

impl Attempt {
    /// Settles the attempt as `how`; `None`: given back (the password was not checked).
    async fn settle(mut self, how: Option<Settle>) -> ApiResult<()> {
        let Some(state) = self.state.take() else {
            return Ok(());
        };
        let (user_id, source, counted) = (
            std::mem::take(&mut self.user_id),
            std::mem::take(&mut self.source),
            self.counted,
        );
        let task = tokio::spawn(async move {
            let store = &state.store;
            match how {
                Some(Settle::Failure(c, now)) => {
                    settle_failure(&state, &user_id, &source, &c, now).await?;
                }
                Some(Settle::Success) => {
                    store.clear_login_failures(&user_id, &source).await?;
                    if let Some(id) = counted {
                        store.delete_hit(id).await?;
                    }
                }
                None => give_back(store, &user_id, &source, counted).await?,
            }
            Ok::<(), ApiError>(())
        });
        task.await.map_err(|_| ApiError::internal())?
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        // Not settled: the request was given up before its password was checked.
        if let Some(state) = self.state.take() {
            let (user_id, source, counted) =
                (self.user_id.clone(), self.source.clone(), self.counted);
            tokio::spawn(async move {
                if let Err(e) = give_back(&state.store, &user_id, &source, counted).await {
                    tracing::warn!(error = %e, "giving back an abandoned login attempt failed");
                }
            });
        }
    }
}

/// Gives an attempt back: it does not count, neither for the lockout nor the hourly limit.
/// Often needed because the database is slow right now: a few tries, then
/// `lockout::ABANDONED_AFTER` is the backstop.
async fn give_back(
    store: &Store,
    user_id: &str,
    source: &str,
    counted: Option<i64>,
) -> Result<(), sqlx::Error> {
    let mut wait = std::time::Duration::from_millis(50);
    let mut released = false;
    let mut tries = 0;
    loop {
        // The release once (it subtracts); the hit's deletion may repeat.
        let step = async {
            if !released {
                store.release_login_attempt(user_id, source).await?;
                released = true;
            }
            match counted {
                Some(id) => store.delete_hit(id).await,
                None => Ok(()),
            }
        };
        match step.await {
            Ok(()) => return Ok(()),
            Err(e) if tries == 4 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// The login limits, before the password is checked: attempts per IP, then for an existing
/// account its source's hourly failures and its lock, each counted atomically (see `lockout`).
async fn admit_login(
    state: &AppState,
    user: Option<&UserRow>,
    c: &Caller,
    now: i64,
) -> ApiResult<Option<Attempt>> {
    if !state.limits.enabled {
        return Ok(None);
    }
    let subject = Subject {
        user_id: user.map(|u| u.id.as_str()),
        session_id: None,
    };
    let ip_key = crate::limits::login_ip_key(&c.ip);
    let rule = crate::limits::LOGIN_PER_IP;
    throttle::limit(state, &ip_key, rule, "login_ip", c, subject).await?;
    let Some(user) = user else {
        return Ok(None);
    };
    let known = match &c.device_id {
        Some(d) => state.store.device_known(&user.id, d).await?,
        None => false,
    };
    let source = lockout::source(c.device_id.as_deref(), known);
    let forget = now - lockout::FORGET_LOCKS_AFTER.as_millis() as i64;
    let admitted = state
        .store
        .reserve_login_attempt(
            &user.id,
            &source,
            lockout::LOCK_AFTER,
            now,
            forget,
            now - lockout::ABANDONED_AFTER.as_millis() as i64,
        )
        .await?;
    if !admitted {
        // Locked, or five attempts of this source are being checked right now.
        let until = state
            .store
            .login_locked_until(&user.id, &source, now)
            .await?;
        let wait = until.map_or(1, |t| ((t - now) as u64).div_ceil(1000));
        state.metrics.rate_limited("account_locked");
        return Err(ApiError::too_many(ErrorCode::AccountLocked, wait));
    }
    // Counted from here on: given back if the request ends before it is settled.
    let key = crate::limits::failures_key(&user.id, &source);
    let mut attempt = Attempt {
        user_id: user.id.clone(),
        source,
        counted: None,
        state: Some(state.clone()),
    };
    let rule = crate::limits::FAILURES_PER_ACCOUNT;
    match throttle::limit(state, &key, rule, "login_account", c, subject).await {
        Ok(id) => attempt.counted = id,
        Err(e) => {
            attempt.settle(None).await?;
            return Err(e);
        }
    }
    Ok(Some(attempt))
}

/// A failed attempt stays counted; the fifth in a row locks its source.
async fn settle_failure(
    state: &AppState,
    user_id: &str,
    source: &str,
    c: &Caller,
    now: i64,
) -> ApiResult<()> {
    let whom = if source == lockout::UNTRUSTED {
        "sign-ins from unknown devices"
    } else {
        "sign-ins from this device"
    };
    throttle::lock_if_reached(state, user_id, source, c, now, ("failed logins", whom)).await
}
