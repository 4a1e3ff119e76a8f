//! An OpenID Connect provider: discovery (`issuer/.well-known/openid-configuration`, whose
//! `issuer` must be the configured one), the code exchange with PKCE, the ID token's signature
//! against the provider's JWKS (algorithms pinned to the asymmetric ones the provider lists),
//! its claims (`rules::oauth::check_id_token`), and the UserInfo endpoint when the ID token
//! does not carry the address.

use super::file::ProviderSpec;
use super::{json_answer, unreachable, Callback, Upstream};
use crate::rules::oauth::{check_id_token, Expected, IdClaims, Verified};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Discovery is read again after this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The keys are read again for an unknown `kid` at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(30);
/// The keys are read again after this long in any case.
const JWKS_TTL: Duration = Duration::from_secs(3600);

/// The asymmetric algorithms an ID token may use (never `none`, never an HMAC).
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What discovery says, as far as Baton uses it.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovered {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

#[derive(Debug)]
pub struct Issuer {
    issuer: String,
    discovered: Mutex<Option<(Discovered, Instant)>>,
    keys: Mutex<Option<(JwkSet, Instant)>>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    id_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UserInfo {
    sub: Option<String>,
    email: Option<String>,
    email_verified: Option<Verified>,
}

impl Issuer {
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            discovered: Mutex::new(None),
            keys: Mutex::new(None),
        }
    }

    /// The provider's endpoints, read once an hour.
    pub async fn discovered(&self, http: &reqwest::Client) -> Result<Discovered, String> {
        if let Some((d, at)) = &*self.discovered.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(d.clone());
            }
        }
        let what = "discovery";
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let res = http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable(what, e))?;
        let d: Discovered = json_answer(res, what).await?;
        // OpenID Connect Discovery §4.3: the document's issuer is exactly the one asked for.
        if d.issuer.trim_end_matches('/') != self.issuer {
            return Err(format!(
                "discovery: the document's issuer {:?} is not the configured {:?}",
                d.issuer, self.issuer
            ));
        }
        *self.discovered.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((d.clone(), Instant::now()));
        Ok(d)
    }

    async fn fetch_keys(&self, http: &reqwest::Client, d: &Discovered) -> Result<JwkSet, String> {
        let what = "the provider's keys";
        let res = http
            .get(&d.jwks_uri)
            .send()
            .await
            .map_err(|e| unreachable(what, e))?;
        let set: JwkSet = json_answer(res, what).await?;
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    /// The key for `kid` (or the only key, when the token names none), reading the keys again
    /// when it is not known (the provider rotated them), at most every `JWKS_REFETCH`.
    async fn key(
        &self,
        http: &reqwest::Client,
        d: &Discovered,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, String> {
        let cached = self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (set, fresh) = match cached {
            Some((set, at)) if at.elapsed() < JWKS_TTL => (set, at.elapsed() < JWKS_REFETCH),
            _ => (self.fetch_keys(http, d).await?, true),
        };
        if let Some(k) = pick(&set, kid, alg) {
            return k;
        }
        if fresh {
            return Err("the ID token's key is not among the provider's keys".into());
        }
        let set = self.fetch_keys(http, d).await?;
        pick(&set, kid, alg)
            .unwrap_or_else(|| Err("the ID token's key is not among the provider's keys".into()))
    }

    pub async fn finish(
        &self,
        http: &reqwest::Client,
        spec: &ProviderSpec,
        cb: &Callback<'_>,
    ) -> Result<Upstream, String> {
        let d = self.discovered(http).await?;
        let what = "the token exchange";
        let form = [
            ("grant_type", "authorization_code"),
            ("code", cb.code),
            ("redirect_uri", cb.redirect_uri),
            ("code_verifier", cb.verifier),
        ];
        let mut req = http
            .post(&d.token_endpoint)
            .header("Accept", "application/json");
        // client_secret_basic unless the provider takes only client_secret_post.
        let post_only = !d.token_endpoint_auth_methods_supported.is_empty()
            && !d
                .token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_basic")
            && d.token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_post");
        req = if post_only {
            let mut f: Vec<(&str, &str)> = form.to_vec();
            f.push(("client_id", &spec.client_id));
            f.push(("client_secret", &spec.client_secret));
            req.form(&f)
        } else {
            // RFC 6749 §2.3.1: both form-encoded before Basic.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req.basic_auth(enc(&spec.client_id), Some(enc(&spec.client_secret)))
                .form(&form)
        };
        let res = req.send().await.map_err(|e| unreachable(what, e))?;
        let answer: TokenAnswer = json_answer(res, what).await?;
        let id_token = answer.id_token.ok_or("the token answer has no ID token")?;
        let claims = self.verify(http, &d, &id_token).await?;
        let expected = Expected {
            issuer: &d.issuer,
            client_id: &spec.client_id,
            nonce: cb.nonce,
        };
        let subject = check_id_token(&claims, &expected, cb.now_s)?;
        if claims.email.is_some() {
            return Ok(Upstream {
                subject,
                email: claims.email,
                email_verified: Verified::yes(claims.email_verified),
            });
        }
        // The address is at the UserInfo endpoint (a code flow's ID token need not carry it).
        let (Some(endpoint), Some(access)) = (&d.userinfo_endpoint, &answer.access_token) else {
            return Ok(Upstream {
                subject,
                email: None,
                email_verified: false,
            });
        };
        let what = "UserInfo";
        let res = http
            .get(endpoint)
            .bearer_auth(access)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| unreachable(what, e))?;
        let info: UserInfo = json_answer(res, what).await?;
        // OpenID Connect Core §5.3.2: the UserInfo subject must be the ID token's.
        if info.sub.as_deref() != Some(subject.as_str()) {
            return Err("UserInfo is about another subject than the ID token".into());
        }
        Ok(Upstream {
            subject,
            email: info.email,
            email_verified: Verified::yes(info.email_verified),
        })
    }

    /// The ID token's claims once its signature is checked (claims are checked by the caller).
    async fn verify(
        &self,
        http: &reqwest::Client,
        d: &Discovered,
        token: &str,
    ) -> Result<IdClaims, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("the ID token is malformed: {e}"))?;
        // The provider's own list, or RS256, which every provider must support.
        let listed: Vec<Algorithm> = if d.id_token_signing_alg_values_supported.is_empty() {
            vec![Algorithm::RS256]
        } else {
            d.id_token_signing_alg_values_supported
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect()
        };
        if !ALGORITHMS.contains(&header.alg) || !listed.contains(&header.alg) {
            return Err(format!(
                "the ID token's algorithm {:?} is not accepted",
                header.alg
            ));
        }
        let key = self.key(http, d, header.kid.as_deref(), header.alg).await?;
        let mut v = Validation::new(header.alg);
        // Times, audience and issuer are checked by `check_id_token`, with the rest.
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<IdClaims>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| format!("the ID token's signature does not verify: {e}"))
    }
}

