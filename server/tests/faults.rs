//! Fault injection: cancelled requests, kill -9 under load, lock contention, floods of refused
//! and expensive requests, restarts with other settings. Each test states what an acknowledged
//! answer promises and checks it against what the database really holds.

mod common;

use common::*;
use serde_json::json;
use sqlx::Row;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Sends `GET /readyz` and hangs up at once, without reading the answer.
async fn readyz_and_hang_up(addr: std::net::SocketAddr) {
    if let Ok(mut sock) = tokio::net::TcpStream::connect(addr).await {
        let _ = sock
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: baton\r\n\r\n")
            .await;
        let _ = sock.flush().await;
        // Sometimes at once, sometimes a moment later: the probe is dropped at every await.
        if rand_bit() {
            tokio::task::yield_now().await;
        }
    }
}

fn rand_bit() -> bool {
    uuid::Uuid::new_v4().as_bytes()[0] & 1 == 1
}

/// Committed generations of sessions, read beside the server.
async fn committed_generations(db: &sqlx::AnyPool) -> HashMap<String, i64> {
    sqlx::query("SELECT id, generation FROM sessions")
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>("id"), r.get::<i64, _>("generation")))
        .collect()
}

/// Refreshes `t` in a chain until `stop`; returns the last acknowledged token.
async fn refresh_chain(s: &Server, mut token: String, device: &str, stop: Instant) -> String {
    while Instant::now() < stop {
        let r = s.refresh(&token, Some(device)).await;
        if r.status() == 200 {
            token = Tokens::from_json(r.json().await.unwrap()).refresh;
        }
    }
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_readiness_probes_never_leave_a_write_uncommitted() {
    let s = Server::start(&[("rate-limits", "off")]).await;
    let mut sessions = Vec::new();
    for i in 0..8 {
        let (_, t) = s.user(&format!("dev{i}")).await;
        sessions.push((format!("dev{i}"), t));
    }
    let stop = Instant::now() + Duration::from_secs(3);
    let chains = sessions
        .iter()
        .map(|(dev, t)| refresh_chain(&s, t.refresh.clone(), dev, stop));
    let probes = (0..4).map(|_| async {
        while Instant::now() < stop {
            readyz_and_hang_up(s.addr).await;
        }
    });
    let (acked, _) = tokio::join!(
        futures::future::join_all(chains),
        futures::future::join_all(probes)
    );
    // Every acknowledged rotation is visible to another connection: committed, not held in a
    // transaction that a later close would roll back.
    let db = open_db(&s.database_url).await;
    let committed = committed_generations(&db).await;
    for ((_, t), last) in sessions.iter().zip(&acked) {
        let acked_gen = token_generation(last);
        assert!(acked_gen > 1, "the chain made progress");
        assert_eq!(
            committed.get(&t.session_id).copied(),
            Some(acked_gen),
            "acknowledged rotations of {} are not committed",
            t.session_id
        );
    }
    // And the server is still ready and still writing.
    assert_eq!(
        s.req(reqwest::Method::GET, "/readyz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (dev, t) = &sessions[0];
    let r = s.refresh(&acked[0], Some(dev)).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from_json(r.json().await.unwrap());
    let committed = committed_generations(&db).await;
    assert_eq!(committed[&t.session_id], token_generation(&next.refresh));
    db.close().await;
    s.stop().await;
}

/// Sends a request and hangs up after `after` without reading the answer.
async fn send_and_hang_up(addr: std::net::SocketAddr, req: String, after: Duration) {
    if let Ok(mut sock) = tokio::net::TcpStream::connect(addr).await {
        let _ = sock.write_all(req.as_bytes()).await;
        tokio::time::sleep(after).await;
    }
}

fn post(path: &str, body: &serde_json::Value, device: &str, bearer: Option<&str>) -> String {
    let body = body.to_string();
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: baton\r\nContent-Type: application/json\r\n\
         X-Device-ID: {device}\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_up_during_any_write_leaves_no_transaction_open() {
    let s = Server::start(&[("rate-limits", "off")]).await;
    let (email, t) = s.user("dev").await;
    let stop = Instant::now() + Duration::from_secs(3);
    // Every kind of write, abandoned after 0 to 3 ms: at every await of its path sooner or
    // later.
    let abandon = (0..4).map(|w| {
        let (email, access) = (email.clone(), t.access.clone());
        let s = &s;
        async move {
            let mut n = 0u64;
            while Instant::now() < stop {
                n += 1;
                let req = match n % 5 {
                    0 => post(
                        "/auth/register",
                        &json!({"email": format!("h{w}-{n}@example.com"), "password": "correct horse"}),
                        "dev",
                        None,
                    ),
                    1 => post(
                        "/auth/login",
                        &json!({"email": email, "password": "correct horse"}),
                        "dev",
                        None,
                    ),
                    2 => post("/auth/login", &json!({"email": email, "password": "wrong one"}), "dev", None),
                    3 => post("/auth/logout", &json!({}), "other", Some(&access)),
                    _ => "GET /readyz HTTP/1.1\r\nHost: baton\r\n\r\n".to_owned(),
                };
                let after = Duration::from_micros(n * 7919 % 3000);
                send_and_hang_up(s.addr, req, after).await;
            }
        }
    });
    let (dev, other) = ("chain", s.user("chain").await.1);
    let chain = refresh_chain(&s, other.refresh.clone(), dev, stop);
    let (last, _) = tokio::join!(chain, futures::future::join_all(abandon));
    // A write after the storm is committed (visible to another connection) at once.
    let r = s.refresh(&last, Some(dev)).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from_json(r.json().await.unwrap());
    let db = open_db(&s.database_url).await;
    let committed = committed_generations(&db).await;
    assert_eq!(
        committed[&other.session_id],
        token_generation(&next.refresh)
    );
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(users >= 2);
    // Every committed account and session has the event that records it: a request dropped
    // halfway keeps both or neither.
    let unrecorded_users: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM audit_events e \
         WHERE e.user_id = u.id AND e.type = 'user_registered')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let unrecorded_sessions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM audit_events e \
         WHERE e.session_id = s.id AND e.type = 'login_succeeded')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((unrecorded_users, unrecorded_sessions), (0, 0));
    assert_eq!(
        s.req(reqwest::Method::GET, "/readyz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // No pooled connection is left inside a transaction (a request given up while its BEGIN
    // was on the wire): the next borrower's writes would run in it and never commit. A
    // transaction of a request still being answered ends within moments; a left one never.
    if s.state.store.backend == baton_server::store::Backend::Postgres {
        let open = left_in_transaction(&db, 40).await;
        assert_eq!(open, 0, "connections left inside a transaction");
    }
    db.close().await;
    s.stop().await;
}

/// One session's chain of refreshes against a server process that is killed meanwhile.
#[derive(Debug, Default)]
struct Chain {
    /// Refresh tokens acknowledged by a 200, in order.
    acked: Vec<String>,
    /// The last request sent without an answer: (presented token, Idempotency-Key).
    unanswered: Option<(String, String)>,
}

async fn chain_until_killed(
    http: reqwest::Client,
    url: String,
    first: String,
    dev: String,
) -> Chain {
    let mut chain = Chain::default();
    let mut token = first;
    loop {
        let key = uuid::Uuid::new_v4().to_string();
        let sent = http
            .post(format!("{url}/auth/refresh"))
            .header("x-device-id", &dev)
            .header("idempotency-key", &key)
            .json(&json!({ "refresh_token": token }))
            .send()
            .await;
        let body = match sent {
            Ok(r) if r.status() == 200 => r.json::<serde_json::Value>().await.ok(),
            Ok(r) => panic!("refresh answered {}", r.status()),
            Err(_) => None,
        };
        match body {
            Some(b) => {
                token = b["refresh_token"].as_str().unwrap().to_owned();
                chain.acked.push(token.clone());
            }
            None => {
                chain.unanswered = Some((token, key));
                return chain;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_refresh_load_loses_no_acknowledged_rotation_or_audit_row() {
    let db_url = fresh_database().await;
    let env = [("BATON_RATE_LIMITS", "off"), ("BATON_REUSE_GRACE", "1ms")];
    let server = Process::start(&db_url, &env);
    let http = reqwest::Client::new();
    let mut starts = Vec::new();
    for i in 0..16 {
        let email = format!("k{i}-{}@example.com", uuid::Uuid::new_v4().simple());
        let dev = format!("dev{i}");
        let r = http
            .post(format!("{}/auth/register", server.url))
            .json(&json!({"email": email, "password": "correct horse"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let t: serde_json::Value = http
            .post(format!("{}/auth/login", server.url))
            .header("x-device-id", &dev)
            .json(&json!({"email": email, "password": "correct horse"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = t["refresh_token"].as_str().unwrap().to_owned();
        starts.push((t["session_id"].as_str().unwrap().to_owned(), dev, first));
    }
    let chains: Vec<_> = starts
        .iter()
        .map(|(_, dev, first)| {
            tokio::spawn(chain_until_killed(
                http.clone(),
                server.url.clone(),
                first.clone(),
                dev.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    let mut done = Vec::new();
    for c in chains {
        done.push(c.await.unwrap());
    }

    let server = Process::start(&db_url, &env);
    let db = open_db(&db_url).await;
    let committed = committed_generations(&db).await;
    let mut total_acked = 0;
    for ((sid, dev, first), chain) in starts.iter().zip(&done) {
        total_acked += chain.acked.len();
        // One successor per generation: the acknowledged chain climbs one by one.
        let mut expected = token_generation(first);
        for t in &chain.acked {
            expected += 1;
            assert_eq!(
                token_generation(t),
                expected,
                "a skipped or repeated generation"
            );
        }
        let rotations = committed[sid] - 1;
        let acked = chain.acked.len() as i64;
        assert!(
            rotations == acked || rotations == acked + 1,
            "session {sid}: {acked} acknowledged rotations, {rotations} committed"
        );
        let events: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE session_id = $1 AND type = 'token_refreshed'",
        )
        .bind(sid)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(events, rotations, "session {sid}: audit rows vs rotations");

        // The client carries on: a rotation committed without its answer is recovered by
        // retrying the very request; otherwise its last token simply works.
        let (token, key) = if rotations == acked + 1 {
            chain.unanswered.clone().expect("the unanswered request")
        } else {
            let last = chain.acked.last().unwrap_or(first).clone();
            (last, uuid::Uuid::new_v4().to_string())
        };
        let r = http
            .post(format!("{}/auth/refresh", server.url))
            .header("x-device-id", dev)
            .header("idempotency-key", &key)
            .json(&json!({ "refresh_token": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "session {sid} lost after the crash");
    }
    assert!(total_acked >= 16, "the load ran ({total_acked} refreshes)");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_refresh_gets_the_same_successor_after_the_grace_window() {
    let s = Server::start(&[("reuse-grace", "1s")]).await;
    let (_, t) = s.user("phone").await;
    let r = s
        .refresh_keyed(&t.refresh, "phone", Some("attempt-1"))
        .await;
    assert_eq!(r.status(), 200);
    let lost = Tokens::from_json(r.json().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // The answer never arrived; the client sends the same request again.
    let r = s
        .refresh_keyed(&t.refresh, "phone", Some("attempt-1"))
        .await;
    assert_eq!(r.status(), 200);
    let again = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(again.refresh, lost.refresh, "the same successor");
    assert_ne!(again.access, lost.access);
    // A malformed key is refused, not ignored.
    let bad = s
        .refresh_keyed(&t.refresh, "phone", Some("has space"))
        .await;
    expect_error(bad, 400, "invalid_request").await;
    // Anyone else presenting the spent token (no key, or another one) is a thief.
    expect_error(
        s.refresh_keyed(&t.refresh, "phone", Some("attempt-2"))
            .await,
        401,
        "refresh_token_reused",
    )
    .await;
    expect_error(
        s.refresh_keyed(&again.refresh, "phone", None).await,
        401,
        "session_revoked",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_successor_was_used_is_theft() {
    let s = Server::start(&[("reuse-grace", "1s")]).await;
    let (_, t) = s.user("phone").await;
    let r = s.refresh_keyed(&t.refresh, "phone", Some("k1")).await;
    let next = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(
        s.refresh_keyed(&next.refresh, "phone", Some("k2"))
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    expect_error(
        s.refresh_keyed(&t.refresh, "phone", Some("k1")).await,
        401,
        "refresh_token_reused",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_outlive_a_restart_with_a_shorter_access_ttl() {
    let s = Server::start(&[("access-ttl", "10m")]).await;
    let (_, t) = s.user("dev").await;
    let db = s.database_url.clone();
    let r = s
        .req(reqwest::Method::POST, "/auth/logout")
        .bearer_auth(&t.access)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    s.stop().await;
    // Longer ago than the new lifetime and its margin; the old token still has minutes left.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let s = Server::start_on(&db, &[("access-ttl", "1s")]).await;
    expect_error(
        s.get_auth("/auth/me", &t.access).await,
        401,
        "token_revoked",
    )
    .await;
    expect_error(
        s.get_auth("/api/ping", &t.access).await,
        401,
        "token_revoked",
    )
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_logins_writes_almost_nothing() {
    let s = Server::start(&[]).await;
    let (email, _) = s.user("dev").await;
    let attempt = |email: String| {
        s.post(
            "/auth/login",
            json!({"email": email, "password": "wrong password"}),
            Some("dev"),
        )
    };
    let mut refused = 0;
    for i in 0..200 {
        let who = if i % 2 == 0 {
            email.clone()
        } else {
            format!("nobody{i}@example.com")
        };
        if attempt(who).await.status() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 190, "{refused} of 200 refused");
    let db = open_db(&s.database_url).await;
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE type = 'rate_limited'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(rows <= 2, "{rows} rate_limited rows for one refused IP");
    let hits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rate_hits")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(hits <= 20, "{hits} rate-limit rows");
    // Refusals are still counted.
    let metrics = s.metrics().await;
    assert!(metrics.contains("login_ip"), "{metrics}");
    db.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_ip() {
    let s = Server::start(&[]).await;
    for i in 0..10 {
        let r = s
            .post(
                "/auth/register",
                json!({"email": format!("r{i}@example.com"), "password": "correct horse"}),
                None,
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = s
        .post(
            "/auth/register",
            json!({"email": "r11@example.com", "password": "correct horse"}),
            None,
        )
        .await;
    assert!(r.headers().contains_key("retry-after"));
    expect_error(r, 429, "rate_limited").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_register_flood_of_abandoned_requests_keeps_memory_bounded() {
    let db = fresh_database().await;
    // 320 clients all on loopback: without the per-address cap, as if they came from many.
    let server = Process::start(
        &db,
        &[
            ("BATON_RATE_LIMITS", "off"),
            ("BATON_MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ],
    );
    let before = server.peak_rss_kib();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let stop = Instant::now() + Duration::from_secs(4);
    let workers = (0..320).map(|w| {
        let client = client.clone();
        let url = server.url.clone();
        async move {
            let mut n = 0;
            while Instant::now() < stop {
                n += 1;
                let _ = client
                    .post(format!("{url}/auth/register"))
                    .json(&json!({"email": format!("f{w}-{n}@example.com"), "password": "correct horse"}))
                    .send()
                    .await;
            }
        }
    });
    futures::future::join_all(workers).await;
    let peak = server.peak_rss_kib();
    eprintln!("register flood: peak RSS {peak} KiB (at start {before} KiB)");
    // argon2id takes 19 MiB a hash: unbounded hashing reaches gigabytes here. Bounded, the
    // growth is the hashing threads' buffers and what the allocator keeps of freed ones:
    // about 150 MiB alone, up to about 210 MiB while other suites load the machine.
    assert!(
        peak < before + 256 * 1024,
        "peak RSS {peak} KiB (at start {before} KiB)"
    );
    // Still serving once the flood stops (a queue still draining answers 503, Retry-After).
    let http = reqwest::Client::new();
    let served = eventually(Duration::from_secs(15), || async {
        http.post(format!("{}/auth/register", server.url))
            .json(&json!({"email": "after@example.com", "password": "correct horse"}))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .is_ok_and(|r| r.status() == 201)
    })
    .await;
    assert!(
        served.is_some(),
        "not serving registrations after the flood"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lock_timeouts_answer_503_with_retry_after() {
    if backend() != "postgres" {
        return; // SQLite's locked-file case is in outage.rs.
    }
    let s = Server::start(&[("request-timeout", "1s")]).await;
    let (_, t) = s.user("dev").await;
    // A second instance on the same database: nothing of the session is cached there.
    let other = Server::start_on(&s.database_url, &[("request-timeout", "1s")]).await;
    // Another client holds the sessions table.
    let mut locker = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&s.database_url).await.unwrap()
    };
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let calls = (0..6).map(|_| other.refresh(&t.refresh, Some("dev")));
    for r in futures::future::join_all(calls).await {
        assert!(r.headers().contains_key("retry-after"));
        expect_error(r, 503, "unavailable").await;
    }
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert_eq!(other.refresh(&t.refresh, Some("dev")).await.status(), 200);
    other.stop().await;
    s.stop().await;
}

/// Upgrading a database that has grown: a migration that takes longer than the statement
/// timeout of requests (40 % of `BATON_REQUEST_TIMEOUT`) still runs to the end, at start and
/// with `baton-server migrate`. Before, it was cancelled ("statement timeout") and the server
/// could not start on the upgraded release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_migration_is_not_cut_by_the_request_timeout() {
    if backend() != "postgres" {
        // SQLite has no statement timeout; its lock wait is covered by the lock tests.
        return;
    }
    let db_url = fresh_database().await;
    Server::start_on(&db_url, &[]).await.stop().await;
    // The database of an older release with many users: the last index not built yet.
    let db = open_db(&db_url).await;
    for sql in [
        "DROP INDEX users_created",
        "DELETE FROM _sqlx_migrations WHERE version = 20261203000010",
        "INSERT INTO users (id, email, password_hash, created_at, email_verified_at) \
         SELECT 'u' || n, 'u' || n || '@example.com', 'x', 0, n FROM generate_series(1, 600000) n",
    ] {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    // Building the index takes far longer than 40 ms.
    let config = config(&db_url, &[("request-timeout", "100ms")]);
    let started = Instant::now();
    let ran = baton_server::migrate(&config).await.expect("migrated");
    assert_eq!(ran, 1);
    assert!(
        started.elapsed() > Duration::from_millis(40),
        "too fast to prove anything"
    );
    let built: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'users_created'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(built, 1);
    // And the server starts on it.
    Server::start_on(&db_url, &[]).await.stop().await;
    db.close().await;
}

/// A server started before its database (containers started together): it waits for the
/// database to accept connections instead of exiting at once. Wrong settings still fail at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_waits_for_a_database_that_is_still_starting() {
    if backend() != "postgres" {
        // An embedded database has nothing to wait for.
        return;
    }
    let db_url = fresh_database().await;
    let (real_host, name) = db_url
        .strip_prefix("postgres://baton:baton@")
        .and_then(|rest| rest.split_once('/'))
        .expect("a test database URL");
    let real_host = real_host.to_owned();
    // A port nobody listens on yet: the database "starts" there three seconds later, after
    // the 2 s a request waits for a connection (40 % of the default 5 s request timeout).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let late_url = format!("postgres://baton:baton@127.0.0.1:{port}/{name}");
    let proxy = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let real_host = real_host.clone();
            tokio::spawn(async move {
                let mut db = tokio::net::TcpStream::connect(real_host).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut db).await;
            });
        }
    });
    let started = Instant::now();
    let s = Server::start_on(&late_url, &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(2900));
    let r = s
        .post(
            "/auth/register",
            json!({"email": "late@example.com", "password": "correct horse"}),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    s.stop().await;
    proxy.abort();
    // Wrong credentials are no reason to wait.
    let wrong = db_url.replacen("baton:baton@", "baton:wrong@", 1);
    let started = Instant::now();
    let err = baton_server::AppState::new(config(&wrong, &[]))
        .await
        .expect_err("wrong password refused");
    assert!(started.elapsed() < Duration::from_secs(5), "{err:#}");
}

/// PostgreSQL connections to the test database idle inside a transaction, asked up to `tries`
/// times 100 ms apart until there are none: a transaction still being answered or rolled back
/// ends within moments, one left open stays.
async fn left_in_transaction(db: &sqlx::AnyPool, tries: usize) -> i64 {
    let mut open = 0;
    for _ in 0..tries {
        open = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(db)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open
}

/// A transaction given up while its `BEGIN` is on the wire (a client hanging up at that
/// moment) leaves no pooled connection inside a transaction: on PostgreSQL, where the next
/// borrower's statements would run in it and never commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_given_up_while_it_begins_leaves_no_connection_inside_it() {
    let s = Server::start(&[]).await;
    let store = &s.state.store;
    if store.backend != baton_server::store::Backend::Postgres {
        s.stop().await;
        return;
    }
    let db = open_db(&s.database_url).await;
    // Polled, left for 0.1 to 2 ms (the pool's check of the connection, then BEGIN sent),
    // polled once more and dropped: sooner or later while BEGIN's answer is due. Checked after
    // each one, before a later borrower could end a transaction left open.
    let mut open = 0;
    for i in 0..60u64 {
        let mut begin = Box::pin(store.begin());
        // A future that finished is not polled again.
        if futures::poll!(&mut begin).is_pending() {
            tokio::time::sleep(Duration::from_micros(100 + i * 97 % 1900)).await;
            let _ = futures::poll!(&mut begin);
        }
        drop(begin);
        // A transaction still being rolled back ends within moments; a left one stays.
        open = left_in_transaction(&db, 20).await;
        if open != 0 {
            break;
        }
    }
    assert_eq!(open, 0, "pooled connections were left inside a transaction");
    db.close().await;
    s.stop().await;
}

/// A rotation whose event cannot be stored is not stored either (the batch's transaction, one
/// statement on PostgreSQL, two round trips on SQLite, is rolled back whole), and the
/// database's connection is fit for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_whose_event_fails_is_not_stored_and_the_next_one_is() {
    let s = Server::start(&[("rate-limits", "off")]).await;
    let (_, t) = s.user("dev").await;
    inject_failure(
        &s,
        "baton_test_refuse_events",
        "BEFORE INSERT",
        "audit_events",
        true,
    )
    .await;
    let r = s.refresh(&t.refresh, Some("dev")).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let db = open_db(&s.database_url).await;
    assert_eq!(committed_generations(&db).await[&t.session_id], 1);
    inject_failure(&s, "baton_test_refuse_events", "", "audit_events", false).await;
    // The token was not spent: it rotates now, and the rotation is committed.
    let r = s.refresh(&t.refresh, Some("dev")).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(token_generation(&next.refresh), 2);
    assert_eq!(committed_generations(&db).await[&t.session_id], 2);
    let r = s.refresh(&next.refresh, Some("dev")).await;
    assert_eq!(r.status(), 200);
    db.close().await;
    s.stop().await;
}

/// On SQLite, what a request commits reaches the database file itself soon: the write-ahead
/// log is copied back by a connection of its own every 200 ms, not by the writer once the log
/// has grown past 1,000 pages. A copy of the database file alone (what a backup of that one
/// file holds) has a refresh within the 3 s this test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commits_reach_the_database_file_soon() {
    if backend() != "sqlite" {
        return;
    }
    let s = Server::start(&[]).await;
    let (_, t) = s.user("dev").await;
    let r = s.refresh(&t.refresh, Some("dev")).await;
    assert_eq!(r.status(), 200);
    let file = s
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite file")
        .to_owned();
    let copies = std::env::temp_dir().join(format!("baton-wal-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&copies).unwrap();
    let mut n = 0;
    let took = eventually(Duration::from_secs(3), || {
        n += 1;
        let copy = copies.join(format!("copy-{n}.db"));
        std::fs::copy(&file, &copy).unwrap();
        let sid = t.session_id.clone();
        async move {
            let db = open_db(&format!("sqlite://{}", copy.display())).await;
            let generation: Option<i64> =
                sqlx::query_scalar("SELECT generation FROM sessions WHERE id = $1")
                    .bind(sid)
                    .fetch_optional(&db)
                    .await
                    .ok()
                    .flatten();
            db.close().await;
            generation == Some(2)
        }
    })
    .await;
    std::fs::remove_dir_all(&copies).unwrap();
    assert!(
        took.is_some(),
        "the refresh is not in the database file after 3 s"
    );
    s.stop().await;
}
