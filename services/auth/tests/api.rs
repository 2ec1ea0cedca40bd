//! The auth service over real HTTP, on an ephemeral port, against a database and a Redis
//! prefix of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::Duration;

use db_core::{Cache, RedisPool, Store};
use db_test::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::testing::TestApp;
use service_kit::{Kit, TokenKeys, auth};

trait PostPublic {
    async fn post_public(&self, path: &str, body: Value) -> (StatusCode, Value);
}

impl PostPublic for TestApp {
    async fn post_public(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post(path, None, body).await
    }
}

async fn start() -> TestApp {
    TestApp::start_with("auth", ::auth::API, limits()).await
}

fn limits() -> impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static {
    ::auth::data(::auth::AuthLimits::from_env().unwrap())
}

fn register_body(email: &str) -> Value {
    json!({ "email": email, "password": "correct horse battery", "display_name": "Camille" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_profile_refresh_logout() {
    let app = start().await;
    let (status, reg) = app
        .post_public(
            "/api/v1/auth/register",
            register_body("Camille@Example.com"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    assert_eq!(reg["user"]["email"], "camille@example.com");
    assert_eq!(reg["user"]["level"], 1);
    assert_eq!(reg["token_type"], "Bearer");
    assert_eq!(reg["expires_in"], 900);

    let (status, dup) = app
        .post_public(
            "/api/v1/auth/register",
            register_body("camille@example.com"),
        )
        .await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (StatusCode::CONFLICT, Some("email_taken"))
    );

    let (status, bad) = app
        .post_public(
            "/api/v1/auth/login",
            json!({ "email": "camille@example.com", "password": "nope nope" }),
        )
        .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (status, ghost) = app
        .post_public(
            "/api/v1/auth/login",
            json!({ "email": "ghost@example.com", "password": "whatever1" }),
        )
        .await;
    assert_eq!(
        (status, ghost["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
        "no account: the same answer"
    );

    let (status, login) = app
        .post_public(
            "/api/v1/auth/login",
            json!({ "email": "CAMILLE@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();

    let (status, me) = app.get("/api/v1/users/me", &access).await;
    assert_eq!(
        (status, me["display_name"].as_str()),
        (StatusCode::OK, Some("Camille"))
    );
    let (status, patched) = app
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&access),
            Some(json!({ "display_name": "  Cam  " })),
        )
        .await;
    assert_eq!(
        (status, patched["display_name"].as_str()),
        (StatusCode::OK, Some("Cam"))
    );
    assert_eq!(
        app.get("/api/v1/users/me", &access).await.1["display_name"],
        "Cam",
        "the edit is visible at once"
    );
    let (status, stats) = app.get("/api/v1/users/me/stats", &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            stats["xp"].as_i64(),
            stats["level"].as_i64(),
            stats["rank"].as_i64()
        ),
        (Some(0), Some(1), Some(1))
    );
    let (status, board) = app.get("/api/v1/leaderboard?limit=5", &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(board["entries"].as_array().unwrap().len(), 1);
    assert_eq!(board["me"]["rank"], 1);

    // Refresh rotates: the new pair works, the old refresh token is spent, and spending it
    // again revokes the family, the new token included.
    let (status, rotated) = app
        .post_public("/api/v1/auth/refresh", json!({ "refresh_token": refresh }))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(
        app.get(
            "/api/v1/users/me",
            rotated["access_token"].as_str().unwrap()
        )
        .await
        .0,
        StatusCode::OK
    );
    let (status, replay) = app
        .post_public("/api/v1/auth/refresh", json!({ "refresh_token": refresh }))
        .await;
    assert_eq!(
        (status, replay["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    assert_eq!(
        app.post_public("/api/v1/auth/refresh", json!({ "refresh_token": refresh2 }))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Logout ends a fresh session.
    let (_, login2) = app
        .post_public(
            "/api/v1/auth/login",
            json!({ "email": "camille@example.com", "password": "correct horse battery" }),
        )
        .await;
    let refresh3 = login2["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post_public("/api/v1/auth/logout", json!({ "refresh_token": refresh3 }))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.post_public("/api/v1/auth/refresh", json!({ "refresh_token": refresh3 }))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_public(
            "/api/v1/auth/logout",
            json!({ "refresh_token": "0".repeat(64) })
        )
        .await
        .0,
        StatusCode::NO_CONTENT,
        "an unknown token reveals nothing"
    );
    assert_eq!(
        app.post_public("/api/v1/auth/logout", json!({ "refresh_token": "unknown" }))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not a token this API gives out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_problems() {
    let app = start().await;
    let raw = |body: &'static str| {
        app.http
            .post(format!("{}/api/v1/auth/register", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, want) in [
        ("{not json", StatusCode::BAD_REQUEST),
        (
            r#"{"email": 5, "password": "x", "display_name": "y"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (r#"{"email": "a@example.com"}"#, StatusCode::BAD_REQUEST),
        (
            r#"{"email": "a@example.com", "password": "long enough", "display_name": "y", "admin": true}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let res = raw(body).await.unwrap();
        assert_eq!(res.status(), want, "{body}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    let huge = "x".repeat(1_100_000);
    let (status, p) = app
        .post_public(
            "/api/v1/auth/register",
            json!({ "email": "a@example.com", "password": huge, "display_name": "y" }),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    for (body, field) in [
        (
            json!({ "email": "not-an-email", "password": "long enough", "display_name": "y" }),
            "email",
        ),
        (
            json!({ "email": "a@example.com", "password": "short", "display_name": "y" }),
            "password",
        ),
        (
            json!({ "email": "a@example.com", "password": "long enough", "display_name": "   " }),
            "display_name",
        ),
        (
            json!({ "email": "a@example.com", "password": "long enough", "display_name": "x".repeat(65) }),
            "display_name",
        ),
    ] {
        let (status, p) = app.post_public("/api/v1/auth/register", body).await;
        assert_eq!(
            (status, p["code"].as_str(), p["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("validation_failed"),
                Some(field)
            )
        );
    }
    let (status, p) = app
        .call(reqwest::Method::GET, "/api/v1/users/me", None, None)
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, p) = app.get("/api/v1/users/me", "forged.token.here").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let (status, p) = app.get("/api/v1/leaderboard?limit=lots", "x").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "auth is checked first: {p}"
    );
    let (status, p) = app.get("/api/v1/nowhere", "x").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_by_another_key_is_refused() {
    let app = start().await;
    let (_, reg) = app
        .post_public("/api/v1/auth/register", register_body("a@example.com"))
        .await;
    let valid = reg["access_token"].as_str().unwrap();
    // Same header and claims, someone else's signature.
    let mut parts: Vec<&str> = valid.split('.').collect();
    let other =
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODkrLw";
    parts[2] = other;
    let forged = parts.join(".");
    assert_eq!(
        app.get("/api/v1/users/me", &forged).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/api/v1/users/me", valid).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_slow_down_the_guesser_and_never_lock_out_the_owner() {
    let app = start().await;
    app.post_public("/api/v1/auth/register", register_body("a@example.com"))
        .await;
    let login = |from: &'static str, password: &'static str| {
        app.http
            .post(format!("{}/api/v1/auth/login", app.base))
            .header("x-forwarded-for", from)
            .json(&json!({ "email": "a@example.com", "password": password }))
            .send()
    };
    let (guesser, owner) = ("203.0.113.9", "198.51.100.4");
    for attempt in 1..=5 {
        let res = login(guesser, "wrong password").await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let res = login(guesser, "wrong password").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the guesser waits"
    );
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "backoff starts small: {retry}");
    assert_eq!(
        login(owner, "correct horse battery")
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the owner, from their own address, is not locked out by someone else's guesses"
    );
    // The guessing pair waits out its backoff, then may try again; a success forgets it.
    tokio::time::sleep(Duration::from_secs(retry + 1)).await;
    assert_eq!(
        login(guesser, "correct horse battery")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        login(guesser, "wrong password").await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "the failures were forgotten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let app = start().await;
    let (status, h) = app.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!((status, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let res = app
        .http
        .get(format!("{}/ready", app.admin))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let r: Value = res.json().await.unwrap();
    assert_eq!(
        (status, r["status"].as_str(), r["redis"].as_str()),
        (StatusCode::OK, Some("ready"), Some("up"))
    );
    // The admin endpoints are not on the public listener.
    for path in ["/ready", "/metrics", "/internal/slow-queries"] {
        let (status, _) = app.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    app.post_public("/api/v1/auth/register", register_body("m@example.com"))
        .await;
    let text = app
        .http
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("http_request_duration_seconds_bucket{route=\"/api/v1/auth/register\""),
        "{text}"
    );
    assert!(text.contains("db_queries_per_request"), "{text}");
    assert!(
        text.contains("db_pool_connections{role=\"primary\",state=\"idle\"}"),
        "{text}"
    );
    assert!(
        text.contains("cache_hits{family=\"user_profile\"}"),
        "{text}"
    );
    let res = app
        .http
        .get(format!("{}/health", app.base))
        .header("x-request-id", "abc-123-request-id")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123-request-id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_503_with_retry_after_and_redis_down_only_degrades() {
    service_kit::testing::install_crypto();
    let closed = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        port
    };
    let pg = db_core::PgConfig {
        url: format!("postgres://postgres@127.0.0.1:{}/dream", closed()),
        min_idle: 0,
        ..db_core::PgConfig::defaults(db_core::Environment::Development, "auth")
    };
    let redis = db_core::RedisConfig {
        url: format!("redis://127.0.0.1:{}", closed()),
        ..db_test::redis_config()
    };
    let kit = Kit {
        service: "auth",
        store: Store::new(
            db_core::Db::new(&pg, Default::default()),
            Cache::new(RedisPool::new(&redis).unwrap()),
        ),
        keys: TokenKeys::signer(
            auth::DEV_PUBLIC_KEY_PEM,
            auth::DEV_PRIVATE_KEY_PEM,
            false,
            Duration::from_secs(900),
        )
        .unwrap(),
        metrics: service_kit::metrics::install(),
    };
    let listeners = service_kit::Listeners::ephemeral().unwrap();
    let base = format!("http://{}", listeners.public_addr().unwrap());
    let admin = format!("http://{}", listeners.admin_addr().unwrap());
    let server = tokio::spawn(service_kit::serve(
        kit,
        listeners,
        Duration::from_secs(1),
        ::auth::API,
        limits(),
    ));
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let res = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&register_body("a@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast: {:?}",
        started.elapsed()
    );
    assert_eq!(res.headers()["retry-after"], "1");
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["code"], "service_unavailable");
    assert_eq!(
        http.get(format!("{admin}/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        http.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "alive, not ready"
    );
    server.abort();

    // PostgreSQL up, Redis down: ready, but degraded.
    let db = TestDb::new().await.unwrap();
    let kit = Kit {
        service: "auth",
        store: Store::new(db.db(), Cache::new(RedisPool::new(&redis).unwrap())),
        keys: TokenKeys::signer(
            auth::DEV_PUBLIC_KEY_PEM,
            auth::DEV_PRIVATE_KEY_PEM,
            false,
            Duration::from_secs(900),
        )
        .unwrap(),
        metrics: service_kit::metrics::install(),
    };
    let listeners = service_kit::Listeners::ephemeral().unwrap();
    let base = format!("http://{}", listeners.public_addr().unwrap());
    let admin = format!("http://{}", listeners.admin_addr().unwrap());
    let server = tokio::spawn(service_kit::serve(
        kit,
        listeners,
        Duration::from_secs(1),
        ::auth::API,
        limits(),
    ));
    let r: Value = http
        .get(format!("{admin}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["status"].as_str(), r["redis"].as_str()),
        (Some("degraded"), Some("down"))
    );
    let res = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&register_body("b@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "accounts work without Redis"
    );
    server.abort();
}

#[test]
fn production_refuses_the_development_keys() {
    assert!(matches!(
        TokenKeys::signer(
            auth::DEV_PUBLIC_KEY_PEM,
            auth::DEV_PRIVATE_KEY_PEM,
            true,
            Duration::from_secs(60)
        ),
        Err(service_kit::auth::KeyError::DevKeyInProduction)
    ));
    assert!(TokenKeys::verifier(auth::DEV_PUBLIC_KEY_PEM, true).is_err());
    assert!(TokenKeys::verifier(auth::DEV_PUBLIC_KEY_PEM, false).is_ok());
}

#[test]
fn the_openapi_document_is_complete() {
    let doc = ::auth::openapi();
    assert_eq!(
        service_kit::openapi::dangling_refs(&doc),
        Vec::<String>::new()
    );
    assert_eq!(doc.paths.paths.len(), 9, "distinct paths");
}
