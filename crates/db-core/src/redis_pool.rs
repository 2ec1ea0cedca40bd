//! The Redis pool: bb8-redis with a connect timeout, and a timeout on every command so that a
//! slow or dead Redis costs a request milliseconds, never a hang. Redis is an accelerator:
//! callers treat every [`RedisError`] as a miss and carry on from PostgreSQL.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bb8_redis::RedisConnectionManager;
use redis::FromRedisValue;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tracing::Instrument;

use crate::config::RedisConfig;
use crate::per_thread::{PerThread, Share};

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// No answer in time, while Redis answered other commands of this process meanwhile: the
    /// wait was a queue (this process too busy to read the answer, or Redis busy with others),
    /// not a dead or stalled Redis. The caller still carries on without the cache, but it is
    /// no reason to stop using Redis for everyone (see `Cache::redis`).
    #[error("redis answered others but not this within {0:?}")]
    Late(Duration),
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    #[error("redis command failed: {0}")]
    Command(#[from] redis::RedisError),
}

/// bb8-redis's manager, with connections that know when they broke. A multiplexed connection
/// to a Redis that died (or restarted) stays "valid" to bb8-redis forever: each command on it
/// fails, and it is never replaced, so the cache stayed off for many minutes after Redis came
/// back. Here a command that fails on the connection itself (I/O, a dropped connection, no
/// answer in time) marks it broken, and bb8 drops it instead of handing it out again: the next
/// checkout connects afresh.
///
/// Its connections have no response timeout of their own (redis-rs's default is 500 ms): every
/// command runs under the pool's deadline instead (see `RedisPool::on_connection_of`), which
/// tells a late answer from a dead Redis, and which `RedisPool::patient` lengthens.
struct HealingManager {
    /// For the PING that checks a connection.
    manager: RedisConnectionManager,
    client: redis::Client,
    config: redis::AsyncConnectionConfig,
}

struct Conn {
    inner: MultiplexedConnection,
    broken: Arc<AtomicBool>,
}

