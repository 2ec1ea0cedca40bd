//! Any OpenAI-compatible chat-completions API (OpenAI, vLLM, Ollama, llama.cpp's server), streamed.
//! Retries happen only before the first token (after it, a retry would repeat words the client
//! already has); a circuit breaker stops calling a failing API for a while; when the API cannot
//! start a reply, the fallback provider answers.

use std::sync::Arc;
use std::time::Duration;

use db_core::cache::Breaker;
use eventsource_stream::Eventsource;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::provider::{Prompt, Provider, ProviderError};

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<service_kit::Secret>,
    pub first_token_timeout: Duration,
    pub total_timeout: Duration,
    /// Attempts after the first, before any token arrived.
    pub retries: u32,
    /// The longest reply asked of the API (`AI_MAX_TOKENS`); the service also cuts there.
    pub max_tokens: u32,
}

pub struct OpenAi(Arc<Inner>);

struct Inner {
    config: OpenAiConfig,
    client: reqwest::Client,
    breaker: Breaker,
    fallback: Option<Arc<dyn Provider>>,
}

type Events = BoxStream<'static, Result<eventsource_stream::Event, String>>;

impl OpenAi {
    pub fn new(config: OpenAiConfig, fallback: Option<Arc<dyn Provider>>) -> anyhow::Result<Self> {
        let client = service_kit::http::client(|b| b)?;
        Ok(Self(Arc::new(Inner {
            config,
            client,
            breaker: Breaker::new(3, Duration::from_secs(30)),
            fallback,
        })))
    }
}

/// What the character is asked, in place of a user's message, when it writes first.
pub const WRITE_FIRST_INSTRUCTION: &str = "Ton interlocuteur ne t'a pas écrit depuis un moment. \
Écris-lui le premier un message court et naturel pour reprendre contact, dans ton style, en \
t'appuyant sur ce que vous vous êtes dit ou sur ce dont tu te souviens. Aucun reproche.";

/// How facts are asked for: a JSON array of short sentences about the user.
pub const FACTS_INSTRUCTION: &str = "Tu extrais d'un message ce qu'il dit de durable sur la \
personne qui l'écrit (prénom, goûts, métier, lieu de vie, proches, projets). Réponds uniquement \
par un tableau JSON de phrases courtes à la troisième personne, par exemple \
[\"S'appelle Léa\", \"Aime les croissants\"], ou [] s'il n'y a rien à retenir.";

/// The facts in a model's answer: the first JSON array of strings in it, each trimmed, 3 to
/// 300 characters, no control characters, at most 5. `None` if there is no such array.
pub fn parse_facts(answer: &str) -> Option<Vec<String>> {
    let start = answer.find('[')?;
    let end = answer.rfind(']')?;
    let items: Vec<Value> = serde_json::from_str(answer.get(start..=end)?).ok()?;
    Some(
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|f| (3..=300).contains(&f.chars().count()))
            .filter(|f| !f.chars().any(char::is_control))
            .map(str::to_owned)
            .take(5)
            .collect(),
    )
}

impl Inner {
    fn body_for(&self, p: &Prompt, first: bool) -> Value {
        let mut system = p.character.persona.clone();
        if !p.memories.is_empty() {
            system.push_str("\n\nCe dont tu te souviens sur ton interlocuteur :\n- ");
            system.push_str(&p.memories.join("\n- "));
        }
        let mut messages = vec![json!({ "role": "system", "content": system })];
        for (from_user, text) in p.history.iter().rev() {
            messages.push(
                json!({ "role": if *from_user { "user" } else { "assistant" }, "content": text }),
            );
        }
        if first {
            messages.push(json!({ "role": "system", "content": WRITE_FIRST_INSTRUCTION }));
        } else {
            messages.push(json!({ "role": "user", "content": p.user_message }));
        }
        json!({ "model": self.config.model, "stream": true, "messages": messages, "seed": p.seed % (1 << 31), "max_tokens": self.config.max_tokens })
    }

    /// One attempt: the response's events up to the first token (`None`: the reply was empty).
    async fn open(&self, body: &Value) -> Result<(Option<String>, Events), String> {
        let mut req = self
            .client
            .post(format!(
                "{}/chat/completions",
                self.config.base_url.trim_end_matches('/')
            ))
            .json(body);
        if let Some(key) = self
            .config
            .api_key
            .as_ref()
            .map(service_kit::Secret::expose)
        {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status()));
        }
        let mut events: Events = res
            .bytes_stream()
            .eventsource()
            .map(|e| e.map_err(|e| e.to_string()))
            .boxed();
        loop {
            match events.next().await {
                None => return Ok((None, events)),
                Some(Err(e)) => return Err(e),
                Some(Ok(ev)) => match token(&ev.data)? {
                    Chunk::Done => return Ok((None, events)),
                    Chunk::Token(t) if !t.is_empty() => return Ok((Some(t), events)),
                    Chunk::Token(_) => continue,
                },
            }
        }
    }
}

