//! Other services verifying Baton's tokens: the discovery document, the issuer, and RFC 7662
//! introspection (docs/api.md, "Verifying tokens in other services").

mod common;

use base64::Engine;
use common::*;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

const SECRET: &str = "introspection secret for the tests of baton-server";

async fn introspect(s: &Server, auth: Option<&str>, form: &str) -> reqwest::Response {
    let mut r = s
        .req(Method::POST, "/auth/introspect")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r.send().await.unwrap()
}

async fn active(s: &Server, token: &str) -> Value {
    let r = introspect(
        s,
        Some(&format!("Bearer {SECRET}")),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_issuer_keys_and_introspection() {
    // Without BATON_PUBLIC_URL the issuer is the address the server listens on.
    let s = Server::start(&[("public-url", "none")]).await;
    let doc = s.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], s.url.as_str());
    assert_eq!(doc["jwks_uri"], format!("{}/.well-known/jwks.json", s.url));
    assert_eq!(
        doc["access_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
    assert!(
        doc.get("introspection_endpoint").is_none(),
        "off without a secret: {doc}"
    );
    let (_, t) = s.user("d").await;
    assert_eq!(claims(&t.access)["iss"], s.url.as_str());
    s.stop().await;

    // Behind a proxy: BATON_PUBLIC_URL is the issuer and the base of every URL.
    let s = Server::start(&[
        ("public-url", "https://auth.example.com/"),
        ("introspection-token", SECRET),
    ])
    .await;
    let doc = s.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], "https://auth.example.com");
    assert_eq!(
        doc["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        doc["introspection_endpoint"],
        "https://auth.example.com/auth/introspect"
    );
    let (_, t) = s.user("d").await;
    assert_eq!(claims(&t.access)["iss"], "https://auth.example.com");
    // And the server accepts its own tokens with that issuer.
    assert_eq!(s.get_auth("/auth/me", &t.access).await.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_needs_the_secret_and_a_form() {
    let off = Server::start(&[]).await;
    expect_error(
        introspect(&off, Some("Bearer x"), "token=x").await,
        404,
        "not_found",
    )
    .await;
    off.stop().await;

    let s = Server::start(&[("introspection-token", SECRET)]).await;
    let r = introspect(&s, None, "token=x").await;
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("Basic"));
    expect_error(r, 401, "token_missing").await;
    expect_error(
        introspect(&s, Some("Bearer wrong"), "token=x").await,
        401,
        "token_invalid",
    )
    .await;
    let (_, t) = s.user("d").await;
    // An access token is not the secret.
    expect_error(
        introspect(
            &s,
            Some(&format!("Bearer {}", t.access)),
            &format!("token={}", t.access),
        )
        .await,
        401,
        "token_invalid",
    )
    .await;
    // HTTP Basic with the secret as password (client_secret_basic; its parts form-encoded).
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("resource-server:{}", SECRET.replace(' ', "+")));
    let r = introspect(
        &s,
        Some(&format!("Basic {basic}")),
        &format!("token={}", t.access),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    // A form, not JSON; the token field is required.
    let r = s
        .req(Method::POST, "/auth/introspect")
        .header("authorization", format!("Bearer {SECRET}"))
        .json(&serde_json::json!({ "token": t.access }))
        .send()
        .await
        .unwrap();
    expect_error(r, 415, "unsupported_media_type").await;
    expect_error(
        introspect(
            &s,
            Some(&format!("Bearer {SECRET}")),
            "token_type_hint=access_token",
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_reports_live_tokens_and_not_revoked_expired_or_foreign_ones() {
    let s = Server::start(&[("introspection-token", SECRET), ("access-ttl", "2s")]).await;
    let (_, t) = s.user("d").await;
    let v = active(&s, &t.access).await;
    let c = claims(&t.access);
    assert_eq!(v["active"], true, "{v}");
    for k in ["iss", "aud", "sub", "sid", "jti", "iat", "exp"] {
        assert_eq!(v[k], c[k], "{k}");
    }
    assert_eq!(v["token_type"], "Bearer");
    // Refresh tokens, garbage, and a token of another issuer are not active, and say nothing.
    for other in [t.refresh.as_str(), "garbage", "a.b.c"] {
        assert_eq!(
            active(&s, other).await,
            serde_json::json!({ "active": false })
        );
    }
    // Expired.
    tokio::time::sleep(Duration::from_millis(2_000 + 5_000 + 1_200)).await;
    assert_eq!(active(&s, &t.access).await["active"], false);
    s.stop().await;
}

/// A signed-out session's access token is inactive within a second, also when another instance
/// of the same database revoked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_is_inactive_within_a_second_on_every_instance() {
    // Instances of one deployment share the issuer (here through BATON_PUBLIC_URL).
    let settings = [
        ("introspection-token", SECRET),
        ("public-url", "https://auth.example.com"),
    ];
    let a = Server::start(&settings).await;
    let b = Server::start_on(&a.database_url, &settings).await;
    let (_, t) = a.user("d").await;
    assert_eq!(active(&a, &t.access).await["active"], true);
    assert_eq!(active(&b, &t.access).await["active"], true);
    let r = a
        .req(Method::POST, "/auth/logout")
        .header("authorization", format!("Bearer {}", t.access))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        active(&a, &t.access).await["active"],
        false,
        "at once where revoked"
    );
    let took = eventually(Duration::from_secs(1), || async {
        active(&b, &t.access).await["active"] == false
    })
    .await;
    assert!(
        took.is_some(),
        "still active on the other instance after 1 s"
    );
    a.stop().await;
    b.stop().await;
}

#[test]
fn an_empty_or_short_introspection_secret_is_refused_at_start() {
    use clap::Parser;
    for bad in ["", "x", &"s".repeat(31)] {
        let err = baton_server::config::Config::try_parse_from([
            "baton-server",
            "--introspection-token",
            bad,
        ])
        .expect_err("a guessable introspection secret")
        .to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
    }
    assert!(baton_server::config::Config::try_parse_from([
        "baton-server",
        "--introspection-token",
        &"s".repeat(32),
    ])
    .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_introspection_secrets_are_limited() {
    let s = Server::start(&[("introspection-token", SECRET)]).await;
    let (_, t) = s.user("dev").await;
    let form = format!("token={}", t.access);
    for i in 0..10 {
        let r = introspect(&s, Some(&format!("Bearer guess-{i}")), &form).await;
        expect_error(r, 401, "token_invalid").await;
    }
    let r = introspect(&s, Some("Bearer guess-10"), &form).await;
    assert!(r.headers().contains_key("retry-after"));
    expect_error(r, 429, "rate_limited").await;
    // Even the right secret waits from that address until the limit lifts.
    let r = introspect(&s, Some(&format!("Bearer {SECRET}")), &form).await;
    expect_error(r, 429, "rate_limited").await;
    s.stop().await;
}

async fn feed(s: &Server, since: Option<i64>) -> Value {
    let path = since.map_or("/auth/revocations".to_owned(), |n| {
        format!("/auth/revocations?since={n}")
    });
    let r = s
        .req(Method::GET, &path)
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

fn sids(answer: &Value) -> Vec<String> {
    answer["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_feed_lists_signed_out_sessions_for_as_long_as_their_tokens_live() {
    let s = Server::start(&[("introspection-token", SECRET), ("access-ttl", "60s")]).await;
    let (_, a) = s.user("dev").await;
    let (_, b) = s.user("dev").await;
    let first = feed(&s, None).await;
    assert!(sids(&first).is_empty());
    // A verifier keeps a listed session as long as one of its access tokens may live.
    assert!(
        (60..=75).contains(&first["keep"].as_i64().unwrap()),
        "{first}"
    );
    let r = s
        .req(Method::POST, "/auth/logout-all")
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let sid = claims(&a.access)["sid"].as_str().unwrap().to_owned();
    let next = feed(&s, first["next"].as_i64()).await;
    assert_eq!(sids(&next), vec![sid.clone()]);
    // A verifier that starts now learns of it too; b's session is not listed.
    let fresh = feed(&s, None).await;
    assert!(sids(&fresh).contains(&sid));
    assert!(!sids(&fresh).contains(&claims(&b.access)["sid"].as_str().unwrap().to_owned()));
    // Only with the secret; off without the setting.
    let r = s
        .req(Method::GET, "/auth/revocations")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "token_missing").await;
    s.stop().await;
    let off = Server::start(&[]).await;
    let r = off
        .req(Method::GET, "/auth/revocations")
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    off.stop().await;
}
