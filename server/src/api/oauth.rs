//! Sign-in through identity providers: `/auth/oauth/*` (the providers, a flow's start and
//! callback, the one-time code's exchange) and the signed-in user's `/auth/identities`.

use super::extract::{choice, ApiJson, AuthUser, RefreshTransport};
use super::reply::{cookie_value, respond_signed_in};
use crate::audit::Caller;
use crate::error::ApiResult;
use crate::signin::oauth::{self, Answer, Started, BROWSER_COOKIE, BROWSER_COOKIE_MAX_AGE};
use crate::state::AppState;
use crate::store::identities::IdentityRow;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(providers))
        .routes(routes!(start))
        .routes(routes!(callback))
        .routes(routes!(exchange))
        .routes(routes!(identities))
        .routes(routes!(link_start))
        .routes(routes!(unlink))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderJson {
    /// The name in URLs: `/auth/oauth/{name}/start`.
    pub name: String,
    pub display_name: String,
    /// `oidc` or `github`.
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersJson {
    pub providers: Vec<ProviderJson>,
}

#[utoipa::path(get, path = "/auth/oauth/providers", tag = "identity providers",
    responses((status = 200, description = "the providers set up on this server (for sign-in buttons)", body = ProvidersJson)))]
pub async fn providers(State(state): State<AppState>) -> Json<ProvidersJson> {
    Json(ProvidersJson {
        providers: state
            .providers
            .all()
            .map(|p| ProviderJson {
                name: p.spec.name.clone(),
                display_name: p.spec.display_name.clone(),
                kind: match p.spec.kind {
                    crate::idp::file::Kind::Oidc { .. } => "oidc".into(),
                    crate::idp::file::Kind::Github { .. } => "github".into(),
                },
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StartQuery {
    /// The app page to return to: its origin and path must be in BATON_REDIRECT_ALLOWLIST.
    redirect_to: String,
}

/// 302 to `location`, never cached, with the browser cookie when one is given.
fn found(state: &AppState, location: &str, browser: Option<&str>) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Some(b) = browser {
        h.insert(header::SET_COOKIE, browser_cookie(state, b));
    }
    res
}

/// The browser cookie: HttpOnly, `SameSite=Lax` (it must come back on the provider's
/// top-level redirect to the callback), only under `/auth`.
fn browser_cookie(state: &AppState, value: &str) -> HeaderValue {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{BROWSER_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age={BROWSER_COOKIE_MAX_AGE}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[utoipa::path(get, path = "/auth/oauth/{provider}/start", tag = "identity providers",
    params(("provider" = String, Path, description = "a provider's name"), StartQuery),
    responses((status = 302, description = "to the provider's sign-in page, with state, nonce and PKCE (S256); sets the `baton_oauth` browser cookie. When the provider cannot be reached, to `redirect_to` with `baton_error=provider_error`"),
        (status = 400, description = "redirect_not_allowed", body = baton_core::ErrorBody),
        (status = 404, description = "not_found: no such provider", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(q): Query<StartQuery>,
) -> ApiResult<Response> {
    let cookie = cookie_value(&headers, BROWSER_COOKIE);
    let s = oauth::start(&state, &c, &provider, &q.redirect_to, cookie, None).await?;
    Ok(found(&state, &s.location, Some(&s.browser)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// The provider's refusal (`access_denied` when the user declined).
    error: Option<String>,
}

#[utoipa::path(get, path = "/auth/oauth/{provider}/callback", tag = "identity providers",
    params(("provider" = String, Path, description = "a provider's name"), CallbackQuery),
    responses((status = 302, description = "to the flow's `redirect_to` with `baton_code` (a sign-in: trade it at /auth/oauth/exchange), `baton_linked=PROVIDER` (a link), or `baton_error` (access_denied, invalid_state, provider_error, email_unverified, registration_closed, identity_taken)"),
        (status = 400, description = "invalid_request: a state this server never issued", body = baton_core::ErrorBody),
        (status = 404, description = "not_found: no such provider", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let cookie = cookie_value(&headers, BROWSER_COOKIE);
    let answer = Answer {
        code: q.code,
        state: q.state,
        error: q.error,
    };
    let landing = oauth::callback(&state, &c, &provider, answer, cookie).await?;
    Ok(found(&state, &landing.location, None))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    /// The `baton_code` the app's page received.
    code: String,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    refresh_transport: RefreshTransport,
}

#[utoipa::path(post, path = "/auth/oauth/exchange", tag = "identity providers", request_body = ExchangeBody,
    params(("DPoP" = Option<String>, Header, description = "a DPoP proof (RFC 9449): binds the session to its key")),
    responses((status = 200, description = "the token response (`amr: [\"fed\"]`), or `{mfa_required: true, mfa_token, methods}` for an account with a second factor", body = baton_core::TokenResponse),
        (status = 401, description = "invalid_code: unknown, used, expired (60 s) or sent without the browser cookie of the flow; dpop_proof_invalid", body = baton_core::ErrorBody),
        (status = 403, description = "user_disabled", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn exchange(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ExchangeBody>,
) -> ApiResult<Response> {
    let cookie = cookie_value(&headers, BROWSER_COOKIE);
    let choice = choice(body.remember_me, body.refresh_transport);
    let signed_in = oauth::exchange(&state, &c, &headers, &body.code, cookie, choice).await?;
    respond_signed_in(&state, &signed_in)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Identity {
    pub provider: String,
    /// The provider's id for the user.
    pub subject: String,
    /// The address the provider last gave.
    pub email: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
}

impl From<IdentityRow> for Identity {
    fn from(i: IdentityRow) -> Self {
        Self {
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            created_at: i.created_at / 1000,
            last_used_at: i.last_used_at.map(|t| t / 1000),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Identities {
    pub identities: Vec<Identity>,
}

#[utoipa::path(get, path = "/auth/identities", tag = "identity providers", security(("access_token" = [])),
    responses((status = 200, body = Identities), (status = 401, body = baton_core::ErrorBody)))]
pub async fn identities(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<Identities>> {
    let rows = oauth::list(&state, &auth.claims.sub).await?;
    Ok(Json(Identities {
        identities: rows.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The app page to return to (`?baton_linked=PROVIDER` or `?baton_error=...`); allow-listed.
    redirect_to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkJson {
    /// The provider's sign-in page: navigate the browser there.
    pub url: String,
}

#[utoipa::path(post, path = "/auth/identities/{provider}/link/start", tag = "identity providers", security(("access_token" = [])), request_body = LinkBody,
    params(("provider" = String, Path, description = "a provider's name")),
    responses((status = 200, description = "where to send the browser; sets the `baton_oauth` browser cookie (send with credentials)", body = LinkJson),
        (status = 400, description = "redirect_not_allowed", body = baton_core::ErrorBody),
        (status = 401, body = baton_core::ErrorBody),
        (status = 404, description = "not_found: no such provider", body = baton_core::ErrorBody),
        (status = 429, description = "rate_limited", body = baton_core::ErrorBody)))]
pub async fn link_start(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    headers: HeaderMap,
    Path(provider): Path<String>,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult<Response> {
    let cookie = cookie_value(&headers, BROWSER_COOKIE);
    let user = Some(auth.claims.sub.as_str());
    let Started { location, browser } =
        oauth::start(&state, &c, &provider, &body.redirect_to, cookie, user).await?;
    let mut res = Json(LinkJson { url: location }).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::SET_COOKIE, browser_cookie(&state, &browser));
    Ok(res)
}

#[utoipa::path(delete, path = "/auth/identities/{provider}", tag = "identity providers", security(("access_token" = [])),
    params(("provider" = String, Path, description = "a provider's name")),
    responses((status = 204, description = "unlinked: it no longer signs in to this account"),
        (status = 401, body = baton_core::ErrorBody),
        (status = 404, description = "not_found: no identity at this provider", body = baton_core::ErrorBody),
        (status = 409, description = "invalid_request: it is the account's last way to sign in", body = baton_core::ErrorBody)))]
pub async fn unlink(
    State(state): State<AppState>,
    auth: AuthUser,
    c: Caller,
    Path(provider): Path<String>,
) -> ApiResult<StatusCode> {
    oauth::unlink(&state, &c, &auth.claims.sub, &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}
