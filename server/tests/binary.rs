//! The `baton-server` binary itself: flags, the `listening on` line, logs without secrets,
//! graceful shutdown.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_baton-server");

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, env) in [
        ("--bind", "BATON_BIND"),
        ("--database-url", "BATON_DATABASE_URL"),
        ("--access-ttl", "BATON_ACCESS_TTL"),
        ("--refresh-idle-ttl", "BATON_REFRESH_IDLE_TTL"),
        ("--session-max", "BATON_SESSION_MAX"),
        ("--remember-me-max", "BATON_REMEMBER_ME_MAX"),
        ("--reuse-grace", "BATON_REUSE_GRACE"),
        ("--device-binding", "BATON_DEVICE_BINDING"),
        ("--registration", "BATON_REGISTRATION"),
        ("--rate-limits", "BATON_RATE_LIMITS"),
        ("--issuer", "BATON_ISSUER"),
        ("--public-url", "BATON_PUBLIC_URL"),
        ("--introspection-token", "BATON_INTROSPECTION_TOKEN"),
        ("--audience", "BATON_AUDIENCE"),
        ("--cookie-secure", "BATON_COOKIE_SECURE"),
        ("--request-timeout", "BATON_REQUEST_TIMEOUT"),
        ("--trusted-proxies", "BATON_TRUSTED_PROXIES"),
        ("--header-read-timeout", "BATON_HEADER_READ_TIMEOUT"),
        ("--idle-timeout", "BATON_IDLE_TIMEOUT"),
        ("--max-connections", "BATON_MAX_CONNECTIONS"),
        ("--dpop-proofs-per-key", "BATON_DPOP_PROOFS_PER_KEY"),
        (
            "--max-connections-per-address",
            "BATON_MAX_CONNECTIONS_PER_ADDRESS",
        ),
        ("--shutdown-timeout", "BATON_SHUTDOWN_TIMEOUT"),
        ("--hash-queue", "BATON_HASH_QUEUE"),
        ("--refresh-recovery", "BATON_REFRESH_RECOVERY"),
        ("--key-encryption-key", "BATON_KEY_ENCRYPTION_KEY"),
        ("--key-encryption-key-file", "BATON_KEY_ENCRYPTION_KEY_FILE"),
        ("--migrate-on-start", "BATON_MIGRATE_ON_START"),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        assert!(help.contains(env), "{env} missing from --help");
    }
    for sub in ["keys", "migrate"] {
        assert!(
            help.contains(sub),
            "the {sub} subcommand is missing from --help"
        );
    }
    // And every setting the server has, whatever the list above forgets.
    use clap::CommandFactory;
    let cmd = baton_server::config::Config::command();
    for arg in cmd.get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        assert!(
            help.contains(&format!("--{long}")),
            "--{long} missing from --help"
        );
        let env = env.to_string_lossy();
        assert!(help.contains(env.as_ref()), "{env} missing from --help");
        assert!(
            env.starts_with("BATON_"),
            "{env}: settings are BATON_* variables"
        );
    }
    let settings = cmd
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .count();
    assert!(settings >= 35, "only {settings} settings found");
}

#[test]
fn bad_settings_fail_with_a_clear_message() {
    for (k, v) in [
        ("BATON_ACCESS_TTL", "soon"),
        ("BATON_DEVICE_BINDING", "maybe"),
        ("BATON_TRUSTED_PROXIES", "10.0.0.0/99"),
        ("BATON_DATABASE_URL", "mysql://x"),
        ("BATON_PUBLIC_URL", "auth.example.com"),
    ] {
        let out = Command::new(BIN)
            .env(k, v)
            .env("BATON_BIND", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{k}={v} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.is_empty() && !err.contains("panicked"), "{k}: {err}");
    }
}

