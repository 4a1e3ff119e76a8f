//! What an attacker on the web can try: cross-site requests (forced logout, login CSRF),
//! forged `X-Forwarded-For`, look-alike email addresses, malformed paths.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

const EVIL: &str = "https://evil.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_logout_neither_succeeds_nor_clears_the_cookie() {
    let s = Server::start(&[]).await;
    let r = s
        .req(Method::POST, "/auth/logout")
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("set-cookie").is_none(),
        "cookie cleared cross-site"
    );
    expect_error(r, 403, "csrf_check_failed").await;
    // Same-site navigation metadata without Origin is refused as well.
    let r = s
        .req(Method::POST, "/auth/logout")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf_check_failed").await;
    // A logout that presents no cookie clears none.
    let r = s.req(Method::POST, "/auth/logout").send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("set-cookie").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_register_refuse_cross_site_forms_and_foreign_origins() {
    let s = Server::start(&[("cors-origins", "https://app.example")]).await;
    let (email, _) = s.user("dev").await;
    let body = json!({"email": email, "password": "correct horse", "refresh_transport": "cookie"});
    // A cross-site HTML form can send text/plain whose body is JSON, without a preflight.
    for path in ["/auth/login", "/auth/register"] {
        let r = s
            .req(Method::POST, path)
            .header("content-type", "text/plain")
            .header("x-device-id", "dev")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("set-cookie").is_none());
        expect_error(r, 415, "unsupported_media_type").await;
    }
    let login = |origin: &'static str| {
        s.req(Method::POST, "/auth/login")
            .header("origin", origin)
            .header("x-device-id", "dev")
            .json(&body)
            .send()
    };
    let r = login(EVIL).await.unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    expect_error(r, 403, "csrf_check_failed").await;
    expect_error(login("null").await.unwrap(), 403, "csrf_check_failed").await;
    assert_eq!(login("https://app.example").await.unwrap().status(), 200);
    // The server's own origin (the demo page it serves).
    let own = s
        .req(Method::POST, "/auth/login")
        .header("origin", s.url.clone())
        .header("x-device-id", "dev")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_behind_a_local_proxy_go_by_the_client_address() {
    let s = Server::start(&[("trusted-proxies", "127.0.0.1")]).await;
    let r = s
        .req(Method::GET, "/metrics")
        .header("x-forwarded-for", "203.0.113.50")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    assert_eq!(
        s.req(Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junk_forwarded_hop_does_not_hide_the_client() {
    let s = Server::start(&[("trusted-proxies", "127.0.0.1")]).await;
    let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
    s.register(&email, "correct horse").await;
    let r = s
        .req(Method::POST, "/auth/login")
        .header("x-device-id", "dev")
        .header("x-forwarded-for", "junk, 203.0.113.7")
        .json(&json!({"email": email, "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    let list: serde_json::Value = s
        .get_auth("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["sessions"][0]["ip"], "203.0.113.7");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_emails_are_the_same_account_or_refused() {
    let s = Server::start(&[]).await;
    s.register("alice@example.com", "correct horse").await;
    for twin in [
        "ａｌｉｃｅ@example.com",
        "ALICE@example.com",
        "alice@ｅｘａｍｐｌｅ.com",
    ] {
        let r = s
            .post(
                "/auth/register",
                json!({"email": twin, "password": "correct horse"}),
                None,
            )
            .await;
        expect_error(r, 409, "email_taken").await;
    }
    for hidden in [
        "ali\u{200B}ce@example.com",
        "ali\u{00AD}ce@example.com",
        "alice\u{202E}@example.com",
    ] {
        let r = s
            .post(
                "/auth/register",
                json!({"email": hidden, "password": "correct horse"}),
                None,
            )
            .await;
        expect_error(r, 422, "validation_failed").await;
    }
    // Typed in another form, it is still Alice.
    let t = s
        .login("ａｌｉｃｅ@ＥＸＡＭＰＬＥ.com", "correct horse", "dev")
        .await;
    assert_eq!(t.json["user"]["email"], "alice@example.com");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_has_the_json_error_shape() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("dev").await;
    let r = s
        .req(Method::DELETE, "/auth/sessions/%FF%FE")
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(status == 400 || status == 404, "{status}");
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    assert!(body["error"]["code"].is_string(), "{body}");
    let r = s
        .req(Method::GET, "/auth/audit-log?limit=%FF")
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], "invalid_request");
    s.stop().await;
}
