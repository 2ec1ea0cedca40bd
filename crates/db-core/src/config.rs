//! Typed settings of the pools and the instrumentation, with their defaults. Reading them from
//! the environment is the services' business (`service_kit::config`), not the data layer's.

use std::str::FromStr;
use std::time::Duration;

/// Where the process runs. Production keeps 20 connections warm per service (sized for a server
/// or a pooler that takes them); development
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

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/dream";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A connection URL with its password hidden, for `Debug` and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// PostgreSQL pool settings.
#[derive(Clone)]
pub struct PgConfig {
    pub url: String,
    /// Optional read replica: read-only queries go there when set.
    pub replica_url: Option<String>,
    /// Sent as `application_name`, so `pg_stat_activity` says which service holds a connection.
    pub application_name: String,
    /// Connections kept open while idle, so that a burst does not wait for new ones.
    pub min_idle: u32,
    /// Upper bound on open connections: past it, requests wait (then get 503).
    pub max_size: u32,
    /// The threads that share `min_idle` and `max_size`: each thread that queries keeps its own
    /// connections (see `per_thread.rs`), `max_size / threads` of them at most. A service
    /// sets it to its HTTP workers and the thread its background work runs on.
    pub threads: u32,
    /// How long a request waits for a connection before it gets [`crate::DbError::Unavailable`].
    pub acquire_timeout: Duration,
    /// Connections are closed and replaced after this long (server-side memory does not grow
    /// without bound, and a failover's new primary is picked up).
    pub max_lifetime: Duration,
    /// Connections above `min_idle` close after this long unused.
    pub idle_timeout: Duration,
    /// Check a connection before handing it out: one the server closed (a restart, an idle
    /// timeout, a terminated backend) is replaced instead of failing a request. The check is
    /// local — is the socket closed, is a transaction left broken — and costs no round trip.
    pub test_on_checkout: bool,
    /// Also run `SELECT 1` before handing out a connection, for networks that can leave a
    /// connection silently dead (a NAT or proxy dropping it without closing it). One more
    /// round trip, and one more statement for PostgreSQL to parse, per checkout: off by default.
    pub ping_on_checkout: bool,
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
            // 20 warm + 10 for bursts, per service: for a server sized for them (or a pooler).
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
            threads: 1,
            acquire_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(600),
            test_on_checkout: true,
            ping_on_checkout: false,
            statement_timeout: Duration::from_secs(10),
            session_settings: true,
        }
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact_url(&self.url))
            .field("replica_url", &self.replica_url.as_deref().map(redact_url))
            .field("application_name", &self.application_name)
            .field("min_idle", &self.min_idle)
            .field("max_size", &self.max_size)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Redis pool settings.
#[derive(Clone)]
pub struct RedisConfig {
    pub url: String,
    pub max_size: u32,
    /// As [`PgConfig::threads`]: each thread keeps its own multiplexed connections.
    pub threads: u32,
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
            threads: 1,
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            key_prefix: "dream".to_owned(),
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("max_size", &self.max_size)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
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
    fn urls_print_without_their_password() {
        assert_eq!(
            redact_url("postgres://dream:s3cret@db:5432/dream"),
            "postgres://dream:<redacted>@db:5432/dream"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let c = PgConfig {
            url: "postgres://u:pw@h/d".into(),
            ..PgConfig::defaults(Environment::Development, "x")
        };
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn environment_names_parse() {
        assert_eq!("PROD".parse::<Environment>(), Ok(Environment::Production));
        assert!("staging".parse::<Environment>().is_err());
    }
}
