//! Prometheus metrics, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters keyed by one label value; histogram by endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    tokens_issued: Mutex<BTreeMap<&'static str, u64>>,
    refresh: Mutex<BTreeMap<&'static str, u64>>,
    revocation: Mutex<BTreeMap<&'static str, u64>>,
    reuse_detected: AtomicU64,
    login: Mutex<BTreeMap<&'static str, u64>>,
    anomalies: Mutex<BTreeMap<&'static str, u64>>,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    dpop: Mutex<BTreeMap<&'static str, u64>>,
    dpop_records: Mutex<BTreeMap<&'static str, u64>>,
    email: Mutex<BTreeMap<&'static str, u64>>,
    /// Sign-ins through identity providers: (provider, outcome).
    oauth: Mutex<BTreeMap<(String, &'static str), u64>>,
    duration: Mutex<BTreeMap<&'static str, Histogram>>,
    active_sessions: AtomicI64,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry(label).or_default() += 1;
}

impl Metrics {
    pub fn token_issued(&self, token_type: &'static str) {
        bump(&self.tokens_issued, token_type);
    }
    pub fn refresh(&self, status: &'static str) {
        bump(&self.refresh, status);
    }
    pub fn revocation(&self, reason: &'static str) {
        bump(&self.revocation, reason);
    }
    pub fn reuse_detected(&self) {
        self.reuse_detected.fetch_add(1, Ordering::Relaxed);
    }
    pub fn login(&self, result: &'static str) {
        bump(&self.login, result);
    }
    pub fn anomaly(&self, kind: &'static str) {
        bump(&self.anomalies, kind);
    }
    pub fn rate_limited(&self, scope: &'static str) {
        bump(&self.rate_limited, scope);
    }
    pub fn email(&self, step: &'static str) {
        bump(&self.email, step);
    }
    /// A step of a sign-in through `provider` (a name of the providers file): `started`,
    /// `signed_in`, `linked`, `refused`, `exchanged`.
    pub fn oauth(&self, provider: &str, outcome: &'static str) {
        let mut m = self.oauth.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((provider.to_owned(), outcome)).or_default() += 1;
    }
    pub fn dpop(&self, result: &'static str) {
        bump(&self.dpop, result);
    }
    /// Where a DPoP proof's record against replay went: `memory` (SQLite), `with_rotation`
    /// (PostgreSQL, in the refresh's own transaction) or `own_write` (PostgreSQL, a batch of
    /// proofs of its own).
    pub fn dpop_record(&self, written: &'static str) {
        bump(&self.dpop_records, written);
    }
    pub fn set_active_sessions(&self, n: i64) {
        self.active_sessions.store(n, Ordering::Relaxed);
    }
    pub fn observe(&self, endpoint: &'static str, d: Duration) {
        let secs = d.as_secs_f64();
        let mut m = self.duration.lock().unwrap_or_else(|e| e.into_inner());
        let h = m.entry(endpoint).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
    }

    /// `dropped_event_lines`: lines of `BATON_EVENTS_FILE` dropped so far, when it is set.
    pub fn render_with(&self, dropped_event_lines: Option<u64>) -> String {
        let mut out = self.render();
        if let Some(n) = dropped_event_lines {
            let _ = writeln!(
                out,
                "# HELP auth_events_file_dropped_total Event lines not written to BATON_EVENTS_FILE (queue full or write failed; the events stay in the audit log).\n\
                 # TYPE auth_events_file_dropped_total counter\n\
                 auth_events_file_dropped_total {n}"
            );
        }
        out
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        counter(
            &mut out,
            "auth_tokens_issued_total",
            "Tokens issued.",
            "token_type",
            &self.tokens_issued,
        );
        counter(
            &mut out,
            "auth_token_refresh_total",
            "Refresh attempts by outcome.",
            "status",
            &self.refresh,
        );
        counter(
            &mut out,
            "auth_token_revocation_total",
            "Sessions revoked, by reason.",
            "reason",
            &self.revocation,
        );
        let _ = writeln!(
            out,
            "# HELP auth_log_lines_dropped_total Log lines not written to standard error (its reader was too slow or gone).\n\
             # TYPE auth_log_lines_dropped_total counter\n\
             auth_log_lines_dropped_total {}",
            crate::logs::dropped()
        );
        let _ = writeln!(
            out,
            "# HELP auth_refresh_reuse_detected_total Spent refresh tokens presented outside the grace window.\n\
             # TYPE auth_refresh_reuse_detected_total counter\n\
             auth_refresh_reuse_detected_total {}",
            self.reuse_detected.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "auth_login_total",
            "Login attempts by result.",
            "result",
            &self.login,
        );
        counter(
            &mut out,
            "auth_anomaly_events_total",
            "Anomaly events recorded (new_device, suspicious_activity).",
            "type",
            &self.anomalies,
        );
        counter(
            &mut out,
            "auth_rate_limited_total",
            "Requests (and connections) refused by an abuse limit.",
            "limit",
            &self.rate_limited,
        );
        counter(
            &mut out,
            "auth_email_total",
            "Email sign-in steps (requested, sent, send_failed, verified, refused).",
            "step",
            &self.email,
        );
        counter(
            &mut out,
            "auth_dpop_proofs_total",
            "DPoP proofs checked, by result (valid, invalid, replayed).",
            "result",
            &self.dpop,
        );
        counter(
            &mut out,
            "auth_dpop_proof_records_total",
            "DPoP proofs recorded against replay, by where the record was written (memory, \
             with_rotation, own_write).",
            "written",
            &self.dpop_records,
        );
        let _ = writeln!(
            out,
            "# HELP auth_oauth_total Sign-in steps through identity providers, by provider and \
             outcome (started, signed_in, linked, refused, exchanged).\n\
             # TYPE auth_oauth_total counter"
        );
        for ((provider, outcome), n) in self.oauth.lock().unwrap_or_else(|e| e.into_inner()).iter()
        {
            let _ = writeln!(
                out,
                "auth_oauth_total{{provider=\"{provider}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP auth_duration_seconds Request handling time by endpoint.\n\
             # TYPE auth_duration_seconds histogram"
        );
        let m = self.duration.lock().unwrap_or_else(|e| e.into_inner());
        for (endpoint, h) in m.iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "auth_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{b}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "auth_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}\n\
                 auth_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}\n\
                 auth_duration_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP auth_active_sessions Sessions neither revoked nor expired.\n\
             # TYPE auth_active_sessions gauge\n\
             auth_active_sessions {}",
            self.active_sessions.load(Ordering::Relaxed)
        );
        out
    }
}

fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    map: &Mutex<BTreeMap<&'static str, u64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let m = map.lock().unwrap_or_else(|e| e.into_inner());
    for (v, n) in m.iter() {
        let _ = writeln!(out, "{name}{{{label}=\"{v}\"}} {n}");
    }
}
