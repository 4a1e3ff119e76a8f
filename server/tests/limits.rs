//! Abuse limits of docs/api.md, one test per rule, over real HTTP on SQLite or PostgreSQL.
//! Distinct client IPs come from `X-Forwarded-For` through a trusted proxy (the loopback peer).

mod common;

use common::*;
use reqwest::Response;
use serde_json::{json, Value};
use std::time::Duration;

const PROXY: (&str, &str) = ("trusted-proxies", "127.0.0.1,::1");

async fn login_from(s: &Server, email: &str, password: &str, ip: &str) -> Response {
    s.req(reqwest::Method::POST, "/auth/login")
        .header("x-forwarded-for", ip)
        .header("x-device-id", "dev")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Asserts a 429 with `Retry-After` (header and body) and returns the seconds.
async fn expect_429(r: Response, code: &str) -> u64 {
    assert_eq!(r.status(), 429);
    let header: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = expect_error(r, 429, code).await;
    assert_eq!(body["retry_after"].as_u64(), Some(header));
    assert!(header >= 1);
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_login_attempts_per_ip_per_minute() {
    let s = Server::start(&[PROXY]).await;
    s.register("ip@example.com", "password1").await;
    for _ in 0..5 {
        let r = login_from(&s, "ip@example.com", "password1", "203.0.113.7").await;
        assert_eq!(r.status(), 200);
    }
    let r = login_from(&s, "ip@example.com", "password1", "203.0.113.7").await;
    let wait = expect_429(r, "rate_limited").await;
    assert!(wait <= 60, "{wait}");
    // Another IP is not affected.
    let r = login_from(&s, "ip@example.com", "password1", "203.0.113.8").await;
    assert_eq!(r.status(), 200);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("auth_rate_limited_total{limit=\"login_ip\"} 1"),
        "{metrics}"
    );
    s.stop().await;
}

/// An address refused for now is answered before its request costs anything: not even a DPoP
/// proof's signature is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_address_is_answered_before_its_proof_is_checked() {
    let s = Server::start(&[PROXY]).await;
    for _ in 0..5 {
        let r = login_from(&s, "nobody@example.com", "password1", "203.0.113.20").await;
        expect_error(r, 401, "invalid_credentials").await;
    }
    let r = login_from(&s, "nobody@example.com", "password1", "203.0.113.20").await;
    expect_429(r, "rate_limited").await;
    for _ in 0..3 {
        let r = s
            .req(reqwest::Method::POST, "/auth/login")
            .header("x-forwarded-for", "203.0.113.20")
            .header("dpop", "not.a.proof")
            .json(&json!({"email": "nobody@example.com", "password": "password1"}))
            .send()
            .await
            .unwrap();
        expect_429(r, "rate_limited").await;
    }
    let metrics = s.metrics().await;
    assert!(!metrics.contains("auth_dpop_proofs_total{"), "{metrics}");
    assert!(
        metrics.contains("auth_rate_limited_total{limit=\"login_ip\"} 4"),
        "{metrics}"
    );
    s.stop().await;
}

