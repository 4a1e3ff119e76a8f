//! A throwaway PostgreSQL cluster for the tests, under `target/pg` (see `cluster_dir`), on a
//! free loopback port.

use crate::util::{self, run, step};
use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
pub(crate) struct Cluster {
    bindir: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres_user: bool,
    /// The cluster lives outside the checkout (see `cluster_dir`): removed when dropped, so
    /// clones in temporary directories do not leave clusters behind.
    outside_checkout: bool,
}

impl Cluster {
    /// Creates (first time) and starts the cluster; stops it on drop.
    pub(crate) fn start(bindir: &Path) -> Result<Self> {
        // PostgreSQL refuses to run as root: run it as the `postgres` account then.
        let as_postgres_user = util::is_root();
        let base = cluster_dir(as_postgres_user)?;
        let data = base.join("data");
        let port = free_port()?;
        let cluster = Self {
            bindir: bindir.to_path_buf(),
            data: data.clone(),
            port,
            as_postgres_user,
            outside_checkout: !base.starts_with(util::root()),
        };
        // A cluster left running by an interrupted run would hold the directory.
        if data.join("postmaster.pid").exists() {
            let _ = cluster.pg_ctl(&["stop", "-m", "immediate"]).status();
        }
        if !data.join("PG_VERSION").exists() {
            step("initdb: creating the test PostgreSQL cluster (once)");
            let pwfile = base.join("pwfile");
            std::fs::write(&pwfile, "baton\n")?;
            if as_postgres_user {
                run(Command::new("chown").arg("postgres").arg(&pwfile))?;
            }
            run(&mut cluster.as_owner(
                &bindir.join("initdb"),
                &[
                    "-D",
                    path_str(&data)?,
                    "-U",
                    "baton",
                    "--pwfile",
                    path_str(&pwfile)?,
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ))?;
        }
        step(&format!("starting PostgreSQL on 127.0.0.1:{port}"));
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
        );
        let log = base.join("server.log");
        run(&mut cluster.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            path_str(&log)?,
            "-o",
            &opts,
        ]))
        .with_context(|| format!("PostgreSQL did not start; see {}", log.display()))?;
        // Databases left by an interrupted run.
        cluster.drop_test_databases()?;
        Ok(cluster)
    }

    /// Drops the databases the server tests create (one per test server, `baton_test_*`), so
    /// the cluster does not grow by a run's worth of databases every run.
    pub(crate) fn drop_test_databases(&self) -> Result<()> {
        let url = self.admin_url();
        let out = self
            .psql(&url)
            .args([
                "-Atc",
                r"SELECT datname FROM pg_database WHERE datname LIKE 'baton\_test\_%'",
            ])
            .output()
            .context("running psql to list the test databases")?;
        if !out.status.success() {
            bail!(
                "psql could not list the test databases: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            let name = name.trim();
            // Only names the tests make (letters, digits, underscores) reach the statement.
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            run(self.psql(&url).args([
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ]))?;
        }
        Ok(())
    }

    fn psql(&self, url: &str) -> Command {
        let bundled = self.bindir.join("psql");
        let mut c = Command::new(if bundled.is_file() {
            bundled
        } else {
            PathBuf::from("psql")
        });
        c.args(["-X", "-v", "ON_ERROR_STOP=1", "-d", url]);
        c
    }

    /// A URL with rights to create databases (tests create one per test).
    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://baton:baton@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut full = vec!["-D", self.data.to_str().unwrap_or_default()];
        full.extend_from_slice(args);
        self.as_owner(&self.bindir.join("pg_ctl"), &full)
    }

    fn as_owner(&self, program: &Path, args: &[&str]) -> Command {
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program).args(args);
            c
        } else {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.drop_test_databases() {
            eprintln!("warning: test databases not dropped: {e:#}");
        }
        let _ = self
            .pg_ctl(&["stop", "-m", "fast", "-w"])
            .stdout(std::process::Stdio::null())
            .status();
        if self.outside_checkout {
            if let Some(base) = self.data.parent() {
                let _ = std::fs::remove_dir_all(base);
            }
        }
    }
}

/// Where the cluster lives: `target/pg`, or, when the `postgres` account cannot enter the
/// checkout (a clone in a 0700 temporary directory), a directory of its own in the system's
/// temporary directory, one per checkout.
fn cluster_dir(as_postgres_user: bool) -> Result<PathBuf> {
    let inside = util::target().join("pg");
    if !as_postgres_user {
        std::fs::create_dir_all(&inside)?;
        return Ok(inside);
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    util::root().hash(&mut h);
    let outside = std::env::temp_dir().join(format!("baton-pg-{:016x}", h.finish()));
    for dir in [inside, outside] {
        std::fs::create_dir_all(&dir)?;
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir))?;
        let usable = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(&dir)
            .status()?
            .success();
        if usable {
            return Ok(dir);
        }
    }
    bail!("no directory the postgres account can write for the test cluster")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn path_str(p: &Path) -> Result<&str> {
    match p.to_str() {
        Some(s) => Ok(s),
        None => bail!("path is not UTF-8: {}", p.display()),
    }
}
