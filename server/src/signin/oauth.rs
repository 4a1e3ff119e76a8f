//! Sign-in through an identity provider (OpenID Connect, GitHub), ending in the usual session
//! start, and the identities a signed-in user links and unlinks.
//!
//! The flow: `start` sends the browser to the provider with a state, a nonce and PKCE (S256),
//! bound to the browser by an HttpOnly cookie; `callback` takes the state once (this
//! browser's only), trades the code, checks the ID token, decides the account
//! (`rules::oauth::resolve`) and sends the browser back to the app with a one-time code,
//! never a token; `exchange` trades that code, once, within 60 s, from the same browser, for
//! the session (or the second-factor step). The PKCE verifier and the nonce are HMACs of the
//! state under the server's secret: nothing that could finish a flow is stored.

use super::account::{prove_address, register_without_password};
use crate::audit::{audit, event, Caller};
use crate::clock::now_ms;
use crate::config::Registration;
use crate::crypto::password::NO_PASSWORD;
use crate::error::{ApiError, ApiResult};
use crate::idp::{Callback, Provider, Request, Upstream};
use crate::rules::oauth::{self as rules, ByAddress, Refusal, Resolve};
use crate::session::start::{begin, Choice, SignedIn, Start};
use crate::state::AppState;
use crate::store::identities::{CodeRow, FlowRow, IdentityRow, Linked};
use crate::store::UserRow;
use crate::throttle::{self, Subject};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use baton_core::ErrorCode;
use http::{HeaderMap, Method, StatusCode};
use sha2::Digest;

/// The browser cookie that binds a flow and its one-time code to the browser that started it.
pub const BROWSER_COOKIE: &str = "baton_oauth";
/// How long the browser cookie lives (a flow, then its code), seconds.
pub const BROWSER_COOKIE_MAX_AGE: u64 = 15 * 60;

/// Where to send the browser, and the browser cookie to set (sent again with every start, so
/// it outlives the newest flow and its code).
#[derive(Debug)]
pub struct Started {
    pub location: String,
    pub browser: String,
}

/// The end of a callback: where the browser goes (the app's page, with `baton_code`,
/// `baton_linked` or `baton_error`).
#[derive(Debug)]
pub struct Landing {
    pub location: String,
}

/// What the provider sent back to the callback.
#[derive(Debug, Default)]
pub struct Answer {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

fn provider<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a Provider> {
    state.providers.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no identity provider of this name is set up on this server",
        )
    })
}

/// The browser's secret from its cookie, when it is one Baton could have set.
fn browser_of(cookie: Option<&str>) -> Option<&str> {
    cookie.filter(|v| {
        v.len() == 43
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn redirect_uri(state: &AppState, provider: &str) -> String {
    format!("{}/auth/oauth/{provider}/callback", state.config.base_url())
}

/// The PKCE verifier and the nonce of a flow, from its state.
fn derived(state: &AppState, flow_state: &str) -> (String, String) {
    (
        state.keys.secret_mac("oauth-pkce", flow_state),
        state.keys.secret_mac("oauth-nonce", flow_state),
    )
}

async fn limit(
    state: &AppState,
    c: &Caller,
    what: &'static str,
    rule: (i64, std::time::Duration),
) -> ApiResult<()> {
    let key = format!("{what}:{}", c.ip);
    throttle::refused_early(state, &key, what)?;
    throttle::limit(state, &key, rule, what, c, Subject::default()).await?;
    Ok(())
}

/// Starts a sign-in at `provider_name` (or, with `link_user`, adding it to that signed-in
/// account) that returns to `redirect_to`, which must be allow-listed.
pub async fn start(
    state: &AppState,
    c: &Caller,
    provider_name: &str,
    redirect_to: &str,
    cookie: Option<&str>,
    link_user: Option<&str>,
) -> ApiResult<Started> {
    let p = provider(state, provider_name)?;
    let back = rules::redirect_allowed(&state.redirects, redirect_to).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::RedirectNotAllowed,
            "redirect_to is not one of the pages BATON_REDIRECT_ALLOWLIST names",
        )
    })?;
    limit(
        state,
        c,
        "oauth_start_ip",
        crate::limits::OAUTH_START_PER_IP,
    )
    .await?;
    let browser = match browser_of(cookie) {
        Some(b) => b.to_owned(),
        None => crate::crypto::keys::random_nonce(),
    };
    let flow_state = crate::crypto::keys::random_nonce();
    let (verifier, nonce) = derived(state, &flow_state);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let now = now_ms();
    let flow = FlowRow {
        state_hash: state.keys.secret_mac("oauth-state", &flow_state),
        provider: p.spec.name.clone(),
        browser_hash: state.keys.secret_mac("oauth-browser", &browser),
        redirect_to: back.to_string(),
        link_user_id: link_user.map(str::to_owned),
        expires_at: now + rules::FLOW_TTL_MS,
    };
    let uri = redirect_uri(state, &p.spec.name);
    let request = Request {
        state: &flow_state,
        nonce: &nonce,
        challenge: &challenge,
        redirect_uri: &uri,
    };
    let location = match state.providers.authorize_url(p, &request).await {
        Ok(url) => {
            state.store.insert_oauth_flow(&flow, now).await?;
            state.metrics.oauth(&p.spec.name, "started");
            url
        }
        Err(why) => {
            refused(
                state,
                c,
                link_user,
                &p.spec.name,
                Refusal::ProviderError,
                &why,
            )
            .await;
            rules::with_param(
                &flow.redirect_to,
                "baton_error",
                Refusal::ProviderError.as_str(),
            )
        }
    };
    Ok(Started { location, browser })
}

