//! Administration: admin tokens (made on the server's machine, shown once, stored as digests,
//! each with its scopes) and what an administrator does to accounts and sessions. The admin
//! API and the `baton-server admin` command both call these, so an operator at a shell and a
//! script over HTTP go through the same checks, transactions and audit events.

use super::account::check_password;
use crate::audit::{event, Caller};
use crate::clock::now_ms;
use crate::crypto::password::NO_PASSWORD;
use crate::error::{ApiError, ApiResult};
use crate::rules::account::{self as rules, Scope};
use crate::state::AppState;
use crate::store::accounts::{AccountChange, Changed, DISABLED};
use crate::store::admin_tokens::AdminTokenRow;
use crate::store::{Store, UserRow};
use baton_core::ErrorCode;
use http::StatusCode;

/// Who administers: an admin token's name and scopes, or the operator at the server's shell.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Admin {
    /// The operator running `baton-server admin` on the server's machine: every scope.
    pub fn operator() -> Self {
        Self {
            name: "cli".into(),
            scopes: Scope::ALL.to_vec(),
        }
    }

    /// 403 `insufficient_scope` unless the token has `scope`.
    pub fn may(&self, scope: Scope) -> ApiResult<()> {
        if self.scopes.contains(&scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InsufficientScope,
            format!("this admin token lacks the scope {}", scope.as_str()),
        ))
    }

    /// The `admin_action` event of a change to `user_id`: who, and what changed.
    fn action(&self, user_id: Option<&str>, c: &Caller, what: &str) -> crate::store::NewEvent {
        let detail = format!("admin token {}: {what}", self.name);
        event(user_id, "admin_action", "warning", None, c, &detail)
    }
}

/// Admin tokens begin so, which tells them from access tokens (and secret scanners).
pub const TOKEN_PREFIX: &str = "baton_admin_";

/// The stored digest of an admin token: its secret has 256 random bits, so a plain SHA-256
/// is enough (no guessing to slow down).
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes an admin token: its secret, shown once; `Ok(None)` when the name is taken.
pub async fn create_token(
    store: &Store,
    name: &str,
    scopes: &[Scope],
    expires_in: Option<std::time::Duration>,
) -> anyhow::Result<Option<String>> {
    rules::token_name(name).map_err(anyhow::Error::msg)?;
    let now = now_ms();
    let secret = format!("{TOKEN_PREFIX}{}", crate::crypto::keys::random_nonce());
    let row = AdminTokenRow {
        name: name.to_owned(),
        scopes: scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        created_at: now,
        expires_at: expires_in.map(|d| now + d.as_millis() as i64),
        last_used_at: None,
    };
    Ok(store
        .insert_admin_token(&row, &token_digest(&secret))
        .await?
        .then_some(secret))
}

/// The admin of a presented token; `None` for an unknown, revoked or expired one.
pub async fn authenticate(state: &AppState, token: &str) -> ApiResult<Option<Admin>> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let row = state
        .store
        .admin_token_by_hash(&token_digest(token), now_ms())
        .await?;
    Ok(row.map(|r| Admin {
        name: r.name,
        // Stored by `create_token`: scopes this build knows, or none if a newer one wrote it.
        scopes: rules::scopes(&r.scopes).unwrap_or_default(),
    }))
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such user")
}

fn email_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::EmailTaken,
        "an account with this email exists",
    )
}

/// A user by id; 404 `not_found`.
pub async fn user(state: &AppState, user_id: &str) -> ApiResult<UserRow> {
    state.store.user_by_id(user_id).await?.ok_or_else(not_found)
}

/// A user by address (canonicalised as sign-in does); `None` when there is none.
pub async fn find(state: &AppState, email: &str) -> ApiResult<Option<UserRow>> {
    let Some(email) = crate::rules::email::normalize(email) else {
        return Err(ApiError::validation("email is not a valid address"));
    };
    Ok(state.store.user_by_email(&email).await?)
}

