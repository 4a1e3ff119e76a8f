//! The second factor: TOTP (RFC 6238) with recovery codes. Enrolment and its confirmation, the
//! second step of a sign-in (`mfa_token`), a step-up of a live session, new recovery codes, and
//! removal. Every check of a code is counted like a password (five wrong codes lock the second
//! factor for the source, known devices apart) and audited.

use crate::audit::{audit, event, Caller};
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::rules::{lockout, totp};
use crate::session::issue::{token_response, Issued};
use crate::session::start::{start, Start, MFA_TOKEN};
use crate::state::AppState;
use crate::store::mfa::FactorRow;
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;
use http::{HeaderMap, Method, StatusCode};

/// The purpose of a recovery code's HMAC.
const RECOVERY_CODE: &str = "recovery_code";

/// A TOTP secret being set up: shown once, for the authenticator app.
#[derive(Debug)]
pub struct Enrolled {
    pub factor_id: String,
    /// Base32, as apps take it typed in.
    pub secret: String,
    pub otpauth_url: String,
}

/// A second factor as presented.
#[derive(Debug, Clone)]
pub enum Second {
    Totp(String),
    RecoveryCode(String),
    /// An answer to a passkey sign-in ceremony (`POST /auth/passkeys/login/options`).
    Passkey {
        challenge_id: String,
        credential: serde_json::Value,
    },
}

fn sealed_name(factor_id: &str) -> String {
    format!("mfa:{factor_id}")
}

fn invalid_code(message: &'static str) -> ApiError {
    ApiError::unauthorized(ErrorCode::InvalidCode, message)
}

fn secret_of(state: &AppState, f: &FactorRow) -> ApiResult<Vec<u8>> {
    let b32 = state
        .keys
        .open(&sealed_name(&f.id), &f.secret)
        .map_err(|e| {
            tracing::error!(error = %e, "a second factor's secret cannot be opened");
            ApiError::internal()
        })?;
    from_base32(&b32).ok_or_else(ApiError::internal)
}

fn from_base32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// Starts setting up TOTP for the signed-in user: a new secret (sealed at rest), not in force
/// until a code of it is confirmed. One TOTP factor per account.
pub async fn enroll(state: &AppState, c: &Caller, user_id: &str) -> ApiResult<Enrolled> {
    let user = crate::signin::profile::account(state, user_id).await?;
    let has = state.store.confirmed_factors(user_id).await?;
    if has.iter().any(|f| f.kind == "totp") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::InvalidRequest,
            "TOTP is set up already: remove it first (DELETE /auth/mfa/factors/{id})",
        ));
    }
    let key = format!("mfa_enroll:{user_id}");
    let rule = crate::limits::OTP_VERIFY_PER_IP;
    let subject = Subject {
        user_id: Some(user_id),
        session_id: None,
    };
    throttle::limit(state, &key, rule, "mfa_enroll", c, subject).await?;
    let mut raw = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let secret = totp::base32(&raw);
    let id = uuid::Uuid::new_v4().to_string();
    let sealed = state.keys.seal(&sealed_name(&id), &secret).map_err(|e| {
        tracing::error!(error = %e, "sealing a second factor failed");
        ApiError::internal()
    })?;
    let row = FactorRow {
        id: id.clone(),
        user_id: user_id.to_owned(),
        kind: "totp".into(),
        secret: sealed,
        created_at: now_ms(),
        confirmed_at: None,
        last_step: None,
    };
    state.store.insert_factor(&row).await?;
    let url = totp::otpauth_url(&state.config.mfa_issuer, &user.email, &secret);
    Ok(Enrolled {
        factor_id: id,
        secret,
        otpauth_url: url,
    })
}

