//! Fast failure: with the database locked (SQLite) or frozen (PostgreSQL under SIGSTOP), every
//! endpoint answers within `BATON_REQUEST_TIMEOUT` + 1 s, with 503 `unavailable` and
//! `Retry-After` where it needs the database, never a hang and never a 500; `/readyz` says 503;
//! service resumes without a restart when the database is back.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

const TIMEOUT: &str = "1s";
const BOUND: Duration = Duration::from_millis(2_000); // timeout + 1 s

/// Sends every kind of request and checks the bound and the answers. With `reads_work` (a
/// SQLite file whose write lock is taken: WAL readers are not blocked), the read-only endpoints
/// may still answer 200.
async fn everything_fails_fast(s: &Server, t: &Tokens, reads_work: bool) {
    let checks: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "login",
            s.req(Method::POST, "/auth/login")
                .header("x-device-id", "d")
                .json(&json!({"email": "x@example.com", "password": "password1"})),
        ),
        (
            "register",
            s.req(Method::POST, "/auth/register")
                .json(&json!({"email": "new@example.com", "password": "password1"})),
        ),
        (
            "refresh",
            s.req(Method::POST, "/auth/refresh")
                .header("x-device-id", "d")
                .json(&json!({"refresh_token": t.refresh})),
        ),
        ("me", s.req(Method::GET, "/auth/me").bearer_auth(&t.access)),
        (
            "sessions",
            s.req(Method::GET, "/auth/sessions").bearer_auth(&t.access),
        ),
        (
            "audit",
            s.req(Method::GET, "/auth/audit-log").bearer_auth(&t.access),
        ),
        (
            "logout-all",
            s.req(Method::POST, "/auth/logout-all")
                .bearer_auth(&t.access),
        ),
        ("readyz", s.req(Method::GET, "/readyz")),
    ];
    let runs = checks.into_iter().map(|(name, req)| async move {
        let started = Instant::now();
        let r = req.send().await.unwrap();
        (name, started.elapsed(), r)
    });
    for (name, took, r) in futures::future::join_all(runs).await {
        assert!(took <= BOUND, "{name} took {took:?}");
        if reads_work && ["me", "sessions", "audit"].contains(&name) && r.status() == 200 {
            continue;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{name}");
        assert!(
            r.headers().contains_key("retry-after"),
            "{name} without Retry-After"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{name}");
        assert!(body["retry_after"].as_u64().is_some());
    }
    // Token verification needs no database: the API keeps answering.
    let started = Instant::now();
    assert_eq!(s.get_auth("/api/ping", &t.access).await.status(), 200);
    assert!(started.elapsed() <= BOUND);
    assert_eq!(
        s.req(Method::GET, "/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn service_resumed(s: &Server, t: &Tokens) {
    let back = eventually(Duration::from_secs(10), || async {
        s.req(Method::GET, "/readyz").send().await.unwrap().status() == 200
    })
    .await;
    assert!(back.is_some(), "/readyz did not recover");
    let r = s.refresh(&t.refresh, Some("d")).await;
    assert_eq!(r.status(), 200, "refresh works again");
    assert_eq!(s.get_auth("/auth/me", &t.access).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_sqlite_file_fails_fast_and_recovers() {
    if backend() != "sqlite" {
        return; // The PostgreSQL outage test below covers that backend.
    }
    use sqlx::{Connection, Executor};
    let s = Server::start(&[("request-timeout", TIMEOUT)]).await;
    let (_, t) = s.user("d").await;
    let path = s.database_url.trim_start_matches("sqlite://").to_owned();
    // Another connection (a backup job, an admin's shell) takes the write lock and keeps it.
    let mut locker = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    locker.execute("PRAGMA busy_timeout = 5000").await.unwrap();
    locker.execute("BEGIN IMMEDIATE").await.unwrap();
    locker
        .execute("UPDATE users SET failed_logins = failed_logins")
        .await
        .unwrap();
    everything_fails_fast(&s, &t, true).await;
    locker.execute("ROLLBACK").await.unwrap();
    locker.close().await.unwrap();
    service_resumed(&s, &t).await;
    s.stop().await;
}

/// PIDs of a PostgreSQL cluster: the postmaster and its children.
fn cluster_pids(data_dir: &str) -> Vec<String> {
    let pidfile = std::fs::read_to_string(format!("{data_dir}/postmaster.pid")).unwrap();
    let postmaster = pidfile.lines().next().unwrap().trim().to_owned();
    let mut pids = vec![postmaster.clone()];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command name: state, ppid, ...
        if let Some(rest) = stat.rsplit(')').next() {
            let ppid = rest.split_whitespace().nth(1).unwrap_or_default();
            if ppid == postmaster {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    pids
}

/// Signals every process; one that has exited meanwhile (a backend of a connection closing as
/// the list was taken) needs no signal.
fn signal(pids: &[String], sig: &str) {
    for pid in pids {
        let ok = std::process::Command::new("kill")
            .arg(sig)
            .arg(pid)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
        assert!(ok || gone, "kill {sig} {pid} failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_postgres_fails_fast_and_recovers() {
    if backend() != "postgres" {
        return; // The SQLite lock test above covers that backend.
    }
    let data = std::env::var("BATON_TEST_PG_DATA")
        .expect("BATON_TEST_PG_DATA names the test cluster's data directory (cargo xtask test)");
    let s = Server::start(&[("request-timeout", TIMEOUT)]).await;
    let (_, t) = s.user("d").await;
    let pids = cluster_pids(&data);
    signal(&pids, "-STOP");
    // Resume even if an assertion fails, so later tests still have a database.
    struct Resume(Vec<String>);
    impl Drop for Resume {
        fn drop(&mut self) {
            signal(&self.0, "-CONT");
        }
    }
    let resume = Resume(pids);
    everything_fails_fast(&s, &t, false).await;
    drop(resume);
    service_resumed(&s, &t).await;
    s.stop().await;
}
