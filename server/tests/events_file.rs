//! `BATON_EVENTS_FILE`: committed audit events as JSON lines, without secrets, reopened on
//! SIGHUP (docs/operations.md, "Event file").

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn dir(tag: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("events-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn names(lines: &[Value]) -> Vec<(String, bool)> {
    lines
        .iter()
        .map(|l| {
            (
                l["event"].as_str().unwrap().to_owned(),
                l["success"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Waits until the file holds at least `n` lines.
async fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    let found = eventually(Duration::from_secs(5), || async { lines(path).len() >= n }).await;
    assert!(found.is_some(), "{} lines, expected {n}", lines(path).len());
    lines(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_event_is_a_json_line_without_secrets() {
    let d = dir("lines");
    let path = d.join("events.jsonl");
    let file = path.to_str().unwrap();
    let s = Server::start(&[("events-file", file), ("reuse-grace", "1ms")]).await;
    let email = format!("e{}@example.com", uuid::Uuid::new_v4().simple());
    s.register(&email, "correct horse").await;
    let r = s
        .post(
            "/auth/login",
            json!({"email": email, "password": "wrong password 1"}),
            Some("dev-1"),
        )
        .await;
    assert_eq!(r.status(), 401);
    let t = s.login(&email, "correct horse", "dev-1").await;
    let r = s.refresh(&t.refresh, Some("dev-1")).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from_json(r.json().await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The spent token again: theft, the session is revoked.
    let r = s.refresh(&t.refresh, Some("dev-1")).await;
    assert_eq!(r.status(), 401);

    let got = wait_lines(&path, 6).await;
    let events = names(&got);
    for expected in [
        ("auth.registered", true),
        ("auth.login", false),
        ("auth.login", true),
        ("token.refreshed", true),
        ("token.reused", false),
    ] {
        assert!(
            events.contains(&(expected.0.to_owned(), expected.1)),
            "{expected:?} in {events:?}"
        );
    }
    let user_id = t.json["user"]["id"].as_str().unwrap();
    for l in &got {
        let ts = l["timestamp"].as_str().unwrap();
        humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
        assert!(l["metadata"]["type"].is_string() && l["metadata"]["severity"].is_string());
        if l["event"] != "auth.registered" {
            assert_eq!(l["user_id"], user_id, "{l}");
        }
    }
    // No password, refresh or access token in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        "correct horse",
        "wrong password 1",
        t.refresh.as_str(),
        next.refresh.as_str(),
        t.access.as_str(),
    ] {
        assert!(!text.contains(secret), "the file contains a secret");
    }
    assert!(s
        .metrics()
        .await
        .contains("auth_events_file_dropped_total 0"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_the_file_for_rotation() {
    let d = dir("rotate");
    let path = d.join("events.jsonl");
    let db = format!("sqlite://{}", d.join("baton.db").display());
    let p = Process::start(&db, &[("BATON_EVENTS_FILE", path.to_str().unwrap())]);
    let http = reqwest::Client::new();
    let email = format!("r{}@example.com", uuid::Uuid::new_v4().simple());
    let creds = json!({"email": email, "password": "correct horse"});
    let post = |path: &'static str| {
        http.post(format!("{}{path}", p.url))
            .header("x-device-id", "dev-1")
            .json(&creds)
            .send()
    };
    assert_eq!(post("/auth/register").await.unwrap().status(), 201);
    assert_eq!(post("/auth/login").await.unwrap().status(), 200);
    let before = wait_lines(&path, 3).await.len();
    // Rotation: the file is moved away, then the server is told.
    let rotated = d.join("events.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    p.signal("HUP");
    let reopened = eventually(Duration::from_secs(5), || async { path.exists() }).await;
    assert!(reopened.is_some(), "no new file after SIGHUP");
    assert_eq!(post("/auth/login").await.unwrap().status(), 200);
    let after = wait_lines(&path, 1).await;
    assert!(names(&after).contains(&("auth.login".into(), true)));
    assert_eq!(
        lines(&rotated).len(),
        before,
        "the rotated file got no more lines"
    );
    p.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_path_stops_the_server_at_start() {
    let db = fresh_database().await;
    let cfg = config(
        &db,
        &[("events-file", "/nonexistent-baton-dir/events.jsonl")],
    );
    let err = baton_server::AppState::new(cfg).await.unwrap_err();
    assert!(err.to_string().contains("BATON_EVENTS_FILE"), "{err}");
}
