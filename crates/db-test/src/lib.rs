#![doc = include_str!("../README.md")]

pub mod servers;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use db_core::config::{Environment, PgConfig, RedisConfig, SlowQueryConfig};
use db_core::models::SecretString;
use db_core::seed::SeedConfig;
use db_core::{AsyncPgConnection, Db, RedisPool};

/// The server's maintenance connection: where databases are created and dropped.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| db_core::config::DEFAULT_REDIS_URL.to_owned())
}

/// `admin_url` pointing at another database on the same server.
pub fn url_for(database: &str) -> String {
    let admin = admin_url();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let server = base
        .rsplit_once('/')
        .map(|(s, _)| s.to_owned())
        .unwrap_or(base);
    format!("{server}/{database}{query}")
}

/// The synthetic dataset behind the EXPLAIN tests: big enough that the planner prefers the
/// indexes for real (300,000 messages), small enough to build once in ~15 s.
pub fn test_seed_config() -> SeedConfig {
    SeedConfig {
        users: 300,
        ..SeedConfig::default()
    }
}

/// A fresh database of its own for one test, cloned from a template, dropped when the value is.
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// An empty, migrated database.
    pub async fn new() -> anyhow::Result<Self> {
        let template = ensure_template(Kind::Migrated).await?;
        Self::clone_of(&template).await
    }

    /// A migrated database holding [`test_seed_config`]'s dataset, analysed.
    pub async fn seeded() -> anyhow::Result<Self> {
        let template = ensure_template(Kind::Seeded).await?;
        Self::clone_of(&template).await
    }

    /// An empty database with no migrations applied.
    pub async fn empty() -> anyhow::Result<Self> {
        let name = unique_name();
        admin_exec(&format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(Self {
            url: url_for(&name),
            name,
        })
    }

    async fn clone_of(template: &str) -> anyhow::Result<Self> {
        let name = unique_name();
        admin_exec(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .await?;
        Ok(Self {
            url: url_for(&name),
            name,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Pool settings for a test: small, and quick to give up.
    pub fn pg_config(&self) -> PgConfig {
        PgConfig {
            url: self.url.clone(),
            min_idle: 0,
            max_size: 4,
            acquire_timeout: Duration::from_secs(10),
            ..PgConfig::defaults(Environment::Development, "db-test")
        }
    }

    /// The pools a service would have, on this database.
    pub fn db(&self) -> Db {
        Db::new(&self.pg_config(), SlowQueryConfig::default())
    }

    /// One instrumented connection outside any pool.
    pub async fn conn(&self) -> anyhow::Result<AsyncPgConnection> {
        Ok(db_core::pool::connect_unpooled(&self.url, "db-test").await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs outside any runtime (or inside one that may be shutting down): use a
        // thread with a runtime of its own, and wait for it.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(admin_exec(&sql));
            }
        })
        .join();
    }
}

/// A Redis key prefix of its own for one test.
pub fn redis_config() -> RedisConfig {
    RedisConfig {
        url: redis_url(),
        key_prefix: format!("dream-test:{}", uuid::Uuid::new_v4().simple()),
        ..RedisConfig::defaults()
    }
}

/// Runs `task` on a new thread, in a single-threaded runtime of its own (as each HTTP worker
/// of a service is), for tests of what each thread keeps for itself.
pub fn on_a_thread_of_its_own<F, Fut, T>(task: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime: {e}"))
            .block_on(task())
    })
}

pub fn redis_pool() -> anyhow::Result<RedisPool> {
    Ok(RedisPool::new(&redis_config())?)
}

fn unique_name() -> String {
    format!("dream_test_{}", uuid::Uuid::new_v4().simple())
}

async fn admin_exec(sql: &str) -> anyhow::Result<()> {
    let mut conn = db_core::pool::connect_unpooled(&admin_url(), "db-test-admin")
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (set TEST_DATABASE_URL)",
                admin_url()
            )
        })?;
    db_core::pool::batch_execute(&mut conn, sql)
        .await
        .with_context(|| sql.to_owned())
}

#[derive(Clone, Copy)]
enum Kind {
    Migrated,
    Seeded,
}

/// A name that changes whenever the migrations (or, for the seeded template, the seed code)
/// change, so a stale template is never reused.
fn template_name(kind: Kind) -> anyhow::Result<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut hasher = DefaultHasher::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("migrations"))? {
        let dir = entry?.path();
        for file in ["up.sql", "down.sql", "metadata.toml"] {
            files.push(dir.join(file));
        }
    }
    if matches!(kind, Kind::Seeded) {
        files.push(root.join("crates/db-core/src/seed.rs"));
        files.push(root.join("crates/db-test/src/lib.rs"));
    }
    files.sort();
    for f in files {
        f.file_name().hash(&mut hasher);
        std::fs::read(&f).unwrap_or_default().hash(&mut hasher);
    }
    let prefix = match kind {
        Kind::Migrated => "dream_tpl",
        Kind::Seeded => "dream_tpl_seeded",
    };
    Ok(format!("{prefix}_{:016x}", hasher.finish()))
}

/// Builds the template once per machine (per version of the schema); test processes racing
/// to build it wait on an advisory lock. A template is marked `IS_TEMPLATE` only when it is
/// complete, so one left half-built by a crash is rebuilt.
async fn ensure_template(kind: Kind) -> anyhow::Result<String> {
    let name = template_name(kind)?;
    let mut admin = db_core::pool::connect_unpooled(&admin_url(), "db-test-admin")
        .await
        .with_context(|| {
            format!(
                "cannot reach PostgreSQL at {} (set TEST_DATABASE_URL)",
                admin_url()
            )
        })?;
    let key = lock_key(&name);
    db_core::pool::batch_execute(&mut admin, &format!("SELECT pg_advisory_lock({key})")).await?;
    let result = build_template(kind, &name).await;
    db_core::pool::batch_execute(&mut admin, &format!("SELECT pg_advisory_unlock({key})")).await?;
    result.map(|()| name)
}

fn lock_key(name: &str) -> i64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish() as i64
}

async fn build_template(kind: Kind, name: &str) -> anyhow::Result<()> {
    match db_core::pool::database_is_template(&admin_url(), name).await? {
        Some(true) => return Ok(()),
        Some(false) => admin_exec(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await?,
        None => {}
    }
    match kind {
        Kind::Migrated => {
            admin_exec(&format!("CREATE DATABASE \"{name}\"")).await?;
            let report = db_core::migrate::run_pending(&url_for(name)).await?;
            anyhow::ensure!(
                report.is_success(),
                "migrations failed: {:?}",
                report.migrations
            );
        }
        Kind::Seeded => {
            let migrated = Box::pin(ensure_template(Kind::Migrated)).await?;
            admin_exec(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{migrated}\""
            ))
            .await?;
            let hash = SecretString::new("$argon2id$v=19$m=19456,t=2,p=1$not-a-real-hash");
            db_core::seed::seed(&url_for(name), &test_seed_config(), &hash, false, &|_| {}).await?;
        }
    }
    admin_exec(&format!("ALTER DATABASE \"{name}\" IS_TEMPLATE true")).await
}

/// Waits out the last seconds of a wall-clock minute: the rate limits count in fixed windows of
/// 60 s from the epoch, and a test whose hits straddle an edge would see its counts reset.
pub async fn clear_of_a_minute_edge() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 60_000);
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into) as u64 + 100)).await;
    }
}
