//! `baton-verify`: accept Baton's access tokens in your own Rust services.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use baton_verify::{Authenticated, Options, Verifier};
//!
//! # async fn run() -> Result<(), baton_verify::Error> {
//! // Finds the issuer, the keys and the introspection endpoint in the discovery document.
//! let verifier = Verifier::discover("https://auth.example.com", Options::default()).await?;
//! let app: Router = Router::new()
//!     .route("/orders", get(|Authenticated(claims): Authenticated| async move {
//!         format!("orders of user {}", claims.sub)
//!     }))
//!     .with_state(verifier);
//! # Ok(()) }
//! ```
//!
//! What is checked (see "Verifying tokens in other services" in Baton's `docs/api.md`): the
//! signature with the key named by the token's `kid` from the JWKS (algorithm pinned to EdDSA),
//! `typ: at+jwt`, `iss`, `aud`, `exp` with a small leeway. Keys are fetched once and cached; an
//! unknown `kid` (a key rotation) fetches them again, at most every
//! [`Options::min_refetch`] (10 s by default), and the set is refreshed when older than
//! [`MAX_AGE`](keys::MAX_AGE). A signature stays valid until `exp`: the [`Live`] extractor and
//! [`Verifier::verify_live`] also ask Baton's introspection endpoint, so a token of a session
//! signed out a moment ago is refused.
//!
//! DPoP (RFC 9449): a token with `cnf.jkt` is bound to a key. The extractors then accept it
//! only as `Authorization: DPoP <token>` with a `DPoP` proof signed by that key for this request
//! (method, URL, `ath`, at most 60 s old, not seen before by this process); the URL is
//! [`Options::public_url`] and the path, else the request's `Host`. Unbound tokens come as
//! `Bearer`. [`Verifier::verify_request`] does the same for other frameworks. Each key may
//! have [`Options::dpop_proofs_per_key`] proofs accepted per minute (3000; beyond, 429 with
//! `Retry-After`), so one client, or one stolen token, cannot fill the replay memory that every
//! key shares.

mod introspection;
pub mod keys;
pub mod revocations;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The claims of a Baton access token (the type the server signs).
pub type Claims = baton_core::AccessClaims;

/// Why a token was refused, or could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No `Authorization: Bearer` token.
    Missing,
    /// Past `exp`.
    Expired,
    /// Not a valid Baton access token: bad signature, unknown key, wrong `typ`, `iss` or
    /// `aud`, malformed.
    Invalid(String),
    /// Introspection says the token is no longer active (its session was signed out).
    Revoked,
    /// A DPoP-bound token without a valid proof of its key, or an unbound one sent as DPoP.
    DpopProof(String),
    /// The keys, the discovery document or introspection could not be fetched.
    Unavailable(String),
    /// The token's DPoP key sent more proofs than [`Options::dpop_proofs_per_key`] allows in
    /// a minute; the number of seconds until the minute is over.
    TooManyProofs(u64),
    /// A valid token whose user lacks the role a route needs ([`require_role`]).
    MissingRole(String),
    /// A valid token below the assurance level a route needs ([`require_aal`]).
    StepUpRequired(u8),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("an access token is required"),
            Self::Expired => f.write_str("the access token has expired"),
            Self::Invalid(why) => write!(f, "the access token is invalid: {why}"),
            Self::Revoked => f.write_str("the session of this access token was signed out"),
            Self::DpopProof(why) => write!(f, "DPoP proof refused: {why}"),
            Self::Unavailable(why) => write!(f, "tokens cannot be checked now: {why}"),
            Self::TooManyProofs(_) => f.write_str("too many requests with this DPoP key"),
            Self::MissingRole(role) => write!(f, "this needs the role {role:?}"),
            Self::StepUpRequired(aal) => write!(
                f,
                "this needs assurance level {aal}: sign in with a second factor, or step up"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// How to verify.
#[derive(Debug, Clone)]
pub struct Options {
    /// The expected `aud` (`BATON_AUDIENCE`; `baton` by default).
    pub audience: String,
    /// Leeway on `exp`, for clock differences.
    pub leeway: Duration,
    /// `BATON_INTROSPECTION_TOKEN`, for [`Verifier::verify_live`] and [`Live`].
    pub introspection_secret: Option<String>,
    /// How long Baton's introspection answer for a token is reused (zero by default: every
    /// live check asks). A few seconds spare Baton a request per request on a busy service; a
    /// session signed out meanwhile is then refused up to this much later.
    pub introspection_cache: Duration,
    /// The least time between two fetches of the keys for an unknown `kid`.
    pub min_refetch: Duration,
    /// This service's own public base URL (`https://api.example.com`), which DPoP proofs name
    /// in `htu`; unset, the request's `Host` (and `X-Forwarded-Proto`) is used.
    pub public_url: Option<String>,
    /// DPoP proofs one key may have accepted per minute (0: no limit). The replay memory is
    /// shared by every key: this keeps one client, or one stolen token, from filling it.
    pub dpop_proofs_per_key: u32,
    /// Follow Baton's revocation feed (needs [`Options::introspection_secret`]): one request a
    /// second per verifier, and every check refuses the tokens of sessions signed out since,
    /// within about a second, without asking per token. Off by default.
    pub revocation_feed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            audience: "baton".into(),
            leeway: Duration::from_secs(5),
            introspection_secret: None,
            introspection_cache: Duration::ZERO,
            min_refetch: keys::MIN_REFETCH,
            public_url: None,
            dpop_proofs_per_key: 3000,
            revocation_feed: false,
        }
    }
}