/// Records a refused flow (`oauth_refused`, the reason) and counts it.
async fn refused(
    state: &AppState,
    c: &Caller,
    user: Option<&str>,
    provider: &str,
    r: Refusal,
    why: &str,
) {
    state.metrics.oauth(provider, "refused");
    let detail = format!("{provider}: {}: {why}", r.as_str());
    audit(state, user, "oauth_refused", "warning", None, c, &detail).await;
}

/// The provider's answer at the callback: the flow taken (once, this browser's), the code
/// traded, the account decided; the app's page with a one-time code, or with the reason it
/// was refused. 400 when the state was never issued (there is no page to return to).
pub async fn callback(
    state: &AppState,
    c: &Caller,
    provider_name: &str,
    answer: Answer,
    cookie: Option<&str>,
) -> ApiResult<Landing> {
    let p = provider(state, provider_name)?;
    limit(
        state,
        c,
        "oauth_finish_ip",
        crate::limits::OAUTH_FINISH_PER_IP,
    )
    .await?;
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "invalid_state: this sign-in is unknown, finished, expired or another browser's: start again",
        )
    };
    let flow_state = answer
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or_else(invalid)?;
    let state_hash = state.keys.secret_mac("oauth-state", flow_state);
    let now = now_ms();
    let browser_hash = browser_of(cookie).map(|b| state.keys.secret_mac("oauth-browser", b));
    let flow = match &browser_hash {
        Some(h) => {
            state
                .store
                .take_oauth_flow(&state_hash, &p.spec.name, h, now)
                .await?
        }
        None => None,
    };
    let Some(flow) = flow else {
        // Replayed, expired, or from another browser: its page is told, when it has one.
        let Some(back) = state.store.oauth_flow_return(&state_hash).await? else {
            return Err(invalid());
        };
        let why = "the state is used, expired or another browser's";
        refused(state, c, None, &p.spec.name, Refusal::InvalidState, why).await;
        return Ok(back_with_error(&back, Refusal::InvalidState));
    };
    let user = flow.link_user_id.as_deref();
    let back = |r: Refusal| back_with_error(&flow.redirect_to, r);
    if let Some(error) = answer.error.as_deref() {
        let r = if error == "access_denied" {
            Refusal::AccessDenied
        } else {
            Refusal::ProviderError
        };
        let why = format!(
            "the provider answered error={}",
            error.chars().take(64).collect::<String>()
        );
        refused(state, c, user, &p.spec.name, r, &why).await;
        return Ok(back(r));
    }
    let Some(code) = answer
        .code
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 2048)
    else {
        let why = "the provider sent no code";
        refused(state, c, user, &p.spec.name, Refusal::ProviderError, why).await;
        return Ok(back(Refusal::ProviderError));
    };
    let (verifier, nonce) = derived(state, flow_state);
    let uri = redirect_uri(state, &p.spec.name);
    let cb = Callback {
        code,
        verifier: &verifier,
        nonce: &nonce,
        redirect_uri: &uri,
        now_s: now / 1000,
    };
    let upstream = match state.providers.finish(p, &cb).await {
        Ok(u) => u,
        Err(why) => {
            refused(state, c, user, &p.spec.name, Refusal::ProviderError, &why).await;
            return Ok(back(Refusal::ProviderError));
        }
    };
    let upstream = Upstream {
        email: upstream
            .email
            .as_deref()
            .and_then(crate::rules::email::normalize),
        ..upstream
    };
    let outcome = match &flow.link_user_id {
        Some(user_id) => link(state, c, p, user_id, &upstream, now).await?,
        None => sign_in(state, c, p, &upstream, now).await?,
    };
    match outcome {
        Ok(Done::Linked) => {
            state.metrics.oauth(&p.spec.name, "linked");
            Ok(Landing {
                location: rules::with_param(&flow.redirect_to, "baton_linked", &p.spec.name),
            })
        }
        Ok(Done::SignIn(user_id)) => {
            let code = crate::crypto::keys::random_nonce();
            let row = CodeRow {
                code_hash: state.keys.secret_mac("oauth-code", &code),
                browser_hash: flow.browser_hash.clone(),
                user_id,
                provider: p.spec.name.clone(),
                expires_at: now + rules::CODE_TTL_MS,
            };
            state.store.insert_oauth_code(&row, now).await?;
            state.metrics.oauth(&p.spec.name, "signed_in");
            let detail = format!(
                "{}: the provider vouched for identity {}",
                p.spec.name, upstream.subject
            );
            audit(
                state,
                Some(&row.user_id),
                "oauth_login",
                "info",
                None,
                c,
                &detail,
            )
            .await;
            Ok(Landing {
                location: rules::with_param(&flow.redirect_to, "baton_code", &code),
            })
        }
        Err((r, why)) => {
            refused(state, c, user, &p.spec.name, r, &why).await;
            Ok(back(r))
        }
    }
}

