//! The real `dreamctl` binary against real databases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use db_test::TestDb;

fn dreamctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dreamctl"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn migrate_prints_a_summary_and_is_a_no_op_the_second_time() {
    let db = TestDb::empty().await.unwrap();
    let first = dreamctl(db.url(), &["migrate"]);
    let out = stdout(&first);
    assert!(
        first.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let n = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .count();
    assert!(
        out.contains(&format!("Summary: {n} applied, 0 skipped, 0 failed")),
        "{out}"
    );
    assert!(
        out.contains("applied  2026-11-27-000001_core_tables"),
        "{out}"
    );

    let second = dreamctl(db.url(), &["migrate"]);
    let out = stdout(&second);
    assert!(second.status.success());
    assert!(
        out.contains(&format!("Summary: 0 applied, {n} skipped, 0 failed")),
        "{out}"
    );
}

#[tokio::test]
async fn migrate_fails_loudly_when_a_migration_fails() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    db_core::pool::batch_execute(
        &mut conn,
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261127000002'",
    )
    .await
    .unwrap();
    let run = dreamctl(db.url(), &["migrate"]);
    let out = stdout(&run);
    assert!(!run.status.success(), "{out}");
    assert!(
        out.contains("failed   2026-11-27-000002_chat_messages_conversation_idx"),
        "{out}"
    );
    assert!(out.contains("1 failed"), "{out}");
}

