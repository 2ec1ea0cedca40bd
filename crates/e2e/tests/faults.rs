//! The fast cases of the fault suite (`make chaos` runs them all, bigger, on release binaries):
//! each injects one fault into a stack of its own under an open-loop load and checks in
//! PostgreSQL that nothing acknowledged was lost or written twice, that no read missed a write
//! acknowledged before it, that both chat replicas agree with PostgreSQL afterwards and that no
//! conversation is left stuck.

#![allow(clippy::unwrap_used)]

use e2e::chaos::{Experiment, Rig, RigOptions, Row, Scale};

async fn run(experiment: Experiment) -> Row {
    let mut rig = Rig::start(RigOptions {
        users: 6,
        own_postgres: experiment.needs_own_postgres(),
        env: vec![],
    })
    .await
    .unwrap();
    let row = experiment.run(&mut rig, &Scale::quick()).await.unwrap();
    eprintln!("{row:#?}");
    assert!(row.whole(), "{row:#?}");
    assert!(row.requests > 0);
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_and_restarted_empty_fails_nothing_and_the_cache_comes_back() {
    let row = run(Experiment::RedisKill).await;
    assert_eq!(row.failed, 0, "{row:#?}");
    assert!(row.acked > 0);
    assert!(row.cache_back_s.is_some(), "{row:#?}");
    assert!(
        row.notes
            .iter()
            .any(|n| n.contains("refused by the gateway and both chat replicas")),
        "a logout while Redis was down held: {row:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_fails_nothing() {
    let row = run(Experiment::RedisPause).await;
    assert_eq!(row.failed, 0, "{row:#?}");
    assert!(row.cache_back_s.is_some(), "{row:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_replica_killed_mid_load_fails_no_read_and_loses_no_message() {
    let row = run(Experiment::ChatKill).await;
    assert_eq!(row.failed_reads, 0, "{row:#?}");
    assert!(row.acked > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_refuses_writes_quickly_and_serves_cached_reads() {
    let row = run(Experiment::PgStop).await;
    assert_eq!(row.failed_reads, 0, "{row:#?}");
    assert!(
        row.refusal_ms.is_some(),
        "writes were refused with 503: {row:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_cut_by_an_ai_crash_end_with_an_error_event_and_are_written_once_after() {
    let row = run(Experiment::AiKill).await;
    assert!(
        row.notes.iter().any(|n| n.contains("0 silent EOF")),
        "{row:#?}"
    );
    assert_eq!(row.stuck, Some(0));
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A read caught inside a chat replica when it is killed (its connection closes before any
/// answer) is asked of the other replica: the client never sees the crash. Made certain rather
/// than left to timing: the searches wait on a lock held here while the replica is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_inside_a_replica_that_dies_are_answered_by_the_other() {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    use reqwest::StatusCode;

    // Two connections per worker thread: each replica holds both of its searches on the lock,
    // whichever of its workers took them.
    let mut s = e2e::Stack::with(e2e::Options {
        env: vec![("DB_POOL_MAX_SIZE", "6".into())],
        ..Default::default()
    })
    .await;
    let token = s.matched("lea@example.com", "sophia").await;
    let (status, _) = s
        .post(
            "/api/v1/conversations/sophia/messages",
            Some(&token),
            serde_json::json!({ "content": "il pleut sur Lyon" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut lock = s.conn().await;
    lock.batch_execute("BEGIN; LOCK TABLE chat_messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut watch = s.conn().await;
    let waiting = async |conn: &mut db_core::AsyncPgConnection| {
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
    };
    // Four searches, handed out in turn to the two replicas, all waiting on the lock.
    let searches: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, token) = (
                s.http.clone(),
                format!("{}/api/v1/search/messages?q=Lyon", s.gateway),
                token.clone(),
            );
            tokio::spawn(async move {
                let res = http.get(url).bearer_auth(token).send().await.unwrap();
                (res.status(), res.text().await.unwrap_or_default())
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while waiting(&mut watch).await < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the searches never reached PostgreSQL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.chat[0].kill();
    lock.batch_execute("COMMIT").await.unwrap();
    for search in searches {
        let (status, body) = search.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("Lyon"), "{body}");
    }
}