/// A new set of recovery codes: shown once, stored as HMACs.
fn new_codes(state: &AppState) -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..totp::RECOVERY_CODES)
        .map(|_| {
            let mut b = [0u8; 7];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
            totp::recovery_code(&b)
        })
        .collect();
    let hashes = codes
        .iter()
        .map(|c| {
            state
                .keys
                .secret_mac(RECOVERY_CODE, &totp::normalize_recovery_code(c))
        })
        .collect();
    (codes, hashes)
}

/// Confirms an enrolment with a code of the new secret: from now on the account needs a
/// second factor. The recovery codes, shown once.
pub async fn confirm(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    factor_id: &str,
    code: &str,
) -> ApiResult<Vec<String>> {
    let key = format!("mfa_confirm:{user_id}");
    let rule = crate::limits::OTP_VERIFY_PER_IP;
    let subject = Subject {
        user_id: Some(user_id),
        session_id: None,
    };
    throttle::limit(state, &key, rule, "mfa_confirm", c, subject).await?;
    let factor = state
        .store
        .factor(user_id, factor_id)
        .await?
        .filter(|f| f.confirmed_at.is_none())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no TOTP set-up in progress with this factor_id: enroll again",
            )
        })?;
    let secret = secret_of(state, &factor)?;
    let now = now_ms();
    let step = totp::check(&secret, code, now, factor.last_step)
        .map_err(|_| invalid_code("wrong code: enter the code the app shows now"))?;
    let (codes, hashes) = new_codes(state);
    let e = event(
        Some(user_id),
        "mfa_enrolled",
        "warning",
        None,
        c,
        "TOTP set up: sign-in now needs a second factor",
    );
    if !state
        .store
        .confirm_factor(user_id, factor_id, step, &hashes, now, &e)
        .await?
    {
        return Err(invalid_code(
            "this code was used already: wait for the next one",
        ));
    }
    Ok(codes)
}

/// Checks a second factor of `user_id` under the lockout; its `amr` (`otp`, `recovery`,
/// `webauthn`), or 401
/// `invalid_code` (429 `account_locked` once five in a row were wrong). Runs in a task of its
/// own: a request given up meanwhile neither leaves the attempt counted nor a code half-spent.
pub async fn prove(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    second: Second,
) -> ApiResult<&'static str> {
    let (state, c, user_id) = (state.clone(), c.clone(), user_id.to_owned());
    tokio::spawn(async move { prove_now(&state, &c, &user_id, second).await })
        .await
        .map_err(|_| ApiError::internal())?
}

async fn prove_now(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    second: Second,
) -> ApiResult<&'static str> {
    let now = now_ms();
    let known = match &c.device_id {
        Some(d) => state.store.device_known(user_id, d).await?,
        None => false,
    };
    let source = format!("mfa:{}", lockout::source(c.device_id.as_deref(), known));
    let counted = state.limits.enabled;
    if counted {
        let admitted = state
            .store
            .reserve_login_attempt(
                user_id,
                &source,
                lockout::LOCK_AFTER,
                now,
                now - lockout::FORGET_LOCKS_AFTER.as_millis() as i64,
                now - lockout::ABANDONED_AFTER.as_millis() as i64,
            )
            .await?;
        if !admitted {
            let until = state
                .store
                .login_locked_until(user_id, &source, now)
                .await?;
            let wait = until.map_or(1, |t| ((t - now) as u64).div_ceil(1000));
            state.metrics.rate_limited("mfa_locked");
            return Err(ApiError::too_many(ErrorCode::AccountLocked, wait));
        }
    }
    let mut refusal = None;
    let proven = match &second {
        Second::Totp(code) => check_totp(state, user_id, code, now).await?,
        Second::RecoveryCode(code) => {
            let hash = state
                .keys
                .secret_mac(RECOVERY_CODE, &totp::normalize_recovery_code(code));
            let used = state.store.use_recovery_code(user_id, &hash, now).await?;
            if used {
                let left = state.store.recovery_codes_left(user_id).await?;
                let detail = format!("a recovery code was used: {left} left");
                audit(
                    state,
                    Some(user_id),
                    "recovery_code_used",
                    "warning",
                    None,
                    c,
                    &detail,
                )
                .await;
            }
            used.then_some("recovery")
                .ok_or("wrong or used recovery code")
        }
        Second::Passkey {
            challenge_id,
            credential,
        } => match crate::signin::passkey::prove(state, c, user_id, challenge_id, credential).await
        {
            Ok(()) => Ok("webauthn"),
            // A refused passkey (audited there) counts like a wrong code, and says why.
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                refusal = Some(e);
                Err("a passkey was refused")
            }
            Err(e) => return Err(e),
        },
    };
    match proven {
        Ok(amr) => {
            if counted {
                state.store.clear_login_failures(user_id, &source).await?;
            }
            let detail = format!("second factor proven ({amr})");
            audit(
                state,
                Some(user_id),
                "mfa_verified",
                "info",
                None,
                c,
                &detail,
            )
            .await;
            Ok(amr)
        }
        Err(why) => {
            audit(state, Some(user_id), "mfa_refused", "warning", None, c, why).await;
            let refusal = refusal.unwrap_or_else(|| invalid_code("wrong second factor"));
            if counted {
                let whom = if source.ends_with(lockout::UNTRUSTED) {
                    "second factors from unknown devices"
                } else {
                    "second factors from this device"
                };
                let what = ("wrong second factors", whom);
                throttle::lock_if_reached(state, user_id, &source, c, now, what).await?;
            }
            Err(refusal)
        }
    }
}

