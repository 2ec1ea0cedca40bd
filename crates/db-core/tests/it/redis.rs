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

/// A command left without its answer while Redis answers the others (here a BLPOP that the
/// server holds; in production, a process too busy to read its answers) is late, not a dead
/// Redis: the cache does not give up on Redis for it. Alone, the same wait is a timeout.
#[tokio::test]
async fn a_wait_while_redis_answers_others_is_late_not_a_timeout() {
    let pool = RedisPool::new(&RedisConfig {
        command_timeout: Duration::from_millis(200),
        ..db_test::redis_config()
    })
    .unwrap();
    pool.ping().await.unwrap();
    let held = |n: u32| {
        let pool = pool.clone();
        let key = pool.key(&format!("never-pushed-{n}"));
        async move {
            pool.query::<Option<(String, String)>>(redis::cmd("BLPOP").arg(key).arg(2))
                .await
        }
    };
    let pings = async {
        for _ in 0..15 {
            pool.ping().await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (held_up, ()) = tokio::join!(held(1), pings);
    assert!(matches!(held_up, Err(RedisError::Late(_))), "{held_up:?}");
    let alone = held(2).await;
    assert!(matches!(alone, Err(RedisError::Timeout(_))), "{alone:?}");
    // The pool goes on answering: the held connections were replaced.
    pool.ping().await.unwrap();
}

/// Redis dies and comes back (empty): the pool's dead connections are replaced, and the cache
/// answers again within seconds, not when some idle timeout finally runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_back_within_seconds_of_a_redis_restart() {
    let mut redis = db_test::servers::OwnRedis::start().unwrap();
    let config = db_core::RedisConfig {
        url: redis.url(),
        ..db_test::redis_config()
    };
    let pool = db_core::RedisPool::new(&config).unwrap();
    // Several multiplexed connections in the pool, all in use.
    let pings = (0..32).map(|_| pool.ping());
    assert!(
        futures_util::future::join_all(pings)
            .await
            .iter()
            .all(Result::is_ok)
    );
    redis.kill();
    assert!(pool.ping().await.is_err(), "gone");
    redis.restart().unwrap();
    let restarted = std::time::Instant::now();
    let mut failures = 0;
    while pool.ping().await.is_err() {
        failures += 1;
        assert!(
            restarted.elapsed() < std::time::Duration::from_secs(5),
            "still failing {:?} after the restart ({failures} failures)",
            restarted.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And it stays back: no dead connection is handed out again.
    let pings = (0..64).map(|_| pool.ping());
    assert!(
        futures_util::future::join_all(pings)
            .await
            .iter()
            .all(Result::is_ok)
    );
}

/// A frozen Redis (SIGSTOP: connections accepted, nothing answered) costs each command its
/// timeout, and once it thaws the pool serves again within seconds: connections opened while
/// it was frozen do not hold the pool's places forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_serves_again_within_seconds_of_a_frozen_redis_thawing() {
    let redis = db_test::servers::OwnRedis::start().unwrap();
    let config = db_core::RedisConfig {
        url: redis.url(),
        ..db_test::redis_config()
    };
    let pool = db_core::RedisPool::new(&config).unwrap();
    assert!(pool.ping().await.is_ok());
    redis.pause().unwrap();
    let frozen = std::time::Instant::now();
    while frozen.elapsed() < std::time::Duration::from_secs(2) {
        let pings = (0..8).map(|_| pool.ping());
        let answers = futures_util::future::join_all(pings).await;
        assert!(answers.iter().all(Result::is_err), "frozen");
    }
    redis.resume().unwrap();
    let thawed = std::time::Instant::now();
    let mut failures = 0;
    while pool.ping().await.is_err() {
        failures += 1;
        assert!(
            thawed.elapsed() < std::time::Duration::from_secs(5),
            "still failing {:?} after the thaw ({failures} failures, {:?})",
            thawed.elapsed(),
            pool.stats()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// As with PostgreSQL: each thread sends its commands on multiplexed connections of its own.
#[test]
fn each_thread_sends_on_connections_of_its_own() {
    let pool = RedisPool::new(&RedisConfig {
        max_size: 2,
        threads: 2,
        ..db_test::redis_config()
    })
    .unwrap();
    // Both threads stay alive until both are done (see the PostgreSQL twin of this test).
    let together = std::sync::Arc::new(std::sync::Barrier::new(2));
    let clients = |pool: RedisPool| {
        let together = together.clone();
        db_test::on_a_thread_of_its_own(async move || {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..20 {
                let id: i64 = pool.query(redis::cmd("CLIENT").arg("ID")).await.unwrap();
                seen.insert(id);
                tokio::task::yield_now().await;
            }
            together.wait();
            seen
        })
    };
    let (one, two) = (clients(pool.clone()), clients(pool.clone()));
    let (one, two) = (one.join().unwrap(), two.join().unwrap());
    assert_eq!((one.len(), two.len()), (1, 1), "{one:?} {two:?}");
    assert!(one.is_disjoint(&two), "{one:?} {two:?}");
    assert_eq!(pool.stats().size, 2);
}