/// The key of `set` for `kid` and `alg`: the one with that id, or, when the token names none,
/// the only signing key of the algorithm's family. `None`: no such key.
fn pick(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Result<DecodingKey, String>> {
    let fits = |k: &&jsonwebtoken::jwk::Jwk| {
        let use_ok = !matches!(
            k.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        );
        // A key that names its algorithm is used for that one only.
        let alg_ok = k
            .common
            .key_algorithm
            .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"));
        use_ok && alg_ok
    };
    let key = match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(fits)
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = set
                .keys
                .iter()
                .filter(fits)
                .filter(|k| DecodingKey::from_jwk(k).is_ok() && family(k) == family_of(alg));
            let first = candidates.next();
            if candidates.next().is_some() {
                return Some(Err(
                    "the ID token names no key and the provider has several".into(),
                ));
            }
            first
        }
    }?;
    Some(DecodingKey::from_jwk(key).map_err(|e| format!("the provider's key cannot be used: {e}")))
}

fn family(k: &jsonwebtoken::jwk::Jwk) -> &'static str {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    match k.algorithm {
        P::RSA(_) => "RSA",
        P::EllipticCurve(_) => "EC",
        P::OctetKeyPair(_) => "OKP",
        P::OctetKey(_) => "oct",
    }
}

fn family_of(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => "EC",
        Algorithm::EdDSA => "OKP",
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "oct",
        _ => "RSA",
    }
}
