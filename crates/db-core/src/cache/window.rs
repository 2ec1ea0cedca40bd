//! The conversation window: the latest 100 messages of a conversation, served from Redis as
//! one ready-to-send value.
//!
//! One string: an 8-digit count, then one entry per message, oldest first: the message's JSON
//! document as it goes out, a tab, `id,micros` (its keyset cursor), a line feed. Compact JSON never
//! holds a raw tab or line feed, so the entries split without parsing a document. An empty
//! conversation is the count `00000000` alone, still a hit. A hit is one round trip (its `GET` and
//! `PTTL`): the entries are cut apart and the newest are joined, newest first, into a page's
//! `items`; nothing is decoded or encoded again. A send `APPEND`s its entry after checking, against
//! the last entry's cursor, that it is the newest (a message racing in out of order drops the
//! window instead); the count is rewritten in place, and a quarter past [`WINDOW`] the oldest are
//! cut off in one rewrite, so a send costs Redis a few microseconds whatever the window holds. An
//! edit or delete drops the window. Every change bumps a version key; a reader that loaded from
//! PostgreSQL stores its window only if the version did not move meanwhile, so a send that lands
//! during a load can never be lost from the cache.

use std::sync::LazyLock;
use std::time::Duration;

use uuid::Uuid;

use super::{Cache, Family, Outcome, Update, jittered};
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
        Self::of_docs(messages.iter().filter_map(|m| {
            let doc = serde_json::to_vec(m).ok()?;
            Some((doc, m.id, m.created_at.timestamp_micros()))
        }))
    }

    /// A window of documents as they go out, newest first, each with its keyset cursor
    /// (`id`, `micros`): a conversation's messages, a gallery's photos.
    pub(crate) fn of_docs(docs: impl IntoIterator<Item = (Vec<u8>, i64, i64)>) -> Self {
        let mut w = Self::default();
        for (doc, id, at_micros) in docs {
            if !w.docs.is_empty() {
                w.docs.push(b',');
            }
            w.slots.push(Slot {
                len: doc.len(),
                id,
                at_micros,
            });
            w.docs.extend_from_slice(&doc);
        }
        w
    }

    /// The value as stored: the count, then `document\tid,micros\n` per message, oldest first.
    fn stored(&self) -> Vec<u8> {
        use std::io::Write;
        let mut ends = Vec::with_capacity(self.slots.len());
        let mut at = 0;
        for s in &self.slots {
            ends.push((at, at + s.len));
            at += s.len + 1;
        }
        let mut out = Vec::with_capacity(self.docs.len() + 8 + self.slots.len() * 36);
        let _ = write!(out, "{:08}", self.slots.len());
        for (s, (from, to)) in self.slots.iter().zip(ends).rev() {
            out.extend_from_slice(&self.docs[from..to]);
            end_entry(&mut out, s.id, s.at_micros);
        }
        out
    }

    /// Reads a stored value back; `None` when it is not one (then it is reloaded).
    fn parse(raw: &[u8]) -> Option<Self> {
        let count: usize = std::str::from_utf8(raw.get(..8)?).ok()?.parse().ok()?;
        let body = &raw[8..];
        let mut entries = Vec::with_capacity(count);
        if !body.is_empty() {
            if body.last() != Some(&b'\n') {
                return None;
            }
            for line in body[..body.len() - 1].split(|&b| b == b'\n') {
                let tab = line.iter().rposition(|&b| b == b'\t')?;
                let (id, at) = std::str::from_utf8(&line[tab + 1..])
                    .ok()?
                    .split_once(',')?;
                let slot = Slot {
                    len: tab,
                    id: id.parse().ok()?,
                    at_micros: at.parse().ok()?,
                };
                entries.push((&line[..tab], slot));
            }
        }
        if entries.len() != count {
            return None;
        }
        let mut w = Self {
            docs: Vec::with_capacity(body.len()),
            slots: Vec::with_capacity(count),
        };
        for (doc, slot) in entries.into_iter().rev() {
            if !w.docs.is_empty() {
                w.docs.push(b',');
            }
            w.docs.extend_from_slice(doc);
            w.slots.push(slot);
        }
        Some(w)
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

/// Ends a stored entry after its document: a tab, its cursor, a line feed — the one place the
/// format is written, for a loaded window and an appended message alike.
fn end_entry(out: &mut Vec<u8>, id: i64, at_micros: i64) {
    use std::io::Write;
    let _ = writeln!(out, "\t{id},{at_micros}");
}

/// `{"items":[<docs>],"next":<cursor or null>}`, as `KeysetPage` serializes.
pub fn page_body(docs: &[u8], next: Option<Cursor>) -> Vec<u8> {
    let mut body = Vec::with_capacity(docs.len() + 96);
    body.extend_from_slice(PAGE_OPEN);
    body.extend_from_slice(docs);
    close_page(&mut body, next);
    body
}

const PAGE_OPEN: &[u8] = b"{\"items\":[";

/// A conversation's first page straight from its stored window, as [`Window::page_body`]
/// makes it, without decoding the window: its newest `limit` entries are found from the end
/// (a byte search for each line feed and tab) and their documents copied once, into the body.
/// Only the count, the entries it reads and the last one's cursor are checked; `None` when those
/// are not a window's.
fn page_body_of_stored(raw: &[u8], limit: usize) -> Option<Vec<u8>> {
    let count: usize = std::str::from_utf8(raw.get(..8)?).ok()?.parse().ok()?;
    let entries = &raw[8..];
    let want = limit.min(count);
    if want == 0 {
        return (count > 0 || entries.is_empty()).then(|| page_body(b"", None));
    }
    if entries.last() != Some(&b'\n') {
        return None;
    }
    let mut body = Vec::with_capacity(entries.len() / count * want + 96);
    body.extend_from_slice(PAGE_OPEN);
    // `end`: where the entry being read ends (its line feed).
    let mut end = entries.len() - 1;
    let mut last = None;
    for n in 0..want {
        let start = memchr::memrchr(b'\n', &entries[..end]).map_or(0, |at| at + 1);
        let line = &entries[start..end];
        let tab = memchr::memrchr(b'\t', line)?;
        // Only the page's last cursor is read: it is the next page's.
        if n + 1 == want {
            let (id, at) = std::str::from_utf8(&line[tab + 1..])
                .ok()?
                .split_once(',')?;
            last = Some((id.parse::<i64>().ok()?, at.parse::<i64>().ok()?));
        }
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&line[..tab]);
        // The count and the entries must agree: as many as it says, no fewer.
        let more = start > 0;
        if more != (n + 1 < count) {
            return None;
        }
        end = start.saturating_sub(1);
    }
    let next = match last {
        Some((id, at)) if want == limit => Some(Cursor::new(
            chrono::DateTime::from_timestamp_micros(at)?,
            id,
        )),
        _ => None,
    };
    close_page(&mut body, next);
    Some(body)
}

