//! `POST /auth/login`: sign-in by password.

use super::extract::{choice, ApiJson, RefreshTransport};
use super::reply::respond_signed_in;
use crate::audit::Caller;
use crate::error::ApiResult;
use crate::signin::password::{login as sign_in, Login};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    refresh_transport: RefreshTransport,
}

#[utoipa::path(post, path = "/auth/login", tag = "account", request_body = LoginBody,
    params(("X-Device-ID" = Option<String>, Header, description = "the browser profile's device id"),
        ("DPoP" = Option<String>, Header, description = "a DPoP proof (RFC 9449): binds the session to its key")),
    responses((status = 200, description = "the token response, or `mfa_required` when the account has a second factor", body = crate::api::schema::SignInAnswer),
        (status = 401, description = "invalid_credentials, dpop_proof_invalid", body = baton_core::ErrorBody), (status = 429, description = "account_locked or rate_limited", body = baton_core::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let login = Login {
        email: body.email,
        password: body.password,
        choice: choice(body.remember_me, body.refresh_transport),
    };
    let issued = sign_in(&state, &c, &headers, login).await?;
    respond_signed_in(&state, &issued)
}