fn back_with_error(redirect_to: &str, r: Refusal) -> Landing {
    Landing {
        location: rules::with_param(redirect_to, "baton_error", r.as_str()),
    }
}

enum Done {
    SignIn(String),
    Linked,
}

type Outcome = Result<Done, (Refusal, String)>;

fn identity(p: &Provider, user_id: &str, u: &Upstream, now: i64) -> IdentityRow {
    IdentityRow {
        provider: p.spec.name.clone(),
        subject: u.subject.clone(),
        user_id: user_id.to_owned(),
        email: u.email.clone(),
        created_at: now,
        last_used_at: Some(now),
    }
}

async fn add_identity(
    state: &AppState,
    c: &Caller,
    p: &Provider,
    user_id: &str,
    u: &Upstream,
    now: i64,
) -> ApiResult<Linked> {
    let detail = format!("identity {} at {} linked", u.subject, p.spec.name);
    let e = event(
        Some(user_id),
        "identity_linked",
        "warning",
        None,
        c,
        &detail,
    );
    Ok(state
        .store
        .link_identity(&identity(p, user_id, u, now), &e)
        .await?)
}

/// A link flow's end: the identity is added to the signed-in account that started it (its
/// address need not match: the user proved both sides).
async fn link(
    state: &AppState,
    c: &Caller,
    p: &Provider,
    user_id: &str,
    u: &Upstream,
    now: i64,
) -> ApiResult<Outcome> {
    Ok(match add_identity(state, c, p, user_id, u, now).await? {
        Linked::Linked | Linked::Already => Ok(Done::Linked),
        Linked::Taken => Err((
            Refusal::IdentityTaken,
            format!(
                "identity {} is another account's, or this account has one at {}",
                u.subject, p.spec.name
            ),
        )),
    })
}

