//! Sign-in by email over real SMTP (aiosmtpd, `tests/smtp/sink.py`): codes and links, their
//! single use, tries and lifetime, accounts made on first sign-in, limits, and the settings
//! (docs/api.md, "Email sign-in").

mod common;

use common::smtp::Smtp;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn code_of(mail: &str) -> String {
    let i = mail.find("code: ").expect("a code in the mail") + 6;
    mail[i..i + 6].to_owned()
}

fn link_token_of(mail: &str) -> String {
    let i = mail
        .find("http://app.test/sign-in?token=")
        .expect("a link in the mail")
        + 30;
    mail[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn server(smtp: &Smtp, extra: &[(&str, &str)]) -> Server {
    let url = smtp.url();
    // The settings of a working setup, unless the test gives its own.
    let mut o: Vec<(&str, &str)> = [
        ("smtp-url", url.as_str()),
        ("mail-from", "Baton <no-reply@baton.test>"),
        ("magic-link-url", "http://app.test/sign-in"),
    ]
    .into_iter()
    .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
    .collect();
    o.extend_from_slice(extra);
    Server::start(&o).await
}

async fn ask(s: &Server, email: &str) -> reqwest::Response {
    s.post(
        "/auth/otp/request",
        json!({ "email": email }),
        Some("dev-1"),
    )
    .await
}

async fn verify(s: &Server, email: &str, code: &str) -> reqwest::Response {
    s.post(
        "/auth/otp/verify",
        json!({ "email": email, "code": code }),
        Some("dev-1"),
    )
    .await
}

async fn follow(s: &Server, token: &str) -> reqwest::Response {
    s.post(
        "/auth/magic-link/verify",
        json!({ "token": token }),
        Some("dev-1"),
    )
    .await
}

fn email() -> String {
    format!("m{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A wrong code for `code`.
fn other(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_code_signs_in_once() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    let r = ask(&s, &addr).await;
    assert_eq!(r.status(), 202);
    let mail = smtp.mail(1).await;
    assert!(mail.contains(&format!("X-Envelope-To: {addr}")), "{mail}");
    assert!(mail.contains("From: Baton <no-reply@baton.test>"), "{mail}");
    let code = code_of(&mail);
    expect_error(verify(&s, &addr, &other(&code)).await, 401, "invalid_code").await;
    let r = verify(&s, &addr, &code).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(t.json["user"]["email"], addr.as_str());
    // Signing in by mail proves the address.
    assert_eq!(me(&s, &t.access).await["user"]["email_verified"], true);
    assert_eq!(claims(&t.access)["email_verified"], true);
    // Once only.
    expect_error(verify(&s, &addr, &code).await, 401, "invalid_code").await;
    // What the audit log says, without the code.
    let log = events(&s, &t.access).await;
    let kinds = types(&log);
    for k in [
        "otp_generated",
        "otp_sent",
        "otp_refused",
        "otp_verified",
        "login_succeeded",
    ] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    assert!(!serde_json::to_string(&log).unwrap().contains(&code));
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("auth_email_total{step=\"sent\"} 1"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_dies_after_five_tries_and_at_its_ttl() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[("otp-ttl", "2s")]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    assert_eq!(ask(&s, &addr).await.status(), 202);
    let code = code_of(&smtp.mail(1).await);
    for _ in 0..5 {
        expect_error(verify(&s, &addr, &other(&code)).await, 401, "invalid_code").await;
    }
    expect_error(verify(&s, &addr, &code).await, 401, "invalid_code").await;
    // A new code; unused past its lifetime.
    assert_eq!(ask(&s, &addr).await.status(), 202);
    let code = code_of(&smtp.mail(2).await);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    expect_error(verify(&s, &addr, &code).await, 401, "invalid_code").await;
    // Not a code at all.
    expect_error(verify(&s, &addr, "12ab56").await, 422, "validation_failed").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_signs_in_once_and_spends_the_code() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    assert_eq!(ask(&s, &addr).await.status(), 202);
    let mail = smtp.mail(1).await;
    let (code, token) = (code_of(&mail), link_token_of(&mail));
    assert!(token.len() >= 40, "{mail}");
    let r = follow(&s, &token).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(t.json["user"]["email"], addr.as_str());
    expect_error(follow(&s, &token).await, 401, "invalid_code").await;
    expect_error(verify(&s, &addr, &code).await, 401, "invalid_code").await;
    expect_error(follow(&s, "made-up-token").await, 401, "invalid_code").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_addresses_sign_up_only_while_registration_is_open() {
    let smtp = Smtp::start(None);
    let open = server(&smtp, &[]).await;
    let newcomer = email();
    assert_eq!(ask(&open, &newcomer).await.status(), 202);
    let code = code_of(&smtp.mail(1).await);
    let r = verify(&open, &newcomer, &code).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    // The account has no password anybody knows.
    let r = open
        .post(
            "/auth/login",
            json!({"email": newcomer, "password": "guess the password"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    assert!(types(&events(&open, &t.access).await).contains(&"user_registered".to_owned()));
    open.stop().await;

    let closed = server(&smtp, &[("registration", "closed")]).await;
    let stranger = email();
    // The same answer as for an account, and no mail.
    let r = ask(&closed, &stranger).await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"status": "accepted"}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        smtp.count(),
        1,
        "no mail for an address that may not sign up"
    );
    expect_error(
        verify(&closed, &stranger, "123456").await,
        401,
        "invalid_code",
    )
    .await;
    closed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_limited_per_address_and_malformed_ones_refused() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    for _ in 0..3 {
        assert_eq!(ask(&s, &addr).await.status(), 202);
    }
    let r = ask(&s, &addr).await;
    assert!(r.headers().contains_key("retry-after"));
    expect_error(r, 429, "rate_limited").await;
    expect_error(ask(&s, "not an address").await, 422, "validation_failed").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_credentials_from_a_password_file() {
    let smtp = Smtp::start(Some("mailer:s3cret pass"));
    let file = smtp.dir.with_extension("password");
    std::fs::write(&file, "s3cret pass\n").unwrap();
    let url = format!("smtp://mailer@127.0.0.1:{}", smtp.port);
    let s = server(
        &smtp,
        &[
            ("smtp-url", url.as_str()),
            ("smtp-password-file", file.to_str().unwrap()),
        ],
    )
    .await;
    let addr = email();
    assert_eq!(ask(&s, &addr).await.status(), 202);
    assert!(code_of(&smtp.mail(1).await).len() == 6);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_the_email_endpoints_say_so() {
    let s = Server::start(&[]).await;
    let r = ask(&s, &email()).await;
    let body = expect_error(r, 503, "email_unavailable").await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("BATON_SMTP_URL"));
    expect_error(
        verify(&s, &email(), "123456").await,
        503,
        "email_unavailable",
    )
    .await;
    expect_error(follow(&s, "x").await, 503, "email_unavailable").await;
    s.stop().await;
    // Incomplete settings stop the server at start, naming what is missing.
    let db = fresh_database().await;
    let cfg = config(&db, &[("smtp-url", "smtp://127.0.0.1:2525")]);
    let err = baton_server::AppState::new(cfg).await.unwrap_err();
    assert!(err.to_string().contains("BATON_MAIL_FROM"), "{err}");
}

fn query_param(mail: &str, name: &str) -> String {
    let key = format!("{name}=");
    let i = mail
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {mail}"))
        + key.len();
    mail[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn me(s: &Server, access: &str) -> Value {
    let r = s.get_auth("/auth/me", access).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_by_mail_signs_out_everywhere() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "old password 1").await;
    let before = s.login(&addr, "old password 1", "dev-1").await;
    assert_eq!(
        me(&s, &before.access).await["user"]["email_verified"],
        false
    );
    assert_eq!(claims(&before.access)["email_verified"], false);
    let ask_reset = |a: String| {
        s.post(
            "/auth/password/reset-request",
            json!({ "email": a }),
            Some("dev-1"),
        )
    };
    // An address without an account: the same answer, no mail.
    assert_eq!(ask_reset(email()).await.status(), 202);
    assert_eq!(ask_reset(addr.clone()).await.status(), 202);
    let mail = smtp.mail(1).await;
    assert!(mail.contains(&format!("X-Envelope-To: {addr}")), "{mail}");
    assert_eq!(smtp.count(), 1);
    let token = query_param(&mail, "reset_token");
    let reset = |token: &str, password: &str| {
        s.post(
            "/auth/password/reset",
            json!({ "token": token, "password": password }),
            Some("dev-1"),
        )
    };
    expect_error(reset(&token, "short").await, 422, "validation_failed").await;
    expect_error(
        reset("made-up", "new password 2").await,
        401,
        "invalid_code",
    )
    .await;
    assert_eq!(reset(&token, "new password 2").await.status(), 204);
    expect_error(reset(&token, "new password 3").await, 401, "invalid_code").await;
    // Every session ended; the old password is gone, the new one works.
    let r = s.refresh(&before.refresh, Some("dev-1")).await;
    expect_error(r, 401, "session_revoked").await;
    let r = s
        .post(
            "/auth/login",
            json!({"email": addr, "password": "old password 1"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    let after = s.login(&addr, "new password 2", "dev-1").await;
    // The mail arrived: the address counts as verified.
    assert_eq!(me(&s, &after.access).await["user"]["email_verified"], true);
    assert_eq!(claims(&after.access)["email_verified"], true);
    let log = types(&events(&s, &after.access).await);
    for k in ["password_reset_requested", "mail_sent", "password_reset"] {
        assert!(log.contains(&k.to_owned()), "{k} in {log:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_is_verified_by_its_mailed_link() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    let t = s.login(&addr, "correct horse", "dev-1").await;
    let ask = || {
        s.req(reqwest::Method::POST, "/auth/email/verify-request")
            .bearer_auth(&t.access)
            .send()
    };
    assert_eq!(ask().await.unwrap().status(), 202);
    let token = query_param(&smtp.mail(1).await, "verify_token");
    // Opened where the user is signed in: the app page sends its access token along.
    let verify = |token: &str| {
        s.req(reqwest::Method::POST, "/auth/email/verify")
            .bearer_auth(&t.access)
            .header("X-Device-ID", "dev-1")
            .json(&json!({ "token": token }))
            .send()
    };
    assert_eq!(verify(&token).await.unwrap().status(), 204);
    expect_error(verify(&token).await.unwrap(), 401, "invalid_code").await;
    assert_eq!(me(&s, &t.access).await["user"]["email_verified"], true);
    // The next access token says so too.
    let r = s.refresh(&t.refresh, Some("dev-1")).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(claims(&next.access)["email_verified"], true);
    assert_eq!(next.json["user"]["email_verified"], true);
    // Nothing more to verify.
    let r = s
        .req(reqwest::Method::POST, "/auth/email/verify-request")
        .bearer_auth(&next.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(types(&events(&s, &next.access).await).contains(&"email_verified".to_owned()));
    s.stop().await;
}

/// On PostgreSQL, instances share the database: a verification made on one shows in the
/// access tokens of the others within about a second, also for sessions they had cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_reaches_the_tokens_of_every_instance() {
    if backend() != "postgres" {
        return;
    }
    let smtp = Smtp::start(None);
    let a = server(&smtp, &[]).await;
    let url = smtp.url();
    let b = Server::start_on(
        &a.database_url,
        &[
            ("smtp-url", url.as_str()),
            ("mail-from", "Baton <no-reply@baton.test>"),
            ("magic-link-url", "http://app.test/sign-in"),
        ],
    )
    .await;
    let addr = email();
    a.register(&addr, "correct horse").await;
    let t = b.login(&addr, "correct horse", "dev-1").await;
    // Instance b refreshes, and so caches the session with the address unverified.
    let r = b.refresh(&t.refresh, Some("dev-1")).await;
    let mut current = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(claims(&current.access)["email_verified"], false);
    let r = a
        .req(reqwest::Method::POST, "/auth/email/verify-request")
        .bearer_auth(&current.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let token = query_param(&smtp.mail(1).await, "verify_token");
    let r = a
        .req(reqwest::Method::POST, "/auth/email/verify")
        .bearer_auth(&current.access)
        .header("X-Device-ID", "dev-1")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let r = b.refresh(&current.refresh, Some("dev-1")).await;
        assert_eq!(r.status(), 200);
        current = Tokens::from_json(r.json().await.unwrap());
        if claims(&current.access)["email_verified"] == true {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "instance b still issues email_verified: false"
        );
    }
    assert_eq!(current.json["user"]["email_verified"], true);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_users_are_read_page_by_page_without_losing_any() {
    let s = Server::start(&[]).await;
    let db = open_db(&s.database_url).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let user = s.register(&email(), "correct horse").await;
        ids.push(user["user"]["id"].as_str().unwrap().to_owned());
    }
    // Three changed, two of them in the same millisecond: a page may end between them.
    let at = baton_server::now_ms() - 1_000;
    for (id, verified_at) in [(&ids[0], at), (&ids[1], at + 5), (&ids[2], at + 5)] {
        sqlx::query("UPDATE users SET changed_at = $1 WHERE id = $2")
            .bind(verified_at)
            .bind(id.as_str())
            .execute(&db)
            .await
            .unwrap();
    }
    let mut expected = vec![
        (ids[0].clone(), at),
        (ids[1].clone(), at + 5),
        (ids[2].clone(), at + 5),
    ];
    expected[1..].sort();
    for page in [1, 2, 3, 1_000] {
        let rows = s.state.store.changed_since(at, page).await.unwrap();
        assert_eq!(rows, expected, "pages of {page}");
    }
    let later = s.state.store.changed_since(at + 1, 2).await.unwrap();
    assert_eq!(later, expected[1..]);
    s.stop().await;
}

/// Every revocation of a session fails (a failure between the writes of a password reset).
async fn fail_revocations(s: &Server, on: bool) {
    let event = "BEFORE UPDATE OF revoked_at";
    inject_failure(s, "baton_test_refuse_revoke", event, "sessions", on).await;
}

/// Every new session fails to be stored.
async fn fail_new_sessions(s: &Server, on: bool) {
    inject_failure(
        s,
        "baton_test_refuse_session",
        "BEFORE INSERT",
        "sessions",
        on,
    )
    .await;
}

/// Every account token fails to be stored.
async fn fail_account_tokens(s: &Server) {
    inject_failure(
        s,
        "baton_test_refuse_token",
        "BEFORE INSERT",
        "account_tokens",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_that_fails_halfway_changes_nothing() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "old password 1").await;
    // An intruder's session, from before the reset.
    let intruder = s.login(&addr, "old password 1", "dev-x").await;
    let r = s
        .post(
            "/auth/password/reset-request",
            json!({ "email": addr }),
            Some("dev-1"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let token = query_param(&smtp.mail(1).await, "reset_token");
    let reset = || {
        s.post(
            "/auth/password/reset",
            json!({ "token": token, "password": "new password 2" }),
            Some("dev-1"),
        )
    };
    // The revocation of the sessions fails, after the link, the password and the rest were
    // written in the same transaction: nothing of it may stay.
    fail_revocations(&s, true).await;
    let r = reset().await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let r = s
        .post(
            "/auth/login",
            json!({"email": addr, "password": "new password 2"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    let still = s.login(&addr, "old password 1", "dev-1").await;
    assert_eq!(me(&s, &still.access).await["user"]["email_verified"], false);
    let r = s.refresh(&intruder.refresh, Some("dev-x")).await;
    assert_eq!(r.status(), 200, "the intruder's session still refreshes");
    let intruder = Tokens::from_json(r.json().await.unwrap());
    // The database works again: the same link, unspent, now does all of it.
    fail_revocations(&s, false).await;
    assert_eq!(reset().await.status(), 204);
    let r = s.refresh(&intruder.refresh, Some("dev-x")).await;
    expect_error(r, 401, "session_revoked").await;
    let after = s.login(&addr, "new password 2", "dev-1").await;
    assert_eq!(me(&s, &after.access).await["user"]["email_verified"], true);
    s.stop().await;
}

async fn ask_from(s: &Server, email: &str, device: &str) -> reqwest::Response {
    s.post("/auth/otp/request", json!({ "email": email }), Some(device))
        .await
}

async fn verify_from(s: &Server, email: &str, code: &str, device: &str) -> reqwest::Response {
    s.post(
        "/auth/otp/verify",
        json!({ "email": email, "code": code }),
        Some(device),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_mail_replaces_the_older_code_and_link_for_good() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    assert_eq!(ask(&s, &addr).await.status(), 202);
    let first = smtp.mail(1).await;
    assert_eq!(ask(&s, &addr).await.status(), 202);
    let second = smtp.mail(2).await;
    let (c1, c2) = (code_of(&first), code_of(&second));
    if c1 == c2 {
        return; // one chance in a million: nothing to tell apart
    }
    expect_error(verify(&s, &addr, &c1).await, 401, "invalid_code").await;
    expect_error(
        follow(&s, &link_token_of(&first)).await,
        401,
        "invalid_code",
    )
    .await;
    assert_eq!(verify(&s, &addr, &c2).await.status(), 200);
    // Once the newer one is used, the older one does not come back.
    expect_error(verify(&s, &addr, &c1).await, 401, "invalid_code").await;
    expect_error(
        follow(&s, &link_token_of(&first)).await,
        401,
        "invalid_code",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_keep_the_owner_from_signing_in_by_mail() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    // The owner asks for a code.
    assert_eq!(ask_from(&s, &addr, "owner").await.status(), 202);
    let owner_code = code_of(&smtp.mail(1).await);
    // A stranger asks three times for the same address and guesses five times.
    for _ in 0..3 {
        assert_eq!(ask_from(&s, &addr, "stranger").await.status(), 202);
    }
    for _ in 0..5 {
        let guess = other(&owner_code);
        expect_error(
            verify_from(&s, &addr, &guess, "stranger").await,
            401,
            "invalid_code",
        )
        .await;
    }
    // The owner's code still works, and the owner may still ask for another.
    assert_eq!(ask_from(&s, &addr, "owner").await.status(), 202);
    let again = code_of(&smtp.mail(5).await);
    let r = verify_from(&s, &addr, &again, "owner").await;
    assert_eq!(r.status(), 200);
    // The owner's older code died with the owner's newer request, not with the stranger's.
    expect_error(
        verify_from(&s, &addr, &owner_code, "owner").await,
        401,
        "invalid_code",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proving_the_address_ends_what_a_squatter_set_up_before() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    // Someone registers the owner's address with a password of their own, before the owner.
    s.register(&addr, "squatter password").await;
    let squatter = s.login(&addr, "squatter password", "squat").await;
    // The owner signs in by mail: the address is proven.
    assert_eq!(ask_from(&s, &addr, "owner").await.status(), 202);
    let code = code_of(&smtp.mail(1).await);
    let r = verify_from(&s, &addr, &code, "owner").await;
    assert_eq!(r.status(), 200);
    let owner = Tokens::from_json(r.json().await.unwrap());
    // The squatter's session and password are gone; the owner's session is not.
    expect_error(
        s.refresh(&squatter.refresh, Some("squat")).await,
        401,
        "session_revoked",
    )
    .await;
    let r = s
        .post(
            "/auth/login",
            json!({"email": addr, "password": "squatter password"}),
            Some("squat"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    assert_eq!(s.refresh(&owner.refresh, Some("owner")).await.status(), 200);
    let log = types(&events(&s, &owner.access).await);
    assert!(log.contains(&"unproven_access_ended".to_owned()), "{log:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_link_opened_by_someone_else_ends_the_squatters_access() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "squatter password").await;
    let squatter = s.login(&addr, "squatter password", "squat").await;
    let r = s
        .req(reqwest::Method::POST, "/auth/email/verify-request")
        .bearer_auth(&squatter.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The mail reaches the owner of the address, who opens it without being signed in.
    let token = query_param(&smtp.mail(1).await, "verify_token");
    let r = s
        .post(
            "/auth/email/verify",
            json!({ "token": token }),
            Some("owner"),
        )
        .await;
    assert_eq!(r.status(), 204);
    expect_error(
        s.refresh(&squatter.refresh, Some("squat")).await,
        401,
        "session_revoked",
    )
    .await;
    let r = s
        .post(
            "/auth/login",
            json!({"email": addr, "password": "squatter password"}),
            Some("squat"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_link_opened_while_signed_in_keeps_password_and_sessions() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    let t = s.login(&addr, "correct horse", "dev-1").await;
    let r = s
        .req(reqwest::Method::POST, "/auth/email/verify-request")
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let token = query_param(&smtp.mail(1).await, "verify_token");
    let r = s
        .req(reqwest::Method::POST, "/auth/email/verify")
        .bearer_auth(&t.access)
        .header("X-Device-ID", "dev-1")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&s, &t.access).await["user"]["email_verified"], true);
    assert_eq!(s.refresh(&t.refresh, Some("dev-1")).await.status(), 200);
    s.login(&addr, "correct horse", "dev-1").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_request_answers_before_any_work_for_the_account() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    // Whatever is done for an account (its link, its event) happens after the answer: even
    // when it fails, the answer is the one an unknown address gets.
    fail_account_tokens(&s).await;
    for a in [addr.clone(), email()] {
        let r = s
            .post(
                "/auth/password/reset-request",
                json!({ "email": a }),
                Some("dev-1"),
            )
            .await;
        assert_eq!(r.status(), 202, "{a}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_with_a_display_name_is_refused_and_mails_nobody() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    for bad in [
        "victim<evil@evil.test>",
        "Victim <evil@evil.test>",
        "\"v\"@evil.test",
    ] {
        expect_error(ask(&s, bad).await, 422, "validation_failed").await;
        let r = s
            .post(
                "/auth/register",
                json!({"email": bad, "password": "correct horse"}),
                None,
            )
            .await;
        expect_error(r, 422, "validation_failed").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_codes_and_account_tokens_are_purged() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    assert_eq!(ask(&s, &email()).await.status(), 202);
    let r = s
        .post(
            "/auth/password/reset-request",
            json!({ "email": addr }),
            Some("dev-1"),
        )
        .await;
    assert_eq!(r.status(), 202);
    smtp.mail(2).await;
    let db = open_db(&s.database_url).await;
    let count = |table: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        (count("email_codes").await, count("account_tokens").await),
        (1, 1)
    );
    baton_server::purge(&s.state).await;
    // Still alive: kept.
    assert_eq!(
        (count("email_codes").await, count("account_tokens").await),
        (1, 1)
    );
    for table in ["email_codes", "account_tokens"] {
        sqlx::query(&format!("UPDATE {table} SET expires_at = 1"))
            .execute(&db)
            .await
            .unwrap();
    }
    baton_server::purge(&s.state).await;
    assert_eq!(
        (count("email_codes").await, count("account_tokens").await),
        (0, 0)
    );
    db.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_ends_outstanding_sign_in_codes() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    assert_eq!(ask(&s, &addr).await.status(), 202);
    let code_mail = smtp.mail(1).await;
    let r = s
        .post(
            "/auth/password/reset-request",
            json!({ "email": addr }),
            Some("dev-1"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let token = query_param(&smtp.mail(2).await, "reset_token");
    let r = s
        .post(
            "/auth/password/reset",
            json!({ "token": token, "password": "new password 2" }),
            Some("dev-1"),
        )
        .await;
    assert_eq!(r.status(), 204);
    expect_error(
        verify(&s, &addr, &code_of(&code_mail)).await,
        401,
        "invalid_code",
    )
    .await;
    expect_error(
        follow(&s, &link_token_of(&code_mail)).await,
        401,
        "invalid_code",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_spent_on_a_sign_in_the_server_could_not_store_still_works() {
    let smtp = Smtp::start(None);
    let s = server(&smtp, &[]).await;
    let addr = email();
    s.register(&addr, "correct horse").await;
    assert_eq!(ask(&s, &addr).await.status(), 202);
    let mail = smtp.mail(1).await;
    fail_new_sessions(&s, true).await;
    let r = verify(&s, &addr, &code_of(&mail)).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let r = follow(&s, &link_token_of(&mail)).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    fail_new_sessions(&s, false).await;
    assert_eq!(verify(&s, &addr, &code_of(&mail)).await.status(), 200);
    s.stop().await;
}