/// A page of users in creation order and the cursor of the next page, if any.
pub async fn list(
    state: &AppState,
    cursor: Option<&str>,
    limit: i64,
) -> ApiResult<(Vec<UserRow>, Option<String>)> {
    let after = cursor
        .map(rules::read_user_cursor)
        .transpose()
        .map_err(ApiError::validation)?;
    let users = state
        .store
        .list_users(after.as_ref().map(|(at, id)| (*at, id.as_str())), limit)
        .await?;
    let next = (users.len() as i64 == limit)
        .then(|| {
            users
                .last()
                .map(|u| rules::user_cursor(u.created_at, &u.id))
        })
        .flatten();
    Ok((users, next))
}

/// What an administrator asks for a new account.
#[derive(Debug, Default)]
pub struct NewAccount {
    pub email: String,
    pub password: Option<String>,
    pub email_verified: bool,
    pub roles: Vec<String>,
    pub app_metadata: Option<serde_json::Value>,
}

/// Creates an account (whatever `BATON_REGISTRATION` says); 409 `email_taken`.
pub async fn create_user(
    state: &AppState,
    admin: &Admin,
    c: &Caller,
    new: NewAccount,
) -> ApiResult<UserRow> {
    let email = crate::rules::email::normalize(&new.email)
        .ok_or_else(|| ApiError::validation("email is not a valid address"))?;
    let roles = rules::roles(&new.roles).map_err(ApiError::validation)?;
    let meta = new
        .app_metadata
        .as_ref()
        .map(|m| rules::metadata("app_metadata", m))
        .transpose()
        .map_err(ApiError::validation)?;
    let hash = match new.password {
        Some(p) => {
            check_password(&p)?;
            state.password.hash(p).await?
        }
        None => NO_PASSWORD.to_owned(),
    };
    let now = now_ms();
    let mut user = UserRow::new(uuid::Uuid::new_v4().to_string(), email, hash, now);
    let e = admin.action(Some(&user.id), c, "created the user");
    if !state.store.insert_user(&user, &e).await? {
        return Err(email_taken());
    }
    let change = AccountChange {
        email_verified: new.email_verified.then_some(true),
        roles: (!roles.is_empty()).then_some(roles),
        app_metadata: meta,
        ..AccountChange::default()
    };
    if change.email_verified.is_some() || change.roles.is_some() || change.app_metadata.is_some() {
        let e = admin.action(Some(&user.id), c, &describe(&change));
        user = match state
            .store
            .change_account(&user.id, &change, now, &e)
            .await?
        {
            Changed::Done { user, .. } => *user,
            _ => return Err(not_found()),
        };
    }
    Ok(user)
}

/// What a change says in its event: the fields, never their values' personal data.
fn describe(change: &AccountChange) -> String {
    let mut parts: Vec<String> = Vec::new();
    if change.email.is_some() {
        parts.push("email changed".into());
    }
    if let Some(v) = change.email_verified {
        parts.push(format!("email_verified set to {v}"));
    }
    if let Some(r) = &change.roles {
        parts.push(format!("roles set to [{}]", r.join(", ")));
    }
    if change.app_metadata.is_some() {
        parts.push("app_metadata replaced".into());
    }
    match change.disabled_until {
        Some(None) => parts.push("enabled".into()),
        Some(Some(rules::FOREVER)) => parts.push("disabled for good".into()),
        Some(Some(t)) => parts.push(format!("disabled until {}", rules::format_time(t))),
        None => {}
    }
    if parts.is_empty() {
        "nothing changed".into()
    } else {
        parts.join("; ")
    }
}

/// The fields of an administrator's change, as asked (JSON values, checked here).
#[derive(Debug, Default)]
pub struct Patch {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub app_metadata: Option<serde_json::Value>,
    /// `Some(value)`: `null`, `"forever"` or an RFC 3339 time.
    pub disabled_until: Option<serde_json::Value>,
}

