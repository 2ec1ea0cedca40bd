//! Affection write-behind (the guide's "increment in Redis, sync to PostgreSQL"), without ever
//! losing or double-counting a point:
//!
//! - an increment is `INCRBY` on the match's pending counter plus `SADD` to the dirty set, in
//!   one script; with Redis unavailable it is a direct PostgreSQL update instead;
//! - a flush takes a match's whole pending delta atomically (`GETDEL`) into an in-flight hash
//!   under a fresh flush id, applies it in one PostgreSQL transaction that also records the
//!   flush id, then forgets the in-flight entry. Two replicas flushing at once take disjoint
//!   deltas; a replica dying mid-flush leaves the entry in flight, and the next flush (by anyone)
//!   re-applies it, which the recorded flush id turns into a no-op if it had committed;
//! - a read is the flushed value plus what is pending.

use std::time::Duration;

use diesel::sql_types::{Integer, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Cache, Family};
use crate::pool::{Db, DbError};
use crate::queries::matches;

/// Pending deltas at least this large are flushed right away (the guide's "every 10 points").
pub const FLUSH_THRESHOLD: i64 = 10;

const ADD: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
return n";

const TAKE: &str = r"
local v = redis.call('GETDEL', KEYS[1])
if not v or tonumber(v) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], v)
return tonumber(v)";

fn member(user: Uuid, character: &str) -> String {
    format!("{user}|{character}")
}

fn parse_member(m: &str) -> Option<(Uuid, &str)> {
    let (u, c) = m.split_once('|')?;
    Some((u.parse().ok()?, c))
}

fn inflight_key(cache: &Cache) -> String {
    format!("{}:inflight", cache.keys().affection_dirty())
}

/// What a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub matches: usize,
    pub points: i64,
}

impl Cache {
    /// Adds to a match's affection. Returns the pending delta (0 when written straight to
    /// PostgreSQL because Redis is unavailable).
    pub async fn add_affection(
        &self,
        db: &Db,
        user: Uuid,
        character: &str,
        delta: i32,
    ) -> Result<i64, DbError> {
        let keys = self.keys();
        let script = redis::Script::new(ADD);
        let mut invocation = script.key(keys.affection_pending(user, character));
        invocation
            .key(keys.affection_dirty())
            .key(keys.match_list(user))
            .arg(delta)
            .arg(member(user, character));
        match self
            .redis(|r| async move { r.script::<i64>(&invocation).await })
            .await
        {
            Some(pending) => {
                if pending.abs() >= FLUSH_THRESHOLD {
                    let (cache, db, character) = (self.clone(), db.clone(), character.to_owned());
                    tokio::spawn(async move {
                        if let Err(e) = cache.flush_match(&db, user, &character).await {
                            tracing::warn!(error = %e, "affection flush failed; the periodic flush retries");
                        }
                    });
                }
                Ok(pending)
            }
            None => {
                let mut conn = db.write().await?;
                matches::add_affection(&mut conn, user, character, delta).await?;
                self.delete(&[keys.affection(user, character), keys.match_list(user)])
                    .await;
                Ok(0)
            }
        }
    }

    /// The true affection of a match: what PostgreSQL holds plus what is pending in Redis.
    /// `None` when there is no such match.
    pub async fn affection(
        &self,
        db: &Db,
        user: Uuid,
        character: &str,
    ) -> Result<Option<i64>, DbError> {
        let key = self.keys().affection(user, character);
        let flushed: Option<i32> = self
            .get_or_load(Family::Affection, &key, || async {
                let mut conn = db.write().await?;
                Ok::<_, DbError>(
                    matches::get(&mut conn, user, character)
                        .await?
                        .map(|m| m.affection),
                )
            })
            .await?;
        let Some(flushed) = flushed else {
            return Ok(None);
        };
        Ok(Some(
            i64::from(flushed) + self.pending_affection(user, character).await,
        ))
    }

    /// Pending (not yet flushed) affection of a match; 0 when Redis is unavailable.
    pub async fn pending_affection(&self, user: Uuid, character: &str) -> i64 {
        let pending: Option<Option<i64>> = self
            .cmd(redis::Cmd::get(
                self.keys().affection_pending(user, character),
            ))
            .await;
        pending.flatten().unwrap_or(0)
    }

    /// Flushes up to `batch` dirty matches (and re-applies anything left in flight).
    pub async fn flush_affection(&self, db: &Db, batch: usize) -> Result<FlushReport, DbError> {
        let mut report = self.recover_inflight(db).await?;
        let mut spop = redis::cmd("SPOP");
        spop.arg(self.keys().affection_dirty()).arg(batch.max(1));
        let Some(members) = self.cmd::<Vec<String>>(spop).await else {
            return Ok(report);
        };
        for m in &members {
            let Some((user, character)) = parse_member(m) else {
                continue;
            };
            let r = self.flush_match(db, user, character).await?;
            report.matches += r.matches;
            report.points += r.points;
        }
        Ok(report)
    }

