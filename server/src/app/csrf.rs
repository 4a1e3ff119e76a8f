//! Cross-site request forgery: a state-changing `/auth/*` call (POST, PATCH, DELETE) must carry JSON
//! and come from the server's own origin, an origin of `BATON_CORS_ORIGINS`, or no browser at
//! all.
//!
//! - A body must be `application/json` (415 otherwise): a cross-site page can send a
//!   `text/plain` form whose body happens to be JSON without a preflight, but not JSON itself.
//! - `Origin`, when sent (browsers send it on every POST and DELETE), must be the server's own
//!   origin (its `Host`, or `X-Forwarded-Host` from a trusted proxy) or an allowed origin;
//!   `null` never is. Without `Origin`, `Sec-Fetch-Site: cross-site` or `same-site` is refused.
//!   Requests with neither header (curl, other backends) are not from a browser and pass.
//!
//! Refusals are 403 `csrf_check_failed`.

use crate::config::Origins;
use crate::error::ApiError;
use axum::http::{header, HeaderMap, Method, StatusCode};
use baton_core::ErrorCode;

/// Whether `method` and `path` change state under `/auth/`. Introspection is for other
/// services, authenticated by a secret no browser holds, and takes a form (RFC 7662).
pub fn applies(method: &Method, path: &str) -> bool {
    path.starts_with("/auth/")
        && path != "/auth/introspect"
        && (method == Method::POST || method == Method::PATCH || method == Method::DELETE)
}

/// Checks one request; `own_host` is the host (and port) this server is reached at.
pub fn check(
    headers: &HeaderMap,
    own_host: Option<&str>,
    allowed: &Origins,
) -> Result<(), ApiError> {
    if has_body(headers) && !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "request bodies must be sent as application/json",
        ));
    }
    let refuse = |why: &'static str| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CsrfCheckFailed,
            why,
        ))
    };
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        Some(Ok(origin)) => {
            let origin = origin.trim().trim_end_matches('/');
            let listed = allowed.0.iter().any(|o| o.eq_ignore_ascii_case(origin));
            let own = own_host.is_some_and(|h| same_host(origin, h));
            if listed || own {
                Ok(())
            } else {
                refuse("requests from this origin are not allowed (BATON_CORS_ORIGINS)")
            }
        }
        Some(Err(_)) => refuse("malformed Origin header"),
        None => match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some(site)
                if site.eq_ignore_ascii_case("cross-site")
                    || site.eq_ignore_ascii_case("same-site") =>
            {
                refuse("cross-site requests are not allowed")
            }
            _ => Ok(()),
        },
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `origin` (`scheme://host[:port]`) names `host` (`host[:port]`), default ports
/// being optional on either side.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |h: &str| {
        let h = h.trim().to_ascii_lowercase();
        h.strip_suffix(default).map(str::to_owned).unwrap_or(h)
    };
    !rest.is_empty() && strip(rest) == strip(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn code(r: Result<(), ApiError>) -> Option<StatusCode> {
        r.err().map(|e| e.status)
    }

    #[test]
    fn origins() {
        let allowed = Origins(vec!["https://app.example".into()]);
        let host = Some("auth.example");
        let ok = |h: &HeaderMap| check(h, host, &allowed).is_ok();
        assert!(ok(&headers(&[("origin", "https://auth.example")])));
        assert!(ok(&headers(&[("origin", "https://auth.example:443")])));
        assert!(ok(&headers(&[("origin", "https://app.example")])));
        assert!(ok(&headers(&[])), "no browser, no check");
        assert!(ok(&headers(&[("sec-fetch-site", "same-origin")])));
        for bad in [
            "https://evil.example",
            "null",
            "https://auth.example.evil",
            "auth.example",
        ] {
            let h = headers(&[("origin", bad)]);
            assert_eq!(
                code(check(&h, host, &allowed)),
                Some(StatusCode::FORBIDDEN),
                "{bad}"
            );
        }
        let h = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(code(check(&h, host, &allowed)), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn bodies_must_be_json() {
        let allowed = Origins::default();
        let plain = headers(&[("content-length", "20"), ("content-type", "text/plain")]);
        assert_eq!(
            code(check(&plain, None, &allowed)),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let none = headers(&[("content-length", "20")]);
        assert_eq!(
            code(check(&none, None, &allowed)),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let json = headers(&[
            ("content-length", "20"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert!(check(&json, None, &allowed).is_ok());
        let empty = headers(&[("content-length", "0")]);
        assert!(check(&empty, None, &allowed).is_ok());
    }
}