/// `],"next":<cursor or null>}`: the end of a page's body.
fn close_page(body: &mut Vec<u8>, next: Option<Cursor>) {
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
}

// KEYS: window, version. ARGV: micros, id, entry, ttl ms, WINDOW, version ttl ms.
// 0: not cached; 1: in the window (or older than all of a full one); 2: dropped (no room found
// for it in the last 8 KB: not seen in practice). The newest message — almost every send — is
// an APPEND after reading the last entry's cursor; one that raced another is spliced in among
// the last entries. A quarter past WINDOW the oldest are cut off in one rewrite: every read
// fetches the whole value, so what it holds past WINDOW is sent for nothing (past twice WINDOW,
// as it once was, a read fetched a third more than it served).
const APPEND: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
local head = redis.call('GETRANGE', KEYS[1], 0, 7)
if #head ~= 8 then return 0 end
local n = tonumber(head)
if not n then redis.call('DEL', KEYS[1]) return 2 end
local at, id, entry, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[5])
local function older(eid, eat)
  eid, eat = tonumber(eid), tonumber(eat)
  return eat < at or (eat == at and eid < id)
end
local tid, tat = string.match(redis.call('GETRANGE', KEYS[1], -64, -1), '\t(%d+),(%-?%d+)\n$')
if n == 0 or (tid and older(tid, tat)) then
  redis.call('APPEND', KEYS[1], entry)
