//! Conversations: the cached window of the newest messages (appended in place on every send),
//! read state, the typing indicator, full-text search.

use std::sync::LazyLock;

use uuid::Uuid;

use super::Shared;
use crate::cache::window;
use crate::cache::{Family, Update};
use crate::models::{Message, MessageHit, NewMessage, Sender};
use crate::pagination::{Cursor, KeysetPage, clamp_limit};
use crate::pool::DbError;
use crate::queries::{generations, messages};

pub use crate::queries::messages::{Inserted, SendError};

/// What an edit or a deletion of one of the user's own messages did.
#[derive(Debug, Clone, PartialEq)]
pub enum Own {
    /// Done: the message as edited, or as it was before it was deleted.
    Done(Message),
    /// No message of the user's has this id.
    NotFound,
    /// The message is in the user's conversation but the character (or the system) wrote it.
    NotTheirs,
}

async fn own_or_not(
    conn: &mut diesel_async::AsyncPgConnection,
    user: Uuid,
    id: i64,
) -> Result<Own, DbError> {
    Ok(match messages::get(conn, user, id).await? {
        Some(_) => Own::NotTheirs,
        None => Own::NotFound,
    })
}

pub struct Conversations<'s>(pub(super) &'s Shared);

const INCR_IF_EXISTS: &str =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCR', KEYS[1]) end return -1";

impl Conversations<'_> {
    /// Newest first. The first page (up to [`window::WINDOW`] messages) comes from the cached
    /// window; older pages from PostgreSQL. `next` is set whenever the page is full.
    pub async fn page(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<KeysetPage<Message>, DbError> {
        let s = self.0;
        let limit = clamp_limit(limit);
        if before.is_some() {
            let mut conn = s.db.read().await?;
            return Ok(messages::latest(&mut conn, user, character, before, limit).await?);
        }
        let window = s
            .cache
            .conversation_window(user, character, || load_window(s, user, character))
            .await?;
        let (_, next) = window.first(limit as usize);
        Ok(KeysetPage {
            items: window.messages(limit as usize),
            next,
        })
    }

    /// [`Conversations::page`] as the response body, for the user's own conversation: `None`
    /// when the user has no match with this character. The first page goes out as the cache
    /// holds it, never decoded and encoded again, and a cached window proves the match by
    /// existing (one is only ever stored for a match, and dropped with it): one round trip.
    pub async fn page_body(
        &self,
        user: Uuid,
        character: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<Option<Vec<u8>>, DbError> {
        let s = self.0;
        let limit = clamp_limit(limit);
        if before.is_none() {
            let place = s.cache.conversation_place(user, character);
            let owned = character.to_owned();
            return s
                .first_page_body(
                    &place,
                    user,
                    character,
                    limit as usize,
                    move |s| async move {
                        Ok(window::Window::of(&load_window(&s, user, &owned).await?))
                    },
                )
                .await;
        }
        if !super::Matches(s).contains(user, character).await? {
            return Ok(None);
        }
        let page = self.page(user, character, before, limit).await?;
        super::body_of(&page).map(Some)
    }

    /// Stores a message once per client id and updates what it touches in place: the window,
    /// the unread count (when the character or the system writes), the match list.
    pub async fn send(&self, new: &NewMessage) -> Result<Inserted, SendError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let inserted = messages::insert_idempotent(&mut conn, new).await?;
        drop(conn);
        match &inserted {
            Inserted::Created(m) => after_new_message(s, m).await,
            // A retry: the first attempt may have committed and then died (or lost its
            // connection) before updating the caches, which would then miss this message
            // until their TTL. Dropping them costs one miss on a rare path.
            Inserted::Existing(m) => after_changed_message(s, m).await,
        }
        s.settle().await;
        Ok(inserted)
    }

    /// One message of the user's.
    pub async fn message(&self, user: Uuid, id: i64) -> Result<Option<Message>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(messages::get(&mut conn, user, id).await?)
    }

    /// Deletes one of the user's messages (its memories go with it); the window, unread count
    /// and match list are dropped.
    pub async fn delete(&self, user: Uuid, id: i64) -> Result<Option<Message>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let deleted = messages::delete(&mut conn, user, id).await?;
        drop(conn);
        if let Some(m) = &deleted {
            after_changed_message(s, m).await;
            s.settle().await;
        }
        Ok(deleted)
    }

    /// Edits one of the user's messages; the window and match list are dropped.
    pub async fn edit(
        &self,
        user: Uuid,
        id: i64,
        content: &str,
    ) -> Result<Option<Message>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let edited = messages::edit(&mut conn, user, id, content).await?;
        drop(conn);
        if let Some(m) = &edited {
            after_changed_message(s, m).await;
            s.settle().await;
        }
        Ok(edited)
    }

    /// Rewrites a message the user wrote (a character's words change through their reply's
    /// alternatives, not here). Its memories stay: they are the user's to edit. The window and
    /// the match list are dropped; the search vector follows the text (generated column).
    pub async fn edit_own(&self, user: Uuid, id: i64, content: &str) -> Result<Own, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let edited = messages::edit_own(&mut conn, user, id, content).await?;
        let own = match edited {
            Some(m) => Own::Done(m),
            None => own_or_not(&mut conn, user, id).await?,
        };
        drop(conn);
        if let Own::Done(m) = &own {
            after_changed_message(s, m).await;
            s.settle().await;
        }
        Ok(own)
    }

    /// Deletes a message the user wrote; what the character remembered from it and the
    /// generations that answered it go with it (foreign keys), the character's reply stays.
    /// The window, unread count and match list are dropped.
    pub async fn delete_own(&self, user: Uuid, id: i64) -> Result<Own, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let deleted = messages::delete_own(&mut conn, user, id).await?;
        let own = match deleted {
            Some(m) => Own::Done(m),
            None => own_or_not(&mut conn, user, id).await?,
        };
        drop(conn);
        if let Own::Done(m) = &own {
            after_changed_message(s, m).await;
            s.settle().await;
        }
        Ok(own)
    }

    /// Marks every conversation of the user read, in one statement; the conversations that
    /// changed get the same cache updates as [`Conversations::mark_read`]. Returns each of
    /// them with how many messages it had unread.
    pub async fn mark_all_read(&self, user: Uuid) -> Result<Vec<(String, i64)>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let changed = messages::mark_all_read(&mut conn, user).await?;
        drop(conn);
        for (character, _) in &changed {
            read_in_cache(s, user, character).await;
        }
        s.settle().await;
        Ok(changed)
    }

    /// Marks a conversation read and resets its cached unread count to 0.
    pub async fn mark_read(&self, user: Uuid, character: &str) -> Result<usize, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let n = messages::mark_read(&mut conn, user, character).await?;
        drop(conn);
        read_in_cache(s, user, character).await;
        s.settle().await;
        Ok(n)
    }

    /// Unread messages of a conversation: Redis (30 s), else counted on the partial index.
    pub async fn unread_count(&self, user: Uuid, character: &str) -> Result<i64, DbError> {
        let s = self.0;
        let key = s.cache.keys().unread(user, character);
        s.cache
            .get_or_load(Family::Unread, &key, || async {
                let mut conn = s.db.write().await?;
                Ok::<_, DbError>(messages::unread_count(&mut conn, user, character).await?)
            })
            .await
    }

    /// The newest message the user wrote in a conversation (what a reply answers).
    pub async fn latest_from_user(
        &self,
        user: Uuid,
        character: &str,
    ) -> Result<Option<i64>, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(generations::latest_user_message(&mut conn, user, character).await?)
    }

    /// French full-text search over the user's messages, best first.
    pub async fn search(
        &self,
        user: Uuid,
        query: &str,
        character: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MessageHit>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(messages::search(&mut conn, user, query, character, limit).await?)
    }

    /// Records who is typing in a conversation, for the typing TTL (10 s). Best effort: lost if Redis is down.
    pub async fn set_typing(&self, user: Uuid, character: &str, who: Sender) {
        let s = self.0;
        let ttl = s.cache.ttl(Family::Typing).map_or(10, |t| t.as_secs());
        let mut set = redis::cmd("SET");
        set.arg(s.cache.keys().typing(user, character))
            .arg(who.as_str())
            .arg("EX")
            .arg(ttl);
        let _: Option<()> = s.cache.cmd(set).await;
    }

    /// Who is typing, if anyone (`None` as well when Redis is down).
    pub async fn typing(&self, user: Uuid, character: &str) -> Option<Sender> {
        let s = self.0;
        let who: Option<String> = s
            .cache
            .cmd::<Option<String>>(redis::Cmd::get(s.cache.keys().typing(user, character)))
            .await
            .flatten();
        match who.as_deref() {
            Some("user") => Some(Sender::User),
            Some("character") => Some(Sender::Character),
            Some("system") => Some(Sender::System),
            _ => None,
        }
    }
}

