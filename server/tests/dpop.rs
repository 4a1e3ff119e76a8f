//! DPoP-bound sessions (RFC 9449; docs/api.md, "DPoP"): binding at login, proofs on refresh,
//! logout and protected resources, the proof window and replay, the three settings.

mod common;

use common::proof::{Claims, ProofKey};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse";

async fn new_account(s: &Server) -> String {
    let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
    s.register(&email, PASSWORD).await;
    email
}

async fn login_with_proof(s: &Server, email: &str, proof: Option<&str>) -> reqwest::Response {
    let mut r = s
        .req(Method::POST, "/auth/login")
        .header("x-device-id", "dev-1")
        .json(&json!({"email": email, "password": PASSWORD}));
    if let Some(p) = proof {
        r = r.header("dpop", p);
    }
    r.send().await.unwrap()
}

/// A user signed in with a proof by `key`: a bound session.
async fn bound_session(s: &Server, key: &ProofKey) -> Tokens {
    let email = new_account(s).await;
    let r = login_with_proof(s, &email, Some(&key.post("/auth/login"))).await;
    assert_eq!(r.status(), 200);
    Tokens::from_json(r.json().await.unwrap())
}

async fn refresh_with(s: &Server, refresh_token: &str, proof: Option<&str>) -> reqwest::Response {
    let mut r = s
        .req(Method::POST, "/auth/refresh")
        .header("x-device-id", "dev-1")
        .json(&json!({"refresh_token": refresh_token}));
    if let Some(p) = proof {
        r = r.header("dpop", p);
    }
    r.send().await.unwrap()
}

/// `GET /auth/me` with `Authorization: <scheme> <token>` and an optional proof.
async fn me(s: &Server, scheme: &str, token: &str, proof: Option<&str>) -> reqwest::Response {
    let mut r = s
        .req(Method::GET, "/auth/me")
        .header("authorization", format!("{scheme} {token}"));
    if let Some(p) = proof {
        r = r.header("dpop", p);
    }
    r.send().await.unwrap()
}