impl bb8::ManageConnection for HealingManager {
    type Connection = Conn;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Conn, redis::RedisError> {
        Ok(Conn {
            inner: self
                .client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?,
            broken: Arc::default(),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), redis::RedisError> {
        self.manager.is_valid(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

/// Whether an error means the connection itself is gone (rather than a command being wrong).
fn breaks_connection(e: &RedisError) -> bool {
    match e {
        // Late too: a connection that lost its answer is replaced, which costs a connect; one
        // never marked could be dead while the others answer, and would never be replaced.
        RedisError::Timeout(_) | RedisError::Late(_) => true,
        RedisError::Command(e) => {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
        }
        RedisError::Unavailable(_) => false,
    }
}

/// Multiplexed connections, a bb8 pool per thread that uses them (see `per_thread.rs`):
/// a command never waits on a connection driven by another thread.
#[derive(Clone)]
pub struct RedisPool {
    pool: Arc<PerThread<HealingManager>>,
    /// Commands Redis has answered (any connection, any thread): whether it answered others
    /// while one waited in vain tells a queue from a dead Redis.
    answers: Arc<AtomicU64>,
    command_timeout: Duration,
    prefix: String,
    url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RedisPoolStats {
    pub size: u32,
    pub idle: u32,
    pub timeouts: u64,
}

impl RedisPool {
    /// Builds the pool without connecting: a service starts while Redis is down.
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let manager = RedisConnectionManager::new(config.url.as_str())?;
        let client = redis::Client::open(config.url.as_str())?;
        let connect_timeout = config.connect_timeout;
        let connection = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(None);
        let build = move |share: Share| {
            bb8::Pool::builder()
                .max_size(share.max_size)
                .min_idle(Some(share.min_idle))
                .connection_timeout(connect_timeout)
                .retry_connection(false)
                // Multiplexed connections carry many requests at once; checking each checkout
                // costs a round trip for nothing. A dead connection fails its command, is
                // marked broken and is replaced (see `HealingManager`).
                .test_on_check_out(false)
                .build_unchecked(HealingManager {
                    manager: manager.clone(),
                    client: client.clone(),
                    config: connection.clone(),
                })
        };
        let pool = Arc::new(PerThread::new(
            Share::of(1, config.max_size, config.threads),
            Box::new(build),
        ));
        Ok(Self {
            pool,
            answers: Arc::default(),
            command_timeout: config.command_timeout,
            prefix: config.key_prefix.clone(),
            url: config.url.clone(),
        })
    }

    /// The same pool with a longer command timeout (at least a second), for the one retry a
    /// write makes of a cache update that timed out on a busy machine.
    pub fn patient(&self) -> Self {
        Self {
            command_timeout: (self.command_timeout * 4).max(Duration::from_secs(1)),
            ..self.clone()
        }
    }

    /// The key prefix every key of this deployment (or test) lives under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix:rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// Runs one command (or pipeline) within the command timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let name = cmd
            .args_iter()
            .next()
            .and_then(|a| match a {
                redis::Arg::Simple(b) => std::str::from_utf8(b).ok(),
                _ => None,
            })
            .unwrap_or("command")
            .to_ascii_uppercase();
        self.on_connection(async |conn| Ok(cmd.query_async(conn).await?))
            .instrument(span(&name))
            .await
    }

    /// Runs a pipeline within the command timeout.
    pub async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        self.on_connection(async |conn| Ok(pipe.query_async(conn).await?))
            .instrument(span("PIPELINE"))
            .await
    }

    /// Runs a Lua script (EVALSHA, loading it on first use) within the command timeout.
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.on_connection(async |conn| Ok(invocation.invoke_async(conn).await?))
            .instrument(span("EVALSHA"))
            .await
    }

    /// Runs several Lua scripts in one round trip (EVALSHA each, pipelined); one that Redis
    /// does not hold (it restarted since) is loaded and run on its own. A script's own error
    /// fails the call.
    pub async fn scripts(
        &self,
        invocations: &[redis::ScriptInvocation<'_>],
    ) -> Result<(), RedisError> {
        self.on_connection(async |conn| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for invocation in invocations {
                pipe.invoke_script(invocation);
            }
            let answers: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(conn).await?;
            for (invocation, answer) in invocations.iter().zip(answers) {
                match answer {
                    Ok(_) => {}
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        invocation.invoke_async::<redis::Value>(conn).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
        .instrument(span("EVALSHA"))
        .await
    }

    /// A client for a dedicated connection (pub/sub cannot share the multiplexed ones).
    pub fn client(&self) -> Result<redis::Client, RedisError> {
        Ok(redis::Client::open(self.url.as_str())?)
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        pong_or_not(pong)
    }

    /// [`RedisPool::ping`] for a check made now and then (readiness): on a thread that sends
    /// nothing else (the admin listener's), one connection and none kept warm.
    pub async fn check(&self) -> Result<(), RedisError> {
        let pong: String = self
            .on_connection_of(self.pool.get_with(Share::CHECK), async |conn| {
                Ok(redis::cmd("PING").query_async(conn).await?)
            })
            .await?;
        pong_or_not(pong)
    }

    /// Every thread's pool, added up.
    pub fn stats(&self) -> RedisPoolStats {
        self.pool.each().fold(
            RedisPoolStats {
                size: 0,
                idle: 0,
                timeouts: 0,
            },
            |t, (_, pool)| {
                let state = pool.state();
                RedisPoolStats {
                    size: t.size + state.connections,
                    idle: t.idle + state.idle_connections,
                    timeouts: t.timeouts + state.statistics.get_timed_out,
                }
            },
        )
    }

    /// Runs `call` on a pooled connection, the whole within the command timeout; a failure of
    /// the connection itself (or no answer in time) marks it broken, so the pool replaces it.
    async fn on_connection<T>(
        &self,
        call: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        self.on_connection_of(self.pool.get(), call).await
    }

    async fn on_connection_of<T>(
        &self,
        pool: bb8::Pool<HealingManager>,
        call: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let deadline = tokio::time::Instant::now() + self.command_timeout;
        let answered_before = self.answers.load(Ordering::Relaxed);
        let timed_out = || {
            if self.answers.load(Ordering::Relaxed) == answered_before {
                RedisError::Timeout(self.command_timeout)
            } else {
                RedisError::Late(self.command_timeout)
            }
        };
        let mut conn = match tokio::time::timeout_at(deadline, pool.get()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(bb8::RunError::User(e))) => return Err(RedisError::Unavailable(e.to_string())),
            Ok(Err(bb8::RunError::TimedOut)) | Err(_) => return Err(timed_out()),
        };
        let result = match tokio::time::timeout_at(deadline, call(&mut conn.inner)).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        };
        match &result {
            Err(e) if breaks_connection(e) => conn.broken.store(true, Ordering::Relaxed),
            // An error Redis sent (a script's, a wrong type) is an answer too.
            Ok(_) | Err(RedisError::Command(_)) => {
                self.answers.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        result
    }
}

/// A client span for one Redis round trip, in the caller's trace.
fn span(command: &str) -> tracing::Span {
    tracing::info_span!("redis", otel.name = %format!("redis {command}"), otel.kind = "client", db.system = "redis")
}

fn pong_or_not(pong: String) -> Result<(), RedisError> {
    if pong == "PONG" {
        Ok(())
    } else {
        Err(RedisError::Unavailable(format!("PING answered {pong}")))
    }
}
