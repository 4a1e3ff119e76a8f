//! `cargo xtask test`: every build first, then the suites in two lanes at once.
//!
//! The suites that share nothing run side by side: the server's own tests (on SQLite, then on
//! PostgreSQL: they share `target/tmp`, so one after the other) in one lane, the tests that
//! drive a browser or another language against a server of their own (pytest, the wasm client,
//! the end-to-end scenarios) in the other. Test executables run directly, not through
//! `cargo test`, so the one lane does not wait on the other's cargo lock. Each suite's output
//! goes to `target/test-logs/<suite>.log`; a failed suite's tail is printed at the end. Each
//! suite runs with a temporary folder of its own (`TMPDIR`), removed when the suite ends, so
//! what the tests and the browsers they start leave behind does not pile up in `/tmp`.

use crate::{build_servers, build_wasm, lint, npm_pack, pg, server, setup, util};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One test executable that cargo built, and the package directory cargo would run it in.
struct TestBinary {
    exe: PathBuf,
    dir: PathBuf,
}

/// Builds the tests of `packages` (`cargo test --no-run`) and returns their executables.
fn build_tests(packages: &[&str]) -> Result<Vec<TestBinary>> {
    let mut cmd = util::cargo();
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!("building the tests of {packages:?} failed");
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = msg["reason"] == "compiler-artifact" && msg["profile"]["test"] == true;
        if let (true, Some(exe), Some(manifest)) = (
            is_test,
            msg["executable"].as_str(),
            msg["manifest_path"].as_str(),
        ) {
            let dir = Path::new(manifest).parent().unwrap_or(Path::new("."));
            found.push(TestBinary {
                exe: exe.into(),
                dir: dir.into(),
            });
        }
    }
    if found.is_empty() {
        bail!("cargo built no test executables for {packages:?}");
    }
    Ok(found)
}

/// Runs each executable with `envs`, output appended to the suite's log.
fn run_binaries(bins: &[TestBinary], envs: &[(&str, String)], run: &SuiteRun) -> Result<()> {
    for b in bins {
        let mut cmd = Command::new(&b.exe);
        cmd.current_dir(&b.dir)
            .envs(envs.iter().map(|(k, v)| (k, v)));
        run_logged(&mut cmd, run)?;
    }
    Ok(())
}

/// Runs `cmd` in the suite's temporary folder, stdout and stderr appended to its log.
fn run_logged(cmd: &mut Command, run: &SuiteRun) -> Result<()> {
    let file = File::options().create(true).append(true).open(&run.log)?;
    cmd.env("TMPDIR", &run.tmp.0)
        .stdout(file.try_clone()?)
        .stderr(file);
    util::run(cmd)
}

/// A folder removed, with everything in it, when this value is dropped.
struct Scratch(PathBuf);

