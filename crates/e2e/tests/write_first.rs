//! Characters who write first, with the real binaries: one message per silence through the
//! gateway (the caches show it at once), exactly once with two ai replicas racing, once after
//! a replica is killed mid-message, no pile-up after a week of downtime, never at night in the
//! user's time zone, and never to a user or a match that turned it off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::Timelike;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use e2e::{Options, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(s: &Stack, sql: &str) -> i64 {
    let mut conn = s.conn().await;
    diesel::sql_query(sql)
        .get_result::<N>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// The settings that make a silence two seconds long and check every 100 ms.
fn fast(extra: &[(&'static str, &str)]) -> Options {
    let mut env: Vec<(&'static str, String)> = vec![
        ("AI_WRITE_FIRST_AFTER_S", "2".into()),
        ("AI_WRITE_FIRST_POLL_MS", "100".into()),
        ("AI_WRITE_FIRST_QUIET_HOURS", "off".into()),
        ("AI_TOKEN_DELAY_MS", "0".into()),
        ("RUST_LOG", "warn,ai::write_first=info".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Options {
        env,
        ..Options::default()
    }
}

/// The character's messages in the conversation, oldest first, through the gateway.
async fn from_character(s: &Stack, token: &str, character: &str) -> Vec<Value> {
    let (status, page) = s
        .get(
            &format!("/api/v1/conversations/{character}/messages?limit=50"),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut items: Vec<Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "character")
        .cloned()
        .collect();
    items.reverse();
    items
}

async fn wait_until<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn show(method: &str, path: &str, body: Option<&Value>, status: StatusCode, answer: &Value) {
    match body {
        Some(b) => println!("> {method} {path} {b}"),
        None => println!("> {method} {path}"),
    }
    println!("< {} {answer}", status.as_u16());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_silence_the_character_writes_once_and_the_caches_show_it() {
    let s = Stack::with(fast(&[])).await;
    let lea = s.matched("lea@example.com", "sophia").await;
    let (status, settings) = s
        .call(
            Method::PUT,
            "/api/v1/write-first",
            Some(&lea),
            Some(json!({ "time_zone": "Europe/Paris" })),
        )
        .await;
    show(
        "PUT",
        "/api/v1/write-first",
        Some(&json!({ "time_zone": "Europe/Paris" })),
        status,
        &settings,
    );
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["time_zone"], "Europe/Paris");
    assert_eq!(settings["enabled"], true);
    assert_eq!(settings["default_after_seconds"], 2);

    // A greeting on match, if any, is not the character writing first.
    let greeted = from_character(&s, &lea, "sophia").await.len();
    let said = json!({ "content": "Demain j'ai mon entretien d'embauche à la bibliothèque." });
    let (status, sent) = s
        .post(
            "/api/v1/conversations/sophia/messages",
            Some(&lea),
            said.clone(),
        )
        .await;
    show(
        "POST",
        "/api/v1/conversations/sophia/messages",
        Some(&said),
        status,
        &sent,
    );
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    // The window, the match list and the unread count are cached before the silence.
    let _ = s.get("/api/v1/conversations/sophia/messages", &lea).await;
    let (_, before) = s.get("/api/v1/matches", &lea).await;
    let unread_before = before[0]["unread_count"].as_i64().unwrap_or(0);

    wait_until(
        "the character writes first",
        Duration::from_secs(20),
        || async { from_character(&s, &lea, "sophia").await.len() > greeted },
    )
    .await;
    let first = from_character(&s, &lea, "sophia").await.split_off(greeted);
    assert_eq!(first.len(), 1, "{first:?}");
    println!("< the character wrote first: {}", first[0]);

    // The caches were updated in place: the match list shows it with one more unread.
    let (status, matches) = s.get("/api/v1/matches", &lea).await;
    show("GET", "/api/v1/matches", None, status, &matches);
    assert_eq!(matches[0]["last_message_id"], first[0]["id"], "{matches}");
    assert_eq!(
        matches[0]["unread_count"].as_i64().unwrap(),
        unread_before + 1,
        "{matches}"
    );
    let (status, state) = s.get("/api/v1/write-first/sophia", &lea).await;
    show("GET", "/api/v1/write-first/sophia", None, status, &state);
    assert_eq!(state["latest"]["status"], "done", "{state}");
    assert_eq!(state["latest"]["message_id"], first[0]["id"]);

    // Never twice in a row: three more silences pass, still one message.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(from_character(&s, &lea, "sophia").await.len(), greeted + 1);

    // The user answers; after another full silence, the character writes again.
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&lea),
        json!({ "content": "Ça s'est bien passé, merci !" }),
    )
    .await;
    wait_until(
        "a second message after the user's",
        Duration::from_secs(20),
        || async { from_character(&s, &lea, "sophia").await.len() == greeted + 2 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(from_character(&s, &lea, "sophia").await.len(), greeted + 2);

    // Someone else's match, a bad zone, a silence out of range.
    let max = s.account("max@example.com").await;
    let (status, _) = s.get("/api/v1/write-first/sophia", &max).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .call(
            Method::PUT,
            "/api/v1/write-first/sophia",
            Some(&max),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let bad = json!({ "time_zone": "Mars/Olympus_Mons" });
    let (status, problem) = s
        .call(
            Method::PUT,
            "/api/v1/write-first",
            Some(&lea),
            Some(bad.clone()),
        )
        .await;
    show("PUT", "/api/v1/write-first", Some(&bad), status, &problem);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _) = s
        .call(
            Method::PUT,
            "/api/v1/write-first/sophia",
            Some(&lea),
            Some(json!({ "enabled": true, "after_seconds": 5 })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Users, matches and a conversation of one old message each, written straight into
/// PostgreSQL (as a week of silence would leave them). Their ids.
async fn silent_matches(s: &Stack, n: usize, silent_for: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let email = format!("silent{i}-{}@example.com", uuid::Uuid::new_v4().simple());
        let mut conn = s.conn().await;
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = Text)]
            id: String,
        }
        let id: Id = diesel::sql_query(format!(
            "WITH u AS (INSERT INTO users (email, password_hash, display_name) \
             VALUES ('{email}', 'x', 'Silent') RETURNING id), \
             m AS (INSERT INTO matches (user_id, character_id) SELECT id, 'hugo' FROM u RETURNING user_id), \
             c AS (INSERT INTO chat_messages (user_id, character_id, sender, content, is_read, created_at) \
                   SELECT user_id, 'hugo', 'user'::message_sender, 'Je pars en randonnée demain.', true, now() - interval '{silent_for}' FROM m) \
             SELECT id::text AS id FROM u"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        ids.push(id.id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_write_each_silence_exactly_once() {
    // The stack's ai stays off; two replicas of their own race for the same nudges.
    let s = Stack::with(fast(&[("AI_WRITE_FIRST", "false")])).await;
    let users = silent_matches(&s, 40, "3 days").await;
    let on = [("AI_WRITE_FIRST", "true".to_owned())];
    let a = s.ai.twin(&s.http, "ai-a", &on).await;
    let b = s.ai.twin(&s.http, "ai-b", &on).await;
    wait_until(
        "every silence answered",
        Duration::from_secs(60),
        || async {
            count(&s, "SELECT count(*) AS n FROM nudges WHERE status = 'done'").await == 40
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages = count(
        &s,
        "SELECT count(*) AS n FROM chat_messages WHERE sender = 'character'",
    )
    .await;
    assert_eq!(messages, 40, "one message per silent match");
    let most = count(
        &s,
        "SELECT coalesce(max(c), 0) AS n FROM (SELECT count(*) AS c FROM chat_messages \
         WHERE sender = 'character' GROUP BY user_id, character_id) x",
    )
    .await;
    assert_eq!(most, 1, "no match got two");
    assert_eq!(count(&s, "SELECT count(*) AS n FROM nudges").await, 40);
    let (wa, wb) = (
        a.log().matches("a character wrote first").count(),
        b.log().matches("a character wrote first").count(),
    );
    println!(
        "replica a wrote {wa}, replica b wrote {wb}, for {} users",
        users.len()
    );
    assert_eq!(wa + wb, 40, "each nudge written by one replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_message_and_a_week_of_downtime_make_one_message_each() {
    // Writing a message takes seconds (a slow model): time to kill the writer mid-way.
    let mut s = Stack::with(fast(&[
        ("AI_TOKEN_DELAY_MS", "300"),
        ("AI_WRITE_FIRST_LEASE_MS", "1500"),
    ]))
    .await;
    // A week of silence while nothing ran: a silence of 2 s passed about 300,000 times.
    s.ai.kill();
    silent_matches(&s, 3, "7 days").await;
    s.ai.restart(&s.http).await;
    wait_until("a nudge being written", Duration::from_secs(30), || async {
        count(
            &s,
            "SELECT count(*) AS n FROM nudges WHERE status = 'running'",
        )
        .await
            > 0
    })
    .await;
    s.ai.kill();
    let running = count(
        &s,
        "SELECT count(*) AS n FROM nudges WHERE status = 'running'",
    )
    .await;
    assert!(running >= 1);
    s.ai.restart(&s.http).await;
    wait_until("all three answered", Duration::from_secs(90), || async {
        count(&s, "SELECT count(*) AS n FROM nudges WHERE status = 'done'").await == 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(
            &s,
            "SELECT count(*) AS n FROM chat_messages WHERE sender = 'character'"
        )
        .await,
        3,
        "one message per silent match, whatever the downtime and the kill"
    );
    let retaken = count(&s, "SELECT count(*) AS n FROM nudges WHERE attempts >= 2").await;
    assert!(retaken >= 1, "the killed writer's nudge was taken over");
    assert_eq!(count(&s, "SELECT count(*) AS n FROM nudges").await, 3);
}

/// An `Etc/GMT` zone whose local hour now is within `hours` (offsets −12 … +14 cover every
/// hour of the day).
fn zone_where(hours: std::ops::Range<u32>) -> (String, u32) {
    let utc = chrono::Utc::now().hour() as i32;
    (-12..=14)
        .find_map(|offset: i32| {
            let local = (utc + offset).rem_euclid(24) as u32;
            hours.contains(&local).then(|| {
                let name = match offset {
                    0 => "UTC".to_owned(),
                    o if o > 0 => format!("Etc/GMT-{o}"),
                    o => format!("Etc/GMT+{}", -o),
                };
                (name, local)
            })
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_at_night_and_never_when_turned_off() {
    let s = Stack::with(fast(&[("AI_WRITE_FIRST_QUIET_HOURS", "22-8")])).await;
    let (day_zone, _) = zone_where(10..18);
    let (night_zone, night_hour) = zone_where(1..6);
    let mut tokens = Vec::new();
    for (who, zone) in [
        ("day", &day_zone),
        ("night", &night_zone),
        ("optout", &day_zone),
        ("matchoff", &day_zone),
        ("patient", &day_zone),
    ] {
        let t = s.matched(&format!("{who}@example.com"), "malik").await;
        let (status, _) = s
            .call(
                Method::PUT,
                "/api/v1/write-first",
                Some(&t),
                Some(json!({ "time_zone": zone })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        tokens.push(t);
    }
    let greeted = from_character(&s, &tokens[0], "malik").await.len();
    let [day, night, optout, matchoff, patient] = tokens.try_into().unwrap();
    let (status, off) = s
        .call(
            Method::PUT,
            "/api/v1/write-first",
            Some(&optout),
            Some(json!({ "enabled": false })),
        )
        .await;
    show(
        "PUT",
        "/api/v1/write-first",
        Some(&json!({ "enabled": false })),
        status,
        &off,
    );
    assert_eq!(off["enabled"], false);
    let (status, m) = s
        .call(
            Method::PUT,
            "/api/v1/write-first/malik",
            Some(&matchoff),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let body = json!({ "enabled": true, "after_seconds": 3600 });
    let (status, m) = s
        .call(
            Method::PUT,
            "/api/v1/write-first/malik",
            Some(&patient),
            Some(body.clone()),
        )
        .await;
    show("PUT", "/api/v1/write-first/malik", Some(&body), status, &m);
    assert_eq!(m["effective_after_seconds"], 3600, "{m}");
    for t in [&day, &night, &optout, &matchoff, &patient] {
        let (status, _) = s
            .post(
                "/api/v1/conversations/malik/messages",
                Some(t),
                json!({ "content": "Tu joues quoi ce soir au club ?" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    wait_until(
        "the day user's message",
        Duration::from_secs(20),
        || async { from_character(&s, &day, "malik").await.len() > greeted },
    )
    .await;
    // Time for every other match to be planned and claimed several times over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (who, t) in [
        ("night", &night),
        ("opted out", &optout),
        ("match off", &matchoff),
        ("patient", &patient),
    ] {
        assert_eq!(
            from_character(&s, t, "malik").await.len(),
            greeted,
            "{who} got a message"
        );
    }
    // The night user's message waits for 08:00 where they are.
    let (status, state) = s.get("/api/v1/write-first/malik", &night).await;
    show("GET", "/api/v1/write-first/malik", None, status, &state);
    assert_eq!(state["latest"]["status"], "queued", "{state}");
    let run_after: chrono::DateTime<chrono::Utc> = state["latest"]["run_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wait = run_after - chrono::Utc::now();
    let expected = 8 - night_hour as i64;
    assert!(
        wait > chrono::Duration::hours(expected - 1) && wait <= chrono::Duration::hours(expected),
        "{night_zone} at {night_hour}h: runs after {run_after} (in {wait})"
    );
    // Opted out and turned off: nothing even planned.
    let (_, state) = s.get("/api/v1/write-first/malik", &optout).await;
    assert_eq!(state["latest"], Value::Null, "{state}");
    let (_, state) = s.get("/api/v1/write-first/malik", &matchoff).await;
    assert_eq!(state["latest"], Value::Null, "{state}");
}
