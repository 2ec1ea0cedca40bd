#![doc = include_str!("../README.md")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use db_test::TestDb;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

pub mod chaos;

/// One process of the stack; killed when dropped (its log printed if the test failed).
pub struct Proc {
    pub name: &'static str,
    binary: &'static str,
    env: Vec<(String, String)>,
    child: Child,
    log: PathBuf,
    /// Its public and admin ports.
    pub port: u16,
    pub admin_port: u16,
}

impl Proc {
    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an orchestrator stops a pod; waits up to `within` for the process to exit.
    /// Its exit status and how long it took, or `None` if it is still running.
    pub fn terminate(&mut self, within: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {}", self.child.id());
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Starts the same binary again, with the same settings and ports.
    pub async fn restart(&mut self, http: &Client) {
        self.kill();
        self.child = launch(self.binary, &self.env, &self.log);
        wait_for(
            http,
            &format!("http://127.0.0.1:{}/health", self.admin_port),
        )
        .await;
    }

    /// Another replica of the same binary with the same settings, on ports of its own, and
    /// `extra` settings on top (not behind the gateway: for work a service does on its own).
    pub async fn twin(&self, http: &Client, name: &'static str, extra: &[(&str, String)]) -> Proc {
        let (port, admin_port) = (free_port(), free_port());
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| !k.ends_with("_PORT"))
            .cloned()
            .collect();
        let var = self
            .env
            .iter()
            .find(|(k, v)| k.ends_with("_PORT") && k != "ADMIN_PORT" && *v == self.port.to_string())
            .map_or("PORT".to_owned(), |(k, _)| k.clone());
        env.push((var, port.to_string()));
        env.push(("ADMIN_PORT".into(), admin_port.to_string()));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let log = std::env::temp_dir().join(format!(
            "dream-e2e-{name}-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let mut proc = Proc {
            name,
            binary: self.binary,
            child: launch(self.binary, &env, &log),
            env,
            log,
            port,
            admin_port,
        };
        assert!(
            proc.listening(http).await,
            "{name} did not start:\n{}",
            proc.log()
        );
        proc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// Waits until the process answers on its admin listener (true), or exits (false).
    async fn listening(&mut self, http: &Client) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http
                .get(format!("{}/health", self.admin_url()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("{} never answered on its admin listener", self.name);
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("── {} log ──\n{}", self.name, self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A service binary in the directory cargo built the workspace into: beside the running
/// program (`dream-chaos`), or one level up from a test executable (`target/*/deps`).
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let here = exe.parent().unwrap();
    let dir = if here.join(name).exists() {
        here
    } else {
        here.parent().unwrap()
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo nextest run --workspace`, as `make test` does, builds every binary)",
        path.display()
    );
    path
}

fn launch(binary: &str, env: &[(String, String)], log: &PathBuf) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(bin(binary))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap()
}

async fn wait_for(http: &Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered 200");
}

/// How to start the stack.
#[derive(Default, Clone)]
pub struct Options {
    /// Set on every process.
    pub env: Vec<(&'static str, String)>,
    /// Set on the gateway only.
    pub gateway_env: Vec<(&'static str, String)>,
    /// A database of the test's own (migrated, with the catalogue), instead of a fresh
    /// database on the shared server: a fault test stops and restarts its server.
    pub database_url: Option<String>,
    /// A Redis of the test's own (and the key prefix to use there).
    pub redis_url: Option<String>,
}

/// The stack: gateway, auth, two chat replicas, ai, media.
pub struct Stack {
    pub gateway: String,
    pub http: Client,
    pub gateway_proc: Proc,
    pub auth: Proc,
    pub chat: Vec<Proc>,
    pub ai: Proc,
    pub media: Proc,
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    _db: Option<TestDb>,
    _media_dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        service_kit::testing::install_crypto();
        let (db, database_url) = match &options.database_url {
            Some(url) => (None, url.clone()),
            None => {
                let db = TestDb::new().await.unwrap();
                let mut conn = db.conn().await.unwrap();
                db_core::seed::load_catalogue(&mut conn).await.unwrap();
                let url = db.url().to_owned();
                (Some(db), url)
            }
        };
        let mut redis = db_test::redis_config();
        if let Some(url) = &options.redis_url {
            redis.url = url.clone();
        }
        let media_dir = tempfile::tempdir().unwrap();
        let common = |extra: Vec<(&'static str, String)>| {
            // The last setting of a variable wins (as in `Command::envs`).
            let env: Vec<(String, String)> = [
                ("DATABASE_URL", database_url.clone()),
                ("REDIS_URL", redis.url.clone()),
                ("REDIS_KEY_PREFIX", redis.key_prefix.clone()),
                ("DB_POOL_MIN_IDLE", "0".into()),
                ("DB_POOL_MAX_SIZE", "4".into()),
                ("DREAM_ENV", "development".into()),
                ("RUST_LOG", "warn".into()),
                ("HTTP_WORKERS", "2".into()),
            ]
            .into_iter()
            // A process's own settings, then the test's: the test's win.
            .chain(extra)
            .chain(options.env.iter().cloned())
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            env
        };
        let http = Client::new();
        let spawn =
            |name: &'static str, binary: &'static str, extra: Vec<(&'static str, String)>| {
                let http = http.clone();
                let common = &common;
                async move {
                    // Ports come from the kernel and are let go before the process binds them:
                    // another test may take one meanwhile. Then the process exits at once, and it is
                    // started again on other ports.
                    for _ in 0..5 {
                        let (port, admin_port) = (free_port(), free_port());
                        let var = match binary {
                            "dream-gateway" => "GATEWAY_PORT",
                            "dream-auth" => "AUTH_PORT",
                            "dream-chat" => "CHAT_PORT",
                            "dream-ai" => "AI_PORT",
                            _ => "MEDIA_PORT",
                        };
                        let mut extra = extra.clone();
                        extra.push((var, port.to_string()));
                        extra.push(("ADMIN_PORT", admin_port.to_string()));
                        let env = common(extra);
                        let log = std::env::temp_dir().join(format!(
                            "dream-e2e-{name}-{}.log",
                            uuid::Uuid::new_v4().simple()
                        ));
                        let mut proc = Proc {
                            name,
                            binary,
                            child: launch(binary, &env, &log),
                            env,
                            log,
                            port,
                            admin_port,
                        };
                        if proc.listening(&http).await {
                            return proc;
                        }
                        assert!(
                            proc.log().contains("Address already in use"),
                            "{name} did not start:\n{}",
                            proc.log()
                        );
                    }
                    panic!("{name}: no free ports in five tries");
                }
            };
        let auth = spawn("auth", "dream-auth", vec![]).await;
        let chat = vec![
            spawn("chat-1", "dream-chat", vec![]).await,
            spawn("chat-2", "dream-chat", vec![]).await,
        ];
        let media = spawn(
            "media",
            "dream-media",
            vec![
                ("MEDIA_STORE_URL", media_dir.path().display().to_string()),
                ("MEDIA_POLL_MS", "100".into()),
            ],
        )
        .await;
        let ai = spawn(
            "ai",
            "dream-ai",
            vec![
                ("AI_TOKEN_DELAY_MS", "5".into()),
                ("MEDIA_URL", media.url()),
            ],
        )
        .await;
        let mut gw_env = vec![
            ("AUTH_URLS", auth.url()),
            (
                "CHAT_URLS",
                chat.iter().map(Proc::url).collect::<Vec<_>>().join(","),
            ),
            ("AI_URLS", ai.url()),
            ("MEDIA_URLS", media.url()),
        ];
        gw_env.extend(options.gateway_env.iter().cloned());
        let gateway_proc = spawn("gateway", "dream-gateway", gw_env).await;
        for p in std::iter::once(&auth).chain(&chat).chain([&ai, &media]) {
            wait_for(&http, &format!("{}/ready", p.admin_url())).await;
        }
        // Ready once it knows every service's routes.
        wait_for(&http, &format!("{}/ready", gateway_proc.admin_url())).await;
        Self {
            gateway: gateway_proc.url(),
            http,
            gateway_proc,
            auth,
            chat,
            ai,
            media,
            database_url,
            redis_url: redis.url,
            redis_prefix: redis.key_prefix,
            _db: db,
            _media_dir: media_dir,
        }
    }

    /// The directory the media service stores images in.
    pub fn media_dir(&self) -> &std::path::Path {
        self._media_dir.path()
    }

    /// Every process, gateway first.
    pub fn processes(&self) -> impl Iterator<Item = &Proc> {
        std::iter::once(&self.gateway_proc)
            .chain([&self.auth])
            .chain(&self.chat)
            .chain([&self.ai, &self.media])
    }

    /// A connection to the stack's database, for checks the API does not offer.
    pub async fn conn(&self) -> db_core::AsyncPgConnection {
        db_core::pool::connect_unpooled(&self.database_url, "e2e")
            .await
            .unwrap()
    }

    /// Sends a request through the gateway; asserts that every error is a problem document.
    pub async fn call(
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
        read(path, res).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Registers `email` and signs in; the login answer (tokens and user).
    pub async fn sign_up(&self, email: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({ "email": email, "password": "un mot de passe", "display_name": "Léa" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, login) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "email": email, "password": "un mot de passe" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{login}");
        login
    }

    /// [`Stack::sign_up`]'s access token.
    pub async fn account(&self, email: &str) -> String {
        self.sign_up(email).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An account matched with `character`; its access token.
    pub async fn matched(&self, email: &str, character: &str) -> String {
        let token = self.account(email).await;
        let (status, _) = self
            .post(
                "/api/v1/matches",
                Some(&token),
                json!({ "character_id": character }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        token
    }
}

/// Status and JSON body of a response; asserts that an error is a problem document.
pub async fn read(what: &str, res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{what}: {status}"
        );
    }
    let text = res.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        },
    )
}

/// One HTTP/1.1 request written byte for byte (no URL parser in between: paths arrive exactly
/// as an attacker would send them), from `local` when given. The status and the body.
pub async fn raw(port: u16, request: &str, local: Option<std::net::IpAddr>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = local {
        socket.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
    }
    let mut stream = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A `GET` of `path` exactly as written, with `headers` (each `Name: value`).
pub fn get_request(path: &str, headers: &[String]) -> String {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}
