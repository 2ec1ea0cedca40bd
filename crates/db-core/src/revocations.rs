//! Revoked session families, known to every process within moments and checked in memory on
//! every request (no round trip). PostgreSQL's `session_revocations` is the truth: each process
//! loads it at start, polls it every few seconds, and hears of a new revocation at once through
//! a Redis channel. With Redis away, news comes by the poll; with PostgreSQL away, the set keeps
//! what it has. A family is kept while an access token of it can still be valid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::cache::Cache;
use crate::pool::{Db, DbError};
use crate::queries::sessions;

/// The set every process checks access tokens against. Cheap to clone.
#[derive(Clone)]
pub struct Revocations(Arc<Inner>);

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

struct Inner {
    families: RwLock<HashMap<Uuid, DateTime<Utc>>>,
    /// How long after its revocation a family can still have a valid access token.
    keep: chrono::Duration,
    /// The first load from PostgreSQL succeeded.
    loaded: AtomicBool,
}

/// The longest access-token lifetime the services accept (`ACCESS_TOKEN_TTL_S` is checked
/// against it): a family is remembered this long after its revocation, plus clock leeway.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(3600);

/// How often each process reads what changed in PostgreSQL: the bound on how late a revocation
/// is seen when Redis cannot carry the news.
pub const POLL: Duration = Duration::from_secs(2);
/// Each poll reads back this far before the last, so that a revocation whose transaction
/// committed after a later one's is still seen.
const OVERLAP: chrono::Duration = chrono::Duration::seconds(30);

impl Revocations {
    /// An empty set.
    pub fn new() -> Self {
        let keep = chrono::Duration::from_std(MAX_ACCESS_TTL + Duration::from_secs(60))
            .unwrap_or(chrono::Duration::hours(2));
        Self(Arc::new(Inner {
            families: RwLock::new(HashMap::new()),
            keep,
            loaded: AtomicBool::new(false),
        }))
    }

    pub fn is_revoked(&self, family: Uuid) -> bool {
        self.0
            .families
            .read()
            .is_ok_and(|f| f.contains_key(&family))
    }

    /// Whether the set was loaded from PostgreSQL at least once.
    pub fn is_loaded(&self) -> bool {
        self.0.loaded.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.0.families.read().map_or(0, |f| f.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a family revoked at `at`.
    pub fn note(&self, family: Uuid, at: DateTime<Utc>) {
        if at + self.0.keep <= Utc::now() {
            return;
        }
        if let Ok(mut f) = self.0.families.write() {
            f.insert(family, at);
        }
    }

    fn prune(&self) {
        let horizon = Utc::now() - self.0.keep;
        if let Ok(mut f) = self.0.families.write() {
            f.retain(|_, at| *at > horizon);
        }
    }

    /// Reads the revocations after `since` into the set; returns the newest time seen.
    async fn load_since(
        &self,
        db: &Db,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbError> {
        let mut conn = db.read().await?;
        let rows = sessions::revocations_since(&mut conn, since).await?;
        let newest = rows.last().map(|(_, at)| *at);
        for (family, at) in rows {
            self.note(family, at);
        }
        self.0.loaded.store(true, Ordering::Relaxed);
        Ok(newest)
    }

    /// Keeps the set in step with PostgreSQL (a load, then a poll every [`POLL`]) and with the
    /// Redis channel, until the process ends.
    pub fn spawn_sync(&self, db: Db, cache: Cache) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![self.spawn_poll(db)];
        tasks.extend(self.spawn_listener(&cache));
        tasks
    }

    /// Polls PostgreSQL every [`POLL`].
    pub fn spawn_poll(&self, db: Db) -> tokio::task::JoinHandle<()> {
        let set = self.clone();
        tokio::spawn(async move {
            let mut since = Utc::now() - set.0.keep;
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match set.load_since(&db, since - OVERLAP).await {
                    Ok(newest) => {
                        if let Some(n) = newest {
                            since = since.max(n);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "revocations not polled"),
                }
                set.prune();
            }
        })
    }

    /// Hears revocations on the Redis channel as they happen (and prunes what expired). Alone
    /// (the gateway, which has no database), the set knows what was announced while it listened.
    pub fn spawn_listener(&self, cache: &Cache) -> Option<tokio::task::JoinHandle<()>> {
        let client = cache.redis_pool().and_then(|r| r.client().ok())?;
        let channel = cache.keys().revocation_channel();
        let set = self.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Ok(mut pubsub) = client.get_async_pubsub().await
                    && pubsub.subscribe(&channel).await.is_ok()
                {
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        if let Some(family) = msg
                            .get_payload::<String>()
                            .ok()
                            .and_then(|p| p.parse().ok())
                        {
                            set.prune();
                            set.note(family, Utc::now());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }
}

impl Cache {
    /// Tells every process that `families` were revoked (the row in PostgreSQL is the truth;
    /// this only makes the news faster than the poll).
    pub async fn publish_revocations(&self, families: &[Uuid]) {
        for family in families {
            let mut publish = redis::cmd("PUBLISH");
            publish
                .arg(self.keys().revocation_channel())
                .arg(family.to_string());
            let _: Option<i64> = self.cmd(publish).await;
        }
    }
}
