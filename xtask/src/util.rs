//! Small process helpers.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

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

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
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
