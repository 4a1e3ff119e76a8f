//! `cargo xtask <command>`: Baton's one entry point for setup, build, demo, tests and benchmarks.
//!
//! Everything it provisions is installed only when missing, so a second run takes seconds.
//! Shell-outs are limited to the tools themselves (cargo, rustup, apt-get, npm, PostgreSQL).

mod mailbox;
mod minify;
mod pg;
mod server;
mod setup;
mod testing;
mod util;

use anyhow::{bail, Context, Result};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup        provision the wasm toolchain, wasm-bindgen-cli, Chromium and PostgreSQL (idempotent)
  test         run every test: baton-core, baton-verify, baton-server on SQLite and PostgreSQL, the wasm client
               in headless Chromium, and the end-to-end browser tests
  demo         build the npm package, start baton-server (embedded SQLite) serving demo-web/
               and the demo's orders service; `cargo xtask demo --help` for its options
  build-wasm   build the wasm client and the npm package (npm-package/dist)
  lint         cargo fmt --check and cargo clippy -D warnings on every crate
  bench        benchmark figures: baton-server on SQLite, PostgreSQL and two instances (release,
               separate load process), login timing, and the client in headless Chromium
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    match cmd.as_str() {
        "setup" => {
            setup::all(&setup::Needs::everything())?;
        }
        "test" => testing::test()?,
        "demo" => demo(&args[1..])?,
        "build-wasm" => {
            let tc = setup::wasm_toolchain()?;
            setup::wasm_bindgen_cli()?;
            build_wasm(&tc)?;
        }
        "lint" => lint()?,
        "bench" => bench()?,
        "help" | "--help" | "-h" => print!("{USAGE}"),
        // For xtask's own test: a child under the demo's supervision, its pid printed.
        "__supervised-sleep" => {
            let children = util::Children::watch()?;
            let mut child = children.spawn(std::process::Command::new("sleep").arg("300"))?;
            println!("{}", child.id());
            child.wait()?;
            return Ok(());
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
    util::step(&format!(
        "xtask {cmd} finished in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn lint() -> Result<()> {
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::run(util::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(())
}

/// The most the package's core entry point (`baton-auth`: dist/index.js and the wasm it loads)
/// may weigh, gzip -9 of each file summed. The package build is the same on every toolchain
/// path (std rebuilt), so this holds everywhere.
const SIZE_BUDGET: u64 = 30 * 1024;

/// The most `baton-auth/react` (dist/react.js, on top of the core) may weigh, gzip -9.
const REACT_BUDGET: u64 = 2 * 1024;

/// The most `baton-auth/account` (dist/account.js, on top of the core) may weigh, gzip -9.
const ACCOUNT_BUDGET: u64 = 2 * 1024;

/// The most `baton-auth/mfa` (dist/mfa.js, on top of the core) may weigh, gzip -9.
const MFA_BUDGET: u64 = 2 * 1024;

/// The most `baton-auth/passkeys` (dist/passkeys.js, on top of the core) may weigh, gzip -9.
const PASSKEYS_BUDGET: u64 = 2 * 1024;

/// The most `baton-auth/oauth` (dist/oauth.js, on top of the core) may weigh, gzip -9.
const OAUTH_BUDGET: u64 = 2 * 1024;

/// The most `baton-auth/server` (npm-package/server.js, for backends: the verifier and the
/// server-rendered apps' proxy and session) may weigh, gzip -9.
const SERVER_BUDGET: u64 = 12 * 1024;

/// Builds the npm package into `npm-package/dist`: the wasm client with the size profile,
/// its wasm-bindgen glue, `wasm-opt -Oz`, short import/export names, minified JS. Prints sizes.
fn build_wasm(tc: &setup::WasmToolchain) -> Result<()> {
    let bin = setup::npm_tools()?;
    util::step("building the wasm client (profile wasm-release)");
    util::run(&mut tc.cargo_size(&["build", "-p", "baton-client", "--profile", "wasm-release"]))?;
    let root = util::root();
    let wasm = util::target().join("wasm32-unknown-unknown/wasm-release/baton_client.wasm");
    let gen = util::target().join("wasm-bindgen");
    let _ = std::fs::remove_dir_all(&gen);
    util::run(
        std::process::Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript", "--out-dir"])
            .arg(&gen)
            .arg(&wasm),
    )?;
    let dist = root.join("npm-package/dist");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist)?;
    let wasm_out = dist.join("baton_client_bg.wasm");
    let features = [
        "--enable-bulk-memory",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-mutable-globals",
        "--enable-reference-types",
    ];
    util::run(
        std::process::Command::new(bin.join("wasm-opt"))
            // Flattening and re-looping first lets -Oz find smaller control flow (about 0.6 %).
            .args(["--flatten", "--rereloop", "-Oz", "-Oz", "--converge"])
            .args(["--strip-debug", "--strip-producers"])
            // Safe for Rust output: it never relies on an out-of-bounds access trapping, never
            // touches the first KB of memory (the stack grows down towards it from 1 MB), and
            // wasm memory starts zeroed.
            .args(["-iit", "--low-memory-unused", "--zero-filled-memory"])
            .args(features)
            .arg(gen.join("baton_client_bg.wasm"))
            .arg("-o")
            .arg(&wasm_out),
    )?;
    let glue = minify::names(&bin, &features, &wasm_out, &gen.join("baton_client.js"))?;
    std::fs::write(gen.join("baton_client.min-names.js"), glue)?;
    // One module: index.js, the glue and wasm-bindgen's copies of `#[wasm_bindgen(module)]`
    // files, bundled (one gzip stream and names shared across files are smaller than four);
    // the glue finds the wasm beside it with `new URL(..., import.meta.url)`.
    let pkg = root.join("npm-package");
    let from = "\"./dist/wasm/baton_client.js\"";
    let index = std::fs::read_to_string(pkg.join("index.js"))?;
    if !index.contains(from) {
        bail!("npm-package/index.js no longer imports {from}");
    }
    std::fs::write(
        gen.join("index.js"),
        index.replace(from, "\"./baton_client.min-names.js\""),
    )?;
    minify::bundle(&bin, &gen.join("index.js"), &gen.join("bundle.js"))?;
    minify::js(&bin, &gen.join("bundle.js"), &dist.join("index.js"))?;
    minify::js(&bin, &pkg.join("react.js"), &dist.join("react.js"))?;
    minify::js(&bin, &pkg.join("account.js"), &dist.join("account.js"))?;
    minify::js(&bin, &pkg.join("mfa.js"), &dist.join("mfa.js"))?;
    minify::js(&bin, &pkg.join("passkeys.js"), &dist.join("passkeys.js"))?;
    minify::js(&bin, &pkg.join("oauth.js"), &dist.join("oauth.js"))?;
    minify::js(&bin, &pkg.join("authed.js"), &dist.join("authed.js"))?;
    // The package carries the licenses it is offered under.
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        std::fs::copy(root.join(license), pkg.join(license))?;
    }
    // Each entry point is weighed by itself, so an app pays only for what it imports.
    let (mut total, mut react, mut account, mut mfa, mut passkeys, mut oauth) = (0, 0, 0, 0, 0, 0);
    for path in util::files_under(&dist)? {
        let f = path.strip_prefix(&dist)?.display().to_string();
        let (raw, gz) = (std::fs::metadata(&path)?.len(), util::gzip_size(&path)?);
        match f.as_str() {
            "react.js" => react += gz,
            "account.js" => account += gz,
            "mfa.js" => mfa += gz,
            "passkeys.js" => passkeys += gz,
            "oauth.js" => oauth += gz,
            // Shared by these: each pays for it.
            "authed.js" => {
                account += gz;
                mfa += gz;
                passkeys += gz;
                oauth += gz;
            }
            "index.js" | "baton_client_bg.wasm" => total += gz,
            _ => bail!("dist/{f} belongs to no entry point: give it one and a budget"),
        }
        println!("  dist/{f:<26} {raw:>7} bytes, {gz:>6} gzipped");
    }
    println!(
        "  baton-auth (index.js and the wasm): {total} bytes gzipped ({:.1} KB; budget {:.0} KB)",
        total as f64 / 1024.0,
        SIZE_BUDGET as f64 / 1024.0
    );
    println!(
        "  baton-auth/react (react.js on top): {react} bytes gzipped (budget {:.0} KB)",
        REACT_BUDGET as f64 / 1024.0
    );
    std::fs::write(
        util::target().join("package-size.txt"),
        format!("{total}\n"),
    )?;
    println!(
        "  baton-auth/account (account.js on top): {account} bytes gzipped (budget {:.0} KB)",
        ACCOUNT_BUDGET as f64 / 1024.0
    );
    if account > ACCOUNT_BUDGET {
        bail!("baton-auth/account is {account} bytes gzipped, over its budget of {ACCOUNT_BUDGET}");
    }
    println!(
        "  baton-auth/mfa (mfa.js on top): {mfa} bytes gzipped (budget {:.0} KB)",
        MFA_BUDGET as f64 / 1024.0
    );
    if mfa > MFA_BUDGET {
        bail!("baton-auth/mfa is {mfa} bytes gzipped, over its budget of {MFA_BUDGET}");
    }
    println!(
        "  baton-auth/passkeys (passkeys.js on top): {passkeys} bytes gzipped (budget {:.0} KB)",
        PASSKEYS_BUDGET as f64 / 1024.0
    );
    if passkeys > PASSKEYS_BUDGET {
        bail!(
            "baton-auth/passkeys is {passkeys} bytes gzipped, over its budget of {PASSKEYS_BUDGET}"
        );
    }
    println!(
        "  baton-auth/oauth (oauth.js on top): {oauth} bytes gzipped (budget {:.0} KB)",
        OAUTH_BUDGET as f64 / 1024.0
    );
    if oauth > OAUTH_BUDGET {
        bail!("baton-auth/oauth is {oauth} bytes gzipped, over its budget of {OAUTH_BUDGET}");
    }
    if react > REACT_BUDGET {
        bail!("baton-auth/react is {react} bytes gzipped, over its budget of {REACT_BUDGET}");
    }
    // baton-auth/server runs in backends, not browsers, and ships as written; it has a budget
    // of its own all the same, so it stays a small verifier and not a framework.
    let server = pkg.join("server.js");
    let server_gz = util::gzip_size(&server)?;
    println!(
        "  baton-auth/server (server.js, no wasm): {server_gz} bytes gzipped (budget {:.0} KB)",
        SERVER_BUDGET as f64 / 1024.0
    );
    if server_gz > SERVER_BUDGET {
        bail!("baton-auth/server is {server_gz} bytes gzipped, over its budget of {SERVER_BUDGET}");
    }
    if total > SIZE_BUDGET {
        bail!(
            "the package is {total} bytes gzipped, over its budget of {SIZE_BUDGET} bytes: \
             find what grew with `twiggy top` on the wasm, or move browser plumbing to \
             client-wasm/js/platform.js"
        );
    }
    Ok(())
}

/// baton-server and the demo's orders service, as the end-to-end tests and the demo run them:
/// one build (shared dependencies compiled once, with one feature set), the dev profile with
/// the hashing and signing crates optimised (Cargo.toml), so the demo reuses what the tests
/// built and a first demo compiles in about half the time of a release build.
fn build_servers() -> Result<()> {
    util::run(util::cargo().args([
        "build",
        "-p",
        "baton-server",
        "-p",
        "baton-verify",
        "--bin",
        "baton-server",
        "--example",
        "demo-api",
    ]))
}

/// Every benchmark figure; the output is what BENCHMARKS.md records.
fn bench() -> Result<()> {
    let env = setup::all(&setup::Needs::everything())?;
    let pg = pg::Cluster::start(&env.postgres)?;
    util::step("baton-server benchmark (release build, load from a separate process)");
    util::run(
        util::cargo()
            .args(["bench", "-p", "baton-server", "--bench", "load"])
            .env("BATON_BENCH_POSTGRES_URL", pg.admin_url()),
    )?;
    drop(pg);
    util::step("client benchmark (headless Chromium)");
    build_wasm(&env.wasm)?;
    util::run(util::cargo().args(["build", "--release", "-p", "baton-server"]))?;
    let tgz = npm_pack()?;
    let root = util::root();
    util::run(
        std::process::Command::new("node")
            .arg("bench/fetch-overhead.mjs")
            .current_dir(root.join("tests"))
            .env(
                "BATON_SERVER_BIN",
                util::target().join("release/baton-server"),
            )
            .env("BATON_PACKAGE_TGZ", &tgz)
            .env("CHROMIUM", &env.chromium),
    )?;
    Ok(())
}

/// `npm pack` of npm-package/ into target/npm-pack; returns the tarball path.
fn npm_pack() -> Result<std::path::PathBuf> {
    let root = util::root();
    let out = util::target().join("npm-pack");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let name = util::output(
        std::process::Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&out)
            .current_dir(root.join("npm-package")),
    )
    .context("npm pack failed")?;
    let tgz = out.join(name.trim().lines().last().unwrap_or_default());
    println!("  packed {}", tgz.display());
    Ok(tgz)
}

const DEMO_USAGE: &str = "\
usage: cargo xtask demo [--bind ADDR]

Builds the npm package and baton-server, then runs the demo: baton-server on ADDR (default
$BATON_BIND, else 127.0.0.1:8080) with the SQLite file ./baton.db, serving demo-web/ at
http://ADDR/, and the orders service (verify/examples/demo-api.rs, a backend of its own that
accepts Baton's tokens) on the next port. Ctrl-C stops both.

Mail (sign-in codes and links, password resets) goes to a mailbox of the demo's own on
loopback and is printed in this terminal, unless BATON_SMTP_URL is set.

Passkeys: browsers offer them on a host name only, so on loopback the demo sets them up for
http://localhost:PORT/ (the same server); open that address to try them.

Environment: BATON_ACCESS_TTL (default 30s here, so refreshes show), BATON_RATE_LIMITS (on;
see docs/operations.md for relaxing limits in development), and any other BATON_* setting.
";

fn demo(args: &[String]) -> Result<()> {
    let mut bind = std::env::var("BATON_BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "-h" | "--help" | "help" => {
                print!("{DEMO_USAGE}");
                return Ok(());
            }
            "--bind" => bind = rest.next().context("--bind needs an address")?.clone(),
            other => match other.strip_prefix("--bind=") {
                Some(b) => bind = b.to_owned(),
                None => bail!("unknown demo option `{other}`\n\n{DEMO_USAGE}"),
            },
        }
    }
    let addr: std::net::SocketAddr = bind
        .parse()
        .with_context(|| format!("--bind {bind}: expected an address such as 127.0.0.1:8080"))?;
    let mut api_addr = addr;
    api_addr.set_port(
        addr.port()
            .checked_add(1)
            .context("no port after the demo's")?,
    );
    let children = util::Children::watch()?;
    let tc = setup::wasm_toolchain()?;
    setup::wasm_bindgen_cli()?;
    build_wasm(&tc)?;
    util::step("building baton-server and the orders service");
    build_servers()?;
    let root = util::root();
    let secret = util::random_hex(16)?;
    // The page is opened at the address the server is reached at, which is also the issuer.
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let page = format!("http://{host}");
    // Browsers refuse passkeys on an IP address: on loopback they work at localhost.
    let named = (addr.ip().is_loopback() || addr.ip().is_unspecified())
        .then(|| format!("http://localhost:{}", addr.port()));
    util::step(&format!(
        "starting baton-server on {page}/ with ./baton.db, and the orders service on port {}; \
         open {page}/ (Ctrl-C stops)",
        api_addr.port()
    ));
    let mut server = std::process::Command::new(util::target().join("debug/baton-server"));
    server.current_dir(&root);
    // Mail goes to the demo's mailbox, which prints it here, unless SMTP is set up already.
    if std::env::var_os("BATON_SMTP_URL").is_none() {
        let mailbox = mailbox::start()?;
        server.env("BATON_SMTP_URL", format!("smtp://{mailbox}"));
        if std::env::var_os("BATON_MAIL_FROM").is_none() {
            server.env("BATON_MAIL_FROM", "Baton demo <no-reply@baton.localhost>");
        }
        if std::env::var_os("BATON_MAGIC_LINK_URL").is_none() {
            server.env("BATON_MAGIC_LINK_URL", format!("{page}/"));
        }
        util::step(&format!(
            "mail (sign-in codes and links) goes to the demo mailbox on {mailbox} and is printed \
             here; set BATON_SMTP_URL to send real mail"
        ));
    }
    if let Some(named) = &named {
        if std::env::var_os("BATON_WEBAUTHN_RP_ID").is_none() {
            server.env("BATON_WEBAUTHN_RP_ID", "localhost");
            server.env("BATON_WEBAUTHN_ORIGINS", named);
        }
        util::step(&format!(
            "passkeys: open {named}/ (browsers offer them on a host name, not on {page})"
        ));
    }
    // "Sign in with the demo provider": a local OpenID provider, unless providers are set up.
    let idp = if std::env::var_os("BATON_PROVIDERS_FILE").is_none() {
        let port = addr
            .port()
            .checked_add(2)
            .context("no port for the demo provider")?;
        let idp_secret = util::random_hex(16)?;
        let mut idp = children.spawn(
            std::process::Command::new("node")
                .arg(root.join("tests/verify/demo-idp.mjs"))
                .arg(port.to_string())
                .arg(format!("{page}/auth/oauth/demo/callback"))
                .env("DEMO_IDP_SECRET", &idp_secret)
                .stdout(std::process::Stdio::piped()),
        )?;
        let mut first = String::new();
        let mut out = std::io::BufReader::new(idp.stdout.take().context("provider stdout")?);
        std::io::BufRead::read_line(&mut out, &mut first)?;
        let issuer = first
            .trim()
            .strip_prefix("issuer ")
            .with_context(|| format!("the demo provider did not start (it said {first:?})"))?
            .to_owned();
        let file = util::target().join("demo-providers.toml");
        std::fs::write(
            &file,
            format!(
                "[providers.demo]\nkind = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"baton-demo\"\n\
                 client_secret = \"{idp_secret}\"\nscopes = [\"openid\", \"email\"]\n\
                 display_name = \"the demo provider\"\n"
            ),
        )?;
        server
            .env("BATON_PROVIDERS_FILE", &file)
            .env("BATON_REDIRECT_ALLOWLIST", format!("{page}/"));
        util::step(&format!(
            "identity provider: \"Sign in with the demo provider\" on {page}/ (oidc-provider at \
             {issuer}; any name signs in)"
        ));
        Some(idp)
    } else {
        None
    };
    let server = server
        .env("BATON_BIND", addr.to_string())
        .env("BATON_COOKIE_SECURE", "false")
        .env("BATON_INTROSPECTION_TOKEN", &secret)
        // Short-lived access tokens make the refreshes visible; set BATON_ACCESS_TTL to change.
        .env(
            "BATON_ACCESS_TTL",
            std::env::var("BATON_ACCESS_TTL").unwrap_or_else(|_| "30s".into()),
        )
        .env("BATON_STATIC_DIR", root.join("demo-web"))
        .env("BATON_PACKAGE_DIR", root.join("npm-package"))
        .stdout(std::process::Stdio::piped());
    let mut server = children.spawn(server)?;
    let mut out = std::io::BufReader::new(server.stdout.take().context("server stdout")?);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line)?;
    if !line.starts_with("listening on ") {
        let _ = server.kill();
        bail!("baton-server did not start (it said {line:?})");
    }
    print!("  baton-server {line}");
    let mut orders = children.spawn(
        std::process::Command::new(util::target().join("debug/examples/demo-api"))
            .env("BATON_URL", &page)
            .env("BATON_INTROSPECTION_TOKEN", &secret)
            .env("DEMO_API_BIND", api_addr.to_string())
            .env(
                "DEMO_API_ORIGINS",
                named
                    .as_ref()
                    .map_or(page.clone(), |n| format!("{page},{n}")),
            ),
    )?;
    let status = server.wait()?;
    let _ = orders.kill();
    let _ = orders.wait();
    if let Some(mut idp) = idp {
        let _ = idp.kill();
        let _ = idp.wait();
    }
    if !status.success() {
        bail!("baton-server exited with {status}");
    }
    Ok(())
}
