//! `POST /api/v1/conversations/{character_id}/reply`: the character answers the user's latest
//! message. With `Accept: text/event-stream` the reply streams as server-sent events (one
//! `token` event per token, then `done` with the stored message); otherwise the stored message
//! comes back as JSON when it is complete. Asking again returns the same reply.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, post, web};
use db_core::models::Message;
use futures_util::stream::{self, StreamExt};
use service_kit::checks::CharacterPath;
use service_kit::error::Conflict;
use service_kit::{ApiError, ApiResult, AuthUser, Kit};

use crate::generate::{self, Event, Started};
use crate::provider::Provider;

/// The provider the service answers with.
pub struct Ai {
    pub provider: Arc<dyn Provider>,
    /// Characters that answer with another provider than `provider` (`AI_PROVIDER_BY_CHARACTER`).
    pub by_character: std::collections::HashMap<String, Arc<dyn Provider>>,
    /// Photo milestones; `None` turns them off.
    pub photos: Option<crate::photos::PhotoMilestones>,
    pub limits: crate::generate::Limits,
}

impl Ai {
    /// The provider that writes `character`'s replies.
    pub fn provider_for(&self, character: &str) -> Arc<dyn Provider> {
        self.by_character
            .get(character)
            .unwrap_or(&self.provider)
            .clone()
    }
}

fn sse(id: usize, event: &str, data: &serde_json::Value) -> web::Bytes {
    web::Bytes::from(format!("id: {id}\nevent: {event}\ndata: {data}\n\n"))
}

fn token_event(index: usize, text: &str) -> web::Bytes {
    sse(index + 1, "token", &serde_json::json!({ "text": text }))
}

fn done_event(after: usize, m: &Message) -> web::Bytes {
    sse(after + 1, "done", &serde_json::json!(m))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Write the reply again in place (a swipe); the versions before it are kept as its
    /// alternatives (`GET /messages/{id}/alternatives`). Affection and XP are not counted twice.
    regenerate: Option<bool>,
}

/// The character answers the user's latest message.
#[utoipa::path(tag = "conversations", security(("bearer" = [])),
    params(CharacterPath, Params, ("Last-Event-ID" = Option<String>, Header, description = "resume a stream after this event (a resumed swipe follows the version it asked for)"), ("Idempotency-Key" = Option<String>, Header, description = "any string of the client's (a UUID, say): asked again with the same key, the same reply (or version) is followed or replayed, never written once more")),
    responses((status = 201, body = Message, description = "a new reply (or, with Accept: text/event-stream, its events)"),
              (status = 200, body = Message, description = "the reply already written"),
              (status = 404, body = service_kit::error::Problem, description = "no match with this character"),
              (status = 409, body = service_kit::error::Problem, description = "nothing_to_answer or generation_in_progress")),
    extensions(("x-dream-timeout-seconds" = json!(180))))]
#[post("/conversations/{character_id}/reply")]
pub async fn write_reply(
    kit: web::Data<Kit>,
    ai: web::Data<Ai>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    params: web::Query<Params>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let regenerate = params.regenerate.unwrap_or(false);
    answer(kit, ai, me, path.id()?, regenerate, false, req).await
}

/// The character goes on with its reply to the user's latest message ("continue"). Streamed
/// like a reply, but only the new text comes as `token` events; `done` carries the whole
/// reply. The version before is kept as an alternative; affection and XP are not counted again.
#[utoipa::path(tag = "conversations", security(("bearer" = [])),
    params(CharacterPath, ("Last-Event-ID" = Option<String>, Header, description = "resume a stream after this event"), ("Idempotency-Key" = Option<String>, Header, description = "any string of the client's (a UUID, say): asked again with the same key, the same continuation is followed or replayed, never written once more")),
    responses((status = 201, body = Message, description = "the reply, extended (or, with Accept: text/event-stream, the new text's events)"),
              (status = 200, body = Message, description = "with Last-Event-ID: the rest of this continuation, being written or written (never another one)"),
              (status = 404, body = service_kit::error::Problem, description = "no match with this character"),
              (status = 409, body = service_kit::error::Problem, description = "nothing_to_continue (no reply yet) or generation_in_progress")),
    extensions(("x-dream-timeout-seconds" = json!(180))))]
#[post("/conversations/{character_id}/continue")]
pub async fn continue_reply(
    kit: web::Data<Kit>,
    ai: web::Data<Ai>,
    me: AuthUser,
    path: web::Path<CharacterPath>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    answer(kit, ai, me, path.id()?, false, true, req).await
}

