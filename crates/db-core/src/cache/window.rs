//! The conversation window: the latest 100 messages of a conversation, served from Redis as
//! one ready-to-send value.
//!
//! A hash of three fields: `d`, the messages' JSON documents joined by commas, newest first —
//! the bytes of a page's `items` array as they go out; `m`, one `length,id,micros;` entry per
//! message in the same order (where each document ends, and what a keyset cursor needs); `n`,
//! how many. An empty conversation is an empty `d`, still a hit. A read is one `HMGET` and a
//! slice: nothing is parsed or encoded again. A send splices its message in and trims, in a
//! script, atomically, in the right place even when sends race; an edit or delete drops the
//! window. Every change bumps a version key; a reader that loaded from PostgreSQL
//! stores its window only if the version did not move meanwhile, so a send that lands during a
//! load can never be lost from the cache.

use std::time::Duration;

use uuid::Uuid;

use super::{Cache, Family, Outcome};
use crate::models::Message;
use crate::pagination::Cursor;

/// Messages the window holds.
pub const WINDOW: usize = 100;
const VERSION_TTL: Duration = Duration::from_secs(3600);

/// Where one message's document ends in the window, and its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    len: usize,
    id: i64,
    at_micros: i64,
}

/// A conversation's newest messages as Redis holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// The documents joined by commas, newest first.
    docs: Vec<u8>,
    slots: Vec<Slot>,
}

impl Window {
    pub(crate) fn of(messages: &[Message]) -> Self {
        let mut w = Self::default();
        for m in messages {
            let Ok(doc) = serde_json::to_vec(m) else {
                continue;
            };
            if !w.docs.is_empty() {
                w.docs.push(b',');
            }
            w.slots.push(Slot {
                len: doc.len(),
                id: m.id,
                at_micros: m.created_at.timestamp_micros(),
            });
            w.docs.extend_from_slice(&doc);
        }
        w
    }

    /// `m` as stored: `len,id,micros;` per message.
    fn meta(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.slots.len() * 28);
        for s in &self.slots {
            let _ = write!(out, "{},{},{};", s.len, s.id, s.at_micros);
        }
        out
    }

    /// Reads a window back; `None` when the fields do not fit together (then it is reloaded).
    fn parse(docs: Vec<u8>, meta: &str) -> Option<Self> {
        let mut slots = Vec::with_capacity(WINDOW);
        for entry in meta.split_terminator(';') {
            let mut parts = entry.splitn(3, ',');
            slots.push(Slot {
                len: parts.next()?.parse().ok()?,
                id: parts.next()?.parse().ok()?,
                at_micros: parts.next()?.parse().ok()?,
            });
        }
        let expected = slots.iter().map(|s| s.len).sum::<usize>() + slots.len().saturating_sub(1);
        (expected == docs.len()).then_some(Self { docs, slots })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The first `limit` documents (newest first, joined by commas) and, when that many were
    /// there, the cursor of the page after them.
    pub fn first(&self, limit: usize) -> (&[u8], Option<Cursor>) {
        let n = limit.min(self.slots.len());
        let end = self.slots[..n].iter().map(|s| s.len).sum::<usize>() + n.saturating_sub(1);
        let next = (n == limit && n > 0)
            .then(|| {
                let last = self.slots[n - 1];
                Some(Cursor::new(
                    chrono::DateTime::from_timestamp_micros(last.at_micros)?,
                    last.id,
                ))
            })
            .flatten();
        (&self.docs[..end], next)
    }

    /// The first page as the response body of a `KeysetPage<Message>`: the documents as they
    /// are, wrapped.
    pub fn page_body(&self, limit: usize) -> Vec<u8> {
        let (docs, next) = self.first(limit);
        page_body(docs, next)
    }

    /// The first `limit` messages, decoded.
    pub fn messages(&self, limit: usize) -> Vec<Message> {
        let (docs, _) = self.first(limit);
        let mut array = Vec::with_capacity(docs.len() + 2);
        array.push(b'[');
        array.extend_from_slice(docs);
        array.push(b']');
        serde_json::from_slice(&array).unwrap_or_default()
    }
}

