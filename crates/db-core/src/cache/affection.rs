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
return n";

// Moves the whole pending delta of a match into its in-flight hash under a flush id.
const TAKE: &str = r"
local v = redis.call('GETDEL', KEYS[1])
if not v or tonumber(v) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], v)
redis.call('SADD', KEYS[3], ARGV[2])
return tonumber(v)";

// After the PostgreSQL commit: forget the in-flight entry and the cached flushed value.
const FORGET: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
redis.call('DEL', KEYS[3])
return 1";

fn member(user: Uuid, character: &str) -> String {
    format!("{user}|{character}")
}

fn parse_member(m: &str) -> Option<(Uuid, &str)> {
    let (u, c) = m.split_once('|')?;
    Some((u.parse().ok()?, c))
}

fn inflight_key(cache: &Cache, user: Uuid, character: &str) -> String {
    format!(
        "{}:inflight:{user}:{character}",
        cache.keys().affection_dirty()
    )
}

fn inflight_index(cache: &Cache) -> String {
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

    /// Affection not yet in PostgreSQL (pending, plus any flush in flight); 0 when Redis is
    /// unavailable.
    pub async fn pending_affection(&self, user: Uuid, character: &str) -> i64 {
        self.pending_affection_many(user, &[character])
            .await
            .and_then(|v| v.as_slice().first().copied())
            .unwrap_or(0)
    }

    /// [`Cache::pending_affection`] of several matches of a user, in one round trip.
    pub async fn pending_affection_many(
        &self,
        user: Uuid,
        characters: &[&str],
    ) -> Option<Vec<i64>> {
        let mut read = redis::pipe();
        for c in characters {
            read.get(self.keys().affection_pending(user, c))
                .hvals(inflight_key(self, user, c));
        }
        let raw: Vec<redis::Value> = self.pipe(read).await?;
        let mut out = Vec::with_capacity(characters.len());
        for pair in raw.chunks(2) {
            let pending: Option<i64> = redis::from_redis_value(pair.first()?.clone()).ok()?;
            let inflight: Vec<i64> = redis::from_redis_value(pair.get(1)?.clone()).ok()?;
            out.push(pending.unwrap_or(0) + inflight.iter().sum::<i64>());
        }
        Some(out)
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
        let script = redis::Script::new(TAKE);
        let mut invocation = script.key(self.keys().affection_pending(user, character));
        invocation
            .key(inflight_key(self, user, character))
            .key(inflight_index(self))
            .arg(flush_id.to_string())
            .arg(member(user, character));
        let Some(delta) = self
            .redis(|r| async move { r.script::<i64>(&invocation).await })
            .await
        else {
            return Ok(FlushReport::default());
        };
        if delta == 0 {
            return Ok(FlushReport::default());
        }
        self.apply_flush(db, user, character, flush_id, delta)
            .await?;
        Ok(FlushReport {
            matches: 1,
            points: delta,
        })
    }

    /// Re-applies in-flight deltas (idempotent thanks to the recorded flush id).
    async fn recover_inflight(&self, db: &Db) -> Result<FlushReport, DbError> {
        let mut members = redis::cmd("SMEMBERS");
        members.arg(inflight_index(self));
        let Some(members) = self.cmd::<Vec<String>>(members).await else {
            return Ok(FlushReport::default());
        };
        let mut report = FlushReport::default();
        for m in &members {
            let Some((user, character)) = parse_member(m) else {
                continue;
            };
            let mut all = redis::cmd("HGETALL");
            all.arg(inflight_key(self, user, character));
            let Some(entries) = self.cmd::<Vec<(String, i64)>>(all).await else {
                break;
            };
            for (flush_id, delta) in entries {
                let Ok(flush_id) = flush_id.parse() else {
                    continue;
                };
                if self
                    .apply_flush(db, user, character, flush_id, delta)
                    .await?
                {
                    report.matches += 1;
                    report.points += delta;
                }
            }
        }
        Ok(report)
    }

    /// Applies one in-flight delta once; returns whether this call applied it. The entry stays
    /// in flight if PostgreSQL fails, to be retried.
    async fn apply_flush(
        &self,
        db: &Db,
        user: Uuid,
        character: &str,
        flush_id: Uuid,
        delta: i64,
    ) -> Result<bool, DbError> {
        let delta32 = i32::try_from(delta).unwrap_or(if delta > 0 { i32::MAX } else { i32::MIN });
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
                .bind::<Text, _>(character)
                .bind::<Integer, _>(delta32)
                .execute(conn)
                .await?;
                Ok(true)
            })
            .await?;
        drop(conn);
        let keys = self.keys();
        let script = redis::Script::new(FORGET);
        let mut forget = script.key(inflight_key(self, user, character));
        forget
            .key(inflight_index(self))
            .key(keys.affection(user, character))
            .arg(flush_id.to_string())
            .arg(member(user, character));
        self.run_or_defer(forget, keys.affection(user, character))
            .await;
        if applied {
            // Dropped, not adjusted: a list loaded after the commit already holds the new value,
            // and adding the delta to it would count it twice.
            self.invalidate_match_list(user).await;
        }
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
