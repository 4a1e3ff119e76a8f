//! DPoP proofs (RFC 9449): the check of one proof against the request it came with, and the
//! RFC 7638 thumbprint of its key. Pure: the caller supplies the time, and remembers the `jti`s
//! it has seen (a replay cache needs state; see the server's `dpop` module and baton-verify).
//!
//! A proof is accepted when:
//! - it is a compact JWS of at most [`MAX_PROOF_LEN`] bytes whose header has `typ` `dpop+jwt`,
//!   an `alg` of [`ALGS`] and a public `jwk` of the matching type (P-256 for ES256, Ed25519 for
//!   EdDSA) without private members, and the signature verifies with that key;
//! - `htm` is the request's method and `htu` its URL (scheme and host compared without case,
//!   default ports dropped, query and fragment ignored);
//! - `iat` is within `window` seconds of now, either way;
//! - `jti` is a string of 1 to 256 characters;
//! - with an access token, `ath` is the base64url SHA-256 of it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

/// The signature algorithms a proof may use, as advertised in discovery.
pub const ALGS: [&str; 2] = ["ES256", "EdDSA"];

/// How far a proof's `iat` may be from the verifier's clock, either way (seconds). A proof is
/// also remembered for this long, so a replay inside the window is caught by its `jti`.
pub const DEFAULT_WINDOW_S: i64 = 60;

/// Longer proofs are refused before any parsing.
pub const MAX_PROOF_LEN: usize = 4096;

/// How an access token was presented in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    /// `Authorization: DPoP <token>`, with a proof in the `DPoP` header.
    Dpop,
}

/// The token and scheme of an `Authorization` header value, `Bearer <token>` or `DPoP <token>`
/// (the scheme without case). The error is a message safe to return to the client.
pub fn authorization(value: &str) -> Result<(&str, Scheme), &'static str> {
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err("malformed Authorization header");
    };
    let token = token.trim();
    if token.is_empty() {
        return Err("malformed Authorization header");
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok((token, Scheme::Bearer))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Ok((token, Scheme::Dpop))
    } else {
        Err("Authorization is not Bearer or DPoP")
    }
}

/// The URL a request was addressed to, which a proof's `htu` must name: the service's public
/// base URL and the path when it is configured; else the scheme (the first `X-Forwarded-Proto`
/// entry: `https`, anything else `http`) and `Host` of the request with the path.
pub fn request_url(
    public_url: Option<&str>,
    forwarded_proto: Option<&str>,
    host: Option<&str>,
    path: &str,
) -> String {
    if let Some(base) = public_url {
        return format!("{base}{path}");
    }
    fn first(v: Option<&str>) -> Option<&str> {
        v.map(|v| v.split(',').next().unwrap_or("").trim())
            .filter(|v| !v.is_empty())
    }
    let scheme = match first(forwarded_proto) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = first(host).unwrap_or("localhost");
    format!("{scheme}://{host}{path}")
}

/// What the proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The request method, upper case (`POST`).
    pub method: &'a str,
    /// The request URL as the client addressed it; query and fragment are ignored.
    pub url: &'a str,
    /// The access token sent with the proof, if any: the proof must carry its hash (`ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof key (base64url SHA-256).
    pub jkt: String,
    /// The proof's unique id; the caller refuses one it saw within the window.
    pub jti: String,
    /// When the client made the proof (Unix seconds).
    pub iat: i64,
}

/// Why a proof was refused. The message is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofError(pub &'static str);

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ProofError {}

fn refuse<T>(why: &'static str) -> Result<T, ProofError> {
    Err(ProofError(why))
}

