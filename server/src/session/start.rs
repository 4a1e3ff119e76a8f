//! The start of a session, where every sign-in method ends: the session row with its events
//! (sign-in, new device), anomaly checks, and the tokens, as data (`Issued`).

use super::issue::{token_response, Issued};
use crate::audit::{audit, event, Caller};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store::{NewEvent, SessionRow, UserRow};

/// What the client chose for a new session (the body fields every sign-in takes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Choice {
    /// `remember_me`: the longer absolute lifetime, and a persistent cookie.
    pub remember_me: bool,
    /// `refresh_transport: "cookie"`: the refresh token travels in the cookie.
    pub cookie: bool,
}

/// How a new session is started (see `start`).
#[derive(Debug)]
pub struct Start {
    pub remember_me: bool,
    /// The refresh token travels in the cookie.
    pub cookie: bool,
    /// The checked DPoP proof whose key the session is bound to (see `dpop`), recorded
    /// against replay here, once the caller proved who they are.
    pub dpop: Option<baton_core::dpop::Proof>,
    /// The `login_succeeded` event's detail: how the user proved who they are.
    pub detail: &'static str,
    /// How (RFC 8176 `amr`): `pwd`, `email`; with a second factor, `otp` or `recovery` too.
    pub amr: Vec<String>,
    /// 2 when a second factor was proven: the account's second factor is not asked for.
    pub aal: i64,
}

impl Start {
    /// A sign-in by one factor, `amr`.
    pub fn new(
        choice: Choice,
        dpop: Option<baton_core::dpop::Proof>,
        detail: &'static str,
        amr: &'static str,
    ) -> Self {
        Self {
            remember_me: choice.remember_me,
            cookie: choice.cookie,
            dpop,
            detail,
            amr: vec![amr.to_owned()],
            aal: 1,
        }
    }
}

/// How a sign-in ended: a session, or a wait for the account's second factor.
#[derive(Debug)]
pub enum SignedIn {
    Session(Box<Issued>),
    SecondFactor(SecondFactor),
}

/// A sign-in that waits for its second factor (`POST /auth/mfa/verify`).
#[derive(Debug)]
pub struct SecondFactor {
    /// Single use, for 5 minutes, only from the browser (and DPoP key) that signed in.
    pub mfa_token: String,
    /// What may prove it: `totp`, `recovery_code`, and `passkey` when the account has one.
    pub methods: Vec<&'static str>,
}

/// The end of every first factor: a session, unless the account has a second factor; then a
/// challenge for it (see `signin::totp`), and no session yet.
pub async fn begin(
    state: &AppState,
    user: &UserRow,
    c: &Caller,
    how: Start,
    now: i64,
) -> ApiResult<SignedIn> {
    if crate::rules::account::is_disabled(user.disabled_until, now) {
        // Said here too, so that a disabled account is not asked for its second factor.
        state.metrics.login("failure");
        return Err(super::issue::disabled());
    }
    if how.aal >= 2 || !state.store.has_second_factor(&user.id).await? {
        return Ok(SignedIn::Session(Box::new(
            start(state, user, c, how, now).await?,
        )));
    }
    // The sign-in's proof is spent here as it would be by a session.
    if let Some(proof) = &how.dpop {
        crate::dpop::record(state, proof).await?;
    }
    let token = crate::crypto::keys::random_nonce();
    let challenge = crate::store::mfa::ChallengeRow {
        user_id: user.id.clone(),
        requester: c.requester(),
        dpop_jkt: how.dpop.as_ref().map(|p| p.jkt.clone()),
        remember_me: how.remember_me,
        cookie: how.cookie,
        amr: how.amr.join(" "),
        expires_at: now + crate::rules::totp::MFA_TOKEN_TTL_MS,
    };
    let hash = state.keys.secret_mac(MFA_TOKEN, &token);
    state
        .store
        .insert_mfa_challenge(&hash, &challenge, now)
        .await?;
    let detail = format!("{}: the second factor is asked for", how.detail);
    audit(
        state,
        Some(&user.id),
        "mfa_required",
        "info",
        None,
        c,
        &detail,
    )
    .await;
    let mut methods = vec!["totp", "recovery_code"];
    if state.store.has_passkey(&user.id).await? {
        methods.push("passkey");
    }
    Ok(SignedIn::SecondFactor(SecondFactor {
        mfa_token: token,
        methods,
    }))
}

/// The purpose of an `mfa_token`'s HMAC.
pub const MFA_TOKEN: &str = "mfa_token";

/// A new session for `user`, signed in by any method (its second factor, if any, proven: see
/// `begin`): its row and events (sign-in, new device), anomaly checks, and the tokens.
pub async fn start(
    state: &AppState,
    user: &UserRow,
    c: &Caller,
    how: Start,
    now: i64,
) -> ApiResult<Issued> {
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
    let aal = how.aal;
    let amr = how.amr.clone();
    let session = SessionRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        generation: 1,
        nonce: crate::crypto::keys::random_nonce(),
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
        amr,
        aal,
        step_up_until: None,
    };
    let (uid, sid) = (Some(user.id.as_str()), Some(session.id.as_str()));
    let signed_in = event(uid, "login_succeeded", "info", sid, c, how.detail);
    let device = if first_device {
        event(
            uid,
            "new_device",
            "info",
            sid,
            c,
            "the account's first device",
        )
    } else {
        let first = "first sign-in from this device";
        event(uid, "new_device", "warning", sid, c, first)
    };
    let events: Vec<&NewEvent> = if new_device {
        vec![&signed_in, &device]
    } else {
        vec![&signed_in]
    };
    if !state.store.insert_session(&session, &events).await? {
        state.metrics.login("failure");
        return Err(super::issue::disabled());
    }
    state.metrics.login("success");
    if new_device && !first_device {
        state.metrics.anomaly("new_device");
    }
    flag_suspicious(state, &user.id, &session.id, c, now).await?;
    let body = token_response(state, &session, user, session.generation, now)?;
    Ok(Issued { body, session })
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
    let reason = if logins > crate::limits::SUSPICIOUS_LOGINS {
        format!("{logins} logins in the last hour")
    } else if ips > crate::limits::SUSPICIOUS_IPS {
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
