//! `cargo xtask bench` (or `cargo bench -p baton-server --bench load`): starts the release
//! `baton-server` as a separate process and drives it over loopback from this process.
//! Prints tables of figures; asserts nothing about speed.
//!
//! Environment: `BATON_BENCH_POSTGRES_URL` (an admin URL; a database is created per run) adds the
//! PostgreSQL and two-instance figures; `BATON_BENCH_SECONDS` sets each phase's length (default 5);
//! `BATON_BENCH_SERVER_BIN` measures another `baton-server` binary with the same load.
//!
//! Beside req/s and latencies, each workload shows the CPU time (user + system, from
//! `/proc/<pid>/stat`) spent per answered request over its measured phase only (sign-ins and
//! DPoP proofs are made before it starts): by the server process, on PostgreSQL by the
//! database backends serving it, and by this load generator ("load CPU"), which shares the
//! cores with them: its share is CPU the server could not have while it waited. Unlike req/s,
//! which swings with whatever else the machine runs, CPU per request compares two builds
//! fairly.
//!
//! `BATON_BENCH_ONLY=<text>` runs only the workloads whose name contains it (for a profiler
//! attached to the server: `perf record -p <pid>`), on every database configured.
//!
//! `BATON_BENCH_RATE_LIMITS` (default `off`) is the server's `BATON_RATE_LIMITS`: with
//! `relaxed`, a refresh also pays for its per-session limit, as in a deployment. The limits
//! then bound what a run may do: at most 50 sign-ins a minute from loopback and 600 refreshes
//! a minute per session (`BATON_BENCH_ONLY=", 16 concurrent" BATON_BENCH_SECONDS=1`).
//!
//! `BATON_BENCH_DPOP_KEY` (default `ed25519`) is the kind of the DPoP workloads' keys:
//! `ed25519`, as `baton-auth` makes them where the browser's WebCrypto has Ed25519, or `p256`,
//! as it makes them elsewhere.

use reqwest::Client;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench password 1";

#[path = "../tests/common/proof.rs"]
#[allow(dead_code, unreachable_pub)]
mod proof;

use proof::{Claims, ProofKey};

/// A signed-in virtual user: access token, refresh token, device id, and its DPoP key when the
/// session is bound to one.
type User = (String, String, String, Option<Arc<ProofKey>>);

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(database_url: &str) -> Server {
        Self::start_with(database_url, &[])
    }

    fn start_with(database_url: &str, env: &[(&str, &str)]) -> Server {
        // BATON_BENCH_SERVER_BIN measures another build (an earlier release, for comparisons).
        let bin = std::env::var("BATON_BENCH_SERVER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_baton-server").to_owned());
        let mut child = Command::new(bin)
            .env("BATON_BIND", "127.0.0.1:0")
            .env("BATON_DATABASE_URL", database_url)
            .env(
                "BATON_RATE_LIMITS",
                std::env::var("BATON_BENCH_RATE_LIMITS").unwrap_or_else(|_| "off".into()),
            )
            // Every client is on loopback here; in a deployment they come from many addresses.
            .env("BATON_MAX_CONNECTIONS_PER_ADDRESS", "0")
            // One deployment URL, so instances accept each other's tokens.
            .env("BATON_PUBLIC_URL", "http://baton.bench")
            // The correctness checks replay tokens on purpose; their warnings are expected.
            .env("BATON_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start baton-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_owned();
        Server { child, url }
    }

    /// Peak resident set size (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Latencies in microseconds, and the CPU time spent per answered request over the measured
/// phase: by the server process(es), and on PostgreSQL by the database's backends.
#[derive(Default)]
struct Stats {
    lat: Vec<u32>,
    errors: u64,
    elapsed: Duration,
    cpu: Option<Cpu>,
}