/// Verifies access tokens; cheap to clone (one key cache shared by the clones).
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    validation: Validation,
    introspection: Option<(String, String)>,
    answers: introspection::Answers,
    http: reqwest::Client,
    keys: keys::KeyCache,
    public_url: Option<String>,
    /// DPoP proofs seen within the window (key thumbprint and jti), to refuse replays, and
    /// each key's budget of proofs.
    proofs: std::sync::Mutex<Proofs>,
    dpop_proofs_per_key: u32,
    /// The revocation feed's endpoint and what it said (with `Options::revocation_feed`).
    feed: Option<(String, revocations::Feed)>,
}

#[derive(Debug, Default)]
struct Proofs {
    seen: std::collections::HashMap<String, i64>,
    budget: baton_core::dpop::KeyBudget,
    /// When the aged-out proofs were last dropped (Unix seconds).
    purged_at: i64,
}

/// The window of [`Options::dpop_proofs_per_key`].
const BUDGET_WINDOW_MS: i64 = 60_000;

/// Proofs remembered at most; beyond, new proofs are refused until old ones age out (503).
const MAX_REMEMBERED_PROOFS: usize = 1_000_000;

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    revocations_endpoint: Option<String>,
}

impl Verifier {
    /// Reads `<base_url>/.well-known/openid-configuration` for the issuer, the JWKS URL and the
    /// introspection endpoint, and fetches the keys.
    pub async fn discover(base_url: &str, options: Options) -> Result<Self, Error> {
        let http = client();
        let url = format!(
            "{}/.well-known/openid-configuration",
            base_url.trim_end_matches('/')
        );
        let doc: Discovery = fetch_json(&http, &url).await?;
        let introspection = match (&options.introspection_secret, doc.introspection_endpoint) {
            (Some(secret), Some(endpoint)) => Some((endpoint, secret.clone())),
            (Some(_), None) => {
                return Err(Error::Unavailable(
                    "an introspection secret was given, but the server has introspection off"
                        .into(),
                ))
            }
            _ => None,
        };
        let feed = match (options.revocation_feed, doc.revocations_endpoint) {
            (false, _) => None,
            (true, Some(endpoint)) if introspection.is_some() => Some(endpoint),
            (true, _) => {
                return Err(Error::Unavailable(
                    "the revocation feed needs Options::introspection_secret and a server \
                     with introspection on"
                        .into(),
                ))
            }
        };
        let v = Self::build(
            doc.issuer,
            doc.jwks_uri,
            introspection,
            feed,
            &options,
            http,
        );
        v.inner.keys.refresh(&v.inner.http).await?;
        if v.inner.feed.is_some() {
            v.poll_feed().await?;
            v.follow_feed();
        }
        Ok(v)
    }

    /// Without discovery: the issuer and the JWKS URL given; keys are fetched on first use.
    /// Introspection, if wanted, at `<issuer>/auth/introspect`.
    pub fn new(issuer: &str, jwks_uri: &str, options: Options) -> Self {
        let introspection = options.introspection_secret.clone().map(|s| {
            (
                format!("{}/auth/introspect", issuer.trim_end_matches('/')),
                s,
            )
        });
        Self::build(
            issuer.to_owned(),
            jwks_uri.to_owned(),
            introspection,
            None,
            &options,
            client(),
        )
    }

