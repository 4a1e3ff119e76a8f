//! Settings: every one is a flag and an environment variable (documented in docs/api.md and docs/operations.md).

use clap::{Parser, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Baton's token server: login, rotating refresh tokens with reuse detection, sessions,
/// audit log and metrics.
#[derive(Debug, Clone, Parser)]
#[command(name = "baton-server", version, about, long_about = None)]
pub struct Config {
    /// Listen address; `127.0.0.1:0` picks a free port (the chosen address is printed).
    #[arg(long, env = "BATON_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://...`.
    #[arg(long, env = "BATON_DATABASE_URL", default_value = "sqlite://baton.db")]
    pub database_url: String,

    /// Access token lifetime.
    #[arg(long, env = "BATON_ACCESS_TTL", default_value = "15m", value_parser = duration)]
    pub access_ttl: Duration,

    /// Sliding idle lifetime of a session's refresh token.
    #[arg(long, env = "BATON_REFRESH_IDLE_TTL", default_value = "7d", value_parser = duration)]
    pub refresh_idle_ttl: Duration,

    /// Absolute session lifetime.
    #[arg(long, env = "BATON_SESSION_MAX", default_value = "12h", value_parser = duration)]
    pub session_max: Duration,

    /// Absolute session lifetime when logged in with `remember_me`.
    #[arg(long, env = "BATON_REMEMBER_ME_MAX", default_value = "30d", value_parser = duration)]
    pub remember_me_max: Duration,

    /// Grace window for a concurrent refresh with an already-rotated token.
    #[arg(long, env = "BATON_REUSE_GRACE", default_value = "10s", value_parser = duration)]
    pub reuse_grace: Duration,

    /// Device binding of sessions to their `X-Device-ID`.
    #[arg(long, env = "BATON_DEVICE_BINDING", default_value = "strict")]
    pub device_binding: DeviceBinding,

    /// DPoP sender-constrained sessions (RFC 9449): `allowed` binds a session to the key of
    /// the `DPoP` proof sent when it is created, and leaves sessions created without one as
    /// Bearer sessions; `required` refuses to create a session without a proof, and to refresh
    /// one that is not bound; `off` creates Bearer sessions only (sessions already bound stay
    /// bound). Proofs are ES256 or EdDSA and at most 60 s old (see docs/api.md, "DPoP").
    #[arg(long, env = "BATON_DPOP", default_value = "allowed")]
    pub dpop: DpopMode,
    /// DPoP proofs one key may have accepted per minute by one instance (the replay cache
    /// every key shares must not be filled by one); beyond, 429 until the minute is over.
    /// Scaled by BATON_RATE_LIMITS like the other limits; off with it.
    #[arg(long, env = "BATON_DPOP_PROOFS_PER_KEY", default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..))]
    pub dpop_proofs_per_key: u32,

    /// The SMTP server that sends sign-in codes and links: `smtp://host:port` (plain, or
    /// `?tls=required` for STARTTLS), `smtps://host:port` (TLS); a user and password may be in
    /// the URL (`smtp://user:password@host`). Unset: the email endpoints answer 503
    /// `email_unavailable`. Also needs `BATON_MAIL_FROM` and `BATON_MAGIC_LINK_URL`.
    #[arg(long, env = "BATON_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// A file holding the SMTP password (for secret mounts), instead of the one in the URL.
    #[arg(long, env = "BATON_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// The sender of Baton's mails, e.g. `Example <no-reply@example.com>`.
    #[arg(long, env = "BATON_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// The app page a sign-in link opens; the link is this URL with `token=...` added. The page
    /// hands the token to `POST /auth/magic-link/verify` (baton-auth: `verifyMagicLink`).
    #[arg(long, env = "BATON_MAGIC_LINK_URL", value_parser = link_url)]
    pub magic_link_url: Option<String>,
    /// How long an emailed code and link stay valid.
    #[arg(long, env = "BATON_OTP_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub otp_ttl: Duration,

    /// The issuer name authenticator apps show for Baton's TOTP secrets (`otpauth://` URLs).
    #[arg(long, env = "BATON_MFA_ISSUER", default_value = "Baton")]
    pub mfa_issuer: String,

    /// How long `POST /auth/mfa/step-up` raises a session to assurance level 2.
    #[arg(long, env = "BATON_STEP_UP_TTL", default_value = "10m", value_parser = duration)]
    pub step_up_ttl: Duration,

    /// The WebAuthn relying party id passkeys are made for: the app's registrable domain, e.g.
    /// `example.com` for pages on `app.example.com` (not an IP address). Default: the host of
    /// `BATON_PUBLIC_URL`. Neither set: the passkey endpoints answer 503 `passkeys_unavailable`.
    #[arg(long, env = "BATON_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,

    /// The name passkey prompts show for this relying party.
    #[arg(long, env = "BATON_WEBAUTHN_RP_NAME", default_value = "Baton")]
    pub webauthn_rp_name: String,

    /// The origins of the pages that create and use passkeys, comma-separated (e.g.
    /// `https://app.example.com,https://www.example.com`); each on the relying party id or a
    /// subdomain of it. Default: the origin of `BATON_PUBLIC_URL`.
    #[arg(long, env = "BATON_WEBAUTHN_ORIGINS")]
    pub webauthn_origins: Option<String>,

    /// Identity providers for "sign in with ...": a TOML file with one `[providers.NAME]`
    /// table each (`kind = "oidc"` with `issuer`, or `kind = "github"`; `client_id`,
    /// `client_secret` or `client_secret_file`, optional `scopes`, `display_name`, and
    /// `base_url` for GitHub Enterprise). Each provider's redirect URI is
    /// `PUBLIC_URL/auth/oauth/NAME/callback`. A bad file stops the start with its line.
    #[arg(long, env = "BATON_PROVIDERS_FILE")]
    pub providers_file: Option<PathBuf>,

    /// The app pages a provider sign-in may return to, comma-separated: exact origins and
    /// paths (e.g. `https://app.example.com/signed-in`). Needed with BATON_PROVIDERS_FILE.
    #[arg(long, env = "BATON_REDIRECT_ALLOWLIST")]
    pub redirect_allowlist: Option<String>,

    /// Whether anyone may register.
    #[arg(long, env = "BATON_REGISTRATION", default_value = "open")]
    pub registration: Registration,

    /// Abuse limits: `on`; `relaxed`, ten times the attempts in the same windows (local
    /// development, where one person signs in and registers often); `off` is for benchmarks
    /// only. The lockout after failed passwords applies in every mode but `off`.
    #[arg(long, env = "BATON_RATE_LIMITS", default_value = "on")]
    pub rate_limits: RateLimits,

    /// How long `keys rotate` publishes a new signing key (in the JWKS) before any instance
    /// signs with it: longer than the verifiers of other services wait before they fetch the
    /// JWKS again, so none meets a token of a key it has not seen.
    #[arg(long, env = "BATON_KEY_PUBLISH_AHEAD", default_value = "2m", value_parser = duration)]
    pub key_publish_ahead: Duration,

    /// `iss` of access tokens. Default: `BATON_PUBLIC_URL`, else the listen address of the
    /// deployment's first start, stored in the database (`http://127.0.0.1:8080` with the
    /// default `BATON_BIND`; an unspecified address such as 0.0.0.0 becomes 127.0.0.1), so
    /// restarts on other ports and further instances keep accepting its tokens.
    #[arg(long, env = "BATON_ISSUER")]
    pub issuer: Option<String>,

    /// The URL browsers and other services reach this server at, e.g.
    /// `https://auth.example.com` behind a proxy: the default issuer, and the base of the
    /// URLs that `/.well-known/openid-configuration` publishes.
    #[arg(long, env = "BATON_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,

    /// The secret resource servers present to `POST /auth/introspect` (as
    /// `Authorization: Bearer <secret>`, or as the password of HTTP Basic). Unset:
    /// introspection is off (404). At least 32 bytes (`openssl rand -base64 32`).
    #[arg(long, env = "BATON_INTROSPECTION_TOKEN", hide_env_values = true, value_parser = introspection_secret)]
    pub introspection_token: Option<String>,

    /// `aud` of access tokens.
    #[arg(long, env = "BATON_AUDIENCE", default_value = "baton")]
    pub audience: String,

    /// Mark the refresh cookie `Secure`; `false` only for plain-http local development.
    #[arg(long, env = "BATON_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// No request waits longer than this (fast fail with 503).
    #[arg(long, env = "BATON_REQUEST_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub request_timeout: Duration,

    /// Comma-separated IPs/CIDRs whose `X-Forwarded-For` is believed.
    #[arg(long, env = "BATON_TRUSTED_PROXIES", default_value = "", value_parser = proxies)]
    pub trusted_proxies: TrustedProxies,

    /// How long five consecutive failed logins lock an account.
    #[arg(long, env = "BATON_LOCKOUT_DURATION", default_value = "15m", value_parser = duration)]
    pub lockout_duration: Duration,

    /// Bearer token that grants `/metrics` to non-loopback peers (empty: loopback only).
    #[arg(
        long,
        env = "BATON_METRICS_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub metrics_token: String,

    /// How often ended sessions and old audit events are purged.
    #[arg(long, env = "BATON_PURGE_INTERVAL", default_value = "1h", value_parser = duration)]
    pub purge_interval: Duration,

    /// Keep ended sessions this long after they end (they still show in the audit trail).
    #[arg(long, env = "BATON_SESSION_RETENTION", default_value = "7d", value_parser = duration)]
    pub session_retention: Duration,

    /// Keep audit events this long.
    #[arg(long, env = "BATON_AUDIT_RETENTION", default_value = "90d", value_parser = duration)]
    pub audit_retention: Duration,

    /// Comma-separated browser origins (`https://app.example.com`) allowed to call the API
    /// cross-origin, with credentials (the refresh cookie). Empty: same-origin only.
    #[arg(long, env = "BATON_CORS_ORIGINS", default_value = "", value_parser = origins)]
    pub cors_origins: Origins,

    /// How long after a rotation the device that rotated may present the spent token once
    /// more and get the same successor again, while that successor was never used (its
    /// response was lost: crash, network drop, closed tab). `0s` turns this off.
    #[arg(long, env = "BATON_REFRESH_RECOVERY", default_value = "1h", value_parser = duration_or_zero)]
    pub refresh_recovery: Duration,
    /// A connection must send a request's complete headers within this time (slow clients
    /// are disconnected).
    #[arg(long, env = "BATON_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_read_timeout: Duration,
    /// A connection with no request in progress is closed after this long without traffic.
    #[arg(long, env = "BATON_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog. Lowered at start
    /// to what the open-file limit allows.
    #[arg(long, env = "BATON_MAX_CONNECTIONS", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Open connections at most from one client address (an IPv6 address counts with its
    /// /64); beyond, a connection is answered 429 and closed. Peers in BATON_TRUSTED_PROXIES
    /// are not counted. `0` turns this off.
    #[arg(long, env = "BATON_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: u32,
    /// On SIGTERM or Ctrl-C, wait at most this long for requests in progress before exiting.
    #[arg(long, env = "BATON_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub shutdown_timeout: Duration,
    /// Password hashes (login, register) that may wait for a free hashing slot; beyond that,
    /// requests are refused at once with 503 and `Retry-After`.
    #[arg(long, env = "BATON_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: u32,
    /// Encrypts the server keys stored in the database (signing and refresh-token MAC keys):
    /// the base64 of 32 random bytes (`openssl rand -base64 32`). Plain keys already stored
    /// are encrypted at the first start with it; without it the keys are stored in plain text
    /// (a warning says so).
    #[arg(long, env = "BATON_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<String>,
    /// A file holding `BATON_KEY_ENCRYPTION_KEY` (for secret mounts).
    #[arg(long, env = "BATON_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// Log lines as `text` (for people) or `json` (one object per line, for log collectors).
    /// Colours only when the log goes to a terminal. The level and targets are `BATON_LOG`.
    #[arg(long, env = "BATON_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Also write every audit event, once committed, as a JSON line to this file (appended;
    /// reopened on SIGHUP for log rotation). Unset: off.
    #[arg(long, env = "BATON_EVENTS_FILE")]
    pub events_file: Option<PathBuf>,

    /// Run pending database migrations at start. `false`: refuse to start while the schema is
    /// behind (run `baton-server migrate` first, e.g. once per deployment, before the new
    /// instances start).
    #[arg(long, env = "BATON_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// Serve the files of this directory at `/` (the demo page).
    #[arg(long, env = "BATON_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Serve the npm package directory at `/pkg/` (the demo page imports `baton-auth` from it).
    #[arg(long, env = "BATON_PACKAGE_DIR")]
    pub package_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage the server keys (with the same settings as the server).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Apply the pending database migrations and exit (with the same settings as the server).
    Migrate,
    /// Administer from the server's machine, with the same settings as the server: admin API
    /// tokens, and users by address (the admin API's operations, recorded the same way).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminAction {
    /// Admin API tokens (`Authorization: Bearer` on `/admin/*`).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Users, found by their address.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenAction {
    /// Make a token and print it, once: only its SHA-256 digest is stored.
    Create {
        /// A name for the token (1 to 64 of A-Z a-z 0-9 _ . -), shown in the audit log.
        #[arg(long)]
        name: String,
        /// What it may do, comma-separated: users:read, users:write, sessions:write,
        /// audit:read.
        #[arg(long)]
        scopes: String,
        /// Expire after this long (`90d`, `12h`); default: never.
        #[arg(long, value_parser = duration)]
        expires: Option<Duration>,
    },
    /// List the tokens (names, scopes, dates; never the secrets).
    List,
    /// Revoke a token by name: refused at once by every instance.
    Revoke { name: String },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UsersAction {
    /// Show the account of an address.
    Find { email: String },
    /// Disable an account: its sessions end now, and it cannot sign in or refresh.
    Disable {
        email: String,
        /// Until this RFC 3339 time (default: until enabled again).
        #[arg(long)]
        until: Option<String>,
    },
    /// Let a disabled account sign in again.
    Enable { email: String },
    /// End every session of an account.
    SignOut { email: String },
    /// Delete an account: sessions end, personal data is erased.
    Delete { email: String },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysAction {
    /// Add a new access-token signing key. Running instances sign with it within a few
    /// seconds; the old key stays in the JWKS, and verifies its tokens, until they have all
    /// expired.
    Rotate,
}

impl Config {
    /// The settings from the command line and the environment. A `BATON_*` variable set to
    /// nothing (`BATON_EVENTS_FILE=`, as env files and orchestrators write an unset value) counts
    /// as not set, rather than as a value that is missing.
    pub fn load() -> Self {
        let empty: Vec<std::ffi::OsString> = std::env::vars_os()
            .filter(|(k, v)| k.to_str().is_some_and(|k| k.starts_with("BATON_")) && v.is_empty())
            .map(|(k, _)| k)
            .collect();
        for k in empty {
            std::env::remove_var(k);
        }
        Self::parse()
    }

    /// Defaults, as if started with no flags and no environment (for tests).
    pub fn defaults() -> Self {
        Self::parse_from(["baton-server"])
    }

    /// Where this server is reached: `BATON_PUBLIC_URL`, else `http://` and the listen address
    /// (an unspecified address as loopback).
    pub fn base_url(&self) -> String {
        if let Some(u) = &self.public_url {
            return u.clone();
        }
        let mut addr = self.bind;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        format!("http://{addr}")
    }

    /// `iss` of access tokens: `BATON_ISSUER`, else [`Config::base_url`].
    pub fn issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| self.base_url())
    }
}

/// An `http(s)` URL without query or fragment; a trailing `/` is dropped.
/// A secret long enough that guessing it is hopeless (an empty one would open introspection to
/// anyone).
fn introspection_secret(s: &str) -> Result<String, String> {
    if s.len() < 32 {
        return Err(format!(
            "must be at least 32 bytes, this one has {} (for example: openssl rand -base64 32)",
            s.len()
        ));
    }
    Ok(s.to_owned())
}

fn public_url(s: &str) -> Result<String, String> {
    let u = s.trim().trim_end_matches('/');
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err("must be a URL such as https://auth.example.com".into());
    }
    Ok(u.to_owned())
}

/// An `http(s)` URL of an app page, which may have a query (the token is added to it).
fn link_url(s: &str) -> Result<String, String> {
    let u = s.trim();
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['#', ' ']) {
        return Err("must be a page URL such as https://app.example.com/sign-in".into());
    }
    Ok(u.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceBinding {
    Strict,
    Warn,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DpopMode {
    Off,
    Allowed,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Registration {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RateLimits {
    On,
    Relaxed,
    Off,
}

/// Exact browser origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

fn origins(s: &str) -> Result<Origins, String> {
    s.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let o = o.trim_end_matches('/');
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o["https://".len().min(o.len())..].contains('/');
            if ok {
                Ok(o.to_owned())
            } else {
                Err(format!(
                    "`{o}` is not an origin like https://app.example.com"
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Origins)
}

fn duration(s: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 2s, 15m, 12h, 30d)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn duration_or_zero(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 0s, 2s, 15m, 12h, 30d)"))
}

/// A list of IP networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

fn proxies(s: &str) -> Result<TrustedProxies, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(IpNet::from_str)
        .collect::<Result<Vec<_>, _>>()
        .map(TrustedProxies)
}

#[cfg(test)]
mod tests;
