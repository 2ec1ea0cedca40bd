//! Character replies: claimed once per user message (at most one running per conversation,
//! across every replica), their tokens recorded as they come (a reconnecting client is replayed
//! them), and completed in one transaction with everything the reply is worth.

use std::time::Duration;

use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::Shared;
use crate::models::{Generation, GenerationStatus, Message};
use crate::pool::DbError;
use crate::queries::generations::{self, Claim};

pub use crate::queries::generations::{Completed, Picked, Reward};

pub struct Generations<'s>(pub(super) &'s Shared);

/// What a reply is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub user: Uuid,
    pub character: &'a str,
    pub user_message_id: i64,
    /// Who writes it (recorded with the generation).
    pub provider: &'a str,
    /// Write the finished reply again (a swipe).
    pub regenerate: bool,
    /// Extend the finished reply ("continue"): a new alternative that starts with its text.
    pub extend: bool,
    /// Generations the user may start in any 24 hours.
    pub per_day: i64,
    /// How long a writer holds a generation without renewing it.
    pub lease: Duration,
    /// The client's idempotency key: asked again with it, the reply it got is followed or
    /// replayed, never written once more.
    pub client_key: Option<Uuid>,
}

/// How asking for a reply went.
#[derive(Debug)]
pub enum Start {
    /// This caller writes it. `replaces` is the reply a swipe rewrites; `took_over` says a dead
    /// writer's generation of this message was retired for it.
    New {
        generation: Generation,
        replaces: Option<i64>,
        took_over: bool,
    },
    /// Already answered, or being answered (by this replica or another).
    Existing(Generation),
    /// Another message of the conversation is being answered right now.
    Busy,
    /// A continuation was asked for and the message has no finished reply to extend.
    NothingToContinue,
    /// The user's generations of the last 24 hours are spent; the oldest ages out then.
    QuotaSpent { retry_after: u64 },
}

/// The stored form of a client's `Idempotency-Key`: any string the client chose (a UUID, most
/// often), digested to the 16 bytes the column holds, so that no key is refused and none can
/// outgrow its index. `None` for a key of only white space.
pub fn client_key(raw: &[u8]) -> Option<Uuid> {
    use sha2::{Digest, Sha256};
    let raw = raw.trim_ascii();
    if raw.is_empty() {
        return None;
    }
    let digest = Sha256::digest(raw);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Some(Uuid::from_bytes(bytes))
}