/// What a new message makes stale, updated in place: the window (appended), the unread count
/// (+1 when the character or the system writes), the match list's entry.
pub(crate) async fn after_new_message(s: &Shared, m: &Message) {
    static INCR_SCRIPT: LazyLock<redis::Script> =
        LazyLock::new(|| redis::Script::new(INCR_IF_EXISTS));
    // One round trip for all of them: each is a hop a send waits on.
    let mut updates: Vec<Update<'_>> = s.cache.window_append(m).into_iter().collect();
    if m.sender != Sender::User && !m.is_read {
        let key = s.cache.keys().unread(m.user_id, &m.character_id);
        updates.push(Update {
            invocation: INCR_SCRIPT.key(&key),
            key,
        });
    }
    updates.push(s.cache.match_touch(m));
    s.cache.update_or_defer(updates).await;
}

/// What an edited or deleted message makes stale, dropped.
pub(crate) async fn after_changed_message(s: &Shared, m: &Message) {
    let keys = s.cache.keys();
    s.cache.invalidate_window(m.user_id, &m.character_id).await;
    s.cache.invalidate_match_list(m.user_id).await;
    s.cache
        .delete(&[keys.unread(m.user_id, &m.character_id)])
        .await;
}

/// The newest [`window::WINDOW`] messages, from the primary: a window must not miss a message
/// a replica has not seen yet.
async fn load_window(s: &Shared, user: Uuid, character: &str) -> Result<Vec<Message>, DbError> {
    let mut conn = s.db.write().await?;
    Ok(
        messages::latest(&mut conn, user, character, None, window::WINDOW as i64)
            .await?
            .items,
    )
}

/// A conversation was read: its unread count is 0 (set in place), the match list's entry too,
/// and its window (which holds the read flags it was loaded with) is dropped.
async fn read_in_cache(s: &Shared, user: Uuid, character: &str) {
    let keys = s.cache.keys();
    let unread = keys.unread(user, character);
    let mut pipe = redis::pipe();
    let ttl = s.cache.ttl(Family::Unread).map_or(30, |t| t.as_secs());
    pipe.cmd("SET")
        .arg(&unread)
        .arg(0)
        .arg("EX")
        .arg(ttl)
        .ignore();
    if s.cache.pipe::<()>(pipe).await.is_none() {
        s.cache.defer_delete(unread);
    }
    s.cache.set_match_unread(user, character, 0).await;
    // The window holds the read flags it was loaded with.
    s.cache.invalidate_window(user, character).await;
}