/// Changes an account; disabling it ends its sessions at once (their access tokens are
/// refused by every instance within about a second, their refreshes are 403
/// `user_disabled`), and a change of roles or address shows in every token issued after it.
pub async fn change(
    state: &AppState,
    admin: &Admin,
    c: &Caller,
    user_id: &str,
    patch: Patch,
) -> ApiResult<UserRow> {
    let change = AccountChange {
        email: patch
            .email
            .map(|e| {
                crate::rules::email::normalize(&e)
                    .ok_or_else(|| ApiError::validation("email is not a valid address"))
            })
            .transpose()?,
        email_verified: patch.email_verified,
        roles: patch
            .roles
            .map(|r| rules::roles(&r))
            .transpose()
            .map_err(ApiError::validation)?,
        app_metadata: patch
            .app_metadata
            .map(|m| rules::metadata("app_metadata", &m))
            .transpose()
            .map_err(ApiError::validation)?,
        disabled_until: patch
            .disabled_until
            .map(|v| rules::disabled_until(&v))
            .transpose()
            .map_err(ApiError::validation)?,
    };
    let now = now_ms();
    let e = admin.action(Some(user_id), c, &describe(&change));
    match state
        .store
        .change_account(user_id, &change, now, &e)
        .await?
    {
        Changed::Done { user, ended } => {
            state.session_cache.forget_user(user_id);
            crate::session::end::ended(state, &ended, DISABLED, now);
            Ok(*user)
        }
        Changed::EmailTaken => Err(email_taken()),
        Changed::NotFound => Err(not_found()),
    }
}

/// Deletes an account as its owner would (`profile::erase`), recorded as an admin action.
pub async fn delete_user(
    state: &AppState,
    admin: &Admin,
    c: &Caller,
    user_id: &str,
) -> ApiResult<()> {
    let how = format!("deleted by admin token {}", admin.name);
    if !super::profile::erase(state, user_id, &how, now_ms()).await? {
        return Err(not_found());
    }
    // The erasure's own event keeps the user id only; this one says who asked.
    let e = admin.action(Some(user_id), c, "deleted the user");
    state.store.insert_event(&e).await?;
    Ok(())
}

/// Ends every session of a user; how many ended.
pub async fn sign_out(
    state: &AppState,
    admin: &Admin,
    c: &Caller,
    user_id: &str,
) -> ApiResult<usize> {
    user(state, user_id).await?;
    let now = now_ms();
    let mut count = 0;
    crate::session::end::all(state, user_id, "admin", now, |n| {
        count = n;
        let sessions = if n == 1 { "session" } else { "sessions" };
        admin.action(
            Some(user_id),
            c,
            &format!("signed the user out: {n} {sessions} ended"),
        )
    })
    .await?;
    Ok(count)
}

/// Ends one session; 404 `not_found` when there is no such live session.
pub async fn revoke_session(
    state: &AppState,
    admin: &Admin,
    c: &Caller,
    session_id: &str,
) -> ApiResult<()> {
    let session = state
        .store
        .session(session_id)
        .await?
        .filter(|s| s.revoked_at.is_none())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such session",
            )
        })?;
    let now = now_ms();
    let e = admin.action(
        Some(&session.user_id),
        c,
        &format!("revoked session {}", session.id),
    );
    if state.store.revoke(&session.id, "admin", now, &e).await? {
        crate::session::end::ended(state, std::slice::from_ref(&session.id), "admin", now);
    }
    Ok(())
}

/// Removes every second factor and recovery code of a user (a lost phone): the next sign-in
/// needs the password (or mail) alone.
pub async fn reset_second_factors(
    state: &AppState,
    admin: &Admin,
    c: &Caller,
    user_id: &str,
) -> ApiResult<()> {
    user(state, user_id).await?;
    let e = admin.action(Some(user_id), c, "reset the second factors");
    state.store.reset_second_factors(user_id, &e).await?;
    Ok(())
}
