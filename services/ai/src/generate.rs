//! One reply, exactly once. The generation is claimed in PostgreSQL, runs in its own task (so a
//! client that goes away does not stop it), streams its tokens to whoever listens, records them
//! as it goes, stores the reply as a chat message, and only then — once — moves affection, XP
//! and the memories.

use std::sync::Arc;

use db_core::models::{Message, NewMemory, NewMessage, Sender};
use db_core::queries::generations::{self, Claim, Generation};
use db_core::queries::memories;
use futures_util::StreamExt;
use service_kit::{ApiError, Kit};
use tokio::sync::broadcast;
use tracing::Instrument;
use uuid::Uuid;

use crate::photos::PhotoAsk;
use crate::provider::{Prompt, Provider};

/// Affection and XP one reply is worth.
pub const AFFECTION_PER_REPLY: i32 = 2;
pub const XP_PER_REPLY: i64 = 10;
/// Default context budget, in (estimated) tokens.
pub const CONTEXT_TOKENS: usize = 3000;
/// Tokens recorded per database write while generating.
const PERSIST_EVERY: usize = 16;

/// What one user may cost: replies are cut at `max_tokens`, and at most `per_user_per_day`
/// generations (swipes included) start in any 24 hours, so that a paid provider cannot be
/// drained by one account.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `AI_MAX_TOKENS` (default 512).
    pub max_tokens: usize,
    /// `AI_REPLIES_PER_USER_PER_DAY` (default 500).
    pub per_user_per_day: i64,
}

/// Who writes a reply, and within what limits.
#[derive(Clone)]
pub struct Author {
    pub provider: Arc<dyn Provider>,
    pub limits: Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            per_user_per_day: 500,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    Token { index: usize, text: String },
    Done(Box<Message>),
    Failed,
}

pub enum Started {
    /// A new generation: its events follow.
    Live(Generation, broadcast::Receiver<Event>),
    /// Already answered.
    Done(Generation, Box<Message>),
    /// Being answered (maybe by another replica).
    Running(Generation),
}