enum Chunk {
    Token(String),
    Done,
}

/// One `data:` payload: a token, the end, or an error.
fn token(data: &str) -> Result<Chunk, String> {
    if data.trim() == "[DONE]" {
        return Ok(Chunk::Done);
    }
    let v: Value = serde_json::from_str(data).map_err(|e| format!("unreadable chunk: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(format!("provider error: {err}"));
    }
    Ok(Chunk::Token(
        v["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    ))
}

impl OpenAi {
    fn stream_body(
        &self,
        prompt: Prompt,
        first: bool,
    ) -> BoxStream<'static, Result<String, ProviderError>> {
        let inner = self.0.clone();
        let started = stream::once(async move {
            let deadline = Instant::now() + inner.config.total_timeout;
            let body = inner.body_for(&prompt, first);
            let mut last = String::from("circuit open");
            if inner.breaker.allow() {
                for attempt in 0..=inner.config.retries {
                    match tokio::time::timeout(inner.config.first_token_timeout, inner.open(&body))
                        .await
                    {
                        Ok(Ok((first, rest))) => {
                            inner.breaker.success();
                            return rest_of_reply(first, rest, deadline);
                        }
                        Ok(Err(e)) => last = e,
                        Err(_) => last = "no first token in time".into(),
                    }
                    inner.breaker.failure(&last);
                    tracing::warn!(attempt, error = %last, "chat-completions attempt failed");
                    if !inner.breaker.allow() {
                        break;
                    }
                }
            }
            match &inner.fallback {
                Some(fallback) => {
                    tracing::warn!(error = %last, fallback = fallback.name(), "answering with the fallback provider");
                    if first {
                        fallback.stream_first(prompt)
                    } else {
                        fallback.stream(prompt)
                    }
                }
                None => stream::once(async move { Err(ProviderError(last)) }).boxed(),
            }
        });
        started.flatten().boxed()
    }
}

impl Inner {
    /// One non-streamed completion: the facts the model finds in `message`.
    async fn facts(&self, message: &str) -> Result<Vec<String>, String> {
        let body = json!({
            "model": self.config.model,
            "stream": false,
            "temperature": 0,
            "max_tokens": 200,
            "messages": [
                { "role": "system", "content": FACTS_INSTRUCTION },
                { "role": "user", "content": message },
            ],
        });
        let mut req = self
            .client
            .post(format!(
                "{}/chat/completions",
                self.config.base_url.trim_end_matches('/')
            ))
            .json(&body);
        if let Some(key) = self
            .config
            .api_key
            .as_ref()
            .map(service_kit::Secret::expose)
        {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("HTTP {}", res.status()));
        }
        let v: Value = res.json().await.map_err(|e| e.to_string())?;
        let answer = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or("no message in the answer")?;
        parse_facts(answer).ok_or_else(|| format!("no JSON array in {answer:?}"))
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn stream(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>> {
        self.stream_body(prompt, false)
    }

    fn stream_first(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>> {
        self.stream_body(prompt, true)
    }

    /// Asks the model; `None` (the keyword rule then) when it cannot answer in time, answers
    /// something that is not a JSON array, or its circuit is open.
    fn facts(&self, message: String) -> crate::provider::FactsFuture {
        let inner = self.0.clone();
        Box::pin(async move {
            if message.trim().chars().count() < 8 || !inner.breaker.allow() {
                return None;
            }
            let within = inner.config.total_timeout.min(Duration::from_secs(30));
            match tokio::time::timeout(within, inner.facts(&message)).await {
                Ok(Ok(facts)) => Some(facts),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the model extracted no facts; keyword rule used");
                    None
                }
                Err(_) => {
                    tracing::warn!("fact extraction took too long; keyword rule used");
                    None
                }
            }
        })
    }
}

fn rest_of_reply(
    first: Option<String>,
    rest: Events,
    deadline: Instant,
) -> BoxStream<'static, Result<String, ProviderError>> {
    let tail = stream::unfold(Some(rest), move |rest| async move {
        let mut rest = rest?;
        loop {
            let next = match tokio::time::timeout_at(deadline, rest.next()).await {
                Err(_) => {
                    return Some((Err(ProviderError("the reply took too long".into())), None));
                }
                Ok(next) => next,
            };
            match next {
                None => return None,
                Some(Err(e)) => return Some((Err(ProviderError(e)), None)),
                Some(Ok(ev)) => match token(&ev.data) {
                    Ok(Chunk::Done) => return None,
                    Ok(Chunk::Token(t)) if t.is_empty() => continue,
                    Ok(Chunk::Token(t)) => return Some((Ok(t), Some(rest))),
                    Err(e) => return Some((Err(ProviderError(e)), None)),
                },
            }
        }
    });
    stream::iter(first.map(Ok)).chain(tail).boxed()
}