    fn build(
        issuer: String,
        jwks_uri: String,
        introspection: Option<(String, String)>,
        feed: Option<String>,
        options: &Options,
        http: reqwest::Client,
    ) -> Self {
        // The algorithm is pinned: a token naming any other is refused.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = options.leeway.as_secs();
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&options.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self {
            inner: Arc::new(Inner {
                issuer,
                validation,
                introspection,
                answers: introspection::Answers::new(options.introspection_cache),
                http,
                keys: keys::KeyCache::new(jwks_uri, options.min_refetch),
                public_url: options
                    .public_url
                    .as_deref()
                    .map(|u| u.trim_end_matches('/').to_owned()),
                proofs: Default::default(),
                dpop_proofs_per_key: options.dpop_proofs_per_key,
                feed: feed.map(|endpoint| (endpoint, revocations::Feed::default())),
            }),
        }
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Checks the signature and the claims; no network call unless the keys need fetching.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Error::Invalid(format!("malformed: {e}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(Error::Invalid(format!("algorithm {:?}", header.alg)));
        }
        if header.typ.as_deref() != Some("at+jwt") {
            return Err(Error::Invalid("not an access token (typ)".into()));
        }
        let kid = header.kid.ok_or_else(|| Error::Invalid("no kid".into()))?;
        let key = self
            .inner
            .keys
            .key(&self.inner.http, &kid, Instant::now())
            .await?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.inner.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Error::Expired,
                _ => Error::Invalid(e.to_string()),
            })?;
        if let Some((_, feed)) = &self.inner.feed {
            match feed.check(&claims.sid, Instant::now()) {
                revocations::Verdict::Live => {}
                revocations::Verdict::Revoked => return Err(Error::Revoked),
                revocations::Verdict::Unknown => {
                    return Err(Error::Unavailable(
                        "Baton's revocation feed has not answered for 30 s".into(),
                    ))
                }
            }
        }
        Ok(claims)
    }

    /// Asks the revocation feed once.
    async fn poll_feed(&self) -> Result<(), Error> {
        let (Some((endpoint, feed)), Some((_, secret))) =
            (&self.inner.feed, &self.inner.introspection)
        else {
            return Ok(());
        };
        let url = match feed.cursor() {
            Some(c) => format!("{endpoint}?since={c}"),
            None => endpoint.clone(),
        };
        let r = self
            .inner
            .http
            .get(&url)
            .bearer_auth(secret)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("revocation feed: {e}")))?;
        if !r.status().is_success() {
            return Err(Error::Unavailable(format!(
                "revocation feed answered {}",
                r.status()
            )));
        }
        let answer = r
            .json()
            .await
            .map_err(|e| Error::Unavailable(format!("revocation feed: {e}")))?;
        feed.take(answer, Instant::now());
        Ok(())
    }

    /// Polls the feed every second for as long as a clone of this verifier lives.
    fn follow_feed(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(revocations::POLL_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let v = Verifier { inner };
                // A failed poll is tried again a second later; checks fail (503) once the
                // feed has been silent for `revocations::STALE_AFTER`.
                if let Err(e) = v.poll_feed().await {
                    tracing::debug!(error = %e, "baton-verify: the revocation feed did not answer");
                }
            }
        });
    }

    /// Whether Baton still considers the token active (RFC 7662 introspection).
    pub async fn introspect(&self, token: &str) -> Result<bool, Error> {
        let Some((endpoint, secret)) = &self.inner.introspection else {
            return Err(Error::Unavailable(
                "introspection needs Options::introspection_secret".into(),
            ));
        };
        self.inner
            .answers
            .answer(token, Instant::now, || {
                self.ask_introspection(endpoint, secret, token)
            })
            .await
    }

    async fn ask_introspection(
        &self,
        endpoint: &str,
        secret: &str,
        token: &str,
    ) -> Result<bool, Error> {
        let body = format!("token={}", form_encode(token));
        let r = self
            .inner
            .http
            .post(endpoint)
            .bearer_auth(secret)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("introspection: {e}")))?;
        if !r.status().is_success() {
            return Err(Error::Unavailable(format!(
                "introspection answered {}",
                r.status()
            )));
        }
        let v: serde_json::Value = r
            .json()
            .await
            .map_err(|e| Error::Unavailable(format!("introspection: {e}")))?;
        Ok(v["active"] == true)
    }

    /// [`Verifier::verify`], then introspection: refuses the tokens of signed-out sessions.
    pub async fn verify_live(&self, token: &str) -> Result<Claims, Error> {
        let claims = self.verify(token).await?;
        if self.introspect(token).await? {
            Ok(claims)
        } else {
            Err(Error::Revoked)
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, Error> {
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Unavailable(format!("{url}: {e}")))?;
    if !r.status().is_success() {
        return Err(Error::Unavailable(format!("{url} answered {}", r.status())));
    }
    r.json()
        .await
        .map_err(|e| Error::Unavailable(format!("{url}: {e}")))
}

/// `application/x-www-form-urlencoded` for a token (base64url and dots need no escaping, but
/// anything else is escaped).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request as DPoP sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`...
    pub method: &'a str,
    /// The URL the client called (query ignored).
    pub url: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `DPoP` header.
    pub dpop: Option<&'a str>,
}

