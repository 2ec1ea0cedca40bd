//! The `openai` provider against a local server that speaks the chat-completions streaming
//! protocol byte for byte: `data:` chunks, `[DONE]`, an error mid-stream, a slow first token,
//! an API that is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use ai::openai::{OpenAi, OpenAiConfig};
use ai::provider::{Builtin, Prompt, Provider};
use futures_util::StreamExt;
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    SlowFirstAttempt,
    ErrorMidStream,
    Down,
}

struct Fake {
    mode: Mutex<Mode>,
    attempts: AtomicUsize,
    last_body: Mutex<Value>,
    last_auth: Mutex<String>,
}

fn chunk(v: Value) -> web::Bytes {
    web::Bytes::from(format!("data: {v}\n\n"))
}

async fn completions(
    fake: web::Data<Fake>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    let attempt = fake.attempts.fetch_add(1, Ordering::SeqCst);
    *fake.last_body.lock().unwrap() = body.into_inner();
    *fake.last_auth.lock().unwrap() = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mode = *fake.mode.lock().unwrap();
    if mode == Mode::Down {
        return HttpResponse::InternalServerError().body("upstream exploded");
    }
    let slow = mode == Mode::SlowFirstAttempt && attempt == 0;
    let mut parts = vec![chunk(
        json!({ "choices": [{ "delta": { "role": "assistant" } }] }),
    )];
    for t in ["Bon", "jour", " toi", " !"] {
        parts.push(chunk(json!({ "choices": [{ "delta": { "content": t } }] })));
    }
    if mode == Mode::ErrorMidStream {
        parts.truncate(3);
        parts.push(chunk(
            json!({ "error": { "message": "the model crashed" } }),
        ));
    } else {
        parts.push(web::Bytes::from_static(b"data: [DONE]\n\n"));
    }
    let body =
        futures_util::stream::iter(parts.into_iter().enumerate()).then(move |(i, b)| async move {
            let pause = if slow && i == 1 { 2_000 } else { 5 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            Ok::<_, std::io::Error>(b)
        });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}

async fn fake_server(mode: Mode) -> (String, web::Data<Fake>) {
    let fake = web::Data::new(Fake {
        mode: Mutex::new(mode),
        attempts: AtomicUsize::new(0),
        last_body: Mutex::new(Value::Null),
        last_auth: Mutex::new(String::new()),
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let data = fake.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/chat/completions", web::post().to(completions))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (url, fake)
}

fn provider(url: &str, fallback: bool) -> OpenAi {
    service_kit::testing::install_crypto();
    let config = OpenAiConfig {
        base_url: url.to_owned(),
        model: "dream-test-model".into(),
        api_key: Some(service_kit::Secret::new("sk-test")),
        first_token_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_secs(10),
        retries: 1,
        max_tokens: 512,
    };
    let fallback: Option<Arc<dyn Provider>> = fallback.then(|| {
        Arc::new(Builtin {
            token_delay: Duration::ZERO,
        }) as Arc<dyn Provider>
    });
    OpenAi::new(config, fallback).unwrap()
}

fn prompt() -> Prompt {
    let character = db_core::seed::demo_characters()
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    Prompt {
        character,
        user_message: "Salut Sophia".into(),
        memories: vec!["Aime la poésie".into()],
        history: vec![(false, "Coucou !".into()), (true, "Bonsoir".into())],
        seed: 42,
        continuing: None,
    }
}

async fn collect(p: &OpenAi) -> Vec<Result<String, String>> {
    p.stream(prompt())
        .map(|r| r.map_err(|e| e.0))
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_stream_until_done_and_the_request_is_well_formed() {
    let (url, fake) = fake_server(Mode::Ok).await;
    let got = collect(&provider(&url, false)).await;
    assert_eq!(
        got,
        vec![
            Ok("Bon".into()),
            Ok("jour".into()),
            Ok(" toi".into()),
            Ok(" !".into())
        ]
    );
    let body = fake.last_body.lock().unwrap().clone();
    assert_eq!(body["model"], "dream-test-model");
    assert_eq!(body["stream"], true);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"].as_str().unwrap().contains("Sophia")
            && messages[0]["content"]
                .as_str()
                .unwrap()
                .contains("Aime la poésie")
    );
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user"],
        "history oldest first, then the message"
    );
    assert_eq!(messages[3]["content"], "Salut Sophia");
    assert_eq!(*fake.last_auth.lock().unwrap(), "Bearer sk-test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_token_is_retried() {
    let (url, fake) = fake_server(Mode::SlowFirstAttempt).await;
    let got = collect(&provider(&url, false)).await;
    assert_eq!(got.concat_ok(), "Bonjour toi !");
    assert_eq!(fake.attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_mid_stream_ends_the_reply_with_an_error_and_is_not_retried() {
    let (url, fake) = fake_server(Mode::ErrorMidStream).await;
    let got = collect(&provider(&url, true)).await;
    assert_eq!(got[..2], [Ok("Bon".to_owned()), Ok("jour".to_owned())]);
    assert!(
        matches!(got.last(), Some(Err(e)) if e.contains("the model crashed")),
        "{got:?}"
    );
    assert_eq!(
        fake.attempts.load(Ordering::SeqCst),
        1,
        "tokens were sent: no retry, no fallback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_is_down_falls_back_then_the_breaker_stops_calling_it() {
    let (url, fake) = fake_server(Mode::Down).await;
    let p = provider(&url, true);
    let first = collect(&p).await.concat_ok();
    assert!(
        first.contains("Sophia") || first.contains("roman"),
        "the builtin answered: {first}"
    );
    assert_eq!(
        fake.attempts.load(Ordering::SeqCst),
        2,
        "one try and one retry"
    );
    collect(&p).await;
    let after = fake.attempts.load(Ordering::SeqCst);
    collect(&p).await;
    assert_eq!(
        fake.attempts.load(Ordering::SeqCst),
        after,
        "the open breaker no longer calls the API"
    );
    let without = collect(&provider(&url, false)).await;
    assert!(
        matches!(without.as_slice(), [Err(e)] if e.contains("HTTP 500")),
        "{without:?}"
    );
}

trait ConcatOk {
    fn concat_ok(&self) -> String;
}

impl ConcatOk for Vec<Result<String, String>> {
    fn concat_ok(&self) -> String {
        self.iter().map(|r| r.clone().unwrap()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_service_a_failed_generation_stores_nothing_and_can_be_asked_again() {
    let (url, fake) = fake_server(Mode::ErrorMidStream).await;
    let ai = ai::handlers::reply::Ai {
        provider: Arc::new(provider(&url, false)),
        by_character: Default::default(),
        photos: None,
        limits: Default::default(),
    };
    let (app, user, token) = app_with(ai, &["sophia"], "Salut !").await;
    let path = "/api/v1/conversations/sophia/reply";

    let (status, p) = app.post(path, Some(&token), Value::Null).await;
    assert_eq!(
        (status.as_u16(), p["code"].as_str()),
        (503, Some("service_unavailable"))
    );
    assert_eq!(replies(&app, user).await, 0, "a half reply is never stored");

    *fake.mode.lock().unwrap() = Mode::Ok;
    let (status, reply) = app.post(path, Some(&token), Value::Null).await;
    assert_eq!(status.as_u16(), 201, "{reply}");
    assert_eq!(reply["content"], "Bonjour toi !");
    assert_eq!(replies(&app, user).await, 1);
    assert_eq!(
        app.kit
            .store
            .matches()
            .get(user, "sophia")
            .await
            .unwrap()
            .map(|m| i64::from(m.affection)),
        Some(2),
        "counted once, for the reply that was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_character_answers_with_its_own_provider() {
    let (url, _fake) = fake_server(Mode::Ok).await;
    // Builtin by default; Sophia speaks through the OpenAI-compatible API.
    let ai = ai::handlers::reply::Ai {
        provider: Arc::new(Builtin {
            token_delay: Duration::ZERO,
        }),
        by_character: [(
            "sophia".to_owned(),
            Arc::new(provider(&url, false)) as Arc<dyn Provider>,
        )]
        .into_iter()
        .collect(),
        photos: None,
        limits: Default::default(),
    };
    let (app, _user, token) = app_with(ai, &["sophia", "hugo"], "Salut, ça va ?").await;
    let ask = |c: &str| format!("/api/v1/conversations/{c}/reply");
    let (status, sophia) = app.post(&ask("sophia"), Some(&token), Value::Null).await;
    assert_eq!(status.as_u16(), 201, "{sophia}");
    assert_eq!(sophia["content"], "Bonjour toi !", "from the API");
    let (status, hugo) = app.post(&ask("hugo"), Some(&token), Value::Null).await;
    assert_eq!(status.as_u16(), 201, "{hugo}");
    assert_ne!(hugo["content"], "Bonjour toi !", "builtin, in Hugo's voice");
    assert!(!hugo["content"].as_str().unwrap().is_empty());
}

/// The ai service with `ai`, the demo characters, and one user matched with `characters`,
/// having written `message` to each.
async fn app_with(
    ai: ai::handlers::reply::Ai,
    characters: &[&str],
    message: &str,
) -> (service_kit::testing::TestApp, uuid::Uuid, String) {
    use db_core::models::{NewMessage, Sender};

    let app = service_kit::testing::TestApp::start_with("ai", ai::API, ai::routes::data(ai)).await;
    app.with_catalogue().await;
    let (user, token) = app.matched("o@example.com", characters).await;
    for character in characters {
        app.kit
            .store
            .conversations()
            .send(&NewMessage::new(user, *character, Sender::User, message))
            .await
            .unwrap();
    }
    (app, user, token)
}

async fn replies(app: &service_kit::testing::TestApp, user: uuid::Uuid) -> usize {
    app.kit
        .store
        .conversations()
        .page(user, "sophia", None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|m| m.sender == db_core::models::Sender::Character)
        .count()
        // The greeting the match opened with is not a reply.
        - 1
}

/// One's own character answers like a public one: the model is told its persona, the card's
/// personality and scenario, and its example dialogue. Someone else asking for a reply from it
/// gets 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_character_is_written_from_its_persona_scenario_and_examples() {
    use db_core::models::{CharacterDraft, NewMessage, Sender};

    let (url, fake) = fake_server(Mode::Ok).await;
    let ai = ai::handlers::reply::Ai {
        provider: Arc::new(provider(&url, false)),
        by_character: Default::default(),
        photos: None,
        limits: Default::default(),
    };
    let (app, user, token) = app_with(ai, &[], "").await;
    let mira = app
        .kit
        .store
        .characters()
        .create(
            user,
            &CharacterDraft {
                name: "Mira".into(),
                tagline: String::new(),
                persona: "You are Mira, a lighthouse keeper.".into(),
                greeting: "Come in from the storm.".into(),
                tags: vec![],
                example_dialogue: "{{user}}: Lonely?\n{{char}}: The sea talks. I listen.".into(),
                card_extras: json!({"personality": "wry", "scenario": "A storm, the supply boat."}),
            },
        )
        .await
        .unwrap();
    app.kit
        .store
        .matches()
        .create(user, &mira.id)
        .await
        .unwrap();
    app.kit
        .store
        .conversations()
        .send(&NewMessage::new(
            user,
            &mira.id,
            Sender::User,
            "Bonsoir Mira",
        ))
        .await
        .unwrap();
    let path = format!("/api/v1/conversations/{}/reply", mira.id);
    let (status, reply) = app.post(&path, Some(&token), Value::Null).await;
    assert_eq!(status.as_u16(), 201, "{reply}");
    assert_eq!(reply["content"], "Bonjour toi !");
    let body = fake.last_body.lock().unwrap().clone();
    let system = body["messages"][0]["content"].as_str().unwrap().to_owned();
    for part in [
        "You are Mira, a lighthouse keeper.",
        "Personality: wry",
        "Scenario: A storm, the supply boat.",
        "{{char}}: The sea talks. I listen.",
    ] {
        assert!(system.contains(part), "{part:?} not in {system:?}");
    }
    let (_, other) = app.matched("someone@example.com", &[]).await;
    let (status, p) = app.post(&path, Some(&other), Value::Null).await;
    assert_eq!(
        (status.as_u16(), p["code"].as_str()),
        (404, Some("not_found"))
    );
}
