//! HTTP handlers of the API described in docs/api.md.

use crate::config::Registration;
use crate::db::{NewEvent, SessionRow, UserRow};
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    authorization, bearer, client_ip, peer, ApiJson, AuthUser, ClientIp, DeviceId, Scheme,
};
use crate::sessions::{self, audit, token_response, user_json, Caller};
use crate::{limits, lockout, now_ms, AppState};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::ErrorCode;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

const REFRESH_COOKIE: &str = "baton_refresh";

/// argon2id hashing on a few threads of its own; also holds a dummy hash so unknown emails
/// cost the same time as wrong passwords.
///
/// The work is bounded for real: `threads` hashes run at once (one core stays free for
/// refreshes and token checks) and at most `queue` more wait; beyond that a request is refused
/// at once (503 with `Retry-After`). A request that gives up while its hash is queued costs
/// nothing; one that gives up mid-hash does not free a place before the hash ends. Memory stays
/// at `threads` × 19 MiB (argon2id's default cost), also because only these threads allocate
/// the hashing memory (each thread of a large pool would keep its own malloc arena of it).
pub struct PasswordHasher {
    dummy: String,
    jobs: std::sync::mpsc::SyncSender<HashJob>,
    /// When a full queue was last logged (unix ms): a flood logs one line per 10 s, not one
    /// per refused request.
    full_warning: crate::logs::Every,
}

type HashJob = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher")
    }
}

impl PasswordHasher {
    pub fn new(queue: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.saturating_sub(1).max(1);
        let (jobs, rx) = std::sync::mpsc::sync_channel::<HashJob>(queue);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("baton-hash-{i}"))
                .spawn(move || loop {
                    // Ends when the hasher (the sending side) is dropped.
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            dummy: hash_now("baton-dummy-password").unwrap_or_default(),
            jobs,
            full_warning: crate::logs::Every::new(std::time::Duration::from_secs(10)),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            if !done.is_closed() {
                let _ = done.send(f());
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => {
                if self.full_warning.due(now_ms()) {
                    tracing::warn!("password hashing queue full: requests refused with 503");
                }
                ApiError::unavailable()
            }
            std::sync::mpsc::TrySendError::Disconnected(_) => ApiError::internal(),
        })?;
        result.await.map_err(|_| ApiError::internal())
    }

    pub async fn hash(&self, password: String) -> ApiResult<String> {
        self.blocking(move || hash_now(&password))
            .await?
            .ok_or_else(ApiError::internal)
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no user.
    pub async fn verify(&self, password: String, hash: Option<String>) -> ApiResult<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .blocking(move || {
                PasswordHash::new(&hash)
                    .map(|h| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &h)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && known)
    }
}

fn hash_now(password: &str) -> Option<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

pub(crate) fn caller(ip: ClientIp, device: DeviceId, headers: &HeaderMap) -> Caller {
    Caller {
        ip: ip.0.to_string(),
        device_id: device.0,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        request_key: None,
    }
}

// ---- register and login ------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
}

