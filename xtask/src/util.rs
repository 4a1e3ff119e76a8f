//! Small process helpers.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (a relative one from the current
/// directory, as cargo takes it), else `target/` of the checkout.
pub(crate) fn target() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    target_in(
        &root(),
        &cwd,
        std::env::var_os("CARGO_TARGET_DIR").as_deref(),
    )
}

fn target_in(root: &Path, cwd: &Path, set: Option<&std::ffi::OsStr>) -> PathBuf {
    match set.filter(|v| !v.is_empty()) {
        Some(dir) => cwd.join(dir),
        None => root.join("target"),
    }
}

/// The workspace root (the parent of `xtask/`), found at run time: from `CARGO_MANIFEST_DIR`,
/// which `cargo run` sets for the checkout it runs in, else upwards from the current
/// directory. Never the path the binary was built at: a copied or moved checkout works on
/// itself.
#[expect(
    clippy::exit,
    reason = "nothing can run outside a checkout; a message beats a panic"
)]
pub(crate) fn root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        let cwd = std::env::current_dir().unwrap_or_default();
        find_root(manifest.as_deref(), &cwd).unwrap_or_else(|| {
            eprintln!("xtask: run it inside a Baton checkout (cargo xtask ...)");
            std::process::exit(2)
        })
    })
    .clone()
}

/// The checkout: the parent of `manifest` (xtask's directory) when that is one, else the
/// nearest directory at or above `cwd` that has `Cargo.toml` and `xtask/Cargo.toml`.
fn find_root(manifest: Option<&std::path::Path>, cwd: &std::path::Path) -> Option<PathBuf> {
    let is_root = |d: &std::path::Path| {
        d.join("xtask/Cargo.toml").is_file() && d.join("Cargo.toml").is_file()
    };
    manifest
        .and_then(std::path::Path::parent)
        .filter(|d| is_root(d))
        .or_else(|| cwd.ancestors().find(|d| is_root(d)))
        .map(PathBuf::from)
}

pub(crate) fn step(msg: &str) {
    println!("\n==> {msg}");
}

/// A cargo command for the checkout. What `cargo xtask` set in xtask's own environment for
/// xtask (its manifest directory, its package's name and version) is not passed on: build
/// scripts that track such a variable (ring's tracks `CARGO_MANIFEST_DIR`) would otherwise see
/// it change between `cargo xtask ...` and a plain `cargo build`, and rebuild every time.
pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_by_cargo_for_xtask) {
            c.env_remove(key);
        }
    }
    c
}

/// The variables `cargo run` sets for the program it runs (not the user's settings such as
/// `CARGO_HOME`, `CARGO_TARGET_DIR` or `CARGO_BUILD_*`).
fn set_by_cargo_for_xtask(key: &str) -> bool {
    matches!(
        key,
        "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_MANIFEST_LINKS"
            | "CARGO_CRATE_NAME"
            | "CARGO_BIN_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "CARGO_RUSTC_CURRENT_DIR"
    ) || key.starts_with("CARGO_PKG_")
}

/// Children that must not outlive this process: on SIGINT, SIGTERM or SIGHUP to xtask (not only
/// Ctrl-C to the whole terminal), each gets SIGTERM, then xtask exits.
pub(crate) struct Children {
    pids: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
}

impl Children {
    /// Starts watching for the signals.
    pub(crate) fn watch() -> Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let pids = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let watched = pids.clone();
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let pids = watched.lock().unwrap_or_else(|e| e.into_inner()).clone();
                stop_all(&pids);
                std::process::exit(128 + sig);
            }
        });
        Ok(Self { pids })
    }

    /// Starts `cmd` as a child that dies with xtask.
    pub(crate) fn spawn(&self, cmd: &mut Command) -> Result<std::process::Child> {
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {cmd:?}"))?;
        self.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        Ok(child)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        let pids = self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        stop_all(&pids);
    }
}

/// SIGTERM to each process, then a moment for them to go.
fn stop_all(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Runs a command with inherited output; fails with the command line when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("command failed ({status}): {cmd:?}");
    }
    Ok(())
}