impl Stats {
    fn merge(mut self, o: Stats) -> Stats {
        self.lat.extend(o.lat);
        self.errors += o.errors;
        self
    }
    fn pct(&mut self, p: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        self.lat.sort_unstable();
        let i = ((self.lat.len() as f64 - 1.0) * p).round() as usize;
        self.lat[i] as f64 / 1000.0
    }
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn row(&mut self, name: &str) {
        let answered = self.lat.len().max(1) as f64;
        let per =
            |us: Option<f64>| us.map_or_else(|| "-".to_owned(), |v| format!("{:.0}", v / answered));
        let (server, db, load) = match &self.cpu {
            Some(c) => (per(Some(c.server_us)), per(c.db_us), per(Some(c.load_us))),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {name:<44} | {:>9.0} | {:>7.2} | {:>7.2} | {:>6} | {server:>11} | {db:>9} | {load:>9} |",
            self.rate(),
            self.pct(0.50),
            self.pct(0.99),
            self.errors
        );
    }
}

fn header(title: &str) {
    println!("\n{title}\n");
    println!(
        "| {:<44} | {:>9} | {:>7} | {:>7} | {:>6} | {:>11} | {:>9} | {:>9} |",
        "workload", "req/s", "p50 ms", "p99 ms", "errors", "server CPU", "DB CPU", "load CPU"
    );
    println!(
        "|{:-<46}|{:->11}|{:->9}|{:->9}|{:->8}|{:->13}|{:->11}|{:->11}|",
        "", "", "", "", "", "", "", ""
    );
}

/// CPU time over a phase, in microseconds: the server process(es), on PostgreSQL the
/// database's backends, and this load-generating process, which shares the machine's cores with
/// them (so its share weighs on their latencies). Columns "server CPU", "DB CPU" and "load CPU"
/// divide it by the answered requests.
struct Cpu {
    server_us: f64,
    db_us: Option<f64>,
    load_us: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// user + system time of a process (its threads included, living or ended), in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses, which may hold spaces): field 3 onwards.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// What a phase is measured on: the server processes, and the PostgreSQL database (its admin
/// URL and name) whose backends serve them.
#[derive(Clone, Default)]
struct Meter {
    pids: Vec<u32>,
    pg: Option<(String, String)>,
}

impl Meter {
    fn of(servers: &[&Server], pg: Option<(&str, &str)>) -> Meter {
        Meter {
            pids: servers.iter().map(|s| s.child.id()).collect(),
            pg: pg.map(|(a, d)| (a.to_owned(), d.to_owned())),
        }
    }

    /// Ticks now: the servers', and each database backend's by pid (a backend that ends within
    /// the phase is not counted; the servers keep their pools open).
    async fn sample(&self) -> (u64, Vec<(u32, u64)>, u64) {
        let load = cpu_ticks(std::process::id());
        let server = self.pids.iter().map(|p| cpu_ticks(*p)).sum();
        let mut backends = Vec::new();
        if let Some((admin, db)) = &self.pg {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let pids: Vec<i32> = sqlx::query_scalar(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
                )
                .bind(db)
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
                backends = pids
                    .into_iter()
                    .map(|p| (p as u32, cpu_ticks(p as u32)))
                    .collect();
            }
        }
        (server, backends, load)
    }

    fn between(
        &self,
        before: &(u64, Vec<(u32, u64)>, u64),
        after: &(u64, Vec<(u32, u64)>, u64),
    ) -> Cpu {
        let us = |ticks: u64| ticks as f64 * 1e6 / TICKS_PER_SECOND;
        let db = self.pg.as_ref().map(|_| {
            let ticks: u64 = after
                .1
                .iter()
                .map(|(pid, t)| {
                    let was = before
                        .1
                        .iter()
                        .find(|(p, _)| p == pid)
                        .map_or(0, |(_, t)| *t);
                    t.saturating_sub(was)
                })
                .sum();
            us(ticks)
        });
        Cpu {
            server_us: us(after.0.saturating_sub(before.0)),
            db_us: db,
            load_us: us(after.2.saturating_sub(before.2)),
        }
    }
}

fn client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

