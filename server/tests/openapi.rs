//! `/openapi.json` against the server's real answers: every documented operation is called,
//! every answer's status must be documented for it, and every JSON body must match the
//! documented schema exactly (no missing required field, no field the document lacks). A
//! handler whose answer changes without its description, or the reverse, fails here.

mod common;

use common::*;
use reqwest::{Method, Response};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

struct Doc {
    doc: Value,
    called: BTreeSet<(String, String)>,
}

impl Doc {
    /// Checks `res` as an answer of the documented operation `method path`.
    async fn check(&mut self, method: &str, path: &str, res: Response) -> Value {
        let status = res.status().as_u16().to_string();
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        self.called.insert((path.to_owned(), method.to_owned()));
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which its description does not list"
        );
        let ctype = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        let content = documented.get("content").and_then(Value::as_object);
        match content {
            None => {
                assert!(
                    text.is_empty(),
                    "{method} {path} {status}: undocumented body {text}"
                );
                Value::Null
            }
            Some(c) => {
                let ctype = ctype.unwrap_or_default();
                let (declared, media) = c
                    .iter()
                    .find(|(k, _)| ctype.starts_with(k.as_str()))
                    .unwrap_or_else(|| panic!("{method} {path} {status}: {ctype} not documented"));
                if declared != "application/json" {
                    return Value::String(text);
                }
                let body: Value = serde_json::from_str(&text).unwrap();
                if let Err(e) = validate(&body, &media["schema"], &self.doc, "$") {
                    panic!("{method} {path} {status}: {e}\nbody: {body}");
                }
                body
            }
        }
    }
}

