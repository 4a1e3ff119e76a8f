//! Two-factor sign-in: TOTP enrolment, sign-in with a code or a recovery code, the mfa_token's
//! rules, replay, drift, lockout, step-up and its end, removal, an administrator's reset
//! (docs/api.md, "Two-factor sign-in"). Codes are computed from the secret at chosen steps.

mod common;

use baton_server::rules::totp;
use common::proof::{Claims as ProofClaims, ProofKey};
use common::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use std::time::Duration;
/// The code of `secret` `offset` steps from now.
fn code(secret: &[u8], offset: i64) -> String {
    let step = totp::step_of(baton_server::now_ms()) + offset;
    format!("{:06}", totp::code_at(secret, step))
}

async fn send(
    s: &Server,
    method: Method,
    path: &str,
    access: Option<&str>,
    body: Value,
    device: &str,
) -> Response {
    let mut r = s
        .req(method, path)
        .header("x-device-id", device)
        .json(&body);
    if let Some(a) = access {
        r = r.bearer_auth(a);
    }
    r.send().await.unwrap()
}

async fn json_ok(r: Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A user with TOTP set up: (email, the session that set it up, the secret, the recovery codes,
/// the step whose code confirmed it).
async fn enrolled(s: &Server) -> (String, Tokens, Vec<u8>, Vec<String>, i64) {
    let (email, t) = s.user("dev-1").await;
    let e = json_ok(
        send(
            s,
            Method::POST,
            "/auth/mfa/totp/enroll",
            Some(&t.access),
            json!({}),
            "dev-1",
        )
        .await,
        200,
    )
    .await;
    let secret = base32(e["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20);
    let url = e["otpauth_url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/Baton:") && url.contains("issuer=Baton"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={}", e["secret"].as_str().unwrap())));
    let factor = e["factor_id"].as_str().unwrap();
    // A wrong code does not confirm.
    let wrong = json!({"factor_id": factor, "code": code(&secret, 5)});
    expect_error(
        send(
            s,
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(&t.access),
            wrong,
            "dev-1",
        )
        .await,
        401,
        "invalid_code",
    )
    .await;
    let step = totp::step_of(baton_server::now_ms());
    let body = json!({"factor_id": factor, "code": format!("{:06}", totp::code_at(&secret, step))});
    let r = json_ok(
        send(
            s,
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(&t.access),
            body,
            "dev-1",
        )
        .await,
        200,
    )
    .await;
    let codes: Vec<String> = r["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (email, t, secret, codes, step)
}

/// A password sign-in of an account with a second factor: its `mfa_token`.
async fn first_step(s: &Server, email: &str, device: &str) -> String {
    let r = s
        .post(
            "/auth/login",
            json!({"email": email, "password": "correct horse"}),
            Some(device),
        )
        .await;
    let body = json_ok(r, 200).await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert!(body.get("access_token").is_none());
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(s: &Server, mfa_token: &str, factor: Value, device: &str) -> Response {
    let mut body = json!({ "mfa_token": mfa_token });
    body.as_object_mut()
        .unwrap()
        .extend(factor.as_object().unwrap().clone());
    s.post("/auth/mfa/verify", body, Some(device)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_signs_in_once_per_code_with_one_step_of_drift() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (email, _, secret, codes, step) = enrolled(&s).await;
    // The code that confirmed the set-up is spent: its step is taken.
    let token = first_step(&s, &email, "dev-1").await;
    let spent = format!("{:06}", totp::code_at(&secret, step));
    let r = second_step(&s, &token, json!({ "totp": spent }), "dev-1").await;
    expect_error(r, 401, "invalid_code").await;
    // Two steps away is too far either way.
    for off in [-2, 2] {
        let r = second_step(&s, &token, json!({"totp": code(&secret, off)}), "dev-1").await;
        expect_error(r, 401, "invalid_code").await;
    }
    // The next step (a clock one step ahead) signs in, at level 2.
    let next = code(&secret, 1);
    let t = Tokens::from_json(
        json_ok(
            second_step(&s, &token, json!({ "totp": next }), "dev-1").await,
            200,
        )
        .await,
    );
    let c = claims(&t.access);
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert_eq!(c["aal"], 2);
    // The mfa_token is spent.
    let r = second_step(&s, &token, json!({"totp": code(&secret, 1)}), "dev-1").await;
    expect_error(r, 401, "mfa_token_invalid").await;
    // The same code again, in a new sign-in: a replay.
    let token = first_step(&s, &email, "dev-1").await;
    let r = second_step(&s, &token, json!({ "totp": next }), "dev-1").await;
    expect_error(r, 401, "invalid_code").await;
    // A recovery code works once, typed any way.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let t = Tokens::from_json(
        json_ok(
            second_step(&s, &token, json!({ "recovery_code": typed }), "dev-1").await,
            200,
        )
        .await,
    );
    assert_eq!(claims(&t.access)["amr"], json!(["pwd", "recovery"]));
    let token = first_step(&s, &email, "dev-1").await;
    let r = second_step(&s, &token, json!({ "recovery_code": codes[0] }), "dev-1").await;
    expect_error(r, 401, "invalid_code").await;
    // Refreshes keep the level.
    let r = s.refresh(&t.refresh, Some("dev-1")).await;
    let next = Tokens::from_json(json_ok(r, 200).await);
    assert_eq!(claims(&next.access)["aal"], 2);
    // Neither or both factors: 422.
    for bad in [json!({}), json!({"totp": "123456", "recovery_code": "x"})] {
        let r = second_step(&s, &token, bad, "dev-1").await;
        expect_error(r, 422, "validation_failed").await;
    }
    // The audit log says each.
    let kinds = types(&events(&s, &t.access).await);
    for k in [
        "mfa_enrolled",
        "mfa_required",
        "mfa_verified",
        "mfa_refused",
        "recovery_code_used",
    ] {
        assert!(kinds.contains(&k.to_owned()), "{k}: {kinds:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_token_is_for_its_browser_its_key_and_five_minutes() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (email, _, secret, _, _) = enrolled(&s).await;
    // Another browser cannot finish the sign-in.
    let token = first_step(&s, &email, "dev-1").await;
    let r = second_step(&s, &token, json!({"totp": code(&secret, 1)}), "dev-2").await;
    expect_error(r, 401, "mfa_token_invalid").await;
    // Expired.
    let db = open_db(&s.database_url).await;
    sqlx::query("UPDATE mfa_challenges SET expires_at = $1")
        .bind(baton_server::now_ms() - 1)
        .execute(&db)
        .await
        .unwrap();
    let r = second_step(&s, &token, json!({"totp": code(&secret, 1)}), "dev-1").await;
    expect_error(r, 401, "mfa_token_invalid").await;
    let r = second_step(&s, "made-up", json!({"totp": code(&secret, 1)}), "dev-1").await;
    expect_error(r, 401, "mfa_token_invalid").await;

    // A DPoP sign-in: the second step must prove the same key, and the session is bound to it.
    let key = ProofKey::es256();
    let login = |k: &ProofKey| {
        let proof = k.proof(&ProofClaims {
            method: "POST",
            url: "http://baton.test/auth/login",
            ..ProofClaims::default()
        });
        s.req(Method::POST, "/auth/login")
            .header("x-device-id", "dev-1")
            .header("dpop", proof)
            .json(&json!({"email": email, "password": "correct horse"}))
            .send()
    };
    let body = json_ok(login(&key).await.unwrap(), 200).await;
    let token = body["mfa_token"].as_str().unwrap().to_owned();
    let verify = |k: Option<&ProofKey>, totp: String| {
        let mut r = s
            .req(Method::POST, "/auth/mfa/verify")
            .header("x-device-id", "dev-1");
        if let Some(k) = k {
            r = r.header(
                "dpop",
                k.proof(&ProofClaims {
                    method: "POST",
                    url: "http://baton.test/auth/mfa/verify",
                    ..ProofClaims::default()
                }),
            );
        }
        r.json(&json!({ "mfa_token": token, "totp": totp })).send()
    };
    let r = verify(None, code(&secret, 1)).await.unwrap();
    expect_error(r, 401, "dpop_proof_invalid").await;
    let r = verify(Some(&ProofKey::es256()), code(&secret, 1))
        .await
        .unwrap();
    expect_error(r, 401, "dpop_proof_invalid").await;
    let t = json_ok(verify(Some(&key), code(&secret, 1)).await.unwrap(), 200).await;
    assert_eq!(t["token_type"], "DPoP");
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_lock_the_second_factor_for_their_source() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (email, _, secret, codes, _) = enrolled(&s).await;
    // An unknown device guesses.
    let token = first_step(&s, &email, "stranger").await;
    for _ in 0..5 {
        let r = second_step(&s, &token, json!({"totp": "000000"}), "stranger").await;
        expect_error(r, 401, "invalid_code").await;
    }
    let r = second_step(&s, &token, json!({"recovery_code": codes[1]}), "stranger").await;
    expect_error(r, 429, "account_locked").await;
    // The owner's device, known to the account, is another source.
    let token = first_step(&s, &email, "dev-1").await;
    let r = second_step(&s, &token, json!({"totp": code(&secret, 1)}), "dev-1").await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_raises_a_session_for_its_ttl_and_guards_removal() {
    let s = Server::start(&[("rate-limits", "relaxed"), ("step-up-ttl", "2s")]).await;
    let (_, t, secret, codes, _) = enrolled(&s).await;
    // The session that set it up signed in with the password alone.
    assert_eq!(claims(&t.access)["aal"], 1);
    let list = json_ok(s.get_auth("/auth/mfa/factors", &t.access).await, 200).await;
    assert_eq!(list["recovery_codes_left"], 10);
    let factor = list["factors"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/auth/mfa/factors/{factor}");
    let r = send(
        &s,
        Method::DELETE,
        &path,
        Some(&t.access),
        json!({}),
        "dev-1",
    )
    .await;
    expect_error(r, 403, "step_up_required").await;
    let r = send(
        &s,
        Method::POST,
        "/auth/mfa/step-up",
        Some(&t.access),
        json!({"totp": "000000"}),
        "dev-1",
    )
    .await;
    expect_error(r, 401, "invalid_code").await;
    let r = send(
        &s,
        Method::POST,
        "/auth/mfa/step-up",
        Some(&t.access),
        json!({"totp": code(&secret, 1)}),
        "dev-1",
    )
    .await;
    let up = Tokens::from_json(json_ok(r, 200).await);
    let c = claims(&up.access);
    assert_eq!(c["aal"], 2);
    // The token says level 2 no longer than the step-up lasts.
    assert!(
        c["exp"].as_i64().unwrap() <= baton_server::now_ms() / 1000 + 2,
        "{c}"
    );
    assert_eq!(up.refresh, t.refresh, "the same refresh token");
    // A refresh within the window keeps the level; after it, level 1 again.
    let r = s.refresh(&up.refresh, Some("dev-1")).await;
    let within = Tokens::from_json(json_ok(r, 200).await);
    assert_eq!(claims(&within.access)["aal"], 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = s.refresh(&within.refresh, Some("dev-1")).await;
    let after = Tokens::from_json(json_ok(r, 200).await);
    assert_eq!(claims(&after.access)["aal"], 1);
    let r = send(
        &s,
        Method::DELETE,
        &path,
        Some(&after.access),
        json!({}),
        "dev-1",
    )
    .await;
    expect_error(r, 403, "step_up_required").await;
    // Stepped up by a recovery code, the factor goes, and the recovery codes with it.
    let r = send(
        &s,
        Method::POST,
        "/auth/mfa/step-up",
        Some(&after.access),
        json!({"recovery_code": codes[2]}),
        "dev-1",
    )
    .await;
    let up = Tokens::from_json(json_ok(r, 200).await);
    let r = send(
        &s,
        Method::DELETE,
        &path,
        Some(&up.access),
        json!({}),
        "dev-1",
    )
    .await;
    assert_eq!(r.status(), 204);
    let list = json_ok(s.get_auth("/auth/mfa/factors", &up.access).await, 200).await;
    assert_eq!(list, json!({"factors": [], "recovery_codes_left": 0}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_recovery_codes_replace_the_old_and_an_admin_resets_the_factors() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (email, t, secret, old, _) = enrolled(&s).await;
    let r = send(
        &s,
        Method::POST,
        "/auth/mfa/recovery-codes",
        Some(&t.access),
        json!({"totp": code(&secret, 1)}),
        "dev-1",
    )
    .await;
    let new = json_ok(r, 200).await["recovery_codes"].clone();
    assert_eq!(new.as_array().unwrap().len(), 10);
    let token = first_step(&s, &email, "dev-1").await;
    let r = second_step(&s, &token, json!({ "recovery_code": old[3] }), "dev-1").await;
    expect_error(r, 401, "invalid_code").await;
    let r = second_step(&s, &token, json!({ "recovery_code": new[0] }), "dev-1").await;
    assert_eq!(r.status(), 200);
    // Enrolling again while TOTP is set up is refused.
    let r = send(
        &s,
        Method::POST,
        "/auth/mfa/totp/enroll",
        Some(&t.access),
        json!({}),
        "dev-1",
    )
    .await;
    expect_error(r, 409, "invalid_request").await;

    // A lost phone: an administrator resets the factors; the password alone signs in again.
    let uid = claims(&t.access)["sub"].as_str().unwrap().to_owned();
    let admin = baton_server::signin::admin::create_token(
        &s.state.store,
        "support",
        &[baton_server::rules::account::Scope::UsersWrite],
        None,
    )
    .await
    .unwrap()
    .unwrap();
    let r = s
        .req(Method::DELETE, &format!("/admin/users/{uid}/mfa"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let t = s.login(&email, "correct horse", "dev-1").await;
    assert_eq!(claims(&t.access)["amr"], json!(["pwd"]));
    // A disabled account with a second factor is refused at the first step.
    let r = send(
        &s,
        Method::POST,
        "/auth/mfa/totp/enroll",
        Some(&t.access),
        json!({}),
        "dev-1",
    )
    .await;
    let e = json_ok(r, 200).await;
    let secret = base32(e["secret"].as_str().unwrap());
    let body = json!({"factor_id": e["factor_id"], "code": code(&secret, 0)});
    json_ok(
        send(
            &s,
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(&t.access),
            body,
            "dev-1",
        )
        .await,
        200,
    )
    .await;
    let r = s
        .req(Method::PATCH, &format!("/admin/users/{uid}"))
        .bearer_auth(&admin)
        .json(&json!({"disabled_until": "forever"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .post(
            "/auth/login",
            json!({"email": email, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await;
    expect_error(r, 403, "user_disabled").await;
    s.stop().await;
}

/// An emailed sign-in of an account with a second factor asks for it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emailed_code_is_a_first_factor_only() {
    let smtp = common::smtp::Smtp::start(None);
    let url = smtp.url();
    let s = Server::start(&[
        ("smtp-url", url.as_str()),
        ("mail-from", "Baton <no-reply@baton.test>"),
        ("magic-link-url", "http://app.test/sign-in"),
        ("rate-limits", "relaxed"),
    ])
    .await;
    let (email, _, secret, _, _) = enrolled(&s).await;
    // The address is the account's, proven before (else the mailed sign-in would end the
    // factor set up while it was not: see the next test).
    sqlx::query("UPDATE users SET email_verified_at = 1 WHERE email = $1")
        .bind(&email)
        .execute(&open_db(&s.database_url).await)
        .await
        .unwrap();
    let r = s
        .post(
            "/auth/otp/request",
            json!({ "email": email }),
            Some("dev-1"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let mail = smtp.mail(1).await;
    let i = mail.find("code: ").unwrap() + 6;
    let r = s
        .post(
            "/auth/otp/verify",
            json!({"email": email, "code": &mail[i..i + 6]}),
            Some("dev-1"),
        )
        .await;
    let body = json_ok(r, 200).await;
    assert_eq!(body["mfa_required"], true);
    let token = body["mfa_token"].as_str().unwrap();
    let t = json_ok(
        second_step(&s, token, json!({"totp": code(&secret, 1)}), "dev-1").await,
        200,
    )
    .await;
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["amr"],
        json!(["email", "otp"])
    );
    s.stop().await;
}

/// Someone registers an address that is not theirs and adds a second factor: when the owner
/// proves the address by mail, that factor ends with the rest (it would lock the owner out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_set_up_before_the_address_was_proven_ends_with_it() {
    let smtp = common::smtp::Smtp::start(None);
    let url = smtp.url();
    let s = Server::start(&[
        ("smtp-url", url.as_str()),
        ("mail-from", "Baton <no-reply@baton.test>"),
        ("magic-link-url", "http://app.test/sign-in"),
        ("rate-limits", "relaxed"),
    ])
    .await;
    // The squatter: registered with the owner's address, TOTP on.
    let (email, squatter, _, _, _) = enrolled(&s).await;
    // The owner signs in by mail: the address is proven, and the session starts at once.
    let r = s
        .post(
            "/auth/otp/request",
            json!({ "email": email }),
            Some("owner"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let mail = smtp.mail(1).await;
    let i = mail.find("code: ").unwrap() + 6;
    let r = s
        .post(
            "/auth/otp/verify",
            json!({"email": email, "code": &mail[i..i + 6]}),
            Some("owner"),
        )
        .await;
    let body = json_ok(r, 200).await;
    assert!(body.get("mfa_required").is_none(), "{body}");
    let owner = Tokens::from_json(body);
    let list = json_ok(s.get_auth("/auth/mfa/factors", &owner.access).await, 200).await;
    assert_eq!(list, json!({"factors": [], "recovery_codes_left": 0}));
    expect_error(
        s.get_auth("/auth/me", &squatter.access).await,
        401,
        "token_revoked",
    )
    .await;
    s.stop().await;
}
