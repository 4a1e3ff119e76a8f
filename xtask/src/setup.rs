//! Provisioning, each step only when what it provides is missing.

use crate::util::{self, apt_install, find_program, output, run, step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    pub(crate) browser: bool,
    pub(crate) postgres: bool,
}

impl Needs {
    pub(crate) fn everything() -> Self {
        Self {
            browser: true,
            postgres: true,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Env {
    pub(crate) wasm: WasmToolchain,
    pub(crate) chromium: PathBuf,
    pub(crate) chromedriver: PathBuf,
    pub(crate) postgres: PathBuf,
}

pub(crate) fn all(needs: &Needs) -> Result<Env> {
    step("setup: checking what is provisioned");
    let wasm = wasm_toolchain()?;
    wasm_bindgen_cli()?;
    let (chromium, chromedriver) = if needs.browser {
        chromium()?
    } else {
        (PathBuf::new(), PathBuf::new())
    };
    let postgres = if needs.postgres {
        postgres()?
    } else {
        PathBuf::new()
    };
    npm_tools()?;
    if needs.browser {
        python_jwt()?;
        nginx()?;
        zbar()?;
    }
    Ok(Env {
        wasm,
        chromium,
        chromedriver,
        postgres,
    })
}

/// How to compile for `wasm32-unknown-unknown` on this machine.
#[derive(Debug, Clone)]
pub(crate) enum WasmToolchain {
    /// rustup has the target and the standard library's source (`rust-src`).
    Rustup,
    /// Debian's `rustc-web` with std built from `rust-web-src`.
    DebianBuildStd { rustc: PathBuf, rustdoc: PathBuf },
}

/// Size settings of the package build, the same on every toolchain path: std is rebuilt from
/// source (`-Zbuild-std`), to abort on panic without unwinding or messages and without `Debug`
/// formatting, so the shipped size does not depend on which path setup took.
const SIZE_RUSTFLAGS: &str = r#"target.wasm32-unknown-unknown.rustflags=["-Zunstable-options","-Cpanic=immediate-abort","-Zfmt-debug=none","-Zlocation-detail=none"]"#;

impl WasmToolchain {
    /// The package build: `cargo` with std rebuilt and the size-only compiler settings.
    pub(crate) fn cargo_size(&self, args: &[&str]) -> Command {
        let mut c = self.cargo(args);
        if matches!(self, Self::Rustup) {
            c.arg("-Zbuild-std=std,panic_abort")
                .env("RUSTC_BOOTSTRAP", "1");
        }
        c.args(["--config", SIZE_RUSTFLAGS]);
        c
    }

    /// A cargo command for the wasm target; the native toolchain is left untouched.
    pub(crate) fn cargo(&self, args: &[&str]) -> Command {
        let mut c = util::cargo();
        c.args(args).args(["--target", WASM_TARGET]);
        if let Self::DebianBuildStd { rustc, rustdoc } = self {
            c.arg("-Zbuild-std=std,panic_abort")
                .env("RUSTC", rustc)
                .env("RUSTDOC", rustdoc)
                .env("RUSTC_BOOTSTRAP", "1");
        }
        c
    }
}

pub(crate) fn wasm_toolchain() -> Result<WasmToolchain> {
    // `BATON_WASM_TOOLCHAIN=debian` takes the Debian path even where rustup could serve, to
    // check that both paths build the same package.
    let force_debian = std::env::var("BATON_WASM_TOOLCHAIN").is_ok_and(|v| v == "debian");
    if !force_debian
        && rustup_has(&["target"], WASM_TARGET)
        && rustup_has(&["component"], "rust-src")
    {
        println!("  wasm target: rustup ({WASM_TARGET} and rust-src installed)");
        return Ok(WasmToolchain::Rustup);
    }
    if let Some(tc) = debian_toolchain() {
        println!("  wasm target: Debian rustc-web with -Zbuild-std");
        return Ok(tc);
    }
    if !force_debian && find_program(&["rustup"]).is_some() {
        step(&format!(
            "rustup target add {WASM_TARGET} && rustup component add rust-src (60 s limit each)"
        ));
        let add = |args: &[&str]| {
            Command::new("timeout")
                .arg("60")
                .arg("rustup")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if add(&["target", "add", WASM_TARGET])
            && add(&["component", "add", "rust-src"])
            && rustup_has(&["target"], WASM_TARGET)
            && rustup_has(&["component"], "rust-src")
        {
            return Ok(WasmToolchain::Rustup);
        }
        println!("  rustup could not download them; using Debian's rustc-web instead");
    }
    apt_install(&["rustc-web", "rust-web-src", "rust-web-llvm", "lld-22"])?;
    debian_toolchain().context(
        "rustc-web is installed but cannot build wasm32 (missing /usr/lib/rustlib/src or rust-lld)",
    )
}

/// Whether `rustup <kind> list --installed` lists `name` (a target, or a component such as
/// `rust-src`, listed without a target suffix).
fn rustup_has(kind: &[&str], name: &str) -> bool {
    output(
        Command::new("rustup")
            .args(kind)
            .args(["list", "--installed"]),
    )
    .is_some_and(|s| s.lines().any(|l| l.trim() == name))
}

fn debian_toolchain() -> Option<WasmToolchain> {
    let rustc = PathBuf::from("/usr/bin/rustc");
    let rustdoc = PathBuf::from("/usr/bin/rustdoc");
    let has_src = PathBuf::from("/usr/lib/rustlib/src/rust/library/std").is_dir();
    let has_lld = find_program(&["rust-lld"]).is_some();
    let targets = output(Command::new(&rustc).args(["--print", "target-list"]))?;
    (has_src && has_lld && rustdoc.is_file() && targets.lines().any(|l| l == WASM_TARGET))
        .then_some(WasmToolchain::DebianBuildStd { rustc, rustdoc })
}

/// The `wasm-bindgen` crate version pinned in Cargo.lock.
pub(crate) fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(util::root().join("Cargo.lock"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock")
}

/// `wasm-bindgen-cli` at exactly the locked version (the CLI refuses other versions' output).
pub(crate) fn wasm_bindgen_cli() -> Result<()> {
    let want = locked_wasm_bindgen_version()?;
    let have = output(Command::new("wasm-bindgen").arg("--version"));
    if have
        .as_deref()
        .is_some_and(|v| v.split_whitespace().nth(1) == Some(want.as_str()))
    {
        println!("  wasm-bindgen-cli {want}: present");
        return Ok(());
    }
    step(&format!(
        "cargo install wasm-bindgen-cli --version {want} (a few minutes, once)"
    ));
    run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &want, "--force"]))
}

/// Chromium and its driver; returns both paths.
pub(crate) fn chromium() -> Result<(PathBuf, PathBuf)> {
    let browser = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "/usr/bin/chromium",
    ];
    let driver = ["chromedriver", "/usr/bin/chromedriver"];
    if find_program(&browser).is_none() || find_program(&driver).is_none() {
        apt_install(&["chromium", "chromium-driver"])?;
    }
    let b = find_program(&browser).context("Chromium not found after installing")?;
    let d = find_program(&driver).context("chromedriver not found after installing")?;
    println!("  chromium: {}, chromedriver: {}", b.display(), d.display());
    Ok((b, d))
}

/// PostgreSQL server binaries; returns the directory with `initdb`, `pg_ctl` and `postgres`.
pub(crate) fn postgres() -> Result<PathBuf> {
    if let Some(dir) = postgres_bindir() {
        println!("  postgresql: {}", dir.display());
        return Ok(dir);
    }
    apt_install(&["postgresql"])?;
    postgres_bindir().context("PostgreSQL binaries not found after installing")
}

fn postgres_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BATON_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// nginx, the reverse proxy in front of Baton in docs/operations.md's example, which the
/// end-to-end tests run as written.
pub(crate) fn nginx() -> Result<()> {
    if Path::new(NGINX).is_file() {
        println!("  nginx: {NGINX}");
        return Ok(());
    }
    // nginx-light: TLS and the proxy module, no extras.
    apt_install(&["nginx-light"])?;
    if !Path::new(NGINX).is_file() {
        bail!("{NGINX} not found after installing nginx-light");
    }
    Ok(())
}

const NGINX: &str = "/usr/sbin/nginx";

/// zbar's `zbarimg`: the end-to-end tests read the demo's QR code with it, as a phone would.
pub(crate) fn zbar() -> Result<()> {
    if Path::new(ZBARIMG).is_file() {
        println!("  zbarimg: {ZBARIMG}");
        return Ok(());
    }
    apt_install(&["zbar-tools"])?;
    if !Path::new(ZBARIMG).is_file() {
        bail!("{ZBARIMG} not found after installing zbar-tools");
    }
    Ok(())
}

const ZBARIMG: &str = "/usr/bin/zbarimg";

/// Debian's Python with PyJWT and cryptography (the Python verifier, `python/`, and the
/// end-to-end test that verifies tokens the way a Python API would), FastAPI, uvicorn, pytest
/// and httpx (its tests and the FastAPI service of e2e 24), and aiosmtpd, the SMTP server the
/// email tests send to (`tests/smtp/sink.py`).
fn python_jwt() -> Result<()> {
    let ok = || {
        Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import jwt, cryptography, aiosmtpd, fastapi, uvicorn, pytest, httpx, requests",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok() {
        println!(
            "  python3 with PyJWT, cryptography, aiosmtpd, FastAPI, uvicorn, pytest and requests: present"
        );
        return Ok(());
    }
    apt_install(&[
        "python3",
        "python3-jwt",
        "python3-cryptography",
        "python3-aiosmtpd",
        "python3-fastapi",
        "python3-uvicorn",
        "python3-pytest",
        "python3-httpx",
        "python3-requests",
    ])?;
    if !ok() {
        bail!(
            "/usr/bin/python3 cannot import jwt, cryptography, aiosmtpd, fastapi, uvicorn, pytest, \
             httpx and requests after installing them"
        );
    }
    Ok(())
}

/// The JavaScript tools of `tests/package.json` (wasm-opt, Playwright, Vite), via `npm ci`
/// when the lockfile is newer than the installation.
pub(crate) fn npm_tools() -> Result<PathBuf> {
    let dir = util::root().join("tests");
    let stamp = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&lock)) {
        (Ok(s), Ok(l)) => s.modified()? >= l.modified()?,
        _ => false,
    };
    if fresh {
        println!("  npm tools (tests/node_modules): present");
    } else {
        if find_program(&["npm"]).is_none() {
            apt_install(&["nodejs", "npm"])?;
        }
        step("npm ci in tests/ (wasm-opt, Playwright, Vite)");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir))?;
    }
    Ok(dir.join("node_modules/.bin"))
}
