//! Request extractors: JSON bodies, device id, client IP, who asked (`Caller`), authenticated
//! user. Each fails with the documented error shape, never with axum's plain-text rejections.

use crate::audit::Caller;
use crate::crypto::keys::{AccessClaims, AccessError};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use baton_core::ErrorCode;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub const MAX_BODY: usize = 16 * 1024;

/// A JSON body. An empty body reads as `{}` so optional-only bodies may be left out.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // The declared Content-Type is not trusted either way: the body must parse as JSON.
        // (Browsers send `text/plain` for a string body; CSRF is handled by X-Device-ID.)
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                payload_too_large()
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(ApiJson).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::validation(format!("invalid request body: {e}")),
                _ => ApiError::bad_request(format!("malformed JSON: {e}")),
            }
        })
    }
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        "request body larger than 16 KiB",
    )
}

/// The `X-Device-ID` header: absent, or 1 to 128 chars of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone)]
pub struct DeviceId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for DeviceId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        device_id(&parts.headers).map(DeviceId)
    }
}

pub fn device_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("x-device-id").iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let valid = values.next().is_none()
        && (1..=128).contains(&v.len())
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    if !valid {
        return Err(ApiError::bad_request(
            "X-Device-ID must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -",
        ));
    }
    Ok(v.to_str().ok().map(str::to_owned))
}

/// The `Idempotency-Key` of a refresh, hashed (SHA-256, hex) for storage: a retry of a
/// refresh whose response was lost sends the same key and gets the same successor (see
/// `spent`). 1 to 255 visible ASCII characters; anything else is 400.
pub fn request_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let valid = values.next().is_none()
        && (1..=255).contains(&v.len())
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(v.as_bytes());
    Ok(Some(digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// The client's IP: the socket peer, or, behind a trusted proxy, the rightmost untrusted
/// `X-Forwarded-For` address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        Ok(ClientIp(client_ip(
            peer(parts),
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

pub fn peer(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| {
            crate::config::canonical(c.0.ip())
        })
}

/// The client's address: the peer, or behind trusted proxies the rightmost `X-Forwarded-For`
/// hop that is not itself a trusted proxy. Hops are read from the right, one by one: each
/// trusted proxy vouches only for the hop to its left, so an entry that is not an address stops
/// the walk at the last proxy that was believed, and anything left of the client is ignored
/// (whatever the client itself sent).
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &crate::config::TrustedProxies,
) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    let mut believed = peer;
    for hop in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        let Some(ip) = parse_hop(hop) else {
            return believed;
        };
        if !trusted.contains(ip) {
            return ip;
        }
        believed = ip;
    }
    believed
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(crate::config::canonical(ip));
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|s| crate::config::canonical(s.ip()))
}

/// Who asked: the client IP, the device id and the user agent, as recorded with sessions and
/// audit events. Every handler that records something takes this.
impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ip = ClientIp::from_request_parts(parts, state).await?;
        let device = device_id(&parts.headers)?;
        Ok(Caller {
            ip: ip.0.to_string(),
            device_id: device,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(256).collect()),
            request_key: None,
        })
    }
}

/// A request authenticated by a valid, unrevoked access token; a DPoP-bound token only as
/// `Authorization: DPoP` with a proof by its key (see `dpop`).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub claims: AccessClaims,
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let (token, scheme) = authorization(&parts.headers)?.ok_or_else(|| {
            ApiError::unauthorized(ErrorCode::TokenMissing, "an access token is required")
        })?;
        let dpop = scheme == Scheme::Dpop;
        let with_scheme = |mut e: ApiError| {
            e.dpop = dpop;
            e
        };
        let claims = authenticate(&state, token).map_err(with_scheme)?;
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.path(), |u| u.0.path());
        let bound = claims.cnf.as_ref().map(|c| c.jkt.as_str());
        crate::dpop::check_access(
            &state,
            &parts.headers,
            &parts.method,
            path,
            token,
            dpop,
            bound,
        )
        .await?;
        Ok(AuthUser { claims })
    }
}