/// A TOTP code against the user's confirmed factors: `otp`, or why not.
async fn check_totp(
    state: &AppState,
    user_id: &str,
    code: &str,
    now: i64,
) -> ApiResult<Result<&'static str, &'static str>> {
    let mut why = "wrong TOTP code";
    for f in state.store.confirmed_factors(user_id).await? {
        if f.kind != "totp" {
            continue;
        }
        let secret = secret_of(state, &f)?;
        match totp::check(&secret, code, now, f.last_step) {
            Ok(step) if state.store.take_step(&f.id, step).await? => return Ok(Ok("otp")),
            Ok(_) | Err(totp::Refused::Replayed) => why = "a TOTP code used before (replay)",
            Err(totp::Refused::Wrong) => {}
        }
    }
    Ok(Err(why))
}

fn mfa_token_invalid() -> ApiError {
    ApiError::unauthorized(
        ErrorCode::MfaTokenInvalid,
        "this sign-in is unknown, finished or expired: sign in again",
    )
}

/// The second step of a sign-in: the `mfa_token` of the first step, from the same browser (and
/// with a proof of the same DPoP key when the first step carried one), and a second factor.
/// The session, at assurance level 2.
pub async fn verify(
    state: &AppState,
    c: &Caller,
    headers: &HeaderMap,
    mfa_token: &str,
    second: Second,
) -> ApiResult<Issued> {
    let key = format!("otp_verify_ip:{}", c.ip);
    throttle::refused_early(state, &key, "otp_verify_ip")?;
    let dpop = crate::dpop::bind_new_session(state, headers, &Method::POST, "/auth/mfa/verify")?;
    let rule = crate::limits::OTP_VERIFY_PER_IP;
    throttle::limit(state, &key, rule, "otp_verify_ip", c, Subject::default()).await?;
    if mfa_token.is_empty() || mfa_token.len() > 128 {
        return Err(mfa_token_invalid());
    }
    let hash = state.keys.secret_mac(MFA_TOKEN, mfa_token);
    let now = now_ms();
    let challenge = state
        .store
        .mfa_challenge(&hash, now)
        .await?
        .filter(|ch| ch.requester == c.requester())
        .ok_or_else(mfa_token_invalid)?;
    if let Some(jkt) = &challenge.dpop_jkt {
        if dpop.as_ref().map(|p| &p.jkt) != Some(jkt) {
            return Err(crate::dpop::invalid(
                "the second step of a DPoP sign-in needs a proof of the same key",
            ));
        }
    }
    let user = state
        .store
        .user_by_id(&challenge.user_id)
        .await?
        .ok_or_else(mfa_token_invalid)?;
    let second_amr = prove(state, c, &user.id, second).await?;
    if !state.store.spend_mfa_challenge(&hash, now_ms()).await? {
        return Err(mfa_token_invalid());
    }
    let mut amr: Vec<String> = challenge.amr.split(' ').map(str::to_owned).collect();
    amr.push(second_amr.to_owned());
    let how = Start {
        remember_me: challenge.remember_me,
        cookie: challenge.cookie,
        dpop,
        detail: "signed in with a second factor",
        amr,
        aal: 2,
    };
    start(state, &user, c, how, now_ms()).await
}