/// A reply to the user's latest message: written, written again, or continued.
async fn answer(
    kit: web::Data<Kit>,
    ai: web::Data<Ai>,
    me: AuthUser,
    character: &str,
    regenerate: bool,
    extend: bool,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let client_key = req
        .headers()
        .get("idempotency-key")
        .and_then(|k| db_core::store::client_key(k.as_bytes()));
    service_kit::checks::require_match(&kit, me.id, character).await?;
    let user_message = kit
        .store
        .conversations()
        .latest_from_user(me.id, character)
        .await?
        .ok_or(ApiError::Conflict(if extend {
            Conflict::NothingToContinue
        } else {
            Conflict::NothingToAnswer
        }))?;
    let streaming = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let resume_after: usize = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    // A client resuming a stream (it saw events of it) follows what it asked for, being written
    // or written since: asked again, a swipe or a continuation would start one more version.
    let (regenerate, extend) = if resume_after > 0 {
        (false, false)
    } else {
        (regenerate, extend)
    };
    let photo = ai.photos.clone().and_then(|milestones| {
        let authorization = req.headers().get("authorization")?.to_str().ok()?;
        Some(crate::photos::PhotoAsk {
            milestones,
            authorization: service_kit::Secret::new(authorization),
        })
    });
    match generate::start(
        &kit,
        generate::Author {
            provider: ai.provider_for(character),
            limits: ai.limits,
        },
        generate::Request {
            user: me.id,
            character: character.to_owned(),
            user_message_id: user_message,
            regenerate,
            extend,
            photo,
            client_key,
        },
    )
    .await?
    {
        // Being written, here or by another replica: follow it from what is saved.
        Started::Running(g) if streaming => Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(follow(kit.into_inner(), g, resume_after).boxed_local())),
        Started::Running(_) => Err(ApiError::Conflict(Conflict::GenerationInProgress)),
        Started::Done(g, reply) if streaming => {
            // Replay what the client missed, then the end.
            let tokens = g.tokens();
            let mut events: Vec<web::Bytes> = tokens
                .iter()
                .enumerate()
                .skip(resume_after)
                .map(|(i, t)| token_event(i, t))
                .collect();
            events.push(done_event(tokens.len(), &reply));
            Ok(HttpResponse::Ok()
                .content_type("text/event-stream")
                .insert_header(("cache-control", "no-cache"))
                .streaming(stream::iter(
                    events.into_iter().map(Ok::<_, actix_web::Error>),
                )))
        }
        Started::Done(_, reply) => Ok(HttpResponse::Ok().json(reply)),
        Started::Live(_, rx, took_over) if streaming => {
            // A writer died with part of this reply sent: the client drops what it has.
            let reset = (took_over && resume_after > 0)
                .then(|| Ok::<_, actix_web::Error>(sse(0, "reset", &serde_json::json!({}))));
            // The state carries how many tokens went out, so `done` gets the next id.
            let events = stream::unfold(Some((rx, 0usize)), |state| async move {
                let (mut rx, sent) = state?;
                loop {
                    match rx.recv().await {
                        Ok(Event::Token { index, text }) => {
                            return Some((
                                Ok::<_, actix_web::Error>(token_event(index, &text)),
                                Some((rx, index + 1)),
                            ));
                        }
                        Ok(Event::Done(m)) => return Some((Ok(done_event(sent, &m)), None)),
                        Ok(Event::Failed)
                        | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            return Some((
                                Ok(sse(
                                    sent + 1,
                                    "error",
                                    &serde_json::json!({ "code": "generation_failed" }),
                                )),
                                None,
                            ));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    }
                }
            });
            Ok(HttpResponse::Created()
                .content_type("text/event-stream")
                .insert_header(("cache-control", "no-cache"))
                .streaming(stream::iter(reset).chain(events).boxed_local()))
        }
        Started::Live(_, mut rx, _) => loop {
            match rx.recv().await {
                Ok(Event::Done(m)) => return Ok(HttpResponse::Created().json(*m)),
                Ok(Event::Token { .. })
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Ok(Event::Failed) | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(ApiError::Unavailable { retry_after: 1 });
                }
            }
        },
    }
}

/// How often a follower looks for new tokens of a reply another writer is writing.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// The events of a generation being written elsewhere (another replica, or this one for another
/// client), from PostgreSQL: the tokens after `sent`, then `done` with the stored reply, or
/// `error` when it was given up or its writer died (asking again takes it over).
fn follow(
    kit: std::sync::Arc<Kit>,
    g: db_core::models::Generation,
    sent: usize,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    stream::unfold(Some((kit, g, sent, true)), |state| async move {
        let (kit, g, sent, first) = state?;
        if !first {
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
        let error = |sent: usize, code: &str| {
            Ok::<_, actix_web::Error>(sse(sent + 1, "error", &serde_json::json!({ "code": code })))
        };
        let now = match kit.store.generations().get(g.id).await {
            Ok(Some(now)) => now,
            _ => return Some((vec![error(sent, "generation_failed")], None)),
        };
        let tokens = now.tokens();
        let mut out: Vec<_> = tokens
            .iter()
            .enumerate()
            .skip(sent)
            .map(|(i, t)| Ok(token_event(i, t)))
            .collect();
        let sent = sent.max(tokens.len());
        if now.is_running() {
            if now.lease_until.is_some_and(|l| l < chrono::Utc::now()) {
                out.push(error(sent, "generation_interrupted"));
                return Some((out, None));
            }
            return Some((out, Some((kit, g, sent, false))));
        }
        match kit.store.generations().reply(&now).await {
            Ok(Some(reply)) if now.reply_message_id.is_some() => {
                out.push(Ok(done_event(sent, &reply)));
            }
            _ => out.push(error(sent, "generation_failed")),
        }
        Some((out, None))
    })
    .flat_map(stream::iter)
}
