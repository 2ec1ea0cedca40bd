//! `TestApp`: a real service on an ephemeral port, with a database and a Redis prefix of its
//! own, and a client that checks every error is a proper problem document.

use std::time::Duration;

use actix_web::web;
use db_core::{Cache, RedisPool, Store};
use db_test::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::auth::{DEV_PRIVATE_KEY_PEM, DEV_PUBLIC_KEY_PEM};
use crate::{Api, Kit, Listeners, TokenKeys};

/// reqwest is built without a default TLS provider: install ring's before making a client.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub struct TestApp {
    pub base: String,
    /// The admin listener (`/ready`, `/metrics`, `/internal/*`).
    pub admin: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub kit: Kit,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// Starts `api` on a fresh migrated database.
    pub async fn start(service: &'static str, api: Api) -> Self {
        Self::start_with(service, api, |_: &mut web::ServiceConfig| {}).await
    }

    /// Starts `api` with the app data `data` adds, on a fresh migrated database.
    pub async fn start_with<D>(service: &'static str, api: Api, data: D) -> Self
    where
        D: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let db = TestDb::new()
            .await
            .unwrap_or_else(|e| panic!("test database: {e:#}"));
        Self::start_on(service, db, api, data).await
    }

    pub async fn start_on<D>(service: &'static str, db: TestDb, api: Api, data: D) -> Self
    where
        D: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        install_crypto();
        let redis =
            RedisPool::new(&db_test::redis_config()).unwrap_or_else(|e| panic!("redis: {e}"));
        let kit = Kit {
            service,
            store: Store::new(db.db(), Cache::new(redis)),
            keys: TokenKeys::signer(
                DEV_PUBLIC_KEY_PEM,
                DEV_PRIVATE_KEY_PEM,
                false,
                Duration::from_secs(900),
            )
            .unwrap_or_else(|e| panic!("keys: {e}")),
            metrics: crate::metrics::install(),
        };
        let listeners = Listeners::ephemeral().unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = |a: std::io::Result<std::net::SocketAddr>| {
            format!("http://{}", a.unwrap_or_else(|e| panic!("{e}")))
        };
        let (base, admin) = (addr(listeners.public_addr()), addr(listeners.admin_addr()));
        let server = tokio::spawn(crate::serve(
            kit.clone(),
            listeners,
            Duration::from_secs(1),
            api,
            data,
        ));
        Self {
            base,
            admin,
            http: reqwest::Client::new(),
            db,
            kit,
            server,
        }
    }

    /// Loads the demo character catalogue.
    pub async fn with_catalogue(&self) {
        let catalogue =
            db_core::seed::demo_characters().unwrap_or_else(|e| panic!("demo catalogue: {e}"));
        self.kit
            .store
            .catalogue()
            .upsert(&catalogue)
            .await
            .unwrap_or_else(|e| panic!("catalogue: {e}"));
    }

    /// A new account (no usable password: tokens come from [`TestApp::token_for`]).
    pub async fn user(&self, email: &str) -> uuid::Uuid {
        self.kit
            .store
            .users()
            .create(&db_core::models::NewUser {
                email: email.into(),
                password_hash: db_core::models::SecretString::new("x"),
                display_name: "Léa".into(),
            })
            .await
            .unwrap_or_else(|e| panic!("user {email}: {e}"))
            .id
    }

    /// A new account matched with `characters`, and its access token.
    pub async fn matched(&self, email: &str, characters: &[&str]) -> (uuid::Uuid, String) {
        let user = self.user(email).await;
        for c in characters {
            self.kit
                .store
                .matches()
                .create(user, c)
                .await
                .unwrap_or_else(|e| panic!("match {c}: {e}"));
        }
        (user, self.token_for(user))
    }

    /// A valid access token for `user`, as the auth service would mint it.
    pub fn token_for(&self, user: uuid::Uuid) -> String {
        self.kit
            .keys
            .mint(user, uuid::Uuid::new_v4())
            .unwrap_or_default()
    }

    /// Sends a request; asserts that any error response is `application/problem+json` with its
    /// status and a request id. Returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = res.status();
        let problem = res
            .headers()
            .get("content-type")
            .is_some_and(|c| c == "application/problem+json");
        let text = res.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_client_error() || status.is_server_error() {
            assert!(problem, "errors are problem+json: {status} {value}");
            assert_eq!(value["status"], status.as_u16(), "{value}");
            assert!(
                value["request_id"].as_str().is_some_and(|s| !s.is_empty()),
                "{value}"
            );
        }
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}