async fn register(c: &Client, url: &str, email: &str) {
    let r = c
        .post(format!("{url}/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 201 || r.status() == 409,
        "register: {}",
        r.status()
    );
}

/// A logged-in virtual user: (access token, refresh token); bound to `key` when given.
async fn session(
    c: &Client,
    url: &str,
    email: &str,
    device: &str,
    key: Option<&ProofKey>,
) -> (String, String) {
    let mut r = c
        .post(format!("{url}/auth/login"))
        .header("x-device-id", device)
        .json(&json!({"email": email, "password": PASSWORD}));
    if let Some(k) = key {
        r = r.header("dpop", k.proof(&post_claims("/auth/login")));
    }
    let v: Value = r.send().await.unwrap().json().await.unwrap();
    (
        v["access_token"].as_str().expect("login").to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// A proof's claims for a POST to the server's public URL (`BATON_PUBLIC_URL`).
fn post_claims(path: &str) -> Claims<'static> {
    Claims {
        method: "POST",
        url: match path {
            "/auth/login" => "http://baton.bench/auth/login",
            _ => "http://baton.bench/auth/refresh",
        },
        ..Claims::default()
    }
}

async fn sessions(c: &Client, url: &str, n: usize, tag: &str) -> Vec<User> {
    users(c, url, n, tag, false).await
}

/// The DPoP workloads' kind of key (`BATON_BENCH_DPOP_KEY`): true for P-256, false for Ed25519.
fn p256_keys() -> bool {
    match std::env::var("BATON_BENCH_DPOP_KEY").as_deref() {
        Err(_) | Ok("ed25519") => false,
        Ok("p256") => true,
        Ok(other) => panic!("BATON_BENCH_DPOP_KEY is `ed25519` or `p256`, not `{other}`"),
    }
}

/// What the DPoP workloads' names say of their keys.
fn key_kind() -> &'static str {
    if p256_keys() {
        "P-256 keys"
    } else {
        "Ed25519 keys"
    }
}

/// `n` sessions of one user; each bound to a DPoP key of its own with `dpop`.
async fn users(c: &Client, url: &str, n: usize, tag: &str, dpop: bool) -> Vec<User> {
    let email = format!("{tag}@bench.example");
    register(c, url, &email).await;
    let mut out = Vec::new();
    for i in 0..n {
        let device = format!("{tag}-dev-{i}");
        let key = dpop.then(|| {
            Arc::new(if p256_keys() {
                ProofKey::es256()
            } else {
                ProofKey::ed25519()
            })
        });
        let (a, r) = session(c, url, &email, &device, key.as_deref()).await;
        out.push((a, r, device, key));
    }
    out
}

/// Each virtual user refreshes with the token it was just given, for `secs`; `urls` are used
/// round-robin per request (several instances).
async fn refresh_load(
    c: &Client,
    urls: &[String],
    users: Vec<User>,
    secs: f64,
    meter: &Meter,
) -> Stats {
    // Bound sessions' proofs are made before the clock starts (as many as a session can use,
    // at 10,000 refreshes a second): the load generator shares the CPU with the server, and
    // the figure is the server's cost (the browser's is measured by the client benchmark).
    let per_user = (10_000.0 * secs / users.len() as f64).ceil() as usize;
    let users: Vec<_> = users
        .into_iter()
        .map(|(a, token, device, key)| {
            let proofs: Vec<String> = key.as_ref().map_or_else(Vec::new, |k| {
                (0..per_user)
                    .map(|_| k.proof(&post_claims("/auth/refresh")))
                    .collect()
            });
            (a, token, device, key, proofs)
        })
        .collect();
    let before = meter.sample().await;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks =
        users
            .into_iter()
            .enumerate()
            .map(|(u, (_, mut token, device, key, mut proofs))| {
                let c = c.clone();
                let urls = urls.to_vec();
                tokio::spawn(async move {
                    let mut s = Stats::default();
                    let mut i = u;
                    while Instant::now() < deadline {
                        let url = &urls[i % urls.len()];
                        i += 1;
                        let proof = key.as_ref().map(|k| {
                            proofs
                                .pop()
                                .unwrap_or_else(|| k.proof(&post_claims("/auth/refresh")))
                        });
                        let t = Instant::now();
                        let mut r = c
                            .post(format!("{url}/auth/refresh"))
                            .header("x-device-id", &device)
                            .json(&json!({"refresh_token": token}));
                        if let Some(p) = proof {
                            r = r.header("dpop", p);
                        }
                        let r = r.send().await;
                        match r {
                            Ok(r) if r.status() == 200 => {
                                let v: Value = r.json().await.unwrap();
                                token = v["refresh_token"].as_str().unwrap().to_owned();
                                s.lat.push(t.elapsed().as_micros() as u32);
                            }
                            _ => s.errors += 1,
                        }
                    }
                    s
                })
            });
    let mut total = Stats::default();
    for t in tasks.collect::<Vec<_>>() {
        total = total.merge(t.await.unwrap());
    }
    total.elapsed = started.elapsed();
    total.cpu = Some(meter.between(&before, &meter.sample().await));
    total
}

/// `/api/ping` with each user's access token, one task per user; a DPoP-bound user's proofs
/// (GET, the token's hash) are made before the clock starts, as for refreshes.
async fn ping_load(c: &Client, url: &str, users: Vec<User>, secs: f64, meter: &Meter) -> Stats {
    let per_user = (15_000.0 * secs / users.len() as f64).ceil() as usize;
    let users: Vec<_> = users
        .into_iter()
        .map(|(access, _, device, key)| {
            let proofs: Vec<String> = key.as_ref().map_or_else(Vec::new, |k| {
                (0..per_user)
                    .map(|_| k.proof(&ping_claims(&access)))
                    .collect()
            });
            (access, device, key, proofs)
        })
        .collect();
    let before = meter.sample().await;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = users
        .into_iter()
        .map(|(access, device, key, mut proofs)| {
            let c = c.clone();
            let url = format!("{url}/api/ping");
            tokio::spawn(async move {
                let mut s = Stats::default();
                while Instant::now() < deadline {
                    let proof = key.as_ref().map(|k| {
                        proofs
                            .pop()
                            .unwrap_or_else(|| k.proof(&ping_claims(&access)))
                    });
                    let t = Instant::now();
                    let r = c.get(&url).header("x-device-id", &device);
                    let r = match proof {
                        Some(p) => r
                            .header("authorization", format!("DPoP {access}"))
                            .header("dpop", p),
                        None => r.bearer_auth(&access),
                    };
                    match r.send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            s.lat.push(t.elapsed().as_micros() as u32);
                        }
                        _ => s.errors += 1,
                    }
                }
                s
            })
        })
        .collect();
    let mut total = Stats::default();
    for t in tasks {
        total = total.merge(t.await.unwrap());
    }
    total.elapsed = started.elapsed();
    total.cpu = Some(meter.between(&before, &meter.sample().await));
    total
}

