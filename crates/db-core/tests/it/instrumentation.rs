use std::time::Duration;

use db_core::instrumentation::{count_queries, recent_slow_queries, slow_query_total};
use db_core::models::SecretString;
use db_core::{Db, PgConfig, SlowQueryConfig};
use db_test::TestDb;
use diesel::prelude::*;
use diesel::sql_types::{Double, Text};
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct Out {
    #[diesel(sql_type = Text)]
    out: String,
}

#[tokio::test]
async fn queries_are_counted_per_request_without_the_pool_ping() {
    let test = TestDb::new().await.unwrap();
    let config = PgConfig {
        ping_on_checkout: true,
        ..test.pg_config()
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    let ((), n) = count_queries(async {
        let mut conn = db.write().await.unwrap();
        for _ in 0..3 {
            db_core::queries::characters::list(&mut conn).await.unwrap();
        }
        drop(conn);
        // A second checkout runs the health check; it is not the request's query.
        let mut conn = db.write().await.unwrap();
        db_core::queries::characters::get(&mut conn, "x")
            .await
            .unwrap();
    })
    .await;
    assert_eq!(n, 4);
    // Outside the scope nothing is counted, and nothing breaks.
    let mut conn = db.write().await.unwrap();
    db_core::queries::characters::list(&mut conn).await.unwrap();
}

#[tokio::test]
async fn slow_queries_are_kept_with_secrets_redacted() {
    let test = TestDb::new().await.unwrap();
    let slow = SlowQueryConfig {
        warn_after: Duration::from_millis(150),
        binds_after: Duration::from_millis(600),
    };
    let db = Db::new(&test.pg_config(), slow);
    let mut conn = db.write().await.unwrap();
    let before = slow_query_total();
    let secret = SecretString::new("$argon2id$v=19$super-secret-hash");
    let q = |sleep: f64| {
        diesel::sql_query("/* test.sleep */ SELECT pg_sleep($1)::text || $2 || $3 AS out")
            .bind::<Double, _>(sleep)
            .bind::<Text, _>(secret.clone())
            .bind::<Text, _>("visible-bind")
    };
    assert!(
        q(0.0)
            .get_result::<Out>(&mut conn)
            .await
            .unwrap()
            .out
            .ends_with("visible-bind")
    );
    assert_eq!(slow_query_total(), before, "a fast query is not slow");
    q(0.2).get_result::<Out>(&mut conn).await.unwrap();
    q(0.7).get_result::<Out>(&mut conn).await.unwrap();
    assert_eq!(slow_query_total(), before + 2);
    let log = recent_slow_queries();
    let [.., warned, very] = log.as_slice() else {
        panic!("{log:?}")
    };
    assert_eq!(warned.name, "test.sleep");
    assert!(
        warned.sql.contains("pg_sleep") && warned.binds.is_none(),
        "{warned:?}"
    );
    assert!(warned.duration_ms >= 200.0);
    let binds = very.binds.as_deref().unwrap();
    assert!(
        binds.contains("<redacted>") && binds.contains("visible-bind"),
        "{binds}"
    );
    assert!(!binds.contains("super-secret"), "{binds}");
    assert!(!very.failed);
}

#[tokio::test]
async fn every_query_lands_in_its_latency_histogram() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The test runtime is single-threaded: the instrumentation runs on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let test = TestDb::new().await.unwrap();
    let mut conn = test.conn().await.unwrap();
    let u = uuid::Uuid::new_v4();
    for _ in 0..3 {
        db_core::queries::messages::latest(&mut conn, u, "sophia", None, 10)
            .await
            .unwrap();
    }
    db_core::queries::users::find_by_id(&mut conn, u)
        .await
        .unwrap();
    // A snapshot drains the histograms: take one.
    let snapshot = snapshotter.snapshot().into_vec();
    let samples = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == "db_query_duration_seconds"
                    && key.key().labels().any(|l| l.value() == name)
            })
            .map(|(.., v)| match v {
                DebugValue::Histogram(s) => s.len(),
                other => panic!("{other:?}"),
            })
    };
    assert_eq!(samples("messages.latest"), Some(3));
    assert_eq!(samples("select users"), Some(1));
    assert_eq!(samples("nothing.ran"), None);
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// A pooled connection the server closed is not handed out: the local check on checkout (no
/// `SELECT 1`) replaces it, and the request's query runs on a fresh one.
#[tokio::test]
async fn a_connection_the_server_closed_is_replaced_without_a_ping() {
    let test = TestDb::new().await.unwrap();
    let config = PgConfig {
        min_idle: 1,
        max_size: 1,
        ..test.pg_config()
    };
    assert!(config.test_on_checkout && !config.ping_on_checkout);
    let db = Db::new(&config, SlowQueryConfig::default());
    let mut conn = db.write().await.unwrap();
    let first = backend_pid(&mut conn).await.unwrap();
    drop(conn);
    let mut admin = test.conn().await.unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({first})"))
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut conn = db.write().await.unwrap();
    let second = backend_pid(&mut conn)
        .await
        .expect("the closed connection was not handed out");
    assert_ne!(second, first);
}

async fn backend_pid(conn: &mut db_core::PgConn) -> QueryResult<i32> {
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)
        .await
        .map(|p| p.pid)
}