/// A sign-in flow's end: the account the identity signs in, linked (after the address's
/// first proof) or made as `rules::oauth::resolve` decides.
async fn sign_in(
    state: &AppState,
    c: &Caller,
    p: &Provider,
    u: &Upstream,
    now: i64,
) -> ApiResult<Outcome> {
    let known = state.store.identity(&p.spec.name, &u.subject).await?;
    let by_address = match (&known, &u.email) {
        (None, Some(email)) => state.store.user_by_email(email).await?,
        _ => None,
    };
    let decided = rules::resolve(
        known.as_ref().map(|i| i.user_id.as_str()),
        u.email_verified && u.email.is_some(),
        by_address.as_ref().map(|a| ByAddress {
            user_id: &a.id,
            email_verified: a.email_verified,
        }),
        state.config.registration == Registration::Open,
    );
    let user_id = match decided {
        Resolve::SignIn(user_id) => {
            state
                .store
                .touch_identity(&p.spec.name, &u.subject, u.email.as_deref(), now)
                .await?;
            return Ok(Ok(Done::SignIn(user_id.to_owned())));
        }
        Resolve::Refuse(r) => {
            let why = match r {
                Refusal::EmailUnverified => {
                    "the provider does not vouch for the address".to_owned()
                }
                _ => "no account has the address".to_owned(),
            };
            return Ok(Err((r, why)));
        }
        Resolve::Link { user_id, prove } => {
            if prove {
                // The provider proved the address: what was set up while it was unproven (by
                // whoever registered it) ends first, as with a first mailed proof.
                prove_address(state, c, user_id, None, false, now).await?;
            }
            user_id.to_owned()
        }
        Resolve::Create => {
            let email = u.email.as_deref().unwrap_or_default();
            let detail = format!("account created by a sign-in through {}", p.spec.name);
            let (user, created): (UserRow, bool) =
                register_without_password(state, email, c, &detail).await?;
            // Made a moment ago by someone else (a password registration): ended as above.
            prove_address(state, c, &user.id, None, created, now).await?;
            user.id
        }
    };
    Ok(match add_identity(state, c, p, &user_id, u, now).await? {
        Linked::Linked | Linked::Already => Ok(Done::SignIn(user_id)),
        Linked::Taken => Err((
            Refusal::IdentityTaken,
            format!(
                "the account of the address has another identity at {}",
                p.spec.name
            ),
        )),
    })
}

/// Trades the one-time code of a callback for the session (or the second-factor step), from
/// the browser that started the flow.
pub async fn exchange(
    state: &AppState,
    c: &Caller,
    headers: &HeaderMap,
    code: &str,
    cookie: Option<&str>,
    choice: Choice,
) -> ApiResult<SignedIn> {
    limit(
        state,
        c,
        "oauth_finish_ip",
        crate::limits::OAUTH_FINISH_PER_IP,
    )
    .await?;
    let dpop =
        crate::dpop::bind_new_session(state, headers, &Method::POST, "/auth/oauth/exchange")?;
    let now = now_ms();
    let taken = match browser_of(cookie) {
        Some(b) if !code.is_empty() && code.len() <= 128 => {
            let browser_hash = state.keys.secret_mac("oauth-browser", b);
            let code_hash = state.keys.secret_mac("oauth-code", code);
            state
                .store
                .take_oauth_code(&code_hash, &browser_hash, now)
                .await?
        }
        _ => None,
    };
    let Some(row) = taken else {
        let detail = "a sign-in code was unknown, used, expired or another browser's";
        audit(state, None, "oauth_refused", "warning", None, c, detail).await;
        return Err(ApiError::unauthorized(
            ErrorCode::InvalidCode,
            "this sign-in code is unknown, used, expired or another browser's: sign in again",
        ));
    };
    let signed_in = async {
        let user = crate::signin::profile::account(state, &row.user_id).await?;
        let how = Start::new(
            choice,
            dpop,
            "signed in through an identity provider",
            "fed",
        );
        begin(state, &user, c, how, now).await
    }
    .await;
    match &signed_in {
        Ok(_) => state.metrics.oauth(&row.provider, "exchanged"),
        Err(e) if e.status.is_server_error() => {
            // The server could not finish: the code works again for the retry.
            if let Err(err) = state.store.unuse_oauth_code(&row.code_hash, now).await {
                tracing::warn!(error = %err, "giving back a spent sign-in code failed");
            }
        }
        Err(_) => {}
    }
    signed_in
}

/// The account's identities.
pub async fn list(state: &AppState, user_id: &str) -> ApiResult<Vec<IdentityRow>> {
    Ok(state.store.identities(user_id).await?)
}

/// Unlinks the account's identity at `provider`, if another way to sign in remains (a
/// password, a passkey, another identity, or a proven address where mail is set up).
pub async fn unlink(state: &AppState, c: &Caller, user_id: &str, provider: &str) -> ApiResult<()> {
    let detail = format!("identity at {provider} unlinked");
    let e = event(
        Some(user_id),
        "identity_unlinked",
        "warning",
        None,
        c,
        &detail,
    );
    let mail = state.mailer.is_some();
    match state
        .store
        .unlink_identity(user_id, provider, NO_PASSWORD, |w| rules::may_unlink(w, mail), &e)
        .await?
    {
        Some(true) => Ok(()),
        Some(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::InvalidRequest,
            "this identity is the account's last way to sign in: set a password or add a passkey first",
        )),
        None => Err(ApiError::not_found()),
    }
}
