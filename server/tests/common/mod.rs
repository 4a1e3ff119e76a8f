//! Test harness: a real baton-server on a loopback port, over SQLite (a file) or PostgreSQL
//! (a fresh database per server on the cluster named by `BATON_TEST_POSTGRES_URL`).
#![allow(dead_code, unreachable_pub)]

pub mod authenticator;
pub mod github;
pub mod proof;
pub mod smtp;

use baton_server::config::Config;
use baton_server::AppState;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub fn backend() -> String {
    std::env::var("BATON_TEST_DB").unwrap_or_else(|_| "sqlite".into())
}

/// A database URL for a new, empty database on the selected backend.
pub async fn fresh_database() -> String {
    let name = format!("baton_test_{}", uuid::Uuid::new_v4().simple());
    match backend().as_str() {
        "postgres" => {
            let admin = std::env::var("BATON_TEST_POSTGRES_URL").expect(
                "BATON_TEST_DB=postgres needs BATON_TEST_POSTGRES_URL (cargo xtask test sets it)",
            );
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').expect("admin URL has a path").0;
            format!("{base}/{name}")
        }
        _ => {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("db");
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}", dir.join(format!("{name}.db")).display())
        }
    }
}

pub fn config(database_url: &str, overrides: &[(&str, &str)]) -> Config {
    use clap::Parser;
    let mut args = vec![
        "baton-server".to_owned(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        database_url.to_owned(),
    ];
    // Every instance of a test is reached at one URL, as in a deployment: restarts and second
    // instances (on other ports) keep accepting each other's tokens. ("public-url", "none")
    // leaves it unset, for the tests of the default issuer.
    if !overrides.iter().any(|(k, _)| *k == "public-url") {
        args.push("--public-url=http://baton.test".into());
    }
    for (k, v) in overrides {
        if (*k, *v) == ("public-url", "none") {
            continue;
        }
        args.push(format!("--{k}"));
        args.push((*v).to_owned());
    }
    Config::try_parse_from(args).expect("valid test config")
}

#[derive(Debug)]
pub struct Server {
    pub url: String,
    pub addr: SocketAddr,
    pub database_url: String,
    pub state: AppState,
    pub http: Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(overrides: &[(&str, &str)]) -> Server {
        let db = fresh_database().await;
        Self::start_on(&db, overrides).await
    }

    /// Starts an instance on an existing database (restarts, several instances).
    pub async fn start_on(database_url: &str, overrides: &[(&str, &str)]) -> Server {
        let mut cfg = config(database_url, overrides);
        let listener = tokio::net::TcpListener::bind(cfg.bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        cfg.bind = addr;
        let state = AppState::new(cfg).await.expect("server state");
        let background = baton_server::spawn_background(&state);
        let app = baton_server::app(state.clone());
        let opts = baton_server::serve::ServeOptions::new(&state);
        let serve = tokio::spawn(async move {
            baton_server::serve::serve(listener, app, opts, std::future::pending()).await;
        });
        Server {
            url: format!("http://{addr}"),
            addr,
            database_url: database_url.to_owned(),
            state,
            http: Client::builder().build().unwrap(),
            tasks: vec![background, serve],
        }
    }

    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.state.store.close().await;
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    pub async fn post(&self, path: &str, body: Value, device: Option<&str>) -> Response {
        let mut r = self.req(Method::POST, path).json(&body);
        if let Some(d) = device {
            r = r.header("X-Device-ID", d);
        }
        r.send().await.unwrap()
    }

    /// The `/metrics` text (the test client is a loopback peer).
    /// `GET path` without credentials, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The value of one series (`name{labels}`) in a `/metrics` text; 0 when absent.
    pub fn series(metrics: &str, series: &str) -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |n| n.trim().parse().expect("a counter value"))
    }

    pub async fn metrics(&self) -> String {
        let r = self.req(Method::GET, "/metrics").send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// `POST path` with `body` as the holder of the access token `token`.
    pub async fn post_auth(&self, path: &str, body: Value, token: &str) -> Response {
        self.req(Method::POST, path)
            .header("x-device-id", "dev-1")
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.req(Method::GET, path)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Value {
        let r = self
            .post(
                "/auth/register",
                json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "register {email}");
        r.json().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str, device: &str) -> Tokens {
        self.login_with(email, password, device, json!({})).await
    }

    pub async fn login_with(
        &self,
        email: &str,
        password: &str,
        device: &str,
        extra: Value,
    ) -> Tokens {
        let mut body = json!({"email": email, "password": password});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = self.post("/auth/login", body, Some(device)).await;
        assert_eq!(r.status(), StatusCode::OK, "login {email}");
        Tokens::from_json(r.json().await.unwrap())
    }

    /// A registered and logged-in user with a fresh email.
    pub async fn user(&self, device: &str) -> (String, Tokens) {
        let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
        self.register(&email, "correct horse").await;
        let t = self.login(&email, "correct horse", device).await;
        (email, t)
    }

    pub async fn refresh(&self, refresh_token: &str, device: Option<&str>) -> Response {
        self.post(
            "/auth/refresh",
            json!({"refresh_token": refresh_token}),
            device,
        )
        .await
    }

    /// A refresh from `device` carrying `Idempotency-Key: key` when given.
    pub async fn refresh_keyed(
        &self,
        refresh_token: &str,
        device: &str,
        key: Option<&str>,
    ) -> Response {
        let mut r = self
            .req(Method::POST, "/auth/refresh")
            .header("x-device-id", device)
            .json(&json!({"refresh_token": refresh_token}));
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        r.send().await.unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
    pub json: Value,
}

impl Tokens {
    pub fn from_json(v: Value) -> Self {
        Tokens {
            access: v["access_token"].as_str().unwrap().to_owned(),
            refresh: v["refresh_token"].as_str().unwrap_or_default().to_owned(),
            session_id: v["session_id"].as_str().unwrap().to_owned(),
            json: v,
        }
    }
}

/// Asserts the status and the error code of a response; returns the body.
pub async fn expect_error(r: Response, status: u16, code: &str) -> Value {
    let got = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.expect("error body is JSON");
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert!(body["error"]["message"].is_string());
    if status == 401 {
        // DPoP refusals challenge with the DPoP scheme (RFC 9449 7.1), the rest with Bearer.
        let scheme = if code == "dpop_proof_invalid" {
            r#"DPoP error="invalid_dpop_proof", algs="#
        } else {
            "Bearer error="
        };
        assert!(
            www.as_deref().is_some_and(|v| v.starts_with(scheme)),
            "401 {code} with WWW-Authenticate {www:?}"
        );
    }
    body
}

/// Polls `f` until it returns true or `within` passes; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() <= within {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

pub async fn events(server: &Server, access: &str) -> Vec<Value> {
    let r = server.get_auth("/auth/audit-log?limit=200", access).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["events"].as_array().unwrap().clone()
}

pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// The database of a server, opened beside it (what is really committed).
pub async fn open_db(database_url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await
        .expect("open the test database")
}

/// The payload of a JWT, unverified (the tests check what is in it).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&raw).expect("JSON claims")
}

/// The generation a refresh token carries: base64url(session id ‖ generation ‖ MAC).
pub fn token_generation(refresh_token: &str) -> i64 {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(refresh_token)
        .expect("refresh token is base64url");
    i64::from_be_bytes(raw[16..24].try_into().unwrap())
}

/// The `baton-server` binary in a process of its own.
#[derive(Debug)]
pub struct Process {
    pub child: std::process::Child,
    pub url: String,
}

impl Process {
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Process {
        Self::start_with(database_url, env, std::process::Stdio::inherit())
    }

    /// Like `start`, with the process's standard error going to `stderr`.
    pub fn start_with(
        database_url: &str,
        env: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> Process {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton-server"));
        cmd.env("BATON_BIND", "127.0.0.1:0")
            .env("BATON_DATABASE_URL", database_url)
            .env("BATON_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start baton-server");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Process { child, url }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// kill -9 and wait for the process to be gone.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// The peak resident memory of the process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Base32 (RFC 4648, no padding), as TOTP secrets are shown.
pub fn base32(s: &str) -> Vec<u8> {
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

/// A failure injected into the database of `s`: a trigger named `name` makes every `event`
/// (`BEFORE UPDATE OF revoked_at`, `BEFORE INSERT`) on `table` fail; `on: false` removes it.
pub async fn inject_failure(s: &Server, name: &str, event: &str, table: &str, on: bool) {
    let db = open_db(&s.database_url).await;
    let statements: Vec<String> = match (backend().as_str(), on) {
        ("postgres", true) => vec![
            format!(
                "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
            ),
            format!(
                "CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
            ),
        ],
        ("postgres", false) => vec![format!("DROP TRIGGER {name} ON {table}")],
        (_, true) => vec![format!(
            "CREATE TRIGGER {name} {event} ON {table} \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )],
        (_, false) => vec![format!("DROP TRIGGER {name}")],
    };
    for sql in statements {
        sqlx::query(&sql).execute(&db).await.unwrap();
    }
    db.close().await;
}