#[tokio::test]
async fn seed_and_demo_print_what_they_did() {
    let db = TestDb::new().await.unwrap();
    let run = dreamctl(
        db.url(),
        &[
            "seed",
            "--users",
            "3",
            "--characters",
            "10",
            "--matches-per-user",
            "2",
            "--messages-per-match",
            "5",
            "--photos-per-match",
            "1",
        ],
    );
    let out = stdout(&run);
    assert!(
        run.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        out.contains("3 users, 10 characters, 6 matches, 30 messages"),
        "{out}"
    );
    let again = dreamctl(db.url(), &["seed", "--users", "3"]);
    assert!(
        !again.status.success(),
        "a seeded database is not seeded twice without --reset"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--reset"));

    let demo = dreamctl(db.url(), &["seed", "--demo"]);
    assert!(demo.status.success());
    assert!(
        stdout(&demo).contains("demo@example.com (created)"),
        "{}",
        stdout(&demo)
    );
}

#[tokio::test]
async fn explain_passes_on_good_plans_and_fails_on_a_sequential_scan() {
    let db = TestDb::seeded().await.unwrap();
    let ok = dreamctl(db.url(), &["explain"]);
    let out = stdout(&ok);
    assert!(ok.status.success(), "{out}");
    assert!(
        out.contains("Index Cond") && out.contains("Execution Time"),
        "plans are printed"
    );
    assert!(
        out.contains("messages.latest (100)") && out.contains("matches.list_with_last_message"),
        "{out}"
    );

    let mut conn = db.conn().await.unwrap();
    db_core::pool::batch_execute(
        &mut conn,
        "DROP INDEX chat_messages_conversation_idx, chat_messages_search_idx",
    )
    .await
    .unwrap();
    let bad = dreamctl(db.url(), &["explain", "--summary"]);
    let out = stdout(&bad);
    assert!(!bad.status.success(), "{out}");
    assert!(out.contains("SEQ SCAN on chat_messages"), "{out}");
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let run = dreamctl("postgres://postgres@127.0.0.1:1/nowhere", &["migrate"]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("error:") && !err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn maintenance_vacuums_and_reports() {
    let db = TestDb::seeded().await.unwrap();
    let dry = dreamctl(db.url(), &["maintenance", "--dry-run"]);
    let out = stdout(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(
        out.contains("would run") && out.contains("VACUUM (ANALYZE) chat_messages"),
        "{out}"
    );
    assert!(
        out.contains("chat_messages_conversation_idx")
            && out.contains("Duplicate or overlapping indexes: none"),
        "{out}"
    );

    let mut conn = db.conn().await.unwrap();
    db_core::pool::batch_execute(
        &mut conn,
        "CREATE INDEX redundant ON received_photos (user_id)",
    )
    .await
    .unwrap();
    let run = dreamctl(db.url(), &["maintenance"]);
    let out = stdout(&run);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("VACUUM (ANALYZE) chat_messages  ("), "{out}");
    assert!(
        out.contains("Overlapping: redundant is a prefix of received_photos_gallery_idx"),
        "{out}"
    );
    let json = dreamctl(db.url(), &["maintenance", "--dry-run", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let messages = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "chat_messages")
        .unwrap();
    assert_eq!(messages["dead_rows"], 0, "vacuumed");
    assert!(messages["live_rows"].as_i64().unwrap() >= 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_shows_live_figures_and_survives_what_is_down() {
    use service_kit::testing::TestApp;
    let app = TestApp::start("chat", chat::API).await;
    app.with_catalogue().await;
    let (_, token) = app.matched("m@example.com", &[]).await;
    app.post(
        "/api/v1/matches",
        Some(&token),
        serde_json::json!({ "character_id": "sophia" }),
    )
    .await;
    for _ in 0..5 {
        app.get("/api/v1/conversations/sophia/messages", &token)
            .await;
    }
    let prefix = app.kit.store.cache().keys().prefix().to_owned();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let monitor = |redis: String, json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dreamctl"));
        cmd.args([
            "monitor",
            "--once",
            "--service",
            &format!("chat={}", app.admin),
            "--service",
        ])
        .arg(format!("auth=http://127.0.0.1:{closed}"))
        .env("REDIS_URL", redis)
        .env("REDIS_KEY_PREFIX", &prefix);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = monitor(db_test::redis_url(), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let svc = |name: &str| {
        snap["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(svc("chat")["status"], "green");
    assert_eq!(svc("chat")["pools"][0]["role"], "primary");
    assert!(svc("chat")["pools"][0]["open"].as_f64().unwrap() >= 1.0);
    assert_eq!(svc("auth")["status"], "down");
    assert_eq!(snap["redis"]["up"], true);
    let families = snap["redis"]["keys"]["families"].as_array().unwrap();
    let count = |f: &str| {
        families.iter().find(|x| x[0] == f).unwrap()[1]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        count("conversation"),
        2,
        "the one cached window and its version key (the greeting bumped it)"
    );
    assert!(count("matches") >= 1);
    assert!(
        snap["redis"]["hit_rate"].as_f64().unwrap() > 0.5,
        "{}",
        snap["redis"]
    );
    let read = snap["latency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["operation"] == "read conversation")
        .unwrap()
        .clone();
    assert_eq!(read["requests"], 5);
    assert!(read["p95_ms"].as_f64().unwrap() > 0.0);

    let text = monitor(db_test::redis_url(), false);
    let text = String::from_utf8_lossy(&text.stdout);
    for section in [
        "SERVICES AND POOLS",
        "REDIS",
        "KEYS BY FAMILY",
        "LATENCY",
        "SLOW QUERIES",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    assert!(
        text.contains("🟢 chat") && text.contains("⚫ auth"),
        "{text}"
    );

    let down = monitor(format!("redis://127.0.0.1:{closed}"), false);
    assert!(down.status.success());
    let down = String::from_utf8_lossy(&down.stdout);
    assert!(
        down.contains("⚫ down: the services serve from PostgreSQL"),
        "{down}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_alone_is_loaded_again_and_again_and_drops_cached_copies() {
    let db = TestDb::new().await.unwrap();
    let redis = db_test::redis_config();
    let cache = db_core::Cache::new(db_core::RedisPool::new(&redis).unwrap());
    let store = db_core::Store::new(db.db(), cache);
    assert!(
        store.catalogue().all().await.unwrap().is_empty(),
        "nothing loaded yet"
    );
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_dreamctl"))
            .args(["--database-url", db.url(), "seed", "--characters-only"])
            .env("REDIS_URL", &redis.url)
            .env("REDIS_KEY_PREFIX", &redis.key_prefix)
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        let out = run();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout(&out).contains("cached copies dropped"),
            "{}",
            stdout(&out)
        );
    }
    let n = db_core::seed::demo_characters().unwrap().len();
    assert_eq!(
        store.catalogue().all().await.unwrap().len(),
        n,
        "an empty catalogue was not kept in the cache"
    );
    let mut conn = db.conn().await.unwrap();
    assert!(
        db_core::queries::users::find_by_email(&mut conn, db_core::seed::DEMO_EMAIL)
            .await
            .unwrap()
            .is_none(),
        "no account is created"
    );
}
