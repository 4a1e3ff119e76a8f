//! What the methods proven by mail share: whether mail is set up, and sending after the answer
//! with the outcome recorded.

use crate::audit::{event, Caller};
use crate::error::{ApiError, ApiResult};
use crate::mail::Mailer;
use crate::state::AppState;
use baton_core::ErrorCode;
use http::StatusCode;

/// 503 `email_unavailable`: no mail set up.
pub fn unavailable() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::EmailUnavailable,
        "mail is not set up on this server (BATON_SMTP_URL)",
    );
    e.retry_after = Some(3600);
    e
}

/// The mailer, or 503 `email_unavailable` when `BATON_SMTP_URL` is not set: every endpoint
/// of the email flows answers so, before any other work.
pub fn mailer(state: &AppState) -> ApiResult<&Mailer> {
    state.mailer.as_ref().ok_or_else(unavailable)
}

/// How a mail sent by `send_later` is recorded.
#[derive(Debug)]
pub struct Audit {
    pub user_id: Option<String>,
    pub caller: Caller,
    /// The audit event types for sent and for failed.
    pub kinds: (&'static str, &'static str),
    /// The mail, in the event's detail (`sign-in`, `password_reset`, ...).
    pub what: &'static str,
}

/// Sends after the answer (its time then says nothing about the address) and records the
/// outcome: `auth_email_total{step}` and the audit event `kinds.0` (sent) or `kinds.1`
/// (failed), `what` naming the mail in its detail.
pub fn send_later(
    state: &AppState,
    mailer: &Mailer,
    to: String,
    subject: &'static str,
    text: String,
    audit: Audit,
) {
    let (state, mailer) = (state.clone(), mailer.clone());
    tokio::spawn(async move {
        let sent = mailer.send(&to, subject, text).await;
        state
            .metrics
            .email(if sent.is_ok() { "sent" } else { "send_failed" });
        let what = audit.what;
        let (kind, severity, detail) = match &sent {
            Ok(()) => (
                audit.kinds.0,
                "info",
                format!("{what} mail handed to the SMTP server"),
            ),
            Err(e) => {
                tracing::warn!(error = %e, what, "sending a mail failed");
                (
                    audit.kinds.1,
                    "warning",
                    format!("{what} mail not sent: {e}"),
                )
            }
        };
        let e = event(
            audit.user_id.as_deref(),
            kind,
            severity,
            None,
            &audit.caller,
            &detail,
        );
        if let Err(err) = state.store.insert_event(&e).await {
            tracing::warn!(error = %err, "recording a mail failed");
        }
    });
}
