//! One reply, exactly once. The generation is claimed in PostgreSQL, runs in its own task (so a
//! client that goes away does not stop it), streams its tokens to whoever listens, records them
//! as it goes, stores the reply as a chat message, and only then — once — moves affection, XP
//! and the memories.

use std::sync::Arc;

use db_core::models::{Generation, Message, Sender};
use db_core::store::{Ask, Completed, Reward, Start};
use futures_util::StreamExt;
use service_kit::error::Conflict;
use service_kit::{ApiError, Kit};
use tokio::sync::broadcast;
use tracing::Instrument;
use uuid::Uuid;

use crate::photos::PhotoAsk;
use crate::provider::{Prompt, Provider};

/// Affection and XP one reply is worth.
pub const AFFECTION_PER_REPLY: i32 = 2;
pub const XP_PER_REPLY: i64 = 10;
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
    /// `AI_CONTEXT_TOKENS` (default 3000): the prompt's budget, in (estimated) tokens.
    pub context_tokens: usize,
    /// `AI_LEASE_MS` (default 15000): how long a writer holds a generation without renewing
    /// it; a generation whose writer died is taken over after that.
    pub lease: std::time::Duration,
    /// `MEMORIES_PER_MATCH` (default 200): the most memories one match keeps.
    pub max_memories: i64,
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
            context_tokens: 3000,
            lease: std::time::Duration::from_secs(15),
            max_memories: db_core::store::DEFAULT_MEMORIES_PER_MATCH,
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
    /// A new generation: its events follow. `took_over`: it starts again the work of a writer
    /// that died (a client that had some of its tokens must drop them).
    Live(Generation, broadcast::Receiver<Event>, bool),
    /// Already answered.
    Done(Generation, Box<Message>),
    /// Being answered (maybe by another replica).
    Running(Generation),
}

/// What the user asked for: a reply to which message, in which conversation.
#[derive(Debug, Clone)]
pub struct Request {
    pub user: Uuid,
    pub character: String,
    pub user_message_id: i64,
    /// Write the reply again (a swipe): nothing is counted twice.
    pub regenerate: bool,
    /// Extend the reply ("continue"): nothing is counted twice.
    pub extend: bool,
    /// Photo milestones, on the user's behalf; `None` turns them off for this reply.
    pub photo: Option<PhotoAsk>,
    /// The client's `Idempotency-Key`: asked again with it, the same reply comes back.
    pub client_key: Option<Uuid>,
}

/// Claims and starts the reply to `request.user_message_id`.
pub async fn start(kit: &Kit, author: Author, request: Request) -> Result<Started, ApiError> {
    let ask = Ask {
        user: request.user,
        character: &request.character,
        user_message_id: request.user_message_id,
        provider: author.provider.name(),
        regenerate: request.regenerate,
        extend: request.extend,
        per_day: author.limits.per_user_per_day,
        lease: author.limits.lease,
        client_key: request.client_key,
    };
    match kit.store.generations().start(ask).await? {
        Start::QuotaSpent { retry_after } => Err(ApiError::RateLimited { retry_after }),
        Start::Busy => Err(ApiError::Conflict(Conflict::GenerationInProgress)),
        Start::NothingToContinue => Err(ApiError::Conflict(Conflict::NothingToContinue)),
        Start::Existing(g) if g.is_running() => Ok(Started::Running(g)),
        Start::Existing(g) => {
            let reply = kit
                .store
                .generations()
                .reply(&g)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(Started::Done(g, Box::new(reply)))
        }
        Start::New {
            generation: g,
            replaces,
            took_over,
        } => {
            let prompt = match prompt(kit, &request, &g, author.limits.context_tokens).await {
                Ok(p) => p,
                Err(e) => {
                    kit.store.generations().fail(g.id).await?;
                    return Err(e);
                }
            };
            let (tx, rx) = broadcast::channel(4096);
            // The generation outlives the request, in a span of the request's trace.
            let span = tracing::info_span!("generation", generation = %g.id);
            tokio::spawn(
                run(
                    kit.clone(),
                    author,
                    g.clone(),
                    prompt,
                    tx,
                    replaces,
                    request.photo,
                )
                .instrument(span),
            );
            Ok(Started::Live(g, rx, took_over))
        }
    }
}

/// What a continuation asks in place of the user's message: the reply it extends is the
/// newest message of the history the provider reads.
pub const CONTINUE_INSTRUCTION: &str =
    "(Continue ta dernière réponse là où elle s'arrête, sans répéter ce que tu as déjà dit.)";

