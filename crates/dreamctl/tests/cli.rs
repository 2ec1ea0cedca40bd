//! The real `dreamctl` binary against real databases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use db_test::TestDb;

fn dreamctl(url: &str, args: &[&str]) -> Output {
    // A key prefix of the test's own: a seed clears the cache under its prefix.
    let redis = db_test::redis_config();
    Command::new(env!("CARGO_BIN_EXE_dreamctl"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("REDIS_URL", redis.url)
        .env("REDIS_KEY_PREFIX", redis.key_prefix)
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
    // Not a terminal: each step as a plain line, with its time.
    for step in [
        "✓ characters (",
        "✓ conversations (",
        "✓ search indexes and statistics (",
    ] {
        assert!(out.contains(step), "{step} missing:\n{out}");
    }
    let again = dreamctl(db.url(), &["seed", "--users", "3"]);
    assert!(
        !again.status.success(),
        "a seeded database is not seeded twice without --reset"
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("--reset") && err.contains("make seed RESET=1"),
        "{err}"
    );

    let demo = dreamctl(db.url(), &["seed", "--demo"]);
    assert!(demo.status.success());
    assert!(
        stdout(&demo).contains("demo@example.com (created)"),
        "{}",
        stdout(&demo)
    );
}

/// `make seed` beside `make dev`: over the demo load it needs no `--reset`; over other accounts
/// it needs one, keeps the demo account (same id), revokes the removed accounts' sessions and
/// leaves nothing stale under the cache prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_keeps_the_demo_account_revokes_the_others_and_clears_the_cache() {
    let db = TestDb::new().await.unwrap();
    let redis = db_test::redis_config();
    let seed = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dreamctl"))
            .args(["--database-url", db.url(), "seed"])
            .args(extra)
            .env("REDIS_URL", &redis.url)
            .env("REDIS_KEY_PREFIX", &redis.key_prefix)
            .output()
            .unwrap()
    };
    let small = [
        "--users",
        "3",
        "--characters",
        "10",
        "--matches-per-user",
        "2",
        "--messages-per-match",
        "5",
    ];
    assert!(seed(&["--demo"]).status.success());
    let mut conn = db.conn().await.unwrap();
    async fn demo(conn: &mut db_core::AsyncPgConnection) -> Option<String> {
        db_core::queries::users::find_by_email(conn, db_core::seed::DEMO_EMAIL)
            .await
            .unwrap()
            .map(|u| u.id.to_string())
    }
    let demo_id = demo(&mut conn).await.unwrap();
    let first = seed(&small);
    assert!(
        first.status.success(),
        "the demo load alone needs no --reset: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout(&first).contains("Demo account demo@example.com kept"),
        "{}",
        stdout(&first)
    );
    assert_eq!(demo(&mut conn).await.as_ref(), Some(&demo_id), "same id");

    // Someone signed up, with a session; the cache holds the catalogue.
    db_core::pool::batch_execute(
        &mut conn,
        "INSERT INTO users (id, email, password_hash, display_name) VALUES \
           ('00000000-0000-0000-0000-0000000000aa', 'lea@example.com', 'x', 'Léa'); \
         INSERT INTO refresh_sessions (id, user_id, family_id, token_hash, expires_at) VALUES \
           (gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', \
            '00000000-0000-0000-0000-0000000000bb', 'h', now() + interval '1 day'), \
           (gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', \
            '00000000-0000-0000-0000-0000000000bb', 'i', now() + interval '1 day')",
    )
    .await
    .unwrap();
    let cache = db_core::Cache::new(db_core::RedisPool::new(&redis).unwrap());
    let store = db_core::Store::new(db.db(), cache.clone());
    assert_eq!(store.catalogue().all().await.unwrap().len(), 10);
    assert!(
        !cache
            .keys_matching(&cache.keys().everything())
            .await
            .is_empty()
    );

    let refused = seed(&small);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("4 accounts besides the demo one") && err.contains("RESET=1"),
        "{err}"
    );

    let reset = seed(&[&["--reset"][..], &small[..]].concat());
    let out = stdout(&reset);
    assert!(reset.status.success(), "{out}");
    assert!(
        out.contains("1 session of removed accounts revoked"),
        "{out}"
    );
    assert_eq!(
        demo(&mut conn).await.as_ref(),
        Some(&demo_id),
        "the demo account is kept"
    );
    assert_eq!(
        cache.keys_matching(&cache.keys().everything()).await,
        Vec::<String>::new(),
        "nothing stale under the prefix"
    );
    let revoked =
        db_core::queries::sessions::revocations_since(&mut conn, chrono::DateTime::UNIX_EPOCH)
            .await
            .unwrap();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(
        revoked[0].0.to_string(),
        "00000000-0000-0000-0000-0000000000bb"
    );
    let users = db_core::seed::counts(&mut conn).await.unwrap().users;
    assert_eq!(users, 4, "three seeded and the demo account");
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
    // Churn in a small, busy table: the kind the large-tables-only list used to skip.
    db_core::pool::batch_execute(
        &mut conn,
        "UPDATE characters SET tagline = tagline || ''; UPDATE characters SET tagline = tagline || ''",
    )
    .await
    .unwrap();
    let run = dreamctl(db.url(), &["maintenance"]);
    let out = stdout(&run);
    assert!(run.status.success(), "{out}");
    for table in [
        "chat_messages",
        "characters",
        "matches",
        "generations",
        "photo_jobs",
    ] {
        assert!(
            out.contains(&format!("VACUUM (ANALYZE) {table}  (")),
            "{table} not vacuumed:\n{out}"
        );
    }
    assert!(
        out.contains("dead before") && out.contains("session revocations"),
        "{out}"
    );
    assert!(
        !String::from_utf8_lossy(&run.stderr).contains("slow query"),
        "a VACUUM is slow by nature: not a warning"
    );
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
    let characters = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "characters")
        .unwrap();
    assert_eq!(characters["dead_rows"], 0, "vacuumed too");
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
            "--interval",
            "1",
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
    assert_eq!(svc("chat")["health"], "ready");
    assert_eq!(svc("chat")["pools_state"], "ok");
    assert_eq!(svc("chat")["pools"][0]["role"], "primary");
    assert!(svc("chat")["pools"][0]["open"].as_f64().unwrap() >= 1.0);
    assert_eq!(svc("auth")["health"], "down");
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
    let read = snap["latency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["operation"] == "read conversation")
        .unwrap()
        .clone();
    assert_eq!(read["target"]["p95_ms"], 200.0);
    let hashing = snap["latency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["operation"] == "sign in / sign up")
        .unwrap()
        .clone();
    assert_eq!(hashing["target"]["kind"], "password hashing");
    // --once reports one interval: the five reads came before it.
    assert_eq!(read["requests"], 0, "{read}");
    assert_eq!(svc("chat")["traffic"]["requests_per_s"], 0.0);
    // One match and five reads.
    assert_eq!(svc("chat")["traffic"]["requests"], 6);

    let text = monitor(db_test::redis_url(), false);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(!text.contains('\x1b'), "no escape codes in a pipe:\n{text}");
    for section in [
        "SERVICE",
        "HEALTH",
        "REQ/S",
        "5XX/S",
        "REDIS",
        "LATENCY",
        "SLOW QUERIES",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
            .to_owned()
    };
    assert!(
        line("chat").contains("ready") && line("chat").contains("primary"),
        "{text}"
    );
    assert!(line("auth").contains("down"), "{text}");
    assert!(
        text.lines().count() <= 24 && text.lines().all(|l| l.chars().count() <= 80),
        "fits 80×24:\n{text}"
    );

    let down = monitor(format!("redis://127.0.0.1:{closed}"), false);
    assert!(down.status.success());
    let down = String::from_utf8_lossy(&down.stdout);
    assert!(
        down.contains("REDIS down — served from PostgreSQL"),
        "{down}"
    );
}

/// `--interval` paces the refreshes, and each refresh's rates cover what happened since the
/// one before: requests made between two refreshes show in the second one only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_refreshes_every_interval_with_the_rates_of_that_interval() {
    use service_kit::testing::TestApp;
    use std::io::{BufRead, BufReader};
    let app = TestApp::start("chat", chat::API).await;
    app.with_catalogue().await;
    let (_, token) = app.matched("i@example.com", &["sophia"]).await;
    let prefix = app.kit.store.cache().keys().prefix().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dreamctl"))
        .args(["monitor", "--json", "--interval", "1", "--service"])
        .arg(format!("chat={}", app.admin))
        .env("REDIS_URL", db_test::redis_url())
        .env("REDIS_KEY_PREFIX", &prefix)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
    };
    let first = next();
    assert_eq!(
        first["window_s"],
        serde_json::Value::Null,
        "nothing to compare with yet"
    );
    // Wait for a refresh, then send twenty reads before the one after it.
    let second = next();
    for _ in 0..20 {
        app.get("/api/v1/conversations/sophia/messages", &token)
            .await;
    }
    let mut reads = 0;
    let mut snapshots = vec![first, second];
    while reads < 20 {
        let s = next();
        let read = s["latency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["operation"] == "read conversation")
            .unwrap()
            .clone();
        reads += read["requests"].as_u64().unwrap();
        snapshots.push(s);
        assert!(
            snapshots.len() < 10,
            "the reads never showed: {snapshots:?}"
        );
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(reads, 20, "each read counted in exactly one interval");
    let last = snapshots.last().unwrap();
    let chat = &last["services"][0];
    assert!(
        chat["traffic"]["requests_per_s"].as_f64().unwrap() > 0.0,
        "{chat}"
    );
    for pair in snapshots.windows(2).skip(1) {
        let at = |s: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(s["at"].as_str().unwrap()).unwrap()
        };
        let gap = (at(&pair[1]) - at(&pair[0])).num_milliseconds();
        assert!(
            (700..=3_000).contains(&gap),
            "refreshes {gap} ms apart with --interval 1"
        );
        let window = pair[1]["window_s"].as_f64().unwrap();
        assert!((0.7..=3.0).contains(&window), "window {window} s");
    }
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
