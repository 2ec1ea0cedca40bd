//! The ai service over real HTTP, against its own database and Redis prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai::handlers::reply::Ai;
use ai::provider::Builtin;
use db_core::models::{NewMessage, Sender};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use service_kit::testing::TestApp;
use uuid::Uuid;

async fn start(token_delay_ms: u64) -> (TestApp, Uuid, String) {
    start_limited(token_delay_ms, Default::default()).await
}

async fn start_limited(
    token_delay_ms: u64,
    limits: ai::generate::Limits,
) -> (TestApp, Uuid, String) {
    let ai = Ai {
        provider: Arc::new(Builtin {
            token_delay: Duration::from_millis(token_delay_ms),
        }),
        by_character: Default::default(),
        photos: None,
        limits,
    };
    let app = TestApp::start_with("ai", ai::API, ai::routes::data(ai)).await;
    app.with_catalogue().await;
    let (user, token) = app.matched("lea@example.com", &["sophia"]).await;
    (app, user, token)
}

async fn say(app: &TestApp, user: Uuid, text: &str) -> i64 {
    app.kit
        .store
        .conversations()
        .send(&NewMessage::new(user, "sophia", Sender::User, text))
        .await
        .unwrap()
        .into_message()
        .id
}

/// What the character wrote in answer, newest first (the greeting the match opened with is not
/// a reply).
async fn character_replies(app: &TestApp, user: Uuid) -> Vec<db_core::models::Message> {
    let greeting = app
        .kit
        .store
        .catalogue()
        .get("sophia")
        .await
        .unwrap()
        .unwrap()
        .greeting
        .clone();
    app.kit
        .store
        .conversations()
        .page(user, "sophia", None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|m| m.sender == Sender::Character && m.content != greeting)
        .collect()
}

const REPLY: &str = "/api/v1/conversations/sophia/reply";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_written_once_and_counted_once() {
    let (app, user, token) = start(0).await;
    say(
        &app,
        user,
        "Je m'appelle Léa. Je reviens de la bibliothèque municipale !",
    )
    .await;
    let (status, reply) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["sender"], "character");
    assert!(
        reply["content"].as_str().unwrap().contains("bibliothèque"),
        "in answer to the message: {reply}"
    );
    let (status, again) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &reply),
        "asking again returns the stored reply"
    );
    assert_eq!(character_replies(&app, user).await.len(), 1);
    let store = &app.kit.store;
    assert_eq!(
        store
            .matches()
            .get(user, "sophia")
            .await
            .unwrap()
            .map(|m| m.affection),
        Some(2)
    );
    assert_eq!(store.users().profile(user).await.unwrap().unwrap().xp, 10);
    assert_eq!(
        store
            .conversations()
            .unread_count(user, "sophia")
            .await
            .unwrap(),
        2,
        "the greeting and the reply"
    );
    let remembered = app
        .kit
        .store
        .memories()
        .list(user, "sophia", None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(
        remembered
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        vec!["Je m'appelle Léa"]
    );
    assert!(remembered[0].source_message_id.is_some());

    // The next message gets its own reply, and the memory shows in it.
    say(&app, user, "Tu te souviens de moi ?").await;
    let (status, second) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        second["content"]
            .as_str()
            .unwrap()
            .contains("je m'appelle Léa"),
        "{second}"
    );
    assert_eq!(character_replies(&app, user).await.len(), 2);
}