fn me_proof(key: &ProofKey, token: &str) -> String {
    key.proof(&Claims {
        method: "GET",
        url: "http://baton.test/auth/me",
        access_token: Some(token),
        ..Claims::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_at_login_binds_the_session_to_its_key() {
    let s = Server::start(&[]).await;
    for key in [ProofKey::es256(), ProofKey::ed25519()] {
        let t = bound_session(&s, &key).await;
        assert_eq!(t.json["token_type"], "DPoP");
        assert_eq!(claims(&t.access)["cnf"]["jkt"], key.thumbprint());
        // The successor stays bound to the same key.
        let r = refresh_with(&s, &t.refresh, Some(&key.post("/auth/refresh"))).await;
        assert_eq!(r.status(), 200);
        let next = Tokens::from_json(r.json().await.unwrap());
        assert_eq!(next.json["token_type"], "DPoP");
        assert_eq!(claims(&next.access)["cnf"]["jkt"], key.thumbprint());
    }
    // Without a proof: a Bearer session as before.
    let email = new_account(&s).await;
    let r = login_with_proof(&s, &email, None).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(t.json["token_type"], "Bearer");
    assert!(claims(&t.access).get("cnf").is_none());
    assert_eq!(me(&s, "Bearer", &t.access, None).await.status(), 200);
    // The discovery document names the proof algorithms.
    let doc = s.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_refresh_token_is_useless_without_the_key_and_cannot_end_the_session() {
    let s = Server::start(&[]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await;
    let thief = ProofKey::es256();
    // No proof, another key's proof, a proof for another URL or method, an old proof.
    let wrong = [
        None,
        Some(thief.post("/auth/refresh")),
        Some(key.post("/auth/login")),
        Some(key.proof(&Claims {
            method: "GET",
            url: "http://baton.test/auth/refresh",
            ..Claims::default()
        })),
        Some(key.proof(&Claims {
            method: "POST",
            url: &format!("{}/auth/refresh", s.url),
            ..Claims::default()
        })),
        Some(key.proof(&Claims {
            method: "POST",
            url: "http://baton.test/auth/refresh",
            iat_offset: -120,
            ..Claims::default()
        })),
    ];
    for proof in &wrong {
        let r = refresh_with(&s, &t.refresh, proof.as_deref()).await;
        expect_error(r, 401, "dpop_proof_invalid").await;
    }
    // The owner's next refresh works: nothing above rotated or revoked the session.
    let r = refresh_with(&s, &t.refresh, Some(&key.post("/auth/refresh"))).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from_json(r.json().await.unwrap());
    // The spent token replayed without the key, long after the grace window would not matter:
    // refused for the proof, not judged as reuse (which would revoke the owner's session).
    let r = refresh_with(&s, &t.refresh, None).await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    let r = refresh_with(&s, &next.refresh, Some(&key.post("/auth/refresh"))).await;
    assert_eq!(r.status(), 200, "the session survived the thief");
    let last = Tokens::from_json(r.json().await.unwrap());
    // Recorded for the owner: a security event per refusal (a few per ten minutes).
    let proof = me_proof(&key, &last.access);
    let r = s
        .req(Method::GET, "/auth/audit-log?limit=200")
        .header("authorization", format!("DPoP {}", last.access))
        .header(
            "dpop",
            key.proof(&Claims {
                method: "GET",
                url: "http://baton.test/auth/audit-log",
                access_token: Some(&last.access),
                ..Claims::default()
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events: Value = r.json().await.unwrap();
    let refused: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "dpop_proof_refused")
        .collect();
    assert_eq!(refused.len(), 5, "{events}");
    assert!(refused.iter().all(|e| e["severity"] == "warning"));
    assert!(types(events["events"].as_array().unwrap())
        .iter()
        .all(|t| t != "refresh_token_reused"));
    assert_eq!(
        me(&s, "DPoP", &last.access, Some(&proof)).await.status(),
        200
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("auth_dpop_proofs_total{result=\"invalid\"} 4"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_is_accepted_once() {
    let s = Server::start(&[]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await;
    let proof = key.post("/auth/refresh");
    let r = refresh_with(&s, &t.refresh, Some(&proof)).await;
    assert_eq!(r.status(), 200);
    let next = Tokens::from_json(r.json().await.unwrap());
    let r = refresh_with(&s, &next.refresh, Some(&proof)).await;
    let body = expect_error(r, 401, "dpop_proof_invalid").await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("used before"));
    // Also on a protected resource.
    let proof = me_proof(&key, &next.access);
    assert_eq!(
        me(&s, "DPoP", &next.access, Some(&proof)).await.status(),
        200
    );
    let r = me(&s, "DPoP", &next.access, Some(&proof)).await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    // And across instances sharing a PostgreSQL database.
    if backend() == "postgres" {
        let other = Server::start_on(&s.database_url, &[]).await;
        let proof = me_proof(&key, &next.access);
        assert_eq!(
            me(&s, "DPoP", &next.access, Some(&proof)).await.status(),
            200
        );
        let r = me(&other, "DPoP", &next.access, Some(&proof)).await;
        expect_error(r, 401, "dpop_proof_invalid").await;
        other.stop().await;
    }
    s.stop().await;
}

/// On PostgreSQL a refresh's proof is recorded by its rotation's own transaction, not by a
/// write of its own; a replay of it is refused all the same, by this instance and by another
/// one that never saw it, and leaves the session to its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshs_proof_is_recorded_with_its_rotation() {
    let s = Server::start(&[]).await;
    let key = ProofKey::es256();
    let mut t = bound_session(&s, &key).await;
    let mut last = String::new();
    for _ in 0..5 {
        last = key.post("/auth/refresh");
        let r = refresh_with(&s, &t.refresh, Some(&last)).await;
        assert_eq!(r.status(), 200);
        t = Tokens::from_json(r.json().await.unwrap());
    }
    let metrics = s.metrics().await;
    let metric = |line: String| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let count = |written: &str| {
        metric(format!(
            "auth_dpop_proof_records_total{{written=\"{written}\"}} "
        ))
    };
    // Each proof counted once as valid, wherever its record went.
    let valid = metric("auth_dpop_proofs_total{result=\"valid\"} ".to_owned());
    assert_eq!(valid, 6, "{metrics}");
    if backend() == "postgres" {
        // The sign-in's proof has a write of its own; the five refreshes' none.
        assert_eq!(
            (count("with_rotation"), count("own_write"), count("memory")),
            (5, 1, 0),
            "{metrics}"
        );
    } else {
        assert_eq!(
            (count("with_rotation"), count("own_write"), count("memory")),
            (0, 0, 6),
            "{metrics}"
        );
    }
    // The last proof again, with the live token: refused here...
    let r = refresh_with(&s, &t.refresh, Some(&last)).await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    // ...and by an instance that never saw it (the shared table, read by the rotation).
    if backend() == "postgres" {
        let other = Server::start_on(&s.database_url, &[]).await;
        let r = refresh_with(&other, &t.refresh, Some(&last)).await;
        let body = expect_error(r, 401, "dpop_proof_invalid").await;
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used before"));
        other.stop().await;
    }
    // The owner goes on.
    let r = refresh_with(&s, &t.refresh, Some(&key.post("/auth/refresh"))).await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// Many requests at once (on PostgreSQL their proofs share one batched insert): each fresh
/// proof is accepted, and one proof sent many times at once is accepted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proofs_sent_at_once_are_each_accepted_once() {
    let s = Server::start(&[]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await;
    let fresh: Vec<String> = (0..40).map(|_| me_proof(&key, &t.access)).collect();
    let calls = fresh.iter().map(|p| me(&s, "DPoP", &t.access, Some(p)));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let same = me_proof(&key, &t.access);
    let calls = (0..40).map(|_| me(&s, "DPoP", &t.access, Some(&same)));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        39,
        "{statuses:?}"
    );
    // Straight to the replay cache, without the signature checks that spread requests out:
    // the same proof many times in one batch still counts once.
    let proof = baton_core::dpop::Proof {
        jkt: key.thumbprint(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: baton_server::now_ms() / 1000,
    };
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (state, proof) = (s.state.clone(), proof.clone());
            tokio::spawn(async move { baton_server::dpop::record(&state, &proof).await.is_ok() })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        accepted += usize::from(t.await.unwrap());
    }
    assert_eq!(accepted, 1);
    s.stop().await;
}

async fn remembered(s: &Server) -> i64 {
    s.state
        .dpop_replay
        .remembered(&s.state.store)
        .await
        .unwrap()
}

/// The replay cache is shared by every key: proofs that prove nothing (a sign-in that fails, a
/// key that is not the session's) must take no room in it, or anybody could fill it and have
/// every DPoP request refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_proofs_of_a_key_the_caller_may_use_are_remembered() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let key = ProofKey::es256();
    let email = new_account(&s).await;
    for i in 0..8 {
        let attacker = ProofKey::es256();
        let who = if i % 2 == 0 {
            email.clone()
        } else {
            format!("nobody{i}@example.com")
        };
        let r = s
            .req(Method::POST, "/auth/login")
            .header("x-device-id", "dev-1")
            .header("dpop", attacker.post("/auth/login"))
            .json(&json!({"email": who, "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        expect_error(r, 401, "invalid_credentials").await;
    }
    assert_eq!(
        remembered(&s).await,
        0,
        "failed sign-ins left proofs behind"
    );
    let r = login_with_proof(&s, &email, Some(&key.post("/auth/login"))).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(remembered(&s).await, 1);
    // A thief holding the tokens signs with a key of their own: refused, nothing remembered.
    let thief = ProofKey::es256();
    for _ in 0..5 {
        let r = refresh_with(&s, &t.refresh, Some(&thief.post("/auth/refresh"))).await;
        expect_error(r, 401, "dpop_proof_invalid").await;
        let r = me(&s, "DPoP", &t.access, Some(&me_proof(&thief, &t.access))).await;
        expect_error(r, 401, "dpop_proof_invalid").await;
    }
    assert_eq!(
        remembered(&s).await,
        1,
        "a foreign key's proofs were remembered"
    );
    let r = me(&s, "DPoP", &t.access, Some(&me_proof(&key, &t.access))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(remembered(&s).await, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_cannot_use_more_than_its_budget_of_proofs() {
    let s = Server::start(&[("dpop-proofs-per-key", "4")]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await; // one proof
    for _ in 0..3 {
        let r = me(&s, "DPoP", &t.access, Some(&me_proof(&key, &t.access))).await;
        assert_eq!(r.status(), 200);
    }
    let r = me(&s, "DPoP", &t.access, Some(&me_proof(&key, &t.access))).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    expect_error(r, 429, "rate_limited").await;
    let r = refresh_with(&s, &t.refresh, Some(&key.post("/auth/refresh"))).await;
    expect_error(r, 429, "rate_limited").await;
    // Other keys have budgets of their own.
    let other = ProofKey::es256();
    let o = bound_session(&s, &other).await;
    let r = me(&s, "DPoP", &o.access, Some(&me_proof(&other, &o.access))).await;
    assert_eq!(r.status(), 200);
    assert!(s
        .metrics()
        .await
        .contains(r#"auth_rate_limited_total{limit="dpop_key"} 2"#));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_access_token_needs_the_dpop_scheme_and_a_proof_with_its_hash() {
    let s = Server::start(&[]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await;
    let r = me(&s, "Bearer", &t.access, None).await;
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.starts_with("DPoP "), "{www}");
    expect_error(r, 401, "dpop_proof_invalid").await;
    for proof in [
        None,
        // No ath, another token's ath, another key, another URL, another method.
        Some(key.proof(&Claims {
            method: "GET",
            url: "http://baton.test/auth/me",
            ..Claims::default()
        })),
        Some(me_proof(&key, "another token")),
        Some(me_proof(&ProofKey::es256(), &t.access)),
        Some(key.proof(&Claims {
            method: "GET",
            url: "http://baton.test/auth/sessions",
            access_token: Some(&t.access),
            ..Claims::default()
        })),
        Some(key.proof(&Claims {
            method: "POST",
            url: "http://baton.test/auth/me",
            access_token: Some(&t.access),
            ..Claims::default()
        })),
    ] {
        let r = me(&s, "DPoP", &t.access, proof.as_deref()).await;
        expect_error(r, 401, "dpop_proof_invalid").await;
    }
    let r = me(&s, "DPoP", &t.access, Some(&me_proof(&key, &t.access))).await;
    assert_eq!(r.status(), 200);
    // An expired or revoked bound token is challenged with the DPoP scheme too.
    let r = me(
        &s,
        "DPoP",
        "not-a-token",
        Some(&me_proof(&key, "not-a-token")),
    )
    .await;
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.starts_with(r#"DPoP error="invalid_token""#), "{www}");
    // A Bearer session's token is not accepted with the DPoP scheme.
    let email = new_account(&s).await;
    let plain = Tokens::from_json(
        login_with_proof(&s, &email, None)
            .await
            .json()
            .await
            .unwrap(),
    );
    let r = me(
        &s,
        "DPoP",
        &plain.access,
        Some(&me_proof(&key, &plain.access)),
    )
    .await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_of_a_bound_session_needs_its_key() {
    let s = Server::start(&[]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await;
    // By refresh token without a proof, by access token as Bearer: refused, still signed in.
    let r = s
        .post(
            "/auth/logout",
            json!({"refresh_token": t.refresh}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    let r = s
        .req(Method::POST, "/auth/logout")
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "dpop_proof_invalid").await;
    let r = me(&s, "DPoP", &t.access, Some(&me_proof(&key, &t.access))).await;
    assert_eq!(r.status(), 200);
    // With a proof by the key: signed out.
    let r = s
        .req(Method::POST, "/auth/logout")
        .header("x-device-id", "dev-1")
        .header("dpop", key.post("/auth/logout"))
        .json(&json!({"refresh_token": t.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = refresh_with(&s, &t.refresh, Some(&key.post("/auth/refresh"))).await;
    expect_error(r, 401, "session_revoked").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_settings() {
    let key = ProofKey::es256();
    // required: no session without a proof, and no refresh of an unbound one.
    let db = fresh_database().await;
    let allowed = Server::start_on(&db, &[]).await;
    let email = new_account(&allowed).await;
    let plain = Tokens::from_json(
        login_with_proof(&allowed, &email, None)
            .await
            .json()
            .await
            .unwrap(),
    );
    allowed.stop().await;
    let required = Server::start_on(&db, &[("dpop", "required")]).await;
    let r = login_with_proof(&required, &email, None).await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    let r = login_with_proof(&required, &email, Some(&key.post("/auth/login"))).await;
    assert_eq!(r.status(), 200);
    let r = refresh_with(&required, &plain.refresh, None).await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    required.stop().await;
    // off: proofs are ignored at login (a Bearer session), and discovery does not offer DPoP.
    let off = Server::start_on(&db, &[("dpop", "off")]).await;
    let r = login_with_proof(&off, &email, Some(&key.post("/auth/login"))).await;
    assert_eq!(r.status(), 200);
    let t = Tokens::from_json(r.json().await.unwrap());
    assert_eq!(t.json["token_type"], "Bearer");
    let doc = off.get_json("/.well-known/openid-configuration").await;
    assert!(doc.get("dpop_signing_alg_values_supported").is_none());
    off.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htu_follows_the_host_without_a_public_url() {
    let s = Server::start(&[("public-url", "none")]).await;
    let key = ProofKey::es256();
    let email = new_account(&s).await;
    let proof = |url: &str| {
        key.proof(&Claims {
            method: "POST",
            url,
            ..Claims::default()
        })
    };
    let r = login_with_proof(&s, &email, Some(&proof("http://baton.test/auth/login"))).await;
    expect_error(r, 401, "dpop_proof_invalid").await;
    let url = format!("{}/auth/login?ignored=1", s.url);
    let r = login_with_proof(&s, &email, Some(&proof(&url))).await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_reports_the_binding() {
    let secret = "introspection secret for the tests of baton-server";
    let s = Server::start(&[("introspection-token", secret)]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await;
    let r = s
        .req(Method::POST, "/auth/introspect")
        .bearer_auth(secret)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", t.access))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "DPoP");
    assert_eq!(v["cnf"]["jkt"], key.thumbprint());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_captured_proof_costs_its_owner_nothing() {
    let s = Server::start(&[("dpop-proofs-per-key", "10")]).await;
    let key = ProofKey::es256();
    let t = bound_session(&s, &key).await; // one proof of the budget
                                           // The owner's request, captured: answered once, then replayed again and again.
    let captured = me_proof(&key, &t.access);
    assert_eq!(
        me(&s, "DPoP", &t.access, Some(&captured)).await.status(),
        200
    );
    for _ in 0..30 {
        let r = me(&s, "DPoP", &t.access, Some(&captured)).await;
        expect_error(r, 401, "dpop_proof_invalid").await;
    }
    // The owner's own fresh proofs are still within the key's budget.
    for _ in 0..7 {
        let r = me(&s, "DPoP", &t.access, Some(&me_proof(&key, &t.access))).await;
        assert_eq!(r.status(), 200);
    }
    let r = refresh_with(&s, &t.refresh, Some(&key.post("/auth/refresh"))).await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheme_a_proof_names_is_believed_only_from_a_trusted_proxy() {
    let s = Server::start(&[("public-url", "none")]).await;
    let key = ProofKey::es256();
    let email = new_account(&s).await;
    // A client that claims to have come over https, directly: its header is ignored, so a
    // proof for the https URL does not match the request.
    let https = format!("{}/auth/login", s.url.replace("http://", "https://"));
    let proof = key.proof(&Claims {
        method: "POST",
        url: &https,
        ..Claims::default()
    });
    let r = s
        .req(Method::POST, "/auth/login")
        .header("x-device-id", "dev-1")
        .header("x-forwarded-proto", "https")
        .header("dpop", proof)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "dpop_proof_invalid").await;
    s.stop().await;
    // Behind a trusted proxy (loopback here) the same header counts.
    let s = Server::start(&[("public-url", "none"), ("trusted-proxies", "127.0.0.1/32")]).await;
    let email = new_account(&s).await;
    let https = format!("{}/auth/login", s.url.replace("http://", "https://"));
    let proof = key.proof(&Claims {
        method: "POST",
        url: &https,
        ..Claims::default()
    });
    let r = s
        .req(Method::POST, "/auth/login")
        .header("x-device-id", "dev-1")
        .header("x-forwarded-proto", "https")
        .header("dpop", proof)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