/// Raises the caller's live session to level 2 for `BATON_STEP_UP_TTL`, proven by a second
/// factor: new tokens (the same refresh token) whose access token says `aal: 2` until then.
pub async fn step_up(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    session_id: &str,
    second: Second,
) -> ApiResult<Issued> {
    let by_passkey = matches!(second, Second::Passkey { .. });
    if !by_passkey && !state.store.has_second_factor(user_id).await? {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "this account has no second factor: set one up first",
        ));
    }
    let amr = prove(state, c, user_id, second).await?;
    let now = now_ms();
    let until = now + state.config.step_up_ttl.as_millis() as i64;
    let detail = format!(
        "stepped up to level 2 for {} ({amr})",
        humantime::format_duration(state.config.step_up_ttl)
    );
    let e = event(
        Some(user_id),
        "mfa_step_up",
        "info",
        Some(session_id),
        c,
        &detail,
    );
    if !state
        .store
        .step_up(session_id, user_id, until, now, &e)
        .await?
    {
        return Err(ApiError::unauthorized(
            ErrorCode::TokenRevoked,
            "the session of this access token was revoked",
        ));
    }
    state.session_cache.forget_user(user_id);
    let session = state
        .store
        .session(session_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let user = crate::signin::profile::account(state, user_id).await?;
    let body = token_response(state, &session, &user, session.generation, now)?;
    Ok(Issued { body, session })
}

/// A new set of recovery codes, proven by a second factor now; the old set stops working.
pub async fn new_recovery_codes(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    second: Second,
) -> ApiResult<Vec<String>> {
    prove(state, c, user_id, second).await?;
    let (codes, hashes) = new_codes(state);
    let e = event(
        Some(user_id),
        "recovery_codes_replaced",
        "warning",
        None,
        c,
        "a new set of recovery codes: the old ones stop working",
    );
    state
        .store
        .replace_recovery_codes(user_id, &hashes, now_ms(), &e)
        .await?;
    Ok(codes)
}

/// The user's factors and how many recovery codes are left.
pub async fn factors(state: &AppState, user_id: &str) -> ApiResult<(Vec<FactorRow>, i64)> {
    Ok((
        state.store.confirmed_factors(user_id).await?,
        state.store.recovery_codes_left(user_id).await?,
    ))
}

/// Removes a factor; the session must be at level 2 (signed in with it, or stepped up).
pub async fn remove(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    aal: u8,
    factor_id: &str,
) -> ApiResult<()> {
    if aal < 2 {
        return Err(step_up_required());
    }
    let e = event(
        Some(user_id),
        "mfa_removed",
        "warning",
        None,
        c,
        "a second factor was removed",
    );
    if !state.store.delete_factor(user_id, factor_id, &e).await? {
        return Err(ApiError::not_found());
    }
    Ok(())
}

/// 403 `step_up_required`: the call needs a session at assurance level 2.
pub fn step_up_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::StepUpRequired,
        "this needs a second factor: POST /auth/mfa/step-up first",
    )
}
