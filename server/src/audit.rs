//! The audit log's entries as the layers above make them: who asked (`Caller`), and one event.

use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::NewEvent;

/// Request facts recorded with sessions and events.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: String,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    /// SHA-256 (hex) of the request's `Idempotency-Key`, when it sent one.
    pub request_key: Option<String>,
}

impl Caller {
    /// Who asked, as far as a request tells: the device id, else the client address. Mailed
    /// sign-in codes are tried only by the requester (see `store::mail_tokens`).
    pub fn requester(&self) -> String {
        match &self.device_id {
            Some(d) => format!("device:{d}"),
            None => format!("ip:{}", self.ip),
        }
    }
}

/// Records an audit event; a failure to record is logged, not shown to the client.
pub async fn audit(
    state: &AppState,
    user_id: Option<&str>,
    kind: &'static str,
    severity: &'static str,
    session_id: Option<&str>,
    caller: &Caller,
    detail: &str,
) {
    let event = event(user_id, kind, severity, session_id, caller, detail);
    if let Err(e) = state.store.insert_event(&event).await {
        tracing::warn!(error = %e, kind, "could not record audit event");
    }
}

/// An audit event to record. Security events (severity `warning` or `critical`: failed logins,
/// lockouts, refresh-token reuse, device mismatches, revocations, rate limiting) also go to the
/// log, target `baton_server::security`; details never hold secrets.
pub fn event(
    user_id: Option<&str>,
    kind: &'static str,
    severity: &'static str,
    session_id: Option<&str>,
    caller: &Caller,
    detail: &str,
) -> NewEvent {
    if severity != "info" {
        tracing::warn!(
            target: "baton_server::security",
            event = kind,
            severity,
            user_id,
            session_id,
            device_id = caller.device_id.as_deref(),
            ip = %caller.ip,
            detail,
            "security event"
        );
    }
    NewEvent {
        user_id: user_id.map(str::to_owned),
        at: now_ms(),
        kind,
        severity,
        session_id: session_id.map(str::to_owned),
        device_id: caller.device_id.clone(),
        ip: Some(caller.ip.clone()),
        detail: detail.to_owned(),
    }
}