/// An access token only if the request carries one: `None` without `Authorization`; with
/// one, it must be valid like for `AuthUser`.
impl<S> axum::extract::OptionalFromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(None);
        }
        <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

pub use baton_core::dpop::Scheme;

/// The token and scheme of `Authorization`, if any; a malformed header or another scheme is
/// an invalid token.
pub fn authorization(headers: &HeaderMap) -> Result<Option<(&str, Scheme)>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = |why| ApiError::unauthorized(ErrorCode::TokenInvalid, why);
    let v = v
        .to_str()
        .map_err(|_| invalid("malformed Authorization header"))?;
    baton_core::dpop::authorization(v)
        .map(Some)
        .map_err(invalid)
}

/// The Bearer token of `Authorization`, if any (for secrets such as the metrics token).
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match authorization(headers)? {
        Some((token, Scheme::Bearer)) => Ok(Some(token)),
        Some((_, Scheme::Dpop)) => Err(ApiError::unauthorized(
            ErrorCode::TokenInvalid,
            "expected an Authorization: Bearer header",
        )),
        None => Ok(None),
    }
}

pub fn authenticate(state: &AppState, token: &str) -> Result<AccessClaims, ApiError> {
    let claims = state.keys.verify_access(token).map_err(|e| {
        tracing::debug!(reason = ?e, "access token refused");
        match e {
            AccessError::Expired => {
                ApiError::unauthorized(ErrorCode::TokenExpired, "the access token has expired")
            }
            AccessError::Invalid => {
                ApiError::unauthorized(ErrorCode::TokenInvalid, "the access token is invalid")
            }
        }
    })?;
    if state.revoked.is_revoked(&claims.sid) {
        tracing::debug!(sid = %claims.sid, "access token of a revoked session");
        return Err(ApiError::unauthorized(
            ErrorCode::TokenRevoked,
            "the session of this access token was revoked",
        ));
    }
    Ok(claims)
}

// Where a new session's refresh token travels: in the body (default) or the cookie. (No doc
// comment: it would become the OpenAPI schema's description.)
#[derive(Debug, serde::Deserialize, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefreshTransport {
    #[default]
    Body,
    Cookie,
}

/// The session choices of a sign-in body (`remember_me`, `refresh_transport`).
pub fn choice(remember_me: bool, transport: RefreshTransport) -> crate::session::start::Choice {
    crate::session::start::Choice {
        remember_me,
        cookie: transport == RefreshTransport::Cookie,
    }
}

/// A request from one of the deployment's services (introspection, the revocation feed): it
/// presents `BATON_INTROSPECTION_TOKEN` as a Bearer token or as the password of HTTP Basic.
/// Without the setting these endpoints do not exist (404); a missing or wrong secret is 401,
/// and 10 of those from one client address in a minute make further requests 429 (answered
/// before any comparison) until the minute is over.
#[derive(Debug)]
pub struct Service;

impl<S> FromRequestParts<S> for Service
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = axum::response::Response;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let state = AppState::from_ref(s);
        let Some(secret) = &state.config.introspection_token else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "token introspection is off: set BATON_INTROSPECTION_TOKEN",
            )
            .into_response());
        };
        let c = Caller::from_request_parts(parts, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let key = format!("introspect_failed:{}", c.ip);
        let which = "introspect_failed";
        crate::throttle::refused_early(&state, &key, which).map_err(IntoResponse::into_response)?;
        let Some(refused) = refusal(&parts.headers, secret) else {
            return Ok(Service);
        };
        let rule = crate::limits::INTROSPECT_FAILURES_PER_IP;
        let none = crate::throttle::Subject::default();
        crate::throttle::limit(&state, &key, rule, which, &c, none)
            .await
            .map_err(IntoResponse::into_response)?;
        Err(refused)
    }
}

