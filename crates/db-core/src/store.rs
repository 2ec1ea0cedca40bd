//! What services call: each operation reads through the cache or writes to PostgreSQL and
//! then updates or drops, right there, every cached value the write made stale. With Redis
//! down or caching off, every operation still returns what PostgreSQL holds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::affection::FlushReport;
use crate::cache::{Cache, Family, window};
use crate::models::{
    Character, Match, Message, NewMessage, NewPhoto, Photo, PhotoJob, Sender, User,
};
use crate::pagination::{Cursor, KeysetPage, clamp_limit};
use crate::pool::{Db, DbError};
use crate::queries::matches::{CreateMatchError, MatchSummary};
use crate::queries::messages::{InsertMessageError, Inserted};
use crate::queries::photo_jobs::{self, Delivered};
use crate::queries::users::{LeaderboardEntry, Rank};
use crate::queries::{characters, matches, messages, photos, sessions, users};
use crate::revocations::Revocations;

/// A user as their profile shows them (no secrets: this is what is cached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub xp: i64,
    pub created_at: DateTime<Utc>,
}

impl From<User> for Profile {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            xp: u.xp,
            created_at: u.created_at,
        }
    }
}

/// The first gallery page, as cached.
#[derive(Serialize, Deserialize)]
struct CachedPhotos {
    items: Vec<Photo>,
    more: bool,
}

