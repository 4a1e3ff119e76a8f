//! An audit event on its way to `audit_events` (and the events file).

/// A new audit event.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub user_id: Option<String>,
    pub at: i64,
    pub kind: &'static str,
    pub severity: &'static str,
    pub session_id: Option<String>,
    pub device_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}
