//! Passkeys (WebAuthn): registration by a signed-in user, usernameless sign-in ending in the
//! usual session start (assurance level 2: a passkey verifies its user), a passkey as the
//! second factor of another sign-in, and the user's list. Every ceremony is single use and
//! lives 5 minutes; every refusal is audited (`passkey_refused`, `passkey_clone_suspected`).

use crate::audit::{audit, event, Caller};
use crate::clock::now_ms;
use crate::crypto::webauthn::{Refused, RelyingParty};
use crate::error::{ApiError, ApiResult};
use crate::rules::passkey as rules;
use crate::session::start::{begin, Choice, SignedIn, Start};
use crate::state::AppState;
use crate::store::passkeys::{Added, CeremonyRow, PasskeyRow};
use crate::throttle::{self, Subject};
use baton_core::ErrorCode;
use http::{HeaderMap, Method, StatusCode};

const REGISTER: &str = "register";
const LOGIN: &str = "login";

/// A ceremony for the browser: its id (sent back with the answer) and the options for
/// `navigator.credentials.create()` or `.get()`, in WebAuthn's JSON form.
#[derive(Debug)]
pub struct Ceremony {
    pub challenge_id: String,
    pub options: serde_json::Value,
}

/// The relying party, or 503 `passkeys_unavailable` naming the setting.
fn relying(state: &AppState) -> ApiResult<&RelyingParty> {
    state.passkeys.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::PasskeysUnavailable,
            "passkeys are not set up on this server: set BATON_WEBAUTHN_RP_ID (or \
             BATON_PUBLIC_URL) and BATON_WEBAUTHN_ORIGINS",
        )
    })
}

fn invalid(status: StatusCode, why: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(status, ErrorCode::PasskeyInvalid, why)
}

fn unknown_ceremony(status: StatusCode) -> ApiError {
    invalid(
        status,
        "this passkey ceremony is unknown, finished or expired: start again",
    )
}

async fn new_ceremony(
    state: &AppState,
    kind: &str,
    user_id: Option<&str>,
    requester: Option<String>,
    name: Option<String>,
    (options, kept): (serde_json::Value, String),
) -> ApiResult<Ceremony> {
    let now = now_ms();
    let row = CeremonyRow {
        id: crate::crypto::keys::random_nonce(),
        kind: kind.to_owned(),
        user_id: user_id.map(str::to_owned),
        requester,
        state: kept,
        name,
        expires_at: now + rules::CEREMONY_TTL_MS,
    };
    state.store.insert_passkey_ceremony(&row, now).await?;
    Ok(Ceremony {
        challenge_id: row.id,
        options,
    })
}

fn library_failed(e: Refused) -> ApiError {
    tracing::error!(error = ?e, "the WebAuthn library could not make options");
    ApiError::internal()
}

/// Counts a registration step (options or answer) against the account's limit.
async fn limit_registration(state: &AppState, c: &Caller, user_id: &str) -> ApiResult<()> {
    let key = format!("passkey_register:{user_id}");
    let subject = Subject {
        user_id: Some(user_id),
        session_id: None,
    };
    let rule = crate::limits::PASSKEY_REGISTER_PER_USER;
    throttle::limit(state, &key, rule, "passkey_register", c, subject).await?;
    Ok(())
}

/// Starts adding a passkey to the signed-in user's account.
pub async fn register_options(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    name: Option<String>,
) -> ApiResult<Ceremony> {
    let rp = relying(state)?;
    let user = crate::signin::profile::account(state, user_id).await?;
    limit_registration(state, c, user_id).await?;
    let have = state.store.passkeys(user_id).await?;
    if have.len() as i64 >= rules::MAX_PASSKEYS {
        return Err(full());
    }
    if let Some(n) = &name {
        rules::name(Some(n), 0).map_err(ApiError::validation)?;
    }
    let exclude: Vec<String> = have.into_iter().map(|p| p.credential_id).collect();
    let made = rp
        .register_options(user_id.as_bytes(), &user.email, &exclude)
        .map_err(library_failed)?;
    new_ceremony(state, REGISTER, Some(user_id), None, name, made).await
}

fn full() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::InvalidRequest,
        "this account has 20 passkeys, the most it may hold: remove one first",
    )
}

