//! The cached match list: a hash per user, one field per match (JSON `MatchSummary`), plus a
//! sentinel field so that a user with no match is still a hit. A send and a mark-read update
//! the one field they change, in a script, so a busy user's list stays a hit; a version key
//! keeps a list loaded before such a change from being stored. A reply drops the list (its
//! affection moved).

use std::sync::LazyLock;
use std::time::Duration;

use uuid::Uuid;

use super::{Cache, Family, Outcome, Update, jittered};
use crate::models::{Message, Sender};
use crate::queries::matches::MatchSummary;

const SENTINEL: &str = "~";
const VERSION_TTL: Duration = Duration::from_secs(3600);

const POPULATE: &str = r"
local v = redis.call('GET', KEYS[2])
if (v or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[3], '')
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

// ARGV: version ttl, character, message id, sender, content, created_at, score, unread +
const TOUCH: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
local m = cjson.decode(raw)
local newer = m._score == nil or m._score == cjson.null
  or tonumber(ARGV[7]) > tonumber(m._score)
  or (tonumber(ARGV[7]) == tonumber(m._score) and tonumber(ARGV[3]) > tonumber(m.last_message_id))
if newer then
  m.last_message_id = tonumber(ARGV[3])
  m.last_message_sender = ARGV[4]
  m.last_message_content = ARGV[5]
  m.last_message_at = ARGV[6]
  m._score = ARGV[7]
end
m.unread_count = m.unread_count + tonumber(ARGV[8])
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(m))
return 1";

// ARGV: version ttl, character, unread count
const SET_UNREAD: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
local m = cjson.decode(raw)
m.unread_count = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(m))
return 1";

const INVALIDATE: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])";

/// Sort key of the last message, as a string (Redis' JSON library keeps 14 digits of a number).
fn score(m: &MatchSummary) -> Option<String> {
    m.last_message_at
        .map(|at| at.timestamp_micros().to_string())
}

fn encode(m: &MatchSummary) -> Option<String> {
    let mut v = serde_json::to_value(m).ok()?;
    if let (Some(obj), Some(score)) = (v.as_object_mut(), score(m)) {
        obj.insert("_score".into(), serde_json::Value::String(score));
    }
    serde_json::to_string(&v).ok()
}

/// Most recently active first, then newest match, as the SQL orders them.
pub(crate) fn sort(list: &mut [MatchSummary]) {
    list.sort_by(|a, b| {
        b.last_message_at
            .cmp(&a.last_message_at)
            .then(b.last_message_id.cmp(&a.last_message_id))
            .then(b.created_at.cmp(&a.created_at))
            .then(a.character_id.cmp(&b.character_id))
    });
}

impl Cache {
    /// The user's match list from the hash; on a miss `load` runs and the list is stored.
    pub(crate) async fn match_list<E, F, Fut>(
        &self,
        user: Uuid,
        load: F,
    ) -> Result<Vec<MatchSummary>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<MatchSummary>, E>>,
    {
        let key = self.keys().match_list(user);
        let version_key = self.keys().match_list_version(user);
        let mut read = redis::pipe();
        read.hgetall(&key).get(&version_key);
        let Some((fields, version)) = self
            .pipe::<(Vec<(String, String)>, Option<String>)>(read)
            .await
        else {
            self.count(Family::MatchList, Outcome::Bypass);
            return load().await;
        };
        if !fields.is_empty() {
            let decoded: Option<Vec<MatchSummary>> = fields
                .iter()
                .filter(|(f, _)| f != SENTINEL)
                .map(|(_, json)| serde_json::from_str(json).ok())
                .collect();
            if let Some(mut list) = decoded {
                self.count(Family::MatchList, Outcome::Hit);
                sort(&mut list);
                return Ok(list);
            }
        }
        self.count(Family::MatchList, Outcome::Miss);
        let list = load().await?;
        let ttl = jittered(self.lifetime(Family::MatchList), &key);
        let script = redis::Script::new(POPULATE);
        let mut inv = script.key(&key);
        inv.key(&version_key)
            .arg(version.unwrap_or_default())
            .arg(ttl.as_millis() as u64)
            .arg(SENTINEL);
        for m in &list {
            if let Some(json) = encode(m) {
                inv.arg(&m.character_id).arg(json);
            }
        }
        let _: Option<i64> = self.redis(|r| async move { r.script(&inv).await }).await;
        Ok(list)
    }

    /// Whether `user` matched `character`, from the cached list when it is there: one round
    /// trip and nothing decoded. `None` when the list is not cached (or Redis cannot answer).
    pub(crate) async fn match_listed(&self, user: Uuid, character: &str) -> Option<bool> {
        let key = self.keys().match_list(user);
        let mut read = redis::pipe();
        read.exists(&key).hexists(&key, character);
        let (cached, listed): (bool, bool) = self.pipe(read).await?;
        if !cached {
            return None;
        }
        self.count(Family::MatchList, Outcome::Hit);
        Some(listed && character != SENTINEL)
    }

    /// A new message: its match's last message (if newer) and unread count, updated in place,
    /// as an update to run with others (one round trip).
    pub(crate) fn match_touch(&self, m: &Message) -> Update<'static> {
        static TOUCH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TOUCH));
        let unread = i64::from(m.sender != Sender::User && !m.is_read);
        let key = self.keys().match_list(m.user_id);
        let mut invocation = TOUCH_SCRIPT.key(&key);
        invocation
            .key(self.keys().match_list_version(m.user_id))
            .arg(VERSION_TTL.as_millis() as u64)
            .arg(&m.character_id)
            .arg(m.id)
            .arg(m.sender.as_str())
            .arg(&m.content)
            .arg(
                serde_json::to_value(m.created_at)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            )
            .arg(m.created_at.timestamp_micros().to_string())
            .arg(unread);
        Update { invocation, key }
    }

    /// Sets a match's unread count (0 after mark read).
    pub(crate) async fn set_match_unread(&self, user: Uuid, character: &str, unread: i64) {
        let script = redis::Script::new(SET_UNREAD);
        let mut inv = script.key(self.keys().match_list(user));
        inv.key(self.keys().match_list_version(user))
            .arg(VERSION_TTL.as_millis() as u64)
            .arg(character)
            .arg(unread);
        self.run_or_defer(inv, self.keys().match_list(user)).await;
    }

    /// Drops a user's match list (a new match, an edited or deleted message).
    pub(crate) async fn invalidate_match_list(&self, user: Uuid) {
        let script = redis::Script::new(INVALIDATE);
        let mut inv = script.key(self.keys().match_list(user));
        inv.key(self.keys().match_list_version(user))
            .arg(VERSION_TTL.as_millis() as u64);
        self.run_or_defer(inv, self.keys().match_list(user)).await;
    }
}