/// Checks `proof` against the request it came with, at `now_s` (Unix seconds), accepting an
/// `iat` up to `window_s` seconds away from it.
pub fn check(
    proof: &str,
    expect: &Expect<'_>,
    now_s: i64,
    window_s: i64,
) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return refuse("the DPoP proof is too long");
    }
    let mut parts = proof.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return refuse("the DPoP proof is not a compact JWS");
    };
    let header = json_object(h64).ok_or(ProofError("the DPoP proof header is not JSON"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return refuse("the DPoP proof's typ is not dpop+jwt");
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofError("the DPoP proof header has no jwk"))?;
    let key = PublicKey::from_jwk(alg, jwk)?;
    let signed = &proof[..h64.len() + 1 + p64.len()];
    let verified = jsonwebtoken::crypto::verify(s64, signed.as_bytes(), &key.decoding, key.alg)
        .unwrap_or(false);
    if !verified {
        return refuse("the DPoP proof's signature does not verify with its jwk");
    }
    let claims = json_object(p64).ok_or(ProofError("the DPoP proof claims are not JSON"))?;
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(j) if (1..=256).contains(&j.chars().count()) => j.to_owned(),
        _ => return refuse("the DPoP proof needs a jti of 1 to 256 characters"),
    };
    if claims.get("htm").and_then(Value::as_str) != Some(expect.method) {
        return refuse("the DPoP proof's htm is not the request's method");
    }
    let htu = claims.get("htu").and_then(Value::as_str).unwrap_or("");
    // The common case, the URL spelled as the server spells it, is normalised once.
    let same_url = htu == expect.url && normalize_url(htu).is_some();
    if !same_url {
        match (normalize_url(htu), normalize_url(expect.url)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return refuse("the DPoP proof's htu is not the request's URL"),
        }
    }
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return refuse("the DPoP proof needs a numeric iat");
    };
    if iat > now_s.saturating_add(window_s) {
        return refuse("the DPoP proof's iat is in the future (check the client's clock)");
    }
    if iat < now_s.saturating_sub(window_s) {
        return refuse("the DPoP proof is too old");
    }
    if let Some(token) = expect.access_token {
        if claims.get("ath").and_then(Value::as_str) != Some(access_token_hash(token).as_str()) {
            return refuse("the DPoP proof's ath is not the hash of the access token");
        }
    }
    Ok(Proof {
        jkt: key.thumbprint,
        jti,
        iat,
    })
}

/// `ath`: the base64url SHA-256 of an access token.
pub fn access_token_hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

fn json_object(b64: &str) -> Option<Map<String, Value>> {
    let bytes = B64.decode(b64).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

struct PublicKey {
    alg: jsonwebtoken::Algorithm,
    decoding: jsonwebtoken::DecodingKey,
    thumbprint: String,
}

/// Members that only a private key has (RFC 7518): a proof carrying one is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl PublicKey {
    fn from_jwk(alg: &str, jwk: &Map<String, Value>) -> Result<Self, ProofError> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return refuse("the DPoP proof's jwk contains a private key");
        }
        let member = |name: &str, len: usize| -> Result<String, ProofError> {
            let v = jwk.get(name).and_then(Value::as_str).unwrap_or("");
            match B64.decode(v) {
                // Re-encoded, so the thumbprint is of the one canonical spelling.
                Ok(bytes) if bytes.len() == len => Ok(B64.encode(bytes)),
                _ => refuse("the DPoP proof's jwk is not a valid public key"),
            }
        };
        let kty = jwk.get("kty").and_then(Value::as_str);
        let crv = jwk.get("crv").and_then(Value::as_str);
        match (alg, kty, crv) {
            ("ES256", Some("EC"), Some("P-256")) => {
                let (x, y) = (member("x", 32)?, member("y", 32)?);
                let decoding = jsonwebtoken::DecodingKey::from_ec_components(&x, &y)
                    .map_err(|_| ProofError("the DPoP proof's jwk is not a valid public key"))?;
                // RFC 7638: the required members, in lexicographic order, no whitespace.
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                Ok(Self {
                    alg: jsonwebtoken::Algorithm::ES256,
                    decoding,
                    thumbprint: B64.encode(Sha256::digest(canonical.as_bytes())),
                })
            }
            ("EdDSA", Some("OKP"), Some("Ed25519")) => {
                let x = member("x", 32)?;
                let decoding = jsonwebtoken::DecodingKey::from_ed_components(&x)
                    .map_err(|_| ProofError("the DPoP proof's jwk is not a valid public key"))?;
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                Ok(Self {
                    alg: jsonwebtoken::Algorithm::EdDSA,
                    decoding,
                    thumbprint: B64.encode(Sha256::digest(canonical.as_bytes())),
                })
            }
            ("ES256" | "EdDSA", _, _) => refuse("the DPoP proof's jwk does not match its alg"),
            _ => refuse("the DPoP proof's alg is not ES256 or EdDSA"),
        }
    }
}

