//! baton-verify against a real baton-server (in-process, SQLite): discovery, forgeries,
//! expiry, key rotation, introspection, and the axum extractors.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use baton_verify::{Authenticated, Error, Live, Options, Verifier};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const SECRET: &str = "verify-crate-introspection-secret";

struct Server {
    url: String,
    config: baton_server::config::Config,
    task: tokio::task::JoinHandle<()>,
    background: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
    state: baton_server::AppState,
}

impl Server {
    async fn start(extra: &[&str]) -> Self {
        use clap::Parser;
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let db = dir.join(format!("verify-{}.db", uuid::Uuid::new_v4().simple()));
        let mut args = vec![
            "baton-server".to_owned(),
            "--bind=127.0.0.1:0".into(),
            format!("--database-url=sqlite://{}", db.display()),
            format!("--introspection-token={SECRET}"),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut config = baton_server::config::Config::try_parse_from(args).unwrap();
        let listener = tokio::net::TcpListener::bind(config.bind).await.unwrap();
        config.bind = listener.local_addr().unwrap();
        let state = baton_server::AppState::new(config.clone()).await.unwrap();
        let background = baton_server::spawn_background(&state);
        let opts = baton_server::serve::ServeOptions::new(&state);
        let app = baton_server::app(state.clone());
        let task = tokio::spawn(async move {
            baton_server::serve::serve(listener, app, opts, std::future::pending()).await;
        });
        Self {
            url: format!("http://{}", config.bind),
            config,
            task,
            background,
            http: reqwest::Client::new(),
            state,
        }
    }

    async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> reqwest::Response {
        let mut r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("x-device-id", "verify-tests")
            .json(&body);
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    /// A new user, signed in: (user id, access token).
    async fn user(&self) -> (String, String) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let creds = json!({"email": email, "password": "correct horse battery"});
        assert_eq!(
            self.post("/auth/register", creds.clone(), None)
                .await
                .status(),
            201
        );
        let t: Value = self
            .post("/auth/login", creds, None)
            .await
            .json()
            .await
            .unwrap();
        (
            t["user"]["id"].as_str().unwrap().to_owned(),
            t["access_token"].as_str().unwrap().to_owned(),
        )
    }

    fn stop(self) {
        self.task.abort();
        self.background.abort();
    }
}

/// The orders-and-live test app of the extractor tests.
fn extractor_app(v: Verifier) -> Router {
    Router::new()
        .route(
            "/orders",
            get(|Authenticated(c): Authenticated| async move { c.sub }),
        )
        .route("/live", get(|Live(c): Live| async move { c.sub }))
        .route(
            "/both",
            get(
                |Authenticated(a): Authenticated, Live(l): Live| async move {
                    assert_eq!(a.sid, l.sid);
                    l.sub
                },
            ),
        )
        .with_state(v)
}

/// `GET path` on `app` with these headers: status, `WWW-Authenticate`, body.
async fn call(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, www, String::from_utf8(body.to_vec()).unwrap())
}