impl Scratch {
    /// A new empty folder `baton-<name>-<pid>` in the system's temporary folder (short, so
    /// that the Unix sockets browsers create inside it stay within the length limit).
    fn new(name: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("baton-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a suite runs with: its log file and its temporary folder.
struct SuiteRun {
    log: PathBuf,
    tmp: Scratch,
}

type Suite<'a> = (
    &'static str,
    Box<dyn FnOnce(&SuiteRun) -> Result<()> + Send + 'a>,
);

/// How one suite went.
struct Outcome {
    name: &'static str,
    took: Duration,
    log: PathBuf,
    error: Option<anyhow::Error>,
}

/// Runs `suites` one after the other, stopping at the first that fails.
fn lane(suites: Vec<Suite<'_>>, logs: &Path, outcomes: &Mutex<Vec<Outcome>>) {
    for (name, run) in suites {
        let log = logs.join(format!("{}.log", slug(name)));
        let _ = std::fs::remove_file(&log);
        println!("  started  {name} (log: {})", log.display());
        let t = Instant::now();
        let error = match Scratch::new(&slug(name)) {
            Ok(tmp) => run(&SuiteRun {
                log: log.clone(),
                tmp,
            })
            .err(),
            Err(e) => Some(e),
        };
        let took = t.elapsed();
        let failed = error.is_some();
        let state = if failed { "FAILED" } else { "ok" };
        println!("  {state:<8} {name} in {:.1} s", took.as_secs_f64());
        outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Outcome {
                name,
                took,
                log,
                error,
            });
        if failed {
            return;
        }
    }
}

/// A suite's name as a file name: lower case, words joined by `-`.
fn slug(name: &str) -> String {
    name.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

pub(crate) fn test() -> Result<()> {
    let env = setup::all(&setup::Needs::everything())?;
    let started = Instant::now();

    util::step("lint: rustfmt and clippy");
    lint()?;
    util::step("building every test, baton-server, the orders service and the npm package");
    let quick = build_tests(&["baton-core", "baton-verify", "xtask"])?;
    let server_tests = build_tests(&["baton-server"])?;
    build_servers()?;
    build_wasm(&env.wasm)?;
    let tgz = npm_pack()?;
    let built = started.elapsed();

    util::step("the suites, in two lanes at once");
    let logs = util::target().join("test-logs");
    std::fs::create_dir_all(&logs)?;
    let root = util::root();
    let server_bin = util::target().join("debug/baton-server");
    let outcomes = Mutex::new(Vec::new());

    let servers: Vec<Suite<'_>> = vec![
        (
            "baton-core, baton-verify, xtask",
            Box::new(|run: &SuiteRun| run_binaries(&quick, &[], run)),
        ),
        (
            "baton-server on SQLite",
            Box::new(|run: &SuiteRun| {
                // One database file per test server; the previous run's files go first.
                let _ = std::fs::remove_dir_all(util::target().join("tmp/db"));
                run_binaries(&server_tests, &[("BATON_TEST_DB", "sqlite".into())], run)
            }),
        ),
        (
            "baton-server on PostgreSQL",
            Box::new(|run: &SuiteRun| {
                let pg = pg::Cluster::start(&env.postgres)?;
                let envs = [
                    ("BATON_TEST_DB", "postgres".to_owned()),
                    ("BATON_TEST_POSTGRES_URL", pg.admin_url()),
                    ("BATON_TEST_PG_DATA", pg.data_dir().display().to_string()),
                ];
                run_binaries(&server_tests, &envs, run)
            }),
        ),
    ];
    let browsers: Vec<Suite<'_>> = vec![
        (
            "baton_verify (python/): pytest",
            Box::new(|run: &SuiteRun| {
                run_logged(
                    Command::new("/usr/bin/python3")
                        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
                        .current_dir(root.join("python"))
                        .env("BATON_SERVER_BIN", &server_bin),
                    run,
                )
            }),
        ),
        (
            "baton-client: wasm in Chromium",
            Box::new(|run: &SuiteRun| wasm_tests(&env, run)),
        ),
        (
            "end-to-end in Chromium",
            Box::new(|run: &SuiteRun| {
                run_logged(
                    Command::new("node")
                        .args(["--test", "--test-concurrency=1", "e2e/"])
                        .current_dir(root.join("tests"))
                        .env("BATON_SERVER_BIN", &server_bin)
                        .env(
                            "BATON_DEMO_API_BIN",
                            util::target().join("debug/examples/demo-api"),
                        )
                        .env("BATON_PACKAGE_TGZ", &tgz)
                        .env("CHROMIUM", &env.chromium),
                    run,
                )
            }),
        ),
    ];
    let suites = servers.len() + browsers.len();
    std::thread::scope(|s| {
        s.spawn(|| lane(servers, &logs, &outcomes));
        s.spawn(|| lane(browsers, &logs, &outcomes));
    });

    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut failed = Vec::new();
    for o in &outcomes {
        if let Some(e) = &o.error {
            util::step(&format!("{} FAILED: {e:#}", o.name));
            println!("  last lines of {}:", o.log.display());
            for line in tail(&o.log, 300) {
                println!("  | {line}");
            }
            failed.push(o.name);
        }
    }
    util::step("summary");
    println!("  {:>7.1} s  lint and builds", built.as_secs_f64());
    for o in &outcomes {
        println!("  {:>7.1} s  {}", o.took.as_secs_f64(), o.name);
    }
    println!(
        "  screenshots of the end-to-end tests: {}",
        util::target().join("e2e-artifacts").display()
    );
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    if outcomes.len() != suites {
        bail!("only {} of {suites} suites ran", outcomes.len());
    }
    Ok(())
}

/// The wasm client's tests in headless Chromium, against a baton-server of their own. The
/// test page is served by wasm-bindgen-test-runner on a port chosen here, so the server can
/// allow exactly that origin; the tests are built with the server's address in them.
fn wasm_tests(env: &setup::Env, run: &SuiteRun) -> Result<()> {
    let runner = format!("127.0.0.1:{}", server::free_port()?);
    let db = util::target().join("wasm-test.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let srv = server::ServerProcess::start(&[
        ("BATON_DATABASE_URL", format!("sqlite://{}", db.display())),
        ("BATON_ACCESS_TTL", "4s".into()),
        ("BATON_COOKIE_SECURE", "false".into()),
        ("BATON_CORS_ORIGINS", format!("http://{runner}")),
        ("BATON_RATE_LIMITS", "off".into()),
    ])?;
    let mut cmd = env.wasm.cargo(&["test", "-p", "baton-client"]);
    cmd.env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
        "wasm-bindgen-test-runner",
    )
    .env("CHROMEDRIVER", &env.chromedriver)
    .env("WASM_BINDGEN_TEST_TIMEOUT", "180")
    .env("WASM_BINDGEN_TEST_ADDRESS", &runner)
    .env("WASM_BINDGEN_TEST_NO_ORIGIN_ISOLATION", "1")
    .env("BATON_TEST_SERVER", &srv.url);
    run_logged(&mut cmd, run)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_suites_log_is_named_by_its_words() {
        assert_eq!(
            super::slug("baton_verify (python/): pytest"),
            "baton-verify-python-pytest"
        );
        assert_eq!(
            super::slug("baton-server on SQLite"),
            "baton-server-on-sqlite"
        );
    }

    #[test]
    fn a_suites_commands_get_its_temporary_folder_and_it_goes_when_the_suite_ends() {
        let tmp = super::Scratch::new("xtask-self-test").unwrap();
        let dir = tmp.0.clone();
        let log = dir.with_extension("log");
        let run = super::SuiteRun {
            log: log.clone(),
            tmp,
        };
        super::run_logged(
            std::process::Command::new("sh").args(["-c", "mktemp -d"]),
            &run,
        )
        .unwrap();
        let out = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        let made = std::path::PathBuf::from(out.trim());
        assert!(made.starts_with(&dir), "{made:?} is not in {dir:?}");
        assert!(made.is_dir());
        drop(run);
        assert!(!dir.exists());
        assert!(!made.exists());
    }
}
