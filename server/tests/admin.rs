//! The admin API and `baton-server admin`: tokens and their scopes, users listed, found,
//! created, changed, disabled and deleted, their sessions ended, the audit log (docs/api.md,
//! "Administration").

mod common;

use baton_server::rules::account::Scope;
use common::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use std::time::Duration;

async fn token(s: &Server, scopes: &[Scope]) -> String {
    let name = format!("t-{}", uuid::Uuid::new_v4().simple());
    baton_server::signin::admin::create_token(&s.state.store, &name, scopes, None)
        .await
        .unwrap()
        .unwrap()
}

async fn call(
    s: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    let mut r = s.req(method, path).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn ok_json(r: Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn email() -> String {
    format!("a{}@example.com", uuid::Uuid::new_v4().simple())
}

/// `baton-server admin ...` against the database of `s`; its standard output.
fn cli(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton-server"))
        .arg("admin")
        .args(args)
        .env("BATON_DATABASE_URL", &s.database_url)
        .env("BATON_PUBLIC_URL", "http://baton.test")
        .env("BATON_LOG", "warn")
        .output()
        .expect("run baton-server admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_made_on_the_command_line_shown_once_and_revoked() {
    let s = Server::start(&[]).await;
    let (ok, out, err) = cli(
        &s,
        &[
            "token",
            "create",
            "--name",
            "ci-bot",
            "--scopes",
            "users:read,audit:read",
            "--expires",
            "90d",
        ],
    );
    assert!(ok, "{err}");
    let secret = out.lines().next().unwrap().trim().to_owned();
    assert!(secret.starts_with("baton_admin_"), "{out}");
    // Only a digest is stored.
    let db = open_db(&s.database_url).await;
    let stored: String =
        sqlx::query_scalar("SELECT token_hash FROM admin_tokens WHERE name = 'ci-bot'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(!stored.contains(&secret) && stored.len() == 64);
    // The name is unique.
    let (ok, _, err) = cli(
        &s,
        &[
            "token",
            "create",
            "--name",
            "ci-bot",
            "--scopes",
            "users:read",
        ],
    );
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = cli(
        &s,
        &["token", "create", "--name", "x", "--scopes", "users:delete"],
    );
    assert!(!ok && err.contains("unknown scope"), "{err}");

    let r = call(&s, Method::GET, "/admin/users", &secret, None).await;
    ok_json(r, 200).await;
    let r = call(&s, Method::DELETE, "/admin/sessions/x", &secret, None).await;
    expect_error(r, 403, "insufficient_scope").await;

    let (ok, out, _) = cli(&s, &["token", "list"]);
    assert!(ok);
    assert!(
        out.contains("ci-bot") && out.contains("users:read,audit:read"),
        "{out}"
    );
    assert!(!out.contains(&secret));
    // Used a moment ago.
    let line = out.lines().find(|l| l.starts_with("ci-bot")).unwrap();
    assert!(!line.trim_end().ends_with('-'), "{line}");

    let (ok, _, _) = cli(&s, &["token", "revoke", "ci-bot"]);
    assert!(ok);
    let r = call(&s, Method::GET, "/admin/users", &secret, None).await;
    expect_error(r, 401, "token_invalid").await;
    let (ok, _, err) = cli(&s, &["token", "revoke", "ci-bot"]);
    assert!(!ok && err.contains("no admin token"), "{err}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let s = Server::start(&[]).await;
    let secret = baton_server::signin::admin::create_token(
        &s.state.store,
        "short",
        &[Scope::UsersRead],
        Some(Duration::from_millis(300)),
    )
    .await
    .unwrap()
    .unwrap();
    ok_json(
        call(&s, Method::GET, "/admin/users", &secret, None).await,
        200,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = call(&s, Method::GET, "/admin/users", &secret, None).await;
    expect_error(r, 401, "token_invalid").await;
    s.stop().await;
}

/// Every route, with a token of each scope, a user's access token, none and a wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_its_scope_and_an_admin_token() {
    // Many wrong tokens from one address: more than `on` allows in a minute.
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (_, user) = s.user("dev-1").await;
    let uid = claims(&user.access)["sub"].as_str().unwrap().to_owned();
    let sid = user.session_id.clone();
    let routes: Vec<(Method, String, Scope, Option<Value>)> = vec![
        (Method::GET, "/admin/users".into(), Scope::UsersRead, None),
        (
            Method::GET,
            format!("/admin/users/{uid}"),
            Scope::UsersRead,
            None,
        ),
        (
            Method::GET,
            format!("/admin/users/{uid}/sessions"),
            Scope::UsersRead,
            None,
        ),
        (
            Method::POST,
            "/admin/users".into(),
            Scope::UsersWrite,
            Some(json!({"email": email()})),
        ),
        (
            Method::PATCH,
            format!("/admin/users/{uid}"),
            Scope::UsersWrite,
            Some(json!({"roles": []})),
        ),
        (
            Method::GET,
            "/admin/audit-log".into(),
            Scope::AuditRead,
            None,
        ),
        (
            Method::DELETE,
            format!("/admin/sessions/{sid}"),
            Scope::SessionsWrite,
            None,
        ),
        (
            Method::DELETE,
            format!("/admin/users/{uid}/sessions"),
            Scope::SessionsWrite,
            None,
        ),
        (
            Method::DELETE,
            format!("/admin/users/{uid}"),
            Scope::UsersWrite,
            None,
        ),
    ];
    let mut tokens = Vec::new();
    for scope in Scope::ALL {
        tokens.push((scope, token(&s, &[scope]).await));
    }
    for (method, path, needs, body) in &routes {
        for (scope, t) in &tokens {
            if scope == needs {
                continue;
            }
            let r = call(&s, method.clone(), path, t, body.clone()).await;
            let b = expect_error(r, 403, "insufficient_scope").await;
            assert!(b["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needs.as_str()));
        }
        for bad in [user.access.as_str(), "baton_admin_nope", ""] {
            let r = call(&s, method.clone(), path, bad, body.clone()).await;
            expect_error(r, 401, "token_invalid").await;
        }
        let mut r = s.req(method.clone(), path);
        if let Some(b) = body {
            r = r.json(b);
        }
        expect_error(r.send().await.unwrap(), 401, "token_invalid").await;
    }
    // And with the scope, each answers (in this order, the last one deletes the user).
    for (method, path, needs, body) in &routes {
        let t = &tokens.iter().find(|(s, _)| s == needs).unwrap().1;
        let r = call(&s, method.clone(), path, t, body.clone()).await;
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_tokens_are_limited_per_address() {
    let s = Server::start(&[("rate-limits", "on")]).await;
    for _ in 0..10 {
        let r = call(&s, Method::GET, "/admin/users", "baton_admin_guess", None).await;
        expect_error(r, 401, "token_invalid").await;
    }
    let r = call(&s, Method::GET, "/admin/users", "baton_admin_guess", None).await;
    expect_error(r, 429, "rate_limited").await;
    // Refused before any lookup until the minute is over, a right token too.
    let good = token(&s, &[Scope::UsersRead]).await;
    let r = call(&s, Method::GET, "/admin/users", &good, None).await;
    expect_error(r, 429, "rate_limited").await;
    s.stop().await;
}

/// Keyset pages in creation order: users inserted while an admin pages through are never
/// shown twice and never push an existing user out of the listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_paged_stably_while_users_are_inserted() {
    let s = Server::start(&[]).await;
    let t = token(&s, &[Scope::UsersRead, Scope::UsersWrite]).await;
    let create = |t: String| {
        let s = &s;
        async move {
            let body = json!({"email": email()});
            let u = ok_json(
                call(s, Method::POST, "/admin/users", &t, Some(body)).await,
                201,
            )
            .await;
            u["user"]["id"].as_str().unwrap().to_owned()
        }
    };
    let mut before = Vec::new();
    for _ in 0..23 {
        before.push(create(t.clone()).await);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/users?limit=5&cursor={c}"),
            None => "/admin/users?limit=5".into(),
        };
        let page = ok_json(call(&s, Method::GET, &path, &t, None).await, 200).await;
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 5);
        seen.extend(users.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        // Someone is added between pages.
        added.push(create(t.clone()).await);
        match page["next_cursor"].as_str() {
            Some(c) if added.len() < 40 => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a user was listed twice");
    for id in &before {
        assert!(seen.contains(id), "user {id} was skipped");
    }
    // Those who came later follow, in creation order.
    let order: Vec<&String> = seen.iter().filter(|id| added.contains(id)).collect();
    let expected: Vec<&String> = added.iter().filter(|id| seen.contains(id)).collect();
    assert_eq!(order, expected);
    // Bad limits and cursors.
    for bad in ["limit=0", "limit=1001", "limit=x", "cursor=bogus"] {
        let r = call(&s, Method::GET, &format!("/admin/users?{bad}"), &t, None).await;
        expect_error(r, 400, "invalid_request").await;
    }
    // The default page is 50.
    let page = ok_json(call(&s, Method::GET, "/admin/users", &t, None).await, 200).await;
    let total = before.len() + added.len();
    assert_eq!(page["users"].as_array().unwrap().len(), total.min(50));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_found_by_their_canonical_address() {
    let s = Server::start(&[]).await;
    let t = token(&s, &[Scope::UsersRead]).await;
    let e = email();
    s.register(&e, "correct horse").await;
    let upper = e.to_uppercase();
    let page = ok_json(
        call(
            &s,
            Method::GET,
            &format!("/admin/users?email={upper}"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    let users = page["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["email"], e);
    assert!(page["next_cursor"].is_null());
    let page = ok_json(
        call(
            &s,
            Method::GET,
            "/admin/users?email=nobody@example.com",
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["users"], json!([]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_and_change_users_and_roles_reach_the_next_token() {
    let events_file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!(
            "admin-events-{}.jsonl",
            uuid::Uuid::new_v4().simple()
        ))
        .display()
        .to_string();
    let s = Server::start(&[
        ("introspection-token", "introspection-secret-for-tests-0123"),
        ("events-file", events_file.as_str()),
    ])
    .await;
    let t = token(&s, &[Scope::UsersRead, Scope::UsersWrite]).await;
    let e = email();
    let body = json!({"email": e, "password": "correct horse", "email_verified": true,
        "roles": ["support", "support"], "app_metadata": {"plan": "pro"}});
    let created = ok_json(
        call(&s, Method::POST, "/admin/users", &t, Some(body.clone())).await,
        201,
    )
    .await;
    let user = &created["user"];
    assert_eq!(user["email"], e);
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["roles"], json!(["support"]));
    assert_eq!(user["app_metadata"], json!({"plan": "pro"}));
    assert_eq!(user["user_metadata"], json!({}));
    assert!(user["last_sign_in_at"].is_null() && user["disabled_until"].is_null());
    let uid = user["id"].as_str().unwrap().to_owned();
    let r = call(&s, Method::POST, "/admin/users", &t, Some(body)).await;
    expect_error(r, 409, "email_taken").await;
    for bad in [
        json!({"email": "not an address"}),
        json!({"email": email(), "roles": ["has space"]}),
        json!({"email": email(), "app_metadata": [1]}),
        json!({"email": email(), "password": "short"}),
        json!({"email": email(), "unknown": 1}),
    ] {
        let r = call(&s, Method::POST, "/admin/users", &t, Some(bad)).await;
        expect_error(r, 422, "validation_failed").await;
    }

    // The user signs in: roles are in the token, app_metadata is not.
    let tokens = s.login(&e, "correct horse", "dev-1").await;
    let c = claims(&tokens.access);
    assert_eq!(c["roles"], json!(["support"]));
    assert!(c.get("app_metadata").is_none());
    assert_eq!(tokens.json["user"]["roles"], json!(["support"]));
    let got = ok_json(
        call(&s, Method::GET, &format!("/admin/users/{uid}"), &t, None).await,
        200,
    )
    .await;
    assert!(got["user"]["last_sign_in_at"].as_i64().unwrap() > 0);

    // An admin changes the roles: /auth/me says so at once, the next token carries them.
    let patch = json!({"roles": ["admin"], "app_metadata": {"plan": "team"}});
    let changed = ok_json(
        call(
            &s,
            Method::PATCH,
            &format!("/admin/users/{uid}"),
            &t,
            Some(patch),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["user"]["roles"], json!(["admin"]));
    let me: Value = s
        .get_auth("/auth/me", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["roles"], json!(["admin"]));
    assert_eq!(me["user"]["app_metadata"], json!({"plan": "team"}));
    let r = s.refresh(&tokens.refresh, Some("dev-1")).await;
    let next = Tokens::from_json(ok_json(r, 200).await);
    assert_eq!(claims(&next.access)["roles"], json!(["admin"]));
    // Introspection tells both.
    let r = s
        .req(Method::POST, "/auth/introspect")
        .bearer_auth("introspection-secret-for-tests-0123")
        .form(&[("token", next.access.as_str())])
        .send()
        .await
        .unwrap();
    let i = ok_json(r, 200).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["roles"], json!(["admin"]));
    assert_eq!(i["app_metadata"], json!({"plan": "team"}));

    // The address: taken, or changed (and then unproven).
    let other = email();
    s.register(&other, "correct horse").await;
    let r = call(
        &s,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(json!({"email": other})),
    )
    .await;
    expect_error(r, 409, "email_taken").await;
    let moved = email();
    let changed = ok_json(
        call(
            &s,
            Method::PATCH,
            &format!("/admin/users/{uid}"),
            &t,
            Some(json!({"email": moved})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["user"]["email"], moved);
    assert_eq!(changed["user"]["email_verified"], false);
    s.login(&moved, "correct horse", "dev-1").await;
    // Unknown users and fields.
    let r = call(
        &s,
        Method::PATCH,
        "/admin/users/nobody",
        &t,
        Some(json!({"roles": []})),
    )
    .await;
    expect_error(r, 404, "not_found").await;
    let r = call(&s, Method::GET, "/admin/users/nobody", &t, None).await;
    expect_error(r, 404, "not_found").await;
    let r = call(
        &s,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(json!({"password": "x"})),
    )
    .await;
    expect_error(r, 422, "validation_failed").await;
    let r = call(
        &s,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(json!({"disabled_until": "soon"})),
    )
    .await;
    expect_error(r, 422, "validation_failed").await;

    // Every change is an admin_action event naming the token.
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT type, detail FROM audit_events WHERE user_id = $1 AND type = 'admin_action' ORDER BY id",
    )
    .bind(&uid)
    .fetch_all(&open_db(&s.database_url).await)
    .await
    .unwrap();
    assert!(events.len() >= 4, "{events:?}");
    assert!(
        events
            .iter()
            .any(|(_, d)| d.contains("roles set to [admin]")),
        "{events:?}"
    );
    assert!(
        events.iter().all(|(_, d)| d.starts_with("admin token t-")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|(_, d)| d.contains(&moved)),
        "{events:?}"
    );
    // And a line of the events file each.
    let lines = eventually(Duration::from_secs(3), || async {
        std::fs::read_to_string(&events_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"admin.action\"") && l.contains(&uid))
            .count()
            >= events.len()
    })
    .await;
    assert!(
        lines.is_some(),
        "admin actions missing from the events file"
    );
    s.stop().await;
}

/// Disabling on one instance: the user's live access token is refused by another instance
/// within about a second, refresh and sign-in are 403 `user_disabled`, and enabling again
/// lets them sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_refused_by_every_instance_within_a_second() {
    let a = Server::start(&[]).await;
    let b = Server::start_on(&a.database_url, &[]).await;
    let t = token(&a, &[Scope::UsersWrite, Scope::UsersRead]).await;
    let (e, tokens) = a.user("dev-1").await;
    let uid = claims(&tokens.access)["sub"].as_str().unwrap().to_owned();
    assert_eq!(b.get_auth("/auth/me", &tokens.access).await.status(), 200);

    let until = "2999-01-01T00:00:00Z";
    let patch = json!({"disabled_until": until});
    let r = call(
        &a,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(patch),
    )
    .await;
    let changed = ok_json(r, 200).await;
    assert_eq!(changed["user"]["disabled_until"], until);
    // At once here, within about a second there.
    expect_error(
        a.get_auth("/auth/me", &tokens.access).await,
        401,
        "token_revoked",
    )
    .await;
    let refused = eventually(Duration::from_millis(1500), || async {
        b.get_auth("/auth/me", &tokens.access).await.status() == 401
    })
    .await;
    assert!(
        refused.is_some(),
        "instance b still accepts the disabled user's token"
    );
    expect_error(
        b.refresh(&tokens.refresh, Some("dev-1")).await,
        403,
        "user_disabled",
    )
    .await;
    let r = b
        .post(
            "/auth/login",
            json!({"email": e, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 403, "user_disabled").await;
    // A wrong password says nothing about it.
    let r = b
        .post(
            "/auth/login",
            json!({"email": e, "password": "wrong horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;

    let patch = json!({"disabled_until": "forever"});
    let r = call(
        &b,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(patch),
    )
    .await;
    assert_eq!(ok_json(r, 200).await["user"]["disabled_until"], "forever");
    let r = call(
        &b,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(json!({"disabled_until": null})),
    )
    .await;
    assert!(ok_json(r, 200).await["user"]["disabled_until"].is_null());
    a.login(&e, "correct horse", "dev-1").await;

    // A time that has passed leaves the account enabled.
    let past = json!({"disabled_until": "2001-01-01T00:00:00Z"});
    let r = call(
        &a,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(past),
    )
    .await;
    assert!(ok_json(r, 200).await["user"]["disabled_until"].is_null());
    a.login(&e, "correct horse", "dev-1").await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_and_end_sessions() {
    let s = Server::start(&[]).await;
    let t = token(&s, &[Scope::UsersRead, Scope::SessionsWrite]).await;
    let (e, first) = s.user("dev-1").await;
    let second = s.login(&e, "correct horse", "dev-2").await;
    let third = s.login(&e, "correct horse", "dev-3").await;
    let uid = claims(&first.access)["sub"].as_str().unwrap().to_owned();
    let list = ok_json(
        call(
            &s,
            Method::GET,
            &format!("/admin/users/{uid}/sessions"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&first.session_id.as_str()));

    let r = call(
        &s,
        Method::DELETE,
        &format!("/admin/sessions/{}", first.session_id),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    expect_error(
        s.get_auth("/auth/me", &first.access).await,
        401,
        "token_revoked",
    )
    .await;
    assert_eq!(s.get_auth("/auth/me", &second.access).await.status(), 200);
    let r = call(
        &s,
        Method::DELETE,
        &format!("/admin/sessions/{}", first.session_id),
        &t,
        None,
    )
    .await;
    expect_error(r, 404, "not_found").await;

    let r = call(
        &s,
        Method::DELETE,
        &format!("/admin/users/{uid}/sessions"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    for gone in [&second, &third] {
        expect_error(
            s.get_auth("/auth/me", &gone.access).await,
            401,
            "token_revoked",
        )
        .await;
        expect_error(
            s.refresh(&gone.refresh, Some("dev-2")).await,
            401,
            "session_revoked",
        )
        .await;
    }
    let list = ok_json(
        call(
            &s,
            Method::GET,
            &format!("/admin/users/{uid}/sessions"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(list["sessions"], json!([]));
    let r = call(&s, Method::DELETE, "/admin/users/nobody/sessions", &t, None).await;
    expect_error(r, 404, "not_found").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_is_erased_and_signed_out() {
    let s = Server::start(&[]).await;
    let t = token(&s, &[Scope::UsersRead, Scope::UsersWrite]).await;
    let (e, tokens) = s.user("dev-1").await;
    let uid = claims(&tokens.access)["sub"].as_str().unwrap().to_owned();
    let r = call(&s, Method::DELETE, &format!("/admin/users/{uid}"), &t, None).await;
    assert_eq!(r.status(), 204);
    expect_error(
        s.get_auth("/auth/me", &tokens.access).await,
        401,
        "token_revoked",
    )
    .await;
    // The account is gone: its refresh token is not valid any more.
    let r = s.refresh(&tokens.refresh, Some("dev-1")).await;
    assert_eq!(r.status(), 401);
    let code = r.json::<Value>().await.unwrap()["error"]["code"].clone();
    assert!(
        code == "refresh_token_invalid" || code == "session_revoked",
        "{code}"
    );
    let r = call(&s, Method::GET, &format!("/admin/users/{uid}"), &t, None).await;
    expect_error(r, 404, "not_found").await;
    let r = call(&s, Method::DELETE, &format!("/admin/users/{uid}"), &t, None).await;
    expect_error(r, 404, "not_found").await;
    let found = ok_json(
        call(
            &s,
            Method::GET,
            &format!("/admin/users?email={e}"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(found["users"], json!([]));
    // Nothing personal is left: the row keeps its id, the events the user id only.
    let db = open_db(&s.database_url).await;
    let (email, hash): (String, String) =
        sqlx::query_as("SELECT email, password_hash FROM users WHERE id = $1")
            .bind(&uid)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        !email.contains('@') && !hash.starts_with("$argon2"),
        "{email} {hash}"
    );
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT type FROM audit_events WHERE user_id = $1 AND type <> 'admin_action' \
         AND (ip IS NOT NULL OR device_id IS NOT NULL)",
    )
    .bind(&uid)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(left, Vec::<String>::new());
    let sessions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND (ip IS NOT NULL OR user_agent IS NOT NULL OR device_id IS NOT NULL)",
    )
    .bind(&uid)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(sessions, 0);
    // The address is free again: a new account, not the old one.
    let again = s.register(&e, "correct horse").await;
    assert_ne!(again["user"]["id"], uid.as_str());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_pages_newest_first_with_filters() {
    let s = Server::start(&[]).await;
    let t = token(&s, &[Scope::AuditRead, Scope::UsersWrite]).await;
    let (e, tokens) = s.user("dev-1").await;
    let uid = claims(&tokens.access)["sub"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        s.login(&e, "correct horse", "dev-1").await;
    }
    let r = call(
        &s,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(json!({"roles": ["x"]})),
    )
    .await;
    ok_json(r, 200).await;
    let page = ok_json(
        call(
            &s,
            Method::GET,
            &format!("/admin/audit-log?user_id={uid}&type=login_succeeded&limit=2"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[0]["id"].as_i64() > events[1]["id"].as_i64());
    assert!(events
        .iter()
        .all(|e| e["type"] == "login_succeeded" && e["user_id"] == uid.as_str()));
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = ok_json(
        call(
            &s,
            Method::GET,
            &format!("/admin/audit-log?user_id={uid}&type=login_succeeded&cursor={cursor}"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null());
    let admin = ok_json(
        call(
            &s,
            Method::GET,
            "/admin/audit-log?type=admin_action",
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(admin["events"][0]["user_id"], uid.as_str());
    // `since`: RFC 3339 or unix seconds; in the future, nothing.
    for since in ["2999-01-01T00:00:00Z", "32503680000"] {
        let later = ok_json(
            call(
                &s,
                Method::GET,
                &format!("/admin/audit-log?since={since}"),
                &t,
                None,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(later["events"], json!([]));
    }
    let all = ok_json(
        call(
            &s,
            Method::GET,
            "/admin/audit-log?since=2000-01-01T00:00:00Z&limit=1000",
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(all["events"].as_array().unwrap().len() >= 6);
    for bad in ["since=yesterday", "cursor=zz", "limit=0"] {
        let r = call(
            &s,
            Method::GET,
            &format!("/admin/audit-log?{bad}"),
            &t,
            None,
        )
        .await;
        expect_error(r, 400, "invalid_request").await;
    }
    s.stop().await;
}

/// The operator's user commands go through the admin API's code: the same effects and events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_users_from_the_command_line() {
    let s = Server::start(&[]).await;
    let (e, tokens) = s.user("dev-1").await;
    let uid = claims(&tokens.access)["sub"].as_str().unwrap().to_owned();
    let (ok, out, err) = cli(&s, &["users", "find", &e.to_uppercase()]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&uid) && out.contains("live sessions: 1"),
        "{out}"
    );
    let (ok, _, err) = cli(&s, &["users", "find", "nobody@example.com"]);
    assert!(!ok && err.contains("no account"), "{err}");

    let (ok, out, err) = cli(
        &s,
        &["users", "disable", &e, "--until", "2999-01-01T00:00:00Z"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("2999-01-01T00:00:00Z"), "{out}");
    // The running server refuses the token within about a second (another process wrote it).
    let refused = eventually(Duration::from_millis(1500), || async {
        s.get_auth("/auth/me", &tokens.access).await.status() == 401
    })
    .await;
    assert!(refused.is_some());
    let r = s
        .post(
            "/auth/login",
            json!({"email": e, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 403, "user_disabled").await;
    let (ok, _, _) = cli(&s, &["users", "enable", &e]);
    assert!(ok);
    let again = s.login(&e, "correct horse", "dev-1").await;

    let (ok, out, _) = cli(&s, &["users", "sign-out", &e]);
    assert!(ok && out.contains("1 session(s) ended"), "{out}");
    let refused = eventually(Duration::from_millis(1500), || async {
        s.get_auth("/auth/me", &again.access).await.status() == 401
    })
    .await;
    assert!(refused.is_some());

    let (ok, _, err) = cli(&s, &["users", "delete", &e]);
    assert!(ok, "{err}");
    let (ok, _, _) = cli(&s, &["users", "find", &e]);
    assert!(!ok);
    let details: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE user_id = $1 AND type = 'admin_action' ORDER BY id",
    )
    .bind(&uid)
    .fetch_all(&open_db(&s.database_url).await)
    .await
    .unwrap();
    assert_eq!(details.len(), 4, "{details:?}");
    assert!(
        details.iter().all(|d| d.starts_with("admin token cli:")),
        "{details:?}"
    );
    s.stop().await;
}

/// Roles changed through one instance reach the tokens another instance issues within about a
/// second, although it had the user's session cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_changed_on_one_instance_reach_another_instances_tokens() {
    let a = Server::start(&[]).await;
    let b = Server::start_on(&a.database_url, &[]).await;
    let t = token(&a, &[Scope::UsersWrite]).await;
    let (_, tokens) = b.user("dev-1").await;
    let uid = claims(&tokens.access)["sub"].as_str().unwrap().to_owned();
    // b refreshes once: the session and its user are in b's cache.
    let r = b.refresh(&tokens.refresh, Some("dev-1")).await;
    let mut current = Tokens::from_json(ok_json(r, 200).await);
    assert_eq!(claims(&current.access)["roles"], json!([]));
    let patch = json!({"roles": ["editor"]});
    let r = call(
        &a,
        Method::PATCH,
        &format!("/admin/users/{uid}"),
        &t,
        Some(patch),
    )
    .await;
    ok_json(r, 200).await;
    let mut seen = None;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let r = b.refresh(&current.refresh, Some("dev-1")).await;
        current = Tokens::from_json(ok_json(r, 200).await);
        if claims(&current.access)["roles"] == json!(["editor"]) {
            seen = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.expect("instance b kept issuing tokens without the new role");
    assert!(seen < Duration::from_millis(2000), "{seen:?}");
    b.stop().await;
    a.stop().await;
}
