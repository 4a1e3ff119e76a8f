//! `baton-server admin ...`: the operator's commands on the server's machine. Tokens are
//! written to the database directly; users are changed through the same functions as the
//! admin API (`signin::admin`), so the checks, transactions, audit events and the events
//! file are the same, and running instances learn of it as they learn of each other's changes.

use crate::audit::Caller;
use crate::config::{AdminAction, Config, TokenAction, UsersAction};
use crate::rules::account as rules;
use crate::signin::admin::{self, Admin, Patch};
use crate::state::AppState;
use crate::store::{Schema, Store};

/// Runs one admin command; what to print.
pub async fn run(mut config: Config, action: &AdminAction) -> anyhow::Result<String> {
    match action {
        AdminAction::Token { action } => {
            // The schema as the running instances have it: an admin command never migrates.
            let store = Store::connect_with(
                &config.database_url,
                config.request_timeout,
                Schema::Require,
            )
            .await?;
            let out = token(&store, action).await;
            store.close().await;
            out
        }
        AdminAction::Users { action } => {
            config.migrate_on_start = false;
            let state = AppState::new(config).await?;
            let out = users(&state, action).await;
            state.store.close().await;
            out
        }
    }
}

async fn token(store: &Store, action: &TokenAction) -> anyhow::Result<String> {
    match action {
        TokenAction::Create {
            name,
            scopes,
            expires,
        } => {
            let scopes = rules::scopes(scopes).map_err(anyhow::Error::msg)?;
            let secret = admin::create_token(store, name, &scopes, *expires)
                .await?
                .ok_or_else(|| anyhow::anyhow!("a token named {name:?} exists: revoke it first"))?;
            Ok(format!(
                "{secret}\n(admin token {name:?}: shown this once, only its digest is stored)"
            ))
        }
        TokenAction::List => {
            let rows = store.admin_tokens().await?;
            if rows.is_empty() {
                return Ok("no admin tokens".into());
            }
            let when = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), rules::format_time);
            let mut out = format!(
                "{:<24} {:<48} {:<21} {:<21} {}",
                "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED"
            );
            for r in rows {
                out.push_str(&format!(
                    "\n{:<24} {:<48} {:<21} {:<21} {}",
                    r.name,
                    r.scopes.replace(' ', ","),
                    rules::format_time(r.created_at),
                    when(r.expires_at),
                    when(r.last_used_at)
                ));
            }
            Ok(out)
        }
        TokenAction::Revoke { name } => {
            if store.delete_admin_token(name).await? {
                Ok(format!("admin token {name:?} revoked"))
            } else {
                anyhow::bail!("no admin token named {name:?}")
            }
        }
    }
}

async fn users(state: &AppState, action: &UsersAction) -> anyhow::Result<String> {
    let operator = Admin::operator();
    let c = Caller {
        ip: "local".into(),
        device_id: None,
        user_agent: Some("baton-server admin".into()),
        request_key: None,
    };
    let email = match action {
        UsersAction::Find { email }
        | UsersAction::Disable { email, .. }
        | UsersAction::Enable { email }
        | UsersAction::SignOut { email }
        | UsersAction::Delete { email } => email,
    };
    let user = admin::find(state, email)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?
        .ok_or_else(|| anyhow::anyhow!("no account has the address {email}"))?;
    let api = |e: crate::error::ApiError| anyhow::anyhow!("{}", e.message);
    let now = crate::clock::now_ms();
    match action {
        UsersAction::Find { .. } => {
            let sessions = state.store.live_sessions(&user.id, now).await?.len();
            Ok(format!(
                "id: {}\nemail: {}\nemail verified: {}\ncreated: {}\nlast sign-in: {}\nroles: {}\n\
                 disabled until: {}\nlive sessions: {sessions}",
                user.id,
                user.email,
                user.email_verified,
                rules::format_time(user.created_at),
                user.last_sign_in_at
                    .map_or_else(|| "never".into(), rules::format_time),
                if user.roles.is_empty() {
                    "-".into()
                } else {
                    user.roles.join(", ")
                },
                rules::disabled_json(user.disabled_until, now).unwrap_or_else(|| "-".into()),
            ))
        }
        UsersAction::Disable { until, .. } => {
            let value =
                serde_json::Value::String(until.clone().unwrap_or_else(|| "forever".into()));
            let patch = Patch {
                disabled_until: Some(value),
                ..Patch::default()
            };
            let user = admin::change(state, &operator, &c, &user.id, patch)
                .await
                .map_err(api)?;
            let until = rules::disabled_json(user.disabled_until, crate::clock::now_ms())
                .unwrap_or_else(|| "no time (the time given has passed)".into());
            Ok(format!(
                "{} disabled until {until}: every session ended",
                user.email
            ))
        }
        UsersAction::Enable { .. } => {
            let patch = Patch {
                disabled_until: Some(serde_json::Value::Null),
                ..Patch::default()
            };
            admin::change(state, &operator, &c, &user.id, patch)
                .await
                .map_err(api)?;
            Ok(format!("{} may sign in again", user.email))
        }
        UsersAction::SignOut { .. } => {
            let n = admin::sign_out(state, &operator, &c, &user.id)
                .await
                .map_err(api)?;
            Ok(format!("{}: {n} session(s) ended", user.email))
        }
        UsersAction::Delete { .. } => {
            admin::delete_user(state, &operator, &c, &user.id)
                .await
                .map_err(api)?;
            Ok(format!(
                "{} deleted: sessions ended, personal data erased",
                user.email
            ))
        }
    }
}
