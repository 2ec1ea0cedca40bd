//! The conversation window: the latest 100 messages of a conversation, served from Redis.
//!
//! Stored as a sorted set scored by the message time (ties ordered by the zero-padded id that
//! starts each member), plus a sentinel member at -inf so that an empty conversation is still
//! a hit. A send appends in place and trims, atomically, in the right order even when sends
//! race; an edit or delete drops the window. Every change bumps a version key; a reader that
//! loaded from PostgreSQL stores its window only if the version did not move meanwhile, so a
//! send that lands during a load can never be lost from the cache.

use std::time::Duration;

use serde_json::value::RawValue;
use uuid::Uuid;

use super::{Cache, Family, Outcome};
use crate::models::Message;

/// Messages the window holds.
pub const WINDOW: usize = 100;
const SENTINEL: &str = "~";
const VERSION_TTL: Duration = Duration::from_secs(3600);

/// One message of a window as Redis holds it: its JSON, ready to be sent as it is, with what
/// a keyset cursor needs.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    /// `created_at` in microseconds (the member's score).
    pub at_micros: i64,
    pub json: Box<RawValue>,
}

impl Entry {
    fn of(m: &Message) -> Option<Self> {
        Some(Self {
            id: m.id,
            at_micros: m.created_at.timestamp_micros(),
            json: serde_json::value::to_raw_value(m).ok()?,
        })
    }

    fn member(&self) -> String {
        format!("{:020}|{}", self.id, self.json.get())
    }

    pub fn message(&self) -> Option<Message> {
        serde_json::from_str(self.json.get()).ok()
    }
}

/// Members with their scores (as doubles: the sentinel's is -inf; a time in microseconds is
/// below 2^53, so exact).
fn decode(members: Vec<(String, f64)>) -> Vec<Entry> {
    members
        .into_iter()
        .filter(|(m, _)| m != SENTINEL)
        .filter_map(|(m, score)| {
            let at_micros = score as i64;
            let (id, json) = m.split_once('|')?;
            Some(Entry {
                id: id.parse().ok()?,
                at_micros,
                json: RawValue::from_string(json.to_owned()).ok()?,
            })
        })
        .collect()
}

const APPEND: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 1, -(tonumber(ARGV[4]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

const POPULATE: &str = r"
local v = redis.call('GET', KEYS[2])
if (v or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[1], '-inf', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

const INVALIDATE: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])";

impl Cache {
    /// The newest `limit` (at most [`WINDOW`]) messages, newest first, from the window; on a
    /// miss `load` reads the latest [`WINDOW`] from PostgreSQL and the window is stored.
    pub(crate) async fn conversation_window<E, F, Fut>(
        &self,
        user: Uuid,
        character: &str,
        limit: usize,
        load: F,
    ) -> Result<Vec<Entry>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Message>, E>>,
    {
        let limit = limit.clamp(1, WINDOW);
        let key = self.keys().conversation(user, character);
        let version_key = self.keys().conversation_version(user, character);
        let mut read = redis::pipe();
        read.exists(&key)
            .zrevrange_withscores(&key, 0, limit as isize)
            .get(&version_key);
        let Some((exists, members, version)) = self
            .pipe::<(bool, Vec<(String, f64)>, Option<String>)>(read)
            .await
        else {
            self.count(Family::Conversation, Outcome::Bypass);
            let mut all = load().await?;
            all.truncate(limit);
            return Ok(all.iter().filter_map(Entry::of).collect());
        };
        if exists {
            self.count(Family::Conversation, Outcome::Hit);
            let mut entries = decode(members);
            entries.truncate(limit);
            return Ok(entries);
        }
        self.count(Family::Conversation, Outcome::Miss);
        let mut all = load().await?;
        all.truncate(WINDOW);
        let mut entries: Vec<Entry> = all.iter().filter_map(Entry::of).collect();
        let ttl = self
            .ttl(Family::Conversation)
            .unwrap_or(Duration::from_secs(300));
        let script = redis::Script::new(POPULATE);
        let mut invocation = script.key(&key);
        invocation
            .key(&version_key)
            .arg(version.unwrap_or_default())
            .arg(ttl.as_millis() as u64)
            .arg(SENTINEL);
        for e in &entries {
            invocation.arg(e.at_micros).arg(e.member());
        }
        let _: Option<i64> = self
            .redis(|r| async move { r.script(&invocation).await })
            .await;
        entries.truncate(limit);
        Ok(entries)
    }

    /// Adds a just-stored message to its conversation's window (when the window is cached),
    /// keeping the newest [`WINDOW`]. Call after the insert committed.
    pub(crate) async fn append_to_window(&self, m: &Message) {
        let Some(entry) = Entry::of(m) else { return };
        let key = self.keys().conversation(m.user_id, &m.character_id);
        let version_key = self.keys().conversation_version(m.user_id, &m.character_id);
        let ttl = self
            .ttl(Family::Conversation)
            .unwrap_or(Duration::from_secs(300));
        let script = redis::Script::new(APPEND);
        let mut invocation = script.key(&key);
        invocation
            .key(&version_key)
            .arg(entry.at_micros)
            .arg(entry.member())
            .arg(ttl.as_millis() as u64)
            .arg(WINDOW)
            .arg(VERSION_TTL.as_millis() as u64);
        let done: Option<i64> = self
            .redis(|r| async move { r.script(&invocation).await })
            .await;
        if done.is_none() {
            self.defer_delete(key);
        }
    }

    /// Drops a conversation's window (a message was edited or deleted).
    pub(crate) async fn invalidate_window(&self, user: Uuid, character: &str) {
        let key = self.keys().conversation(user, character);
        let version_key = self.keys().conversation_version(user, character);
        let script = redis::Script::new(INVALIDATE);
        let mut invocation = script.key(&key);
        invocation
            .key(&version_key)
            .arg(VERSION_TTL.as_millis() as u64);
        let done: Option<i64> = self
            .redis(|r| async move { r.script(&invocation).await })
            .await;
        if done.is_none() {
            self.defer_delete(key);
        }
    }
}