fn ping_claims(access: &str) -> Claims<'_> {
    Claims {
        method: "GET",
        url: "http://baton.bench/api/ping",
        access_token: Some(access),
        ..Claims::default()
    }
}

async fn login_load(
    c: &Client,
    url: &str,
    email: &str,
    conc: usize,
    stop: Arc<AtomicBool>,
) -> Stats {
    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|i| {
            let c = c.clone();
            let url = format!("{url}/auth/login");
            let email = email.to_owned();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut s = Stats::default();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = c
                        .post(&url)
                        .header("x-device-id", format!("login-{i}"))
                        .json(&json!({"email": email, "password": PASSWORD}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            s.lat.push(t.elapsed().as_micros() as u32);
                        }
                        _ => s.errors += 1,
                    }
                }
                s
            })
        })
        .collect();
    let mut total = Stats::default();
    for t in tasks {
        total = total.merge(t.await.unwrap());
    }
    total.elapsed = started.elapsed();
    total
}

fn db_bytes(database_url: &str) -> Option<u64> {
    let path = database_url.strip_prefix("sqlite://")?;
    Some(
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok())
            .map(|m| m.len())
            .sum(),
    )
}

async fn pg_bytes(admin_url: &str, db: &str) -> Option<u64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.ok()?;
    let n: i64 = sqlx::query_scalar("SELECT pg_database_size($1)")
        .bind(db)
        .fetch_one(&mut conn)
        .await
        .ok()?;
    Some(n as u64)
}