/// The binary on a fresh database with `env`, its log (stderr) captured: the child and the
/// URL it printed.
async fn spawn_logging(env: &[(&str, &str)]) -> (std::process::Child, String) {
    let db = common::fresh_database().await;
    let mut cmd = Command::new(BIN);
    cmd.env("BATON_BIND", "127.0.0.1:0")
        .env("BATON_DATABASE_URL", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

/// SIGTERM, then the exit status and everything the child logged.
fn stop_for_logs(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    (status, logs)
}

/// `baton-server migrate` brings a database up to date and exits; with
/// `BATON_MIGRATE_ON_START=false` the server refuses a database that is behind, and starts on
/// one that is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_can_run_apart_from_starting() {
    let db = common::fresh_database().await;
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("BATON_DATABASE_URL", &db)
            .env("BATON_BIND", "127.0.0.1:0")
            .env("BATON_LOG", "warn");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // A fresh database with migrations off at start: refused, and told what to do.
    let out = run(&[], &[("BATON_MIGRATE_ON_START", "false")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("baton-server migrate"), "{err}");
    let out = run(&["migrate"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.starts_with("database migrated: 0 "), "{said}");
    let again = String::from_utf8_lossy(&run(&["migrate"], &[]).stdout).into_owned();
    assert!(
        again.starts_with("database migrated: 0 migration(s)"),
        "{again}"
    );
    // Up to date: it starts without migrating.
    let p = common::Process::start(&db, &[("BATON_MIGRATE_ON_START", "false")]);
    let r = reqwest::get(format!("{}/readyz", p.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    p.kill9();
}

/// Without BATON_ISSUER or BATON_PUBLIC_URL, tokens name the address the server listens on,
/// with the port it actually bound (here chosen by the system).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_issuer_is_the_address_listened_on() {
    let db = common::fresh_database().await;
    let p = common::Process::start(&db, &[]);
    assert!(!p.url.ends_with(":0"), "{}", p.url);
    let doc: serde_json::Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", p.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(doc["issuer"], p.url.as_str());
    p.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_prints_its_address_logs_no_secrets_and_stops_on_sigterm() {
    let (child, url) = spawn_logging(&[("BATON_LOG", "trace")]).await;
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );

    let http = reqwest::Client::new();
    let password = "very-secret-password";
    let r = http
        .post(format!("{url}/auth/register"))
        .json(&serde_json::json!({"email": "log@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let t: serde_json::Value = http
        .post(format!("{url}/auth/login"))
        .header("x-device-id", "d")
        .json(&serde_json::json!({"email": "log@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let access = t["access_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        // The second is a replay within grace.
        let _ = http
            .post(format!("{url}/auth/refresh"))
            .header("x-device-id", "d")
            .json(&serde_json::json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
    }
    let _ = http
        .get(format!("{url}/api/ping"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();

    let (status, logs) = stop_for_logs(child);
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    assert!(logs.contains("baton-server started"), "{logs}");
    for secret in [password, refresh.as_str(), access.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    // Not a terminal: no colour codes.
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escapes in a log that is not a terminal"
    );
}

/// `BATON_LOG_FORMAT=json`: every line is one JSON object; each request has an access line;
/// security events (a failed login, a lockout) are logged; no password, no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_with_access_lines_and_security_events() {
    let (child, url) = spawn_logging(&[("BATON_LOG", "info"), ("BATON_LOG_FORMAT", "json")]).await;
    let http = reqwest::Client::new();
    let password = "another-secret-password";
    let email = "json-log@example.com";
    let r = http
        .post(format!("{url}/auth/register"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for _ in 0..6 {
        let _ = http
            .post(format!("{url}/auth/login"))
            .header("x-device-id", "d")
            .json(&serde_json::json!({"email": email, "password": "wrong-password-1"}))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        http.get(format!("{url}/healthz?x=1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_, logs) = stop_for_logs(child);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["target"] == "baton_server::access" && l["path"] == "/healthz")
        .unwrap_or_else(|| panic!("no access line for /healthz:\n{logs}"));
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "GET");
    assert!(
        access["ms"].is_number() && access["client"] == "127.0.0.1",
        "{access}"
    );
    let security: Vec<&str> = lines
        .iter()
        .filter(|l| l["target"] == "baton_server::security")
        .filter_map(|l| l["event"].as_str())
        .collect();
    assert!(security.contains(&"login_failed"), "{security:?}");
    assert!(security.contains(&"account_locked"), "{security:?}");
    assert!(!logs.contains(password) && !logs.contains("wrong-password-1"));
}

/// The example systemd unit (deploy/baton-server.service) is valid for systemd, with this
/// binary in place of the installed one.
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/baton-server.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/baton-server\n"));
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("systemd-unit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("baton-server.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/baton-server", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd) is needed to check the unit");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// Standard error whose reader has stalled (a stuck pipe, a hung log collector) does not stop
/// the server: lines past the queue are dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_log_reader_does_not_stop_the_server() {
    let db = common::fresh_database().await;
    // Standard error piped and never read: the pipe fills after a few hundred lines.
    let server = common::Process::start_with(&db, &[("BATON_LOG", "info")], Stdio::piped());
    let url = server.url.clone();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    // One access-log line each: far more than the pipe and the queue hold.
    let workers = (0..32).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            for _ in 0..250 {
                let r = http.get(format!("{url}/healthz")).send().await;
                assert_eq!(r.expect("the server stopped answering").status(), 200);
            }
        })
    });
    for w in workers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped = common::Server::series(&metrics, "auth_log_lines_dropped_total");
    assert!(dropped > 1000, "{dropped} log lines dropped");
}

/// The binary started with `env` (and no other BATON_* setting of the caller's) until it
/// exits: its exit status and standard error.
fn start_failing(env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton-server"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BATON_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("BATON_BIND", "127.0.0.1:0")
        .envs(env.iter().copied());
    let out = cmd.stdin(Stdio::null()).output().expect("run baton-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_say_what_to_fix() {
    // A SQLite file in a directory that does not exist: the path, and what is wrong with it.
    let dir = std::env::temp_dir().join(format!("baton-missing-{}", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}/baton.db", dir.display());
    let (ok, err) = start_failing(&[("BATON_DATABASE_URL", &url)]);
    assert!(!ok);
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    // Mail half set up: every missing setting named at once.
    let (ok, err) = start_failing(&[
        ("BATON_DATABASE_URL", "sqlite::memory:"),
        ("BATON_SMTP_URL", "smtp://127.0.0.1:25"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("BATON_MAIL_FROM") && err.contains("BATON_MAGIC_LINK_URL"),
        "{err}"
    );
    assert_eq!(err.matches("BATON_SMTP_URL is set").count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_setting_counts_as_not_set() {
    let db = common::fresh_database().await;
    // As env files write an unset value: no events file, no introspection, no SMTP.
    let p = common::Process::start(
        &db,
        &[
            ("BATON_EVENTS_FILE", ""),
            ("BATON_INTROSPECTION_TOKEN", ""),
            ("BATON_SMTP_URL", ""),
        ],
    );
    let r = reqwest::get(format!("{}/readyz", p.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    p.kill9();
}
