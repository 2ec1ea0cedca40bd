//! Characters who write first. The ai service runs it (it is the one that writes characters'
//! words): every replica runs one scheduler task that, each `poll`,
//!
//! 1. plans: finds the matches silent for longer than their silence (a match's own setting or
//!    `AI_WRITE_FIRST_AFTER_S`) whose user lets characters write first, and queues one nudge
//!    per silence in PostgreSQL, to run at once or, if it is night where the user lives, at the
//!    end of their quiet hours (`AI_WRITE_FIRST_QUIET_HOURS`, in the user's time zone);
//! 2. works: claims due nudges one at a time (`FOR UPDATE SKIP LOCKED`, under a lease it renews
//!    while the provider writes), checks the user's night again (a replica that was down all
//!    day may claim at midnight: the nudge then waits for the morning), has the character's
//!    provider write the message, and finishes the nudge in one transaction that sends it only
//!    if the silence still holds.
//!
//! Exactly once across replicas and restarts: a silence has one nudge row (unique key), and
//! only the attempt holding its lease can finish it. No pile-up after downtime: planning looks
//! at each conversation as it is now, so a match silent for a week gets one message, and the
//! character never writes first twice in a row (see the `nudges` queries in db-core).

use std::sync::Arc;
use std::time::Duration;

use chrono::{Timelike, Utc};
use db_core::models::{Nudge, Sender};
use db_core::quiet_hours::{self, QuietHours, Tz};
use db_core::store::Finished;
use futures_util::StreamExt;
use service_kit::Kit;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::provider::{Prompt, Provider};

/// `AI_WRITE_FIRST*`, read once at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AI_WRITE_FIRST` (default true): false runs no scheduler on this replica.
    pub enabled: bool,
    /// `AI_WRITE_FIRST_AFTER_S` (default 86400): the silence after which a character writes,
    /// unless the match sets its own. Seconds, so tests and `make dev` can shorten it.
    pub after: Duration,
    /// `AI_WRITE_FIRST_QUIET_HOURS` (default `22-8`, local time; `off`).
    pub quiet: QuietHours,
    /// `AI_WRITE_FIRST_POLL_MS` (default 30000): how often a replica plans and claims.
    pub poll: Duration,
    /// `AI_WRITE_FIRST_LEASE_MS` (default 30000): how long a claim lasts unrenewed.
    pub lease: Duration,
    /// Silences planned per poll at most.
    pub batch: i64,
    /// Attempts before a nudge fails for good; a failed attempt waits `backoff` (doubled).
    pub max_attempts: i32,
    pub backoff: Duration,
    /// The longest message, in provider tokens (`AI_MAX_TOKENS`).
    pub max_tokens: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            enabled: true,
            after: Duration::from_secs(86_400),
            quiet: QuietHours::default(),
            poll: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            batch: 500,
            max_attempts: 3,
            backoff: Duration::from_secs(60),
            max_tokens: 512,
        }
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        use service_kit::config::var_or;
        let d = Self::default();
        let quiet = match service_kit::config::var("AI_WRITE_FIRST_QUIET_HOURS") {
            Some(v) => v
                .parse()
                .map_err(|e| anyhow::anyhow!("AI_WRITE_FIRST_QUIET_HOURS={v:?}: {e}"))?,
            None => d.quiet,
        };
        let c = Self {
            enabled: var_or("AI_WRITE_FIRST", d.enabled)?,
            after: Duration::from_secs(var_or("AI_WRITE_FIRST_AFTER_S", d.after.as_secs())?),
            quiet,
            poll: service_kit::config::millis("AI_WRITE_FIRST_POLL_MS", d.poll)?,
            lease: service_kit::config::millis("AI_WRITE_FIRST_LEASE_MS", d.lease)?,
            max_tokens: var_or("AI_MAX_TOKENS", d.max_tokens)?,
            ..d
        };
        anyhow::ensure!(
            c.after >= Duration::from_secs(1),
            "AI_WRITE_FIRST_AFTER_S must be at least 1"
        );
        anyhow::ensure!(
            c.lease >= Duration::from_millis(300),
            "AI_WRITE_FIRST_LEASE_MS must be at least 300"
        );
        anyhow::ensure!(
            c.poll >= Duration::from_millis(10),
            "AI_WRITE_FIRST_POLL_MS must be at least 10"
        );
        Ok(c)
    }
}

/// Who writes for which character.
pub type Providers = Arc<dyn Fn(&str) -> Arc<dyn Provider> + Send + Sync>;

/// This replica's scheduler; stopped with the service.
#[derive(Clone)]
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Scheduler {
    pub fn spawn(kit: Kit, config: Config, providers: Providers) -> Self {
        let (stop, rx) = watch::channel(false);
        let task = config
            .enabled
            .then(|| tokio::spawn(schedule(kit, config, providers, rx)));
        Self {
            stop,
            task: Arc::new(std::sync::Mutex::new(task)),
        }
    }

    /// Stops claiming; a nudge in hand gets `grace` to finish, else its lease runs out and
    /// another replica (or this one, restarted) writes it.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && tokio::time::timeout(grace, task).await.is_err()
        {
            tracing::warn!("a nudge was still being written at shutdown; its lease will run out");
        }
    }
}