impl Verifier {
    /// Verifies the token of a request as its binding says: an unbound token as `Bearer`, a
    /// DPoP-bound one as `DPoP` with a valid, fresh proof of its key (see the crate docs).
    pub async fn verify_request(&self, req: &Request<'_>) -> Result<Claims, Error> {
        let (token, dpop) = authorization(req.authorization)?;
        let claims = self.verify(token).await?;
        self.check_binding(&claims, token, dpop, req)?;
        Ok(claims)
    }

    fn check_binding(
        &self,
        claims: &Claims,
        token: &str,
        scheme_dpop: bool,
        req: &Request<'_>,
    ) -> Result<(), Error> {
        let refuse = |why: &str| Err(Error::DpopProof(why.to_owned()));
        let jkt = match (&claims.cnf, scheme_dpop) {
            (None, false) => return Ok(()),
            (None, true) => return refuse("the token is not DPoP-bound: send it as Bearer"),
            (Some(_), false) => return refuse("the token is DPoP-bound: send it as DPoP"),
            (Some(c), true) => &c.jkt,
        };
        let Some(proof) = req.dpop else {
            return refuse("a DPoP-bound token needs a DPoP proof");
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let expect = baton_core::dpop::Expect {
            method: req.method,
            url: req.url,
            access_token: Some(token),
        };
        let window = baton_core::dpop::DEFAULT_WINDOW_S;
        let p = baton_core::dpop::check(proof, &expect, now, window)
            .map_err(|e| Error::DpopProof(e.0.to_owned()))?;
        if &p.jkt != jkt {
            return refuse("the proof is signed by another key than the token is bound to");
        }
        let mut proofs = self.inner.proofs.lock().unwrap_or_else(|e| e.into_inner());
        let Proofs {
            seen,
            budget,
            purged_at,
        } = &mut *proofs;
        let id = format!("{}.{}", p.jkt, p.jti);
        if seen.contains_key(&id) {
            return refuse("the proof was used before");
        }
        // Aged-out proofs are dropped once the memory is sizeable, at most once a second.
        if seen.len() >= MAX_REMEMBERED_PROOFS / 10 && now > *purged_at {
            seen.retain(|_, iat| *iat >= now - window);
            budget.purge(BUDGET_WINDOW_MS, now * 1000);
            *purged_at = now;
        }
        if seen.len() >= MAX_REMEMBERED_PROOFS {
            return Err(Error::Unavailable("DPoP replay memory full".into()));
        }
        let limit = i64::from(self.inner.dpop_proofs_per_key);
        if limit > 0 {
            budget
                .take(&p.jkt, limit, BUDGET_WINDOW_MS, now * 1000)
                .map_err(Error::TooManyProofs)?;
        }
        seen.insert(id, p.iat);
        Ok(())
    }

    /// The URL of a request as its client addressed it: [`Options::public_url`] and the path,
    /// else `X-Forwarded-Proto` (or http) and `Host`.
    fn request_url(&self, parts: &Parts) -> String {
        // The path as the client sent it, also under `Router::nest`.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.path(), |u| u.0.path());
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        baton_core::dpop::request_url(
            self.inner.public_url.as_deref(),
            header("x-forwarded-proto"),
            header("host"),
            path,
        )
    }

    async fn verify_parts(&self, parts: &Parts) -> Result<Claims, Error> {
        let url = self.request_url(parts);
        let get = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let authorization = match parts.headers.get(header::AUTHORIZATION) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| Error::Invalid("malformed Authorization header".into()))?,
            ),
            None => None,
        };
        self.verify_request(&Request {
            method: parts.method.as_str(),
            url: &url,
            authorization,
            dpop: get("dpop"),
        })
        .await
    }
}