fn with_secret() -> Options {
    Options {
        introspection_secret: Some(SECRET.into()),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_tokens_found_through_discovery_and_refuses_forgeries() {
    let s = Server::start(&[]).await;
    let v = Verifier::discover(&s.url, Options::default())
        .await
        .unwrap();
    assert_eq!(v.issuer(), s.url);
    let (user, token) = s.user().await;
    let claims = v.verify(&token).await.unwrap();
    assert_eq!(claims.sub, user);
    assert_eq!(claims.iss, s.url);
    assert_eq!(claims.aud, "baton");

    let other_api = Verifier::discover(
        &s.url,
        Options {
            audience: "billing".into(),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        other_api.verify(&token).await,
        Err(Error::Invalid(_))
    ));
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(matches!(v.verify(&tampered).await, Err(Error::Invalid(_))));
    assert!(matches!(
        v.verify("not.a.jwt").await,
        Err(Error::Invalid(_))
    ));
    // A verifier for another issuer refuses it too.
    let stranger = Verifier::new(
        "https://elsewhere.example.com",
        &format!("{}/.well-known/jwks.json", s.url),
        Options::default(),
    );
    assert!(matches!(
        stranger.verify(&token).await,
        Err(Error::Invalid(_))
    ));
    // No introspection secret given, introspection refused as unavailable (not as invalid).
    assert!(matches!(
        v.verify_live(&token).await,
        Err(Error::Unavailable(_))
    ));
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused_as_expired() {
    let s = Server::start(&["--access-ttl=1s"]).await;
    let v = Verifier::discover(
        &s.url,
        Options {
            leeway: Duration::ZERO,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let (_, token) = s.user().await;
    assert!(v.verify(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(v.verify(&token).await, Err(Error::Expired));
    s.stop();
}

/// After `baton-server keys rotate`, tokens signed with the new key verify: the unknown `kid`
/// makes the verifier fetch the keys again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_key_rotation() {
    // Many sign-ins while waiting for the switch: beyond the registration limit.
    let s = Server::start(&["--rate-limits=off", "--key-publish-ahead=1s"]).await;
    let v = Verifier::discover(
        &s.url,
        Options {
            min_refetch: Duration::from_millis(200),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let (_, before) = s.user().await;
    v.verify(&before).await.unwrap();
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    baton_server::rotate_keys(&s.config).await.unwrap();
    // Instances sign with the new key within KEY_RELOAD.
    let mut after = String::new();
    for _ in 0..40 {
        after = s.user().await.1;
        if kid(&after) != kid(&before) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_ne!(kid(&after), kid(&before), "the server never switched keys");
    tokio::time::sleep(Duration::from_millis(250)).await;
    v.verify(&after).await.unwrap();
    // The old key still verifies its tokens.
    v.verify(&before).await.unwrap();
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_verification_refuses_signed_out_sessions() {
    let s = Server::start(&[]).await;
    let v = Verifier::discover(&s.url, with_secret()).await.unwrap();
    let (user, token) = s.user().await;
    assert_eq!(v.verify_live(&token).await.unwrap().sub, user);
    assert_eq!(
        s.post("/auth/logout", json!({}), Some(&token))
            .await
            .status(),
        204
    );
    assert_eq!(v.verify_live(&token).await, Err(Error::Revoked));
    // The signature alone still verifies: that is what introspection is for.
    assert!(v.verify(&token).await.is_ok());
    s.stop();
}

/// How many introspection requests the server has answered.
async fn introspections(s: &Server) -> u64 {
    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"auth_duration_seconds_count{endpoint="introspect"} "#))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_answers_are_reused_for_the_configured_time_only() {
    let s = Server::start(&[]).await;
    let cached = Verifier::discover(
        &s.url,
        Options {
            introspection_cache: Duration::from_millis(1500),
            ..with_secret()
        },
    )
    .await
    .unwrap();
    let uncached = Verifier::discover(&s.url, with_secret()).await.unwrap();
    let (_, token) = s.user().await;
    let before = introspections(&s).await;
    for _ in 0..20 {
        cached.verify_live(&token).await.unwrap();
    }
    assert_eq!(
        introspections(&s).await - before,
        1,
        "one request for 20 checks"
    );
    for _ in 0..3 {
        uncached.verify_live(&token).await.unwrap();
    }
    assert_eq!(
        introspections(&s).await - before,
        4,
        "without a cache, every check asks"
    );
    // A burst of checks of a token not yet known: one request, the rest wait for its answer.
    let (_, fresh) = s.user().await;
    let before = introspections(&s).await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (cached, fresh) = (cached.clone(), fresh.clone());
        burst.spawn(async move { cached.verify_live(&fresh).await.map(|c| c.sub) });
    }
    while let Some(checked) = burst.join_next().await {
        checked.unwrap().unwrap();
    }
    assert_eq!(
        introspections(&s).await - before,
        1,
        "one request for 30 checks at once"
    );
    assert_eq!(
        s.post("/auth/logout", json!({}), Some(&token))
            .await
            .status(),
        204
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(uncached.verify_live(&token).await, Err(Error::Revoked));
    // The cached answer stands until its time is up, then the sign-out shows.
    let started = std::time::Instant::now();
    loop {
        match cached.verify_live(&token).await {
            Ok(_) => assert!(
                started.elapsed() < Duration::from_millis(1500),
                "kept too long"
            ),
            Err(e) => {
                assert_eq!(e, Error::Revoked);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_extractors_answer_in_batons_error_shape() {
    let s = Server::start(&[]).await;
    let v = Verifier::discover(&s.url, with_secret()).await.unwrap();
    let app = extractor_app(v);
    let call = |path: &'static str, auth: Option<String>| {
        let app = app.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            call(&app, path, &headers).await
        }
    };
    let (user, token) = s.user().await;
    let bearer = Some(format!("Bearer {token}"));
    assert_eq!(call("/orders", bearer.clone()).await.2, user);
    assert_eq!(call("/live", bearer.clone()).await.2, user);

    let (status, www, body) = call("/orders", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some(r#"Bearer error="invalid_request""#));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "token_missing");
    let (status, _, body) = call("/orders", Some("Bearer nope".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("token_invalid"), "{body}");

    assert_eq!(
        s.post("/auth/logout", json!({}), Some(&token))
            .await
            .status(),
        204
    );
    let (status, _, body) = call("/live", bearer.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("token_revoked"), "{body}");
    assert_eq!(call("/orders", bearer).await.0, StatusCode::OK);
    s.stop();
}

#[path = "../../server/tests/common/proof.rs"]
#[allow(dead_code, unreachable_pub)]
mod proof;

/// A new user signed in with a proof of `key`: a DPoP-bound access token.
async fn bound_token(s: &Server, key: &proof::ProofKey) -> String {
    use proof::Claims;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let creds = json!({"email": email, "password": "correct horse battery"});
    assert_eq!(
        s.post("/auth/register", creds.clone(), None).await.status(),
        201
    );
    let t: Value = s
        .http
        .post(format!("{}/auth/login", s.url))
        .header("x-device-id", "verify-tests")
        .header(
            "dpop",
            key.proof(&Claims {
                method: "POST",
                url: &format!("{}/auth/login", s.url),
                ..Claims::default()
            }),
        )
        .json(&creds)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["token_type"], "DPoP");
    t["access_token"].as_str().unwrap().to_owned()
}

/// Keys of both kinds the browser package makes: P-256, and Ed25519 where WebCrypto has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_need_a_proof_of_their_key() {
    for key in [proof::ProofKey::es256(), proof::ProofKey::ed25519()] {
        dpop_bound_token_needs_a_proof_of(key).await;
    }
}

async fn dpop_bound_token_needs_a_proof_of(key: proof::ProofKey) {
    use proof::{Claims, ProofKey};
    let s = Server::start(&[]).await;
    let token = bound_token(&s, &key).await;
    let v = Verifier::discover(
        &s.url,
        Options {
            public_url: Some("https://orders.example".into()),
            ..with_secret()
        },
    )
    .await
    .unwrap();
    let claims = v.verify(&token).await.unwrap();
    assert_eq!(claims.cnf.unwrap().jkt, key.thumbprint());
    let app = extractor_app(v);
    let call = |path: &'static str, auth: String, proof: Option<String>| {
        let app = app.clone();
        async move {
            let mut headers = vec![("authorization", auth.as_str())];
            headers.extend(proof.iter().map(|p| ("dpop", p.as_str())));
            let (status, www, body) = call(&app, path, &headers).await;
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            (status, body["error"]["code"].clone(), www)
        }
    };
    let proof_for = |key: &ProofKey, url: &str, token: &str| {
        key.proof(&Claims {
            method: "GET",
            url,
            access_token: Some(token),
            ..Claims::default()
        })
    };
    // As Bearer, without a proof, with another key's proof, for another URL: refused.
    let refused = [
        (format!("Bearer {token}"), None),
        (format!("DPoP {token}"), None),
        (
            format!("DPoP {token}"),
            Some(proof_for(
                &ProofKey::es256(),
                "https://orders.example/orders",
                &token,
            )),
        ),
        (
            format!("DPoP {token}"),
            Some(proof_for(&key, "https://elsewhere.example/orders", &token)),
        ),
    ];
    for (auth, proof) in refused {
        let (status, code, www) = call("/orders", auth, proof).await;
        assert_eq!(
            (status, code),
            (StatusCode::UNAUTHORIZED, json!("dpop_proof_invalid"))
        );
        assert!(www.unwrap().starts_with("DPoP "));
    }
    // With a proof of the key for this URL: accepted, once.
    let good = proof_for(&key, "https://orders.example/orders", &token);
    let (status, _, _) = call("/orders", format!("DPoP {token}"), Some(good.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, code, _) = call("/orders", format!("DPoP {token}"), Some(good)).await;
    assert_eq!(
        (status, code),
        (StatusCode::UNAUTHORIZED, json!("dpop_proof_invalid"))
    );
    let live = proof_for(&key, "https://orders.example/live", &token);
    let (status, _, _) = call("/live", format!("DPoP {token}"), Some(live)).await;
    assert_eq!(status, StatusCode::OK);
    // Two extractors in one handler check the proof once: the second is no replay.
    let both = proof_for(&key, "https://orders.example/both", &token);
    let (status, code, _) = call("/both", format!("DPoP {token}"), Some(both)).await;
    assert_eq!((status, code), (StatusCode::OK, Value::Null));
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dpop_key_gets_its_budget_of_proofs_and_no_more() {
    use proof::{Claims, ProofKey};
    let s = Server::start(&[]).await;
    let (key, other) = (ProofKey::es256(), ProofKey::es256());
    let (token, other_token) = (bound_token(&s, &key).await, bound_token(&s, &other).await);
    let options = Options {
        public_url: Some("https://orders.example".into()),
        dpop_proofs_per_key: 3,
        ..Options::default()
    };
    let app = extractor_app(Verifier::discover(&s.url, options).await.unwrap());
    let get = |key: &ProofKey, token: &str| {
        let proof = key.proof(&Claims {
            method: "GET",
            url: "https://orders.example/orders",
            access_token: Some(token),
            ..Claims::default()
        });
        let (app, auth) = (app.clone(), format!("DPoP {token}"));
        async move {
            let req = Request::get("/orders")
                .header("authorization", auth)
                .header("dpop", proof);
            let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (res.status(), retry)
        }
    };
    for _ in 0..3 {
        assert_eq!(get(&key, &token).await.0, StatusCode::OK);
    }
    let (status, retry) = get(&key, &token).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another key has a budget of its own.
    assert_eq!(get(&other, &other_token).await.0, StatusCode::OK);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_guarded_by_the_middleware_checks_each_token_once() {
    use axum::Extension;
    use baton_verify::Claims;
    use proof::{Claims as Proof, ProofKey};
    let s = Server::start(&[]).await;
    let v = Verifier::discover(
        &s.url,
        Options {
            public_url: Some("https://orders.example".into()),
            ..with_secret()
        },
    )
    .await
    .unwrap();
    let guarded = Router::new()
        .route(
            "/claims",
            get(|Extension(c): Extension<Claims>| async move { c.sub }),
        )
        .route(
            "/both",
            get(
                |Authenticated(a): Authenticated, Live(l): Live| async move {
                    assert_eq!(a.sid, l.sid);
                    l.sub
                },
            ),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            v.clone(),
            baton_verify::require_token,
        ))
        .with_state(v.clone());
    let live = Router::new()
        .route(
            "/claims",
            get(|Extension(c): Extension<Claims>| async move { c.sub }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            v.clone(),
            baton_verify::require_live_token,
        ));
    // Refusals in Baton's error shape, before any handler runs.
    let (status, www, body) = call(&guarded, "/claims", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some(r#"Bearer error="invalid_request""#));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "token_missing");
    let (status, _, _) = call(&guarded, "/claims", &[("authorization", "Bearer x.y.z")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A DPoP-bound token with one proof per request: the middleware checks it, and the
    // handler's extractors take its result instead of judging the proof a replay.
    let key = ProofKey::es256();
    let token = bound_token(&s, &key).await;
    let sub = v.verify(&token).await.unwrap().sub;
    for path in ["/claims", "/both"] {
        let proof = key.proof(&Proof {
            method: "GET",
            url: &format!("https://orders.example{path}"),
            access_token: Some(&token),
            ..Proof::default()
        });
        let auth = format!("DPoP {token}");
        let (status, _, body) = call(
            &guarded,
            path,
            &[("authorization", &auth), ("dpop", &proof)],
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, sub.clone()), "{path}");
    }
    // The live guard refuses a signed-out session.
    let (_, plain) = s.user().await;
    let bearer = format!("Bearer {plain}");
    let (status, _, _) = call(&live, "/claims", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.post("/auth/logout", json!({}), Some(&plain))
            .await
            .status(),
        204
    );
    let (status, _, body) = call(&live, "/claims", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "token_revoked");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_feed_refuses_signed_out_sessions_without_a_request_per_token() {
    let s = Server::start(&[]).await;
    let v = Verifier::discover(
        &s.url,
        Options {
            revocation_feed: true,
            ..with_secret()
        },
    )
    .await
    .unwrap();
    let (user, token) = s.user().await;
    let (_, other) = s.user().await;
    assert_eq!(v.verify(&token).await.unwrap().sub, user);
    let before = introspections(&s).await;
    assert_eq!(
        s.post("/auth/logout", json!({}), Some(&token))
            .await
            .status(),
        204
    );
    let started = Instant::now();
    while v.verify(&token).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "still accepted after 2.5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v.verify(&token).await, Err(Error::Revoked));
    assert!(v.verify(&other).await.is_ok());
    assert_eq!(
        introspections(&s).await,
        before,
        "no introspection was asked"
    );
    // Without the secret the feed cannot be followed, and discovery says so.
    let err = Verifier::discover(
        &s.url,
        Options {
            revocation_feed: true,
            ..Options::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    s.stop();
}

/// docs/api.md's example of a router guarded by the middleware, as written there (end-to-end
/// test 29 checks that it is here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_middleware_example_guards_its_router() {
    use axum::Extension;
    let s = Server::start(&[]).await;
    let verifier = Verifier::discover(&s.url, Options::default())
        .await
        .unwrap();
    #[rustfmt::skip]
let api = Router::new()
    .route("/orders", get(|Extension(claims): Extension<baton_verify::Claims>| async move { claims.sub }))
    .route_layer(axum::middleware::from_fn_with_state(verifier.clone(), baton_verify::require_token));
    // baton_verify::require_live_token: + introspection, as `Live`
    let (status, _, _) = call(&api, "/orders", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (user, token) = s.user().await;
    let bearer = format!("Bearer {token}");
    let (status, _, body) = call(&api, "/orders", &[("authorization", &bearer)]).await;
    assert_eq!((status, body), (StatusCode::OK, user));
    s.stop();
}

/// `require_role`: a valid token without the role is 403 `forbidden`; once an administrator
/// gives the role, the user's next token passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_role_lets_only_that_role_through() {
    use axum::Extension;
    use baton_verify::{Claims, Role};
    let s = Server::start(&[]).await;
    let verifier = Verifier::discover(&s.url, with_secret()).await.unwrap();
    let app = Router::new()
        .route(
            "/reports",
            get(|Extension(c): Extension<Claims>| async move { c.sub }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Role::new(verifier.clone(), "admin"),
            baton_verify::require_role,
        ));
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let creds = json!({"email": email, "password": "correct horse battery"});
    assert_eq!(
        s.post("/auth/register", creds.clone(), None).await.status(),
        201
    );
    let login = |creds: Value| async {
        let t: Value = s
            .post("/auth/login", creds, None)
            .await
            .json()
            .await
            .unwrap();
        (
            t["user"]["id"].as_str().unwrap().to_owned(),
            t["access_token"].as_str().unwrap().to_owned(),
        )
    };
    let (uid, token) = login(creds.clone()).await;
    let bearer = format!("Bearer {token}");
    let (status, _, body) = call(&app, "/reports", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _, _) = call(&app, "/reports", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let admin = baton_server::signin::admin::create_token(
        &s.state.store,
        "verify-tests",
        &[baton_server::rules::account::Scope::UsersWrite],
        None,
    )
    .await
    .unwrap()
    .unwrap();
    let r = s
        .http
        .patch(format!("{}/admin/users/{uid}", s.url))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["admin", "support"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, token) = login(creds).await;
    let claims = verifier.verify(&token).await.unwrap();
    assert!(claims.has_role("admin") && claims.has_role("support") && !claims.has_role("x"));
    let bearer = format!("Bearer {token}");
    let (status, _, body) = call(&app, "/reports", &[("authorization", &bearer)]).await;
    assert_eq!((status, body), (StatusCode::OK, uid));
    s.stop();
}

/// `require_aal(2)`: a password-only token is 403 `step_up_required`; the token of a step-up
/// with a second factor passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_aal_wants_a_second_factor() {
    use baton_server::rules::totp;
    use baton_verify::Aal;
    let s = Server::start(&[]).await;
    let verifier = Verifier::discover(&s.url, with_secret()).await.unwrap();
    let app = Router::new()
        .route("/payouts", get(|| async { "sent" }))
        .route_layer(axum::middleware::from_fn_with_state(
            Aal::new(verifier.clone(), 2),
            baton_verify::require_aal,
        ));
    let (_, token) = s.user().await;
    let bearer = format!("Bearer {token}");
    let (status, _, body) = call(&app, "/payouts", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "step_up_required");
    // TOTP set up, then a step-up.
    let e: Value = s
        .post("/auth/mfa/totp/enroll", json!({}), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let mut secret = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in e["secret"].as_str().unwrap().bytes() {
        let v = if c.is_ascii_uppercase() {
            c - b'A'
        } else {
            c - b'2' + 26
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            secret.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    let at = |offset: i64| {
        let step = totp::step_of(baton_server::now_ms()) + offset;
        format!("{:06}", totp::code_at(&secret, step))
    };
    let confirm = json!({"factor_id": e["factor_id"], "code": at(0)});
    assert_eq!(
        s.post("/auth/mfa/totp/confirm", confirm, Some(&token))
            .await
            .status(),
        200
    );
    let up: Value = s
        .post("/auth/mfa/step-up", json!({"totp": at(1)}), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let stepped = up["access_token"].as_str().unwrap();
    assert_eq!(verifier.verify(stepped).await.unwrap().aal, 2);
    let bearer = format!("Bearer {stepped}");
    let (status, _, body) = call(&app, "/payouts", &[("authorization", &bearer)]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "sent"));
    s.stop();
}
