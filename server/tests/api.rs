//! The HTTP API of docs/api.md, endpoint by endpoint, over real HTTP.
//! Runs on SQLite by default and on PostgreSQL with `BATON_TEST_DB=postgres`.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_validates_and_refuses_duplicates() {
    let s = Server::start(&[]).await;
    let body = s.register("Alice@Example.com", "password1").await;
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert!(body["user"]["id"].is_string());
    assert!(body["user"]["created_at"].is_i64());

    let dup = s
        .post(
            "/auth/register",
            json!({"email": "alice@example.COM", "password": "password2"}),
            None,
        )
        .await;
    expect_error(dup, 409, "email_taken").await;
    for bad in ["", "no-at-sign", "a@b", "a b@c.io", "@c.io"] {
        let r = s
            .post(
                "/auth/register",
                json!({"email": bad, "password": "password1"}),
                None,
            )
            .await;
        expect_error(r, 422, "validation_failed").await;
    }
    let short = s
        .post(
            "/auth/register",
            json!({"email": "b@example.com", "password": "1234567"}),
            None,
        )
        .await;
    expect_error(short, 422, "validation_failed").await;
    let unknown = s
        .post(
            "/auth/register",
            json!({"email": "c@example.com", "password": "password1", "admin": true}),
            None,
        )
        .await;
    expect_error(unknown, 422, "validation_failed").await;
    let wrong_type = s
        .post(
            "/auth/register",
            json!({"email": 5, "password": "password1"}),
            None,
        )
        .await;
    expect_error(wrong_type, 422, "validation_failed").await;
    let malformed = s
        .req(Method::POST, "/auth/register")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    expect_error(malformed, 400, "invalid_request").await;
    let huge = s
        .req(Method::POST, "/auth/register")
        .header("content-type", "application/json")
        .body(format!("{{\"email\":\"{}\"}}", "a".repeat(17 * 1024)))
        .send()
        .await
        .unwrap();
    expect_error(huge, 413, "payload_too_large").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_is_refused() {
    let s = Server::start(&[("registration", "closed")]).await;
    let r = s
        .post(
            "/auth/register",
            json!({"email": "a@example.com", "password": "password1"}),
            None,
        )
        .await;
    expect_error(r, 403, "registration_closed").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_look_the_same_and_success_returns_the_token_response() {
    let s = Server::start(&[]).await;
    s.register("bob@example.com", "password1").await;
    let wrong = s
        .post(
            "/auth/login",
            json!({"email": "bob@example.com", "password": "nope-nope"}),
            Some("d1"),
        )
        .await;
    let wrong = expect_error(wrong, 401, "invalid_credentials").await;
    let unknown = s
        .post(
            "/auth/login",
            json!({"email": "nobody@example.com", "password": "nope-nope"}),
            Some("d1"),
        )
        .await;
    let unknown = expect_error(unknown, 401, "invalid_credentials").await;
    assert_eq!(
        wrong, unknown,
        "unknown email and wrong password are indistinguishable"
    );

    let t = s.login("BOB@example.com", "password1", "d1").await;
    let j = &t.json;
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["expires_in"], 900);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((j["expires_at"].as_i64().unwrap() - (now + 900)).abs() <= 2);
    assert_eq!(j["refresh_expires_in"], 12 * 3600);
    assert_eq!(j["user"]["email"], "bob@example.com");
    assert!(t.refresh.len() >= 22, "refresh token carries >= 128 bits");

    let me: Value = s
        .get_auth("/auth/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], "bob@example.com");
    assert_eq!(me["session_id"], t.session_id);
    let ping: Value = s
        .get_auth("/api/ping", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ping["ok"], true);
    assert_eq!(ping["sid"], t.session_id);
    assert_eq!(ping["sub"], me["user"]["id"]);
    assert!(ping["at"].is_i64());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_uses_the_long_absolute_lifetime() {
    let s = Server::start(&[]).await;
    s.register("r@example.com", "password1").await;
    let t = s
        .login_with(
            "r@example.com",
            "password1",
            "d",
            json!({"remember_me": true}),
        )
        .await;
    // Idle lifetime (7 d) comes first; without remember-me the 12 h limit would.
    assert_eq!(t.json["refresh_expires_in"], 7 * 86400);
    let sessions: Value = s
        .get_auth("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["remember_me"], true);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_are_eddsa_jwts_verifiable_with_the_jwks() {
    use base64::Engine;
    let s = Server::start(&[("issuer", "https://auth.test"), ("audience", "api")]).await;
    let (_, t) = s.user("d").await;
    let jwks = s.get_json("/.well-known/jwks.json").await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let header = jsonwebtoken::decode_header(&t.access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let dk = jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_issuer(&["https://auth.test"]);
    v.set_audience(&["api"]);
    let claims = jsonwebtoken::decode::<Value>(&t.access, &dk, &v)
        .unwrap()
        .claims;
    for c in ["iss", "aud", "sub", "sid", "jti", "iat", "exp"] {
        assert!(!claims[c].is_null(), "claim {c}");
    }
    assert_eq!(claims["sid"], t.session_id);

    // Tampering: alg "none", HS256 with the public key as secret, swapped payload.
    let parts: Vec<&str> = t.access.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none_header = b64.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let forged = [
        format!("{none_header}.{}.", parts[1]),
        jsonwebtoken::encode(
            &jsonwebtoken::Header {
                typ: Some("at+jwt".into()),
                kid: header.kid.clone(),
                ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
            },
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key["x"].as_str().unwrap().as_bytes()),
        )
        .unwrap(),
        format!("{}.{}.{}", parts[0], b64.encode(r#"{"sub":"x"}"#), parts[2]),
        "garbage".into(),
        "a.b.c".into(),
    ];
    for f in forged {
        expect_error(s.get_auth("/api/ping", &f).await, 401, "token_invalid").await;
    }
    s.stop().await;
}

/// Signs claims with the server's own key but with one thing wrong each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_checks_typ_iss_aud_and_exp() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("d").await;
    let claims =
        jsonwebtoken::decode::<Value>(&t.access, &jsonwebtoken::DecodingKey::from_secret(b""), &{
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
            v.insecure_disable_signature_validation();
            v.validate_aud = false;
            v
        })
        .unwrap()
        .claims;
    let sign = |mutate: &dyn Fn(&mut Value, &mut String)| {
        let mut c = claims.clone();
        let mut typ = "at+jwt".to_owned();
        mutate(&mut c, &mut typ);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(typ);
        header.kid = Some(s.state.keys.kid().to_owned());
        sign_with_server_key(&s, &header, &c)
    };
    let cases: Vec<(&str, String)> = vec![
        ("typ", sign(&|_, typ| *typ = "JWT".into())),
        (
            "iss",
            sign(&|c, _| c["iss"] = json!("https://evil.example")),
        ),
        ("aud", sign(&|c, _| c["aud"] = json!("other"))),
    ];
    for (what, token) in cases {
        let r = s.get_auth("/auth/me", &token).await;
        assert_eq!(r.status(), 401, "wrong {what} must be refused");
        expect_error(r, 401, "token_invalid").await;
    }
    let now = claims["iat"].as_i64().unwrap();
    let stale = sign(&|c, _| c["exp"] = json!(now - 30));
    expect_error(s.get_auth("/auth/me", &stale).await, 401, "token_expired").await;
    // Within the 5 s leeway a just-expired token still passes.
    let fresh_enough = sign(&|c, _| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        c["exp"] = json!(t - 2)
    });
    assert_eq!(s.get_auth("/auth/me", &fresh_enough).await.status(), 200);
    let ok = sign(&|_, _| {});
    assert_eq!(s.get_auth("/auth/me", &ok).await.status(), 200);
    s.stop().await;
}

fn sign_with_server_key(s: &Server, header: &jsonwebtoken::Header, claims: &Value) -> String {
    use base64::Engine;
    // The signing seed lives in the database; read it like an attacker with DB access would.
    let db = s.database_url.clone();
    let seed = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                sqlx::any::install_default_drivers();
                let pool = sqlx::AnyPool::connect(&db).await.unwrap();
                let secret: String = sqlx::query_scalar(
                    "SELECT secret FROM server_keys WHERE name LIKE 'signing:%' \
                     ORDER BY created_at DESC LIMIT 1",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                pool.close().await;
                secret
            })
    })
    .join()
    .unwrap();
    let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(seed)
        .unwrap()
        .try_into()
        .unwrap();
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let der = ed25519_dalek::SigningKey::from_bytes(&seed)
        .to_pkcs8_der()
        .unwrap();
    jsonwebtoken::encode(
        header,
        claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_junk_credentials_get_stable_codes() {
    let s = Server::start(&[]).await;
    let r = s.req(Method::GET, "/auth/me").send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        r#"Bearer error="invalid_request""#
    );
    expect_error(r, 401, "token_missing").await;
    let r = s
        .req(Method::GET, "/api/ping")
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        r#"Bearer error="invalid_token""#
    );
    expect_error(r, 401, "token_invalid").await;
    for junk in ["x", "", "AAAA", &"A".repeat(75), &"é".repeat(10)] {
        let r = s.refresh(junk, Some("d")).await;
        expect_error(r, 401, "refresh_token_invalid").await;
    }
    let r = s.post("/auth/refresh", json!({}), Some("d")).await;
    expect_error(r, 401, "refresh_token_invalid").await;
    let r = s
        .post("/auth/refresh", json!({"refresh_token": 12}), Some("d"))
        .await;
    expect_error(r, 422, "validation_failed").await;
    for bad in ["has space", "dot.dot", &"a".repeat(129)] {
        let r = s
            .post(
                "/auth/login",
                json!({"email": "a@b.io", "password": "password1"}),
                Some(bad),
            )
            .await;
        expect_error(r, 400, "invalid_request").await;
    }
    for path in ["/api/ping", "/auth/me", "/healthz"] {
        let r = s
            .req(Method::GET, path)
            .header("x-device-id", "not valid!")
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "invalid_request").await;
    }
    let r = s.req(Method::GET, "/no/such/path").send().await.unwrap();
    expect_error(r, 404, "not_found").await;
    let r = s.req(Method::GET, "/auth/login").send().await.unwrap();
    expect_error(r, 405, "method_not_allowed").await;
    let r = s
        .req(Method::GET, "/auth/audit-log?limit=abc")
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refresh_rotates_and_spends_the_presented_token() {
    let s = Server::start(&[("reuse-grace", "1s")]).await;
    let (_, t0) = s.user("dev").await;
    let r1 = s.refresh(&t0.refresh, Some("dev")).await;
    assert_eq!(r1.status(), 200);
    let t1 = Tokens::from_json(r1.json().await.unwrap());
    assert_ne!(t1.refresh, t0.refresh);
    assert_ne!(t1.access, t0.access);
    assert_eq!(t1.session_id, t0.session_id);
    let r2 = s.refresh(&t1.refresh, Some("dev")).await;
    let t2 = Tokens::from_json(r2.json().await.unwrap());
    assert_ne!(t2.refresh, t1.refresh);
    // t0 was spent two rotations ago: theft, whatever the timing.
    expect_error(
        s.refresh(&t0.refresh, Some("dev")).await,
        401,
        "refresh_token_reused",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_refreshes_get_one_identical_successor() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("tab").await;
    let calls = (0..8).map(|_| s.refresh(&t.refresh, Some("tab")));
    let results = futures::future::join_all(calls).await;
    let mut successors = std::collections::HashSet::new();
    let mut access = std::collections::HashSet::new();
    for r in results {
        assert_eq!(r.status(), 200);
        let tk = Tokens::from_json(r.json().await.unwrap());
        successors.insert(tk.refresh);
        access.insert(tk.access);
    }
    assert_eq!(successors.len(), 1, "exactly one successor");
    assert_eq!(access.len(), 8, "each caller gets a fresh access token");
    let next = successors.into_iter().next().unwrap();
    assert_eq!(s.refresh(&next, Some("tab")).await.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_needs_the_same_device_and_an_unused_successor() {
    let s = Server::start(&[("device-binding", "off")]).await;
    let (_, t) = s.user("a").await;
    let first = Tokens::from_json(s.refresh(&t.refresh, Some("a")).await.json().await.unwrap());
    // Same device, within grace: identical successor.
    let again = Tokens::from_json(s.refresh(&t.refresh, Some("a")).await.json().await.unwrap());
    assert_eq!(again.refresh, first.refresh);
    // Another device within grace: theft.
    expect_error(
        s.refresh(&t.refresh, Some("b")).await,
        401,
        "refresh_token_reused",
    )
    .await;
    // And the whole session is gone.
    expect_error(
        s.refresh(&first.refresh, Some("a")).await,
        401,
        "session_revoked",
    )
    .await;

    let (_, u) = s.user("a").await;
    let n1 = Tokens::from_json(s.refresh(&u.refresh, Some("a")).await.json().await.unwrap());
    let _n2 = Tokens::from_json(
        s.refresh(&n1.refresh, Some("a"))
            .await
            .json()
            .await
            .unwrap(),
    );
    // n1's successor was used: replaying u is theft even within the grace window.
    expect_error(
        s.refresh(&u.refresh, Some("a")).await,
        401,
        "refresh_token_reused",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_after_grace_revokes_only_that_session_within_a_second() {
    let s = Server::start(&[("reuse-grace", "1s")]).await;
    let (email, t) = s.user("phone").await;
    let other = s.login(&email, "correct horse", "laptop").await;
    let next = Tokens::from_json(
        s.refresh(&t.refresh, Some("phone"))
            .await
            .json()
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let started = std::time::Instant::now();
    expect_error(
        s.refresh(&t.refresh, Some("phone")).await,
        401,
        "refresh_token_reused",
    )
    .await;
    expect_error(
        s.refresh(&next.refresh, Some("phone")).await,
        401,
        "session_revoked",
    )
    .await;
    for path in ["/auth/me", "/api/ping"] {
        let took = eventually(Duration::from_secs(1), || async {
            s.get_auth(path, &next.access).await.status() == 401
        })
        .await;
        assert!(
            took.is_some(),
            "{path} still accepts the revoked session's token"
        );
        expect_error(s.get_auth(path, &next.access).await, 401, "token_revoked").await;
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // The same user's other session is untouched.
    assert_eq!(s.get_auth("/api/ping", &other.access).await.status(), 200);
    assert_eq!(
        s.refresh(&other.refresh, Some("laptop")).await.status(),
        200
    );
    let log = types(&events(&s, &other.access).await);
    assert!(log.contains(&"refresh_reused".to_owned()), "{log:?}");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("auth_refresh_reuse_detected_total 1"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_device_binding_revokes_on_mismatch() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("home").await;
    expect_error(
        s.refresh(&t.refresh, Some("elsewhere")).await,
        401,
        "device_mismatch",
    )
    .await;
    expect_error(
        s.refresh(&t.refresh, Some("home")).await,
        401,
        "session_revoked",
    )
    .await;
    expect_error(
        s.get_auth("/api/ping", &t.access).await,
        401,
        "token_revoked",
    )
    .await;

    let (_, u) = s.user("home").await;
    expect_error(s.refresh(&u.refresh, None).await, 401, "device_mismatch").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_device_binding_records_and_off_ignores() {
    let warn = Server::start(&[("device-binding", "warn")]).await;
    let (_, t) = warn.user("home").await;
    let r = warn.refresh(&t.refresh, Some("elsewhere")).await;
    assert_eq!(r.status(), 200);
    let t2 = Tokens::from_json(r.json().await.unwrap());
    let ev = events(&warn, &t2.access).await;
    let mismatch = ev
        .iter()
        .find(|e| e["type"] == "device_mismatch")
        .expect("event recorded");
    assert_eq!(mismatch["severity"], "warning");
    assert_eq!(mismatch["device_id"], "elsewhere");
    warn.stop().await;

    let off = Server::start(&[("device-binding", "off")]).await;
    let (_, t) = off.user("home").await;
    let r = off.refresh(&t.refresh, Some("elsewhere")).await;
    assert_eq!(r.status(), 200);
    let t2 = Tokens::from_json(r.json().await.unwrap());
    assert!(!types(&events(&off, &t2.access).await).contains(&"device_mismatch".to_owned()));
    off.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_lifetime_slides_and_then_expires() {
    let s = Server::start(&[("refresh-idle-ttl", "2s")]).await;
    let (_, t) = s.user("d").await;
    // Refreshing within the idle window keeps the session going past the first 2 s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let t1 = Tokens::from_json(s.refresh(&t.refresh, Some("d")).await.json().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = s.refresh(&t1.refresh, Some("d")).await;
    assert_eq!(
        r.status(),
        200,
        "the idle deadline slid with the last refresh"
    );
    let t2 = Tokens::from_json(r.json().await.unwrap());
    assert!(
        t2.json["expires_in"].as_i64().unwrap() <= 2,
        "access exp clamped to the session end"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    expect_error(
        s.refresh(&t2.refresh, Some("d")).await,
        401,
        "session_expired",
    )
    .await;
    expect_error(
        s.refresh(&t2.refresh, Some("d")).await,
        401,
        "session_expired",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_lifetime_ends_the_session_despite_refreshes() {
    let s = Server::start(&[("session-max", "3s"), ("remember-me-max", "60s")]).await;
    let (email, t) = s.user("d").await;
    let now = t.json["expires_at"].as_i64().unwrap() - t.json["expires_in"].as_i64().unwrap();
    assert!(
        t.json["expires_in"].as_i64().unwrap() <= 3,
        "access exp never passes the session end"
    );
    assert!(t.json["expires_at"].as_i64().unwrap() <= now + 3);
    let mut current = t.refresh.clone();
    let mut expired = false;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let r = s.refresh(&current, Some("d")).await;
        if r.status() == 401 {
            expect_error(r, 401, "session_expired").await;
            expired = true;
            break;
        }
        current = Tokens::from_json(r.json().await.unwrap()).refresh;
    }
    assert!(expired, "absolute lifetime reached while refreshing");
    let remembered = s
        .login_with(&email, "correct horse", "d", json!({"remember_me": true}))
        .await;
    assert!(remembered.json["refresh_expires_in"].as_i64().unwrap() > 3);
    s.stop().await;
}

/// A POST authenticated by the refresh cookie alone, with or without `X-Device-ID`.
async fn cookie_post(
    s: &Server,
    path: &str,
    cookie: &str,
    device: Option<&str>,
) -> reqwest::Response {
    let mut r = s.req(Method::POST, path).header("cookie", cookie);
    if let Some(d) = device {
        r = r.header("x-device-id", d);
    }
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_transport_keeps_the_refresh_token_out_of_bodies() {
    let s = Server::start(&[]).await;
    let email = "cookie@example.com";
    s.register(email, "password1").await;
    let r = s
        .post(
            "/auth/login",
            json!({"email": email, "password": "password1", "refresh_transport": "cookie"}),
            Some("dev"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    for attr in [
        "baton_refresh=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/auth",
        "Secure",
    ] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();

    // Without X-Device-ID a cookie-authenticated refresh is a CSRF risk.
    let r = cookie_post(&s, "/auth/refresh", &pair, None).await;
    expect_error(r, 403, "csrf_check_failed").await;
    let r = cookie_post(&s, "/auth/refresh", &pair, Some("dev")).await;
    assert_eq!(r.status(), 200);
    let next = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(next, pair);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    // Logout by cookie also needs the header, then clears the cookie.
    let r = cookie_post(&s, "/auth/logout", &next, None).await;
    expect_error(r, 403, "csrf_check_failed").await;
    let r = cookie_post(&s, "/auth/logout", &next, Some("dev")).await;
    assert_eq!(r.status(), 204);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = cookie_post(&s, "/auth/refresh", &next, Some("dev")).await;
    expect_error(r, 401, "session_revoked").await;
    s.stop().await;

    let insecure = Server::start(&[("cookie-secure", "false")]).await;
    insecure.register(email, "password1").await;
    let r = insecure
        .post(
            "/auth/login",
            json!({"email": email, "password": "password1", "refresh_transport": "cookie"}),
            Some("dev"),
        )
        .await;
    assert!(!r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
    insecure.stop().await;
}

/// Without remember-me the refresh cookie is a browser-session cookie (no Max-Age, no
/// Expires), on login and on every rotation; with it, the cookie lasts as long as the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_cookie_ends_with_the_browser_unless_remember_me() {
    let s = Server::start(&[]).await;
    let email = "session-cookie@example.com";
    s.register(email, "password1").await;
    for remember in [false, true] {
        let r = s
            .post(
                "/auth/login",
                json!({"email": email, "password": "password1",
                       "refresh_transport": "cookie", "remember_me": remember}),
                Some("dev"),
            )
            .await;
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        let body: Value = r.json().await.unwrap();
        let lifetime = body["refresh_expires_in"].as_u64().unwrap();
        let pair = cookie.split(';').next().unwrap().to_owned();
        let r = cookie_post(&s, "/auth/refresh", &pair, Some("dev")).await;
        assert_eq!(r.status(), 200);
        let rotated = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        for c in [&cookie, &rotated] {
            assert!(!c.contains("Expires"), "{c}");
            if remember {
                assert!(
                    c.contains("; Max-Age="),
                    "remember-me cookie without Max-Age: {c}"
                );
                let age: u64 = c
                    .split("Max-Age=")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                assert!(
                    age + 5 >= lifetime && age <= lifetime,
                    "{age} vs {lifetime}"
                );
            } else {
                assert!(
                    !c.contains("Max-Age"),
                    "session cookie with a lifetime: {c}"
                );
            }
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_by_bearer_or_body_revokes_at_once() {
    let s = Server::start(&[]).await;
    let (email, a) = s.user("d").await;
    let b = s.login(&email, "correct horse", "d").await;
    let r = s
        .req(Method::POST, "/auth/logout")
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    expect_error(
        s.get_auth("/api/ping", &a.access).await,
        401,
        "token_revoked",
    )
    .await;
    expect_error(
        s.refresh(&a.refresh, Some("d")).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(s.get_auth("/api/ping", &b.access).await.status(), 200);

    let r = s
        .post(
            "/auth/logout",
            json!({"refresh_token": b.refresh}),
            Some("d"),
        )
        .await;
    assert_eq!(r.status(), 204);
    expect_error(
        s.get_auth("/auth/me", &b.access).await,
        401,
        "token_revoked",
    )
    .await;
    // Unknown tokens and repeated logouts are 204 too.
    for body in [
        json!({"refresh_token": "nonsense"}),
        json!({}),
        json!({"refresh_token": b.refresh}),
    ] {
        assert_eq!(s.post("/auth/logout", body, None).await.status(), 204);
    }
    let r = s
        .req(Method::POST, "/auth/logout")
        .bearer_auth("junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let log = types(&events(&s, &s.login(&email, "correct horse", "d").await.access).await);
    assert_eq!(log.iter().filter(|t| *t == "logout").count(), 2, "{log:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_revokes_every_session_of_the_user_only() {
    let s = Server::start(&[]).await;
    let (email, a) = s.user("d1").await;
    let b = s.login(&email, "correct horse", "d2").await;
    let (_, stranger) = s.user("d3").await;
    let r = s
        .req(Method::POST, "/auth/logout-all")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "token_missing").await;
    let r = s
        .req(Method::POST, "/auth/logout-all")
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for t in [&a, &b] {
        expect_error(
            s.get_auth("/api/ping", &t.access).await,
            401,
            "token_revoked",
        )
        .await;
        assert_eq!(s.refresh(&t.refresh, Some("d1")).await.status(), 401);
    }
    assert_eq!(
        s.get_auth("/api/ping", &stranger.access).await.status(),
        200
    );
    let fresh = s.login(&email, "correct horse", "d1").await;
    assert!(types(&events(&s, &fresh.access).await).contains(&"logout_all".to_owned()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_and_revoke_one() {
    let s = Server::start(&[]).await;
    let (email, a) = s.user("phone").await;
    let b = s.login(&email, "correct horse", "laptop").await;
    let (_, stranger) = s.user("x").await;
    let v: Value = s
        .get_auth("/auth/sessions", &a.access)
        .await
        .json()
        .await
        .unwrap();
    let list = v["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for sess in list {
        for f in [
            "id",
            "device_id",
            "user_agent",
            "ip",
            "created_at",
            "last_used_at",
            "expires_at",
            "remember_me",
            "current",
        ] {
            assert!(sess.get(f).is_some(), "session field {f}");
        }
        assert_eq!(sess["current"], sess["id"] == a.session_id.as_str());
        assert_eq!(sess["ip"], "127.0.0.1");
    }
    // Another user's session, unknown ids and junk ids are all 404.
    for id in [
        stranger.session_id.clone(),
        uuid::Uuid::new_v4().to_string(),
        "junk".into(),
    ] {
        let r = s
            .req(Method::DELETE, &format!("/auth/sessions/{id}"))
            .bearer_auth(&a.access)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not_found").await;
    }
    assert_eq!(
        s.get_auth("/api/ping", &stranger.access).await.status(),
        200
    );
    let r = s
        .req(Method::DELETE, &format!("/auth/sessions/{}", b.session_id))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    expect_error(
        s.get_auth("/api/ping", &b.access).await,
        401,
        "token_revoked",
    )
    .await;
    let v: Value = s
        .get_auth("/auth/sessions", &a.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    assert!(types(&events(&s, &a.access).await).contains(&"session_revoked".to_owned()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_is_own_newest_first_and_limited() {
    let s = Server::start(&[]).await;
    let (email, t) = s.user("d").await;
    let (_, stranger) = s.user("x").await;
    let _ = s
        .post(
            "/auth/login",
            json!({"email": email, "password": "wrong-wrong"}),
            Some("d"),
        )
        .await;
    let t2 = Tokens::from_json(s.refresh(&t.refresh, Some("d")).await.json().await.unwrap());
    let ev = events(&s, &t2.access).await;
    let kinds = types(&ev);
    assert_eq!(kinds[0], "token_refreshed", "{kinds:?}");
    for k in [
        "user_registered",
        "login_succeeded",
        "login_failed",
        "new_device",
        "token_refreshed",
    ] {
        assert!(kinds.contains(&k.to_owned()), "{k} missing: {kinds:?}");
    }
    let ids: Vec<i64> = ev.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    for e in &ev {
        for f in [
            "id",
            "at",
            "type",
            "severity",
            "session_id",
            "device_id",
            "ip",
            "detail",
        ] {
            assert!(e.get(f).is_some(), "event field {f}");
        }
        assert!(["info", "warning", "error", "critical"].contains(&e["severity"].as_str().unwrap()));
    }
    let stranger_ev = events(&s, &stranger.access).await;
    assert!(stranger_ev
        .iter()
        .all(|e| e["session_id"] != t.session_id.as_str()));
    let v: Value = s
        .get_auth("/auth/audit-log?limit=2", &t2.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    for bad in ["0", "-1", "x", "100000"] {
        let r = s
            .get_auth(&format!("/auth/audit-log?limit={bad}"), &t2.access)
            .await;
        expect_error(r, 400, "invalid_request").await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("d").await;
    let _ = s.refresh(&t.refresh, Some("d")).await;
    let text = s.metrics().await;
    for series in [
        "auth_tokens_issued_total{token_type=\"access\"}",
        "auth_token_refresh_total{status=\"success\"} 1",
        "auth_token_revocation_total",
        "auth_refresh_reuse_detected_total 0",
        "auth_login_total{result=\"success\"} 1",
        "auth_duration_seconds_bucket{endpoint=\"refresh\",le=\"+Inf\"} 1",
        "auth_active_sessions 1",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    let h: Value = s
        .req(Method::GET, "/healthz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h, json!({"status": "ok"}));
    assert_eq!(
        s.req(Method::GET, "/readyz").send().await.unwrap().status(),
        200
    );
    s.stop().await;
}

/// `/metrics` from a non-loopback peer needs the metrics token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_from_other_hosts_need_the_token() {
    let Some(ip) = non_loopback_ip() else {
        panic!("this machine has no non-loopback IPv4 address to test from");
    };
    let db = fresh_database().await;
    let mut cfg = config(&db, &[("metrics-token", "s3cret")]);
    cfg.bind = format!("{ip}:0").parse().unwrap();
    let listener = tokio::net::TcpListener::bind(cfg.bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = baton_server::AppState::new(cfg).await.unwrap();
    let app = baton_server::app(state);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let c = reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap();
    let url = format!("http://{addr}/metrics");
    expect_error(c.get(&url).send().await.unwrap(), 403, "forbidden").await;
    expect_error(
        c.get(&url).bearer_auth("wrong").send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        c.get(&url)
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    task.abort();
}

fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_sessions_and_keys() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("d").await;
    let db = s.database_url.clone();
    let kid = s.state.keys.kid().to_owned();
    s.stop().await;
    let s2 = Server::start_on(&db, &[]).await;
    assert_eq!(s2.state.keys.kid(), kid);
    assert_eq!(s2.get_auth("/api/ping", &t.access).await.status(), 200);
    let r = s2.refresh(&t.refresh, Some("d")).await;
    assert_eq!(r.status(), 200);
    s2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_ended_sessions_and_old_events() {
    let s = Server::start(&[("session-retention", "1s"), ("audit-retention", "1s")]).await;
    let (email, t) = s.user("d").await;
    let live = s.login(&email, "correct horse", "d").await;
    let r = s
        .req(Method::POST, "/auth/logout")
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    baton_server::purge(&s.state).await;
    assert!(s
        .state
        .store
        .session(&t.session_id)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .state
        .store
        .session(&live.session_id)
        .await
        .unwrap()
        .is_some());
    assert!(events(&s, &live.access).await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_database() {
    let a = Server::start(&[("reuse-grace", "2s")]).await;
    let b = Server::start_on(&a.database_url, &[("reuse-grace", "2s")]).await;
    assert_eq!(a.state.keys.kid(), b.state.keys.kid());
    let (_, t) = a.user("tab").await;
    // Concurrent refreshes of one token split across both instances: one successor.
    let calls = (0..8).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        s.refresh(&t.refresh, Some("tab"))
    });
    let mut successors = std::collections::HashSet::new();
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status(), 200);
        successors.insert(Tokens::from_json(r.json().await.unwrap()).refresh);
    }
    assert_eq!(successors.len(), 1);
    let next = successors.into_iter().next().unwrap();
    let t2 = Tokens::from_json(b.refresh(&next, Some("tab")).await.json().await.unwrap());
    // Replay on instance A of the first token, two rotations old: detected.
    expect_error(
        a.refresh(&t.refresh, Some("tab")).await,
        401,
        "refresh_token_reused",
    )
    .await;
    // Instance B refuses the session's access token within a second.
    let took = eventually(Duration::from_secs(1), || async {
        b.get_auth("/api/ping", &t2.access).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(took.is_some(), "revocation on A not seen by B within 1 s");
    a.stop().await;
    b.stop().await;
}

/// Two instances writing to one database at the same moment answer every refresh: neither
/// refuses one because the other wrote first. (On SQLite a rotation batch read the sessions
/// before it wrote; once the other instance had committed in between, SQLite refused the
/// write at once, without waiting for the lock, and the refresh was answered 503.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_refreshing_at_once_answer_every_refresh() {
    let a = Server::start(&[("rate-limits", "relaxed")]).await;
    let b = Server::start_on(&a.database_url, &[("rate-limits", "relaxed")]).await;
    let mut chains = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { &a } else { &b };
        chains.push((s, s.user("tab").await.1.refresh));
    }
    let runs = chains.into_iter().map(|(s, mut token)| async move {
        let mut answers = Vec::new();
        for _ in 0..25 {
            let r = s.refresh(&token, Some("tab")).await;
            answers.push(r.status());
            if r.status() != StatusCode::OK {
                break;
            }
            token = Tokens::from_json(r.json().await.unwrap()).refresh;
        }
        answers
    });
    let answers: Vec<StatusCode> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let refused: Vec<&StatusCode> = answers.iter().filter(|s| **s != StatusCode::OK).collect();
    assert!(refused.is_empty(), "refreshes refused: {refused:?}");
    assert_eq!(answers.len(), 8 * 25);
    a.stop().await;
    b.stop().await;
}

/// A store transaction that reads before it writes still commits when another instance on the
/// same database writes in between: on SQLite it holds the write lock from its start, so the
/// other instance waits for it instead of making its snapshot stale (which SQLite refuses at
/// the first write, at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_reads_first_commits_while_another_instance_writes() {
    let a = Server::start(&[]).await;
    let b = Server::start_on(&a.database_url, &[]).await;
    let mut tx = a.state.store.begin().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rate_hits")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let other = b.state.store.clone();
    let mut other_write = tokio::spawn(async move {
        let mut tx = other.begin().await?;
        sqlx::query("INSERT INTO rate_hits (key, at) VALUES ('b', 1)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    });
    // Give the other instance time to write first if it can.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut other_write)
        .await
        .ok();
    sqlx::query("INSERT INTO rate_hits (key, at) VALUES ('a', $1)")
        .bind(n)
        .execute(&mut *tx)
        .await
        .expect("the write after the read");
    tx.commit().await.unwrap();
    let other = match early {
        Some(done) => done,
        None => other_write.await,
    };
    other.unwrap().expect("the other instance's write");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_from_an_instance_with_a_slow_clock_are_seen() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("d").await;
    // Another instance, its clock a minute behind, revokes the session in the shared database
    // (this instance's in-memory view is not told).
    let behind = baton_server::now_ms() - 60_000;
    assert!(s
        .state
        .store
        .revoke(
            &t.session_id,
            "logout",
            behind,
            &baton_server::store::NewEvent {
                at: behind,
                kind: "logout",
                severity: "info",
                ..Default::default()
            }
        )
        .await
        .unwrap());
    let took = eventually(Duration::from_secs(1), || async {
        s.get_auth("/api/ping", &t.access).await.status() == 401
    })
    .await;
    assert!(took.is_some(), "revocation not seen within 1 s");
    s.stop().await;
}

/// A rotation records its request's address, device and user agent exactly as sent, whatever
/// characters they hold, and a missing user agent as none (SQLite receives a batch of
/// rotations as one JSON argument).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_records_its_request_as_sent() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("dev-ua").await;
    let ua = r#"Agent/1.0 "quoted" \back\slash\ 'single' {"json": [1, null]} \u0041 $1 ?2 %s"#;
    let r = s
        .req(Method::POST, "/auth/refresh")
        .header("x-device-id", "dev-ua")
        .header("user-agent", ua)
        .json(&json!({"refresh_token": t.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    let v: Value = s
        .get_auth("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["sessions"][0]["user_agent"], ua);
    let db = open_db(&s.database_url).await;
    let row = |db: sqlx::AnyPool, id: String| async move {
        sqlx::query_as::<_, (Option<String>, Option<String>, Option<String>, i64)>(
            "SELECT user_agent, rotated_by_device, ip, generation FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert_eq!(
        row(db.clone(), t.session_id.clone()).await,
        (
            Some(ua.to_owned()),
            Some("dev-ua".to_owned()),
            Some("127.0.0.1".to_owned()),
            2
        )
    );
    let r = s.refresh(&t.refresh, Some("dev-ua")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        row(db.clone(), t.session_id.clone()).await,
        (
            None,
            Some("dev-ua".to_owned()),
            Some("127.0.0.1".to_owned()),
            3
        )
    );
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE session_id = $1 AND device_id = 'dev-ua' \
         AND ip = '127.0.0.1' AND type = 'token_refreshed' \
         AND detail = 'refresh token rotated'",
    )
    .bind(&t.session_id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(events, 2);
    db.close().await;
    s.stop().await;
}

/// Rotations whose compare-and-swap fails (a spent token, an ended session) share batches
/// with rotations that succeed: whatever a batch holds, each session ends with exactly one
/// rotation event per rotation it made, and none for a rotation that did not happen (a spent
/// token answered within the grace window has an event of its own, not a rotation's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_rotations_that_happen_are_recorded_whatever_shares_their_batch() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let mut current = Vec::new();
    let mut spent = Vec::new();
    for i in 0..9 {
        let device = format!("dev{i}");
        let (_, t) = s.user(&device).await;
        let r = s.refresh(&t.refresh, Some(&device)).await;
        assert_eq!(r.status(), 200);
        spent.push(t.refresh.clone());
        current.push(Tokens::from_json(r.json().await.unwrap()));
    }
    // Sessions 0, 3 and 6 end: their current tokens can no longer rotate.
    for i in [0, 3, 6] {
        let r = s
            .req(Method::POST, "/auth/logout")
            .bearer_auth(&current[i].access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "logout {i}");
    }
    for round in 0..4 {
        let calls = (0..9).map(|i| {
            // Sessions 1, 4 and 7 show their spent token in the first round (reuse).
            let token = if round == 0 && i % 3 == 1 {
                spent[i].clone()
            } else {
                current[i].refresh.clone()
            };
            let s = &s;
            async move { (i, s.refresh(&token, Some(&format!("dev{i}"))).await) }
        });
        for (i, r) in futures::future::join_all(calls).await {
            if r.status() == 200 {
                current[i] = Tokens::from_json(r.json().await.unwrap());
            }
        }
    }
    let db = open_db(&s.database_url).await;
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, generation FROM sessions")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 9);
    let mut rotated = 0;
    for (sid, generation) in rows {
        let events: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE session_id = $1 \
             AND type = 'token_refreshed' AND detail = 'refresh token rotated'",
        )
        .bind(&sid)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(events, generation - 1, "session {sid}: events vs rotations");
        rotated += generation - 1;
    }
    // The three live sessions rotated in every round, the others at most in the first.
    assert!(rotated >= 9 + 3 * 4, "{rotated} rotations");
    db.close().await;
    s.stop().await;
}
