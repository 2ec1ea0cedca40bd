//! The Redis pool: bb8-redis with a connect timeout, and a timeout on every command so that a
//! slow or dead Redis costs a request milliseconds, never a hang. Redis is an accelerator:
//! callers treat every [`RedisError`] as a miss and carry on from PostgreSQL.

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use redis::FromRedisValue;
use serde::Serialize;
use tracing::Instrument;

use crate::config::RedisConfig;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    #[error("redis command failed: {0}")]
    Command(#[from] redis::RedisError),
}

#[derive(Clone)]
pub struct RedisPool {
    pool: bb8::Pool<RedisConnectionManager>,
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
        let pool = bb8::Pool::builder()
            .max_size(config.max_size)
            .min_idle(Some(1))
            .connection_timeout(config.connect_timeout)
            .retry_connection(false)
            // Multiplexed connections carry many requests at once; checking each checkout costs
            // a round trip for nothing. A dead connection fails its command and is replaced.
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            command_timeout: config.command_timeout,
            prefix: config.key_prefix.clone(),
            url: config.url.clone(),
        })
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
        self.with_timeout(async {
            let mut conn = self.connection().await?;
            Ok(cmd.query_async(&mut *conn).await?)
        })
        .instrument(span(&name))
        .await
    }

    /// Runs a pipeline within the command timeout.
    pub async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        self.with_timeout(async {
            let mut conn = self.connection().await?;
            Ok(pipe.query_async(&mut *conn).await?)
        })
        .instrument(span("PIPELINE"))
        .await
    }

    /// Runs a Lua script (EVALSHA, loading it on first use) within the command timeout.
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.with_timeout(async {
            let mut conn = self.connection().await?;
            Ok(invocation.invoke_async(&mut *conn).await?)
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
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::Unavailable(format!("PING answered {pong}")))
        }
    }

    pub fn stats(&self) -> RedisPoolStats {
        let state = self.pool.state();
        RedisPoolStats {
            size: state.connections,
            idle: state.idle_connections,
            timeouts: state.statistics.get_timed_out,
        }
    }

    async fn connection(
        &self,
    ) -> Result<bb8::PooledConnection<'_, RedisConnectionManager>, RedisError> {
        self.pool.get().await.map_err(|e| match e {
            bb8::RunError::TimedOut => RedisError::Timeout(self.command_timeout),
            bb8::RunError::User(e) => RedisError::Unavailable(e.to_string()),
        })
    }

    async fn with_timeout<T>(
        &self,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        tokio::time::timeout(self.command_timeout, fut)
            .await
            .unwrap_or(Err(RedisError::Timeout(self.command_timeout)))
    }
}

/// A client span for one Redis round trip, in the caller's trace.
fn span(command: &str) -> tracing::Span {
    tracing::info_span!("redis", otel.name = %format!("redis {command}"), otel.kind = "client", db.system = "redis")
}
