//! baton-client in headless Chromium against a real baton-server.
//!
//! `cargo xtask test` starts the server (access tokens live 4 s) and compiles these tests with
//! `BATON_TEST_SERVER` set to its URL. A fetch spy counts what the client sends and can answer
//! for the server (fake 401s and 503s) to provoke the failure paths.
#![cfg(target_arch = "wasm32")]

use baton_client::BatonClient;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const SERVER: &str = match option_env!("BATON_TEST_SERVER") {
    Some(s) => s,
    None => "http://127.0.0.1:9",
};

#[wasm_bindgen(inline_js = r#"
const realFetch = globalThis.fetch.bind(globalThis);
let calls = [];
let fakes = {};
export function spyInstall() {
  if (globalThis.__batonSpy) return;
  globalThis.__batonSpy = true;
  globalThis.fetch = async (input, init) => {
    const req = new Request(input, init);
    const path = new URL(req.url).pathname;
    const call = { path, auth: req.headers.get("authorization"), device: req.headers.get("x-device-id"), dpop: req.headers.get("dpop") };
    calls.push(call);
    const f = fakes[path];
    if (f && f.times !== 0) {
      if (f.times > 0) f.times -= 1;
      const headers = { "Content-Type": "application/json" };
      if (f.retryAfter !== undefined) headers["Retry-After"] = String(f.retryAfter);
      return new Response(JSON.stringify({ error: { code: f.code, message: "synthetic" } }), { status: f.status, headers });
    }
    const res = await realFetch(req);
    call.status = res.status;
    return res;
  };
}
export function spyReset() { calls = []; fakes = {}; }
export function spyCount(path) { return calls.filter((c) => c.path === path).length; }
export function spyLastDevice(path) { const c = calls.filter((c) => c.path === path).pop(); return c ? c.device : null; }
export function spyLastAuth(path) { const c = calls.filter((c) => c.path === path).pop(); return c ? c.auth : null; }
export function spyLastDpop(path) { const c = calls.filter((c) => c.path === path).pop(); return c ? c.dpop : null; }
export function proofClaims(jws) { return JSON.parse(atob(jws.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); }
export function spyLastStatus(path) { const c = calls.filter((c) => c.path === path).pop(); return c ? c.status : null; }
export function spyFake(path, status, code, times, retryAfter) { fakes[path] = { status, code, times, retryAfter }; }
export function recorder() {
  const events = [];
  const f = (name, detail) => events.push({ name, detail });
  f.events = events;
  return f;
}
export function count(rec, name) { return rec.events.filter((e) => e.name === name).length; }
export function lastDetail(rec, name) { const e = rec.events.filter((e) => e.name === name).pop(); return e ? e.detail : null; }
export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
export function uniqueEmail() { return `w${Date.now()}${Math.random().toString(36).slice(2)}@example.com`; }
export async function rawPost(url, body, device) {
  const r = await realFetch(url, { method: "POST", headers: { "Content-Type": "application/json", "X-Device-ID": device }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
}
export function storageGet(kind, key) { return (kind === "session" ? sessionStorage : localStorage).getItem(key); }
export function storageSet(kind, key, value) { (kind === "session" ? sessionStorage : localStorage).setItem(key, value); }
export function cookies() { return document.cookie; }
export function dropSalt() { localStorage.removeItem("baton-auth:device-salt"); }
let saved = null;
export function removeCoordinationApis() {
  saved = { bc: globalThis.BroadcastChannel };
  Object.defineProperty(navigator, "locks", { value: undefined, configurable: true });
  delete globalThis.BroadcastChannel;
  return navigator.locks === undefined && typeof BroadcastChannel === "undefined";
}
export function restoreCoordinationApis() {
  delete navigator.locks; // the prototype's getter shows through again
  globalThis.BroadcastChannel = saved.bc;
}
"#)]
extern "C" {
    fn spyInstall();
    fn spyReset();
    fn spyCount(path: &str) -> u32;
    fn spyLastDevice(path: &str) -> Option<String>;
    fn spyLastAuth(path: &str) -> Option<String>;
    /// The claims of a DPoP proof (a JWS), decoded.
    #[wasm_bindgen(js_name = proofClaims)]
    fn proof_claims(jws: &str) -> JsValue;
    #[wasm_bindgen(js_name = spyLastStatus)]
    fn spy_last_status(path: &str) -> Option<u16>;
    #[wasm_bindgen(js_name = spyLastDpop)]
    fn spy_last_dpop(path: &str) -> Option<String>;
    fn spyFake(path: &str, status: u16, code: &str, times: i32, retry_after: JsValue);
    fn recorder() -> Function;
    fn count(rec: &Function, name: &str) -> u32;
    #[wasm_bindgen(js_name = lastDetail)]
    fn last_detail(rec: &Function, name: &str) -> JsValue;
    fn sleep(ms: u32) -> Promise;
    #[wasm_bindgen(js_name = uniqueEmail)]
    fn unique_email() -> String;
    #[wasm_bindgen(js_name = rawPost)]
    fn raw_post(url: &str, body: JsValue, device: &str) -> Promise;
    #[wasm_bindgen(js_name = storageGet)]
    fn storage_get(kind: &str, key: &str) -> Option<String>;
    #[wasm_bindgen(js_name = storageSet)]
    fn storage_set(kind: &str, key: &str, value: &str);
    fn cookies() -> String;
    #[wasm_bindgen(js_name = dropSalt)]
    fn drop_salt();
    #[wasm_bindgen(js_name = removeCoordinationApis)]
    fn remove_coordination_apis() -> bool;
    #[wasm_bindgen(js_name = restoreCoordinationApis)]
    fn restore_coordination_apis();
}

const PASSWORD: &str = "correct horse battery";

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"baseUrl".into(), &SERVER.into()).unwrap();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn key() -> String {
    format!("test:{}", unique_email())
}

async fn wait(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

async fn nap(ms: u32) {
    wait(sleep(ms)).await.unwrap();
}

async fn client(opts: JsValue, rec: &Function) -> BatonClient {
    BatonClient::new(opts, rec.clone()).await.expect("create")
}

/// A registered user signed in on a fresh client.
async fn signed_in(extra: &[(&str, JsValue)]) -> (BatonClient, Function, String) {
    spyInstall();
    spyReset();
    let rec = recorder();
    let mut pairs = vec![("storageKey", JsValue::from(key()))];
    pairs.extend(extra.iter().cloned());
    let c = client(options(&pairs), &rec).await;
    let email = unique_email();
    wait(c.register(email.clone().into(), PASSWORD.into()))
        .await
        .expect("register");
    wait(c.login(email.clone().into(), PASSWORD.into(), false))
        .await
        .expect("login");
    (c, rec, email)
}

/// `baton.fetch` of the server's sample protected endpoint; the response.
async fn ping(c: &BatonClient) -> web_sys::Response {
    wait(c.fetch(format!("{SERVER}/api/ping").into(), JsValue::UNDEFINED))
        .await
        .unwrap()
        .unchecked_into()
}

fn code_of(e: &JsValue) -> String {
    get(e, "code").as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
async fn login_fetch_and_session() {
    let (c, rec, email) = signed_in(&[]).await;
    nap(0).await;
    assert_eq!(count(&rec, "signedIn"), 1);
    let s = c.session();
    assert_eq!(get(&s, "email").as_string().unwrap(), email);
    let res = ping(&c).await;
    assert_eq!(res.status(), 200);
    let body = wait(res.json().unwrap()).await.unwrap();
    assert_eq!(get(&body, "sid"), get(&s, "sessionId"));
    assert_eq!(spyLastDevice("/api/ping"), Some(c.device_id()));
    // DPoP by default: the bound token with a proof of the key, made for this request.
    assert!(spyLastAuth("/api/ping").unwrap().starts_with("DPoP ey"));
    let proof = spy_last_dpop("/api/ping").expect("a DPoP proof");
    let claims = proof_claims(&proof);
    assert_eq!(get(&claims, "htm").as_string().as_deref(), Some("GET"));
    assert!(get(&claims, "htu")
        .as_string()
        .unwrap()
        .ends_with("/api/ping"));
    assert!(get(&claims, "ath").is_string());
    assert!(spy_last_dpop("/auth/login").is_some());
    c.dispose();
}

#[wasm_bindgen_test]
async fn logout_and_logout_all_of_a_dpop_session_reach_the_server() {
    // logout sends the bound access token as DPoP with a proof of it: revoked on the server.
    let (c, _rec, email) = signed_in(&[]).await;
    wait(c.logout()).await.unwrap();
    assert!(spyLastAuth("/auth/logout").unwrap().starts_with("DPoP ey"));
    assert_eq!(spy_last_status("/auth/logout"), Some(204));
    c.dispose();
    // logoutAll too.
    let rec = recorder();
    let c = client(options(&[("storageKey", key().into())]), &rec).await;
    wait(c.login(email.into(), PASSWORD.into(), false))
        .await
        .unwrap();
    wait(c.logout_all()).await.unwrap();
    assert!(spyLastAuth("/auth/logout-all")
        .unwrap()
        .starts_with("DPoP ey"));
    assert_eq!(spy_last_status("/auth/logout-all"), Some(204));
    assert!(c.session().is_null());
    c.dispose();
}

#[wasm_bindgen_test]
async fn dpop_false_makes_bearer_sessions() {
    let (c, _rec, _) = signed_in(&[("dpop", false.into())]).await;
    let res = ping(&c).await;
    assert_eq!(res.status(), 200);
    assert!(spyLastAuth("/api/ping").unwrap().starts_with("Bearer ey"));
    assert_eq!(spy_last_dpop("/api/ping"), None);
    assert_eq!(spy_last_dpop("/auth/login"), None);
    c.dispose();
    // A wrong type is refused like every other option.
    let rec = recorder();
    let e = BatonClient::new(options(&[("dpop", "yes".into())]), rec)
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_options");
}

#[wasm_bindgen_test]
async fn single_flight_many_callers_one_refresh() {
    let (c, _rec, _) = signed_in(&[]).await;
    // The token lives 4 s; the refresh is due at half its life.
    nap(2_100).await;
    let calls: Vec<Promise> = (0..20).map(|_| c.get_access_token()).collect();
    let mut tokens = std::collections::HashSet::new();
    for p in calls {
        tokens.insert(wait(p).await.unwrap().as_string().unwrap());
    }
    assert_eq!(spyCount("/auth/refresh"), 1, "20 callers, one refresh");
    assert_eq!(tokens.len(), 1);
    let forced: Vec<Promise> = (0..5).map(|_| c.refresh()).collect();
    for p in forced {
        wait(p).await.unwrap();
    }
    assert_eq!(
        spyCount("/auth/refresh"),
        2,
        "concurrent forced refreshes share one call"
    );
    c.dispose();
}

#[wasm_bindgen_test]
async fn refreshes_proactively_before_expiry() {
    let (c, rec, _) = signed_in(&[("refreshMargin", 1.into())]).await;
    let expires_at = get(&c.session(), "expiresAt").as_f64().unwrap();
    let next = get(&c.status(), "nextRefreshAt").as_f64().unwrap();
    assert!(
        (expires_at - next - 1000.0).abs() < 5.0,
        "due one margin before expiry"
    );
    nap(3_400).await;
    assert_eq!(count(&rec, "refreshed"), 1, "refreshed on its own");
    assert_eq!(spyCount("/auth/refresh"), 1);
    assert!(js_sys::Date::now() < expires_at + 400.0);
    assert!(get(&c.session(), "expiresAt").as_f64().unwrap() > expires_at);
    c.dispose();
}

#[wasm_bindgen_test]
async fn a_401_is_retried_once_after_a_refresh() {
    let (c, _rec, _) = signed_in(&[]).await;
    // The API says 401 once (token revoked early): refresh, retry, success.
    spyFake("/api/ping", 401, "token_revoked", 1, JsValue::UNDEFINED);
    let res = ping(&c).await;
    assert_eq!(res.status(), 200);
    assert_eq!(spyCount("/api/ping"), 2);
    assert_eq!(spyCount("/auth/refresh"), 1);

    // The API keeps saying 401: one refresh, one retry, then the 401 goes to the caller.
    spyReset();
    spyFake("/api/ping", 401, "token_invalid", -1, JsValue::UNDEFINED);
    let res = ping(&c).await;
    assert_eq!(res.status(), 401);
    assert_eq!(spyCount("/api/ping"), 2, "retried exactly once");
    assert_eq!(spyCount("/auth/refresh"), 1, "no refresh loop");
    c.dispose();
}

#[wasm_bindgen_test]
async fn a_post_body_survives_the_retry() {
    let (c, _rec, _) = signed_in(&[]).await;
    spyFake("/auth/logout", 401, "token_revoked", 1, JsValue::UNDEFINED);
    let init = Object::new();
    Reflect::set(&init, &"method".into(), &"POST".into()).unwrap();
    // baton-server takes JSON bodies only (a cross-site form cannot send them).
    let headers = Object::new();
    Reflect::set(&headers, &"Content-Type".into(), &"application/json".into()).unwrap();
    Reflect::set(&init, &"headers".into(), &headers).unwrap();
    Reflect::set(
        &init,
        &"body".into(),
        &"{\"refresh_token\":\"unknown\"}".into(),
    )
    .unwrap();
    let res: web_sys::Response = wait(c.fetch(format!("{SERVER}/auth/logout").into(), init.into()))
        .await
        .unwrap()
        .unchecked_into();
    assert_eq!(res.status(), 204, "the retried POST still had its body");
    c.dispose();
}

#[wasm_bindgen_test]
async fn local_and_session_storage_persist_memory_does_not() {
    for kind in ["local", "session", "memory"] {
        spyInstall();
        let rec = recorder();
        let k = key();
        let opts = || options(&[("storage", kind.into()), ("storageKey", k.clone().into())]);
        let a = client(opts(), &rec).await;
        let email = unique_email();
        wait(a.register(email.clone().into(), PASSWORD.into()))
            .await
            .unwrap();
        wait(a.login(email.clone().into(), PASSWORD.into(), false))
            .await
            .unwrap();
        let sid = get(&a.session(), "sessionId");
        a.dispose();
        // A "reload": a new client on the same storage.
        let b = client(opts(), &rec).await;
        if kind == "memory" {
            assert!(
                b.session().is_null(),
                "memory storage does not outlive the client"
            );
            assert!(storage_get("local", &k).is_none());
        } else {
            assert_eq!(
                get(&b.session(), "sessionId"),
                sid,
                "{kind} storage restores the session"
            );
            let raw = storage_get(kind, &k).unwrap();
            assert!(raw.contains("refreshToken"));
            let token = wait(b.get_access_token()).await.unwrap();
            assert!(token.as_string().unwrap().starts_with("ey"));
        }
        b.dispose();
    }
}

#[wasm_bindgen_test]
async fn cookie_transport_keeps_the_refresh_token_away_from_javascript() {
    let k = key();
    let (c, rec, _) = signed_in(&[
        ("refreshTransport", "cookie".into()),
        ("storageKey", k.clone().into()),
    ])
    .await;
    let raw = storage_get("local", &k).unwrap();
    assert!(
        !raw.contains("refreshToken"),
        "no refresh token in storage: {raw}"
    );
    assert!(
        !cookies().contains("baton_refresh"),
        "HttpOnly cookie is invisible to JS"
    );
    let before = wait(c.get_access_token()).await.unwrap();
    wait(c.refresh()).await.expect("refresh through the cookie");
    let after = wait(c.get_access_token()).await.unwrap();
    assert_ne!(before, after);
    nap(0).await;
    assert_eq!(count(&rec, "refreshed"), 1);
    wait(c.logout()).await.unwrap();
    assert!(c.session().is_null());
    c.dispose();
}

#[wasm_bindgen_test]
async fn device_id_is_stable_per_profile_and_changes_with_the_salt() {
    spyInstall();
    let rec = recorder();
    let a = client(options(&[("storageKey", key().into())]), &rec).await;
    let b = client(
        options(&[("storageKey", key().into()), ("storage", "memory".into())]),
        &rec,
    )
    .await;
    assert_eq!(a.device_id(), b.device_id(), "stable within the profile");
    assert_eq!(a.device_id().len(), 43, "base64url SHA-256");
    assert!(a
        .device_id()
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    // Another profile has another salt.
    drop_salt();
    let c = client(options(&[("storageKey", key().into())]), &rec).await;
    assert_ne!(c.device_id(), a.device_id());
    for x in [a, b, c] {
        x.dispose();
    }
}

#[wasm_bindgen_test]
async fn timeouts_reject_with_typed_errors() {
    let (c, _rec, email) = signed_in(&[]).await;
    c.dispose();
    let rec = recorder();
    let timeouts = Object::new();
    Reflect::set(&timeouts, &"request".into(), &1.into()).unwrap();
    Reflect::set(&timeouts, &"auth".into(), &1.into()).unwrap();
    let c = client(
        options(&[("timeouts", timeouts.into()), ("storageKey", key().into())]),
        &rec,
    )
    .await;
    let e = wait(c.login(email.into(), PASSWORD.into(), false))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "timeout");
    assert_eq!(get(&e, "retryable"), JsValue::TRUE);
    c.dispose();
}

#[wasm_bindgen_test]
async fn errors_carry_code_status_and_retryable() {
    spyInstall();
    let rec = recorder();
    let c = client(options(&[("storageKey", key().into())]), &rec).await;
    let e = wait(c.login("nobody@example.com".into(), "wrong-password".into(), false))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_credentials");
    assert_eq!(get(&e, "status").as_f64(), Some(401.0));
    assert_eq!(get(&e, "retryable"), JsValue::FALSE);
    let e = wait(c.get_access_token()).await.unwrap_err();
    assert_eq!(code_of(&e), "session_missing");
    // A body the server refuses comes back with its code.
    let e = wait(c.register(JsValue::from(5), "x".into()))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "validation_failed");
    assert_eq!(get(&e, "status").as_f64(), Some(422.0));
    c.dispose();

    for bad in [
        options(&[("storage", "disk".into())]),
        options(&[("refreshMargin", (-1).into())]),
        options(&[("refreshTransport", "smoke".into())]),
        JsValue::from("https://x"),
        {
            let o = Object::new();
            Reflect::set(&o, &"baseUrl".into(), &"ftp://x".into()).unwrap();
            o.into()
        },
    ] {
        let e = BatonClient::new(bad, rec.clone()).await.unwrap_err();
        assert_eq!(code_of(&e), "invalid_options");
    }

    let closed = Object::new();
    Reflect::set(&closed, &"baseUrl".into(), &"http://127.0.0.1:9".into()).unwrap();
    Reflect::set(&closed, &"storageKey".into(), &key().into()).unwrap();
    let c = client(closed.into(), &rec).await;
    let e = wait(c.login("a@example.com".into(), PASSWORD.into(), false))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "network_error");
    assert_eq!(get(&e, "retryable"), JsValue::TRUE);
    c.dispose();
}

#[wasm_bindgen_test]
async fn unavailable_server_keeps_the_still_valid_session() {
    let (c, rec, _) = signed_in(&[]).await;
    spyFake("/auth/refresh", 503, "unavailable", -1, JsValue::from(1));
    let token = wait(c.get_access_token()).await.unwrap();
    let e = wait(c.refresh()).await.unwrap_err();
    assert_eq!(code_of(&e), "unavailable");
    assert_eq!(get(&e, "retryable"), JsValue::TRUE);
    assert!(!c.session().is_null(), "a 503 never signs out");
    assert_eq!(wait(c.get_access_token()).await.unwrap(), token);
    nap(0).await;
    assert_eq!(count(&rec, "error"), 1);
    assert_eq!(count(&rec, "signedOut"), 0);
    // The server recovers: the scheduled retry (Retry-After: 1) succeeds.
    spyFake("/auth/refresh", 503, "unavailable", 0, JsValue::UNDEFINED);
    nap(1_300).await;
    assert_eq!(count(&rec, "refreshed"), 1);
    c.dispose();
}

#[wasm_bindgen_test]
async fn a_rejected_refresh_ends_the_session() {
    let (c, rec, _) = signed_in(&[]).await;
    spyFake(
        "/auth/refresh",
        401,
        "refresh_token_reused",
        1,
        JsValue::UNDEFINED,
    );
    let e = wait(c.refresh()).await.unwrap_err();
    assert_eq!(code_of(&e), "refresh_token_reused");
    assert!(c.session().is_null());
    nap(0).await;
    assert_eq!(count(&rec, "sessionExpired"), 1);
    assert_eq!(
        get(&last_detail(&rec, "sessionExpired"), "code")
            .as_string()
            .as_deref(),
        Some("refresh_token_reused")
    );
    assert_eq!(count(&rec, "signedOut"), 1);
    c.dispose();
}

#[wasm_bindgen_test]
async fn two_clients_of_one_profile_share_one_refresh_and_sign_out_together() {
    spyInstall();
    spyReset();
    let k = key();
    let (ra, rb) = (recorder(), recorder());
    let a = client(options(&[("storageKey", k.clone().into())]), &ra).await;
    let email = unique_email();
    wait(a.register(email.clone().into(), PASSWORD.into()))
        .await
        .unwrap();
    wait(a.login(email.into(), PASSWORD.into(), false))
        .await
        .unwrap();
    let b = client(options(&[("storageKey", k.clone().into())]), &rb).await;
    assert_eq!(
        get(&b.session(), "sessionId"),
        get(&a.session(), "sessionId")
    );
    // Both need a refresh at the same moment.
    nap(2_100).await;
    let (ta, tb) = (a.get_access_token(), b.get_access_token());
    let (ta, tb) = (wait(ta).await.unwrap(), wait(tb).await.unwrap());
    assert_eq!(ta, tb, "one refresh, shared");
    assert_eq!(spyCount("/auth/refresh"), 1);
    nap(50).await;
    assert_eq!(count(&ra, "signedOut") + count(&rb, "signedOut"), 0);
    // Logout in one signs the other out.
    wait(a.logout()).await.unwrap();
    nap(100).await;
    assert!(b.session().is_null());
    assert_eq!(count(&rb, "signedOut"), 1);
    assert_eq!(
        get(&last_detail(&rb, "signedOut"), "reason")
            .as_string()
            .as_deref(),
        Some("otherTab")
    );
    a.dispose();
    b.dispose();
}

#[wasm_bindgen_test]
async fn dispose_stops_timers_and_rejects_calls() {
    let (c, _rec, _) = signed_in(&[]).await;
    c.dispose();
    nap(2_300).await;
    assert_eq!(spyCount("/auth/refresh"), 0, "no refresh after dispose");
    let e = wait(c.get_access_token()).await.unwrap_err();
    assert_eq!(code_of(&e), "disposed");
    c.dispose(); // twice is fine
}

#[wasm_bindgen_test]
async fn raw_login_matches_the_contract() {
    spyInstall();
    let rec = recorder();
    let c = client(options(&[("storageKey", key().into())]), &rec).await;
    let email = unique_email();
    wait(c.register(email.clone().into(), PASSWORD.into()))
        .await
        .unwrap();
    let body = Object::new();
    Reflect::set(&body, &"email".into(), &email.into()).unwrap();
    Reflect::set(&body, &"password".into(), &PASSWORD.into()).unwrap();
    let r = wait(raw_post(
        &format!("{SERVER}/auth/login"),
        body.into(),
        &c.device_id(),
    ))
    .await
    .unwrap();
    assert_eq!(get(&r, "status").as_f64(), Some(200.0));
    assert_eq!(
        get(&get(&r, "body"), "token_type").as_string().as_deref(),
        Some("Bearer")
    );
    c.dispose();
}

#[wasm_bindgen_test]
async fn works_without_web_locks_and_broadcast_channel() {
    spyInstall();
    spyReset();
    assert!(remove_coordination_apis(), "APIs removed for this test");
    let k = key();
    let (ra, rb) = (recorder(), recorder());
    let a = client(options(&[("storageKey", k.clone().into())]), &ra).await;
    let email = unique_email();
    wait(a.register(email.clone().into(), PASSWORD.into()))
        .await
        .unwrap();
    wait(a.login(email.into(), PASSWORD.into(), false))
        .await
        .unwrap();
    // A second tab still finds the session in shared storage.
    let b = client(options(&[("storageKey", k.into())]), &rb).await;
    assert_eq!(
        get(&b.session(), "sessionId"),
        get(&a.session(), "sessionId")
    );
    wait(a.refresh()).await.expect("refresh without Web Locks");
    // Without a channel, B learns of A's refresh from storage when its own refresh is due.
    nap(2_200).await;
    let res = ping(&b).await;
    assert_eq!(res.status(), 200);
    assert!(
        !b.session().is_null(),
        "tab B was not signed out by reuse detection"
    );
    wait(a.logout()).await.unwrap();
    nap(0).await;
    assert_eq!(count(&ra, "error") + count(&rb, "error"), 0);
    a.dispose();
    b.dispose();
    restore_coordination_apis();
}

#[wasm_bindgen_test]
async fn the_401_path_honours_retry_after_and_stops_when_the_api_refuses_fresh_tokens() {
    let (c, rec, _) = signed_in(&[]).await;
    // The API refuses the token while /auth/refresh says 429 Retry-After 3.
    spyReset();
    spyFake("/api/ping", 401, "token_invalid", -1, JsValue::UNDEFINED);
    spyFake("/auth/refresh", 429, "rate_limited", -1, JsValue::from(3));
    for _ in 0..10 {
        let res = ping(&c).await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        spyCount("/auth/refresh"),
        1,
        "one refresh, then Retry-After is honoured"
    );

    // The refresh works again, but the API keeps refusing: one refresh for the new token, then
    // its 401s go back to the caller and tokenRejected says why.
    spyReset();
    spyFake("/api/ping", 401, "token_invalid", -1, JsValue::UNDEFINED);
    // The scheduled retry after Retry-After reaches the real server now.
    nap(3_300).await;
    spyReset();
    spyFake("/api/ping", 401, "token_invalid", -1, JsValue::UNDEFINED);
    for _ in 0..10 {
        let res = ping(&c).await;
        assert_eq!(res.status(), 401);
    }
    assert!(spyCount("/auth/refresh") <= 2, "no refresh loop");
    nap(0).await;
    assert_eq!(count(&rec, "tokenRejected"), 1);
    assert!(!c.session().is_null(), "the session is kept");
    c.dispose();
}
