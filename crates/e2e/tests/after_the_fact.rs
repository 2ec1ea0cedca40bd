//! What a person does to a conversation after the fact, through the gateway, real processes
//! each: the greeting a match opens with (once, retries included), editing and deleting one's
//! own messages (memories go with them), mark-all-read, every version of a reply kept (swipe,
//! continue, pick) with affection and XP counted once, and unmatch (rows, caches and stored
//! files gone). With `E2E_TRANSCRIPT=path`, the requests and answers are written there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use e2e::Stack;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The requests and answers of the run, as a person reading the closing note would want them.
#[derive(Default)]
struct Tape(Vec<String>);

impl Tape {
    fn say(&mut self, text: &str) {
        self.0.push(format!("\n# {text}"));
    }

    async fn call(
        &mut self,
        s: &Stack,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let shown = body
            .as_ref()
            .map(|b| format!(" {}", short(b)))
            .unwrap_or_default();
        self.0.push(format!("> {method} {path}{shown}"));
        let (status, answer) = s.call(method, path, token, body).await;
        self.0.push(format!(
            "< {} {}",
            status.as_u16(),
            if answer.is_null() {
                String::new()
            } else {
                short(&answer)
            }
        ));
        (status, answer)
    }

    /// A reply as server-sent events: the stream's status, its `done` message and how many
    /// `token` events came before it.
    async fn stream(&mut self, s: &Stack, path: &str, token: &str) -> (StatusCode, Value, usize) {
        self.0
            .push(format!("> POST {path}  (Accept: text/event-stream)"));
        let res = s
            .http
            .post(format!("{}{path}", s.gateway))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let events: Vec<&str> = text
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .collect();
        let tokens = events.iter().filter(|e| e.contains("event: token")).count();
        let done = events
            .iter()
            .find(|e| e.contains("event: done"))
            .and_then(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .unwrap_or(Value::Null);
        let mut shown: Vec<String> = events
            .iter()
            .take(2)
            .map(|e| e.replace('\n', " | "))
            .collect();
        if events.len() > 3 {
            shown.push(format!("… {} more token events …", events.len() - 3));
        }
        if let Some(last) = events.last().filter(|_| events.len() > 2) {
            shown.push(last.replace('\n', " | "));
        }
        self.0
            .push(format!("< {} text/event-stream", status.as_u16()));
        for e in shown {
            self.0.push(format!("<   {e}"));
        }
        (status, done, tokens)
    }

    fn save(&self) {
        if let Ok(path) = std::env::var("E2E_TRANSCRIPT") {
            std::fs::write(path, self.0.join("\n") + "\n").unwrap();
        }
    }
}

/// JSON on one line, long strings cut.
fn short(v: &Value) -> String {
    fn cut(v: &Value) -> Value {
        match v {
            Value::String(s) if s.chars().count() > 90 => {
                Value::String(format!("{}…", s.chars().take(90).collect::<String>()))
            }
            Value::Array(a) => Value::Array(a.iter().map(cut).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), cut(v))).collect()),
            v => v.clone(),
        }
    }
    cut(v).to_string()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(s: &Stack, sql: &str) -> i64 {
    let mut conn = s.conn().await;
    diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files_under(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_edited_after_the_fact_through_the_gateway() {
    let s = Stack::start().await;
    let mut t = Tape::default();
    let lea_login = s.sign_up("lea@example.com").await;
    let lea = lea_login["access_token"].as_str().unwrap().to_owned();
    let lea_id = lea_login["user"]["id"].as_str().unwrap().to_owned();
    let hugo = s.account("hugo@example.com").await;
    let (lea_t, hugo_t) = (lea.as_str(), hugo.as_str());
    let (lea, hugo) = (Some(lea_t), Some(hugo_t));

    // 1. A greeting on match, once.
    t.say("A new match opens with the character's greeting; the retried request adds nothing");
    let (status, _) = t
        .call(
            &s,
            Method::POST,
            "/api/v1/matches",
            lea,
            Some(json!({ "character_id": "sophia" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = t
        .call(
            &s,
            Method::POST,
            "/api/v1/matches",
            lea,
            Some(json!({ "character_id": "sophia" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a retry finds the match");
    let (_, page) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/conversations/sophia/messages",
            lea,
            None,
        )
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["sender"], "character");
    assert!(
        items[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Coucou !")
    );
    let greeting_id = items[0]["id"].as_i64().unwrap();

    // 2. Edit and delete one's own messages.
    t.say("Edit one's own message: the conversation and search read the new text");
    let (status, sent) = t
        .call(
            &s,
            Method::POST,
            "/api/v1/conversations/sophia/messages",
            lea,
            Some(json!({ "content": "Je m'appelle Léa. J'adore la pluie sur les quais." })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mine = sent["id"].as_i64().unwrap();
    let (status, edited) = t
        .call(
            &s,
            Method::PATCH,
            &format!("/api/v1/messages/{mine}"),
            lea,
            Some(json!({ "content": "Je m'appelle Léa. J'adore l'orage sur les quais." })),
        )
        .await;
    assert_eq!(
        (status, edited["content"].as_str()),
        (
            StatusCode::OK,
            Some("Je m'appelle Léa. J'adore l'orage sur les quais.")
        )
    );
    let (_, page) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/conversations/sophia/messages?limit=1",
            lea,
            None,
        )
        .await;
    assert_eq!(page["items"][0]["content"], edited["content"]);
    let (_, hits) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/search/messages?q=orage",
            lea,
            None,
        )
        .await;
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    let (_, hits) = s.get("/api/v1/search/messages?q=pluie", lea_t).await;
    assert_eq!(hits, json!([]), "the old text is not found any more");

    t.say(
        "Refused edits: a character's message, NUL, too long, someone else's message, no such id",
    );
    let (status, p) = t
        .call(
            &s,
            Method::PATCH,
            &format!("/api/v1/messages/{greeting_id}"),
            lea,
            Some(json!({ "content": "Je réécris ta réplique" })),
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("characters_message"))
    );
    let (status, _) = t
        .call(
            &s,
            Method::PATCH,
            &format!("/api/v1/messages/{mine}"),
            lea,
            Some(json!({ "content": "a\u{0}b" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/messages/{mine}"),
            lea,
            Some(json!({ "content": "é".repeat(4001) })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "oversize");
    t.0.push(format!(
        "> PATCH /api/v1/messages/{mine} {{\"content\":\"é\" × 4001}}"
    ));
    t.0.push("< 422 (validation_failed, field content)".into());
    for (method, body) in [
        (Method::PATCH, Some(json!({ "content": "pirate" }))),
        (Method::DELETE, None),
    ] {
        let (status, p) = t
            .call(&s, method, &format!("/api/v1/messages/{mine}"), hugo, body)
            .await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }
    let (status, _) = t
        .call(&s, Method::DELETE, "/api/v1/messages/999999999", lea, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .call(Method::DELETE, "/api/v1/messages/abc", lea, None)
        .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(
        count(
            &s,
            &format!(
                "SELECT count(*) FROM chat_messages WHERE id = {mine} AND content LIKE '%orage%'"
            )
        )
        .await,
        1,
        "nothing a refused edit touched changed"
    );

    // 3. Swipes that are kept.
    t.say("Nothing to continue before the first reply");
    let (status, p) = t
        .call(
            &s,
            Method::POST,
            "/api/v1/conversations/sophia/continue",
            lea,
            None,
        )
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("nothing_to_continue"))
    );
    t.say("The character replies (streamed); affection and XP are counted");
    let (status, first, tokens) = t
        .stream(&s, "/api/v1/conversations/sophia/reply", lea_t)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(tokens >= 3, "{tokens} tokens");
    let reply_id = first["id"].as_i64().unwrap();
    let (_, matched) = t.call(&s, Method::GET, "/api/v1/matches", lea, None).await;
    assert_eq!(matched[0]["affection"], 2);
    let (_, me) = s.get("/api/v1/users/me", lea_t).await;
    assert_eq!(me["xp"], 10, "{me}");

    t.say("Regenerate: a new version of the same reply; the first is kept");
    let (status, second, _) = t
        .stream(
            &s,
            "/api/v1/conversations/sophia/reply?regenerate=true",
            lea_t,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        second["id"].as_i64(),
        Some(reply_id),
        "the same message, rewritten"
    );

    t.say("Continue: the reply goes on (only the new text streams; done has the whole reply)");
    let (status, continued, tokens) = t
        .stream(&s, "/api/v1/conversations/sophia/continue", lea_t)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(tokens >= 1);
    let whole = continued["content"].as_str().unwrap();
    let before = second["content"].as_str().unwrap();
    assert!(
        whole.starts_with(before) && whole.len() > before.len(),
        "{whole:?} extends {before:?}"
    );

    t.say("The versions of the reply; pick the first one back");
    let (status, alternatives) = t
        .call(
            &s,
            Method::GET,
            &format!("/api/v1/messages/{reply_id}/alternatives"),
            lea,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let alternatives = alternatives.as_array().unwrap().clone();
    assert_eq!(alternatives.len(), 3, "{alternatives:?}");
    assert_eq!(
        alternatives
            .iter()
            .map(|a| (
                a["content"].clone(),
                a["picked"].clone(),
                a["continued"].clone()
            ))
            .collect::<Vec<_>>(),
        vec![
            (first["content"].clone(), json!(false), json!(false)),
            (second["content"].clone(), json!(false), json!(false)),
            (continued["content"].clone(), json!(true), json!(true)),
        ]
    );
    let first_version = alternatives[0]["id"].as_str().unwrap();
    let (status, picked) = t
        .call(
            &s,
            Method::POST,
            &format!("/api/v1/messages/{reply_id}/alternatives/{first_version}/pick"),
            lea,
            None,
        )
        .await;
    assert_eq!(
        (status, &picked["content"]),
        (StatusCode::OK, &first["content"])
    );
    let (_, page) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/conversations/sophia/messages?limit=1",
            lea,
            None,
        )
        .await;
    assert_eq!(
        page["items"][0]["content"], first["content"],
        "the history reads the pick"
    );
    let (_, again) = s
        .call(
            Method::POST,
            "/api/v1/conversations/sophia/reply",
            lea,
            None,
        )
        .await;
    assert_eq!(
        again["content"], first["content"],
        "asking again returns the picked version"
    );
    let (_, matched) = t.call(&s, Method::GET, "/api/v1/matches", lea, None).await;
    let (_, me) = s.get("/api/v1/users/me", lea_t).await;
    assert_eq!(
        (matched[0]["affection"].as_i64(), me["xp"].as_i64()),
        (Some(2), Some(10)),
        "three versions, counted once"
    );
    assert_eq!(
        count(
            &s,
            &format!("SELECT count(*) FROM generations WHERE reply_message_id = {reply_id}")
        )
        .await,
        3
    );
    t.say("Someone else's reply: every door is a 404");
    let (status, _) = t
        .call(
            &s,
            Method::GET,
            &format!("/api/v1/messages/{reply_id}/alternatives"),
            hugo,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .call(
            &s,
            Method::POST,
            &format!("/api/v1/messages/{reply_id}/alternatives/{first_version}/pick"),
            hugo,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/conversations/sophia/continue",
            hugo,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting one's message takes its memories.
    t.say("Delete one's own message: what the character remembered from it goes too");
    let (_, said) = s
        .post(
            "/api/v1/conversations/sophia/messages",
            lea,
            json!({ "content": "J'habite à Lyon depuis l'hiver." }),
        )
        .await;
    let lyon = said["id"].as_i64().unwrap();
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/conversations/sophia/reply",
            lea,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, memories) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/memories?character_id=sophia",
            lea,
            None,
        )
        .await;
    let remembered = |m: &Value| {
        m["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["content"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        remembered(&memories),
        [
            "J'habite à Lyon depuis l'hiver",
            "J'adore l'orage sur les quais",
            "Je m'appelle Léa"
        ],
        "{memories}"
    );
    let (status, _) = t
        .call(
            &s,
            Method::DELETE,
            &format!("/api/v1/messages/{lyon}"),
            lea,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, memories) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/memories?character_id=sophia",
            lea,
            None,
        )
        .await;
    assert_eq!(
        remembered(&memories),
        ["J'adore l'orage sur les quais", "Je m'appelle Léa"]
    );
    let (_, page) = s.get("/api/v1/conversations/sophia/messages", lea_t).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"].as_i64() != Some(lyon))
    );
    let (_, hits) = s.get("/api/v1/search/messages?q=Lyon", lea_t).await;
    assert_eq!(hits, json!([]));
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/messages/{lyon}"),
            lea,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "gone");

    // 4. Mark all read.
    t.say("Mark every conversation read at once");
    s.post("/api/v1/matches", lea, json!({ "character_id": "hugo" }))
        .await;
    let (_, list) = t.call(&s, Method::GET, "/api/v1/matches", lea, None).await;
    let unread: i64 = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["unread_count"].as_i64().unwrap())
        .sum();
    assert!(unread >= 2, "{list}");
    let (status, marked) = t
        .call(&s, Method::POST, "/api/v1/conversations/read", lea, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(marked["marked_read"].as_i64(), Some(unread));
    assert_eq!(marked["conversations"], json!(["hugo", "sophia"]));
    let (_, list) = t.call(&s, Method::GET, "/api/v1/matches", lea, None).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|m| m["unread_count"] == 0),
        "{list}"
    );
    let (_, hugos) = s.get("/api/v1/matches", hugo_t).await;
    assert_eq!(hugos, json!([]));

    // 5. Unmatch: everything in the match goes, its stored files too.
    t.say("A photo, then unmatch: rows, caches and stored files go; matching again starts afresh");
    let (status, job) = s
        .post(
            "/api/v1/photos/sophia/generate",
            lea,
            json!({ "prompt": "les quais sous l'orage" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, j) = s
            .get(
                &format!("/api/v1/photos/jobs/{}", job["id"].as_str().unwrap()),
                lea_t,
            )
            .await;
        if j["status"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, gallery) = s.get("/api/v1/photos/sophia", lea_t).await;
    let photo = gallery["items"][0]["id"].as_i64().unwrap();
    let rendition = s
        .http
        .get(format!("{}/api/v1/media/{photo}?w=128", s.gateway))
        .bearer_auth(lea_t)
        .send()
        .await
        .unwrap();
    assert_eq!(rendition.status(), StatusCode::OK);
    let files = s.media_dir().join("photos").join(&lea_id);
    assert_eq!(
        files_under(&files),
        2,
        "the photo and its rendition are stored"
    );
    let of_sophia = |table: &str| {
        format!(
            "SELECT count(*) FROM {table} WHERE user_id = '{lea_id}' AND character_id = 'sophia'"
        )
    };
    let tables = [
        "matches",
        "chat_messages",
        "memories",
        "received_photos",
        "generations",
        "photo_jobs",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(count(&s, &of_sophia(table)).await);
    }
    t.0.push(format!("  rows before, {}: {before:?}", tables.join(", ")));
    t.0.push(format!(
        "  files under photos/<lea>/ before: {}",
        files_under(&files)
    ));
    let (status, _) = t
        .call(&s, Method::DELETE, "/api/v1/matches/sophia", hugo, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not Hugo's match");
    let (status, _) = t
        .call(&s, Method::DELETE, "/api/v1/matches/sophia", lea, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut after = Vec::new();
    for table in tables {
        after.push(count(&s, &of_sophia(table)).await);
    }
    assert_eq!(after, vec![0; tables.len()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while files_under(&files) > 0 {
        assert!(Instant::now() < deadline, "the files are still stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.0.push(format!("  rows after: {after:?}"));
    t.0.push(format!(
        "  files under photos/<lea>/ after: {}",
        files_under(&files)
    ));
    // The worker deletes the files, then its rows: wait for both, as for the files.
    while count(&s, "SELECT count(*) FROM storage_deletions").await > 0 {
        assert!(Instant::now() < deadline, "the deletions are still queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&s, "SELECT count(*) FROM storage_deletions").await, 0);
    for path in [
        "/api/v1/conversations/sophia/messages",
        "/api/v1/photos/sophia",
    ] {
        let (status, _) = t.call(&s, Method::GET, path, lea, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, memories) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/memories?character_id=sophia",
            lea,
            None,
        )
        .await;
    assert_eq!(memories["items"], json!([]));
    let (status, _) = s
        .call(Method::GET, &format!("/api/v1/media/{photo}"), lea, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = t.call(&s, Method::GET, "/api/v1/matches", lea, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["character_id"], "hugo");
    let (_, hits) = s.get("/api/v1/search/messages?q=orage", lea_t).await;
    assert_eq!(hits, json!([]));
    let (status, _) = t
        .call(&s, Method::DELETE, "/api/v1/matches/sophia", lea, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already gone");
    let (status, m) = t
        .call(
            &s,
            Method::POST,
            "/api/v1/matches",
            lea,
            Some(json!({ "character_id": "sophia" })),
        )
        .await;
    assert_eq!(
        (status, m["affection"].as_i64()),
        (StatusCode::CREATED, Some(0))
    );
    let (_, page) = t
        .call(
            &s,
            Method::GET,
            "/api/v1/conversations/sophia/messages",
            lea,
            None,
        )
        .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "the greeting alone"
    );
    let (_, me) = s.get("/api/v1/users/me", lea_t).await;
    assert_eq!(me["xp"], 20, "the XP of the two replies stays the user's");

    // Every new endpoint is in the OpenAPI document, once.
    let (_, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    for (path, method) in [
        ("/api/v1/messages/{id}", "patch"),
        ("/api/v1/messages/{id}", "delete"),
        ("/api/v1/messages/{id}/alternatives", "get"),
        (
            "/api/v1/messages/{id}/alternatives/{alternative_id}/pick",
            "post",
        ),
        ("/api/v1/conversations/read", "post"),
        ("/api/v1/matches/{character_id}", "delete"),
        ("/api/v1/conversations/{character_id}/continue", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    t.save();
}
