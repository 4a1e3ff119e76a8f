//! Identity providers over HTTP, the calls alone: the providers file (`file`), OpenID
//! Connect's discovery, token exchange and ID token check (`oidc`), GitHub's token exchange
//! and API (`github`). What a sign-in through them does to accounts is `signin::oauth`.

pub mod file;
pub mod github;
pub mod oidc;

use file::{Kind, ProviderSpec};
use std::time::Duration;

/// How long one call to a provider may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a provider's answer may hold.
const MAX_ANSWER: usize = 1 << 20;

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its stable id for the user (`sub`; GitHub's numeric id).
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches that the user controls `email`.
    pub email_verified: bool,
}

/// What the authorization request carries for one flow.
#[derive(Debug)]
pub struct Request<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    /// PKCE `code_challenge` (S256 of the verifier).
    pub challenge: &'a str,
    pub redirect_uri: &'a str,
}

/// What the callback trades in.
#[derive(Debug)]
pub struct Callback<'a> {
    pub code: &'a str,
    pub verifier: &'a str,
    pub nonce: &'a str,
    pub redirect_uri: &'a str,
    /// Unix seconds, for the ID token's times.
    pub now_s: i64,
}

/// One configured provider.
#[derive(Debug)]
pub struct Provider {
    pub spec: ProviderSpec,
    oidc: Option<oidc::Issuer>,
}

/// The configured providers and the HTTP client that calls them.
#[derive(Debug)]
pub struct Providers {
    list: Vec<Provider>,
    http: reqwest::Client,
}

impl Providers {
    /// The providers of `BATON_PROVIDERS_FILE` (none without it).
    pub fn new(specs: Vec<ProviderSpec>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            // A provider's endpoints answer themselves: a redirect is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("baton-server/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let list = specs
            .into_iter()
            .map(|spec| Provider {
                oidc: match &spec.kind {
                    Kind::Oidc { issuer } => Some(oidc::Issuer::new(issuer)),
                    Kind::Github { .. } => None,
                },
                spec,
            })
            .collect();
        Ok(Self { list, http })
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.spec.name == name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Provider> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The provider's authorization URL for this flow (discovering an OpenID provider's
    /// endpoints first, when not known yet).
    pub async fn authorize_url(&self, p: &Provider, r: &Request<'_>) -> Result<String, String> {
        let endpoint = match (&p.spec.kind, &p.oidc) {
            (Kind::Oidc { .. }, Some(issuer)) => {
                issuer.discovered(&self.http).await?.authorization_endpoint
            }
            (Kind::Github { web, .. }, _) => format!("{web}/login/oauth/authorize"),
            (Kind::Oidc { .. }, None) => return Err("no issuer".into()),
        };
        let mut u =
            url::Url::parse(&endpoint).map_err(|e| format!("authorization endpoint: {e}"))?;
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &p.spec.client_id)
                .append_pair("redirect_uri", r.redirect_uri)
                .append_pair("scope", &p.spec.scopes.join(" "))
                .append_pair("state", r.state)
                .append_pair("code_challenge", r.challenge)
                .append_pair("code_challenge_method", "S256");
            if p.oidc.is_some() {
                q.append_pair("nonce", r.nonce);
            }
        }
        Ok(u.into())
    }

    /// Trades the callback's code for who signed in: the reason when the provider's answer is
    /// refused or it cannot be reached.
    pub async fn finish(&self, p: &Provider, cb: &Callback<'_>) -> Result<Upstream, String> {
        match (&p.spec.kind, &p.oidc) {
            (Kind::Oidc { .. }, Some(issuer)) => issuer.finish(&self.http, &p.spec, cb).await,
            (Kind::Github { web, api }, _) => {
                github::finish(&self.http, &p.spec, web, api, cb).await
            }
            (Kind::Oidc { .. }, None) => Err("no issuer".into()),
        }
    }
}

/// The body of `res`, at most `MAX_ANSWER` bytes, as JSON `T`; `what` names the call in errors.
pub(crate) async fn json_answer<T: serde::de::DeserializeOwned>(
    mut res: reqwest::Response,
    what: &str,
) -> Result<T, String> {
    let status = res.status();
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| format!("{what}: reading the answer: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER {
            return Err(format!("{what}: the answer is over {MAX_ANSWER} bytes"));
        }
    }
    if !status.is_success() {
        // An OAuth error answer says why in `error` (RFC 6749 §5.2); nothing else is kept.
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_default();
        return Err(format!("{what}: HTTP {status} {error}")
            .trim_end()
            .to_owned());
    }
    serde_json::from_slice(&body)
        .map_err(|e| format!("{what}: the answer is not what was expected: {e}"))
}

/// A network failure, said without the URL's query (it may hold a code).
pub(crate) fn unreachable(what: &str, e: reqwest::Error) -> String {
    format!("{what}: {}", e.without_url())
}