/// A URL as compared for `htu`: scheme and host lower case, the default port dropped, query
/// and fragment removed, an empty path as `/`. `None` for anything that is not an absolute
/// http(s) URL.
pub fn normalize_url(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

/// Proofs accepted per key in fixed windows: a replay cache holds the proofs of many keys, and
/// one key (one client, or one thief holding a stolen session) must not take all its room.
/// Pure: the clock is passed in.
#[derive(Debug, Default)]
pub struct KeyBudget {
    /// Per key thumbprint: when its window started (unix ms) and proofs counted in it.
    windows: HashMap<String, (i64, i64)>,
}

impl KeyBudget {
    /// Counts one proof of `jkt` at `now`; `Err(seconds)` when `limit` proofs already fall in
    /// its window of `window_ms`, with the seconds until the window ends.
    pub fn take(&mut self, jkt: &str, limit: i64, window_ms: i64, now: i64) -> Result<(), u64> {
        let (start, count) = self.windows.entry(jkt.to_owned()).or_insert((now, 0));
        if now - *start >= window_ms {
            (*start, *count) = (now, 0);
        }
        if *count >= limit {
            return Err(((*start + window_ms - now).max(1) as u64).div_ceil(1000));
        }
        *count += 1;
        Ok(())
    }

    /// Forgets windows that ended before `now`.
    pub fn purge(&mut self, window_ms: i64, now: i64) {
        self.windows
            .retain(|_, (start, _)| now - *start < window_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_budget_per_window_and_others_theirs() {
        let mut b = KeyBudget::default();
        for _ in 0..3 {
            assert_eq!(b.take("a", 3, 60_000, 1_000), Ok(()));
        }
        assert_eq!(b.take("a", 3, 60_000, 1_000), Err(60));
        assert_eq!(b.take("a", 3, 60_000, 30_500), Err(31));
        assert_eq!(b.take("b", 3, 60_000, 30_500), Ok(()));
        // A new window starts when the last one is over.
        assert_eq!(b.take("a", 3, 60_000, 61_000), Ok(()));
        assert_eq!(b.take("a", 3, 60_000, 61_001), Ok(()));
    }

    #[test]
    fn ended_budget_windows_are_forgotten() {
        let mut b = KeyBudget::default();
        for i in 0..100 {
            b.take(&format!("k{i}"), 3, 60_000, i).unwrap();
        }
        b.purge(60_000, 60_050);
        assert_eq!(b.windows.len(), 49);
        b.purge(60_000, 200_000);
        assert!(b.windows.is_empty());
    }

    #[test]
    fn authorization_takes_bearer_and_dpop_only() {
        assert_eq!(authorization("Bearer abc"), Ok(("abc", Scheme::Bearer)));
        assert_eq!(authorization("bearer  abc "), Ok(("abc", Scheme::Bearer)));
        assert_eq!(authorization("DPoP abc"), Ok(("abc", Scheme::Dpop)));
        assert_eq!(authorization("dpop abc"), Ok(("abc", Scheme::Dpop)));
        for bad in ["Bearer", "Bearer ", "Bearer   ", "abc", ""] {
            assert_eq!(
                authorization(bad),
                Err("malformed Authorization header"),
                "{bad}"
            );
        }
        assert_eq!(
            authorization("Basic dXNlcjpwdw=="),
            Err("Authorization is not Bearer or DPoP")
        );
    }

    #[test]
    fn the_request_url_comes_from_the_public_url_else_the_headers() {
        let u = request_url;
        assert_eq!(
            u(
                Some("https://api.example.com"),
                Some("http"),
                Some("x"),
                "/a"
            ),
            "https://api.example.com/a"
        );
        assert_eq!(
            u(None, Some("https, http"), Some("api.example.com"), "/a"),
            "https://api.example.com/a"
        );
        assert_eq!(
            u(None, Some("ftp"), Some("h:8080"), "/a"),
            "http://h:8080/a"
        );
        assert_eq!(u(None, None, None, "/a"), "http://localhost/a");
        assert_eq!(u(None, Some(""), Some(" "), "/a"), "http://localhost/a");
    }

    #[test]
    fn urls_compare_as_rfc_9449_says() {
        let n = |u: &str| normalize_url(u);
        assert_eq!(
            n("HTTPS://Auth.Example.com:443/auth/refresh?x=1#f"),
            n("https://auth.example.com/auth/refresh")
        );
        assert_eq!(n("http://h:80"), Some("http://h/".into()));
        assert_ne!(n("http://h:8080/a"), n("http://h/a"));
        assert_ne!(n("http://h/a"), n("https://h/a"));
        assert_ne!(n("http://h/a"), n("http://h/A"));
        assert_eq!(n("ftp://h/a"), None);
        assert_eq!(n("http://user@h/a"), None);
        assert_eq!(n("/auth/refresh"), None);
    }

    #[test]
    fn ath_is_the_base64url_sha256_of_the_token() {
        // RFC 9449, section 7.1, figure 12.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn the_rfc_example_proof_is_checked_field_by_field() {
        // RFC 9449, section 4.1, figure 4 (ES256). Its thumbprint is given in section 6.1.
        let proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik\
            VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR\
            nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE\
            QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj\
            oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia\
            WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg\
            4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
        let expect = Expect {
            method: "POST",
            url: "https://server.example.com/token",
            access_token: None,
        };
        let iat = 1_562_262_616;
        let ok = check(proof, &expect, iat + 5, 60).expect("the RFC's proof is valid");
        assert_eq!(ok.jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        assert_eq!(ok.jti, "-BwC3ESc6acc2lTc");
        assert_eq!(ok.iat, iat);
        // The window, both ways.
        assert!(check(proof, &expect, iat + 60, 60).is_ok());
        assert!(check(proof, &expect, iat + 61, 60).is_err());
        assert!(check(proof, &expect, iat - 61, 60).is_err());
        // Another method, URL, or an access token it does not hash.
        let get = Expect {
            method: "GET",
            ..expect
        };
        assert!(check(proof, &get, iat, 60).is_err());
        let elsewhere = Expect {
            url: "https://server.example.com/other",
            ..expect
        };
        assert!(check(proof, &elsewhere, iat, 60).is_err());
        let with_token = Expect {
            access_token: Some("a-token"),
            ..expect
        };
        assert!(check(proof, &with_token, iat, 60).is_err());
        // A flipped signature byte.
        let mut forged = proof.to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == 'g' { 'h' } else { 'g' });
        assert!(check(&forged, &expect, iat, 60).is_err());
    }

    fn b64(v: &Value) -> String {
        B64.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn malformed_headers_are_refused_before_any_signature_check() {
        let expect = Expect {
            method: "POST",
            url: "https://h/t",
            access_token: None,
        };
        let x = B64.encode([1u8; 32]);
        let claims = b64(&serde_json::json!({"jti":"a","htm":"POST","htu":"https://h/t","iat":0}));
        let cases = [
            (
                serde_json::json!({"typ":"JWT","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":x,"y":x}}),
                "typ",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":x}}),
                "private",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"none","jwk":{"kty":"EC","crv":"P-256","x":x,"y":x}}),
                "alg",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":x,"y":x,"d":x}}),
                "private",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"OKP","crv":"Ed25519","x":x}}),
                "match",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"AAAA","y":x}}),
                "valid public key",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"ES256"}),
                "no jwk",
            ),
        ];
        for (header, why) in cases {
            let proof = format!("{}.{claims}.AAAA", b64(&header));
            let err = check(&proof, &expect, 0, 60).unwrap_err();
            assert!(err.0.contains(why), "{header}: {err}");
        }
        assert!(check("a.b", &expect, 0, 60).is_err());
        assert!(check(&"a".repeat(MAX_PROOF_LEN + 1), &expect, 0, 60).is_err());
    }
}
