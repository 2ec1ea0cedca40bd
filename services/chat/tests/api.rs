//! The chat service over real HTTP, on an ephemeral port, against a database and a Redis
//! prefix of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service_kit::testing::TestApp;
use uuid::Uuid;

async fn start() -> TestApp {
    let app = TestApp::start("chat", chat::API).await;
    app.with_catalogue().await;
    app
}

async fn user(app: &TestApp, email: &str) -> (Uuid, String) {
    app.matched(email, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_from_match_to_search() {
    let app = start().await;
    let (_, t) = user(&app, "a@example.com").await;

    let (status, catalogue) = app
        .call(Method::GET, "/api/v1/characters", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "the catalogue is public");
    assert!(
        catalogue
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "sophia")
    );
    let (status, sophia) = app
        .call(Method::GET, "/api/v1/characters/sophia", None, None)
        .await;
    assert_eq!(
        (status, sophia["name"].as_str()),
        (StatusCode::OK, Some("Sophia"))
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/characters/nobody", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let (status, m) = app
        .post(
            "/api/v1/matches",
            Some(&t),
            json!({ "character_id": "sophia" }),
        )
        .await;
    assert_eq!(
        (status, m["affection"].as_i64()),
        (StatusCode::CREATED, Some(0))
    );
    assert_eq!(
        app.post(
            "/api/v1/matches",
            Some(&t),
            json!({ "character_id": "sophia" })
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            "/api/v1/matches",
            Some(&t),
            json!({ "character_id": "nobody" })
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let client_id = Uuid::new_v4();
    let send = json!({ "content": "J'adore les croissants du marché", "client_id": client_id });
    let (status, first) = app
        .post(
            "/api/v1/conversations/sophia/messages",
            Some(&t),
            send.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app
        .post("/api/v1/conversations/sophia/messages", Some(&t), send)
        .await;
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &first),
        "the same client_id returns the stored message"
    );
    for i in 0..3 {
        app.post(
            "/api/v1/conversations/sophia/messages",
            Some(&t),
            json!({ "content": format!("message {i}") }),
        )
        .await;
    }

    let (status, page) = app
        .get("/api/v1/conversations/sophia/messages?limit=2", &t)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["content"], "message 2");
    let next = page["next"].as_str().unwrap();
    let (_, older) = app
        .get(
            &format!("/api/v1/conversations/sophia/messages?limit=2&before={next}"),
            &t,
        )
        .await;
    assert_eq!(older["items"][0]["content"], "message 0");
    assert_eq!(
        older["items"][1]["content"],
        "J'adore les croissants du marché"
    );

    let (_, list) = app.get("/api/v1/matches", &t).await;
    assert_eq!(list[0]["last_message_content"], "message 2");

    let (status, hits) = app.get("/api/v1/search/messages?q=croissant", &t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert!(
        hits[0]["headline"]
            .as_str()
            .unwrap()
            .contains("<mark>croissants</mark>"),
        "{hits}"
    );

    let (status, read) = app
        .post("/api/v1/conversations/sophia/read", Some(&t), Value::Null)
        .await;
    assert_eq!(
        (status, read["marked_read"].as_i64()),
        (StatusCode::OK, Some(1)),
        "the greeting alone was unread: the user's own messages are stored read"
    );

    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/conversations/sophia/typing",
            Some(&t),
            Some(json!({ "typing": true })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/conversations/sophia/typing", &t).await.1["typing"],
        "user"
    );

    let (status, memory) = app
        .post(
            "/api/v1/memories",
            Some(&t),
            json!({ "character_id": "sophia", "content": "Aime la randonnée" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{memory}");
    let id = memory["id"].as_i64().unwrap();
    let (_, found) = app.get("/api/v1/search/memories?q=randonnées", &t).await;
    assert_eq!(found[0]["id"], id);
    let (status, edited) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/memories/{id}"),
            Some(&t),
            Some(json!({ "content": "Aime la Bretagne" })),
        )
        .await;
    assert_eq!(
        (status, edited["content"].as_str()),
        (StatusCode::OK, Some("Aime la Bretagne"))
    );
    let (_, listed) = app.get("/api/v1/memories?character_id=sophia", &t).await;
    assert_eq!(listed["items"][0]["content"], "Aime la Bretagne");
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/memories/{id}"),
            Some(&t),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/memories/{id}"),
            Some(&t),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_user_sees_none_of_the_first_users_data() {
    let app = start().await;
    let (_, a) = user(&app, "a@example.com").await;
    let (_, b) = user(&app, "b@example.com").await;
    app.post(
        "/api/v1/matches",
        Some(&a),
        json!({ "character_id": "hugo" }),
    )
    .await;
    app.post(
        "/api/v1/conversations/hugo/messages",
        Some(&a),
        json!({ "content": "secret de a" }),
    )
    .await;
    let (_, memory) = app
        .post(
            "/api/v1/memories",
            Some(&a),
            json!({ "character_id": "hugo", "content": "secret" }),
        )
        .await;
    let id = memory["id"].as_i64().unwrap();

    assert_eq!(
        app.get("/api/v1/conversations/hugo/messages", &b).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(
            "/api/v1/conversations/hugo/messages",
            Some(&b),
            json!({ "content": "x" })
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post("/api/v1/conversations/hugo/read", Some(&b), Value::Null)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/conversations/hugo/typing", &b).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/api/v1/matches", &b).await.1, json!([]));
    assert_eq!(
        app.get("/api/v1/search/messages?q=secret", &b).await.1,
        json!([])
    );
    assert_eq!(
        app.get("/api/v1/search/memories?q=secret", &b).await.1,
        json!([])
    );
    assert_eq!(
        app.get("/api/v1/memories?character_id=hugo", &b).await.1["items"],
        json!([])
    );
    let patch = app
        .call(
            Method::PATCH,
            &format!("/api/v1/memories/{id}"),
            Some(&b),
            Some(json!({ "content": "volé" })),
        )
        .await;
    assert_eq!(patch.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/memories/{id}"),
            Some(&b),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // Still there for its owner, unchanged.
    assert_eq!(
        app.get("/api/v1/memories?character_id=hugo", &a).await.1["items"][0]["content"],
        "secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let app = start().await;
    let (_, t) = user(&app, "a@example.com").await;
    app.post(
        "/api/v1/matches",
        Some(&t),
        json!({ "character_id": "sophia" }),
    )
    .await;
    let path = "/api/v1/conversations/sophia/messages";
    for (body, status) in [
        (json!({ "content": "" }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "content": "   " }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "content": "x".repeat(4001) }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "content": 42 }), StatusCode::BAD_REQUEST),
        (
            json!({ "content": "ok", "client_id": "not-a-uuid" }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "text": "wrong field" }), StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            app.post(path, Some(&t), body.clone()).await.0,
            status,
            "{body}"
        );
    }
    let raw = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get(&format!("{path}?before=garbage"), &t).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get(&format!("{path}?limit=many"), &t).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/api/v1/search/messages", &t).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/api/v1/search/messages?q=%20", &t).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/api/v1/memories", &t).await.0,
        StatusCode::BAD_REQUEST,
        "character_id is required"
    );
    assert_eq!(
        app.call(Method::DELETE, "/api/v1/memories/abc", Some(&t), None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/matches", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, page) = app.get(path, &t).await;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(1),
        "nothing was stored but the greeting: {page}"
    );
}

#[test]
fn the_openapi_document_is_complete() {
    let doc = chat::openapi();
    assert_eq!(
        service_kit::openapi::dangling_refs(&doc),
        Vec::<String>::new()
    );
    assert_eq!(doc.paths.paths.len(), 15, "distinct paths");
}

/// The catalogue shows the public characters to everyone and, with a token, the caller's own
/// first; nobody else ever sees them (not through the shared catalogue cache either), and
/// matching, chatting and reading them are the owner's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_characters_are_in_their_owners_catalogue_only() {
    use db_core::models::CharacterDraft;

    let app = start().await;
    let (alice_id, alice) = user(&app, "alice@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    let (_, public) = app
        .call(Method::GET, "/api/v1/characters", None, None)
        .await;
    let public = public.as_array().unwrap().len();
    let mira = app
        .kit
        .store
        .characters()
        .create(
            alice_id,
            &CharacterDraft {
                name: "Mira".into(),
                tagline: "Lighthouse keeper".into(),
                persona: "You are Mira.".into(),
                greeting: "Come in.".into(),
                tags: vec!["sea".into()],
                example_dialogue: "{{char}}: Hello.".into(),
                card_extras: json!({}),
            },
        )
        .await
        .unwrap();

    // Alice: her own first, with everything; public ones without persona.
    let res = app
        .http
        .get(format!("{}/api/v1/characters", app.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["vary"], "Authorization");
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("private")
    );
    let list: Value = res.json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), public + 1);
    assert_eq!(
        (
            list[0]["id"].as_str(),
            list[0]["owned"].as_bool(),
            list[0]["persona"].as_str()
        ),
        (Some(mira.id.as_str()), Some(true), Some("You are Mira."))
    );
    assert!(
        list[1..]
            .iter()
            .all(|c| c["owned"] == false && c.get("persona").is_none())
    );
    // Bob and anonymous callers: the public catalogue only, before and after Alice's read
    // filled the caches.
    for token in [Some(bob.as_str()), None] {
        let (status, list) = app
            .call(Method::GET, "/api/v1/characters", token, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), public, "{token:?}");
        assert!(!list.to_string().contains(&mira.id));
        let (status, p) = app
            .call(
                Method::GET,
                &format!("/api/v1/characters/{}", mira.id),
                token,
                None,
            )
            .await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }
    let (status, one) = app
        .get(&format!("/api/v1/characters/{}", mira.id), &alice)
        .await;
    assert_eq!(
        (status, one["example_dialogue"].as_str()),
        (StatusCode::OK, Some("{{char}}: Hello."))
    );
    // A token that is sent must be valid, even where none is needed.
    let (status, _) = app
        .call(Method::GET, "/api/v1/characters", Some("not-a-token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bob cannot match with it or write to it; Alice can, like with anyone.
    let body = json!({ "character_id": mira.id });
    let (status, p) = app.post("/api/v1/matches", Some(&bob), body.clone()).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let send = format!("/api/v1/conversations/{}/messages", mira.id);
    let (status, _) = app.post(&send, Some(&bob), json!({"content": "hi"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.post("/api/v1/matches", Some(&alice), body).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, sent) = app
        .post(&send, Some(&alice), json!({"content": "Bonsoir"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (_, matches) = app.get("/api/v1/matches", &alice).await;
    assert!(matches.to_string().contains(&mira.id));
}