/// The caller must present the introspection secret, as a Bearer token or a Basic password:
/// the 401 to answer when it does not.
fn refusal(headers: &HeaderMap, secret: &str) -> Option<axum::response::Response> {
    use axum::http::HeaderValue;
    use axum::response::IntoResponse;
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let challenge = |code, message: &'static str| {
        let mut res = ApiError::unauthorized(code, message).into_response();
        // The usual Bearer challenge, and Basic for client_secret_basic.
        let bearer = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("Bearer")
            .to_owned();
        if let Ok(v) =
            HeaderValue::from_str(&format!(r#"{bearer}, Basic realm="baton-introspection""#))
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Some(res)
    };
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return challenge(
            ErrorCode::TokenMissing,
            "introspection needs the BATON_INTROSPECTION_TOKEN secret in Authorization",
        );
    };
    let presented = v.to_str().ok().and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(rest.to_owned())
        } else if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let pair = String::from_utf8(raw).ok()?;
            // RFC 6749 2.3.1: both parts are form-urlencoded.
            let secret = pair.split_once(':')?.1;
            Some(
                form_urlencoded::parse(format!("s={secret}").as_bytes())
                    .next()
                    .map_or_else(String::new, |(_, v)| v.into_owned()),
            )
        } else {
            None
        }
    });
    // Compared as digests: equal lengths, and the time taken says nothing about the secret.
    let digest = |s: &str| Sha256::digest(s.as_bytes());
    match presented {
        Some(p) if digest(&p) == digest(secret) => None,
        _ => challenge(ErrorCode::TokenInvalid, "wrong introspection credentials"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrustedProxies;
    use axum::http::HeaderValue;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: TrustedProxies = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = xff("1.2.3.4, 5.6.7.8, 10.0.0.2");
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "5.6.7.8".parse::<IpAddr>().unwrap()
        );
        let outsider: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(outsider, &h, &trusted), outsider);
        assert_eq!(client_ip(peer, &xff("garbage"), &trusted), peer);
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn forwarded_for_is_read_hop_by_hop_from_the_right() {
        let trusted: TrustedProxies = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Junk the client sent left of itself does not hide it.
        assert_eq!(
            client_ip(peer, &xff("junk, 203.0.113.7"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(peer, &xff("1.1.1.1, , 203.0.113.7, 10.0.0.9"), &trusted),
            ip("203.0.113.7")
        );
        // Junk where a trusted proxy should have written: stop at the last believed proxy.
        assert_eq!(
            client_ip(peer, &xff("203.0.113.7, junk, 10.0.0.9"), &trusted),
            ip("10.0.0.9")
        );
        // Ports, IPv6 and several header lines (appended in order).
        assert_eq!(
            client_ip(peer, &xff("203.0.113.7:5555"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(peer, &xff("[2001:db8::1]:443"), &trusted),
            ip("2001:db8::1")
        );
        let mut h = xff("198.51.100.1");
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.3"),
        );
        assert_eq!(client_ip(peer, &h, &trusted), ip("203.0.113.9"));
        // Only proxies: the leftmost proxy is the client as far as anyone can tell.
        assert_eq!(
            client_ip(peer, &xff("10.0.0.5, 10.0.0.6"), &trusted),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn device_ids_are_validated() {
        let mut h = HeaderMap::new();
        assert!(device_id(&h).unwrap().is_none());
        h.insert("x-device-id", HeaderValue::from_static("abc_DEF-123"));
        assert_eq!(device_id(&h).unwrap().as_deref(), Some("abc_DEF-123"));
        for bad in ["", "a b", "ä", "a.b"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert("x-device-id", v);
                assert!(device_id(&h).is_err(), "{bad:?}");
            }
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-device-id",
            HeaderValue::from_str(&"a".repeat(129)).unwrap(),
        );
        assert!(device_id(&h).is_err());
    }
}
