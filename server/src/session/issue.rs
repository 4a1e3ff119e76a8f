//! What a session hands out: the token response (access token, refresh token) and the user.

use crate::crypto::keys::Keys;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{SessionRow, UserRow};
use baton_core::{AccessClaims, TokenResponse, User};

/// Tokens issued for a session (a sign-in, a refresh): the response body and the session as
/// stored, which the HTTP layer needs for the refresh cookie.
#[derive(Debug)]
pub struct Issued {
    pub body: TokenResponse,
    pub session: SessionRow,
}

pub fn user_json(u: &UserRow) -> User {
    User {
        id: u.id.clone(),
        email: u.email.clone(),
        created_at: u.created_at / 1000,
        email_verified: u.email_verified,
        roles: u.roles.clone(),
    }
}

/// 403 `user_disabled`: the account may not sign in or refresh now.
pub fn disabled() -> ApiError {
    ApiError::new(
        http::StatusCode::FORBIDDEN,
        baton_core::ErrorCode::UserDisabled,
        "this account is disabled",
    )
}

/// A token response for `session` at `generation`, with an access token whose `exp` never
/// passes the session's end.
pub fn token_response(
    state: &AppState,
    session: &SessionRow,
    user: &UserRow,
    generation: i64,
    now: i64,
) -> ApiResult<TokenResponse> {
    let body = unsent_response(state, session, user, generation, now)?;
    count_issued(state);
    Ok(body)
}

/// Counts a token response's two tokens as issued (`token_response` does it; a response made
/// by `unsent_response` is counted when it is sent).
pub fn count_issued(state: &AppState) {
    state.metrics.token_issued("access");
    state.metrics.token_issued("refresh");
}

/// `token_response` made ahead of knowing whether it will be sent: not counted as issued.
pub fn unsent_response(
    state: &AppState,
    session: &SessionRow,
    user: &UserRow,
    generation: i64,
    now: i64,
) -> ApiResult<TokenResponse> {
    let now_s = now / 1000;
    let ends_s = session.ends_at() / 1000;
    let mut exp = (now_s + state.config.access_ttl.as_secs() as i64).min(ends_s);
    let aal = crate::rules::totp::aal(session.aal, session.step_up_until, now);
    if aal > session.aal {
        // Level 2 from a step-up: the token says so no longer than the step-up lasts.
        if let Some(until) = session.step_up_until {
            exp = exp.min(until / 1000);
        }
    }
    let claims = AccessClaims {
        iss: state.config.issuer(),
        aud: state.config.audience.clone(),
        sub: user.id.clone(),
        sid: session.id.clone(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now_s,
        exp,
        email_verified: user.email_verified,
        roles: user.roles.clone(),
        amr: session.amr.clone(),
        aal: aal as u8,
        cnf: session
            .dpop_jkt
            .clone()
            .map(|jkt| baton_core::Confirmation { jkt }),
    };
    let access_token = state.keys.sign_access(&claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        ApiError::internal()
    })?;
    let sid = parse_sid(&session.id)?;
    let refresh = state.keys.refresh_token(&sid, generation, &session.nonce);
    Ok(TokenResponse {
        access_token,
        token_type: if session.dpop_jkt.is_some() {
            "DPoP".into()
        } else {
            "Bearer".into()
        },
        expires_in: (exp - now_s).max(0) as u64,
        expires_at: exp,
        refresh_token: (!session.cookie_transport).then_some(refresh),
        refresh_expires_in: (ends_s - now_s).max(0) as u64,
        session_id: session.id.clone(),
        user: user_json(user),
    })
}

/// The refresh token for a token response in cookie mode (the body omits it).
pub fn cookie_token(keys: &Keys, session: &SessionRow, generation: i64) -> ApiResult<String> {
    Ok(keys.refresh_token(&parse_sid(&session.id)?, generation, &session.nonce))
}

fn parse_sid(id: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::internal())
}
