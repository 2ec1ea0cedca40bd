//! The migrations in `migrations/`, embedded in the binary (no libpq, no diesel CLI), and a
//! runner that reports each one. Services never migrate at start-up: `dreamctl migrate` does,
//! as a Kubernetes Job before a rollout.

use std::time::{Duration, Instant};

use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel_async::AsyncConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

type SyncPg = AsyncConnectionWrapper<AsyncPgConnection>;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied(Duration),
    /// Already applied before this run.
    Skipped,
    Failed(String),
    /// Not attempted because an earlier migration failed.
    NotRun,
}

#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    pub migrations: Vec<(String, Outcome)>,
}

impl MigrationReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.migrations.iter().filter(|(_, o)| f(o)).count()
    }
    pub fn applied(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Applied(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    pub fn is_success(&self) -> bool {
        self.failed() == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot read the migrations: {0}")]
    Source(String),
    #[error("migration task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Applies every pending migration in order, stopping at the first failure. A second run
/// applies nothing and reports every migration as skipped.
pub async fn run_pending(database_url: &str) -> Result<MigrationReport, MigrateError> {
    with_sync_connection(database_url, |conn| {
        let all = migrations()?;
        let applied = conn
            .applied_migrations()
            .map_err(|e| MigrateError::Source(e.to_string()))?;
        let mut report = MigrationReport::default();
        let mut failed = false;
        for m in &all {
            let name = m.name().to_string();
            let outcome = if applied.contains(&m.name().version()) {
                Outcome::Skipped
            } else if failed {
                Outcome::NotRun
            } else {
                let started = Instant::now();
                match conn.run_migration(m.as_ref()) {
                    Ok(_) => Outcome::Applied(started.elapsed()),
                    Err(e) => {
                        failed = true;
                        Outcome::Failed(e.to_string())
                    }
                }
            };
            report.migrations.push((name, outcome));
        }
        Ok(report)
    })
    .await
}

/// Applies the next pending migration only; returns its name, or `None` when none is pending.
pub async fn run_next(database_url: &str) -> Result<Option<String>, MigrateError> {
    with_sync_connection(database_url, |conn| {
        let applied = conn
            .applied_migrations()
            .map_err(|e| MigrateError::Source(e.to_string()))?;
        let Some(next) = migrations()?
            .into_iter()
            .find(|m| !applied.contains(&m.name().version()))
        else {
            return Ok(None);
        };
        conn.run_migration(next.as_ref())
            .map_err(|e| MigrateError::Source(e.to_string()))?;
        Ok(Some(next.name().to_string()))
    })
    .await
}

/// Reverts the newest applied migration; returns its version.
pub async fn revert_last(database_url: &str) -> Result<String, MigrateError> {
    with_sync_connection(database_url, |conn| {
        conn.revert_last_migration(MIGRATIONS)
            .map(|v| v.to_string())
            .map_err(|e| MigrateError::Source(e.to_string()))
    })
    .await
}

/// Reverts every applied migration, newest first. For the round-trip test and local resets.
pub async fn revert_all(database_url: &str) -> Result<usize, MigrateError> {
    with_sync_connection(database_url, |conn| {
        conn.revert_all_migrations(MIGRATIONS)
            .map(|v| v.len())
            .map_err(|e| MigrateError::Source(e.to_string()))
    })
    .await
}

fn migrations() -> Result<Vec<Box<dyn Migration<Pg>>>, MigrateError> {
    MigrationSource::<Pg>::migrations(&MIGRATIONS).map_err(|e| MigrateError::Source(e.to_string()))
}

/// diesel's migration harness is synchronous; it runs on a blocking thread over an async
/// connection, so it works from any runtime flavour.
async fn with_sync_connection<T: Send + 'static>(
    database_url: &str,
    f: impl FnOnce(&mut SyncPg) -> Result<T, MigrateError> + Send + 'static,
) -> Result<T, MigrateError> {
    let conn = AsyncPgConnection::establish(database_url).await?;
    tokio::task::spawn_blocking(move || {
        let mut conn = SyncPg::from(conn);
        f(&mut conn)
    })
    .await?
}
