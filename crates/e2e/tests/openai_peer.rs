//! The `openai` provider end to end: the stack with `AI_PROVIDER=openai` against `openai-peer`,
//! a real HTTP server process speaking the chat-completions protocol (streamed SSE chunks and
//! plain JSON). It is a protocol peer, not a model: what is proven is the wiring — the reply
//! streamed through the gateway, facts extracted by the provider and remembered once, the
//! bound on memories, and a character writing first through the same provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Options, Stack, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Peer {
    child: Child,
    log: std::path::PathBuf,
    url: String,
}

impl Peer {
    fn start() -> Self {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("openai-peer-{}.log", uuid::Uuid::new_v4().simple()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_openai-peer"))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openai-peer did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            log,
            url: format!("http://127.0.0.1:{port}/v1"),
        }
    }

    /// The requests it answered, one JSON document each.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("request").is_some())
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn reply_as_events(s: &Stack, token: &str) -> (StatusCode, String) {
    let res = s
        .http
        .post(format!("{}/api/v1/conversations/sophia/reply", s.gateway))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.text().await.unwrap())
}

async fn memories(s: &Stack, token: &str) -> Vec<String> {
    let (status, page) = s.get("/api/v1/memories?character_id=sophia", token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_speaking_the_chat_completions_protocol_writes_the_replies_and_the_memories() {
    let peer = Peer::start();
    let s = Stack::with(Options {
        env: vec![
            ("AI_PROVIDER", "openai".into()),
            ("OPENAI_BASE_URL", peer.url.clone()),
            ("OPENAI_MODEL", "peer-model".into()),
            ("MEMORIES_PER_MATCH", "4".into()),
            ("AI_WRITE_FIRST_AFTER_S", "3".into()),
            ("AI_WRITE_FIRST_POLL_MS", "100".into()),
            ("AI_WRITE_FIRST_QUIET_HOURS", "off".into()),
        ],
        ..Options::default()
    })
    .await;
    let lea = s.matched("lea@example.com", "sophia").await;
    let said = json!({ "content": "Je m'appelle Léa. J'adore les croissants du marché." });
    let (status, sent) = s
        .post(
            "/api/v1/conversations/sophia/messages",
            Some(&lea),
            said.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    println!("> POST /api/v1/conversations/sophia/messages {said}\n< 201 {sent}");

    let (status, events) = reply_as_events(&s, &lea).await;
    println!(
        "> POST /api/v1/conversations/sophia/reply (accept: text/event-stream)\n< {status}\n{events}"
    );
    assert!(status.is_success(), "{events}");
    assert!(events.matches("event: token").count() > 5, "{events}");
    let done: Value = events
        .split("\n\n")
        .find(|e| e.contains("event: done"))
        .and_then(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap_or_else(|| panic!("no done event: {events}"));
    assert_eq!(
        done["content"],
        "Réponse du pair de protocole (pas un modèle) : tu as écrit « Je m'appelle Léa. J'adore les croissants du marché. ».",
    );

    // The facts came from the provider (the keyword rule would have kept "Je m'appelle Léa").
    let remembered = memories(&s, &lea).await;
    println!("> GET /api/v1/memories?character_id=sophia\n< {remembered:?}");
    assert_eq!(remembered.len(), 2, "{remembered:?}");
    assert!(
        remembered.contains(&"S'appelle Léa".to_owned()),
        "{remembered:?}"
    );
    assert!(remembered.contains(&"Adore les croissants du marché".to_owned()));
    let asked = peer.requests();
    assert!(asked.iter().any(|r| r["request"]["stream"] == true));
    assert!(asked.iter().any(|r| {
        r["request"]["stream"] == false
            && r["answer"].as_str()
                == Some(
                    json!(["S'appelle Léa", "Adore les croissants du marché"])
                        .to_string()
                        .as_str(),
                )
    }));

    // Said again (other case, other punctuation): remembered once, confirmed.
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&lea),
        json!({ "content": "je m'appelle LÉA !" }),
    )
    .await;
    let (status, _) = reply_as_events(&s, &lea).await;
    assert!(status.is_success());
    assert_eq!(memories(&s, &lea).await.len(), 2, "no duplicate");
    let again = json!({ "character_id": "sophia", "content": "  s'appelle   léa. " });
    let (status, same) = s.post("/api/v1/memories", Some(&lea), again.clone()).await;
    println!(
        "> POST /api/v1/memories {again}\n< {} {same}",
        status.as_u16()
    );
    assert_eq!(status, StatusCode::OK, "the memory exists: {same}");
    assert_eq!(same["content"], "S'appelle Léa");

    // The bound: four per match here. Three of the user's own push out the fact drawn from a
    // message that was confirmed least recently (the croissants; Léa's name was just confirmed).
    for fact in ["Joue du violoncelle", "A un chat roux", "Vit à Lyon"] {
        let (status, m) = s
            .post(
                "/api/v1/memories",
                Some(&lea),
                json!({ "character_id": "sophia", "content": fact }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{m}");
    }
    let kept = memories(&s, &lea).await;
    println!("< after three more with MEMORIES_PER_MATCH=4: {kept:?}");
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(
        !kept.contains(&"Adore les croissants du marché".to_owned()),
        "{kept:?}"
    );
    assert!(kept.contains(&"S'appelle Léa".to_owned()), "{kept:?}");

    // After a silence, the character writes first through the same provider.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let (_, page) = s.get("/api/v1/conversations/sophia/messages", &lea).await;
        let newest = page["items"][0].clone();
        if newest["content"]
            .as_str()
            .unwrap_or("")
            .contains("écrit le premier")
        {
            break newest;
        }
        assert!(
            Instant::now() < deadline,
            "no message written first: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("< the character wrote first: {first}");
    assert_eq!(first["sender"], "character");
}