/// The token of an `Authorization` header and whether it came as `DPoP`.
fn authorization(v: Option<&str>) -> Result<(&str, bool), Error> {
    let v = v.ok_or(Error::Missing)?;
    baton_core::dpop::authorization(v)
        .map(|(token, scheme)| (token, scheme == baton_core::dpop::Scheme::Dpop))
        .map_err(|why| Error::Invalid(why.into()))
}

/// An axum extractor: the claims of a valid access token (signature and claims checked; see
/// [`Live`] to also refuse signed-out sessions). Needs a [`Verifier`] in the router's state
/// (`FromRef`). Refusals are 401 in Baton's error shape, with `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

/// Like [`Authenticated`], and introspection says the session is still signed in.
#[derive(Debug, Clone)]
pub struct Live(pub Claims);

/// What a request's token was found to be, kept in its extensions: a later extractor or a
/// handler behind [`require_token`] takes it from there instead of checking again (a DPoP
/// proof checked twice would be refused as a replay).
#[derive(Debug, Clone)]
struct Checked {
    claims: Claims,
    live: bool,
}

impl<S> FromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        if let Some(c) = parts.extensions.get::<Checked>() {
            return Ok(Self(c.claims.clone()));
        }
        let claims = Verifier::from_ref(state).verify_parts(parts).await?;
        parts.extensions.insert(Checked {
            claims: claims.clone(),
            live: false,
        });
        Ok(Self(claims))
    }
}

impl<S> FromRequestParts<S> for Live
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let checked = match parts.extensions.get::<Checked>() {
            Some(c) if c.live => return Ok(Self(c.claims.clone())),
            Some(c) => c.claims.clone(),
            None => Authenticated::from_request_parts(parts, state).await?.0,
        };
        let (token, _) = authorization(
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        )?;
        if !Verifier::from_ref(state).introspect(token).await? {
            return Err(Error::Revoked);
        }
        parts.extensions.insert(Checked {
            claims: checked.clone(),
            live: true,
        });
        Ok(Self(checked))
    }
}

/// Middleware guarding every route of a router, as [`Authenticated`] does one handler:
/// requests without a valid token are refused in Baton's error shape; the others go on with
/// the [`Claims`] in their extensions (`Extension<Claims>`, or [`Authenticated`] and [`Live`]
/// in the handlers, which then do not check the token again).
///
/// ```no_run
/// # use axum::{routing::get, Extension, Router};
/// # use baton_verify::{Claims, Verifier};
/// # fn app(verifier: Verifier) -> Router {
/// Router::new()
///     .route("/orders", get(|Extension(claims): Extension<Claims>| async move { claims.sub }))
///     .route_layer(axum::middleware::from_fn_with_state(verifier, baton_verify::require_token))
/// # }
/// ```
pub async fn require_token(
    axum::extract::State(verifier): axum::extract::State<Verifier>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    guard::<Authenticated>(verifier, req, next).await
}

/// Like [`require_token`], and introspection says the session is still signed in (as
/// [`Live`]).
pub async fn require_live_token(
    axum::extract::State(verifier): axum::extract::State<Verifier>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    guard::<Live>(verifier, req, next).await
}

/// The state of [`require_role`]: the verifier, and the role every request must have.
#[derive(Debug, Clone)]
pub struct Role {
    verifier: Verifier,
    role: Arc<str>,
}

impl Role {
    pub fn new(verifier: Verifier, role: &str) -> Self {
        Self {
            verifier,
            role: role.into(),
        }
    }
}

impl FromRef<Role> for Verifier {
    fn from_ref(r: &Role) -> Self {
        r.verifier.clone()
    }
}