/// Runs a command and returns its stdout, or `None` when it cannot run or fails.
pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first of `candidates` that exists as a file, else a lookup on `PATH`.
pub(crate) fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_absolute() {
            if p.is_file() {
                return Some(p);
            }
        } else if let Some(dir) = std::env::var_os("PATH") {
            for d in std::env::split_paths(&dir) {
                let full = d.join(c);
                if full.is_file() {
                    return Some(full);
                }
            }
        }
    }
    None
}

pub(crate) fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

/// Installs Debian packages (with sudo when not root).
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    if find_program(&["apt-get"]).is_none() {
        bail!(
            "missing {packages:?} and no apt-get here: install them with your package manager \
             (see README.md, \"Requirements\")"
        );
    }
    step(&format!(
        "installing Debian packages: {}",
        packages.join(" ")
    ));
    let mut update = privileged("apt-get");
    update.args(["update", "-qq"]);
    run(&mut update)?;
    let mut install = privileged("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut install)
}

fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

/// `n` random bytes from the system, as hex (a secret for the demo's two processes).
pub(crate) fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Size of `gzip -9` of a file.
pub(crate) fn gzip_size(path: &std::path::Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .context("running gzip")?;
    if !out.status.success() {
        bail!("gzip failed on {}", path.display());
    }
    Ok(out.stdout.len() as u64)
}

/// Every file under `dir`, recursively, in a stable order (none when `dir` does not exist).
pub(crate) fn files_under(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::find_root;

    #[test]
    fn the_root_is_the_checkout_xtask_runs_in_not_where_it_was_built() {
        let base = std::env::temp_dir().join(format!("xtask-root-{}", std::process::id()));
        let (old, copy) = (base.join("old"), base.join("copy"));
        for d in [&old, &copy] {
            std::fs::create_dir_all(d.join("xtask/src")).unwrap();
            std::fs::write(d.join("Cargo.toml"), "[workspace]").unwrap();
            std::fs::write(d.join("xtask/Cargo.toml"), "[package]").unwrap();
        }
        // `cargo run` in the copy sets the copy's manifest directory.
        assert_eq!(
            find_root(Some(&copy.join("xtask")), &old),
            Some(copy.clone())
        );
        // Without it, the directory the command runs in decides, also from a subdirectory.
        assert_eq!(find_root(None, &copy.join("xtask/src")), Some(copy.clone()));
        assert_eq!(
            find_root(Some(&base.join("nowhere")), &copy),
            Some(copy.clone())
        );
        assert_eq!(find_root(None, &base), None);
        let _ = std::fs::remove_dir_all(&base);
    }
}

#[cfg(test)]
mod cargo_env_tests {
    use super::*;

    #[test]
    fn the_target_directory_is_cargos() {
        let (root, cwd) = (Path::new("/src/baton"), Path::new("/home/me"));
        assert_eq!(target_in(root, cwd, None), Path::new("/src/baton/target"));
        assert_eq!(
            target_in(root, cwd, Some("".as_ref())),
            Path::new("/src/baton/target")
        );
        assert_eq!(
            target_in(root, cwd, Some("/cache/t".as_ref())),
            Path::new("/cache/t")
        );
        assert_eq!(
            target_in(root, cwd, Some("out".as_ref())),
            Path::new("/home/me/out")
        );
    }

    #[test]
    fn cargo_runs_without_the_variables_cargo_set_for_xtask() {
        // As `cargo xtask` runs it: cargo set these for xtask.
        std::env::set_var("CARGO_MANIFEST_DIR", "/somewhere/xtask");
        std::env::set_var("CARGO_PKG_NAME", "xtask");
        std::env::set_var("CARGO_TARGET_DIR_FOR_THIS_TEST", "kept");
        let cmd = cargo();
        let removed: Vec<String> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            removed.contains(&"CARGO_MANIFEST_DIR".to_owned()),
            "{removed:?}"
        );
        assert!(
            removed.contains(&"CARGO_PKG_NAME".to_owned()),
            "{removed:?}"
        );
        assert!(!removed
            .iter()
            .any(|k| k == "CARGO_TARGET_DIR_FOR_THIS_TEST" || k == "CARGO_HOME"));
    }
}