/// `{"items":[<docs>],"next":<cursor or null>}`, as `KeysetPage` serializes.
pub fn page_body(docs: &[u8], next: Option<Cursor>) -> Vec<u8> {
    let mut body = Vec::with_capacity(docs.len() + 96);
    body.extend_from_slice(b"{\"items\":[");
    body.extend_from_slice(docs);
    body.extend_from_slice(b"],\"next\":");
    match next {
        Some(c) => {
            body.push(b'"');
            body.extend_from_slice(c.to_string().as_bytes());
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    body
}

// KEYS: window, version. ARGV: micros, id, document, ttl ms, WINDOW, version ttl ms.
// Finds where the message goes (usually first: the newest), splices its document and its slot
// in, and trims the oldest past WINDOW.
const APPEND: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
local w = redis.call('HMGET', KEYS[1], 'd', 'm', 'n')
if not w[1] or not w[2] or not w[3] then return 0 end
local at, id, doc = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local d, m, n = w[1], w[2], tonumber(w[3])
local pos, mpos, off, moff = nil, nil, 0, 0
for entry in string.gmatch(m, '[^;]*;') do
  local len, eid, eat = string.match(entry, '^(%d+),(%d+),(%-?%d+);$')
  len, eid, eat = tonumber(len), tonumber(eid), tonumber(eat)
  if eid == id then return 1 end
  if eat < at or (eat == at and eid < id) then pos, mpos = off, moff break end
  off = off + len + 1
  moff = moff + #entry
end
if not pos then
  if n >= tonumber(ARGV[5]) then return 1 end
  pos, mpos = off, moff
end
if d == '' then d = doc
elseif pos > #d then d = d .. ',' .. doc
else d = string.sub(d, 1, pos) .. doc .. ',' .. string.sub(d, pos + 1) end
m = string.sub(m, 1, mpos) .. #doc .. ',' .. ARGV[2] .. ',' .. ARGV[1] .. ';' .. string.sub(m, mpos + 1)
n = n + 1
if n > tonumber(ARGV[5]) then
  local s, _, len = string.find(m, '(%d+),[^;]*;$')
  m = string.sub(m, 1, s - 1)
  d = string.sub(d, 1, #d - tonumber(len) - 1)
  n = n - 1
end
redis.call('HSET', KEYS[1], 'd', d, 'm', m, 'n', n)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1";

// KEYS: window, version. ARGV: the version read before loading, ttl ms, d, m, n.
const POPULATE: &str = r"
local v = redis.call('GET', KEYS[2])
if (v or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[3], 'm', ARGV[4], 'n', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

const INVALIDATE: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])";

/// What a window read found.
pub(crate) enum Cached {
    Hit(Window),
    /// Not cached: the version to store a loaded window against.
    Miss(Option<String>),
    /// Redis cannot answer.
    Unavailable,
}

impl Cache {
    /// The window as cached, in one round trip.
    pub(crate) async fn cached_window(&self, user: Uuid, character: &str) -> Cached {
        let key = self.keys().conversation(user, character);
        let version_key = self.keys().conversation_version(user, character);
        let mut read = redis::pipe();
        read.cmd("HMGET")
            .arg(&key)
            .arg("d")
            .arg("m")
            .get(&version_key);
        type Fields = (Option<Vec<u8>>, Option<String>);
        let Some(((docs, meta), version)) = self.pipe::<(Fields, Option<String>)>(read).await
        else {
            self.count(Family::Conversation, Outcome::Bypass);
            return Cached::Unavailable;
        };
        if let (Some(docs), Some(meta)) = (docs, meta) {
            if let Some(w) = Window::parse(docs, &meta) {
                self.count(Family::Conversation, Outcome::Hit);
                return Cached::Hit(w);
            }
            tracing::warn!(key, "unreadable conversation window; reloading it");
        }
        self.count(Family::Conversation, Outcome::Miss);
        Cached::Miss(version)
    }

    /// Stores a window loaded from PostgreSQL (the newest [`WINDOW`]), unless the conversation
    /// changed since `version` was read.
    pub(crate) async fn store_window(
        &self,
        user: Uuid,
        character: &str,
        version: Option<String>,
        messages: &[Message],
    ) -> Window {
        let window = Window::of(&messages[..messages.len().min(WINDOW)]);
        let ttl = self
            .ttl(Family::Conversation)
            .unwrap_or(Duration::from_secs(300));
        let script = redis::Script::new(POPULATE);
        let mut invocation = script.key(self.keys().conversation(user, character));
        invocation
            .key(self.keys().conversation_version(user, character))
            .arg(version.unwrap_or_default())
            .arg(ttl.as_millis() as u64)
            .arg(&window.docs)
            .arg(window.meta())
            .arg(window.len());
        let _: Option<i64> = self
            .redis(|r| async move { r.script(&invocation).await })
            .await;
        window
    }

    /// The window, loaded with `load` (the newest [`WINDOW`] messages) on a miss and stored.
    pub(crate) async fn conversation_window<E, F, Fut>(
        &self,
        user: Uuid,
        character: &str,
        load: F,
    ) -> Result<Window, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Message>, E>>,
    {
        match self.cached_window(user, character).await {
            Cached::Hit(w) => Ok(w),
            Cached::Unavailable => Ok(Window::of(&load().await?)),
            Cached::Miss(version) => {
                let loaded = load().await?;
                Ok(self.store_window(user, character, version, &loaded).await)
            }
        }
    }

    /// Adds a just-stored message to its conversation's window (when the window is cached),
    /// keeping the newest [`WINDOW`]. Call after the insert committed.
    pub(crate) async fn append_to_window(&self, m: &Message) {
        let Ok(doc) = serde_json::to_vec(m) else {
            return;
        };
        let key = self.keys().conversation(m.user_id, &m.character_id);
        let version_key = self.keys().conversation_version(m.user_id, &m.character_id);
        let ttl = self
            .ttl(Family::Conversation)
            .unwrap_or(Duration::from_secs(300));
        let script = redis::Script::new(APPEND);
        let mut invocation = script.key(&key);
        invocation
            .key(&version_key)
            .arg(m.created_at.timestamp_micros())
            .arg(m.id)
            .arg(doc)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(len: usize, id: i64) -> Slot {
        Slot {
            len,
            id,
            at_micros: 1_764_000_000_000_000 + id,
        }
    }

    #[test]
    fn a_window_reads_back_and_slices_on_document_boundaries() {
        let w = Window {
            docs: br#"{"id":3},{"id":2},{"id":1}"#.to_vec(),
            slots: vec![slot(8, 3), slot(8, 2), slot(8, 1)],
        };
        let back = Window::parse(w.docs.clone(), &w.meta()).unwrap();
        assert_eq!(back, w);
        let (docs, next) = w.first(2);
        assert_eq!(docs, br#"{"id":3},{"id":2}"#);
        assert_eq!(
            next.unwrap().to_string(),
            Cursor::new(
                chrono::DateTime::from_timestamp_micros(1_764_000_000_000_002).unwrap(),
                2
            )
            .to_string()
        );
        let (docs, next) = w.first(50);
        assert_eq!(docs, w.docs.as_slice());
        assert!(next.is_none(), "fewer than asked: no page after");
        assert_eq!(
            String::from_utf8(Window::default().page_body(50)).unwrap(),
            r#"{"items":[],"next":null}"#
        );
    }

    #[test]
    fn fields_that_do_not_fit_together_are_not_a_window() {
        assert!(Window::parse(b"{}".to_vec(), "3,1,5;").is_none());
        assert!(Window::parse(b"{}".to_vec(), "2,x,5;").is_none());
        assert!(Window::parse(Vec::new(), "").is_some());
    }
}
