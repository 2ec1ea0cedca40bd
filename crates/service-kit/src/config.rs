//! Settings from the environment, read once in `main` (12-factor). Every variable is listed in
//! the README's table; a value that does not parse is an error that names the variable, never a
//! silent default.

use std::str::FromStr;
use std::time::Duration;

use db_core::cache::Ttls;
use db_core::{Environment, PgConfig, RedisConfig, SlowQueryConfig};

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// `name` from the environment, or `default` when it is unset or empty.
pub fn var_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|e: T::Err| ConfigError {
                name: name.to_owned(),
                value,
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

/// `name` from the environment, if set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A duration in milliseconds (`name` ends in `_MS`).
pub fn millis(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    var_or(name, default.as_millis() as u64).map(Duration::from_millis)
}

/// `DREAM_ENV`: `development` (the default) or `production`.
pub fn environment() -> Result<Environment, ConfigError> {
    var_or("DREAM_ENV", Environment::Development)
}

/// The threads that query PostgreSQL and Redis: the HTTP workers (`HTTP_WORKERS`), and the
/// thread the background work runs on. Each keeps its own connections, its share of a pool's
/// limits.
fn pool_threads() -> Result<u32, ConfigError> {
    Ok(u32::try_from(http_workers()? + 1).unwrap_or(u32::MAX))
}

/// `HTTP_WORKERS`: threads serving HTTP, each a single-threaded runtime; one per core unless set.
pub fn http_workers() -> Result<usize, ConfigError> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    match var_or("HTTP_WORKERS", cores)? {
        0 => Err(ConfigError {
            name: "HTTP_WORKERS".into(),
            value: "0".into(),
            reason: "at least one worker is needed".into(),
        }),
        n => Ok(n),
    }
}

/// PostgreSQL: the defaults of `DREAM_ENV`, each overridden by its variable when set.
pub fn postgres(application_name: &str) -> Result<PgConfig, ConfigError> {
    let d = PgConfig::defaults(environment()?, application_name);
    Ok(PgConfig {
        url: var("DATABASE_URL").unwrap_or(d.url),
        replica_url: var("DATABASE_REPLICA_URL"),
        application_name: d.application_name,
        min_idle: var_or("DB_POOL_MIN_IDLE", d.min_idle)?,
        max_size: var_or("DB_POOL_MAX_SIZE", d.max_size)?,
        threads: pool_threads()?,
        acquire_timeout: millis("DB_POOL_TIMEOUT_MS", d.acquire_timeout)?,
        max_lifetime: millis("DB_POOL_MAX_LIFETIME_MS", d.max_lifetime)?,
        idle_timeout: millis("DB_POOL_IDLE_TIMEOUT_MS", d.idle_timeout)?,
        test_on_checkout: var_or("DB_POOL_TEST_ON_CHECKOUT", d.test_on_checkout)?,
        ping_on_checkout: var_or("DB_POOL_PING_ON_CHECKOUT", d.ping_on_checkout)?,
        statement_timeout: millis("DB_STATEMENT_TIMEOUT_MS", d.statement_timeout)?,
        session_settings: var_or("DB_SESSION_SETTINGS", d.session_settings)?,
    })
}

/// Redis.
pub fn redis() -> Result<RedisConfig, ConfigError> {
    let d = RedisConfig::defaults();
    Ok(RedisConfig {
        url: var("REDIS_URL").unwrap_or(d.url),
        max_size: var_or("REDIS_POOL_MAX_SIZE", d.max_size)?,
        threads: pool_threads()?,
        connect_timeout: millis("REDIS_CONNECT_TIMEOUT_MS", d.connect_timeout)?,
        command_timeout: millis("REDIS_COMMAND_TIMEOUT_MS", d.command_timeout)?,
        key_prefix: var("REDIS_KEY_PREFIX").unwrap_or(d.key_prefix),
    })
}

/// The variable that sets `family`'s lifetime in seconds: `CACHE_TTL_<NAME>_S`.
pub fn ttl_variable(family: db_core::cache::Family) -> String {
    format!("CACHE_TTL_{}_S", family.name().to_ascii_uppercase())
}