/// Whether the workload `name` is to run (`BATON_BENCH_ONLY`).
fn wanted(name: &str) -> bool {
    std::env::var("BATON_BENCH_ONLY").map_or(true, |only| name.contains(only.as_str()))
}

/// Every figure for one database.
async fn suite(label: &str, database_url: &str, pg: Option<(&str, &str)>, secs: f64) {
    let server = Server::start(database_url);
    let url = server.url.clone();
    let meter = Meter::of(&[&server], pg);
    let c = client();
    header(&format!("### {label}"));
    for (conc, dpop) in [
        (1usize, false),
        (16, false),
        (64, false),
        (16, true),
        (64, true),
    ] {
        let name = match dpop {
            false => format!("refresh, {conc} concurrent sessions"),
            true => format!(
                "refresh with DPoP ({}), {conc} concurrent sessions",
                key_kind()
            ),
        };
        if wanted(&name) {
            let tag = format!("{}{conc}", if dpop { "d" } else { "r" });
            let users = users(&c, &url, conc, &tag, dpop).await;
            refresh_load(&c, std::slice::from_ref(&url), users, secs, &meter)
                .await
                .row(&name);
        }
    }
    // 64 sessions of one user, each with its own token (and key).
    for dpop in [false, true] {
        let name = match dpop {
            false => "/api/ping (token verification), 64 concurrent".to_owned(),
            true => format!(
                "/api/ping with DPoP (token and proof verification, {}), 64 concurrent",
                key_kind()
            ),
        };
        if wanted(&name) {
            let users = users(&c, &url, 64, if dpop { "pingd" } else { "ping" }, dpop).await;
            ping_load(&c, &url, users, secs, &meter).await.row(&name);
        }
    }
    if std::env::var("BATON_BENCH_ONLY").is_ok() {
        return;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let logins = tokio::spawn({
        let c = c.clone();
        let url = url.clone();
        let stop = stop.clone();
        async move { login_load(&c, &url, "r1@bench.example", 8, stop).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let users = sessions(&c, &url, 16, "mixed").await;
    // Server CPU per answered refresh here includes the logins' (argon2id).
    let mut mixed = refresh_load(&c, std::slice::from_ref(&url), users, secs, &meter).await;
    stop.store(true, Ordering::Relaxed);
    let mut logins = logins.await.unwrap();
    logins.row("login (argon2id), 8 concurrent");
    mixed.row("refresh, 16 sessions, while those logins run");

    // Database growth per 10,000 refreshes.
    let users = sessions(&c, &url, 16, "growth").await;
    let before = match pg {
        Some((admin, db)) => pg_bytes(admin, db).await,
        None => db_bytes(database_url),
    };
    let mut done = 0usize;
    let mut users = users;
    while done < 10_000 {
        let per = (10_000 - done).div_ceil(users.len()).min(200);
        let tasks = users.into_iter().map(|(a, mut token, device, key)| {
            let c = c.clone();
            let url = url.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    let v: Value = c
                        .post(format!("{url}/auth/refresh"))
                        .header("x-device-id", &device)
                        .json(&json!({"refresh_token": token}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    token = v["refresh_token"].as_str().unwrap().to_owned();
                }
                (a, token, device, key)
            })
        });
        let mut next = Vec::new();
        for t in tasks.collect::<Vec<_>>() {
            next.push(t.await.unwrap());
        }
        done += per * next.len();
        users = next;
    }
    let after = match pg {
        Some((admin, db)) => pg_bytes(admin, db).await,
        None => db_bytes(database_url),
    };
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "\n- database growth per 10,000 refreshes: {:.1} KiB ({} refreshes measured; sessions are one row each, the audit log adds one row per refresh)",
            (a.saturating_sub(b)) as f64 / 1024.0 * 10_000.0 / done as f64,
            done
        );
    }
    println!("- server peak RSS: {:.1} MiB", server.peak_rss_mib());
}

/// Two instances on one PostgreSQL: split load, then correctness checks across instances.
async fn two_instances(database_url: &str, pg: (&str, &str), secs: f64) {
    let a = Server::start(database_url);
    let b = Server::start(database_url);
    let urls = vec![a.url.clone(), b.url.clone()];
    let c = client();
    header("### Two instances on one PostgreSQL (requests alternate between them)");
    let users = sessions(&c, &a.url, 64, "two").await;
    refresh_load(&c, &urls, users, secs, &Meter::of(&[&a, &b], Some(pg)))
        .await
        .row("refresh, 64 sessions across 2 instances");

    // Correctness: 200 tokens, each refreshed concurrently on both instances, must yield one
    // successor each; replaying a token two rotations old on the other instance is detected.
    let users = sessions(&c, &a.url, 50, "race").await;
    let mut split_successors = 0;
    let mut detected = 0;
    for (_, token, device, _) in users {
        let send = |url: String, t: String, d: String, c: Client| async move {
            let r = c
                .post(format!("{url}/auth/refresh"))
                .header("x-device-id", d)
                .json(&json!({"refresh_token": t}))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["refresh_token"].as_str().map(str::to_owned)
        };
        let (x, y) = tokio::join!(
            send(a.url.clone(), token.clone(), device.clone(), c.clone()),
            send(b.url.clone(), token.clone(), device.clone(), c.clone())
        );
        let (x, y) = (x.expect("refresh on A"), y.expect("refresh on B"));
        if x != y {
            split_successors += 1;
        }
        let next = send(a.url.clone(), x.clone(), device.clone(), c.clone())
            .await
            .unwrap();
        let _ = next;
        let replay = c
            .post(format!("{}/auth/refresh", b.url))
            .header("x-device-id", &device)
            .json(&json!({"refresh_token": token}))
            .send()
            .await
            .unwrap();
        let v: Value = replay.json().await.unwrap();
        if v["error"]["code"] == "refresh_token_reused" {
            detected += 1;
        }
    }
    println!("\n- concurrent refreshes of one token split across the instances: 50 tokens, {split_successors} yielded two different successors (must be 0)");
    println!("- replays on the other instance detected as reuse: {detected} of 50 (must be 50)");
    println!(
        "- peak RSS: instance A {:.1} MiB, instance B {:.1} MiB",
        a.peak_rss_mib(),
        b.peak_rss_mib()
    );
}

/// Login time for an unknown email and for a wrong password, sequentially.
/// The refresh path with and without `BATON_EVENTS_FILE` (one line per refresh), on one fresh
/// SQLite database each, back to back.
async fn events_file_cost(dir: &std::path::Path, secs: f64) {
    header("### BATON_EVENTS_FILE on the refresh path (SQLite, 16 sessions)");
    let file = dir.join("events.jsonl");
    let file = file.to_str().unwrap();
    for (name, env) in [
        ("without an events file", vec![]),
        ("with BATON_EVENTS_FILE", vec![("BATON_EVENTS_FILE", file)]),
    ] {
        let db = format!(
            "sqlite://{}",
            dir.join(format!("events-{}.db", env.len())).display()
        );
        let server = Server::start_with(&db, &env);
        let c = client();
        let users = sessions(&c, &server.url, 16, "events").await;
        let meter = Meter::of(&[&server], None);
        refresh_load(&c, std::slice::from_ref(&server.url), users, secs, &meter)
            .await
            .row(&format!("refresh, 16 sessions, {name}"));
    }
    let lines = std::fs::read_to_string(file).map_or(0, |t| t.lines().count());
    println!("\n- lines written to the events file: {lines}");
}

async fn login_timing(database_url: &str) {
    let server = Server::start(database_url);
    let c = client();
    register(&c, &server.url, "timing@bench.example").await;
    let mut unknown = Stats::default();
    let mut wrong = Stats::default();
    for i in 0..200 {
        for (email, stats) in [
            (format!("nobody{i}@bench.example"), &mut unknown),
            ("timing@bench.example".to_owned(), &mut wrong),
        ] {
            let t = Instant::now();
            let r = c
                .post(format!("{}/auth/login", server.url))
                .json(&json!({"email": email, "password": "not the password"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
            stats.lat.push(t.elapsed().as_micros() as u32);
        }
    }
    println!(
        "\n### Login timing: unknown email vs wrong password (200 sequential samples each, ms)\n"
    );
    println!("| case | min | p10 | p50 | p90 | p99 | max | mean |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, s) in [
        ("unknown email", &mut unknown),
        ("wrong password", &mut wrong),
    ] {
        let mean = s.lat.iter().map(|v| *v as f64).sum::<f64>() / s.lat.len() as f64 / 1000.0;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {mean:.2} |",
            s.pct(0.0),
            s.pct(0.10),
            s.pct(0.50),
            s.pct(0.90),
            s.pct(0.99),
            s.pct(1.0)
        );
    }
}

/// 320 clients registering as fast as they can, each hanging up after 150 ms (abandoned
/// requests are what used to leave hashes running unbounded): peak RSS and what the clients got.
async fn register_flood(database_url: &str, secs: f64) {
    let server = Server::start(database_url);
    let at_start = server.peak_rss_mib();
    let c = Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let workers = (0..320).map(|w| {
        let (c, url) = (c.clone(), server.url.clone());
        async move {
            let (mut created, mut refused, mut abandoned, mut n) = (0u64, 0u64, 0u64, 0u64);
            while Instant::now() < stop {
                n += 1;
                let r = c
                    .post(format!("{url}/auth/register"))
                    .json(&json!({"email": format!("flood{w}-{n}@example.com"), "password": PASSWORD}))
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(201) => created += 1,
                    Ok(_) => refused += 1,
                    Err(_) => abandoned += 1,
                }
            }
            (created, refused, abandoned)
        }
    });
    let totals = futures::future::join_all(workers)
        .await
        .into_iter()
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    println!(
        "
### Register flood (SQLite, rate limits off, 320 clients hanging up after 150 ms, {secs} s)
"
    );
    println!(
        "- requests: {} created, {} refused at once (503, hashing queue full), {} abandoned by the client",
        totals.0, totals.1, totals.2
    );
    println!(
        "- server peak RSS: {at_start:.1} MiB before the flood, {:.1} MiB after",
        server.peak_rss_mib()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let secs: f64 = std::env::var("BATON_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("baton-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite = format!("sqlite://{}", dir.join("bench.db").display());
        suite("SQLite (embedded, WAL)", &sqlite, None, secs).await;
        let all = std::env::var("BATON_BENCH_ONLY").is_err();
        if all {
            events_file_cost(&dir, secs).await;
            login_timing(&format!("sqlite://{}", dir.join("timing.db").display())).await;
            register_flood(&format!("sqlite://{}", dir.join("flood.db").display()), secs).await;
        }
        if let Ok(admin) = std::env::var("BATON_BENCH_POSTGRES_URL") {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL");
            let base = admin.rsplit_once('/').unwrap().0.to_owned();
            for db in ["baton_bench", "baton_bench_two"] {
                sqlx::query(&format!("DROP DATABASE IF EXISTS {db}")).execute(&mut conn).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut conn).await.unwrap();
            }
            suite("PostgreSQL 15 (loopback)", &format!("{base}/baton_bench"), Some((&admin, "baton_bench")), secs).await;
            if all {
                two_instances(&format!("{base}/baton_bench_two"), (&admin, "baton_bench_two"), secs).await;
            }
        } else {
            println!("\n(PostgreSQL figures skipped: BATON_BENCH_POSTGRES_URL is not set; `cargo xtask bench` sets it)");
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