/// A JSON Schema check for what utoipa emits: `$ref`, `type` (one or several), `properties`,
/// `required`, `items`, `enum`, `oneOf`/`anyOf`/`allOf`. Objects may not carry properties the
/// schema does not name (unless it has no `properties` at all).
fn validate(v: &Value, schema: &Value, doc: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return validate(v, &doc["components"]["schemas"][name], doc, at);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(v, s, doc, at)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array) {
            if !any.iter().any(|s| validate(v, s, doc, at).is_ok()) {
                return Err(format!("{at}: {v} matches none of {key}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not of type {types:?}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(v) {
            return Err(format!("{at}: {v} not in {values:?}"));
        }
    }
    if let (Some(obj), Some(props)) = (
        v.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        check_object(obj, props, schema, doc, at)?;
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(x, items, doc, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn check_object(
    obj: &Map<String, Value>,
    props: &Map<String, Value>,
    schema: &Value,
    doc: &Value,
    at: &str,
) -> Result<(), String> {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let r = r.as_str().unwrap();
        if !obj.contains_key(r) {
            return Err(format!("{at}: required `{r}` missing"));
        }
    }
    for (k, x) in obj {
        let s = props
            .get(k)
            .ok_or_else(|| format!("{at}: `{k}` is not in the document"))?;
        validate(x, s, doc, &format!("{at}.{k}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented() {
    // An identity provider: the GitHub stand-in of tests/oauth.rs.
    let gh = common::github::Github::start().await;
    let providers = std::env::temp_dir().join(format!(
        "baton-openapi-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &providers,
        format!(
            "[providers.gh]\nkind = \"github\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nbase_url = \"{}\"\n",
            common::github::CLIENT_ID,
            common::github::CLIENT_SECRET,
            gh.url
        ),
    )
    .unwrap();
    let providers_file = providers.display().to_string();
    // Email sign-in set up, with nothing listening for SMTP: requests are answered before the
    // mail is sent (see tests/email.rs for the mails).
    let s = Server::start(&[
        ("providers-file", &providers_file),
        ("redirect-allowlist", "http://app.test/done"),
        (
            "introspection-token",
            "openapi-introspection-secret-32-bytes",
        ),
        ("smtp-url", "smtp://127.0.0.1:9"),
        ("mail-from", "Baton <no-reply@baton.test>"),
        ("magic-link-url", "http://app.test/sign-in"),
        // More sign-ins from this one address than `on` allows in a minute.
        ("rate-limits", "relaxed"),
    ])
    .await;
    let doc = s.get_json("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "http://baton.test");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    let mut d = Doc {
        doc,
        called: BTreeSet::new(),
    };
    let get = |path: &str, bearer: Option<&str>| {
        let mut r = s.req(Method::GET, path);
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let post = |path: &str, body: Value, bearer: Option<&str>| {
        let mut r = s
            .req(Method::POST, path)
            .header("x-device-id", "openapi")
            .json(&body);
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let creds = json!({"email": "openapi@example.com", "password": "correct horse"});

    d.check(
        "post",
        "/auth/register",
        post("/auth/register", creds.clone(), None).await.unwrap(),
    )
    .await;
    d.check(
        "post",
        "/auth/register",
        post("/auth/register", creds.clone(), None).await.unwrap(),
    )
    .await;
    let t = d
        .check(
            "post",
            "/auth/login",
            post("/auth/login", creds.clone(), None).await.unwrap(),
        )
        .await;
    let wrong = json!({"email": "openapi@example.com", "password": "wrong password"});
    d.check(
        "post",
        "/auth/login",
        post("/auth/login", wrong, None).await.unwrap(),
    )
    .await;
    let refresh = json!({"refresh_token": t["refresh_token"]});
    let t = d
        .check(
            "post",
            "/auth/refresh",
            post("/auth/refresh", refresh.clone(), None).await.unwrap(),
        )
        .await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let bearer = Some(access.as_str());
    d.check("get", "/auth/me", get("/auth/me", bearer).await.unwrap())
        .await;
    d.check("get", "/auth/me", get("/auth/me", None).await.unwrap())
        .await;
    d.check("get", "/api/ping", get("/api/ping", bearer).await.unwrap())
        .await;
    d.check(
        "get",
        "/auth/audit-log",
        get("/auth/audit-log?limit=5", bearer).await.unwrap(),
    )
    .await;
    d.check(
        "get",
        "/auth/audit-log",
        get("/auth/audit-log?limit=0", bearer).await.unwrap(),
    )
    .await;
    // A second session, to list and to revoke.
    let other = post("/auth/login", creds.clone(), None).await.unwrap();
    let other: Value = other.json().await.unwrap();
    let list = d
        .check(
            "get",
            "/auth/sessions",
            get("/auth/sessions", bearer).await.unwrap(),
        )
        .await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
    let del = |id: &str| {
        s.req(Method::DELETE, &format!("/auth/sessions/{id}"))
            .bearer_auth(&access)
            .send()
    };
    let other_sid = other["session_id"].as_str().unwrap().to_owned();
    d.check(
        "delete",
        "/auth/sessions/{id}",
        del(&other_sid).await.unwrap(),
    )
    .await;
    d.check(
        "delete",
        "/auth/sessions/{id}",
        del(&other_sid).await.unwrap(),
    )
    .await;
    let form = |auth: Option<&str>| {
        let mut r = s
            .req(Method::POST, "/auth/introspect")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={access}"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let i = d
        .check(
            "post",
            "/auth/introspect",
            form(Some("Bearer openapi-introspection-secret-32-bytes"))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(i["active"], true);
    d.check("post", "/auth/introspect", form(None).await.unwrap())
        .await;
    let feed = |auth: Option<&str>| {
        let mut r = s.req(Method::GET, "/auth/revocations?since=0");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let f = d
        .check(
            "get",
            "/auth/revocations",
            feed(Some("Bearer openapi-introspection-secret-32-bytes"))
                .await
                .unwrap(),
        )
        .await;
    assert!(f["next"].is_i64());
    d.check("get", "/auth/revocations", feed(None).await.unwrap())
        .await;
    for p in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/healthz",
        "/readyz",
    ] {
        d.check("get", p, get(p, None).await.unwrap()).await;
    }
    let m = d
        .check("get", "/metrics", get("/metrics", None).await.unwrap())
        .await;
    assert!(m.as_str().unwrap().contains("auth_login_total"));
    // The account's own changes.
    let call = |m: Method, path: &str, body: Option<Value>, token: Option<&str>| {
        let mut r = s.req(m, path).header("x-device-id", "openapi");
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for meta in [json!({"theme": "dark"}), json!([1])] {
        let body = json!({ "user_metadata": meta });
        let r = call(Method::PATCH, "/auth/me", Some(body), bearer)
            .await
            .unwrap();
        d.check("patch", "/auth/me", r).await;
    }
    let r = get("/auth/me/export", bearer).await.unwrap();
    d.check("get", "/auth/me/export", r).await;
    for current in ["wrong password", "correct horse"] {
        let body = json!({"current_password": current, "new_password": "correct horse 2"});
        let r = post("/auth/password/change", body, bearer).await.unwrap();
        d.check("post", "/auth/password/change", r).await;
    }
    for new in ["openapi2@example.com", "nope"] {
        let r = post("/auth/email/change", json!({ "new_email": new }), bearer)
            .await
            .unwrap();
        d.check("post", "/auth/email/change", r).await;
    }
    let r = post("/auth/email/change/confirm", json!({"token": "nope"}), None)
        .await
        .unwrap();
    d.check("post", "/auth/email/change/confirm", r).await;
    let r = call(
        Method::DELETE,
        "/auth/me",
        Some(json!({"password": "wrong"})),
        bearer,
    )
    .await
    .unwrap();
    d.check("delete", "/auth/me", r).await;
    // The admin API.
    let admin = baton_server::signin::admin::create_token(
        &s.state.store,
        "openapi",
        &baton_server::rules::account::Scope::ALL,
        None,
    )
    .await
    .unwrap()
    .unwrap();
    let admin = Some(admin.as_str());
    d.check(
        "get",
        "/admin/users",
        get("/admin/users", admin).await.unwrap(),
    )
    .await;
    d.check(
        "get",
        "/admin/users",
        get("/admin/users", None).await.unwrap(),
    )
    .await;
    let made = json!({"email": "made@example.com", "roles": ["x"], "app_metadata": {"a": 1}});
    let u = d
        .check(
            "post",
            "/admin/users",
            call(Method::POST, "/admin/users", Some(made.clone()), admin)
                .await
                .unwrap(),
        )
        .await;
    let r = call(Method::POST, "/admin/users", Some(made), admin)
        .await
        .unwrap();
    d.check("post", "/admin/users", r).await;
    let uid = u["user"]["id"].as_str().unwrap().to_owned();
    let one = format!("/admin/users/{uid}");
    d.check("get", "/admin/users/{id}", get(&one, admin).await.unwrap())
        .await;
    let r = get("/admin/users/nobody", admin).await.unwrap();
    d.check("get", "/admin/users/{id}", r).await;
    let patch = json!({"roles": ["y"], "disabled_until": "2999-01-01T00:00:00Z"});
    let r = call(Method::PATCH, &one, Some(patch), admin).await.unwrap();
    let patched = d.check("patch", "/admin/users/{id}", r).await;
    assert_eq!(patched["user"]["disabled_until"], "2999-01-01T00:00:00Z");
    let sessions = format!("/admin/users/{uid}/sessions");
    let r = get(&sessions, admin).await.unwrap();
    d.check("get", "/admin/users/{id}/sessions", r).await;
    let r = call(Method::DELETE, &sessions, None, admin).await.unwrap();
    d.check("delete", "/admin/users/{id}/sessions", r).await;
    let r = call(Method::DELETE, "/admin/sessions/nope", None, admin)
        .await
        .unwrap();
    d.check("delete", "/admin/sessions/{id}", r).await;
    let r = get("/admin/audit-log?limit=2", admin).await.unwrap();
    let log = d.check("get", "/admin/audit-log", r).await;
    assert!(log["next_cursor"].is_string());
    // Two-factor sign-in, on an account of its own.
    let mfa_creds = json!({"email": "openapi-mfa@example.com", "password": "correct horse"});
    post("/auth/register", mfa_creds.clone(), None)
        .await
        .unwrap();
    let mt: Value = post("/auth/login", mfa_creds.clone(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mfa_access = mt["access_token"].as_str().unwrap().to_owned();
    let mb = Some(mfa_access.as_str());
    let enrolled = d
        .check(
            "post",
            "/auth/mfa/totp/enroll",
            post("/auth/mfa/totp/enroll", json!({}), mb).await.unwrap(),
        )
        .await;
    let r = post("/auth/mfa/totp/enroll", json!({}), None)
        .await
        .unwrap();
    d.check("post", "/auth/mfa/totp/enroll", r).await;
    let secret = base32(enrolled["secret"].as_str().unwrap());
    let totp_at = |offset: i64| {
        let step = baton_server::rules::totp::step_of(baton_server::now_ms()) + offset;
        format!("{:06}", baton_server::rules::totp::code_at(&secret, step))
    };
    let factor = enrolled["factor_id"].as_str().unwrap();
    let mut recovery = Value::Null;
    for code in ["000000".to_owned(), totp_at(0)] {
        let body = json!({ "factor_id": factor, "code": code });
        let r = post("/auth/mfa/totp/confirm", body, mb).await.unwrap();
        recovery = d.check("post", "/auth/mfa/totp/confirm", r).await;
    }
    let wait = d
        .check(
            "post",
            "/auth/login",
            post("/auth/login", mfa_creds.clone(), None).await.unwrap(),
        )
        .await;
    assert_eq!(wait["mfa_required"], true);
    let token = wait["mfa_token"].as_str().unwrap();
    for code in ["000000".to_owned(), totp_at(1)] {
        let body = json!({ "mfa_token": token, "totp": code });
        let r = post("/auth/mfa/verify", body, None).await.unwrap();
        d.check("post", "/auth/mfa/verify", r).await;
    }
    let list = d
        .check(
            "get",
            "/auth/mfa/factors",
            get("/auth/mfa/factors", mb).await.unwrap(),
        )
        .await;
    let factor_path = format!(
        "/auth/mfa/factors/{}",
        list["factors"][0]["id"].as_str().unwrap()
    );
    let r = call(Method::DELETE, &factor_path, None, mb).await.unwrap();
    d.check("delete", "/auth/mfa/factors/{id}", r).await;
    for body in [json!({"totp": "000000"}), json!({})] {
        let r = post("/auth/mfa/step-up", body, mb).await.unwrap();
        d.check("post", "/auth/mfa/step-up", r).await;
    }
    let body = json!({ "recovery_code": recovery["recovery_codes"][0] });
    let up = post("/auth/mfa/step-up", body, mb).await.unwrap();
    let up = d.check("post", "/auth/mfa/step-up", up).await;
    assert_eq!(up["token_type"], "Bearer");
    let r = post(
        "/auth/mfa/recovery-codes",
        json!({"recovery_code": "nope"}),
        mb,
    )
    .await
    .unwrap();
    d.check("post", "/auth/mfa/recovery-codes", r).await;
    let stepped = up["access_token"].as_str().unwrap().to_owned();
    let r = post(
        "/auth/mfa/recovery-codes",
        json!({"totp": "111111"}),
        Some(&stepped),
    )
    .await
    .unwrap();
    d.check("post", "/auth/mfa/recovery-codes", r).await;
    let r = call(Method::DELETE, &factor_path, None, Some(&stepped))
        .await
        .unwrap();
    d.check("delete", "/auth/mfa/factors/{id}", r).await;
    let mfa_uid = mt["user"]["id"].as_str().unwrap();
    let r = call(
        Method::DELETE,
        &format!("/admin/users/{mfa_uid}/mfa"),
        None,
        admin,
    )
    .await
    .unwrap();
    d.check("delete", "/admin/users/{id}/mfa", r).await;
    let r = call(Method::DELETE, &one, None, admin).await.unwrap();
    d.check("delete", "/admin/users/{id}", r).await;
    // Passkeys, with the software authenticator of the tests.
    let pk_creds = json!({"email": "openapi-passkey@example.com", "password": "correct horse"});
    post("/auth/register", pk_creds.clone(), None)
        .await
        .unwrap();
    let pt: Value = post("/auth/login", pk_creds, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pk = Some(pt["access_token"].as_str().unwrap());
    let mut auth = common::authenticator::Authenticator::es256("http://baton.test", "baton.test");
    let c = post(
        "/auth/passkeys/register/options",
        json!({"name": "Key"}),
        pk,
    )
    .await
    .unwrap();
    let c = d.check("post", "/auth/passkeys/register/options", c).await;
    let body = json!({"challenge_id": c["challenge_id"], "credential": auth.create(&c["options"])});
    let r = post("/auth/passkeys/register/verify", body.clone(), pk)
        .await
        .unwrap();
    let added = d.check("post", "/auth/passkeys/register/verify", r).await;
    let r = post("/auth/passkeys/register/verify", body, pk)
        .await
        .unwrap();
    d.check("post", "/auth/passkeys/register/verify", r).await;
    let r = post("/auth/passkeys/login/options", json!({}), None)
        .await
        .unwrap();
    let c = d.check("post", "/auth/passkeys/login/options", r).await;
    let body = json!({"challenge_id": c["challenge_id"], "credential": auth.get(&c["options"])});
    let r = post("/auth/passkeys/login/verify", body.clone(), None)
        .await
        .unwrap();
    d.check("post", "/auth/passkeys/login/verify", r).await;
    let r = post("/auth/passkeys/login/verify", body, None)
        .await
        .unwrap();
    d.check("post", "/auth/passkeys/login/verify", r).await;
    let r = get("/auth/passkeys", pk).await.unwrap();
    d.check("get", "/auth/passkeys", r).await;
    let one_pk = format!(
        "/auth/passkeys/{}",
        added["passkey"]["id"].as_str().unwrap()
    );
    for name in ["Laptop", ""] {
        let r = call(Method::PATCH, &one_pk, Some(json!({ "name": name })), pk)
            .await
            .unwrap();
        d.check("patch", "/auth/passkeys/{id}", r).await;
    }
    for _ in 0..2 {
        let r = call(Method::DELETE, &one_pk, None, pk).await.unwrap();
        d.check("delete", "/auth/passkeys/{id}", r).await;
    }
    // Identity providers: a whole flow, its refusals, the identities.
    {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        gh.sign_in_as(Some(common::github::GithubUser {
            id: 900,
            emails: vec![("openapi-gh@example.com".into(), true, true)],
        }));
        let r = get("/auth/oauth/providers", None).await.unwrap();
        d.check("get", "/auth/oauth/providers", r).await;
        let start = |to: &str| {
            let to: String = url::form_urlencoded::byte_serialize(to.as_bytes()).collect();
            browser
                .get(format!("{}/auth/oauth/gh/start?redirect_to={to}", s.url))
                .send()
        };
        let r = start("http://evil.test/done").await.unwrap();
        d.check("get", "/auth/oauth/{provider}/start", r).await;
        let r = start("http://app.test/done").await.unwrap();
        let header = |r: &Response, h: &str| r.headers()[h].to_str().unwrap().to_owned();
        let cookie = header(&r, "set-cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let to_provider = header(&r, "location");
        d.check("get", "/auth/oauth/{provider}/start", r).await;
        let r = browser.get(to_provider).send().await.unwrap();
        let callback = header(&r, "location").replace("http://baton.test", &s.url);
        let r = browser
            .get(&callback)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let app = header(&r, "location");
        d.check("get", "/auth/oauth/{provider}/callback", r).await;
        let forged = format!("{}/auth/oauth/gh/callback?code=x&state=never-issued", s.url);
        let r = browser.get(forged).send().await.unwrap();
        d.check("get", "/auth/oauth/{provider}/callback", r).await;
        let code = app.split("baton_code=").nth(1).unwrap().to_owned();
        let exchange = || {
            s.req(Method::POST, "/auth/oauth/exchange")
                .header("cookie", &cookie)
                .json(&json!({"code": code}))
                .send()
        };
        let t = d
            .check("post", "/auth/oauth/exchange", exchange().await.unwrap())
            .await;
        d.check("post", "/auth/oauth/exchange", exchange().await.unwrap())
            .await;
        let gt = Some(t["access_token"].as_str().unwrap());
        let r = get("/auth/identities", gt).await.unwrap();
        d.check("get", "/auth/identities", r).await;
        for to in ["http://app.test/done", "http://evil.test/"] {
            let r = post(
                "/auth/identities/gh/link/start",
                json!({"redirect_to": to}),
                gt,
            )
            .await
            .unwrap();
            d.check("post", "/auth/identities/{provider}/link/start", r)
                .await;
        }
        // Mail is set up here and the address is proven: unlinking leaves the emailed code.
        for _ in 0..2 {
            let r = call(Method::DELETE, "/auth/identities/gh", None, gt)
                .await
                .unwrap();
            d.check("delete", "/auth/identities/{provider}", r).await;
        }
    }
    let _ = std::fs::remove_file(&providers);
    d.check(
        "post",
        "/auth/logout-all",
        post("/auth/logout-all", json!({}), bearer).await.unwrap(),
    )
    .await;
    d.check(
        "post",
        "/auth/logout",
        post("/auth/logout", refresh, None).await.unwrap(),
    )
    .await;
    let otp = json!({"email": "openapi@example.com"});
    d.check(
        "post",
        "/auth/otp/request",
        post("/auth/otp/request", otp, None).await.unwrap(),
    )
    .await;
    let bad = json!({"email": "no address"});
    d.check(
        "post",
        "/auth/otp/request",
        post("/auth/otp/request", bad, None).await.unwrap(),
    )
    .await;
    for code in ["000000", "0"] {
        let body = json!({"email": "openapi@example.com", "code": code});
        d.check(
            "post",
            "/auth/otp/verify",
            post("/auth/otp/verify", body, None).await.unwrap(),
        )
        .await;
    }
    let r = json!({"email": "openapi@example.com"});
    d.check(
        "post",
        "/auth/password/reset-request",
        post("/auth/password/reset-request", r, None).await.unwrap(),
    )
    .await;
    for password in ["long enough 1", "short"] {
        let body = json!({"token": "not-a-token", "password": password});
        d.check(
            "post",
            "/auth/password/reset",
            post("/auth/password/reset", body, None).await.unwrap(),
        )
        .await;
    }
    d.check(
        "post",
        "/auth/email/verify-request",
        post("/auth/email/verify-request", json!({}), bearer)
            .await
            .unwrap(),
    )
    .await;
    let body = json!({"token": "not-a-token"});
    d.check(
        "post",
        "/auth/email/verify",
        post("/auth/email/verify", body, None).await.unwrap(),
    )
    .await;
    let link = json!({"token": "not-a-link"});
    d.check(
        "post",
        "/auth/magic-link/verify",
        post("/auth/magic-link/verify", link, None).await.unwrap(),
    )
    .await;
    // Signed in again (with the new password), the account is deleted.
    let again = json!({"email": "openapi@example.com", "password": "correct horse 2"});
    let t = post("/auth/login", again, None).await.unwrap();
    let t: Value = t.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap();
    let r = call(
        Method::DELETE,
        "/auth/me",
        Some(json!({"password": "correct horse 2"})),
        Some(access),
    )
    .await
    .unwrap();
    d.check("delete", "/auth/me", r).await;
    assert_eq!(
        d.called, documented,
        "operations documented but not exercised here"
    );
    s.stop().await;
}
