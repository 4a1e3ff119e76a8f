//! What the methods proven by mail share: whether mail is set up, and sending after the answer
//! with the outcome recorded.

use crate::audit::{event, Caller};
use crate::error::{ApiError, ApiResult};
use crate::mail::Mailer;
use crate::state::AppState;
use crate::store::UserRow;
use crate::throttle::{self, Subject};
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

/// The limits on mails to an address (`which`: `otp_email` or `reset_email`): per client
/// address; per address and requester, so a stranger's requests never use up the owner's; and
/// per address whoever asks, except from a device the account knows. The same work is done
/// whether `user` exists or not.
pub async fn mail_limits(
    state: &AppState,
    c: &Caller,
    email: &str,
    user: Option<&UserRow>,
    which: &'static str,
) -> ApiResult<()> {
    let none = Subject::default();
    let ip_key = format!("otp_ip:{}", c.ip);
    throttle::limit(state, &ip_key, crate::limits::OTP_PER_IP, "otp_ip", c, none).await?;
    let key = format!("{which}:{email}:{}", c.requester());
    throttle::limit(state, &key, crate::limits::OTP_PER_EMAIL, which, c, none).await?;
    let known = match &c.device_id {
        Some(d) => {
            let user_id = user.map_or("", |u| u.id.as_str());
            state.store.device_known(user_id, d).await?
        }
        None => false,
    };
    if !known {
        let key = format!("{which}_all:{email}");
        let rule = crate::limits::OTP_PER_ADDRESS;
        throttle::limit(state, &key, rule, "mail_address", c, none).await?;
    }
    Ok(())
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