/// Finishes adding a passkey: the answer of `navigator.credentials.create()` to the ceremony
/// `challenge_id` of this user. The passkey as stored.
pub async fn register_verify(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    challenge_id: &str,
    credential: &serde_json::Value,
    name: Option<String>,
) -> ApiResult<PasskeyRow> {
    let rp = relying(state)?;
    limit_registration(state, c, user_id).await?;
    let now = now_ms();
    let ceremony = state
        .store
        .take_passkey_ceremony(challenge_id, REGISTER, &c.requester(), now)
        .await?
        .filter(|r| r.user_id.as_deref() == Some(user_id) && rules::live(r.expires_at, now))
        .ok_or_else(|| unknown_ceremony(StatusCode::BAD_REQUEST))?;
    let new = match rp.register(credential, &ceremony.state) {
        Ok(new) => new,
        Err(e) => {
            let why = match e {
                Refused::Invalid(why) => why,
                Refused::CounterWentBack => "the signature counter went back".to_owned(),
            };
            let detail = format!("a passkey was not added: {why}");
            audit(
                state,
                Some(user_id),
                "passkey_refused",
                "warning",
                None,
                c,
                &detail,
            )
            .await;
            return Err(invalid(StatusCode::BAD_REQUEST, detail));
        }
    };
    let count = state.store.passkeys(user_id).await?.len() as i64;
    let name = rules::name(name.as_deref().or(ceremony.name.as_deref()), count)
        .map_err(ApiError::validation)?;
    let row = PasskeyRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        credential_id: new.credential_id,
        credential: new.credential,
        sign_count: new.sign_count,
        name,
        created_at: now,
        last_used_at: None,
    };
    let detail = format!("passkey added: {}", row.name);
    let e = event(
        Some(user_id),
        "passkey_registered",
        "warning",
        None,
        c,
        &detail,
    );
    match state
        .store
        .insert_passkey(&row, rules::MAX_PASSKEYS, &e)
        .await?
    {
        Added::Added => Ok(row),
        Added::Full => Err(full()),
        Added::Taken => Err(invalid(
            StatusCode::CONFLICT,
            "this passkey is registered already",
        )),
    }
}

/// Starts a usernameless sign-in (or a passkey as a second factor): options with no
/// `allowCredentials`, user verification required; only the requester (device id, else client
/// address) may answer it.
pub async fn login_options(state: &AppState, c: &Caller) -> ApiResult<Ceremony> {
    let rp = relying(state)?;
    let key = format!("passkey_options_ip:{}", c.ip);
    throttle::refused_early(state, &key, "passkey_options_ip")?;
    let rule = crate::limits::PASSKEY_OPTIONS_PER_IP;
    throttle::limit(
        state,
        &key,
        rule,
        "passkey_options_ip",
        c,
        Subject::default(),
    )
    .await?;
    let made = rp.login_options().map_err(library_failed)?;
    // Only the browser that asked (its device id, else its address) may answer it.
    new_ceremony(state, LOGIN, None, Some(c.requester()), None, made).await
}

/// A checked assertion: whose passkey answered.
struct Proven {
    user_id: String,
    passkey: PasskeyRow,
}

/// Checks the answer of `navigator.credentials.get()` to the sign-in ceremony `challenge_id`:
/// the ceremony is spent first (one answer per challenge), then the passkey is looked up by
/// its credential id, its user handle compared, the signature and flags verified, and the
/// counter moved on in the same statement that checks it did not move meanwhile. Refusals
/// are audited and answered 401 `passkey_invalid`.
async fn check(
    state: &AppState,
    c: &Caller,
    challenge_id: &str,
    credential: &serde_json::Value,
    for_user: Option<&str>,
) -> ApiResult<Proven> {
    let rp = relying(state)?;
    let key = format!("passkey_verify_ip:{}", c.ip);
    throttle::refused_early(state, &key, "passkey_verify_ip")?;
    let rule = crate::limits::PASSKEY_VERIFY_PER_IP;
    throttle::limit(
        state,
        &key,
        rule,
        "passkey_verify_ip",
        c,
        Subject::default(),
    )
    .await?;
    let now = now_ms();
    let ceremony = state
        .store
        .take_passkey_ceremony(challenge_id, LOGIN, &c.requester(), now)
        .await?
        .filter(|r| rules::live(r.expires_at, now))
        .ok_or_else(|| unknown_ceremony(StatusCode::UNAUTHORIZED))?;
    let refuse = |user: Option<String>, why: String| async move {
        let detail = format!("a passkey was refused: {why}");
        audit(
            state,
            user.as_deref(),
            "passkey_refused",
            "warning",
            None,
            c,
            &detail,
        )
        .await;
        invalid(StatusCode::UNAUTHORIZED, detail)
    };
    let (credential_id, handle) = match rp.assertion(credential) {
        Ok(parsed) => parsed,
        Err(Refused::Invalid(why)) => return Err(refuse(None, why).await),
        Err(Refused::CounterWentBack) => return Err(ApiError::internal()),
    };
    let Some(passkey) = state.store.passkey_by_credential(&credential_id).await? else {
        return Err(refuse(None, "this passkey is not registered (removed?)".into()).await);
    };
    let owner = passkey.user_id.clone();
    if handle.as_deref() != Some(owner.as_bytes()) {
        let why = "the passkey's user handle is not its account's".to_owned();
        return Err(refuse(Some(owner), why).await);
    }
    if for_user.is_some_and(|u| u != owner) {
        let why = "the passkey is another account's".to_owned();
        return Err(refuse(for_user.map(str::to_owned), why).await);
    }
    let asserted = match rp.authenticate(credential, &ceremony.state, &passkey.credential) {
        Ok(a) if rules::counter(passkey.sign_count, a.sign_count) != rules::Counter::WentBack => a,
        Ok(_) | Err(Refused::CounterWentBack) => {
            return Err(clone_suspected(state, c, &passkey).await)
        }
        Err(Refused::Invalid(why)) => return Err(refuse(Some(owner), why).await),
    };
    let moved = state
        .store
        .use_passkey(
            &passkey.id,
            passkey.sign_count,
            asserted.sign_count,
            &asserted.credential,
            now,
        )
        .await?;
    if !moved {
        let why = "the passkey was used at the same moment elsewhere".to_owned();
        return Err(refuse(Some(owner), why).await);
    }
    Ok(Proven {
        user_id: owner,
        passkey,
    })
}