async fn schedule(kit: Kit, config: Config, providers: Providers, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = plan(&kit, &config).await {
            tracing::warn!(error = %e, "cannot plan nudges");
        }
        loop {
            if *stop.borrow() {
                return;
            }
            match kit.store.write_first().claim(config.lease).await {
                Ok(Some(n)) => {
                    let span = tracing::info_span!("nudge", nudge = %n.id, attempt = n.attempts);
                    run(&kit, &config, &providers, n).instrument(span).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim nudges");
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

fn zone(name: &str) -> Tz {
    quiet_hours::time_zone(name).unwrap_or(Tz::UTC)
}

/// Queues a nudge for each silence that has none yet.
async fn plan(kit: &Kit, config: &Config) -> Result<(), db_core::DbError> {
    let wf = kit.store.write_first();
    let now = Utc::now();
    let mut planned = 0;
    for s in wf.silent(config.after, config.batch).await? {
        let at = config.quiet.next_allowed(now, zone(&s.time_zone));
        if wf.plan(&s, at).await? {
            planned += 1;
        }
    }
    if planned > 0 {
        tracing::info!(planned, "nudges planned");
    }
    Ok(())
}

async fn run(kit: &Kit, config: &Config, providers: &Providers, n: Nudge) {
    let wf = kit.store.write_first();
    let outcome = async {
        let settings = wf.user_settings(n.user_id).await?;
        let tz = zone(&settings.time_zone);
        let now = Utc::now();
        if config.quiet.contains(now.with_timezone(&tz).hour()) {
            let morning = config.quiet.next_allowed(now, tz);
            wf.defer(&n, morning).await?;
            tracing::info!(until = %morning, "night where the user is: the nudge waits");
            return Ok(None);
        }
        let Some(text) = write(kit, config, providers, &n).await? else {
            return Ok(None);
        };
        Ok::<_, anyhow::Error>(Some(wf.finish(&n, &text).await?))
    }
    .await;
    match outcome {
        Ok(Some(Finished::Sent(m))) => tracing::info!(message = m.id, "a character wrote first"),
        Ok(Some(Finished::Cancelled(why))) => tracing::info!(why, "nudge cancelled"),
        Ok(Some(Finished::Lost)) => tracing::info!("nudge taken over by another worker"),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "nudge attempt failed");
            let backoff = config
                .backoff
                .saturating_mul(1 << n.attempts.clamp(1, 8).saturating_sub(1));
            if let Err(e) = wf
                .give_up(&n, &e.to_string(), backoff, config.max_attempts)
                .await
            {
                tracing::warn!(error = %e, "cannot record the failed nudge; its lease will run out");
            }
        }
    }
}

/// The character's message, written by its provider while the lease is renewed. `None` if the
/// lease was lost meanwhile (another worker has the nudge).
async fn write(
    kit: &Kit,
    config: &Config,
    providers: &Providers,
    n: &Nudge,
) -> anyhow::Result<Option<String>> {
    let character = kit
        .store
        .catalogue()
        .get(&n.character_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("character {} is gone", n.character_id))?;
    let window = kit
        .store
        .conversations()
        .page(n.user_id, &n.character_id, None, 20)
        .await?;
    let memories = kit
        .store
        .memories()
        .list(n.user_id, &n.character_id, None, 3)
        .await?;
    let (hi, lo) = n.id.as_u64_pair();
    let prompt = Prompt {
        character: (*character).clone(),
        user_message: String::new(),
        memories: memories.items.into_iter().map(|m| m.content).collect(),
        history: window
            .items
            .iter()
            .map(|m| (m.sender == Sender::User, m.content.clone()))
            .collect(),
        seed: hi ^ lo,
        continuing: None,
    }
    .within_budget(3000);
    let provider = providers(&n.character_id);
    let mut tokens = provider.stream_first(prompt).take(config.max_tokens);
    let mut text = String::new();
    let mut renew = tokio::time::interval(config.lease / 3);
    renew.tick().await;
    loop {
        tokio::select! {
            token = tokens.next() => match token {
                Some(t) => text.push_str(&t?),
                None => break,
            },
            _ = renew.tick() => {
                if !kit.store.write_first().renew(n, config.lease).await? {
                    return Ok(None);
                }
            }
        }
    }
    let text: String = text
        .trim()
        .chars()
        .take(db_core::models::MAX_MESSAGE_CHARS)
        .collect();
    anyhow::ensure!(!text.trim().is_empty(), "the provider wrote nothing");
    Ok(Some(text.trim().to_owned()))
}