pub(crate) fn check_password(password: &str) -> ApiResult<()> {
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

#[utoipa::path(post, path = "/auth/register", tag = "account", request_body = RegisterBody,
    responses((status = 201, body = crate::schema::Registered),
        (status = 409, description = "email_taken", body = baton_core::ErrorBody), (status = 403, description = "registration_closed", body = baton_core::ErrorBody),
        (status = 422, description = "validation_failed", body = baton_core::ErrorBody), (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<Response> {
    if state.config.registration == Registration::Closed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::RegistrationClosed,
            "registration is closed",
        ));
    }
    let email = crate::email::normalize(&body.email)
        .ok_or_else(|| ApiError::validation("email is not a valid address"))?;
    check_password(&body.password)?;
    let c = caller(ip, device, &headers);
    let now = now_ms();
    let key = limits::register_ip_key(&c.ip);
    if let Err(refused) = state
        .limits
        .hit(&state.store, &key, limits::REGISTER_PER_IP, now)
        .await?
    {
        refuse(&state, None, None, &c, "register_ip", refused).await;
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            refused.retry_after,
        ));
    }
    let hash = state.password.hash(body.password).await?;
    let user = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        email,
        password_hash: hash,
        created_at: now,
        email_verified: false,
    };
    let e = sessions::event(
        Some(&user.id),
        "user_registered",
        "info",
        None,
        &c,
        "account created",
    );
    if !state.store.insert_user(&user, &e).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::EmailTaken,
            "an account with this email exists",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(crate::schema::Registered {
            user: user_json(&user),
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefreshTransport {
    #[default]
    Body,
    Cookie,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    refresh_transport: RefreshTransport,
}

#[utoipa::path(post, path = "/auth/login", tag = "account", request_body = LoginBody,
    params(("X-Device-ID" = Option<String>, Header, description = "the browser profile's device id"),
        ("DPoP" = Option<String>, Header, description = "a DPoP proof (RFC 9449): binds the session to its key")),
    responses((status = 200, body = baton_core::TokenResponse),
        (status = 401, description = "invalid_credentials, dpop_proof_invalid", body = baton_core::ErrorBody), (status = 429, description = "account_locked or rate_limited", body = baton_core::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    // An address refused for now gets its 429 before anything costs work (the DPoP proof's
    // signature, the account lookup).
    let now = now_ms();
    refused_early(&state, &limits::login_ip_key(&ip.0.to_string()), "login_ip")?;
    // The proof first: a call refused for it costs no password check and counts no attempt.
    let post = axum::http::Method::POST;
    let dpop = crate::dpop::bind_new_session(&state, &headers, &post, "/auth/login")?;
    let c = caller(ip, device, &headers);
    let email = crate::email::normalize(&body.email);
    let user = match &email {
        Some(e) => state.store.user_by_email(e).await?,
        None => None,
    };
    let known_id = user.as_ref().map(|u| u.id.clone());
    let attempt = admit_login(&state, user.as_ref(), &c, now).await?;
    // Always one argon2 verification, so unknown emails and wrong passwords take the same time.
    let verified = state
        .password
        .verify(
            body.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
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
            &state,
            known_id.as_deref(),
            "login_failed",
            "warning",
            None,
            &c,
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

    let how = Start::new(body.remember_me, body.refresh_transport, dpop, "signed in");
    start_session(&state, &user, &c, how, now).await
}

/// How a new session is started (see `start_session`).
#[derive(Debug)]
pub(crate) struct Start {
    pub remember_me: bool,
    /// The refresh token travels in the cookie.
    pub cookie: bool,
    /// The checked DPoP proof whose key the session is bound to (see `dpop`), recorded
    /// against replay here, once the caller proved who they are.
    pub dpop: Option<baton_core::dpop::Proof>,
    /// The `login_succeeded` event's detail: how the user proved who they are.
    pub detail: &'static str,
}

impl Start {
    /// From the body fields every sign-in takes (`remember_me`, `refresh_transport`).
    pub(crate) fn new(
        remember_me: bool,
        transport: RefreshTransport,
        dpop: Option<baton_core::dpop::Proof>,
        detail: &'static str,
    ) -> Self {
        Self {
            remember_me,
            cookie: transport == RefreshTransport::Cookie,
            dpop,
            detail,
        }
    }
}

/// A new session for `user`, signed in by password, emailed code or link: its row and events
/// (sign-in, new device), anomaly checks, and the token response.
pub(crate) async fn start_session(
    state: &AppState,
    user: &UserRow,
    c: &Caller,
    how: Start,
    now: i64,
) -> ApiResult<Response> {
    if let Some(proof) = &how.dpop {
        crate::dpop::record(state, proof).await?;
    }
    let new_device = match &c.device_id {
        Some(d) => !state.store.device_known(&user.id, d).await?,
        None => false,
    };
    // The account's first device is news to nobody: recorded, but not as a warning.
    let first_device = new_device && !state.store.has_sessions(&user.id).await?;
    let max = if how.remember_me {
        state.config.remember_me_max
    } else {
        state.config.session_max
    };
    let session = SessionRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        generation: 1,
        nonce: crate::tokens::random_nonce(),
        device_id: c.device_id.clone(),
        user_agent: c.user_agent.clone(),
        ip: Some(c.ip.clone()),
        remember_me: how.remember_me,
        cookie_transport: how.cookie,
        created_at: now,
        last_used_at: now,
        rotated_at: now,
        rotated_by_device: c.device_id.clone(),
        idle_expires_at: now + state.config.refresh_idle_ttl.as_millis() as i64,
        absolute_expires_at: now + max.as_millis() as i64,
        revoked_at: None,
        revoked_reason: None,
        rotated_by_key: None,
        dpop_jkt: how.dpop.map(|p| p.jkt),
    };
    let (uid, sid) = (Some(user.id.as_str()), Some(session.id.as_str()));
    let signed_in = sessions::event(uid, "login_succeeded", "info", sid, c, how.detail);
    let device = if first_device {
        sessions::event(
            uid,
            "new_device",
            "info",
            sid,
            c,
            "the account's first device",
        )
    } else {
        let first = "first sign-in from this device";
        sessions::event(uid, "new_device", "warning", sid, c, first)
    };
    let events: Vec<&NewEvent> = if new_device {
        vec![&signed_in, &device]
    } else {
        vec![&signed_in]
    };
    state.store.insert_session(&session, &events).await?;
    state.metrics.login("success");
    if new_device && !first_device {
        state.metrics.anomaly("new_device");
    }
    flag_suspicious(state, &user.id, &session.id, c, now).await?;
    let body = token_response(state, &session, user, session.generation, now)?;
    respond_tokens(state, &session, session.generation, body)
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
    store: &crate::db::Store,
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
    let limits = &state.limits;
    if !limits.enabled {
        return Ok(None);
    }
    let user_id = user.map(|u| u.id.as_str());
    let by_ip = limits
        .hit(
            &state.store,
            &limits::login_ip_key(&c.ip),
            limits::LOGIN_PER_IP,
            now,
        )
        .await?;
    if let Err(refused) = by_ip {
        refuse(state, user_id, None, c, "login_ip", refused).await;
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            refused.retry_after,
        ));
    }
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
    let key = limits::failures_key(&user.id, &source);
    let mut attempt = Attempt {
        user_id: user.id.clone(),
        source,
        counted: None,
        state: Some(state.clone()),
    };
    match limits
        .hit(&state.store, &key, limits::FAILURES_PER_ACCOUNT, now)
        .await?
    {
        Ok(id) => attempt.counted = id,
        Err(refused) => {
            attempt.settle(None).await?;
            refuse(state, user_id, None, c, "login_account", refused).await;
            return Err(ApiError::too_many(
                ErrorCode::RateLimited,
                refused.retry_after,
            ));
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
        let lasts = std::time::Duration::from_millis((until - now).max(0) as u64);
        let whom = if source == lockout::UNTRUSTED {
            "sign-ins from unknown devices"
        } else {
            "sign-ins from this device"
        };
        let detail = format!(
            "{} failed logins in a row: {whom} locked for {} (lock {nth} in a row)",
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

/// 429 at once while this instance remembers a refusal of `key` (`Limits::refused_now`): a
/// call that would be refused anyway costs no further work, not even a DPoP signature check.
pub(crate) fn refused_early(state: &AppState, key: &str, which: &'static str) -> ApiResult<()> {
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
pub(crate) async fn refuse(
    state: &AppState,
    user_id: Option<&str>,
    session_id: Option<&str>,
    c: &Caller,
    which: &'static str,
    refused: limits::Refused,
) {
    state.metrics.rate_limited(which);
    if refused.first {
        let detail = format!(
            "{which} limit reached: refused for {} s (further refusals until then are only \
             counted in metrics)",
            refused.retry_after
        );
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

/// Records `suspicious_activity` when an account logs in unusually often or from many IPs.
async fn flag_suspicious(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    c: &Caller,
    now: i64,
) -> ApiResult<()> {
    let hour_ago = now - 3_600_000;
    let logins = state
        .store
        .count_events(user_id, "login_succeeded", hour_ago)
        .await?;
    let ips = state
        .store
        .count_distinct_ips(user_id, "login_succeeded", hour_ago)
        .await?;
    let reason = if logins > limits::SUSPICIOUS_LOGINS {
        format!("{logins} logins in the last hour")
    } else if ips > limits::SUSPICIOUS_IPS {
        format!("logins from {ips} different IPs in the last hour")
    } else {
        return Ok(());
    };
    state.metrics.anomaly("suspicious_activity");
    audit(
        state,
        Some(user_id),
        "suspicious_activity",
        "warning",
        Some(session_id),
        c,
        &reason,
    )
    .await;
    Ok(())
}

fn respond_tokens(
    state: &AppState,
    session: &SessionRow,
    generation: i64,
    body: baton_core::TokenResponse,
) -> ApiResult<Response> {
    let mut res = Json(&body).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if session.cookie_transport {
        let token = sessions::cookie_token(&state.keys, session, generation)?;
        // A session without remember-me gets a browser-session cookie (no Max-Age): it ends
        // when the browser does, whatever its server-side lifetime left.
        let max_age = session.remember_me.then_some(body.refresh_expires_in);
        h.insert(header::SET_COOKIE, refresh_cookie(state, &token, max_age));
    }
    Ok(res)
}

/// The refresh cookie; `max_age: None` makes it a browser-session cookie.
fn refresh_cookie(state: &AppState, token: &str, max_age: Option<u64>) -> HeaderValue {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let max_age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/auth{max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cleared_cookie(state: &AppState) -> HeaderValue {
    refresh_cookie(state, "", Some(0))
}

/// 204, clearing the refresh cookie only when the request presented one: a request that
/// carried none (a cross-site one, with the cookie held back by SameSite) clears nothing.
fn no_content_clearing_cookie(state: &AppState, headers: &HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if cookie_value(headers, REFRESH_COOKIE).is_some() {
        res.headers_mut()
            .insert(header::SET_COOKIE, cleared_cookie(state));
    }
    res
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

// ---- refresh and logout ------------------------------------------------------------------

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The refresh token of a request: the body's, else the cookie's. A cookie-authenticated
/// request must carry `X-Device-ID` (a cross-site form cannot set it).
fn presented_token<'a>(
    body: &'a RefreshBody,
    headers: &'a HeaderMap,
    device: &DeviceId,
) -> ApiResult<Option<&'a str>> {
    if let Some(t) = body.refresh_token.as_deref() {
        return Ok(Some(t));
    }
    match cookie_value(headers, REFRESH_COOKIE) {
        Some(t) if device.0.is_none() => {
            let _ = t;
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CsrfCheckFailed,
                "a request authenticated by the refresh cookie must carry X-Device-ID",
            ))
        }
        other => Ok(other),
    }
}

#[utoipa::path(post, path = "/auth/refresh", tag = "tokens",
    request_body(content = RefreshBody, description = "the refresh token, unless it travels in the baton_refresh cookie"),
    params(("X-Device-ID" = Option<String>, Header, description = "required with the cookie"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same for every retry of one refresh"),
        ("DPoP" = Option<String>, Header, description = "a DPoP proof by the session's key; required for a DPoP-bound session")),
    responses((status = 200, body = baton_core::TokenResponse),
        (status = 401, description = "refresh_token_invalid, refresh_token_reused, session_expired, session_revoked, device_mismatch, dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "csrf_check_failed", body = baton_core::ErrorBody), (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Response> {
    let token = presented_token(&body, &headers, &device)?
        .ok_or_else(|| {
            ApiError::unauthorized(ErrorCode::RefreshTokenInvalid, "no refresh token was sent")
        })?
        .to_owned();
    let mut c = caller(ip, device, &headers);
    c.request_key = crate::extract::request_key(&headers)?;
    match sessions::refresh(&state, &token, &c, &headers).await {
        Ok(r) => respond_tokens(&state, &r.session, r.generation, r.body),
        Err(e) => {
            let mut res = e.into_response();
            if res.status() == StatusCode::UNAUTHORIZED
                && cookie_value(&headers, REFRESH_COOKIE).is_some()
            {
                res.headers_mut()
                    .insert(header::SET_COOKIE, cleared_cookie(&state));
            }
            Ok(res)
        }
    }
}

#[utoipa::path(post, path = "/auth/logout", tag = "tokens",
    request_body(content = RefreshBody, description = "or an access token (Authorization), or the cookie"),
    params(("DPoP" = Option<String>, Header, description = "a DPoP proof by the session's key; required for a DPoP-bound session")),
    responses((status = 204, description = "signed out (also for an unknown token)"), (status = 403, description = "csrf_check_failed", body = baton_core::ErrorBody),
        (status = 401, description = "dpop_proof_invalid: a DPoP-bound session without a proof of its key", body = baton_core::ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Response> {
    let token = presented_token(&body, &headers, &device)?.map(str::to_owned);
    let c = caller(ip, device, &headers);
    let now = now_ms();
    // The access token first; a bad or expired one falls back to the refresh token. Either
    // way a DPoP-bound session is only ended with a proof of its key.
    let by_access = match authorization(&headers) {
        Ok(Some((t, scheme))) => state
            .keys
            .verify_access(t)
            .ok()
            .map(|claims| (claims, t, scheme == Scheme::Dpop)),
        _ => None,
    };
    let session = match by_access {
        Some((claims, t, dpop)) => {
            let bound = claims.cnf.as_ref().map(|c| c.jkt.as_str());
            let post = axum::http::Method::POST;
            crate::dpop::check_access(&state, &headers, &post, "/auth/logout", t, dpop, bound)
                .await?;
            state.store.session(&claims.sid).await?
        }
        None => match token {
            Some(t) => match sessions::resolve(&state, &t).await {
                Ok((s, _)) => {
                    sessions::proof_of_key(&state, &s, &c, &headers, "/auth/logout").await?;
                    Some(s)
                }
                Err(e) if e.status == StatusCode::UNAUTHORIZED => None,
                Err(e) => return Err(e),
            },
            None => None,
        },
    };
    if let Some(s) = session {
        sessions::revoke(&state, &s, "logout", &c, now).await?;
    }
    Ok(no_content_clearing_cookie(&state, &headers))
}

#[utoipa::path(post, path = "/auth/logout-all", tag = "tokens", security(("access_token" = [])),
    responses((status = 204, description = "every session of the user revoked"), (status = 401, body = baton_core::ErrorBody)))]
pub async fn logout_all(
    State(state): State<AppState>,
    auth: AuthUser,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = caller(ip, device, &headers);
    let now = now_ms();
    let (uid, sid) = (&auth.claims.sub, &auth.claims.sid);
    let ids = state
        .store
        .revoke_all(uid, "logout_all", now, |n| {
            let detail = format!("signed out of {n} sessions");
            sessions::event(Some(uid), "logout_all", "info", Some(sid), &c, &detail)
        })
        .await?;
    for id in &ids {
        state.revoked.insert(id, now);
        state.metrics.revocation("logout_all");
    }
    Ok(no_content_clearing_cookie(&state, &headers))
}

// ---- account -----------------------------------------------------------------------------

#[utoipa::path(get, path = "/auth/me", tag = "account", security(("access_token" = [])),
    responses((status = 200, body = crate::schema::Me), (status = 401, description = "token_missing, token_invalid, token_expired, token_revoked", body = baton_core::ErrorBody)))]
pub async fn me(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<crate::schema::Me>> {
    let user = state
        .store
        .user_by_id(&auth.claims.sub)
        .await?
        .ok_or_else(|| ApiError::unauthorized(ErrorCode::TokenInvalid, "unknown user"))?;
    Ok(Json(crate::schema::Me {
        user: user_json(&user),
        session_id: auth.claims.sid,
    }))
}

fn session_json(s: &SessionRow, current_sid: &str) -> crate::schema::SessionInfo {
    crate::schema::SessionInfo {
        id: s.id.clone(),
        device_id: s.device_id.clone(),
        user_agent: s.user_agent.clone(),
        ip: s.ip.clone(),
        created_at: s.created_at / 1000,
        last_used_at: s.last_used_at / 1000,
        expires_at: s.ends_at() / 1000,
        remember_me: s.remember_me,
        current: s.id == current_sid,
    }
}

#[utoipa::path(get, path = "/auth/sessions", tag = "account", security(("access_token" = [])),
    responses((status = 200, body = crate::schema::SessionList), (status = 401, body = baton_core::ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<crate::schema::SessionList>> {
    let rows = state
        .store
        .live_sessions(&auth.claims.sub, now_ms())
        .await?;
    let list: Vec<_> = rows
        .iter()
        .map(|s| session_json(s, &auth.claims.sid))
        .collect();
    Ok(Json(crate::schema::SessionList { sessions: list }))
}

#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "account", security(("access_token" = [])),
    params(("id" = String, Path, description = "a session id of the caller")),
    responses((status = 204, description = "revoked"), (status = 401, body = baton_core::ErrorBody), (status = 404, description = "not_found (also another user's session)", body = baton_core::ErrorBody)))]
pub async fn delete_session(
    State(state): State<AppState>,
    auth: AuthUser,
    ip: ClientIp,
    device: DeviceId,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let session = match uuid::Uuid::parse_str(&id) {
        Ok(_) => state.store.session(&id).await?,
        Err(_) => None,
    };
    let Some(session) = session.filter(|s| s.user_id == auth.claims.sub && s.revoked_at.is_none())
    else {
        return Err(ApiError::not_found());
    };
    let c = caller(ip, device, &headers);
    sessions::revoke(&state, &session, "revoked_by_user", &c, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/auth/audit-log", tag = "account", security(("access_token" = [])),
    params(("limit" = Option<i64>, Query, description = "1 to 1000, default 50")),
    responses((status = 200, body = crate::schema::AuditLog), (status = 400, body = baton_core::ErrorBody), (status = 401, body = baton_core::ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<crate::schema::AuditLog>> {
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 1000"))?,
    };
    let events = state.store.events_for_user(&auth.claims.sub, limit).await?;
    let list: Vec<_> = events
        .iter()
        .map(|e| crate::schema::AuditEvent {
            id: e.id,
            at: e.at / 1000,
            kind: e.kind.clone(),
            severity: e.severity.clone(),
            session_id: e.session_id.clone(),
            device_id: e.device_id.clone(),
            ip: e.ip.clone(),
            detail: e.detail.clone(),
        })
        .collect();
    Ok(Json(crate::schema::AuditLog { events: list }))
}

#[utoipa::path(get, path = "/api/ping", tag = "sample", security(("access_token" = [])),
    responses((status = 200, body = crate::schema::Ping), (status = 401, body = baton_core::ErrorBody)))]
pub async fn ping(auth: AuthUser) -> Json<crate::schema::Ping> {
    Json(crate::schema::Ping {
        ok: true,
        sub: auth.claims.sub,
        sid: auth.claims.sid,
        at: now_ms() / 1000,
    })
}

// ---- operations --------------------------------------------------------------------------

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "verification",
    responses((status = 200, body = crate::schema::Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut res = Json(state.keys.jwks()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 403, description = "forbidden: not loopback and no BATON_METRICS_TOKEN", body = baton_core::ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, _) = req.into_parts();
    // The resolved client, not the socket peer: behind a local reverse proxy every peer is
    // loopback.
    let client = client_ip(peer(&parts), &parts.headers, &state.config.trusted_proxies);
    let loopback = client.is_loopback();
    let token = &state.config.metrics_token;
    let by_token = !token.is_empty()
        && bearer(&parts.headers)
            .ok()
            .flatten()
            .is_some_and(|t| constant_eq(t.as_bytes(), token.as_bytes()));
    if !loopback && !by_token {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "metrics are served to loopback peers or with the metrics token",
        ));
    }
    if let Ok(n) = state.store.count_live_sessions(now_ms()).await {
        state.metrics.set_active_sessions(n);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state
            .metrics
            .render_with(state.store.events_file().map(|s| s.dropped())),
    )
        .into_response())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = crate::schema::Status)))]
pub async fn healthz() -> Json<crate::schema::Status> {
    Json(crate::schema::Status {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = crate::schema::Status), (status = 503, description = "unavailable", body = baton_core::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<crate::schema::Status>> {
    let wait = state
        .config
        .request_timeout
        .min(std::time::Duration::from_secs(2));
    match tokio::time::timeout(wait, state.store.ready()).await {
        Ok(true) => Ok(Json(crate::schema::Status {
            status: "ready".into(),
        })),
        _ => Err(ApiError::unavailable()),
    }
}