/// The prompt: the persona, the message, what the character remembers (relevant first, then
/// the newest), the newest history; cut to the context budget. A continuation asks to go on
/// from the reply (the newest message of the history).
async fn prompt(
    kit: &Kit,
    request: &Request,
    g: &Generation,
    budget: usize,
) -> Result<Prompt, ApiError> {
    let generation = g.id;
    let (user, character) = (request.user, request.character.as_str());
    let c = kit
        .store
        .characters()
        .visible(user, character)
        .await?
        .ok_or(ApiError::NotFound)?;
    let window = kit
        .store
        .conversations()
        .page(user, character, None, 20)
        .await?;
    let asked = window
        .items
        .iter()
        .find(|m| m.id == request.user_message_id)
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let user_message = match g.prefix {
        Some(_) => CONTINUE_INSTRUCTION.to_owned(),
        None => asked.clone(),
    };
    let memories = kit.store.memories();
    let mut remembered: Vec<String> = memories
        .search(user, &asked, Some(character), 3)
        .await?
        .into_iter()
        .map(|h| h.memory.content)
        .collect();
    if remembered.is_empty() {
        remembered = memories
            .list(user, character, None, 3)
            .await?
            .items
            .into_iter()
            .map(|m| m.content)
            .collect();
    }
    // The model reads everything that writes the character: persona, a card's personality
    // and scenario, the example dialogue.
    let mut character = (*c).clone();
    character.persona = c.prompt_persona();
    Ok(Prompt {
        character,
        user_message,
        memories: remembered,
        history: window
            .items
            .iter()
            .filter(|m| m.id != request.user_message_id)
            .map(|m| (m.sender == Sender::User, m.content.clone()))
            .collect(),
        seed: generation.as_u64_pair().0,
        continuing: g.prefix.as_ref().map(|_| asked.clone()),
    }
    .within_budget(budget))
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
    // Counted only with a reply's first version (`complete` ignores it for a rewrite).
    let reward = Reward {
        affection: AFFECTION_PER_REPLY,
        xp: XP_PER_REPLY,
        facts: match g.prefix {
            Some(_) => Vec::new(),
            None => facts(&prompt.user_message),
        },
        max_memories: author.limits.max_memories,
    };
    match generate(&kit, author, &g, prompt, &tx, replaces, &reward).await {
        Ok(done) => {
            if let (Some(affection), Some(ask)) = (done.affection, photo.as_ref()) {
                milestone(&g, i64::from(affection), ask).await;
            }
            let _ = tx.send(Event::Done(Box::new(done.reply)));
        }
        Err(e) => {
            tracing::warn!(generation = %g.id, error = %e, "generation failed");
            if let Err(e) = kit.store.generations().fail(g.id).await {
                tracing::warn!(generation = %g.id, error = %e, "cannot record the failure");
            }
            let _ = tx.send(Event::Failed);
        }
    }
}

/// Streams the provider's tokens to whoever listens, records them as they come, then stores
/// the reply and what it is worth in one transaction (once: a generation another attempt
/// completed is not completed again).
async fn generate(
    kit: &Kit,
    author: Author,
    g: &Generation,
    prompt: Prompt,
    tx: &broadcast::Sender<Event>,
    replaces: Option<i64>,
    reward: &Reward,
) -> anyhow::Result<Completed> {
    let generations = kit.store.generations();
    let lease = author.limits.lease;
    // A real model is asked for the facts while it writes the reply; the keyword rule (in
    // `reward`) stands for the builtin provider, or when the model cannot answer.
    let extraction = tokio::spawn(author.provider.facts(prompt.user_message.clone()));
    let mut tokens = author
        .provider
        .stream(prompt)
        .take(author.limits.max_tokens);
    let mut all = Vec::new();
    let mut unsaved = Vec::new();
    // Tokens are saved in small batches, at least twice a second (a reconnecting client is
    // replayed them, and follows the rest from there), which also renews the lease.
    let mut tick = tokio::time::interval((lease / 3).min(std::time::Duration::from_millis(500)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let save = tokio::select! {
            token = tokens.next() => {
                let Some(token) = token else { break };
                let token = token?;
                let _ = tx.send(Event::Token {
                    index: all.len(),
                    text: token.clone(),
                });
                all.push(token.clone());
                unsaved.push(token);
                unsaved.len() >= PERSIST_EVERY
            }
            _ = tick.tick() => true,
        };
        if save
            && !generations
                .append_tokens(g.id, &std::mem::take(&mut unsaved), lease)
                .await?
        {
            anyhow::bail!("the generation was taken over by another writer");
        }
    }
    let written = all.concat();
    anyhow::ensure!(!written.trim().is_empty(), "the provider returned nothing");
    // A continuation extends the reply's text.
    let whole = match &g.prefix {
        Some(prefix) => join(prefix, &written),
        None => written,
    };
    // A provider may write more than a message holds (or echo a long input): cut to what fits.
    let content: String = whole
        .trim()
        .chars()
        .take(db_core::models::MAX_MESSAGE_CHARS)
        .collect();
    let content = content.trim().to_owned();
    generations.append_tokens(g.id, &unsaved, lease).await?;
    let mut reward = reward.clone();
    if let Ok(Some(facts)) = extraction.await {
        reward.facts = facts;
    }
    generations
        .complete(g, &content, replaces, &reward)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the generation was completed by another attempt"))
}

/// A reply and its continuation: one space between them unless the continuation starts with
/// white space or closing punctuation.
pub fn join(prefix: &str, more: &str) -> String {
    let prefix = prefix.trim_end();
    let glued = more.starts_with(char::is_whitespace)
        || more.starts_with([',', '.', '!', '?', ';', ':', '…', ')']);
    if glued {
        format!("{prefix}{}", more.trim_end())
    } else {
        format!("{prefix} {}", more.trim())
    }
}

/// A reply carried the match's affection to `now`: if it passed a milestone, the character
/// sends a photo.
async fn milestone(g: &Generation, now: i64, ask: &PhotoAsk) {
    if !ask
        .milestones
        .crossed(now - i64::from(AFFECTION_PER_REPLY), now)
    {
        return;
    }
    match ask
        .milestones
        .ask(&ask.authorization, &g.character_id)
        .await
    {
        Ok(job) => tracing::info!(affection = now, %job, "affection milestone: photo asked"),
        Err(e) => tracing::warn!(error = %e, "affection milestone: no photo"),
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
    fn a_continuation_follows_its_reply() {
        assert_eq!(super::join("Il pleut.", "Et toi ?"), "Il pleut. Et toi ?");
        assert_eq!(super::join("Il pleut ", " encore."), "Il pleut encore.");
        assert_eq!(super::join("Il pleut", ", encore"), "Il pleut, encore");
    }

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