/// `BATON_RATE_LIMITS=relaxed` (local development): ten times the attempts, still limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_limits_allow_ten_times_the_attempts_and_still_refuse() {
    let s = Server::start(&[PROXY, ("rate-limits", "relaxed")]).await;
    s.register("relaxed@example.com", "password1").await;
    for i in 0..50 {
        let r = login_from(&s, "relaxed@example.com", "password1", "203.0.113.9").await;
        assert_eq!(r.status(), 200, "attempt {i}");
    }
    let r = login_from(&s, "relaxed@example.com", "password1", "203.0.113.9").await;
    expect_429(r, "rate_limited").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_failed_logins_per_account_per_hour() {
    let s = Server::start(&[PROXY]).await;
    s.register("acct@example.com", "password1").await;
    let mut ip = 0;
    let mut next_ip = || {
        ip += 1;
        format!("198.51.100.{ip}")
    };
    // 4 failures, 1 success (resets the lockout streak), 4 failures, 1 success, 2 failures:
    // ten failures without ever five in a row. Every attempt comes from a device that never
    // signed in before (a known device has counters of its own, see lockout.rs).
    let mut device = 0;
    let mut attempt = |password: &'static str, ip: String| {
        device += 1;
        s.req(reqwest::Method::POST, "/auth/login")
            .header("x-forwarded-for", ip)
            .header("x-device-id", format!("stranger{device}"))
            .json(&json!({"email": "acct@example.com", "password": password}))
            .send()
    };
    for round in [4, 4, 2] {
        for _ in 0..round {
            let r = attempt("wrong-password", next_ip()).await.unwrap();
            expect_error(r, 401, "invalid_credentials").await;
        }
        if round == 4 {
            let r = attempt("password1", next_ip()).await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let r = attempt("password1", next_ip()).await.unwrap();
    let wait = expect_429(r, "rate_limited").await;
    assert!(wait > 60 && wait <= 3600, "{wait}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_consecutive_failures_lock_the_account_until_the_lock_ends() {
    let s = Server::start(&[PROXY, ("lockout-duration", "3s")]).await;
    s.register("lock@example.com", "password1").await;
    for i in 0..5 {
        let r = login_from(
            &s,
            "lock@example.com",
            "wrong-password",
            &format!("192.0.2.{i}"),
        )
        .await;
        expect_error(r, 401, "invalid_credentials").await;
    }
    // Even the right password is refused while locked.
    let r = login_from(&s, "lock@example.com", "password1", "192.0.2.99").await;
    let wait = expect_429(r, "account_locked").await;
    assert!(wait <= 3);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = login_from(&s, "lock@example.com", "password1", "192.0.2.100").await;
    assert_eq!(r.status(), 200, "the lock ended");
    let t = Tokens::from_json(r.json().await.unwrap());
    let ev = events(&s, &t.access).await;
    let locked = ev
        .iter()
        .find(|e| e["type"] == "account_locked")
        .expect("account_locked event");
    assert_eq!(locked["severity"], "critical");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_lock_lasts_fifteen_minutes() {
    let s = Server::start(&[PROXY]).await;
    s.register("long@example.com", "password1").await;
    for i in 0..5 {
        let _ = login_from(&s, "long@example.com", "nope-nope", &format!("192.0.2.{i}")).await;
    }
    let r = login_from(&s, "long@example.com", "password1", "192.0.2.50").await;
    let wait = expect_429(r, "account_locked").await;
    assert!((895..=900).contains(&wait), "{wait}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_refreshes_per_session_per_minute() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("d").await;
    let mut token = t.refresh;
    for _ in 0..60 {
        let r = s.refresh(&token, Some("d")).await;
        assert_eq!(r.status(), 200);
        token = Tokens::from_json(r.json().await.unwrap()).refresh;
    }
    let r = s.refresh(&token, Some("d")).await;
    let wait = expect_429(r, "rate_limited").await;
    assert!((1..=60).contains(&wait), "{wait}");
    // The refused attempt did not spend the token: it is refused again for the limit, not
    // as a reused token.
    let r = s.refresh(&token, Some("d")).await;
    expect_429(r, "rate_limited").await;
    // Another session has a limit of its own.
    let (_, other) = s.user("d").await;
    assert_eq!(s.refresh(&other.refresh, Some("d")).await.status(), 200);
    s.stop().await;
}

/// The refresh limit is the session's whichever instance answers: refreshes alternating
/// between two instances on one database are refused after sixty, by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_limit_holds_across_instances() {
    let a = Server::start(&[]).await;
    let b = Server::start_on(&a.database_url, &[]).await;
    let (_, t) = a.user("d").await;
    let mut token = t.refresh;
    for i in 0..60 {
        let s = if i % 2 == 0 { &a } else { &b };
        let r = s.refresh(&token, Some("d")).await;
        assert_eq!(r.status(), 200, "refresh {i}");
        token = Tokens::from_json(r.json().await.unwrap()).refresh;
    }
    expect_429(a.refresh(&token, Some("d")).await, "rate_limited").await;
    expect_429(b.refresh(&token, Some("d")).await, "rate_limited").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_devices_and_suspicious_activity_are_recorded() {
    let s = Server::start(&[PROXY]).await;
    s.register("sus@example.com", "password1").await;
    let mut last = None;
    for i in 0..7 {
        let r = s
            .req(reqwest::Method::POST, "/auth/login")
            .header("x-forwarded-for", format!("100.64.0.{i}"))
            .header("x-device-id", if i == 0 { "laptop" } else { "phone" })
            .json(&json!({"email": "sus@example.com", "password": "password1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        last = Some(Tokens::from_json(r.json().await.unwrap()));
    }
    let ev = events(&s, &last.unwrap().access).await;
    let new_devices: Vec<&Value> = ev.iter().filter(|e| e["type"] == "new_device").collect();
    assert_eq!(new_devices.len(), 2, "laptop and phone, once each");
    // The account's first device (laptop) is no warning; the phone after it is.
    let severity = |d: &str| {
        new_devices.iter().find(|e| e["device_id"] == d).unwrap()["severity"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(severity("laptop"), "info");
    assert_eq!(severity("phone"), "warning");
    let sus: Vec<&Value> = ev
        .iter()
        .filter(|e| e["type"] == "suspicious_activity")
        .collect();
    assert!(!sus.is_empty(), "6+ distinct IPs in an hour");
    assert!(sus[0]["detail"].as_str().unwrap().contains("different IPs"));
    assert_eq!(
        ev.iter().find(|e| e["type"] == "login_succeeded").unwrap()["ip"],
        "100.64.0.6"
    );
    let metrics = s.metrics().await;
    assert!(metrics.contains("auth_anomaly_events_total{type=\"suspicious_activity\"}"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_logins_an_hour_is_suspicious() {
    let s = Server::start(&[PROXY]).await;
    s.register("many@example.com", "password1").await;
    let mut last = None;
    for i in 0..11 {
        // Two IPs only, five logins each per minute at most.
        let r = login_from(
            &s,
            "many@example.com",
            "password1",
            &format!("100.64.1.{}", i % 3),
        )
        .await;
        assert_eq!(r.status(), 200, "login {i}");
        last = Some(Tokens::from_json(r.json().await.unwrap()));
    }
    let ev = events(&s, &last.unwrap().access).await;
    let sus = ev
        .iter()
        .find(|e| e["type"] == "suspicious_activity")
        .expect("recorded");
    assert!(
        sus["detail"].as_str().unwrap().contains("11 logins"),
        "{sus}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
    let s = Server::start(&[]).await;
    s.register("xff@example.com", "password1").await;
    // Untrusted: the header cannot dodge the per-IP limit.
    for i in 0..5 {
        let r = login_from(&s, "xff@example.com", "password1", &format!("10.9.9.{i}")).await;
        assert_eq!(r.status(), 200);
    }
    let r = login_from(&s, "xff@example.com", "password1", "10.9.9.200").await;
    expect_429(r, "rate_limited").await;
    s.stop().await;

    let s = Server::start(&[PROXY]).await;
    s.register("xff@example.com", "password1").await;
    let r = login_from(&s, "xff@example.com", "password1", "1.2.3.4, 127.0.0.1").await;
    let t = Tokens::from_json(r.json().await.unwrap());
    let sessions: Value = s
        .get_auth("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        sessions["sessions"][0]["ip"], "1.2.3.4",
        "rightmost untrusted address"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_off_disables_the_limits_and_nothing_else() {
    let s = Server::start(&[("rate-limits", "off")]).await;
    s.register("off@example.com", "password1").await;
    for _ in 0..12 {
        let r = login_from(&s, "off@example.com", "wrong-password", "1.1.1.1").await;
        expect_error(r, 401, "invalid_credentials").await;
    }
    let r = login_from(&s, "off@example.com", "password1", "1.1.1.1").await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    let mut token = t.refresh.clone();
    for _ in 0..65 {
        let r = s.refresh(&token, Some("dev")).await;
        assert_eq!(r.status(), 200);
        token = Tokens::from_json(r.json().await.unwrap()).refresh;
    }
    // Reuse detection is untouched.
    expect_error(
        s.refresh(&t.refresh, Some("dev")).await,
        401,
        "refresh_token_reused",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_two_instances() {
    let a = Server::start(&[PROXY]).await;
    let b = Server::start_on(&a.database_url, &[PROXY]).await;
    a.register("two@example.com", "password1").await;
    for i in 0..5 {
        let s = if i % 2 == 0 { &a } else { &b };
        let r = login_from(s, "two@example.com", "password1", "203.0.113.50").await;
        assert_eq!(r.status(), 200);
    }
    expect_429(
        login_from(&a, "two@example.com", "password1", "203.0.113.50").await,
        "rate_limited",
    )
    .await;
    expect_429(
        login_from(&b, "two@example.com", "password1", "203.0.113.50").await,
        "rate_limited",
    )
    .await;
    a.stop().await;
    b.stop().await;
}
