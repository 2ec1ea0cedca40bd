use std::time::{Duration, Instant};

use db_core::{Db, DbError, PgConfig, SlowQueryConfig};
use db_test::TestDb;

use crate::fixtures::scalar;

#[tokio::test]
async fn connections_carry_the_service_name_and_a_statement_timeout() {
    let test = TestDb::new().await.unwrap();
    let config = PgConfig {
        application_name: "chat".into(),
        statement_timeout: Duration::from_millis(300),
        ..test.pg_config()
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    let mut conn = db.write().await.unwrap();
    assert_eq!(
        scalar(&mut conn, "current_setting('application_name')").await,
        "chat"
    );
    assert_eq!(
        scalar(&mut conn, "current_setting('statement_timeout')").await,
        "300ms"
    );
    let err = db_core::pool::batch_execute(&mut conn, "SELECT pg_sleep(2)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert!(
        DbError::Query(err).is_unavailable(),
        "a statement the server gave up on is a 503 to retry, not a 500"
    );
    assert_eq!(
        scalar(&mut conn, "1 + 1").await,
        "2",
        "the connection survives the cancelled statement"
    );
}

#[tokio::test]
async fn a_session_the_server_ends_under_a_query_is_unavailable_not_a_bug() {
    // What a PostgreSQL restart does to every pooled connection: the server ends the session.
    let test = TestDb::new().await.unwrap();
    let db = Db::new(&test.pg_config(), SlowQueryConfig::default());
    let mut victim = db.write().await.unwrap();
    let pid = scalar(&mut victim, "pg_backend_pid()").await;
    let mut admin = db.write().await.unwrap();
    assert_eq!(
        scalar(&mut admin, &format!("pg_terminate_backend({pid})")).await,
        "true"
    );
    for attempt in ["terminated", "closed"] {
        let err = db_core::pool::batch_execute(&mut victim, "SELECT 1")
            .await
            .unwrap_err();
        assert!(
            DbError::Query(err).is_unavailable(),
            "a query on a {attempt} session must read as the database being away"
        );
    }
    let err = db_core::pool::batch_execute(&mut admin, "SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert!(
        !DbError::Query(err).is_unavailable(),
        "a query that is wrong stays a bug"
    );
}

#[tokio::test]
async fn an_exhausted_pool_answers_with_a_timeout_not_a_hang() {
    let test = TestDb::new().await.unwrap();
    let config = PgConfig {
        max_size: 2,
        acquire_timeout: Duration::from_millis(300),
        ..test.pg_config()
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    let held = (db.write().await.unwrap(), db.write().await.unwrap());
    let stats = db.primary().stats();
    assert_eq!((stats.size, stats.in_use, stats.idle), (2, 2, 0));
    assert!(stats.connections_created >= 2);

    let started = Instant::now();
    let err = db.write().await.err().unwrap();
    let waited = started.elapsed();
    assert!(matches!(err, DbError::PoolTimeout(_)), "{err:?}");
    assert!(err.is_unavailable());
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(db.primary().stats().timeouts, 1);

    // A waiter is counted while it waits, and served as soon as a connection comes back.
    let db2 = db.clone();
    let waiter = tokio::spawn(async move { db2.write().await.map(drop) });
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.primary().stats().waiters != 1 {
        assert!(
            Instant::now() < deadline,
            "the waiter never showed up: {:?}",
            db.primary().stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(held);
    waiter.await.unwrap().unwrap();
    assert_eq!(db.primary().stats().waiters, 0);
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_with_a_typed_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = PgConfig {
        url: format!("postgres://postgres@127.0.0.1:{port}/dream"),
        min_idle: 0,
        acquire_timeout: Duration::from_secs(30),
        ..PgConfig::defaults(db_core::Environment::Development, "test")
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    let started = Instant::now();
    let err = db.read().await.err().unwrap();
    assert!(matches!(err, DbError::Unreachable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no waiting out the 30 s acquire timeout"
    );
    assert!(db.ping().await.is_err());
}

#[tokio::test]
async fn reads_go_to_the_replica_when_one_is_configured() {
    let test = TestDb::new().await.unwrap();
    // The same server stands in for the replica; its connections are read-only and named so.
    let config = PgConfig {
        replica_url: Some(test.url().to_owned()),
        ..test.pg_config()
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    let mut read = db.read().await.unwrap();
    assert_eq!(
        scalar(&mut read, "current_setting('application_name')").await,
        "db-test-ro"
    );
    let err = db_core::pool::batch_execute(&mut read, "CREATE TABLE nope (id int)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let mut write = db.write().await.unwrap();
    assert_eq!(
        scalar(&mut write, "current_setting('application_name')").await,
        "db-test"
    );
    assert_eq!(
        db.stats().iter().map(|(role, _)| *role).collect::<Vec<_>>(),
        vec!["primary", "replica"]
    );

    let without = test.db();
    let mut read = without.read().await.unwrap();
    assert_eq!(
        scalar(&mut read, "current_setting('application_name')").await,
        "db-test",
        "no replica: the primary serves reads"
    );
    without.ping().await.unwrap();
}

#[tokio::test]
async fn behind_pgbouncer_no_session_setting_is_sent() {
    let test = TestDb::new().await.unwrap();
    let config = PgConfig {
        application_name: "chat".into(),
        session_settings: false,
        ..test.pg_config()
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    let mut conn = db.write().await.unwrap();
    assert_ne!(
        scalar(&mut conn, "current_setting('application_name')").await,
        "chat"
    );
    assert_eq!(
        scalar(&mut conn, "current_setting('statement_timeout')").await,
        "0",
        "the server's (or role's) default"
    );
    // Still instrumented.
    let ((), n) = db_core::instrumentation::count_queries(async {
        scalar(&mut conn, "1").await;
    })
    .await;
    assert_eq!(n, 1);
}

/// Each thread that queries keeps its own connections, driven on that thread: a query made on
/// one HTTP worker never waits for another worker's thread to write it out and read the answer.
/// The threads share the configured limit.
#[tokio::test]
async fn each_thread_queries_on_connections_of_its_own() {
    let test = TestDb::new().await.unwrap();
    let config = PgConfig {
        max_size: 4,
        threads: 2,
        ..test.pg_config()
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    // Both threads stay alive until both are done: a thread that exited could hand its place
    // (and its id) to the other.
    let together = std::sync::Arc::new(std::sync::Barrier::new(2));
    let backends = |db: Db| {
        let together = together.clone();
        db_test::on_a_thread_of_its_own(async move || {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..20 {
                // Two at once: the thread's whole share.
                let (mut a, mut b) = (db.write().await.unwrap(), db.write().await.unwrap());
                seen.insert(scalar(&mut a, "pg_backend_pid()").await);
                seen.insert(scalar(&mut b, "pg_backend_pid()").await);
                drop((a, b));
                tokio::task::yield_now().await;
            }
            together.wait();
            seen
        })
    };
    let (one, two) = (backends(db.clone()), backends(db.clone()));
    let (one, two) = (one.join().unwrap(), two.join().unwrap());
    assert_eq!((one.len(), two.len()), (2, 2), "{one:?} {two:?}");
    assert!(one.is_disjoint(&two), "{one:?} {two:?}");
    // Both threads' pools count in the pool's figures, within the configured limit.
    let stats = db.primary().stats();
    assert_eq!((stats.size, stats.max_size), (4, 4), "{stats:?}");
}

/// The readiness check runs on the admin listener's thread, which queries nothing else: it gets
/// one connection there, and keeps none warm, whatever the workers' share is.
#[tokio::test]
async fn a_thread_that_only_checks_readiness_holds_one_connection() {
    let test = TestDb::new().await.unwrap();
    let config = PgConfig {
        min_idle: 4,
        max_size: 8,
        threads: 2,
        ..test.pg_config()
    };
    let db = Db::new(&config, SlowQueryConfig::default());
    let checker = db.clone();
    db_test::on_a_thread_of_its_own(async move || {
        let checks = (0..3).map(|_| checker.ping());
        for result in futures_util::future::join_all(checks).await {
            result.unwrap();
        }
        // Time for a pool to open the warm connections it would keep.
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .join()
    .unwrap();
    let stats = db.primary().stats();
    assert_eq!((stats.size, stats.in_use), (1, 0), "{stats:?}");
}
