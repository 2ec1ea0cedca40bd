//! Typed settings read from the environment. Every variable is listed in the README's table.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

/// Reads `name` from the environment, or `default` when it is unset or empty.
pub fn env_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|e: T::Err| ConfigError {
                name,
                value,
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

fn env_opt(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn millis(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    env_or(name, default).map(Duration::from_millis)
}

/// Where the process runs. Production gets the optimization guide's pool sizes; development
/// gets sizes that let five services and their tools share one server's 100 connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" | "test" => Ok(Self::Development),
            "production" | "prod" => Ok(Self::Production),
            other => Err(format!("expected development or production, got {other}")),
        }
    }
}

impl Environment {
    pub fn from_env() -> Result<Self, ConfigError> {
        env_or("DREAM_ENV", Environment::Development)
    }
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/dream";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// PostgreSQL pool settings.
#[derive(Debug, Clone)]
pub struct PgConfig {
    pub url: String,
    /// Optional read replica: read-only queries go there when set.
    pub replica_url: Option<String>,
    /// Sent as `application_name`, so `pg_stat_activity` says which service holds a connection.
    pub application_name: String,
    /// Connections kept open while idle (the guide's `pool_size`).
    pub min_idle: u32,
    /// Upper bound on open connections (the guide's `pool_size + max_overflow`).
    pub max_size: u32,
    /// How long a request waits for a connection before it gets [`crate::DbError::Unavailable`].
    pub acquire_timeout: Duration,
    /// Connections are closed and replaced after this long (the guide's `pool_recycle`).
    pub max_lifetime: Duration,
    /// Connections above `min_idle` close after this long unused.
    pub idle_timeout: Duration,
    /// Run `SELECT 1` before handing out a connection (the guide's `pool_pre_ping`).
    pub test_on_checkout: bool,
    /// Per-statement limit set on every connection; zero disables it (for migrations and seeding).
    pub statement_timeout: Duration,
    /// Send `SET application_name/statement_timeout` on each new connection. Turn off behind
    /// PgBouncer in transaction mode, where session settings would leak to other clients: set
    /// them on the role (`ALTER ROLE dream SET statement_timeout = '10s'`) instead.
    pub session_settings: bool,
}

impl PgConfig {
    /// The defaults for `env`, with nothing read from the environment.
    pub fn defaults(env: Environment, application_name: &str) -> Self {
        let (min_idle, max_size) = match env {
            // 20 warm + 10 overflow: the guide's numbers, for a server sized for them (or PgBouncer).
            Environment::Production => (20, 30),
            // 5 services x 12 = 60 of the server's 100, leaving room for dreamctl, psql and tests.
            Environment::Development => (2, 12),
        };
        Self {
            url: DEFAULT_DATABASE_URL.to_owned(),
            replica_url: None,
            application_name: application_name.to_owned(),
            min_idle,
            max_size,
            acquire_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
            test_on_checkout: true,
            statement_timeout: Duration::from_secs(10),
            session_settings: true,
        }
    }

    /// The defaults for `DREAM_ENV`, each overridden by its variable when set.
    pub fn from_env(application_name: &str) -> Result<Self, ConfigError> {
        let d = Self::defaults(Environment::from_env()?, application_name);
        Ok(Self {
            url: env_opt("DATABASE_URL").unwrap_or(d.url),
            replica_url: env_opt("DATABASE_REPLICA_URL"),
            application_name: d.application_name,
            min_idle: env_or("DB_POOL_MIN_IDLE", d.min_idle)?,
            max_size: env_or("DB_POOL_MAX_SIZE", d.max_size)?,
            acquire_timeout: millis("DB_POOL_TIMEOUT_MS", d.acquire_timeout.as_millis() as u64)?,
            max_lifetime: millis("DB_POOL_MAX_LIFETIME_MS", d.max_lifetime.as_millis() as u64)?,
            idle_timeout: millis("DB_POOL_IDLE_TIMEOUT_MS", d.idle_timeout.as_millis() as u64)?,
            test_on_checkout: env_or("DB_POOL_TEST_ON_CHECKOUT", d.test_on_checkout)?,
            statement_timeout: millis(
                "DB_STATEMENT_TIMEOUT_MS",
                d.statement_timeout.as_millis() as u64,
            )?,
            session_settings: env_or("DB_SESSION_SETTINGS", d.session_settings)?,
        })
    }
}

/// Redis pool settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    pub max_size: u32,
    pub connect_timeout: Duration,
    /// Every command is abandoned after this long; callers then fall back to PostgreSQL.
    pub command_timeout: Duration,
    /// Prepended to every key, so tests and tenants get a keyspace of their own.
    pub key_prefix: String,
}

impl RedisConfig {
    pub fn defaults() -> Self {
        Self {
            url: DEFAULT_REDIS_URL.to_owned(),
            max_size: 16,
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            key_prefix: "dream".to_owned(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::defaults();
        Ok(Self {
            url: env_opt("REDIS_URL").unwrap_or(d.url),
            max_size: env_or("REDIS_POOL_MAX_SIZE", d.max_size)?,
            connect_timeout: millis(
                "REDIS_CONNECT_TIMEOUT_MS",
                d.connect_timeout.as_millis() as u64,
            )?,
            command_timeout: millis(
                "REDIS_COMMAND_TIMEOUT_MS",
                d.command_timeout.as_millis() as u64,
            )?,
            key_prefix: env_opt("REDIS_KEY_PREFIX").unwrap_or(d.key_prefix),
        })
    }
}

/// Slow-query thresholds for the instrumentation.
#[derive(Debug, Clone, Copy)]
pub struct SlowQueryConfig {
    /// At or over this, a warning with the SQL is logged.
    pub warn_after: Duration,
    /// At or over this, the warning carries the (redacted) bind parameters too.
    pub binds_after: Duration,
}

impl Default for SlowQueryConfig {
    fn default() -> Self {
        Self {
            warn_after: Duration::from_millis(200),
            binds_after: Duration::from_secs(1),
        }
    }
}

impl SlowQueryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            warn_after: millis("DB_SLOW_QUERY_MS", d.warn_after.as_millis() as u64)?,
            binds_after: millis("DB_SLOW_QUERY_BINDS_MS", d.binds_after.as_millis() as u64)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_defaults_fit_five_services_on_one_server() {
        let d = PgConfig::defaults(Environment::Development, "x");
        assert!(
            5 * d.max_size <= 70,
            "5 services x {} connections leave too little of 100",
            d.max_size
        );
        let p = PgConfig::defaults(Environment::Production, "x");
        assert_eq!((p.min_idle, p.max_size), (20, 30));
        assert_eq!(p.acquire_timeout, Duration::from_secs(30));
        assert_eq!(p.max_lifetime, Duration::from_secs(3600));
        assert!(p.test_on_checkout);
    }

    #[test]
    fn environment_names_parse() {
        assert_eq!("PROD".parse::<Environment>(), Ok(Environment::Production));
        assert!("staging".parse::<Environment>().is_err());
    }
}
