//! GitHub (and GitHub Enterprise Server): OAuth 2.0 with PKCE, then the API's user (its
//! numeric id is the subject) and its primary address with GitHub's verified flag.

use super::file::ProviderSpec;
use super::{json_answer, unreachable, Callback, Upstream};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    /// GitHub answers a refused code with 200 and `error`.
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: u64,
}

#[derive(Debug, Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

pub async fn finish(
    http: &reqwest::Client,
    spec: &ProviderSpec,
    web: &str,
    api: &str,
    cb: &Callback<'_>,
) -> Result<Upstream, String> {
    let what = "the token exchange";
    let res = http
        .post(format!("{web}/login/oauth/access_token"))
        .header("Accept", "application/json")
        .form(&[
            ("client_id", spec.client_id.as_str()),
            ("client_secret", spec.client_secret.as_str()),
            ("code", cb.code),
            ("redirect_uri", cb.redirect_uri),
            ("code_verifier", cb.verifier),
        ])
        .send()
        .await
        .map_err(|e| unreachable(what, e))?;
    let answer: TokenAnswer = json_answer(res, what).await?;
    let token = match (answer.access_token, answer.error) {
        (Some(t), None) if !t.is_empty() => t,
        (_, Some(e)) => return Err(format!("{what}: {e}")),
        _ => return Err(format!("{what}: no access token")),
    };
    let get = |path: &str| {
        http.get(format!("{api}{path}"))
            .bearer_auth(&token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
    };
    let user: User = json_answer(
        get("/user").await.map_err(|e| unreachable("the user", e))?,
        "the user",
    )
    .await?;
    let emails: Vec<Email> = json_answer(
        get("/user/emails")
            .await
            .map_err(|e| unreachable("the user's addresses", e))?,
        "the user's addresses",
    )
    .await?;
    // The primary address, and whether GitHub checked it; another verified address is not
    // taken in its place (it may be an old one the user no longer reads).
    let primary = emails.into_iter().find(|e| e.primary);
    Ok(Upstream {
        subject: user.id.to_string(),
        email_verified: primary.as_ref().is_some_and(|e| e.verified),
        email: primary.map(|e| e.email),
    })
}
