//! The real binaries — gateway, auth and two chat replicas — as separate processes on
//! ephemeral ports, against a test database and Redis prefix, driven like a client would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use db_test::TestDb;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "── {} log ──\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// target/debug, where cargo put the service binaries.
fn bin(name: &str) -> PathBuf {
    if name == "dream-gateway" {
        return PathBuf::from(env!("CARGO_BIN_EXE_dream-gateway"));
    }
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--bin", name])
            .status()
            .unwrap();
        assert!(status.success(), "building {name}");
    }
    path
}

fn spawn(name: &'static str, binary: &str, env: &[(&str, String)]) -> Proc {
    let log = std::env::temp_dir().join(format!(
        "dream-e2e-{name}-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin(binary))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    Proc { name, child, log }
}

async fn wait_healthy(http: &Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} never became healthy");
}

struct Stack {
    gateway: String,
    http: Client,
    chat_replicas: Vec<Proc>,
    media: Proc,
    media_env: Vec<(&'static str, String)>,
    media_port: u16,
    _others: Vec<Proc>,
    _media_dir: tempfile::TempDir,
    _db: TestDb,
}

async fn stack() -> Stack {
    stack_with(Vec::new()).await
}

async fn stack_with(extra_env: Vec<(&'static str, String)>) -> Stack {
    service_kit::testing::install_crypto();
    let db = TestDb::new().await.unwrap();
    {
        let mut conn = db.conn().await.unwrap();
        db_core::queries::characters::upsert(&mut conn, &db_core::seed::demo_characters().unwrap())
            .await
            .unwrap();
    }
    let redis = db_test::redis_config();
    let (auth_port, chat1, chat2, gw_port) = (free_port(), free_port(), free_port(), free_port());
    let common = |extra: Vec<(&'static str, String)>| {
        let mut env = vec![
            ("DATABASE_URL", db.url().to_owned()),
            ("REDIS_URL", redis.url.clone()),
            ("REDIS_KEY_PREFIX", redis.key_prefix.clone()),
            ("DB_POOL_MIN_IDLE", "0".into()),
            ("DB_POOL_MAX_SIZE", "4".into()),
            ("DREAM_ENV", "development".into()),
        ];
        env.extend(extra_env.iter().cloned());
        env.extend(extra);
        env
    };
    let auth = spawn(
        "auth",
        "dream-auth",
        &common(vec![("AUTH_PORT", auth_port.to_string())]),
    );
    let chat_a = spawn(
        "chat-1",
        "dream-chat",
        &common(vec![("CHAT_PORT", chat1.to_string())]),
    );
    let chat_b = spawn(
        "chat-2",
        "dream-chat",
        &common(vec![("CHAT_PORT", chat2.to_string())]),
    );
    let ai_port = free_port();
    let media_port = free_port();
    let ai = spawn(
        "ai",
        "dream-ai",
        &common(vec![
            ("AI_PORT", ai_port.to_string()),
            ("AI_TOKEN_DELAY_MS", "5".into()),
            ("MEDIA_URL", format!("http://127.0.0.1:{media_port}")),
        ]),
    );
    let media_dir = tempfile::tempdir().unwrap();
    let media_env = common(vec![
        ("MEDIA_PORT", media_port.to_string()),
        ("MEDIA_STORE_URL", media_dir.path().display().to_string()),
        ("MEDIA_POLL_MS", "100".into()),
    ]);
    let media = spawn("media", "dream-media", &media_env);
    let gateway = spawn(
        "gateway",
        "dream-gateway",
        &common(vec![
            ("GATEWAY_PORT", gw_port.to_string()),
            ("AUTH_URLS", format!("http://127.0.0.1:{auth_port}")),
            (
                "CHAT_URLS",
                format!("http://127.0.0.1:{chat1},http://127.0.0.1:{chat2}"),
            ),
            ("AI_URLS", format!("http://127.0.0.1:{ai_port}")),
            ("MEDIA_URLS", format!("http://127.0.0.1:{media_port}")),
        ]),
    );
    let http = Client::new();
    for port in [auth_port, chat1, chat2, ai_port, media_port, gw_port] {
        wait_healthy(&http, &format!("http://127.0.0.1:{port}")).await;
    }
    Stack {
        gateway: format!("http://127.0.0.1:{gw_port}"),
        http,
        chat_replicas: vec![chat_a, chat_b],
        media,
        media_env,
        media_port,
        _others: vec![auth, ai, gateway],
        _media_dir: media_dir,
        _db: db,
    }
}

impl Stack {
    /// Kills the media service outright (SIGKILL: no drain, no goodbye).
    fn kill_media(&mut self) {
        self.media.kill();
    }

    async fn start_media(&mut self) {
        self.media = spawn("media", "dream-media", &self.media_env);
        wait_healthy(&self.http, &format!("http://127.0.0.1:{}", self.media_port)).await;
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.gateway));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                res.headers()["content-type"],
                "application/problem+json",
                "{path}: {status}"
            );
        }
        let text = res.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }
    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_story_through_the_gateway() {
    let mut s = stack().await;
    let (status, health) = s.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            health["services"]["auth"].as_str(),
            health["services"]["chat"].as_str()
        ),
        (Some("up"), Some("up"))
    );

    let creds = json!({ "email": "lea@example.com", "password": "un mot de passe" });
    let (status, _) =
        s.post("/api/v1/auth/register", None, json!({ "email": "lea@example.com", "password": "un mot de passe", "display_name": "Léa" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, login) = s.post("/api/v1/auth/login", None, creds.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let access = login["access_token"].as_str().unwrap().to_owned();

    let (status, characters) = s
        .call(reqwest::Method::GET, "/api/v1/characters", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "the catalogue is public");
    assert!(characters.as_array().unwrap().len() >= 8);
    let (status, p) = s
        .call(reqwest::Method::GET, "/api/v1/users/me", None, None)
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "the gateway checks tokens"
    );

    assert_eq!(
        s.post(
            "/api/v1/matches",
            Some(&access),
            json!({ "character_id": "sophia" })
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let (status, sent) = s
        .post(
            "/api/v1/conversations/sophia/messages",
            Some(&access),
            json!({ "content": "On se voit au café demain ?" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (status, page) = s
        .get("/api/v1/conversations/sophia/messages", &access)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], sent["id"]);
    // The character answers, streamed through the gateway as server-sent events.
    let res = s
        .http
        .post(format!("{}/api/v1/conversations/sophia/reply", s.gateway))
        .bearer_auth(&access)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let stream = res.text().await.unwrap();
    assert!(stream.matches("event: token").count() >= 5, "{stream}");
    let done = stream
        .split("\n\n")
        .find(|e| e.contains("event: done"))
        .expect("a done event");
    let stored: Value =
        serde_json::from_str(done.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(stored["sender"], "character");
    let (_, page) = s
        .get("/api/v1/conversations/sophia/messages", &access)
        .await;
    assert_eq!(
        page["items"][0]["id"], stored["id"],
        "the reply is in the conversation"
    );
    assert_eq!(page["items"][1]["id"], sent["id"]);

    let (_, hits) = s.get("/api/v1/search/messages?q=cafés", &access).await;
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");

    // Rate-limit headers and the request id come back through the gateway.
    let res = s
        .http
        .get(format!("{}/api/v1/matches", s.gateway))
        .bearer_auth(&access)
        .header("x-request-id", "e2e-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "e2e-42");
    assert!(res.headers().contains_key("ratelimit-remaining"));

    // A second user sees nothing of the first.
    s.post(
        "/api/v1/auth/register",
        None,
        json!({ "email": "hugo@example.com", "password": "un autre secret", "display_name": "H" }),
    )
    .await;
    let (_, other) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "hugo@example.com", "password": "un autre secret" }),
        )
        .await;
    let other = other["access_token"].as_str().unwrap();
    assert_eq!(
        s.get("/api/v1/conversations/sophia/messages", other)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/api/v1/search/messages?q=café", other).await.1,
        json!([])
    );

    // Refresh, then logout: the session's tokens stop working at once.
    let (status, rotated) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/api/v1/users/me", &access2).await.0, StatusCode::OK);
    assert_eq!(
        s.post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": rotated["refresh_token"] })
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (status, p) = s.get("/api/v1/users/me", &access2).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    assert_eq!(
        s.get("/api/v1/users/me", &access).await.0,
        StatusCode::UNAUTHORIZED,
        "the whole family"
    );
    assert_eq!(
        s.post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": rotated["refresh_token"] })
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    // One chat replica dies: reads keep working through the other.
    let (_, relog) = s.post("/api/v1/auth/login", None, creds).await;
    let access3 = relog["access_token"].as_str().unwrap().to_owned();
    s.chat_replicas[0].kill();
    for _ in 0..6 {
        assert_eq!(
            s.get("/api/v1/conversations/sophia/messages", &access3)
                .await
                .0,
            StatusCode::OK
        );
    }
    // The OpenAPI document, generated from the services' code, lists every route.
    let (status, doc) = s
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/users/me", "get"),
        ("/api/v1/users/me", "patch"),
        ("/api/v1/users/me/stats", "get"),
        ("/api/v1/leaderboard", "get"),
        ("/api/v1/characters", "get"),
        ("/api/v1/characters/{id}", "get"),
        ("/api/v1/matches", "post"),
        ("/api/v1/matches", "get"),
        ("/api/v1/conversations/{character_id}/messages", "get"),
        ("/api/v1/conversations/{character_id}/messages", "post"),
        ("/api/v1/conversations/{character_id}/read", "post"),
        ("/api/v1/conversations/{character_id}/typing", "put"),
        ("/api/v1/conversations/{character_id}/typing", "get"),
        ("/api/v1/search/messages", "get"),
        ("/api/v1/memories", "get"),
        ("/api/v1/memories", "post"),
        ("/api/v1/memories/{id}", "patch"),
        ("/api/v1/memories/{id}", "delete"),
        ("/api/v1/conversations/{character_id}/reply", "post"),
        ("/api/v1/photos/{character_id}/generate", "post"),
        ("/api/v1/photos/jobs/{id}", "get"),
        ("/api/v1/photos/{character_id}", "get"),
        ("/api/v1/media/{photo_id}", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Message"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let (status, p) = s.get("/api/v1/nowhere", &access3).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

/// One request through the gateway is one trace: spans from the gateway, from the chat
/// service it reached, and from that service's PostgreSQL query, all under one trace id,
/// exported over OTLP/HTTP to a receiver in this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_gateway_service_and_database() {
    use std::sync::{Arc, Mutex};

    use actix_web::{App, HttpResponse, HttpServer, web};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    #[derive(Debug, Clone)]
    struct Seen {
        trace_id: String,
        service: String,
        name: String,
    }
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = seen.clone();
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let otlp = format!("http://{}", receiver.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let sink = sink.clone();
        App::new()
            .app_data(web::PayloadConfig::new(16 << 20))
            .route(
                "/v1/traces",
                web::post().to(move |body: web::Bytes| {
                    let sink = sink.clone();
                    async move {
                        let req = ExportTraceServiceRequest::decode(body).unwrap();
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|a| a.key == "service.name")
                                .and_then(|a| a.value.as_ref())
                                .map(|v| format!("{:?}", v.value))
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for span in ss.spans {
                                    let trace_id =
                                        span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                                    sink.lock().unwrap().push(Seen {
                                        trace_id,
                                        service: service.clone(),
                                        name: span.name,
                                    });
                                }
                            }
                        }
                        HttpResponse::Ok()
                            .content_type("application/x-protobuf")
                            .body(Vec::<u8>::new())
                    }
                }),
            )
    })
    .workers(1)
    .listen(receiver)
    .unwrap()
    .run();
    let receiver_task = tokio::spawn(server);

    let s = stack_with(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("AI_PHOTO_EVERY", "2".into()),
    ])
    .await;
    s.post(
        "/api/v1/auth/register",
        None,
        json!({ "email": "t@example.com", "password": "tracé tracé", "display_name": "T" }),
    )
    .await;
    let (_, login) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "t@example.com", "password": "tracé tracé" }),
        )
        .await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    // A caller's trace id is continued, not replaced.
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let res = s
        .http
        .get(format!("{}/api/v1/search/messages?q=bonjour", s.gateway))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["x-request-id"],
        trace_id.as_str(),
        "the request id is the trace id"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|x| x.trace_id == trace_id)
            .cloned()
            .collect();
        let from = |svc: &str| spans.iter().any(|x| x.service.contains(svc));
        let query = spans
            .iter()
            .any(|x| x.service.contains("chat") && x.name == "messages.search");
        let redis = spans
            .iter()
            .any(|x| x.service.contains("gateway") && x.name.starts_with("redis "));
        if from("gateway") && from("chat") && query && redis {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} incomplete: {spans:#?}\nall: {:#?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A reply that crosses an affection milestone: the ai service's call to the media service
    // is part of the reply's trace.
    s.post(
        "/api/v1/matches",
        Some(&token),
        json!({ "character_id": "sophia" }),
    )
    .await;
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&token),
        json!({ "content": "Une photo ?" }),
    )
    .await;
    let reply_trace = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let res = s
        .http
        .post(format!("{}/api/v1/conversations/sophia/reply", s.gateway))
        .bearer_auth(&token)
        .header(
            "traceparent",
            format!("00-{reply_trace}-00f067aa0ba902b7-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|x| x.trace_id == reply_trace)
            .cloned()
            .collect();
        let call = spans
            .iter()
            .any(|x| x.service.contains("ai") && x.name == "media.generate");
        let served = spans.iter().any(|x| x.service.contains("media"));
        if call && served {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reply trace {reply_trace} has no media call: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver_task.abort();
}

async fn account(s: &Stack, email: &str) -> String {
    let creds = json!({ "email": email, "password": "un mot de passe", "display_name": "Léa" });
    let (status, _) = s.post("/api/v1/auth/register", None, creds.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, login) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": email, "password": "un mot de passe" }),
        )
        .await;
    login["access_token"].as_str().unwrap().to_owned()
}

async fn wait_job(s: &Stack, token: &str, job: &str, until: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, j) = s.get(&format!("/api/v1/photos/jobs/{job}"), token).await;
        if status == StatusCode::OK && until.contains(&j["status"].as_str().unwrap()) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {job}: {status} {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn download(s: &Stack, url: &str, token: &str, etag: Option<&str>) -> reqwest::Response {
    let mut req = s.http.get(format!("{}{url}", s.gateway)).bearer_auth(token);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    req.send().await.unwrap()
}

/// A photo through the gateway, with the media service killed mid-job and started again:
/// the job is taken over and the photo delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_through_the_gateway_survive_a_killed_media_service() {
    let mut s = stack_with(vec![
        ("MEDIA_RENDER_DELAY_MS", "1500".into()),
        ("MEDIA_JOB_LEASE_MS", "1500".into()),
    ])
    .await;
    let lea = account(&s, "lea@example.com").await;
    s.post(
        "/api/v1/matches",
        Some(&lea),
        json!({ "character_id": "sophia" }),
    )
    .await;

    let (status, job) = s
        .post(
            "/api/v1/photos/sophia/generate",
            Some(&lea),
            json!({ "prompt": "les toits de Paris la nuit" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = wait_job(&s, &lea, job["id"].as_str().unwrap(), &["done", "failed"]).await;
    assert_eq!(done["status"], "done", "{done}");
    let url = done["photo"]["url"].as_str().unwrap().to_owned();
    let (_, gallery) = s.get("/api/v1/photos/sophia", &lea).await;
    assert_eq!(gallery["items"][0]["id"], done["photo"]["id"]);
    let res = download(&s, &url, &lea, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("private")
    );
    let bytes = res.bytes().await.unwrap();
    assert!(
        bytes.starts_with(b"\xFF\xD8\xFF")
            || bytes.starts_with(b"\x89PNG")
            || &bytes[8..12] == b"WEBP",
        "an image signature"
    );
    assert_eq!(
        download(&s, &url, &lea, Some(&etag)).await.status(),
        StatusCode::NOT_MODIFIED
    );
    let hugo = account(&s, "hugo@example.com").await;
    assert_eq!(
        download(&s, &url, &hugo, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (_, page) = s.get("/api/v1/conversations/sophia/messages", &lea).await;
    assert_eq!(page["items"][0]["photo_id"], done["photo"]["id"], "{page}");

    // Kill the media service while a job runs; start it again.
    let (_, job) = s
        .post(
            "/api/v1/photos/sophia/generate",
            Some(&lea),
            json!({ "prompt": "le canal au petit matin" }),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let running = wait_job(&s, &lea, &id, &["running", "done"]).await;
    assert_eq!(running["status"], "running", "caught mid-job");
    s.kill_media();
    let (status, _) = s.get(&format!("/api/v1/photos/jobs/{id}"), &lea).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "no media replica is up");
    s.start_media().await;
    let done = wait_job(&s, &lea, &id, &["done", "failed"]).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "taken over after the dead attempt's lease: {done}"
    );

    // Exactly once: one photo and one photo message for that prompt.
    let (_, gallery) = s.get("/api/v1/photos/sophia?limit=100", &lea).await;
    let photos = gallery["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["prompt"] == "le canal au petit matin")
        .count();
    assert_eq!(photos, 1, "{gallery}");
    let (_, page) = s
        .get("/api/v1/conversations/sophia/messages?limit=100", &lea)
        .await;
    let carrying = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["photo_id"] == done["photo"]["id"])
        .count();
    assert_eq!(carrying, 1, "{page}");
}

/// Affection milestones: with a photo every 2 points, each reply crosses one, and the ai
/// service asks the media service for a photo on the user's behalf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_crosses_an_affection_milestone_brings_a_photo() {
    let s = stack_with(vec![("AI_PHOTO_EVERY", "2".into())]).await;
    let lea = account(&s, "lea@example.com").await;
    s.post(
        "/api/v1/matches",
        Some(&lea),
        json!({ "character_id": "sophia" }),
    )
    .await;
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&lea),
        json!({ "content": "Je t'envoie des bises !" }),
    )
    .await;
    let (status, reply) = s
        .post("/api/v1/conversations/sophia/reply", Some(&lea), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, gallery) = s.get("/api/v1/photos/sophia", &lea).await;
        if let Some(p) = gallery["items"].as_array().unwrap().as_slice().first() {
            assert_eq!(p["prompt"], Value::Null, "the character chose");
            break;
        }
        assert!(Instant::now() < deadline, "no milestone photo arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
