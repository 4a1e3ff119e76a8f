//! Server keys: encrypted at rest with `BATON_KEY_ENCRYPTION_KEY`, refused when they cannot be
//! opened, and rotated with `baton-server keys rotate` while instances run.

mod common;

use baton_server::AppState;
use common::*;
use std::time::Duration;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 bytes
const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

async fn stored_secrets(database_url: &str) -> Vec<(String, String)> {
    let db = open_db(database_url).await;
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, secret FROM server_keys")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    rows
}

/// The kids the JWKS of `s` lists.
async fn published_kids(s: &Server) -> Vec<String> {
    let jwks = s.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// `baton-server keys rotate` on `database_url`, with or without the encryption key.
fn rotate(database_url: &str, kek: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton-server"));
    cmd.args(["keys", "rotate"])
        .env("BATON_DATABASE_URL", database_url)
        .env("BATON_KEY_PUBLISH_AHEAD", "4s");
    if let Some(k) = kek {
        cmd.env("BATON_KEY_ENCRYPTION_KEY", k);
    }
    cmd.output().unwrap()
}

fn kid_of(access_token: &str) -> String {
    jsonwebtoken::decode_header(access_token)
        .unwrap()
        .kid
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_encrypted_at_rest_and_refused_without_the_right_key() {
    // Started without the setting: plain keys, and sessions made with them.
    let s = Server::start(&[]).await;
    let (_, t) = s.user("dev").await;
    let db = s.database_url.clone();
    s.stop().await;
    assert!(stored_secrets(&db)
        .await
        .iter()
        .all(|(_, secret)| !secret.starts_with("enc:")));

    // The first start with the setting encrypts what is stored; sessions go on.
    let s = Server::start_on(&db, &[("key-encryption-key", KEY)]).await;
    let rows = stored_secrets(&db).await;
    assert!(rows.len() >= 2);
    for (name, secret) in &rows {
        assert!(secret.starts_with("enc:v1:"), "{name} stored in plain text");
    }
    assert_eq!(s.get_auth("/auth/me", &t.access).await.status(), 200);
    assert_eq!(s.refresh(&t.refresh, Some("dev")).await.status(), 200);
    s.stop().await;

    // Without the key, or with another one, the server refuses to start, and says why.
    for overrides in [vec![], vec![("key-encryption-key", OTHER)]] {
        let err = AppState::new(config(&db, &overrides))
            .await
            .expect_err("started with keys it cannot open")
            .to_string();
        assert!(err.contains("BATON_KEY_ENCRYPTION_KEY"), "{err}");
    }
    // A malformed key is refused as such.
    let err = AppState::new(config(&db, &[("key-encryption-key", "short")]))
        .await
        .expect_err("a malformed key")
        .to_string();
    assert!(err.contains("32 random bytes"), "{err}");

    // From a file, as secret mounts provide it.
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kek-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let s = Server::start_on(&db, &[("key-encryption-key-file", file.to_str().unwrap())]).await;
    assert_eq!(s.get_auth("/auth/me", &t.access).await.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_signs_everywhere_and_the_old_one_verifies_until_its_tokens_expire() {
    let settings = [
        ("access-ttl", "3s"),
        ("key-encryption-key", KEY),
        ("rate-limits", "off"),
    ];
    let a = Server::start(&settings).await;
    let b = Server::start_on(&a.database_url, &settings).await;
    let (email, before) = a.user("dev").await;
    let old_kid = kid_of(&before.access);

    // The command itself, as an operator runs it beside the instances.
    let out = rotate(&a.database_url, Some(KEY));
    let rotated_at = std::time::Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    let new_kid = said
        .split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    assert_ne!(new_kid, old_kid);

    // Published at once (within a key reload), before anyone signs with it.
    for s in [&a, &b] {
        let published = eventually(Duration::from_secs(3), || async {
            published_kids(s).await.contains(&new_kid)
        })
        .await;
        assert!(published.is_some(), "the new key is not in the JWKS");
        let r = s
            .post(
                "/auth/login",
                serde_json::json!({"email": email, "password": "correct horse"}),
                Some("dev"),
            )
            .await;
        let body: serde_json::Value = r.json().await.unwrap();
        if rotated_at.elapsed() < Duration::from_secs(3) {
            let access = body["access_token"].as_str().unwrap();
            assert_eq!(
                kid_of(access),
                old_kid,
                "signed with a key not yet published long"
            );
        }
    }

    // Once its publish-ahead time has passed, both instances sign with the new key.
    for s in [&a, &b] {
        let switched = eventually(Duration::from_secs(10), || async {
            let r = s
                .post(
                    "/auth/login",
                    serde_json::json!({"email": email, "password": "correct horse"}),
                    Some("dev"),
                )
                .await;
            let body: serde_json::Value = r.json().await.unwrap();
            let access = body["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"));
            kid_of(access) == new_kid
        })
        .await;
        assert!(
            switched.is_some(),
            "an instance still signs with the old key"
        );
        let kids = published_kids(s).await;
        assert!(
            kids.contains(&old_kid) && kids.contains(&new_kid),
            "{kids:?}"
        );
        // Tokens of the old key still verify while they live.
        assert_eq!(s.get_auth("/api/ping", &before.access).await.status(), 200);
    }
    // Once every token of the old key has expired (3 s + the margin), it leaves the JWKS.
    let gone = eventually(Duration::from_secs(20), || async {
        published_kids(&b).await == vec![new_kid.clone()]
    })
    .await;
    assert!(gone.is_some(), "the retired key stayed in the JWKS");
    // The rotated key is stored encrypted like the others.
    for (name, secret) in stored_secrets(&a.database_url).await {
        assert!(secret.starts_with("enc:v1:"), "{name}");
    }
    // And rotation refuses to run without the encryption key.
    assert!(!rotate(&a.database_url, None).status.success());
    b.stop().await;
    a.stop().await;
}

/// The bytes of a SQLite database's files (the database, its write-ahead log).
fn sqlite_files(database_url: &str) -> Vec<u8> {
    let path = database_url.trim_start_matches("sqlite://");
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
            all.extend(b);
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_leaves_no_plain_copy_of_the_keys_in_the_sqlite_files() {
    if backend() != "sqlite" {
        return; // PostgreSQL keeps old row versions until VACUUM (docs/operations.md).
    }
    let s = Server::start(&[]).await;
    s.user("dev").await;
    let db = s.database_url.clone();
    s.stop().await;
    let plain = stored_secrets(&db).await;
    assert!(plain.len() >= 2);
    let files = sqlite_files(&db);
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    for (name, secret) in &plain {
        assert!(
            contains(&files, secret),
            "{name}: the test must see the plain key first"
        );
    }
    // The first start with an encryption key seals them; the plain forms must be gone from the
    // files at once, not at some later checkpoint.
    let s = Server::start_on(&db, &[("key-encryption-key", KEY)]).await;
    let files = sqlite_files(&db);
    for (name, secret) in &plain {
        assert!(
            !contains(&files, secret),
            "{name} still on disk in plain text"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_out_takes_its_tokens_with_it_even_when_they_were_checked_before() {
    let s = Server::start(&[(
        "introspection-token",
        "introspection secret for the tests of baton-server",
    )])
    .await;
    let (_, t) = s.user("dev").await;
    // Checked once: the verdict is cached by token text.
    assert_eq!(s.get_auth("/api/ping", &t.access).await.status(), 200);
    // The key is retired long ago: it made way for a newer one an hour back (both backdated),
    // so every token it signed is past any lifetime and the key leaves the ring.
    let now = baton_server::now_ms();
    let db = open_db(&s.database_url).await;
    sqlx::query("UPDATE server_keys SET created_at = created_at - 7200000")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let sealer = baton_server::crypto::keystore::Sealer::from_settings(None, None).unwrap();
    baton_server::crypto::keystore::rotate(&s.state.store, &sealer, now - 3_600_000)
        .await
        .unwrap();
    s.state.keys.reload(&s.state.store).await.unwrap();
    assert!(!published_kids(&s).await.contains(&kid_of(&t.access)));
    expect_error(
        s.get_auth("/api/ping", &t.access).await,
        401,
        "token_invalid",
    )
    .await;
    let r = s
        .req(reqwest::Method::POST, "/auth/introspect")
        .bearer_auth("introspection secret for the tests of baton-server")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", t.access))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["active"], false);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_the_issuer_survives_a_restart_on_another_port() {
    let s = Server::start(&[("public-url", "none")]).await;
    let (_, t) = s.user("dev").await;
    let first = s.get_json("/.well-known/openid-configuration").await["issuer"].clone();
    assert_eq!(first.as_str(), Some(s.url.as_str()));
    let db = s.database_url.clone();
    s.stop().await;
    // The same database, another port (a restart elsewhere, or a second instance).
    let again = Server::start_on(&db, &[("public-url", "none")]).await;
    assert_ne!(again.url, first.as_str().unwrap());
    assert_eq!(
        again.get_json("/.well-known/openid-configuration").await["issuer"],
        first
    );
    assert_eq!(again.get_auth("/api/ping", &t.access).await.status(), 200);
    let r = again.refresh(&t.refresh, Some("dev")).await;
    assert_eq!(r.status(), 200);
    let fresh = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(claims(&fresh.access)["iss"], first);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_at_once_on_a_fresh_database_make_one_signing_key() {
    let db2 = fresh_database().await;
    // Migrated first, so both starts race for the keys only.
    let migrate = baton_server::migrate(&config(&db2, &[])).await;
    assert!(migrate.is_ok(), "{migrate:?}");
    let (a, b) = tokio::join!(
        AppState::new(config(&db2, &[])),
        AppState::new(config(&db2, &[]))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let signing: Vec<String> = stored_secrets(&db2)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| n.starts_with("signing:") || n == "access_signing_ed25519")
        .collect();
    assert_eq!(signing.len(), 1, "{signing:?}");
    assert_eq!(a.keys.kid(), b.keys.kid());
    a.store.close().await;
    b.store.close().await;
}