/// Photos held in the cached first gallery page.
pub const CACHED_PHOTO_PAGE: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no match between this user and character")]
    NoMatch,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<InsertMessageError> for SendError {
    fn from(e: InsertMessageError) -> Self {
        match e {
            InsertMessageError::NoMatch => SendError::NoMatch,
            InsertMessageError::Db(e) => SendError::Db(e.into()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("no such character")]
    UnknownCharacter,
    #[error(transparent)]
    Db(#[from] DbError),
}

const INCR_IF_EXISTS: &str =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCR', KEYS[1]) end return -1";
const ZADD_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) end return -1";

/// PostgreSQL and the cache in front of it.
#[derive(Clone)]
pub struct Store {
    pub db: Db,
    pub cache: Cache,
    revocations: Revocations,
}

impl Store {
    pub fn new(db: Db, cache: Cache) -> Self {
        Self {
            db,
            cache,
            revocations: Revocations::new(),
        }
    }

    // ── sessions ─────────────────────────────────────────────────────────────────────────

    /// The revoked session families this process knows of (kept in step by
    /// [`Revocations::spawn_sync`]).
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Ends a session family: its refresh tokens stop working and its access tokens are refused
    /// by every process (recorded in PostgreSQL, announced through Redis).
    pub async fn revoke_family(&self, user: Uuid, family: Uuid) -> Result<(), DbError> {
        let mut conn = self.db.write().await?;
        sessions::revoke_family(&mut conn, user, family).await?;
        drop(conn);
        self.revocations.note(family, Utc::now());
        self.cache.publish_revocations(&[family]).await;
        Ok(())
    }

    /// Ends every session of a user (log out everywhere); returns how many families ended.
    pub async fn revoke_all_sessions(&self, user: Uuid) -> Result<usize, DbError> {
        let mut conn = self.db.write().await?;
        let families = sessions::revoke_all_for_user(&mut conn, user).await?;
        drop(conn);
        for f in &families {
            self.revocations.note(*f, Utc::now());
        }
        self.cache.publish_revocations(&families).await;
        Ok(families.len())
    }

    // ── users ────────────────────────────────────────────────────────────────────────────

    pub async fn profile(&self, user: Uuid) -> Result<Option<Profile>, DbError> {
        let key = self.cache.keys().user_profile(user);
        self.cache
            .get_or_load(Family::UserProfile, &key, || async {
                let mut conn = self.db.read().await?;
                Ok(users::find_by_id(&mut conn, user).await?.map(Profile::from))
            })
            .await
    }

    pub async fn update_display_name(
        &self,
        user: Uuid,
        name: &str,
    ) -> Result<Option<Profile>, DbError> {
        let mut conn = self.db.write().await?;
        let updated = users::update_display_name(&mut conn, user, name)
            .await?
            .map(Profile::from);
        drop(conn);
        self.cache
            .delete(&[self.cache.keys().user_profile(user)])
            .await;
        Ok(updated)
    }

    /// Adds XP; the profile is dropped and the leaderboard updated in place.
    pub async fn add_xp(&self, user: Uuid, delta: i64) -> Result<Option<i64>, DbError> {
        let mut conn = self.db.write().await?;
        let xp = users::add_xp(&mut conn, user, delta).await?;
        drop(conn);
        let keys = self.cache.keys();
        self.cache.delete(&[keys.user_profile(user)]).await;
        if let Some(xp) = xp {
            let script = redis::Script::new(ZADD_IF_EXISTS);
            let mut inv = script.key(keys.leaderboard());
            inv.arg(xp).arg(user.to_string());
            if self
                .cache
                .redis(|r| async move { r.script::<i64>(&inv).await })
                .await
                .is_none()
            {
                // Could not update it: rebuild it from PostgreSQL when Redis is back.
                self.cache.defer_delete(keys.leaderboard());
            }
        }
        Ok(xp)
    }

    /// Top users by XP, from the Redis sorted set (rebuilt from PostgreSQL when missing).
    pub async fn leaderboard(&self, limit: i64) -> Result<Vec<LeaderboardEntry>, DbError> {
        let limit = limit.clamp(1, 100);
        let top = match self.ranked_ids(limit).await? {
            Some(top) => top,
            None => {
                let mut conn = self.db.read().await?;
                return users::top_by_xp(&mut conn, limit).await.map_err(Into::into);
            }
        };
        let ids: Vec<Uuid> = top.iter().map(|(id, _)| *id).collect();
        let mut conn = self.db.read().await?;
        let mut entries = users::leaderboard_entries(&mut conn, &ids).await?;
        entries.sort_by_key(|e| ids.iter().position(|id| *id == e.user_id));
        Ok(entries)
    }

    /// A user's rank: 1 + the users with more XP (ties share a rank).
    pub async fn rank(&self, user: Uuid) -> Result<Option<Rank>, DbError> {
        let key = self.cache.keys().leaderboard();
        if self.ensure_leaderboard().await? {
            let mut pipe = redis::pipe();
            pipe.zscore(&key, user.to_string());
            if let Some((Some(xp),)) = self.cache.pipe::<(Option<i64>,)>(pipe).await {
                let mut count = redis::cmd("ZCOUNT");
                count.arg(&key).arg(format!("({xp}")).arg("+inf");
                if let Some(above) = self.cache.cmd::<i64>(count).await {
                    return Ok(Some(Rank {
                        xp,
                        rank: above + 1,
                    }));
                }
            }
        }
        let mut conn = self.db.read().await?;
        Ok(users::rank_of(&mut conn, user).await?)
    }

    async fn ranked_ids(&self, limit: i64) -> Result<Option<Vec<(Uuid, i64)>>, DbError> {
        if !self.ensure_leaderboard().await? {
            return Ok(None);
        }
        let mut range = redis::cmd("ZREVRANGE");
        range
            .arg(self.cache.keys().leaderboard())
            .arg(0)
            .arg(limit - 1)
            .arg("WITHSCORES");
        Ok(self
            .cache
            .cmd::<Vec<(String, i64)>>(range)
            .await
            .map(|rows| {
                rows.into_iter()
                    .filter_map(|(id, xp)| Some((id.parse().ok()?, xp)))
                    .collect()
            }))
    }

    /// Makes sure the leaderboard set exists, rebuilding it from PostgreSQL into a scratch key
    /// swapped in with RENAME (readers never see half of it). False if Redis is unavailable.
    async fn ensure_leaderboard(&self) -> Result<bool, DbError> {
        let key = self.cache.keys().leaderboard();
        match self.cache.cmd::<bool>(redis::Cmd::exists(&key)).await {
            None => return Ok(false),
            Some(true) => {
                self.cache
                    .count(Family::Leaderboard, crate::cache::Outcome::Hit);
                return Ok(true);
            }
            Some(false) => {}
        }
        self.cache
            .count(Family::Leaderboard, crate::cache::Outcome::Miss);
        let scratch = format!("{key}:rebuild:{}", Uuid::new_v4().simple());
        let mut after = None;
        let mut conn = self.db.read().await?;
        loop {
            let page = users::xp_page(&mut conn, after, 5_000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.0);
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&scratch);
            for (id, xp) in &page {
                zadd.arg(*xp).arg(id.to_string());
            }
            if self.cache.cmd::<i64>(zadd).await.is_none() {
                return Ok(false);
            }
        }
        let mut rename = redis::cmd("RENAME");
        rename.arg(&scratch).arg(&key);
        // No users at all: nothing to rename, and nothing to rank.
        Ok(after.is_some() && self.cache.cmd::<()>(rename).await.is_some())
    }

    // ── characters ───────────────────────────────────────────────────────────────────────

    /// The catalogue: from process memory, else Redis, else PostgreSQL.
    pub async fn characters(&self) -> Result<Arc<Vec<Character>>, DbError> {
        if let Some(hit) = self.cache.local().catalogue.get(&()).await {
            self.cache
                .count(Family::Character, crate::cache::Outcome::Hit);
            return Ok(hit);
        }
        let key = self.cache.keys().character_list();
        let list: Vec<Character> = self
            .cache
            .get_or_load(Family::Character, &key, || async {
                let mut conn = self.db.read().await?;
                Ok::<_, DbError>(characters::list(&mut conn).await?)
            })
            .await?;
        let list = Arc::new(list);
        if list.is_empty() {
            // Not loaded yet (a deployment's catalogue Job may still be running): ask again
            // next time rather than serve nothing for the cache's lifetime.
            self.cache.delete(&[key]).await;
        } else {
            self.cache.local().catalogue.insert((), list.clone()).await;
        }
        Ok(list)
    }

    /// One character of the catalogue. Looked up in the catalogue itself (in process memory),
    /// so that asking for ids that do not exist caches nothing anywhere.
    pub async fn character(&self, id: &str) -> Result<Option<Arc<Character>>, DbError> {
        if !crate::models::is_character_id(id) {
            return Ok(None);
        }
        let all = self.characters().await?;
        Ok(all.iter().find(|c| c.id == id).cloned().map(Arc::new))
    }

    /// Writes characters and tells every replica to drop its copies.
    pub async fn upsert_characters(&self, rows: &[Character]) -> Result<usize, DbError> {
        let mut conn = self.db.write().await?;
        let n = characters::upsert(&mut conn, rows).await?;
        drop(conn);
        for c in rows {
            self.cache.invalidate_characters(Some(&c.id)).await;
        }
        Ok(n)
    }

    // ── matches ──────────────────────────────────────────────────────────────────────────

    /// The user's matches with last message and unread count (one query on a miss), and the
    /// true affection (pending write-behind points included).
    pub async fn matches(&self, user: Uuid) -> Result<Vec<MatchSummary>, DbError> {
        let mut list = self.match_list(user).await?;
        if !list.is_empty() {
            // The true affection: what PostgreSQL held, plus pending and in-flight points.
            let characters: Vec<&str> = list.iter().map(|m| m.character_id.as_str()).collect();
            if let Some(pending) = self.cache.pending_affection_many(user, &characters).await {
                for (m, p) in list.iter_mut().zip(pending) {
                    m.affection = m
                        .affection
                        .saturating_add(p.clamp(i32::MIN.into(), i32::MAX.into()) as i32);
                }
            }
        }
        Ok(list)
    }

    /// The cached match list (one query on a miss), affection as PostgreSQL holds it.
    async fn match_list(&self, user: Uuid) -> Result<Vec<MatchSummary>, DbError> {
        self.cache
            .match_list(user, || async {
                let mut conn = self.db.write().await?;
                Ok::<_, DbError>(matches::list_with_last_message(&mut conn, user).await?)
            })
            .await
    }

    /// Whether the user matched the character: the check every conversation, gallery and
    /// reply makes first. A membership test on the cached list; on a miss, the list is loaded
    /// (and cached) as [`Store::matches`] would.
    pub async fn is_matched(&self, user: Uuid, character: &str) -> Result<bool, DbError> {
        if let Some(known) = self.cache.match_listed(user, character).await {
            return Ok(known);
        }
        let list = self.match_list(user).await?;
        Ok(list.iter().any(|m| m.character_id == character))
    }

    pub async fn create_match(
        &self,
        user: Uuid,
        character: &str,
    ) -> Result<(Match, bool), MatchError> {
        let mut conn = self.db.write().await?;
        let created = matches::create(&mut conn, user, character)
            .await
            .map_err(|e| match e {
                CreateMatchError::UnknownCharacter => MatchError::UnknownCharacter,
                CreateMatchError::Db(e) => MatchError::Db(e.into()),
            })?;
        drop(conn);
        if created.1 {
            self.cache.invalidate_match_list(user).await;
        }
        Ok(created)
    }

    // ── conversations ────────────────────────────────────────────────────────────────────

    /// Newest first. The first page (up to [`window::WINDOW`] messages) comes from the cached
    /// window; older pages from PostgreSQL. `next` is set whenever the page is full.
    pub async fn conversation(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<KeysetPage<Message>, DbError> {
        let limit = clamp_limit(limit);
        if before.is_some() {
            let mut conn = self.db.read().await?;
            return Ok(messages::latest(&mut conn, user, character, before, limit).await?);
        }
        let entries = self.window(user, character, limit).await?;
        let items: Vec<Message> = entries.iter().filter_map(window::Entry::message).collect();
        let next = (items.len() == limit as usize)
            .then(|| items.last().map(|m| Cursor::new(m.created_at, m.id)))
            .flatten();
        Ok(KeysetPage { items, next })
    }

    /// [`Store::conversation`] as JSON documents, for a handler that only passes them on: the
    /// first page goes out as the cache holds it, never decoded and encoded again.
    pub async fn conversation_json(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<KeysetPage<Box<serde_json::value::RawValue>>, DbError> {
        let limit = clamp_limit(limit);
        if before.is_some() {
            let page = self.conversation(user, character, before, limit).await?;
            return Ok(KeysetPage {
                items: page
                    .items
                    .iter()
                    .filter_map(|m| serde_json::value::to_raw_value(m).ok())
                    .collect(),
                next: page.next,
            });
        }
        let entries = self.window(user, character, limit).await?;
        let next = (entries.len() == limit as usize)
            .then(|| {
                let last = entries.last()?;
                Some(Cursor::new(
                    chrono::DateTime::from_timestamp_micros(last.at_micros)?,
                    last.id,
                ))
            })
            .flatten();
        Ok(KeysetPage {
            items: entries.into_iter().map(|e| e.json).collect(),
            next,
        })
    }

    /// The first page from the cached window (loaded from the primary on a miss).
    async fn window(
        &self,
        user: Uuid,
        character: &str,
        limit: i64,
    ) -> Result<Vec<window::Entry>, DbError> {
        self.cache
            .conversation_window(user, character, limit as usize, || async {
                // The primary: a window must not miss a message a replica has not seen yet.
                let mut conn = self.db.write().await?;
                let page =
                    messages::latest(&mut conn, user, character, None, window::WINDOW as i64)
                        .await?;
                Ok::<_, DbError>(page.items)
            })
            .await
    }

    /// Stores a message once per client id and updates the caches it touches: the window
    /// (appended in place), the unread count (+1 when the character or the system writes), the
    /// match list (dropped).
    pub async fn send(&self, new: &NewMessage) -> Result<Inserted, SendError> {
        let mut conn = self.db.write().await?;
        let inserted = messages::insert_idempotent(&mut conn, new).await?;
        drop(conn);
        if let Inserted::Created(m) = &inserted {
            self.after_new_message(m).await;
        }
        Ok(inserted)
    }

    async fn after_new_message(&self, m: &Message) {
        let keys = self.cache.keys();
        self.cache.append_to_window(m).await;
        if m.sender != Sender::User && !m.is_read {
            let script = redis::Script::new(INCR_IF_EXISTS);
            let unread = keys.unread(m.user_id, &m.character_id);
            let inv = script.key(&unread);
            if self
                .cache
                .redis(|r| async move { r.script::<i64>(&inv).await })
                .await
                .is_none()
            {
                self.cache.defer_delete(unread);
            }
        }
        self.cache.touch_match_list(m).await;
    }

    /// Deletes one of the user's messages; the window, unread count and match list are dropped.
    pub async fn delete_message(&self, user: Uuid, id: i64) -> Result<Option<Message>, DbError> {
        let mut conn = self.db.write().await?;
        let deleted = messages::delete(&mut conn, user, id).await?;
        drop(conn);
        if let Some(m) = &deleted {
            self.after_changed_message(m).await;
        }
        Ok(deleted)
    }

    /// Edits one of the user's messages; the window and match list are dropped.
    pub async fn edit_message(
        &self,
        user: Uuid,
        id: i64,
        content: &str,
    ) -> Result<Option<Message>, DbError> {
        let mut conn = self.db.write().await?;
        let edited = messages::edit(&mut conn, user, id, content).await?;
        drop(conn);
        if let Some(m) = &edited {
            self.after_changed_message(m).await;
        }
        Ok(edited)
    }

    async fn after_changed_message(&self, m: &Message) {
        let keys = self.cache.keys();
        self.cache
            .invalidate_window(m.user_id, &m.character_id)
            .await;
        self.cache.invalidate_match_list(m.user_id).await;
        self.cache
            .delete(&[keys.unread(m.user_id, &m.character_id)])
            .await;
    }

    /// Marks a conversation read and resets its cached unread count to 0.
    pub async fn mark_read(&self, user: Uuid, character: &str) -> Result<usize, DbError> {
        let mut conn = self.db.write().await?;
        let n = messages::mark_read(&mut conn, user, character).await?;
        drop(conn);
        let keys = self.cache.keys();
        let unread = keys.unread(user, character);
        let mut pipe = redis::pipe();
        let ttl = Family::Unread.ttl().map_or(30, |t| t.as_secs());
        pipe.cmd("SET")
            .arg(&unread)
            .arg(0)
            .arg("EX")
            .arg(ttl)
            .ignore();
        if self.cache.pipe::<()>(pipe).await.is_none() {
            self.cache.defer_delete(unread);
        }
        self.cache.set_match_unread(user, character, 0).await;
        // The window holds the read flags it was loaded with.
        self.cache.invalidate_window(user, character).await;
        Ok(n)
    }

    /// Unread messages of a conversation: Redis (30 s), else counted on the partial index.
    pub async fn unread_count(&self, user: Uuid, character: &str) -> Result<i64, DbError> {
        let key = self.cache.keys().unread(user, character);
        self.cache
            .get_or_load(Family::Unread, &key, || async {
                let mut conn = self.db.write().await?;
                Ok::<_, DbError>(messages::unread_count(&mut conn, user, character).await?)
            })
            .await
    }

    // ── typing ───────────────────────────────────────────────────────────────────────────

    /// Records who is typing in a conversation, for 10 s. Best effort: lost if Redis is down.
    pub async fn set_typing(&self, user: Uuid, character: &str, who: Sender) {
        let ttl = Family::Typing.ttl().map_or(10, |t| t.as_secs());
        let mut set = redis::cmd("SET");
        set.arg(self.cache.keys().typing(user, character))
            .arg(who.as_str())
            .arg("EX")
            .arg(ttl);
        let _: Option<()> = self.cache.cmd(set).await;
    }

    /// Who is typing, if anyone (`None` as well when Redis is down).
    pub async fn typing(&self, user: Uuid, character: &str) -> Option<Sender> {
        let who: Option<String> = self
            .cache
            .cmd::<Option<String>>(redis::Cmd::get(self.cache.keys().typing(user, character)))
            .await
            .flatten();
        match who.as_deref() {
            Some("user") => Some(Sender::User),
            Some("character") => Some(Sender::Character),
            Some("system") => Some(Sender::System),
            _ => None,
        }
    }

    // ── photos ───────────────────────────────────────────────────────────────────────────

    /// The gallery, newest first: the first page from the cache, older pages from PostgreSQL.
    pub async fn photos(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<KeysetPage<Photo>, DbError> {
        let limit = clamp_limit(limit);
        if before.is_some() || limit as usize > CACHED_PHOTO_PAGE {
            let mut conn = self.db.read().await?;
            return Ok(photos::latest(&mut conn, user, character, before, limit).await?);
        }
        let key = self.cache.keys().photo_page(user, character);
        let cached: CachedPhotos = self
            .cache
            .get_or_load(Family::PhotoPage, &key, || async {
                let mut conn = self.db.write().await?;
                let page =
                    photos::latest(&mut conn, user, character, None, CACHED_PHOTO_PAGE as i64)
                        .await?;
                Ok::<_, DbError>(CachedPhotos {
                    more: page.next.is_some(),
                    items: page.items,
                })
            })
            .await?;
        let more = cached.items.len() > limit as usize || cached.more;
        let mut items = cached.items;
        items.truncate(limit as usize);
        let next = if more {
            items.last().map(|p| Cursor::new(p.received_at, p.id))
        } else {
            None
        };
        Ok(KeysetPage { items, next })
    }

    pub async fn add_photo(&self, new: &NewPhoto) -> Result<Photo, DbError> {
        let mut conn = self.db.write().await?;
        let photo = photos::insert(&mut conn, new).await?;
        drop(conn);
        self.cache
            .delete(&[self.cache.keys().photo_page(new.user_id, &new.character_id)])
            .await;
        Ok(photo)
    }

    /// Finishes a photo job (see [`photo_jobs::complete`]) and updates the caches the new
    /// photo and its message touch. `None` if the attempt no longer held the job.
    pub async fn deliver_photo(
        &self,
        job: &PhotoJob,
        photo: &NewPhoto,
        caption: &str,
    ) -> Result<Option<Delivered>, DbError> {
        let mut conn = self.db.write().await?;
        let delivered = photo_jobs::complete(&mut conn, job, photo, caption).await?;
        drop(conn);
        if let Some(d) = &delivered {
            self.cache
                .delete(&[self.cache.keys().photo_page(job.user_id, &job.character_id)])
                .await;
            self.after_new_message(&d.message).await;
        }
        Ok(delivered)
    }

    // ── affection ────────────────────────────────────────────────────────────────────────

    pub async fn add_affection(
        &self,
        user: Uuid,
        character: &str,
        delta: i32,
    ) -> Result<i64, DbError> {
        self.cache
            .add_affection(&self.db, user, character, delta)
            .await
    }

    pub async fn affection(&self, user: Uuid, character: &str) -> Result<Option<i64>, DbError> {
        self.cache.affection(&self.db, user, character).await
    }

    pub async fn flush_affection(&self) -> Result<FlushReport, DbError> {
        self.cache.flush_all_affection(&self.db).await
    }

    // ── warming ──────────────────────────────────────────────────────────────────────────

    /// The guide's `warm_cache_for_user`, run in the background so login does not wait: the
    /// profile, the match list and the windows of the three most recent conversations.
    pub fn warm_user(&self, user: Uuid) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let warm = async {
                store.profile(user).await?;
                let list = store.matches(user).await?;
                for m in list.iter().filter(|m| m.last_message_at.is_some()).take(3) {
                    store
                        .conversation(user, &m.character_id, None, window::WINDOW as i64)
                        .await?;
                }
                Ok::<_, DbError>(())
            };
            if let Err(e) = warm.await {
                tracing::debug!(error = %e, %user, "cache warming failed");
            }
        })
    }
}
