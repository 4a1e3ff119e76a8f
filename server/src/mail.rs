//! Sending mail over SMTP (lettre): the transport alone. What is mailed, and how it is
//! recorded, is `signin::mail`.
//! Configured by `BATON_SMTP_URL`, `BATON_SMTP_PASSWORD_FILE` and `BATON_MAIL_FROM`.

use crate::config::Config;
use anyhow::{bail, Context};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one delivery to the SMTP server may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The app page sign-in links open (`BATON_MAGIC_LINK_URL`).
    pub link_base: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the SMTP credentials: never printed.
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The mailer the settings describe; `None` without `BATON_SMTP_URL`. Incomplete or
    /// invalid settings are an error at start, naming what to set.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.smtp_url else {
            return Ok(None);
        };
        // Every missing setting at once, not one per start.
        let missing: Vec<&str> = [
            (
                config.mail_from.is_none(),
                "BATON_MAIL_FROM (the sender of the mails)",
            ),
            (
                config.magic_link_url.is_none(),
                "BATON_MAGIC_LINK_URL (the app page the mailed links open)",
            ),
        ]
        .into_iter()
        .filter_map(|(gone, what)| gone.then_some(what))
        .collect();
        if !missing.is_empty() {
            bail!("BATON_SMTP_URL is set: set {} too", missing.join(" and "));
        }
        let from: Mailbox = config
            .mail_from
            .as_deref()
            .unwrap_or_default()
            .parse()
            .context(
                "BATON_MAIL_FROM is not a mail address such as `Example <no-reply@example.com>`",
            )?;
        let link_base = config.magic_link_url.clone().unwrap_or_default();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("BATON_SMTP_URL is not a usable SMTP URL: {e}"))?
            .timeout(Some(SEND_TIMEOUT));
        if let Some(file) = &config.smtp_password_file {
            let password = std::fs::read_to_string(file)
                .with_context(|| format!("reading BATON_SMTP_PASSWORD_FILE {}", file.display()))?;
            let Some(user) = url_user(url) else {
                bail!(
                    "BATON_SMTP_PASSWORD_FILE needs the user in BATON_SMTP_URL (smtp://user@host)"
                );
            };
            builder = builder.credentials(Credentials::new(
                user.to_owned(),
                password.trim_end_matches(['\r', '\n']).to_owned(),
            ));
        }
        Ok(Some(Self {
            transport: builder.build(),
            from,
            link_base,
        }))
    }

    /// Sends a plain-text mail; the error is for the log (it names no secret).
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        // Built from its parts, never parsed as a mailbox: nothing in the address can turn
        // into a display name or another recipient.
        let (user, domain) = to.rsplit_once('@').ok_or("recipient: not an address")?;
        let address = lettre::Address::new(user, domain).map_err(|e| format!("recipient: {e}"))?;
        let to = Mailbox::new(None, address);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }

    /// A mailed link: `BATON_MAGIC_LINK_URL` with `param=token` added to its query (`token`
    /// signs in, `reset_token` and `verify_token` are the account actions of `recovery`).
    pub fn link(&self, param: &str, token: &str) -> String {
        let sep = if self.link_base.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}{param}={token}", self.link_base)
    }
}

/// The user of `scheme://user[:password]@host...`.
fn url_user(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let (userinfo, _) = rest.split_once('@')?;
    let user = userinfo.split(':').next()?;
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_of_an_smtp_url() {
        assert_eq!(
            url_user("smtp://mailer@mail.example.com:587"),
            Some("mailer")
        );
        assert_eq!(
            url_user("smtps://mailer:pw@mail.example.com"),
            Some("mailer")
        );
        assert_eq!(url_user("smtp://mail.example.com:25"), None);
    }
}