fn parse_sse(text: &str) -> Vec<(String, String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let field = |name: &str| {
                e.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or("")
                    .to_owned()
            };
            (
                field("id"),
                field("event"),
                serde_json::from_str(&field("data")).unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_streams_as_server_sent_events_and_replays() {
    let (app, user, token) = start(1).await;
    say(&app, user, "Raconte-moi ta journée à la librairie").await;
    let res = app
        .http
        .post(format!("{}{REPLY}", app.base))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = parse_sse(&res.text().await.unwrap());
    let tokens: Vec<&(String, String, Value)> = events.iter().filter(|e| e.1 == "token").collect();
    assert!(tokens.len() >= 5, "{events:?}");
    assert_eq!(tokens[0].0, "1");
    let (done_id, kind, stored) = events.last().unwrap();
    assert_eq!(kind, "done");
    assert_eq!(done_id, &(tokens.len() + 1).to_string());
    let text: String = tokens
        .iter()
        .map(|t| t.2["text"].as_str().unwrap())
        .collect();
    assert_eq!(text.trim(), stored["content"].as_str().unwrap());

    // A client that lost the stream after event 3 gets the rest, not a new reply.
    let res = app
        .http
        .post(format!("{}{REPLY}", app.base))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    let replay = parse_sse(&res.text().await.unwrap());
    assert_eq!(replay.first().unwrap().0, "4");
    assert_eq!(replay.last().unwrap().2, *stored);
    assert_eq!(character_replies(&app, user).await.len(), 1);
}

/// A continue or a swipe asked again under its `Idempotency-Key` (a retry after a lost answer)
/// gets the version it asked for, never one more; a new key asks for a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_or_swipe_asked_again_with_its_key_is_written_once() {
    let (app, user, token) = start(0).await;
    say(&app, user, "Raconte-moi ta journée à la librairie").await;
    let (status, first) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::CREATED);
    let reply = first["id"].as_i64().unwrap();
    let ask = |path: String, key: &str| {
        let req = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", key);
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    let versions = || async {
        app.kit
            .store
            .generations()
            .alternatives(user, reply)
            .await
            .unwrap()
            .len()
    };
    for path in [
        "/api/v1/conversations/sophia/continue".to_owned(),
        format!("{REPLY}?regenerate=true"),
    ] {
        let key = Uuid::new_v4().to_string();
        let (status, written) = ask(path.clone(), &key).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {written}");
        let count = versions().await;
        let (status, again) = ask(path.clone(), &key).await;
        assert_eq!(status, StatusCode::OK, "{path}: {again}");
        assert_eq!(again, written, "{path}: the same version");
        assert_eq!(versions().await, count, "{path}: none added");
        let (status, other) = ask(path.clone(), &Uuid::new_v4().to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {other}");
        assert_eq!(
            versions().await,
            count + 1,
            "{path}: a new key, a new version"
        );
    }
    // Any string is a key (a UUID is only the usual choice).
    let (status, written) = ask(format!("{REPLY}?regenerate=true"), "essai-1").await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    let (status, again) = ask(format!("{REPLY}?regenerate=true"), " essai-1 ").await;
    assert_eq!((status, &again), (StatusCode::OK, &written));
    assert_eq!(character_replies(&app, user).await.len(), 1);
}

/// A client that lost a continuation's (or a swipe's) stream resumes it where it asked: with
/// `Last-Event-ID` it gets the rest of that version, never one more version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_continue_or_swipe_replays_the_version_it_asked_for() {
    let (app, user, token) = start(0).await;
    say(&app, user, "Raconte-moi ta journée à la librairie").await;
    let (status, _) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::CREATED);
    let stream = |path: String, last: Option<&'static str>| {
        let mut req = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .header("accept", "text/event-stream");
        if let Some(last) = last {
            req = req.header("last-event-id", last);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, parse_sse(&res.text().await.unwrap()))
        }
    };
    for path in [
        "/api/v1/conversations/sophia/continue".to_owned(),
        format!("{REPLY}?regenerate=true"),
    ] {
        let (status, events) = stream(path.clone(), None).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {events:?}");
        let (done_id, kind, written) = events.last().unwrap().clone();
        assert_eq!(kind, "done", "{path}: {events:?}");
        let versions = |reply: i64| {
            let app = &app;
            async move {
                app.kit
                    .store
                    .generations()
                    .alternatives(user, reply)
                    .await
                    .unwrap()
                    .len()
            }
        };
        let reply = written["id"].as_i64().unwrap();
        let before = versions(reply).await;
        // The connection dropped after the first event; the version is written meanwhile.
        let (status, replay) = stream(path.clone(), Some("1")).await;
        assert_eq!(status, StatusCode::OK, "{path}: {replay:?}");
        assert_eq!(replay.first().unwrap().0, "2", "{path}: {replay:?}");
        let (last_id, last_kind, again) = replay.last().unwrap();
        assert_eq!((last_id, last_kind.as_str()), (&done_id, "done"), "{path}");
        assert_eq!(again, &written, "{path}: the same version, replayed");
        assert_eq!(versions(reply).await, before, "{path}: no version added");
        assert_eq!(character_replies(&app, user).await.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_midway_still_gets_the_whole_reply_stored_once() {
    let (app, user, token) = start(40).await;
    say(&app, user, "Tu aimes la poésie ?").await;
    let res = app
        .http
        .post(format!("{}{REPLY}", app.base))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: token"));
    drop(body); // the client goes away
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        if let Some(r) = character_replies(&app, user).await.pop() {
            break r;
        }
        assert!(Instant::now() < deadline, "the reply was never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(reply.content.ends_with('?'), "complete: {}", reply.content);
    let (status, again) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(
        (status, again["id"].as_i64()),
        (StatusCode::OK, Some(reply.id))
    );
    assert_eq!(character_replies(&app, user).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_make_one_generation() {
    let (app, user, token) = start(5).await;
    say(&app, user, "Dis-moi quelque chose de doux").await;
    let ask = || app.call(Method::POST, REPLY, Some(&token), None);
    let (a, b) = tokio::join!(ask(), ask());
    let statuses = [a.0, b.0];
    assert!(statuses.contains(&StatusCode::CREATED), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::CREATED, StatusCode::OK, StatusCode::CONFLICT].contains(s)),
        "{statuses:?}"
    );
    let loser = if a.0 == StatusCode::CREATED { &b } else { &a };
    if loser.0 == StatusCode::CONFLICT {
        assert_eq!(loser.1["code"], "generation_in_progress");
    }
    assert_eq!(character_replies(&app, user).await.len(), 1);
    assert_eq!(
        app.kit
            .store
            .matches()
            .get(user, "sophia")
            .await
            .unwrap()
            .map(|m| i64::from(m.affection)),
        Some(2),
        "affection counted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_answer_and_strangers() {
    let (app, user, token) = start(0).await;
    let (status, p) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("nothing_to_answer"))
    );
    let (status, _) = app
        .post(
            "/api/v1/conversations/hugo/reply",
            Some(&token),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no match, no conversation");
    say(&app, user, "Bonjour").await;
    let stranger = app.token_for(Uuid::new_v4());
    assert_eq!(
        app.post(REPLY, Some(&stranger), Value::Null).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(character_replies(&app, user).await.is_empty());
}

#[test]
fn the_openapi_document_is_complete() {
    let doc = ai::openapi();
    assert_eq!(
        service_kit::openapi::dangling_refs(&doc),
        Vec::<String>::new()
    );
    assert!(
        doc.paths
            .paths
            .contains_key("/api/v1/conversations/{character_id}/reply")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_rewrites_the_reply_in_place_without_counting_twice() {
    let (app, user, token) = start(0).await;
    say(&app, user, "Je m'appelle Léa et j'aime la montagne.").await;
    let (_, first) = app.post(REPLY, Some(&token), Value::Null).await;
    let memories_before = {
        app.kit
            .store
            .memories()
            .list(user, "sophia", None, 10)
            .await
            .unwrap()
            .items
            .len()
    };
    let mut contents = std::collections::HashSet::new();
    contents.insert(first["content"].as_str().unwrap().to_owned());
    for _ in 0..3 {
        let (status, swiped) = app
            .post(
                &format!("{REPLY}?regenerate=true"),
                Some(&token),
                Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{swiped}");
        assert_eq!(swiped["id"], first["id"], "the same message, rewritten");
        contents.insert(swiped["content"].as_str().unwrap().to_owned());
        let page = app
            .kit
            .store
            .conversations()
            .page(user, "sophia", None, 10)
            .await
            .unwrap();
        assert_eq!(
            page.items[0].content,
            swiped["content"].as_str().unwrap(),
            "the cached window shows the new words"
        );
    }
    assert!(
        contents.len() >= 2,
        "a swipe gives another reply: {contents:?}"
    );
    assert_eq!(character_replies(&app, user).await.len(), 1);
    assert_eq!(
        app.kit
            .store
            .matches()
            .get(user, "sophia")
            .await
            .unwrap()
            .map(|m| i64::from(m.affection)),
        Some(2),
        "affection as for one reply"
    );
    assert_eq!(
        app.kit
            .store
            .users()
            .profile(user)
            .await
            .unwrap()
            .unwrap()
            .xp,
        10,
        "XP as for one reply"
    );
    let memories_after = app
        .kit
        .store
        .memories()
        .list(user, "sophia", None, 10)
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(memories_after, memories_before, "memories not drawn twice");
    let (status, again) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let latest = app
        .kit
        .store
        .conversations()
        .page(user, "sophia", None, 1)
        .await
        .unwrap()
        .items[0]
        .content
        .clone();
    assert_eq!(
        again["content"],
        latest.as_str(),
        "asking again returns the latest version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_cut_at_max_tokens_and_counted_against_a_daily_quota() {
    let limits = ai::generate::Limits {
        max_tokens: 3,
        per_user_per_day: 2,
        ..Default::default()
    };
    let (app, user, token) = start_limited(0, limits).await;
    say(
        &app,
        user,
        "Raconte-moi une longue histoire, s'il te plaît.",
    )
    .await;
    let (status, reply) = app.post(REPLY, Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let words = reply["content"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .count();
    assert!(words <= 3, "cut at three tokens: {reply}");
    // Asking again for the same reply costs nothing.
    assert_eq!(
        app.post(REPLY, Some(&token), Value::Null).await.0,
        StatusCode::OK
    );
    // A swipe is a new generation: the second of two.
    let swipe = format!("{REPLY}?regenerate=true");
    assert_eq!(
        app.post(&swipe, Some(&token), Value::Null).await.0,
        StatusCode::CREATED
    );
    let (status, p) = app.post(&swipe, Some(&token), Value::Null).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "the day's quota is spent: {p}"
    );
    say(&app, user, "Et maintenant ?").await;
    assert_eq!(
        app.post(REPLY, Some(&token), Value::Null).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}
