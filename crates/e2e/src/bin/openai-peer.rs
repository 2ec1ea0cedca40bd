//! `openai-peer`: a small HTTP server that speaks the OpenAI chat-completions protocol — the
//! streamed form (`data:` chunks of `choices[0].delta.content`, then `data: [DONE]`) and the
//! plain JSON form — so that the ai service's `openai` provider can be run and tested against
//! a real server process with no model and no network.
//!
//! It is a protocol peer, not a model: its replies are made from the request by fixed rules
//! (it quotes the user's last message; asked to write first, it says so; asked for facts, it
//! rewrites the message's "je …" sentences in the third person and answers them as a JSON
//! array). Every request is logged on stdout as one JSON line.
//!
//! `openai-peer --port 8090` (or `PORT`), then `AI_PROVIDER=openai
//! OPENAI_BASE_URL=http://127.0.0.1:8090/v1 make dev`.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The port to listen on (127.0.0.1).
    #[arg(long, env = "PORT", default_value_t = 8090)]
    port: u16,
    /// Pause between streamed chunks, in milliseconds.
    #[arg(long, env = "PEER_CHUNK_DELAY_MS", default_value_t = 10)]
    chunk_delay_ms: u64,
}

/// The facts a model would be expected to find: each sentence that starts with a cue about the
/// writer, in the third person.
fn facts(message: &str) -> Vec<String> {
    const CUES: &[(&str, &str)] = &[
        ("je m'appelle ", "S'appelle "),
        ("j'adore ", "Adore "),
        ("j'aime ", "Aime "),
        ("je déteste ", "Déteste "),
        ("j'habite ", "Habite "),
        ("je suis ", "Est "),
        ("je travaille ", "Travaille "),
    ];
    message
        .split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter_map(|s| {
            let lower = s.to_lowercase();
            CUES.iter().find_map(|(cue, third)| {
                lower
                    .starts_with(cue)
                    .then(|| format!("{third}{}", s.get(cue.len()..).unwrap_or("").trim()))
            })
        })
        .collect()
}

fn last(messages: &[Value], role: &str) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == role)
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// What the peer answers to a request's messages.
fn answer(messages: &[Value]) -> String {
    let system = messages
        .first()
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    if system.contains("tableau JSON") {
        return Value::from(facts(&last(messages, "user"))).to_string();
    }
    let final_is_system =
        messages.len() > 1 && messages.last().is_some_and(|m| m["role"] == "system");
    if final_is_system {
        return "Coucou ! C'est le pair de protocole qui écrit le premier, après ton silence."
            .to_owned();
    }
    format!(
        "Réponse du pair de protocole (pas un modèle) : tu as écrit « {} ».",
        last(messages, "user")
    )
}

fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> web::Bytes {
    let v = json!({
        "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    web::Bytes::from(format!("data: {v}\n\n"))
}

async fn completions(body: web::Json<Value>, delay: web::Data<Duration>) -> HttpResponse {
    let body = body.into_inner();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        return HttpResponse::BadRequest()
            .json(json!({ "error": { "message": "messages is required", "type": "invalid_request_error" } }));
    }
    let model = body["model"].as_str().unwrap_or("peer").to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let text = answer(&messages);
    println!(
        "{}",
        json!({ "request": { "model": model, "stream": stream, "messages": messages.len(),
                "max_tokens": body["max_tokens"] }, "answer": text })
    );
    let id = format!("chatcmpl-peer-{}", uuid::Uuid::new_v4().simple());
    if !stream {
        return HttpResponse::Ok().json(json!({
            "id": id, "object": "chat.completion", "created": 0, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
        }));
    }
    let mut parts = vec![chunk(&id, &model, json!({ "role": "assistant" }), None)];
    parts.extend(
        text.split_inclusive(' ')
            .map(|w| chunk(&id, &model, json!({ "content": w }), None)),
    );
    parts.push(chunk(&id, &model, json!({}), Some("stop")));
    parts.push(web::Bytes::from_static(b"data: [DONE]\n\n"));
    let delay = **delay;
    let body = futures_util::stream::iter(parts).then(move |b| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::io::Error>(b)
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let delay = web::Data::new(Duration::from_millis(args.chunk_delay_ms));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(delay.clone())
            .route("/v1/chat/completions", web::post().to(completions))
    })
    .workers(1)
    .bind(("127.0.0.1", args.port))?;
    println!(
        "{}",
        json!({ "listening": format!("http://127.0.0.1:{}/v1", args.port) })
    );
    server.run().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn facts_are_the_writers_sentences_in_the_third_person() {
        assert_eq!(
            super::facts("Salut ! Je m'appelle Léa. J'adore les croissants du marché."),
            vec!["S'appelle Léa", "Adore les croissants du marché"]
        );
    }
}