impl Generations<'_> {
    /// Claims the reply to a user message, once across every replica. Everything is decided
    /// under the conversation's lock: what exists, what a dead writer left (its lease ran out:
    /// retired, and its work started again once), the quota, the swipe.
    pub async fn start(&self, ask: Ask<'_>) -> Result<Start, DbError> {
        let mut conn = self.0.db.write().await?;
        let started = conn
            .transaction(async |conn| {
                generations::lock_conversation(conn, ask.user, ask.character).await?;
                let retired = generations::retire_expired(conn, ask.user, ask.character).await?;
                if let Some(key) = ask.client_key
                    && let Some(asked) = generations::by_client_key(conn, ask.user, key).await?
                {
                    match asked.status {
                        GenerationStatus::Running | GenerationStatus::Done => {
                            return Ok(Start::Existing(asked));
                        }
                        // Written, then replaced by a later swipe: the reply as it stands.
                        GenerationStatus::Superseded if asked.content.is_some() => {
                            if let Some(live) =
                                generations::for_message(conn, asked.user_message_id).await?
                            {
                                return Ok(Start::Existing(live));
                            }
                        }
                        // It came to nothing: asked again, it is written now, under the key.
                        _ => {}
                    }
                    generations::release_client_key(conn, asked.id).await?;
                }
                let orphan = retired
                    .iter()
                    .find(|g| g.user_message_id == ask.user_message_id);
                let existing = generations::for_message(conn, ask.user_message_id).await?;
                let rewrite = ask.regenerate || ask.extend;
                if let Some(g) = &existing
                    && (!rewrite || g.is_running())
                {
                    return Ok(Start::Existing(g.clone()));
                }
                if ask.extend && existing.is_none() && orphan.is_none() {
                    return Ok(Start::NothingToContinue);
                }
                let day = chrono::Duration::days(1);
                let (started, oldest) =
                    generations::started_since(conn, ask.user, chrono::Utc::now() - day).await?;
                if started >= ask.per_day && orphan.is_none() {
                    let retry_after = oldest
                        .map(|o| (o + day - chrono::Utc::now()).num_seconds().max(1) as u64)
                        .unwrap_or(3600);
                    return Ok(Start::QuotaSpent { retry_after });
                }
                // A swipe retires the finished reply (kept as an alternative); the new
                // generation writes over it. A continuation does the same, starting from the
                // reply's text. A dead swipe's or continuation's successor does the same work.
                let (replaces, prefix) = match orphan {
                    Some(o) => (o.replaces_message_id, o.prefix.clone()),
                    None if rewrite => {
                        let replaces =
                            generations::supersede_done(conn, ask.user_message_id).await?;
                        let prefix = match replaces {
                            Some(id) if ask.extend => {
                                crate::queries::messages::get(conn, ask.user, id)
                                    .await?
                                    .map(|m| m.content)
                            }
                            _ => None,
                        };
                        (replaces, prefix)
                    }
                    None => (None, None),
                };
                Ok::<_, diesel::result::Error>(
                    match generations::claim(
                        conn,
                        ask.user,
                        ask.character,
                        ask.user_message_id,
                        ask.provider,
                        replaces,
                        prefix.as_deref(),
                        ask.client_key,
                        ask.lease,
                    )
                    .await?
                    {
                        Claim::New(generation) => Start::New {
                            generation,
                            replaces,
                            took_over: orphan.is_some(),
                        },
                        Claim::Existing(g) => Start::Existing(g),
                        Claim::Busy => Start::Busy,
                    },
                )
            })
            .await?;
        Ok(started)
    }

    /// Every finished version of one of the user's replies, oldest first (the `done` one is
    /// the picked one); empty for a message that is not a reply of theirs.
    pub async fn alternatives(&self, user: Uuid, reply: i64) -> Result<Vec<Generation>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(generations::alternatives(&mut conn, user, reply).await?)
    }

    /// Makes an alternative the reply's text (see [`generations::pick`]); the conversation's
    /// window and the match list are dropped when it changed.
    pub async fn pick(&self, user: Uuid, reply: i64, alternative: Uuid) -> Result<Picked, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let picked = generations::pick(&mut conn, user, reply, alternative).await?;
        drop(conn);
        if let Picked::Picked(m) = &picked {
            super::conversations::after_changed_message(s, m).await;
            s.settle().await;
        }
        Ok(picked)
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Generation>, DbError> {
        let mut conn = self.0.db.read().await?;
        Ok(generations::get(&mut conn, id).await?)
    }

    /// Records tokens as they are generated and renews the writer's lease; false when the
    /// generation is no longer this writer's (its lease ran out and it was taken over).
    pub async fn append_tokens(
        &self,
        id: Uuid,
        tokens: &[String],
        lease: Duration,
    ) -> Result<bool, DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(generations::append_tokens(&mut conn, id, tokens, lease).await?)
    }

    /// Gives a generation up; the message can be answered again.
    pub async fn fail(&self, id: Uuid) -> Result<(), DbError> {
        let mut conn = self.0.db.write().await?;
        Ok(generations::fail(&mut conn, id).await?)
    }

    /// The reply a finished generation stored.
    pub async fn reply(&self, g: &Generation) -> Result<Option<Message>, DbError> {
        let Some(id) = g.reply_message_id else {
            return Ok(None);
        };
        let mut conn = self.0.db.read().await?;
        Ok(crate::queries::messages::get(&mut conn, g.user_id, id).await?)
    }

    /// Stores the reply and what it is worth, in one transaction (see
    /// [`generations::complete`]), then updates what it touched: the conversation's window and
    /// unread count, the match list (its affection moved), the profile and the leaderboard.
    /// `None` if another attempt completed the generation first.
    pub async fn complete(
        &self,
        g: &Generation,
        content: &str,
        replaces: Option<i64>,
        reward: &Reward,
    ) -> Result<Option<Completed>, DbError> {
        let s = self.0;
        let mut conn = s.db.write().await?;
        let done = generations::complete(&mut conn, g, content, replaces, reward).await?;
        drop(conn);
        let Some(done) = done else { return Ok(None) };
        if replaces.is_some() {
            super::conversations::after_changed_message(s, &done.reply).await;
        } else {
            super::conversations::after_new_message(s, &done.reply).await;
            s.cache.invalidate_match_list(g.user_id).await;
        }
        if let Some(xp) = done.xp {
            super::users::Users::xp_changed(s, g.user_id, xp).await;
        }
        s.settle().await;
        Ok(Some(done))
    }
}
