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