async fn clone_suspected(state: &AppState, c: &Caller, p: &PasskeyRow) -> ApiError {
    let detail = format!(
        "passkey {} answered with a signature counter that did not grow: a copy of it may \
         exist; refused",
        p.name
    );
    let uid = Some(p.user_id.as_str());
    audit(
        state,
        uid,
        "passkey_clone_suspected",
        "critical",
        None,
        c,
        &detail,
    )
    .await;
    state.metrics.anomaly("passkey_clone_suspected");
    invalid(
        StatusCode::UNAUTHORIZED,
        "this passkey's signature counter went back: refused (a copy of it may exist)",
    )
}

/// Signs in with a passkey: the session, at assurance level 2 (`amr: ["webauthn"]`), bound
/// to the DPoP key of the request's proof when it has one.
pub async fn login_verify(
    state: &AppState,
    c: &Caller,
    headers: &HeaderMap,
    challenge_id: &str,
    credential: &serde_json::Value,
    choice: Choice,
) -> ApiResult<SignedIn> {
    relying(state)?;
    let path = "/auth/passkeys/login/verify";
    let dpop = crate::dpop::bind_new_session(state, headers, &Method::POST, path)?;
    let proven = check(state, c, challenge_id, credential, None).await?;
    let user = crate::signin::profile::account(state, &proven.user_id).await?;
    let mut how = Start::new(choice, dpop, "signed in with a passkey", "webauthn");
    how.aal = 2;
    let signed_in = begin(state, &user, c, how, now_ms()).await?;
    let detail = format!("signed in with passkey {}", proven.passkey.name);
    audit(
        state,
        Some(&user.id),
        "passkey_login",
        "info",
        None,
        c,
        &detail,
    )
    .await;
    Ok(signed_in)
}

/// A passkey of `user_id` as a second factor (an answer to a sign-in ceremony).
pub async fn prove(
    state: &AppState,
    c: &Caller,
    user_id: &str,
    challenge_id: &str,
    credential: &serde_json::Value,
) -> ApiResult<()> {
    check(state, c, challenge_id, credential, Some(user_id)).await?;
    Ok(())
}

/// The user's passkeys.
pub async fn list(state: &AppState, user_id: &str) -> ApiResult<Vec<PasskeyRow>> {
    Ok(state.store.passkeys(user_id).await?)
}

/// Renames one of the user's passkeys; the passkey as it is now.
pub async fn rename(
    state: &AppState,
    user_id: &str,
    id: &str,
    name: &str,
) -> ApiResult<PasskeyRow> {
    let name = rules::name(Some(name), 0).map_err(ApiError::validation)?;
    state
        .store
        .rename_passkey(user_id, id, &name)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// Removes one of the user's passkeys (404 for anyone else's).
pub async fn remove(state: &AppState, c: &Caller, user_id: &str, id: &str) -> ApiResult<()> {
    let e = event(
        Some(user_id),
        "passkey_removed",
        "warning",
        None,
        c,
        "a passkey was removed",
    );
    if !state.store.delete_passkey(user_id, id, &e).await? {
        return Err(ApiError::not_found());
    }
    Ok(())
}
