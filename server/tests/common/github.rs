//! A local stand-in for GitHub's OAuth endpoints and the two API calls Baton makes, as
//! GitHub documents them: `GET /login/oauth/authorize` (approves at once as the current
//! user, or answers `error=access_denied`), `POST /login/oauth/access_token` (checks the client
//! secret, the code's single use, its redirect URI and PKCE S256; refusals are 200 with
//! `error`, as GitHub does), `GET /api/v3/user` and `GET /api/v3/user/emails`.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "gh-client";
pub const CLIENT_SECRET: &str = "gh-secret";

#[derive(Debug, Clone)]
pub struct GithubUser {
    pub id: u64,
    /// (address, primary, verified)
    pub emails: Vec<(String, bool, bool)>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Who approves the next authorization; `None`: the user declines.
    current: Option<GithubUser>,
    /// code → (redirect_uri, code_challenge, user)
    codes: HashMap<String, (String, String, GithubUser)>,
    tokens: HashMap<String, GithubUser>,
    /// Token requests seen, and those refused.
    pub exchanges: u32,
}

#[derive(Debug, Clone)]
pub struct Github {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Github {
    pub async fn start() -> Github {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/api/v3/user", get(user))
            .route("/api/v3/user/emails", get(emails))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Github { url, inner }
    }

    /// The user who approves the next authorizations (`None`: they decline).
    pub fn sign_in_as(&self, user: Option<GithubUser>) {
        self.inner.lock().unwrap().current = user;
    }

    pub fn exchanges(&self) -> u32 {
        self.inner.lock().unwrap().exchanges
    }
}

type Shared = Arc<Mutex<Inner>>;

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let mut inner = s.lock().unwrap();
    let Some(user) = inner.current.clone() else {
        return found(format!("{redirect_uri}?error=access_denied&state={state}"));
    };
    let code = uuid::Uuid::new_v4().simple().to_string();
    let challenge = q.get("code_challenge").cloned().unwrap_or_default();
    inner
        .codes
        .insert(code.clone(), (redirect_uri.clone(), challenge, user));
    found(format!("{redirect_uri}?code={code}&state={state}"))
}

async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Json<Value> {
    let mut inner = s.lock().unwrap();
    inner.exchanges += 1;
    let refused = |e: &str| Json(json!({"error": e}));
    if headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return refused("json_only_in_this_stand_in");
    }
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return refused("incorrect_client_credentials");
    }
    let code = f.get("code").cloned().unwrap_or_default();
    let Some((redirect_uri, challenge, user)) = inner.codes.remove(&code) else {
        return refused("bad_verification_code");
    };
    if f.get("redirect_uri") != Some(&redirect_uri) {
        return refused("redirect_uri_mismatch");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())) != challenge {
        return refused("bad_verification_code");
    }
    let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    inner.tokens.insert(token.clone(), user);
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}))
}

/// 302, as GitHub answers.
fn found(location: String) -> Response {
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, location)],
    )
        .into_response()
}

fn bearer(s: &Shared, headers: &HeaderMap) -> Option<GithubUser> {
    let h = headers.get("authorization")?.to_str().ok()?;
    let t = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("token "))?;
    s.lock().unwrap().tokens.get(t).cloned()
}

async fn user(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match bearer(&s, &headers) {
        Some(u) => Json(json!({"id": u.id, "login": format!("user{}", u.id)})).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn emails(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match bearer(&s, &headers) {
        Some(u) => Json(
            u.emails
                .iter()
                .map(|(e, p, v)| json!({"email": e, "primary": p, "verified": v, "visibility": null}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}