/// The cache's lifetimes: the guide's, each overridden by its `CACHE_TTL_<FAMILY>_S`
/// (`CACHE_TTL_USER_PROFILE_S`, `…_CONVERSATION_S`, `…_MATCHES_S`, `…_CHARACTERS_S`,
/// `…_PHOTOS_S`, `…_TYPING_S`, `…_UNREAD_S`) and `CACHE_LOCAL_TTL_S` (the in-process
/// catalogue). Every process reads them once; give them all the same values.
pub fn cache_ttls() -> Result<Ttls, ConfigError> {
    let mut ttls = Ttls::default();
    for family in db_core::cache::Family::ALL
        .into_iter()
        .filter(|f| f.ttl_configurable())
    {
        let name = ttl_variable(family);
        let default = ttls.get(family).map_or(0, |d| d.as_secs());
        let secs: u64 = var_or(&name, default)?;
        ttls.set(family, Duration::from_secs(secs))
            .map_err(|reason| ConfigError {
                name: name.clone(),
                value: secs.to_string(),
                reason,
            })?;
    }
    let local: u64 = var_or("CACHE_LOCAL_TTL_S", ttls.local_catalogue.as_secs())?;
    if local == 0 || local > 3600 {
        return Err(ConfigError {
            name: "CACHE_LOCAL_TTL_S".into(),
            value: local.to_string(),
            reason: "between 1 and 3600 seconds".into(),
        });
    }
    ttls.local_catalogue = Duration::from_secs(local);
    Ok(ttls)
}

/// The slow-query thresholds.
pub fn slow_queries() -> Result<SlowQueryConfig, ConfigError> {
    let d = SlowQueryConfig::default();
    Ok(SlowQueryConfig {
        warn_after: millis("DB_SLOW_QUERY_MS", d.warn_after)?,
        binds_after: millis("DB_SLOW_QUERY_BINDS_MS", d.binds_after)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_configurable_lifetime_has_its_variable_and_the_guide_default() {
        use db_core::cache::Family;
        let names: Vec<String> = Family::ALL
            .into_iter()
            .filter(|f| f.ttl_configurable())
            .map(super::ttl_variable)
            .collect();
        assert_eq!(
            names,
            [
                "CACHE_TTL_USER_PROFILE_S",
                "CACHE_TTL_CONVERSATION_S",
                "CACHE_TTL_MATCHES_S",
                "CACHE_TTL_CHARACTERS_S",
                "CACHE_TTL_PHOTOS_S",
                "CACHE_TTL_TYPING_S",
                "CACHE_TTL_UNREAD_S",
            ]
        );
        // Every one is in the README's table.
        // Read at run time: an embedded README would have to be in the image's build stage.
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        for name in names
            .iter()
            .map(String::as_str)
            .chain(["CACHE_LOCAL_TTL_S"])
        {
            assert!(readme.contains(name), "{name} is not documented");
        }
        let mut ttls = db_core::cache::Ttls::default();
        assert_eq!(
            ttls.get(Family::Conversation),
            Some(std::time::Duration::from_secs(300))
        );
        assert!(
            ttls.set(Family::Conversation, std::time::Duration::from_secs(7200))
                .is_err()
        );
        assert!(
            ttls.set(Family::Leaderboard, std::time::Duration::from_secs(60))
                .is_err()
        );
        assert!(
            ttls.set(Family::Conversation, std::time::Duration::ZERO)
                .is_err()
        );
        ttls.set(Family::Conversation, std::time::Duration::from_secs(900))
            .unwrap();
        assert_eq!(
            ttls.get(Family::Conversation),
            Some(std::time::Duration::from_secs(900))
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = super::var_or::<u32>("DREAM_TEST_SURELY_UNSET_VARIABLE", 7);
        assert_eq!(e.ok(), Some(7));
        let err = super::ConfigError {
            name: "DB_POOL_MAX_SIZE".into(),
            value: "many".into(),
            reason: "invalid digit found in string".into(),
        };
        assert!(err.to_string().contains("DB_POOL_MAX_SIZE=\"many\""));
    }
}