/// Middleware: like [`require_token`], and the token's `roles` claim (set by Baton's
/// administrators) must hold the role; a valid token without it is 403 `forbidden`. A role
/// change shows in the user's next access token (within the access-token lifetime).
///
/// ```no_run
/// # use axum::{routing::get, Extension, Router};
/// # use baton_verify::{Claims, Role, Verifier};
/// # fn app(verifier: Verifier) -> Router {
/// Router::new()
///     .route("/admin/reports", get(|Extension(claims): Extension<Claims>| async move { claims.sub }))
///     .route_layer(axum::middleware::from_fn_with_state(
///         Role::new(verifier, "admin"),
///         baton_verify::require_role,
///     ))
/// # }
/// ```
pub async fn require_role(
    axum::extract::State(role): axum::extract::State<Role>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let claims = match Authenticated::from_request_parts(&mut parts, &role.verifier).await {
        Ok(Authenticated(c)) => c,
        Err(e) => return e.into_response(),
    };
    if !claims.has_role(&role.role) {
        return Error::MissingRole(role.role.to_string()).into_response();
    }
    parts.extensions.insert(claims);
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// The state of [`require_aal`]: the verifier, and the assurance level every request needs.
#[derive(Debug, Clone)]
pub struct Aal {
    verifier: Verifier,
    level: u8,
}

impl Aal {
    pub fn new(verifier: Verifier, level: u8) -> Self {
        Self { verifier, level }
    }
}

impl FromRef<Aal> for Verifier {
    fn from_ref(a: &Aal) -> Self {
        a.verifier.clone()
    }
}

/// Middleware: like [`require_token`], and the token's `aal` claim must be at least the
/// level (2: signed in with a second factor, or stepped up within `BATON_STEP_UP_TTL`); a valid
/// token below it is 403 `step_up_required`, which tells the client to step up.
///
/// ```no_run
/// # use axum::{routing::post, Router};
/// # use baton_verify::{Aal, Verifier};
/// # fn app(verifier: Verifier) -> Router {
/// Router::new()
///     .route("/payouts", post(|| async { "sent" }))
///     .route_layer(axum::middleware::from_fn_with_state(
///         Aal::new(verifier, 2),
///         baton_verify::require_aal,
///     ))
/// # }
/// ```
pub async fn require_aal(
    axum::extract::State(aal): axum::extract::State<Aal>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let claims = match Authenticated::from_request_parts(&mut parts, &aal.verifier).await {
        Ok(Authenticated(c)) => c,
        Err(e) => return e.into_response(),
    };
    if claims.aal < aal.level {
        return Error::StepUpRequired(aal.level).into_response();
    }
    parts.extensions.insert(claims);
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

async fn guard<E: FromRequestParts<Verifier, Rejection = Error>>(
    verifier: Verifier,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Err(e) = E::from_request_parts(&mut parts, &verifier).await {
        return e.into_response();
    }
    let claims = parts.extensions.get::<Checked>().map(|c| c.claims.clone());
    if let Some(claims) = claims {
        parts.extensions.insert(claims);
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Missing => (StatusCode::UNAUTHORIZED, "token_missing"),
            Self::Expired => (StatusCode::UNAUTHORIZED, "token_expired"),
            Self::Invalid(_) => (StatusCode::UNAUTHORIZED, "token_invalid"),
            Self::Revoked => (StatusCode::UNAUTHORIZED, "token_revoked"),
            Self::DpopProof(_) => (StatusCode::UNAUTHORIZED, "dpop_proof_invalid"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::TooManyProofs(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::MissingRole(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::StepUpRequired(_) => (StatusCode::FORBIDDEN, "step_up_required"),
        };
        if let Self::Unavailable(why) = &self {
            tracing::warn!(%why, "Baton tokens cannot be checked");
        }
        // Details of a refusal stay in the server; the client learns the code.
        let message = match &self {
            Self::Invalid(_) => "the access token is invalid".to_owned(),
            Self::Unavailable(_) => "tokens cannot be checked now".to_owned(),
            other => other.to_string(),
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        let mut res = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                Self::Missing => r#"Bearer error="invalid_request""#,
                Self::DpopProof(_) => r#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA""#,
                _ => r#"Bearer error="invalid_token""#,
            };
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        } else {
            let secs = match self {
                Self::TooManyProofs(secs) => secs.max(1),
                _ => 5,
            };
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
