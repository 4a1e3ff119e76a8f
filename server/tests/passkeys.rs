//! Passkeys (docs/api.md, "Passkeys"): registration and usernameless sign-in driven by a
//! software authenticator (ES256 with a counter, RS256 without), and every refusal: a replayed
//! or expired challenge, another origin, another RP id, no user verification, a counter going
//! back, another user's credential, a removed passkey, a disabled account; a passkey as the
//! second factor; the settings.

mod common;

use common::authenticator::Authenticator;
use common::proof::ProofKey;
use common::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// The test servers' public URL, whose host is the default RP id and origin.
const ORIGIN: &str = "http://baton.test";
const RP_ID: &str = "baton.test";

async fn send(
    s: &Server,
    method: Method,
    path: &str,
    access: Option<&str>,
    body: Value,
) -> Response {
    let mut r = s
        .req(method, path)
        .header("x-device-id", "dev-1")
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

/// A registration ceremony for the user of `access`: `{challenge_id, options}`.
async fn register_options(s: &Server, access: &str, body: Value) -> Value {
    let r = send(
        s,
        Method::POST,
        "/auth/passkeys/register/options",
        Some(access),
        body,
    )
    .await;
    json_ok(r, 200).await
}

/// Registers `auth` for the user of `access`: the passkey JSON.
async fn register(s: &Server, access: &str, auth: &mut Authenticator, name: Option<&str>) -> Value {
    let body = name.map_or(json!({}), |n| json!({ "name": n }));
    let c = register_options(s, access, body).await;
    let credential = auth.create(&c["options"]);
    let body = json!({"challenge_id": c["challenge_id"], "credential": credential});
    let r = send(
        s,
        Method::POST,
        "/auth/passkeys/register/verify",
        Some(access),
        body,
    )
    .await;
    json_ok(r, 201).await["passkey"].clone()
}

/// A sign-in ceremony: (challenge_id, options).
async fn login_options(s: &Server) -> (String, Value) {
    let c = json_ok(
        send(
            s,
            Method::POST,
            "/auth/passkeys/login/options",
            None,
            json!({}),
        )
        .await,
        200,
    )
    .await;
    (
        c["challenge_id"].as_str().unwrap().to_owned(),
        c["options"].clone(),
    )
}

async fn login_verify(s: &Server, challenge_id: &str, credential: Value) -> Response {
    let body = json!({"challenge_id": challenge_id, "credential": credential});
    send(s, Method::POST, "/auth/passkeys/login/verify", None, body).await
}

/// Signs in with `auth`: the answer.
async fn sign_in(s: &Server, auth: &mut Authenticator) -> Response {
    let (id, options) = login_options(s).await;
    let credential = auth.get(&options);
    login_verify(s, &id, credential).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_register_and_sign_in_without_a_username() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    for (mut auth, alg) in [
        (Authenticator::es256(ORIGIN, RP_ID), -7),
        (Authenticator::rs256(ORIGIN, RP_ID).without_counter(), -257),
    ] {
        let (email, t) = s.user("dev-1").await;
        let c = register_options(&s, &t.access, json!({"name": "Laptop"})).await;
        let o = &c["options"];
        assert_eq!(o["rp"], json!({"id": RP_ID, "name": "Baton"}), "{o}");
        assert_eq!(o["user"]["name"], email.as_str());
        assert!(o["challenge"].as_str().unwrap().len() >= 43, "{o}");
        let algs: Vec<i64> = o["pubKeyCredParams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["alg"].as_i64().unwrap())
            .collect();
        assert_eq!(algs, [-7, -257]);
        assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
        assert_eq!(o["attestation"], "none");
        let credential = auth.create(o);
        let body = json!({"challenge_id": c["challenge_id"], "credential": credential});
        let p = json_ok(
            send(
                &s,
                Method::POST,
                "/auth/passkeys/register/verify",
                Some(&t.access),
                body,
            )
            .await,
            201,
        )
        .await["passkey"]
            .clone();
        assert_eq!(p["name"], "Laptop");
        assert!(p["last_used_at"].is_null());
        // The next registration excludes it.
        let c = register_options(&s, &t.access, json!({})).await;
        assert_eq!(
            c["options"]["excludeCredentials"][0]["id"],
            auth.id().as_str()
        );

        // Usernameless: the options name no credential.
        let (id, options) = login_options(&s).await;
        assert!(
            options["allowCredentials"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "{options}"
        );
        assert_eq!(options["userVerification"], "required");
        assert_eq!(options["rpId"], RP_ID);
        let signed =
            Tokens::from_json(json_ok(login_verify(&s, &id, auth.get(&options)).await, 200).await);
        let claims = claims(&signed.access);
        assert_eq!(claims["amr"], json!(["webauthn"]), "alg {alg}");
        assert_eq!(claims["aal"], 2);
        assert_eq!(claims["sub"], claims_of_user(&t));
        // Again (the counter moves on, or stays 0 without one).
        let again = sign_in(&s, &mut auth).await;
        json_ok(again, 200).await;
        let list = json_ok(
            send(
                &s,
                Method::GET,
                "/auth/passkeys",
                Some(&t.access),
                json!({}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(list["passkeys"].as_array().unwrap().len(), 1);
        assert!(list["passkeys"][0]["last_used_at"].is_i64());
        let kinds = types(&events(&s, &t.access).await);
        for k in ["passkey_registered", "passkey_login"] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
        // Renamed; then removed, it no longer signs in.
        let pid = p["id"].as_str().unwrap();
        let r = send(
            &s,
            Method::PATCH,
            &format!("/auth/passkeys/{pid}"),
            Some(&t.access),
            json!({"name": " Phone "}),
        )
        .await;
        assert_eq!(json_ok(r, 200).await["passkey"]["name"], "Phone");
        let r = send(
            &s,
            Method::DELETE,
            &format!("/auth/passkeys/{pid}"),
            Some(&t.access),
            json!({}),
        )
        .await;
        assert_eq!(r.status(), 204);
        expect_error(sign_in(&s, &mut auth).await, 401, "passkey_invalid").await;
        let kinds = types(&events(&s, &t.access).await);
        assert!(kinds.iter().any(|x| x == "passkey_removed"), "{kinds:?}");
    }
    s.stop().await;
}

fn claims_of_user(t: &Tokens) -> Value {
    claims(&t.access)["sub"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_session_is_dpop_bound_and_remembered() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("dev-1").await;
    let mut auth = Authenticator::es256(ORIGIN, RP_ID);
    register(&s, &t.access, &mut auth, None).await;
    let (id, options) = login_options(&s).await;
    let key = ProofKey::es256();
    let body = json!({"challenge_id": id, "credential": auth.get(&options), "remember_me": true});
    let r = s
        .req(Method::POST, "/auth/passkeys/login/verify")
        .header("x-device-id", "dev-1")
        .header("dpop", key.post("/auth/passkeys/login/verify"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let b = json_ok(r, 200).await;
    assert_eq!(b["token_type"], "DPoP");
    assert_eq!(
        claims(b["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_are_not_the_ceremony_s_are_refused() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (_, t) = s.user("dev-1").await;
    let mut auth = Authenticator::es256(ORIGIN, RP_ID);
    let p = register(&s, &t.access, &mut auth, Some("Key")).await;
    assert_eq!(p["name"], "Key");

    // A challenge answers once.
    let (id, options) = login_options(&s).await;
    let answer = auth.get(&options);
    json_ok(login_verify(&s, &id, answer.clone()).await, 200).await;
    expect_error(login_verify(&s, &id, answer).await, 401, "passkey_invalid").await;
    // A ceremony is answered only by the browser that asked for it (its device id); someone
    // else's answer does not spend it.
    let (id, options) = login_options(&s).await;
    let answer = auth.get(&options);
    let body = json!({"challenge_id": id, "credential": answer});
    let elsewhere = s
        .req(Method::POST, "/auth/passkeys/login/verify")
        .header("x-device-id", "dev-other")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(elsewhere, 401, "passkey_invalid").await;
    json_ok(login_verify(&s, &id, body["credential"].clone()).await, 200).await;
    // A challenge of an unknown ceremony, or an expired one.
    let (_, options) = login_options(&s).await;
    expect_error(
        login_verify(&s, "no-such", auth.get(&options)).await,
        401,
        "passkey_invalid",
    )
    .await;
    let (id, options) = login_options(&s).await;
    let db = open_db(&s.database_url).await;
    sqlx::query("UPDATE passkey_challenges SET expires_at = 1 WHERE id = $1")
        .bind(&id)
        .execute(&db)
        .await
        .unwrap();
    let r = login_verify(&s, &id, auth.get(&options)).await;
    let b = expect_error(r, 401, "passkey_invalid").await;
    assert!(
        b["error"]["message"].as_str().unwrap().contains("expired"),
        "{b}"
    );

    // Another origin, another RP id, no user verification.
    let refused_for = |b: Value, why: &str| {
        let m = b["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.contains(why), "{m:?} should say {why:?}");
    };
    let mut other_origin = auth.clone();
    other_origin.origin = "http://evil.test".into();
    let b = expect_error(sign_in(&s, &mut other_origin).await, 401, "passkey_invalid").await;
    refused_for(b, "origin");
    let mut other_rp = auth.clone();
    other_rp.rp_id = "evil.test".into();
    let b = expect_error(sign_in(&s, &mut other_rp).await, 401, "passkey_invalid").await;
    refused_for(b, "relying party id hash");
    let mut no_uv = auth.clone();
    no_uv.uv = false;
    let b = expect_error(sign_in(&s, &mut no_uv).await, 401, "passkey_invalid").await;
    refused_for(b, "user verified bit");
    // The real one still works: none of those moved its counter.
    json_ok(sign_in(&s, &mut auth).await, 200).await;

    // A counter that goes back: a copy of the authenticator may exist.
    let (id, options) = login_options(&s).await;
    let old = auth.assertion(&auth.client_data_for(&options), 1);
    let b = expect_error(login_verify(&s, &id, old).await, 401, "passkey_invalid").await;
    assert!(
        b["error"]["message"].as_str().unwrap().contains("counter"),
        "{b}"
    );
    let kinds = types(&events(&s, &t.access).await);
    assert!(
        kinds.iter().any(|k| k == "passkey_clone_suspected"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "passkey_refused"), "{kinds:?}");

    // Another user's credential: their credential id under this user's handle, or a key that
    // is not the registered one.
    let (_, t2) = s.user("dev-2").await;
    let mut theirs = Authenticator::es256(ORIGIN, RP_ID);
    register(&s, &t2.access, &mut theirs, None).await;
    let mut forged = Authenticator::es256(ORIGIN, RP_ID);
    forged.credential_id = theirs.credential_id.clone();
    forged.user_handle = auth.user_handle.clone();
    let b = expect_error(sign_in(&s, &mut forged).await, 401, "passkey_invalid").await;
    refused_for(b, "user handle");
    forged.user_handle = theirs.user_handle.clone();
    let b = expect_error(sign_in(&s, &mut forged).await, 401, "passkey_invalid").await;
    refused_for(b, "authentication has failed");
    // Removing another user's passkey is not found.
    let list = json_ok(
        send(
            &s,
            Method::GET,
            "/auth/passkeys",
            Some(&t2.access),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let theirs_id = list["passkeys"][0]["id"].as_str().unwrap().to_owned();
    let r = send(
        &s,
        Method::DELETE,
        &format!("/auth/passkeys/{theirs_id}"),
        Some(&t.access),
        json!({}),
    )
    .await;
    expect_error(r, 404, "not_found").await;
    json_ok(sign_in(&s, &mut theirs).await, 200).await;

    // Registration: a replayed challenge, no user verification, another origin.
    let c = register_options(&s, &t.access, json!({})).await;
    let mut bad = Authenticator::es256(ORIGIN, RP_ID);
    bad.uv = false;
    let body = json!({"challenge_id": c["challenge_id"], "credential": bad.create(&c["options"])});
    let r = send(
        &s,
        Method::POST,
        "/auth/passkeys/register/verify",
        Some(&t.access),
        body.clone(),
    )
    .await;
    expect_error(r, 400, "passkey_invalid").await;
    let r = send(
        &s,
        Method::POST,
        "/auth/passkeys/register/verify",
        Some(&t.access),
        body,
    )
    .await;
    expect_error(r, 400, "passkey_invalid").await;
    let c = register_options(&s, &t.access, json!({})).await;
    let mut elsewhere = Authenticator::es256("http://evil.test", RP_ID);
    let body =
        json!({"challenge_id": c["challenge_id"], "credential": elsewhere.create(&c["options"])});
    let r = send(
        &s,
        Method::POST,
        "/auth/passkeys/register/verify",
        Some(&t.access),
        body,
    )
    .await;
    expect_error(r, 400, "passkey_invalid").await;
    // Another user's registration ceremony is not this user's.
    let c = register_options(&s, &t2.access, json!({})).await;
    let mut mine = Authenticator::es256(ORIGIN, RP_ID);
    let body = json!({"challenge_id": c["challenge_id"], "credential": mine.create(&c["options"])});
    let r = send(
        &s,
        Method::POST,
        "/auth/passkeys/register/verify",
        Some(&t.access),
        body,
    )
    .await;
    expect_error(r, 400, "passkey_invalid").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_cannot_sign_in_with_its_passkey() {
    let s = Server::start(&[]).await;
    let (email, t) = s.user("dev-1").await;
    let mut auth = Authenticator::es256(ORIGIN, RP_ID);
    register(&s, &t.access, &mut auth, None).await;
    let db = open_db(&s.database_url).await;
    sqlx::query("UPDATE users SET disabled_until = $1 WHERE email = $2")
        .bind(i64::MAX / 2)
        .bind(&email)
        .execute(&db)
        .await
        .unwrap();
    expect_error(sign_in(&s, &mut auth).await, 403, "user_disabled").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_at_most_twenty_passkeys() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (_, t) = s.user("dev-1").await;
    for _ in 0..20 {
        register(
            &s,
            &t.access,
            &mut Authenticator::es256(ORIGIN, RP_ID),
            None,
        )
        .await;
    }
    let list = json_ok(
        send(
            &s,
            Method::GET,
            "/auth/passkeys",
            Some(&t.access),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let names: Vec<&str> = list["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 20);
    assert_eq!(names[0], "Passkey 1");
    assert_eq!(names[19], "Passkey 20");
    let r = send(
        &s,
        Method::POST,
        "/auth/passkeys/register/options",
        Some(&t.access),
        json!({}),
    )
    .await;
    expect_error(r, 409, "invalid_request").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_is_a_second_factor_and_steps_up() {
    let s = Server::start(&[("rate-limits", "relaxed")]).await;
    let (email, t) = s.user("dev-1").await;
    // TOTP in force.
    let e = json_ok(
        send(
            &s,
            Method::POST,
            "/auth/mfa/totp/enroll",
            Some(&t.access),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let secret = base32(e["secret"].as_str().unwrap());
    let step = baton_server::rules::totp::step_of(baton_server::now_ms());
    let code = format!("{:06}", baton_server::rules::totp::code_at(&secret, step));
    let body = json!({"factor_id": e["factor_id"], "code": code});
    json_ok(
        send(
            &s,
            Method::POST,
            "/auth/mfa/totp/confirm",
            Some(&t.access),
            body,
        )
        .await,
        200,
    )
    .await;
    let mut auth = Authenticator::es256(ORIGIN, RP_ID);
    register(&s, &t.access, &mut auth, None).await;

    let first = json_ok(
        s.post(
            "/auth/login",
            json!({"email": email, "password": "correct horse"}),
            Some("dev-1"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        first["methods"],
        json!(["totp", "recovery_code", "passkey"])
    );
    let token = first["mfa_token"].as_str().unwrap();
    // Another user's passkey is not this account's second factor (and counts as a wrong one).
    let (_, t2) = s.user("dev-2").await;
    let mut theirs = Authenticator::es256(ORIGIN, RP_ID);
    register(&s, &t2.access, &mut theirs, None).await;
    let (id, options) = login_options(&s).await;
    let body = json!({"mfa_token": token, "challenge_id": id, "credential": theirs.get(&options)});
    expect_error(
        s.post("/auth/mfa/verify", body, Some("dev-1")).await,
        401,
        "passkey_invalid",
    )
    .await;
    let (id, options) = login_options(&s).await;
    let body = json!({"mfa_token": token, "challenge_id": id, "credential": auth.get(&options)});
    let signed = Tokens::from_json(
        json_ok(s.post("/auth/mfa/verify", body, Some("dev-1")).await, 200).await,
    );
    let c = claims(&signed.access);
    assert_eq!(c["amr"], json!(["pwd", "webauthn"]));
    assert_eq!(c["aal"], 2);
    let kinds = types(&events(&s, &t.access).await);
    assert!(kinds.iter().any(|k| k == "mfa_refused"), "{kinds:?}");

    // Step-up of a level-1 session with the passkey.
    assert_eq!(claims(&t.access)["aal"], 1);
    let (id, options) = login_options(&s).await;
    let body = json!({"challenge_id": id, "credential": auth.get(&options)});
    let up = json_ok(
        send(&s, Method::POST, "/auth/mfa/step-up", Some(&t.access), body).await,
        200,
    )
    .await;
    assert_eq!(claims(up["access_token"].as_str().unwrap())["aal"], 2);
    s.stop().await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_an_account_or_proving_its_address_ends_its_passkeys() {
    let s = Server::start(&[]).await;
    let (_, t) = s.user("dev-1").await;
    let mut auth = Authenticator::es256(ORIGIN, RP_ID);
    register(&s, &t.access, &mut auth, None).await;
    let r = send(
        &s,
        Method::DELETE,
        "/auth/me",
        Some(&t.access),
        json!({"password": "correct horse"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    expect_error(sign_in(&s, &mut auth).await, 401, "passkey_invalid").await;
    let db = open_db(&s.database_url).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM passkeys")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_are_off_without_a_relying_party_and_settings_are_checked() {
    let s = Server::start(&[("public-url", "none")]).await;
    let r = send(
        &s,
        Method::POST,
        "/auth/passkeys/login/options",
        None,
        json!({}),
    )
    .await;
    let b = expect_error(r, 503, "passkeys_unavailable").await;
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("BATON_WEBAUTHN_RP_ID"));
    s.stop().await;

    use baton_server::crypto::webauthn::RelyingParty;
    let db = "sqlite::memory:";
    let refused = |o: &[(&str, &str)]| RelyingParty::from_config(&config(db, o)).unwrap_err();
    let e = refused(&[("webauthn-rp-id", "127.0.0.1")]);
    assert!(e.contains("BATON_WEBAUTHN_RP_ID"), "{e}");
    let e = refused(&[("webauthn-origins", "https://other.example")]);
    assert!(
        e.contains("BATON_WEBAUTHN_ORIGINS") && e.contains("other.example"),
        "{e}"
    );
    let e = refused(&[("public-url", "none"), ("webauthn-rp-id", "example.com")]);
    assert!(e.contains("BATON_WEBAUTHN_ORIGINS"), "{e}");
    let ok = RelyingParty::from_config(&config(
        db,
        &[
            ("webauthn-rp-id", "example.com"),
            (
                "webauthn-origins",
                "https://app.example.com, https://example.com",
            ),
        ],
    ))
    .unwrap()
    .unwrap();
    assert_eq!(ok.rp_id(), "example.com");
}
