//! What users change on their own account: the password, the address (over real SMTP), their
//! metadata, the account's deletion and its export (docs/api.md, "Your account").

mod common;

use common::smtp::Smtp;
use common::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};

fn email() -> String {
    format!("s{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn send(s: &Server, method: Method, path: &str, access: &str, body: Value) -> Response {
    s.req(method, path)
        .bearer_auth(access)
        .header("x-device-id", "dev-1")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn mail_server(smtp: &Smtp) -> Server {
    let url = smtp.url();
    Server::start(&[
        ("smtp-url", url.as_str()),
        ("mail-from", "Baton <no-reply@baton.test>"),
        ("magic-link-url", "http://app.test/account"),
    ])
    .await
}

/// The value of `param=` in the link of a mail.
fn link_param(mail: &str, param: &str) -> String {
    let key = format!("{param}=");
    let i = mail
        .find(&key)
        .unwrap_or_else(|| panic!("no {param} in {mail}"))
        + key.len();
    mail[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_signs_out_every_other_session() {
    let s = Server::start(&[]).await;
    let (e, here) = s.user("dev-1").await;
    let there = s.login(&e, "correct horse", "dev-2").await;
    let r = send(
        &s,
        Method::POST,
        "/auth/password/change",
        &here.access,
        json!({"current_password": "correct horse", "new_password": "battery staple"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    // The other session is over, this one goes on.
    expect_error(
        s.get_auth("/auth/me", &there.access).await,
        401,
        "token_revoked",
    )
    .await;
    expect_error(
        s.refresh(&there.refresh, Some("dev-2")).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(s.get_auth("/auth/me", &here.access).await.status(), 200);
    assert_eq!(s.refresh(&here.refresh, Some("dev-1")).await.status(), 200);
    let r = s
        .post(
            "/auth/login",
            json!({"email": e, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    s.login(&e, "battery staple", "dev-1").await;
    let kinds = types(&events(&s, &here.access).await);
    assert!(kinds.contains(&"password_changed".to_owned()), "{kinds:?}");
    // Too short.
    let r = send(
        &s,
        Method::POST,
        "/auth/password/change",
        &here.access,
        json!({"current_password": "battery staple", "new_password": "short"}),
    )
    .await;
    expect_error(r, 422, "validation_failed").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_current_password_counts_toward_the_lockout() {
    // Relaxed: the sign-ins per address do not end the test before the lockout does.
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (e, t) = s.user("dev-1").await;
    for _ in 0..5 {
        let r = send(
            &s,
            Method::POST,
            "/auth/password/change",
            &t.access,
            json!({"current_password": "wrong horse", "new_password": "battery staple"}),
        )
        .await;
        expect_error(r, 401, "invalid_credentials").await;
    }
    let r = send(
        &s,
        Method::POST,
        "/auth/password/change",
        &t.access,
        json!({"current_password": "correct horse", "new_password": "battery staple"}),
    )
    .await;
    expect_error(r, 429, "account_locked").await;
    // Sign-in from this device is locked as well: the same counter.
    let r = s
        .post(
            "/auth/login",
            json!({"email": e, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 429, "account_locked").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_edit_their_metadata_but_not_their_roles() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("dev-1").await;
    let me: Value = s
        .get_auth("/auth/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["user_metadata"], json!({}));
    assert_eq!(me["user"]["app_metadata"], json!({}));
    assert_eq!(me["user"]["roles"], json!([]));
    let r = send(
        &s,
        Method::PATCH,
        "/auth/me",
        &t.access,
        json!({"user_metadata": {"theme": "dark"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["user_metadata"], json!({"theme": "dark"}));
    let me: Value = s
        .get_auth("/auth/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["user_metadata"], json!({"theme": "dark"}));
    for bad in [
        json!({"user_metadata": [1, 2]}),
        json!({"user_metadata": "x"}),
        json!({"user_metadata": {"big": "x".repeat(4100)}}),
        json!({"roles": ["admin"]}),
        json!({"user_metadata": {}, "app_metadata": {"plan": "free"}}),
    ] {
        let r = send(&s, Method::PATCH, "/auth/me", &t.access, bad).await;
        expect_error(r, 422, "validation_failed").await;
    }
    let r = s
        .req(Method::PATCH, "/auth/me")
        .json(&json!({"user_metadata": {}}))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "token_missing").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_erased_and_signed_out_everywhere() {
    let s = Server::start(&[]).await;
    let (e, t) = s.user("dev-1").await;
    let other = s.login(&e, "correct horse", "dev-2").await;
    let uid = claims(&t.access)["sub"].as_str().unwrap().to_owned();
    let r = send(&s, Method::DELETE, "/auth/me", &t.access, json!({})).await;
    expect_error(r, 422, "validation_failed").await;
    let r = send(
        &s,
        Method::DELETE,
        "/auth/me",
        &t.access,
        json!({"password": "wrong horse"}),
    )
    .await;
    expect_error(r, 401, "invalid_credentials").await;
    let r = send(
        &s,
        Method::DELETE,
        "/auth/me",
        &t.access,
        json!({"password": "correct horse"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    for gone in [&t, &other] {
        expect_error(
            s.get_auth("/auth/me", &gone.access).await,
            401,
            "token_revoked",
        )
        .await;
    }
    let r = s
        .post(
            "/auth/login",
            json!({"email": e, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    let db = open_db(&s.database_url).await;
    let (stored, meta): (String, String) =
        sqlx::query_as("SELECT email, user_metadata FROM users WHERE id = $1")
            .bind(&uid)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(!stored.contains(&e) && meta == "{}");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT type FROM audit_events WHERE user_id = $1")
        .bind(&uid)
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(kinds.contains(&"account_deleted".to_owned()), "{kinds:?}");
    let with_ip: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE user_id = $1 AND (ip IS NOT NULL OR device_id IS NOT NULL)",
    )
    .bind(&uid)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(with_ip, 0);
    s.register(&e, "correct horse").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_the_account_its_sessions_and_events() {
    let s = Server::start(&[]).await;
    let (e, t) = s.user("dev-1").await;
    s.login(&e, "correct horse", "dev-2").await;
    let r = s.get_auth("/auth/me/export", &t.access).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["user"]["email"], e.as_str());
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 2);
    assert!(doc["sessions"][0]["created_at"].as_i64().unwrap() > 1_700_000_000);
    let kinds: Vec<&str> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"user_registered") && kinds.contains(&"login_succeeded"),
        "{kinds:?}"
    );
    assert!(doc["exported_at"].as_i64().unwrap() > 1_700_000_000);
    s.stop().await;
}

/// The address moves only once the new one confirms; the old one is told; an address taken
/// meanwhile is 409 and the link stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_changes_by_a_link_to_the_new_one() {
    let smtp = Smtp::start(None);
    let s = mail_server(&smtp).await;
    let (old, t) = s.user("dev-1").await;
    let new = email();
    let r = send(
        &s,
        Method::POST,
        "/auth/email/change",
        &t.access,
        json!({"new_email": new.to_uppercase()}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let first = smtp.mail(1).await;
    let second = smtp.mail(2).await;
    let (link, notice) = if first.contains(&format!("To: {new}")) {
        (first, second)
    } else {
        (second, first)
    };
    assert!(notice.contains(&format!("To: {old}")), "{notice}");
    assert!(notice.contains(&new), "{notice}");
    let token = link_param(&link, "email_change_token");
    assert!(
        link.contains("http://app.test/account?email_change_token="),
        "{link}"
    );
    // Nothing moved yet.
    let me: Value = s
        .get_auth("/auth/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], old.as_str());

    let r = s
        .post("/auth/email/change/confirm", json!({"token": token}), None)
        .await;
    assert_eq!(r.status(), 204);
    let me: Value = s
        .get_auth("/auth/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], new.as_str());
    assert_eq!(me["user"]["email_verified"], true);
    s.login(&new, "correct horse", "dev-1").await;
    let r = s
        .post(
            "/auth/login",
            json!({"email": old, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    let r = s
        .post("/auth/email/change/confirm", json!({"token": token}), None)
        .await;
    expect_error(r, 401, "invalid_code").await;
    // The next access token says the new address is proven.
    let next = Tokens::from_json(
        s.refresh(&t.refresh, Some("dev-1"))
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(claims(&next.access)["email_verified"], true);

    // Taken meanwhile.
    let wanted = email();
    let r = send(
        &s,
        Method::POST,
        "/auth/email/change",
        &next.access,
        json!({"new_email": wanted}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let mail = smtp.mail(3).await;
    let mail = if mail.contains("email_change_token=") {
        mail
    } else {
        smtp.mail(4).await
    };
    let token = link_param(&mail, "email_change_token");
    s.register(&wanted, "correct horse").await;
    let r = s
        .post("/auth/email/change/confirm", json!({"token": token}), None)
        .await;
    expect_error(r, 409, "email_taken").await;
    let me: Value = s
        .get_auth("/auth/me", &next.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], new.as_str());

    for bad in [json!({"new_email": "nope"}), json!({"new_email": new})] {
        let r = send(&s, Method::POST, "/auth/email/change", &next.access, bad).await;
        expect_error(r, 422, "validation_failed").await;
    }
    s.stop().await;
}

/// An account without a password (made by a mailed sign-in) is deleted by a recent sign-in;
/// a disabled account cannot sign in by mail either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_without_a_password_are_deleted_after_a_fresh_sign_in() {
    let smtp = Smtp::start(None);
    let s = mail_server(&smtp).await;
    let addr = email();
    let sign_in = |n: usize| {
        let (s, smtp, addr) = (&s, &smtp, addr.clone());
        async move {
            let r = s
                .post("/auth/otp/request", json!({"email": addr}), Some("dev-1"))
                .await;
            assert_eq!(r.status(), 202);
            let mail = smtp.mail(n).await;
            let i = mail.find("code: ").unwrap() + 6;
            s.post(
                "/auth/otp/verify",
                json!({"email": addr, "code": &mail[i..i + 6]}),
                Some("dev-1"),
            )
            .await
        }
    };
    let r = sign_in(1).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    let uid = claims(&t.access)["sub"].as_str().unwrap().to_owned();

    // A sign-in older than five minutes is not enough.
    let db = open_db(&s.database_url).await;
    sqlx::query("UPDATE sessions SET created_at = created_at - 301000 WHERE id = $1")
        .bind(&t.session_id)
        .execute(&db)
        .await
        .unwrap();
    let r = send(&s, Method::DELETE, "/auth/me", &t.access, json!({})).await;
    expect_error(r, 403, "forbidden").await;

    // Disabled: the mailed code does not sign in.
    let admin = baton_server::signin::admin::create_token(
        &s.state.store,
        "ops",
        &[baton_server::rules::account::Scope::UsersWrite],
        None,
    )
    .await
    .unwrap()
    .unwrap();
    let patch = |until: Value| {
        s.req(Method::PATCH, &format!("/admin/users/{uid}"))
            .bearer_auth(&admin)
            .json(&json!({ "disabled_until": until }))
            .send()
    };
    assert_eq!(patch(json!("forever")).await.unwrap().status(), 200);
    expect_error(sign_in(2).await, 403, "user_disabled").await;
    assert_eq!(patch(Value::Null).await.unwrap().status(), 200);

    let r = sign_in(3).await;
    assert_eq!(r.status(), 200);
    let fresh = Tokens::from_json(r.json().await.unwrap());
    let r = send(&s, Method::DELETE, "/auth/me", &fresh.access, json!({})).await;
    assert_eq!(r.status(), 204);
    expect_error(
        s.get_auth("/auth/me", &fresh.access).await,
        401,
        "token_revoked",
    )
    .await;
    s.stop().await;
}