else
  local len = redis.call('STRLEN', KEYS[1])
  local from = math.max(8, len - 8192)
  local chunk = redis.call('GETRANGE', KEYS[1], from, -1)
  local ends = {}
  for eid, eat, stop in string.gmatch(chunk, '\t(%d+),(%-?%d+)\n()') do
    ends[#ends + 1] = {eid, eat, stop}
  end
  local at_pos = nil
  for i = #ends, 1, -1 do
    local e = ends[i]
    if tonumber(e[1]) == id then return 1 end
    if older(e[1], e[2]) then at_pos = e[3] break end
  end
  if not at_pos then
    if from > 8 then redis.call('DEL', KEYS[1]) return 2 end
    if n >= keep then return 1 end
    at_pos = 1
  end
  redis.call('SETRANGE', KEYS[1], from + at_pos - 1, entry .. string.sub(chunk, at_pos))
end
n = n + 1
if n > keep + math.floor(keep / 4) then
  local s = redis.call('GET', KEYS[1])
  local pos = 9
  for i = 1, n - keep do pos = string.find(s, '\n', pos, true) + 1 end
  redis.call('SET', KEYS[1], string.format('%08d', keep) .. string.sub(s, pos))
else
  redis.call('SETRANGE', KEYS[1], 0, string.format('%08d', n))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1";

// KEYS: window, version. ARGV: the version read before loading, ttl ms, the stored value.
const POPULATE: &str = r"
local v = redis.call('GET', KEYS[2])
if (v or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
return 1";

const INVALIDATE: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])";

/// A window with less than this left to live (a quarter of its lifetime, in ms) is loaded
/// again in the background when it is read. A quarter, not more: a key read all the time is then
/// loaded every three quarters of its TTL (it was once per TTL, when it expired), while most keys
/// read now and then are caught before they expire (`docs/SCALING.md`, "What sets the hit rate").
fn refresh_after_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis() / 4).unwrap_or(i64::MAX)
}

/// What a window read found.
pub(crate) enum Cached<T> {
    Hit(T),
    /// A hit in the last quarter of its lifetime: served as it is, and loaded again in the
    /// background before it expires.
    Aging(T),
    /// Not cached: the version to store a loaded window against.
    Miss(Option<String>),
    /// Redis cannot answer.
    Unavailable,
}

/// Where a window lives: its family (for its TTL and hit rate), its key and its version key.
#[derive(Clone)]
pub(crate) struct Place {
    family: Family,
    key: String,
    version: String,
}

impl Place {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn family(&self) -> Family {
        self.family
    }
}

impl Cache {
    /// A conversation's window.
    pub(crate) fn conversation_place(&self, user: Uuid, character: &str) -> Place {
        Place {
            family: Family::Conversation,
            key: self.keys().conversation(user, character),
            version: self.keys().conversation_version(user, character),
        }
    }

    /// A gallery's first page: the newest photos a character sent, as one window of their
    /// documents.
    pub(crate) fn gallery_place(&self, user: Uuid, character: &str) -> Place {
        Place {
            family: Family::PhotoPage,
            key: self.keys().photo_page(user, character),
            version: self.keys().photo_page_version(user, character),
        }
    }

    /// The window as cached: one round trip for a hit, two for a miss.
    pub(crate) async fn cached_window(&self, user: Uuid, character: &str) -> Cached<Window> {
        self.cached_as(&self.conversation_place(user, character), Window::parse)
            .await
    }

    /// The first page of a window as cached, ready to send: see [`page_body_of_stored`].
    pub(crate) async fn cached_page(&self, place: &Place, limit: usize) -> Cached<Vec<u8>> {
        self.cached_as(place, |raw| page_body_of_stored(raw, limit))
            .await
    }