    /// Flushes until nothing is pending: for graceful shutdown.
    pub async fn flush_all_affection(&self, db: &Db) -> Result<FlushReport, DbError> {
        let mut total = FlushReport::default();
        loop {
            let r = self.flush_affection(db, 500).await?;
            total.matches += r.matches;
            total.points += r.points;
            let mut card = redis::cmd("SCARD");
            card.arg(self.keys().affection_dirty());
            if self.cmd::<i64>(card).await.unwrap_or(0) == 0 {
                return Ok(total);
            }
        }
    }

    async fn flush_match(
        &self,
        db: &Db,
        user: Uuid,
        character: &str,
    ) -> Result<FlushReport, DbError> {
        let flush_id = Uuid::new_v4();
        let field = format!("{}|{flush_id}", member(user, character));
        let script = redis::Script::new(TAKE);
        let mut invocation = script.key(self.keys().affection_pending(user, character));
        invocation.key(inflight_key(self)).arg(&field);
        let Some(delta) = self
            .redis(|r| async move { r.script::<i64>(&invocation).await })
            .await
        else {
            return Ok(FlushReport::default());
        };
        if delta == 0 {
            return Ok(FlushReport::default());
        }
        self.apply_flush(db, &field, delta).await?;
        Ok(FlushReport {
            matches: 1,
            points: delta,
        })
    }

    /// Re-applies in-flight deltas (idempotent thanks to the recorded flush id).
    async fn recover_inflight(&self, db: &Db) -> Result<FlushReport, DbError> {
        let mut all = redis::cmd("HGETALL");
        all.arg(inflight_key(self));
        let Some(entries) = self.cmd::<Vec<(String, i64)>>(all).await else {
            return Ok(FlushReport::default());
        };
        let mut report = FlushReport::default();
        for (field, delta) in entries {
            if self.apply_flush(db, &field, delta).await? {
                report.matches += 1;
                report.points += delta;
            }
        }
        Ok(report)
    }

    /// Applies one in-flight delta once; returns whether this call applied it. The entry is
    /// kept in flight if PostgreSQL fails, to be retried.
    async fn apply_flush(&self, db: &Db, field: &str, delta: i64) -> Result<bool, DbError> {
        let mut parts = field.split('|');
        let (Some(user), Some(character), Some(flush_id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Ok(false);
        };
        let (Ok(user), Ok(flush_id)) = (user.parse::<Uuid>(), flush_id.parse::<Uuid>()) else {
            return Ok(false);
        };
        let character = character.to_owned();
        let delta = i32::try_from(delta).unwrap_or(if delta > 0 { i32::MAX } else { i32::MIN });
        let mut conn = db.write().await?;
        let applied = conn
            .transaction::<bool, diesel::result::Error, _>(async |conn| {
                let fresh = diesel::sql_query(
                    "INSERT INTO affection_flushes (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                )
                .bind::<SqlUuid, _>(flush_id)
                .execute(conn)
                .await?;
                if fresh == 0 {
                    return Ok(false);
                }
                diesel::sql_query(
                    "/* affection.flush */ UPDATE matches SET affection = affection + $3 \
                     WHERE user_id = $1 AND character_id = $2",
                )
                .bind::<SqlUuid, _>(user)
                .bind::<Text, _>(&character)
                .bind::<Integer, _>(delta)
                .execute(conn)
                .await?;
                Ok(true)
            })
            .await?;
        let mut forget = redis::cmd("HDEL");
        forget.arg(inflight_key(self)).arg(field);
        let _: Option<i64> = self.cmd(forget).await;
        // The flushed value changed: drop its cached copy and the match list showing it.
        let keys = self.keys();
        self.delete(&[keys.affection(user, &character), keys.match_list(user)])
            .await;
        Ok(applied)
    }

    /// Runs [`Cache::flush_affection`] every `every` until the returned handle is shut down,
    /// which flushes everything once more.
    pub fn spawn_affection_flusher(&self, db: Db, every: Duration) -> AffectionFlusher {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let cache = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = cache.flush_affection(&db, 500).await {
                            tracing::warn!(error = %e, "affection flush failed; retrying next tick");
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
            cache.flush_all_affection(&db).await
        });
        AffectionFlusher { stop, task }
    }
}

/// A running periodic flusher.
pub struct AffectionFlusher {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<FlushReport, DbError>>,
}

impl AffectionFlusher {
    /// Stops the periodic flush and flushes what is pending (graceful shutdown).
    pub async fn shutdown(self) -> Result<FlushReport, DbError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| Err(DbError::Unreachable(format!("flusher task: {e}"))))
    }
}
