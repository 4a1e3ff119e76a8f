//! Sign-in through an identity provider (docs/api.md, "Identity providers"), with GitHub's
//! kind against a local stand-in of its endpoints (`common::github`): the whole flow, the
//! account rules (link only on a verified address, the pre-account takeover ended, closed
//! registration), and the refusals: state replayed or from another browser, a stolen code
//! injected into another flow (PKCE), the exchange code reused or from another browser,
//! redirect_to not allowed, the user declining; linking and unlinking; the providers file.
//! OpenID Connect against a certified provider is in tests/e2e/oauth.test.mjs.

mod common;

use common::github::{Github, GithubUser, CLIENT_ID, CLIENT_SECRET};
use common::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};

const APP: &str = "http://app.test/done";
const PUBLIC: &str = "http://baton.test";

struct Setup {
    s: Server,
    gh: Github,
    _dir: tempdir::Dir,
}

mod tempdir {
    #[derive(Debug)]
    pub(crate) struct Dir(pub(crate) std::path::PathBuf);
    impl Dir {
        pub(crate) fn new() -> Dir {
            let p =
                std::env::temp_dir().join(format!("baton-oauth-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn setup(extra: &[(&str, &str)]) -> Setup {
    let gh = Github::start().await;
    let dir = tempdir::Dir::new();
    std::fs::write(dir.0.join("gh-secret"), format!("{CLIENT_SECRET}\n")).unwrap();
    let file = dir.0.join("providers.toml");
    std::fs::write(
        &file,
        format!(
            "[providers.gh]\nkind = \"github\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret_file = \"gh-secret\"\nbase_url = \"{}\"\ndisplay_name = \"GitHub\"\n",
            gh.url
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let mut overrides = vec![
        ("providers-file", file.as_str()),
        ("redirect-allowlist", APP),
    ];
    overrides.extend_from_slice(extra);
    let s = Server::start(&overrides).await;
    Setup { s, gh, _dir: dir }
}

fn user(id: u64, email: &str, verified: bool) -> GithubUser {
    GithubUser {
        id,
        emails: vec![
            (format!("old{id}@example.com"), false, true),
            (email.to_owned(), true, verified),
        ],
    }
}

/// A browser: its `baton_oauth` cookie, following no redirect by itself.
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn get(&mut self, url: &str) -> Response {
        let mut r = self.http.get(url);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", format!("baton_oauth={c}"));
        }
        let res = r.send().await.unwrap();
        self.keep_cookie(&res);
        res
    }

    /// Keeps the `baton_oauth` cookie an answer sets, checking its attributes.
    fn keep_cookie(&mut self, res: &Response) {
        if let Some(v) = res.headers().get("set-cookie") {
            let v = v.to_str().unwrap();
            assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax"), "{v}");
            self.cookie = Some(
                v.split(';')
                    .next()
                    .unwrap()
                    .trim_start_matches("baton_oauth=")
                    .to_owned(),
            );
        }
    }

    /// A link flow of the signed-in `access` through the provider: the app's page it ends on.
    async fn link(&mut self, st: &Setup, access: &str) -> String {
        let body = json!({"redirect_to": APP});
        let r = self
            .post(&st.s, "/auth/identities/gh/link/start", body, Some(access))
            .await;
        assert_eq!(r.status(), 200);
        self.keep_cookie(&r);
        let url = r.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let cb = location(&self.get(&url).await).replace(PUBLIC, &st.s.url);
        location(&self.get(&cb).await)
    }

    async fn post(&self, s: &Server, path: &str, body: Value, access: Option<&str>) -> Response {
        let mut r = self
            .http
            .post(format!("{}{path}", s.url))
            .header("x-device-id", "dev-1")
            .json(&body);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", format!("baton_oauth={c}"));
        }
        if let Some(a) = access {
            r = r.bearer_auth(a);
        }
        r.send().await.unwrap()
    }
}

fn location(r: &Response) -> String {
    assert_eq!(r.status(), 302, "{r:?}");
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Start → the provider's page (it approves) → the callback URL the provider sends back.
async fn to_callback(st: &Setup, b: &mut Browser) -> String {
    let start = format!(
        "{}/auth/oauth/gh/start?redirect_to={}",
        st.s.url,
        urlencode(APP)
    );
    let to_provider = location(&b.get(&start).await);
    assert!(to_provider.starts_with(&format!("{}/login/oauth/authorize?", st.gh.url)));
    for p in ["state", "code_challenge"] {
        assert!(param(&to_provider, p).is_some_and(|v| v.len() >= 43), "{p}");
    }
    assert_eq!(
        param(&to_provider, "redirect_uri").as_deref(),
        Some("http://baton.test/auth/oauth/gh/callback")
    );
    let back = location(&b.get(&to_provider).await);
    back.replace(PUBLIC, &st.s.url)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The whole flow to the app's page; its URL.
async fn flow(st: &Setup, b: &mut Browser) -> String {
    let cb = to_callback(st, b).await;
    location(&b.get(&cb).await)
}

async fn exchange(st: &Setup, b: &Browser, code: &str) -> Response {
    b.post(&st.s, "/auth/oauth/exchange", json!({"code": code}), None)
        .await
}

async fn signed_in(st: &Setup, b: &mut Browser) -> Tokens {
    let app = flow(st, b).await;
    assert!(app.starts_with(APP), "{app}");
    let code = param(&app, "baton_code").unwrap_or_else(|| panic!("no code: {app}"));
    let r = exchange(st, b, &code).await;
    assert_eq!(r.status(), 200);
    Tokens::from_json(r.json().await.unwrap())
}

async fn me(s: &Server, access: &str) -> Value {
    let r = s.get_auth("/auth/me", access).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["user"].clone()
}

#[tokio::test]
async fn a_new_verified_identity_makes_an_account_and_signs_it_in_again() {
    let st = setup(&[]).await;
    st.gh.sign_in_as(Some(user(101, "Ada@Example.com", true)));
    let mut b = Browser::new();
    let t = signed_in(&st, &mut b).await;
    let c = claims(&t.access);
    assert_eq!(c["amr"], json!(["fed"]));
    let u = me(&st.s, &t.access).await;
    assert_eq!(u["email"], "ada@example.com");
    assert_eq!(u["email_verified"], true);
    // A second sign-in (another browser) is the same account.
    let t2 = signed_in(&st, &mut Browser::new()).await;
    assert_eq!(claims(&t2.access)["sub"], c["sub"]);
    let r = st.s.get_auth("/auth/identities", &t.access).await;
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["identities"][0]["provider"], "gh");
    assert_eq!(list["identities"][0]["subject"], "101");
    assert!(list["identities"][0]["last_used_at"].is_i64());
    let kinds = types(&events(&st.s, &t.access).await);
    for k in [
        "user_registered",
        "identity_linked",
        "oauth_login",
        "login_succeeded",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    let m = st.s.metrics().await;
    assert!(
        m.contains("auth_oauth_total{provider=\"gh\",outcome=\"exchanged\"} 2"),
        "{m}"
    );
    let providers = st.s.get_json("/auth/oauth/providers").await;
    assert_eq!(
        providers,
        json!({"providers": [{"name": "gh", "display_name": "GitHub", "kind": "github"}]})
    );
    st.s.stop().await;
}

#[tokio::test]
async fn the_one_time_code_works_once_and_only_in_the_browser_that_started() {
    let st = setup(&[]).await;
    st.gh.sign_in_as(Some(user(102, "bo@example.com", true)));
    let mut b = Browser::new();
    let app = flow(&st, &mut b).await;
    let code = param(&app, "baton_code").unwrap();
    // Another browser (no cookie, or its own): refused, and the code is not spent by it.
    let mut other = Browser::new();
    expect_error(exchange(&st, &other, &code).await, 401, "invalid_code").await;
    other.cookie = Some("A".repeat(43));
    expect_error(exchange(&st, &other, &code).await, 401, "invalid_code").await;
    assert_eq!(exchange(&st, &b, &code).await.status(), 200);
    expect_error(exchange(&st, &b, &code).await, 401, "invalid_code").await;
    st.s.stop().await;
}

#[tokio::test]
async fn a_state_works_once_and_only_in_its_browser() {
    let st = setup(&[]).await;
    st.gh.sign_in_as(Some(user(103, "cy@example.com", true)));
    let mut b = Browser::new();
    let cb = to_callback(&st, &mut b).await;
    // The callback opened in another browser (a login CSRF): refused, the flow not spent.
    let mut other = Browser::new();
    let refused = location(&other.get(&cb).await);
    assert_eq!(
        param(&refused, "baton_error").as_deref(),
        Some("invalid_state")
    );
    assert!(refused.starts_with(APP));
    let app = location(&b.get(&cb).await);
    assert!(param(&app, "baton_code").is_some(), "{app}");
    // Replayed.
    let again = location(&b.get(&cb).await);
    assert_eq!(
        param(&again, "baton_error").as_deref(),
        Some("invalid_state")
    );
    // A state never issued: no page to return to.
    let forged = format!("{}/auth/oauth/gh/callback?code=x&state=forged", st.s.url);
    expect_error(b.get(&forged).await, 400, "invalid_request").await;
    st.s.stop().await;
}

#[tokio::test]
async fn a_stolen_code_injected_into_another_flow_fails_pkce() {
    let st = setup(&[]).await;
    st.gh
        .sign_in_as(Some(user(104, "victim@example.com", true)));
    let mut victim = Browser::new();
    let victims = to_callback(&st, &mut victim).await;
    let stolen = param(&victims, "code").unwrap();
    // The attacker starts a flow of their own and answers its callback with the stolen code.
    let mut attacker = Browser::new();
    let own = to_callback(&st, &mut attacker).await;
    let injected = format!(
        "{}/auth/oauth/gh/callback?code={stolen}&state={}",
        st.s.url,
        param(&own, "state").unwrap()
    );
    let before = st.gh.exchanges();
    let app = location(&attacker.get(&injected).await);
    assert_eq!(
        param(&app, "baton_error").as_deref(),
        Some("provider_error"),
        "{app}"
    );
    assert_eq!(
        st.gh.exchanges(),
        before + 1,
        "the provider refused the verifier"
    );
    st.s.stop().await;
}

#[tokio::test]
async fn addresses_link_accounts_only_when_the_provider_verified_them() {
    let st = setup(&[]).await;
    let (email, t) = st.s.user("dev-1").await;
    // Unverified at the provider: never linked, nothing made.
    st.gh.sign_in_as(Some(user(105, &email, false)));
    let app = flow(&st, &mut Browser::new()).await;
    assert_eq!(
        param(&app, "baton_error").as_deref(),
        Some("email_unverified")
    );
    st.gh
        .sign_in_as(Some(user(106, "nobody-yet@example.com", false)));
    let app = flow(&st, &mut Browser::new()).await;
    assert_eq!(
        param(&app, "baton_error").as_deref(),
        Some("email_unverified")
    );
    let db = open_db(&st.s.database_url).await;
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = 'nobody-yet@example.com'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(n, 0);
    // Verified: linked to the account with the address. Its address was never proven, so the
    // password and sessions set up while it was not (perhaps by someone else) end first.
    st.gh.sign_in_as(Some(user(105, &email, true)));
    let linked = signed_in(&st, &mut Browser::new()).await;
    assert_eq!(claims(&linked.access)["sub"], claims(&t.access)["sub"]);
    let r = st.s.refresh(&t.refresh, Some("dev-1")).await;
    assert_eq!(r.status(), 401);
    let r =
        st.s.post(
            "/auth/login",
            json!({"email": email, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    assert_eq!(me(&st.s, &linked.access).await["email_verified"], true);
    db.close().await;
    st.s.stop().await;
}

#[tokio::test]
async fn a_proven_account_keeps_its_password_when_an_identity_links() {
    let st = setup(&[]).await;
    let (email, t) = st.s.user("dev-1").await;
    let db = open_db(&st.s.database_url).await;
    sqlx::query("UPDATE users SET email_verified_at = 1 WHERE email = $1")
        .bind(&email)
        .execute(&db)
        .await
        .unwrap();
    st.gh.sign_in_as(Some(user(107, &email, true)));
    signed_in(&st, &mut Browser::new()).await;
    assert_eq!(st.s.refresh(&t.refresh, Some("dev-1")).await.status(), 200);
    st.s.login(&email, "correct horse", "dev-1").await;
    db.close().await;
    st.s.stop().await;
}

#[tokio::test]
async fn closed_registration_and_declined_consent_return_their_reason() {
    let st = setup(&[("registration", "closed")]).await;
    st.gh.sign_in_as(Some(user(108, "new@example.com", true)));
    let app = flow(&st, &mut Browser::new()).await;
    assert_eq!(
        param(&app, "baton_error").as_deref(),
        Some("registration_closed")
    );
    st.gh.sign_in_as(None);
    let app = flow(&st, &mut Browser::new()).await;
    assert_eq!(param(&app, "baton_error").as_deref(), Some("access_denied"));
    st.s.stop().await;
}

#[tokio::test]
async fn redirects_outside_the_allow_list_and_unknown_providers_are_refused() {
    let st = setup(&[]).await;
    let mut b = Browser::new();
    for bad in [
        "http://evil.test/done",
        "http://app.test/done/x",
        "http://app.test.evil/done",
    ] {
        let url = format!(
            "{}/auth/oauth/gh/start?redirect_to={}",
            st.s.url,
            urlencode(bad)
        );
        expect_error(b.get(&url).await, 400, "redirect_not_allowed").await;
    }
    let url = format!(
        "{}/auth/oauth/nope/start?redirect_to={}",
        st.s.url,
        urlencode(APP)
    );
    expect_error(b.get(&url).await, 404, "not_found").await;
    st.s.stop().await;
}

#[tokio::test]
async fn a_signed_in_user_links_and_unlinks_identities() {
    let st = setup(&[]).await;
    let (_, t) = st.s.user("dev-1").await;
    // Linking needs no matching address: the user is signed in on both sides.
    st.gh
        .sign_in_as(Some(user(109, "elsewhere@example.com", false)));
    let app = Browser::new().link(&st, &t.access).await;
    assert_eq!(param(&app, "baton_linked").as_deref(), Some("gh"), "{app}");
    // The identity now signs in this account.
    let again = signed_in(&st, &mut Browser::new()).await;
    assert_eq!(claims(&again.access)["sub"], claims(&t.access)["sub"]);
    // Another account cannot link the same identity.
    let (_, t2) = st.s.user("dev-1").await;
    let app = Browser::new().link(&st, &t2.access).await;
    assert_eq!(
        param(&app, "baton_error").as_deref(),
        Some("identity_taken")
    );
    // The password remains: unlinking is allowed, once.
    let del = |access: String| {
        let s = &st.s;
        async move {
            s.req(Method::DELETE, "/auth/identities/gh")
                .bearer_auth(access)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(del(t.access.clone()).await.status(), 204);
    expect_error(del(t.access.clone()).await, 404, "not_found").await;
    st.s.stop().await;
}

#[tokio::test]
async fn the_last_way_to_sign_in_is_not_unlinked() {
    let st = setup(&[]).await;
    st.gh
        .sign_in_as(Some(user(110, "only-gh@example.com", true)));
    let t = signed_in(&st, &mut Browser::new()).await;
    // No password, no passkey, no other identity, and no mail set up on this server.
    let r =
        st.s.req(Method::DELETE, "/auth/identities/gh")
            .bearer_auth(&t.access)
            .send()
            .await
            .unwrap();
    expect_error(r, 409, "invalid_request").await;
    st.s.stop().await;
}

#[tokio::test]
async fn a_bad_providers_file_stops_the_start_with_its_line() {
    let dir = tempdir::Dir::new();
    let file = dir.0.join("providers.toml");
    std::fs::write(&file, "[providers.gh]\nkind = \"github\"\nclient_id = \"x\"\n\n[providers.id]\nkind = \"oidc\"\nclient_id = \"y\"\nclient_secret = \"z\"\n").unwrap();
    let db = fresh_database().await;
    let f = file.display().to_string();
    let cfg = config(&db, &[("providers-file", &f), ("redirect-allowlist", APP)]);
    let e = baton_server::AppState::new(cfg)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("client_secret"), "{e}");
    std::fs::write(
        &file,
        "[providers.gh]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
    )
    .unwrap();
    let cfg = config(&db, &[("providers-file", &f)]);
    let e = baton_server::AppState::new(cfg)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("BATON_REDIRECT_ALLOWLIST"), "{e}");
}

#[tokio::test]
async fn an_account_with_a_second_factor_is_asked_for_it_after_the_provider() {
    use baton_server::rules::totp;
    let st = setup(&[]).await;
    st.gh
        .sign_in_as(Some(user(111, "two-step@example.com", true)));
    let t = signed_in(&st, &mut Browser::new()).await;
    let post = |path: &'static str, body: Value| {
        let s = &st.s;
        let access = t.access.clone();
        async move {
            let r = s.post_auth(path, body, &access).await;
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let e = post("/auth/mfa/totp/enroll", json!({})).await;
    let secret = base32(e["secret"].as_str().unwrap());
    let code = |offset: i64| {
        let step = totp::step_of(baton_server::now_ms()) + offset;
        format!("{:06}", totp::code_at(&secret, step))
    };
    post(
        "/auth/mfa/totp/confirm",
        json!({"factor_id": e["factor_id"], "code": code(0)}),
    )
    .await;
    // The provider's sign-in is the first factor: no session yet, the second is asked for.
    let mut b = Browser::new();
    let app = flow(&st, &mut b).await;
    let r = exchange(&st, &b, &param(&app, "baton_code").unwrap()).await;
    assert_eq!(r.status(), 200);
    let wait: Value = r.json().await.unwrap();
    assert_eq!(wait["mfa_required"], true, "{wait}");
    assert!(wait.get("access_token").is_none());
    let r = b
        .post(
            &st.s,
            "/auth/mfa/verify",
            json!({"mfa_token": wait["mfa_token"], "totp": code(1)}),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let done = Tokens::from_json(r.json().await.unwrap());
    let c = claims(&done.access);
    assert_eq!(c["amr"], json!(["fed", "otp"]));
    assert_eq!(c["aal"], 2);
    st.s.stop().await;
}

#[tokio::test]
async fn every_start_sends_the_browser_cookie_again_so_it_outlives_the_newest_flow() {
    let st = setup(&[]).await;
    let mut b = Browser::new();
    let start = format!(
        "{}/auth/oauth/gh/start?redirect_to={}",
        st.s.url,
        urlencode(APP)
    );
    b.get(&start).await;
    let first = b.cookie.clone().unwrap();
    let again = b.get(&start).await;
    let v = again.headers()["set-cookie"].to_str().unwrap();
    assert!(v.starts_with(&format!("baton_oauth={first};")), "{v}");
    assert!(v.contains("Max-Age=900"), "{v}");
    st.s.stop().await;
}