    /// One round trip for the window and its remaining lifetime (and, on a miss, one more for
    /// its version, read before anything is loaded); `make` makes what the caller needs of the
    /// stored value (`None`: it is not a window, and is reloaded).
    async fn cached_as<T>(
        &self,
        place: &Place,
        make: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Cached<T> {
        let mut read = redis::pipe();
        read.get(&place.key).cmd("PTTL").arg(&place.key);
        let Some((raw, left_ms)) = self.pipe::<(Option<Vec<u8>>, i64)>(read).await else {
            self.count(place.family, Outcome::Bypass);
            return Cached::Unavailable;
        };
        if let Some(raw) = raw {
            if let Some(w) = make(&raw) {
                self.count(place.family, Outcome::Hit);
                let ttl = self.lifetime(place.family);
                // -1 (no lifetime) and -2 (gone since the GET) are never aging.
                return if (0..refresh_after_ms(ttl)).contains(&left_ms) {
                    Cached::Aging(w)
                } else {
                    Cached::Hit(w)
                };
            }
            tracing::warn!(key = place.key, "unreadable window; reloading it");
        }
        // A hit never needs the version, so only a miss asks for it.
        match self
            .cmd::<Option<String>>(redis::Cmd::get(&place.version))
            .await
        {
            Some(version) => {
                self.count(place.family, Outcome::Miss);
                Cached::Miss(version)
            }
            None => {
                self.count(place.family, Outcome::Bypass);
                Cached::Unavailable
            }
        }
    }

    /// Stores a conversation's window loaded from PostgreSQL (the newest [`WINDOW`]), unless
    /// the conversation changed since `version` was read.
    pub(crate) async fn store_window(
        &self,
        user: Uuid,
        character: &str,
        version: Option<String>,
        messages: &[Message],
    ) -> Window {
        let window = Window::of(&messages[..messages.len().min(WINDOW)]);
        self.store_at(&self.conversation_place(user, character), version, &window)
            .await;
        window
    }

    /// The version to load a window against in the background: the version key, created (as
    /// `0`) if it is missing, so that dropping it (an account's deletion unlinks every key of the
    /// account) makes the store fail instead of looking like "no change". `None`: Redis cannot
    /// answer.
    pub(crate) async fn pinned_version(&self, place: &Place) -> Option<String> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&place.version)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(VERSION_TTL.as_millis() as u64)
            .ignore()
            .get(&place.version);
        self.pipe::<(Option<String>,)>(pipe).await?.0
    }

    /// Stores a window loaded from PostgreSQL, unless its version moved since `version` was
    /// read (a change landed during the load: the next reader loads again).
    pub(crate) async fn store_at(&self, place: &Place, version: Option<String>, window: &Window) {
        let ttl = jittered(self.lifetime(place.family), &place.key);
        let script = redis::Script::new(POPULATE);
        let mut invocation = script.key(&place.key);
        invocation
            .key(&place.version)
            .arg(version.unwrap_or_default())
            .arg(ttl.as_millis() as u64)
            .arg(window.stored());
        let _: Option<i64> = self
            .redis(|r| async move { r.script(&invocation).await })
            .await;
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
            Cached::Hit(w) | Cached::Aging(w) => Ok(w),
            Cached::Unavailable => Ok(Window::of(&load().await?)),
            Cached::Miss(version) => {
                let loaded = load().await?;
                Ok(self.store_window(user, character, version, &loaded).await)
            }
        }
    }

    /// Adds a just-stored message to its conversation's window (when the window is cached),
    /// keeping the newest [`WINDOW`]: an update to run with the send's others (one round trip,
    /// [`Cache::update_or_defer`]), after the insert committed.
    pub(crate) fn window_append(&self, m: &Message) -> Option<Update<'static>> {
        static APPEND_SCRIPT: LazyLock<redis::Script> =
            LazyLock::new(|| redis::Script::new(APPEND));
        let mut entry = serde_json::to_vec(m).ok()?;
        end_entry(&mut entry, m.id, m.created_at.timestamp_micros());
        let key = self.keys().conversation(m.user_id, &m.character_id);
        let version_key = self.keys().conversation_version(m.user_id, &m.character_id);
        // The lifetime the window was stored with: each key's own (see `jittered`).
        let ttl = jittered(self.lifetime(Family::Conversation), &key);
        let mut invocation = APPEND_SCRIPT.key(&key);
        invocation
            .key(&version_key)
            .arg(m.created_at.timestamp_micros())
            .arg(m.id)
            .arg(entry)
            .arg(ttl.as_millis() as u64)
            .arg(WINDOW)
            .arg(VERSION_TTL.as_millis() as u64);
        Some(Update { invocation, key })
    }

    /// Drops a conversation's window (a message was edited or deleted).
    pub(crate) async fn invalidate_window(&self, user: Uuid, character: &str) {
        self.invalidate_at(&self.conversation_place(user, character))
            .await;
    }

    /// Drops a gallery's first page (a photo arrived, the match is gone).
    pub(crate) async fn invalidate_gallery(&self, user: Uuid, character: &str) {
        self.invalidate_at(&self.gallery_place(user, character))
            .await;
    }

    /// Drops a window and bumps its version, so that a load already under way does not store
    /// what it read before the change. Deferred if Redis cannot answer.
    pub(crate) async fn invalidate_at(&self, place: &Place) {
        let script = redis::Script::new(INVALIDATE);
        let mut invocation = script.key(&place.key);
        invocation
            .key(&place.version)
            .arg(VERSION_TTL.as_millis() as u64);
        self.run_or_defer(invocation, place.key.clone()).await;
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
        let stored = w.stored();
        assert!(
            stored.starts_with(b"00000003{\"id\":1}\t1,"),
            "oldest first"
        );
        let back = Window::parse(&stored).unwrap();
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
    fn a_page_read_from_the_stored_value_is_the_decoded_windows_page() {
        let docs: Vec<String> = (1..=7)
            .rev()
            .map(|i| format!(r#"{{"id":{i},"content":"m {i}"}}"#))
            .collect();
        let w = Window {
            docs: docs.join(",").into_bytes(),
            slots: (1..=7)
                .rev()
                .map(|i| slot(docs[7 - i as usize].len(), i))
                .collect(),
        };
        let stored = w.stored();
        for limit in [1, 2, 6, 7, 8, 50] {
            assert_eq!(
                page_body_of_stored(&stored, limit).map(String::from_utf8),
                Some(Ok(String::from_utf8(w.page_body(limit)).unwrap())),
                "limit {limit}"
            );
        }
        let empty = Window::default().stored();
        assert_eq!(
            page_body_of_stored(&empty, 50),
            Some(br#"{"items":[],"next":null}"#.to_vec())
        );
    }

    #[test]
    fn a_stored_value_that_is_not_a_window_gives_no_page() {
        for (raw, why) in [
            (&b"00000002{}\t1,5\n"[..], "fewer entries than counted"),
            (b"00000001{}\t1,5\n{}\t2,6\n", "more entries than counted"),
            (b"00000001{}\tx,5\n", "id"),
            (b"00000001{}\t1,5", "unterminated"),
            (b"00000001{}1,5\n", "no tab"),
            (b"0000001", "short"),
            (b"00000000{}\t1,5\n", "entries after a zero count"),
        ] {
            assert!(page_body_of_stored(raw, 50).is_none(), "{why}");
        }
    }

    #[test]
    fn fields_that_do_not_fit_together_are_not_a_window() {
        assert!(Window::parse(b"00000002{}\t1,5\n").is_none(), "count");
        assert!(Window::parse(b"00000001{}\tx,5\n").is_none(), "id");
        assert!(Window::parse(b"00000001{}\t1,5").is_none(), "unterminated");
        assert!(Window::parse(b"0000001").is_none(), "short");
        assert_eq!(Window::parse(b"00000000"), Some(Window::default()));
    }
}