/// Claims and starts the reply to `user_message_id`.
pub async fn start(
    kit: &Kit,
    author: Author,
    user: Uuid,
    character: &str,
    user_message_id: i64,
    regenerate: bool,
    photo: Option<PhotoAsk>,
) -> Result<Started, ApiError> {
    let mut conn = kit.store.db.write().await?;
    let answered = !regenerate
        && generations::for_message(&mut conn, user_message_id)
            .await?
            .is_some();
    if !answered {
        let day = chrono::Duration::days(1);
        let (started, oldest) =
            generations::started_since(&mut conn, user, chrono::Utc::now() - day).await?;
        if started >= author.limits.per_user_per_day {
            let retry_after = oldest
                .map(|o| (o + day - chrono::Utc::now()).num_seconds().max(1) as u64)
                .unwrap_or(3600);
            return Err(ApiError::RateLimited { retry_after });
        }
    }
    // A swipe retires the finished reply first; the new generation writes over its message.
    let replaces = if regenerate {
        generations::supersede_done(&mut conn, user_message_id).await?
    } else {
        None
    };
    match generations::claim(
        &mut conn,
        user,
        character,
        user_message_id,
        author.provider.name(),
    )
    .await?
    {
        Claim::Busy => Err(ApiError::Conflict {
            code: "generation_in_progress",
            detail: "a reply is being written in this conversation; try again in a moment".into(),
        }),
        Claim::Existing(g) if g.is_running() => Ok(Started::Running(g)),
        Claim::Existing(g) => {
            let reply_id = g.reply_message_id.ok_or(ApiError::NotFound)?;
            let reply = db_core::queries::messages::get(&mut conn, user, reply_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(Started::Done(g, Box::new(reply)))
        }
        Claim::New(g) => {
            drop(conn);
            let prompt = match prompt(kit, user, character, user_message_id, g.id).await {
                Ok(p) => p,
                Err(e) => {
                    let mut conn = kit.store.db.write().await?;
                    generations::fail(&mut conn, g.id).await?;
                    return Err(e);
                }
            };
            let (tx, rx) = broadcast::channel(4096);
            // The generation outlives the request, in a span of the request's trace.
            let span = tracing::info_span!("generation", generation = %g.id);
            tokio::spawn(
                run(kit.clone(), author, g.clone(), prompt, tx, replaces, photo).instrument(span),
            );
            Ok(Started::Live(g, rx))
        }
    }
}

async fn prompt(
    kit: &Kit,
    user: Uuid,
    character: &str,
    user_message_id: i64,
    generation: Uuid,
) -> Result<Prompt, ApiError> {
    let c = kit
        .store
        .character(character)
        .await?
        .ok_or(ApiError::NotFound)?;
    let window = kit.store.conversation(user, character, None, 20).await?;
    let user_message = window
        .items
        .iter()
        .find(|m| m.id == user_message_id)
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let mut conn = kit.store.db.read().await?;
    // Relevant memories first (full-text match on the message), then the newest.
    let mut remembered: Vec<String> =
        memories::search(&mut conn, user, &user_message, Some(character), 3)
            .await?
            .into_iter()
            .map(|h| h.memory.content)
            .collect();
    if remembered.is_empty() {
        remembered = memories::list(&mut conn, user, character, None, 3)
            .await?
            .items
            .into_iter()
            .map(|m| m.content)
            .collect();
    }
    Ok(Prompt {
        character: (*c).clone(),
        user_message,
        memories: remembered,
        history: window
            .items
            .iter()
            .filter(|m| m.id != user_message_id)
            .map(|m| (m.sender == db_core::models::Sender::User, m.content.clone()))
            .collect(),
        seed: generation.as_u64_pair().0,
    }
    .within_budget(context_budget()))
}

/// Tokens of context a prompt may use (`AI_CONTEXT_TOKENS`).
fn context_budget() -> usize {
    std::env::var("AI_CONTEXT_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CONTEXT_TOKENS)
}

async fn run(
    kit: Kit,
    author: Author,
    g: Generation,
    prompt: Prompt,
    tx: broadcast::Sender<Event>,
    replaces: Option<i64>,
    photo: Option<PhotoAsk>,
) {
    let user_message = prompt.user_message.clone();
    match generate(&kit, author, &g, prompt, &tx, replaces).await {
        Ok(reply) if replaces.is_some() => {
            // A swipe: what the first reply counted stays counted once.
            let _ = tx.send(Event::Done(Box::new(reply)));
        }
        Ok(reply) => {
            after_reply(&kit, &g, &user_message, photo.as_ref()).await;
            let _ = tx.send(Event::Done(Box::new(reply)));
        }
        Err(e) => {
            tracing::warn!(generation = %g.id, error = %e, "generation failed");
            if let Ok(mut conn) = kit.store.db.write().await {
                let _ = generations::fail(&mut conn, g.id).await;
            }
            let _ = tx.send(Event::Failed);
        }
    }
}

async fn generate(
    kit: &Kit,
    author: Author,
    g: &Generation,
    prompt: Prompt,
    tx: &broadcast::Sender<Event>,
    replaces: Option<i64>,
) -> anyhow::Result<Message> {
    let mut tokens = author
        .provider
        .stream(prompt)
        .take(author.limits.max_tokens);
    let mut all = Vec::new();
    let mut unsaved = Vec::new();
    while let Some(token) = tokens.next().await {
        let token = token?;
        let _ = tx.send(Event::Token {
            index: all.len(),
            text: token.clone(),
        });
        all.push(token.clone());
        unsaved.push(token);
        if unsaved.len() >= PERSIST_EVERY {
            let mut conn = kit.store.db.write().await?;
            generations::append_tokens(&mut conn, g.id, &std::mem::take(&mut unsaved)).await?;
        }
    }
    let content = all.concat().trim().to_owned();
    anyhow::ensure!(!content.is_empty(), "the provider returned nothing");
    let mut conn = kit.store.db.write().await?;
    generations::append_tokens(&mut conn, g.id, &unsaved).await?;
    drop(conn);
    let reply = match replaces {
        Some(id) => kit
            .store
            .edit_message(g.user_id, id, &content)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the replaced reply is gone"))?,
        None => kit
            .store
            .send(&NewMessage::new(
                g.user_id,
                g.character_id.as_str(),
                Sender::Character,
                content,
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_message(),
    };
    let mut conn = kit.store.db.write().await?;
    generations::finish(&mut conn, g.id, reply.id).await?;
    Ok(reply)
}

/// Runs once per generation: the claim made sure of it.
async fn after_reply(kit: &Kit, g: &Generation, user_message: &str, photo: Option<&PhotoAsk>) {
    if let Err(e) = kit
        .store
        .add_affection(g.user_id, &g.character_id, AFFECTION_PER_REPLY)
        .await
    {
        tracing::warn!(error = %e, "affection not counted");
    } else if let Some(ask) = photo {
        // A milestone passed: the character sends a photo.
        let now = kit
            .store
            .affection(g.user_id, &g.character_id)
            .await
            .ok()
            .flatten();
        if let Some(now) = now
            && ask
                .milestones
                .crossed(now - i64::from(AFFECTION_PER_REPLY), now)
        {
            match ask
                .milestones
                .ask(&ask.authorization, &g.character_id)
                .await
            {
                Ok(job) => {
                    tracing::info!(affection = now, %job, "affection milestone: photo asked")
                }
                Err(e) => tracing::warn!(error = %e, "affection milestone: no photo"),
            }
        }
    }
    if let Err(e) = kit.store.add_xp(g.user_id, XP_PER_REPLY).await {
        tracing::warn!(error = %e, "XP not counted");
    }
    for fact in facts(user_message) {
        let new = NewMemory {
            user_id: g.user_id,
            character_id: g.character_id.clone(),
            content: fact,
            source_message_id: Some(g.user_message_id),
        };
        if let Ok(mut conn) = kit.store.db.write().await {
            let _ = memories::insert(&mut conn, &new).await;
        }
    }
}

/// Sentences worth remembering: what the user says they are called, love or have.
pub fn facts(message: &str) -> Vec<String> {
    const CUES: &[&str] = &[
        "je m'appelle",
        "j'aime",
        "j'adore",
        "je déteste",
        "mon ",
        "ma ",
        "je suis",
        "j'habite",
    ];
    message
        .split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| s.chars().count() >= 8)
        .filter(|s| {
            let lower = s.to_lowercase();
            CUES.iter()
                .any(|c| lower.starts_with(c) || lower.contains(&format!(" {c}")))
        })
        .map(|s| s.chars().take(300).collect())
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn facts_are_the_sentences_about_the_user() {
        let f = super::facts(
            "Salut ! Je m'appelle Léa. Il pleut. J'adore les croissants du marché, vraiment !",
        );
        assert_eq!(
            f,
            vec![
                "Je m'appelle Léa",
                "J'adore les croissants du marché, vraiment"
            ]
        );
        assert!(super::facts("ok").is_empty());
    }
}
