//! `BATON_EVENTS_FILE`: every audit event, once committed, also as one JSON object per line in
//! a file, for log shippers and SIEMs (docs/operations.md, "Event file").
//!
//! Requests never wait for the disk: a committed event is formatted and handed to a writer
//! thread through a bounded queue; when the queue is full (the disk is slower than the events
//! come) the line is dropped and counted (`auth_events_file_dropped_total`), the event itself
//! stays in the audit log. `SIGHUP` makes the writer reopen the file, for log rotation.
//!
//! A line: `{"event", "timestamp" (RFC 3339, UTC, milliseconds), "success", "user_id",
//! "metadata": {"type", "severity", "session_id", "device_id", "ip", "detail"}}`. Audit events
//! never carry passwords, codes or tokens, and neither do these lines.

use super::event::NewEvent;
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Lines waiting for the writer at most; more are dropped (and counted).
const QUEUE: usize = 65_536;

enum Msg {
    Line(String),
    Reopen,
}

/// The sending side, kept by the store; cheap to clone.
#[derive(Clone)]
pub struct Sink {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Sink {
    /// Opens (creating, appending) `path` and starts the writer thread. Fails when the file
    /// cannot be opened, so a wrong path stops the server at start, not silently later.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = open(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let path = path.to_path_buf();
        let counted = dropped.clone();
        std::thread::Builder::new()
            .name("baton-events-file".into())
            .spawn(move || write_loop(path, file, rx, counted))?;
        Ok(Self { tx, dropped })
    }

    /// Queues the lines of committed events; never blocks.
    pub fn publish(&self, events: &[&NewEvent]) {
        for e in events {
            match self.tx.try_send(Msg::Line(line(e))) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Asks the writer to reopen the file (after `SIGHUP`).
    pub fn reopen(&self) {
        // A full queue: the reopen waits its turn rather than being lost.
        let _ = self.tx.send(Msg::Reopen);
    }

    /// Lines dropped so far (queue full, or the file could not be written).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o640);
    }
    o.open(path)
}

fn write_loop(path: PathBuf, file: File, rx: Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let mut out = Some(std::io::BufWriter::new(file));
    // Blocks for the first message, then takes whatever else is queued before flushing once.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                Msg::Line(l) => {
                    let written = out
                        .as_mut()
                        .is_some_and(|w| w.write_all(l.as_bytes()).is_ok());
                    if !written {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Msg::Reopen => {
                    if let Some(mut w) = out.take() {
                        let _ = w.flush();
                    }
                    match open(&path) {
                        Ok(f) => out = Some(std::io::BufWriter::new(f)),
                        Err(e) => tracing::error!(
                            path = %path.display(), error = %e,
                            "reopening BATON_EVENTS_FILE failed: event lines are dropped until the next SIGHUP"
                        ),
                    }
                }
            }
        }
        if let Some(w) = out.as_mut() {
            if let Err(e) = w.flush() {
                tracing::warn!(error = %e, "writing BATON_EVENTS_FILE failed");
            }
        }
    }
}

/// The event's name in the file, and whether it records a success.
pub fn name(kind: &str) -> (&'static str, bool) {
    match kind {
        "user_registered" => ("auth.registered", true),
        "login_succeeded" => ("auth.login", true),
        "login_failed" => ("auth.login", false),
        "account_locked" => ("auth.account_locked", false),
        "new_device" => ("auth.new_device", true),
        "suspicious_activity" => ("auth.suspicious_activity", false),
        "rate_limited" => ("auth.rate_limited", false),
        "token_refreshed" => ("token.refreshed", true),
        "refresh_reused" => ("token.reused", false),
        "device_mismatch" => ("token.device_mismatch", false),
        "dpop_proof_refused" => ("token.dpop_proof_refused", false),
        "logout" => ("auth.logout", true),
        "logout_all" => ("auth.logout_all", true),
        "session_revoked" => ("session.revoked", true),
        "session_expired" => ("session.expired", true),
        "otp_generated" => ("otp.generated", true),
        "otp_sent" => ("otp.sent", true),
        "otp_send_failed" => ("otp.sent", false),
        "otp_verified" => ("otp.verification", true),
        "otp_refused" => ("otp.verification", false),
        "mail_sent" => ("mail.sent", true),
        "mail_send_failed" => ("mail.sent", false),
        "password_reset_requested" => ("auth.password_reset_requested", true),
        "password_reset" => ("auth.password_reset", true),
        "email_verified" => ("auth.email_verified", true),
        "password_changed" => ("auth.password_changed", true),
        "email_change_requested" => ("auth.email_change_requested", true),
        "email_changed" => ("auth.email_changed", true),
        "user_updated" => ("auth.user_updated", true),
        "account_deleted" => ("auth.account_deleted", true),
        "admin_action" => ("admin.action", true),
        "mfa_required" => ("mfa.required", true),
        "mfa_verified" => ("mfa.verification", true),
        "mfa_refused" => ("mfa.verification", false),
        "recovery_code_used" => ("mfa.recovery_code_used", true),
        "recovery_codes_replaced" => ("mfa.recovery_codes_replaced", true),
        "mfa_enrolled" => ("mfa.enrolled", true),
        "mfa_removed" => ("mfa.removed", true),
        "mfa_step_up" => ("mfa.step_up", true),
        _ => ("audit.event", true),
    }
}

/// One line of the file for `e`, newline included.
pub fn line(e: &NewEvent) -> String {
    let (event, success) = name(e.kind);
    let at = UNIX_EPOCH + Duration::from_millis(e.at.max(0) as u64);
    let mut s = json!({
        "event": event,
        "timestamp": humantime::format_rfc3339_millis(at).to_string(),
        "success": success,
        "user_id": e.user_id,
        "metadata": {
            "type": e.kind,
            "severity": e.severity,
            "session_id": e.session_id,
            "device_id": e.device_id,
            "ip": e.ip,
            "detail": e.detail,
        },
    })
    .to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_the_documented_fields() {
        let e = NewEvent {
            user_id: Some("u1".into()),
            at: 1_796_131_527_123,
            kind: "login_failed",
            severity: "warning",
            session_id: None,
            device_id: Some("dev".into()),
            ip: Some("203.0.113.7".into()),
            detail: "wrong email or password".into(),
        };
        let l = line(&e);
        assert!(l.ends_with('\n') && !l[..l.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["event"], "auth.login");
        assert_eq!(v["success"], false);
        assert_eq!(v["timestamp"], "2026-12-01T13:25:27.123Z");
        assert_eq!(v["user_id"], "u1");
        assert_eq!(v["metadata"]["type"], "login_failed");
        assert_eq!(v["metadata"]["ip"], "203.0.113.7");
    }

    #[test]
    fn every_audit_type_has_a_name() {
        for kind in [
            "user_registered",
            "login_succeeded",
            "login_failed",
            "account_locked",
            "new_device",
            "suspicious_activity",
            "rate_limited",
            "token_refreshed",
            "refresh_reused",
            "device_mismatch",
            "dpop_proof_refused",
            "logout",
            "logout_all",
            "session_revoked",
            "session_expired",
            "otp_generated",
            "otp_sent",
            "otp_send_failed",
            "otp_verified",
            "otp_refused",
            "mail_sent",
            "mail_send_failed",
            "password_reset_requested",
            "password_reset",
            "email_verified",
        ] {
            assert_ne!(name(kind).0, "audit.event", "{kind}");
        }
    }
}
