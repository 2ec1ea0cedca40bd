use std::time::{Duration, Instant};

use db_core::{RedisConfig, RedisError, RedisPool};

#[tokio::test]
async fn commands_run_under_the_test_prefix() {
    let pool = db_test::redis_pool().unwrap();
    pool.ping().await.unwrap();
    let key = pool.key("greeting");
    assert!(key.starts_with("dream-test:") && key.ends_with(":greeting"));
    let () = pool
        .query(redis::cmd("SET").arg(&key).arg("bonjour").arg("EX").arg(30))
        .await
        .unwrap();
    let got: String = pool.query(redis::cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(got, "bonjour");
    let (a, b): (i64, i64) = pool
        .query_pipe(
            redis::pipe()
                .cmd("INCR")
                .arg(pool.key("n"))
                .cmd("INCR")
                .arg(pool.key("n")),
        )
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
    let _: i64 = pool
        .query(redis::cmd("DEL").arg(&key).arg(pool.key("n")))
        .await
        .unwrap();
    assert!(pool.stats().size >= 1);
}

#[tokio::test]
async fn a_dead_redis_fails_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let pool = RedisPool::new(&RedisConfig {
        url: format!("redis://127.0.0.1:{port}"),
        ..db_test::redis_config()
    })
    .unwrap();
    let started = Instant::now();
    let err = pool.ping().await.unwrap_err();
    assert!(
        matches!(err, RedisError::Unavailable(_) | RedisError::Timeout(_)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_redis_times_out() {
    // Accepts connections and never answers: the command timeout must cut the wait.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = RedisConfig {
        url: format!("redis://127.0.0.1:{port}"),
        command_timeout: Duration::from_millis(200),
        ..db_test::redis_config()
    };
    let pool = RedisPool::new(&config).unwrap();
    let started = Instant::now();
    let err = pool.ping().await.unwrap_err();
    assert!(
        matches!(err, RedisError::Timeout(_) | RedisError::Unavailable(_)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
}
