//! What the processes write about each request, read from their real output: one short line per
//! request for people (`LOG_FORMAT=compact`, what `make dev` uses), JSON with the same facts as
//! fields for machines (the default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{Options, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The text without its color codes.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_line_for_people_and_one_json_object_for_machines() {
    let s = Stack::with(Options {
        env: vec![
            ("LOG_FORMAT", "compact".into()),
            ("RUST_LOG", "info,actix_server=warn".into()),
        ],
        gateway_env: vec![("LOG_FORMAT", "json".into())],
        ..Options::default()
    })
    .await;
    let (status, _) = s.call(Method::GET, "/api/v1/characters", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let user = s.sign_up("logs@example.com").await;
    let token = user["access_token"].as_str().unwrap().to_owned();
    let (status, problem) = s
        .call(
            Method::GET,
            "/api/v1/conversations/nobody/messages?limit=37",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let request_id = problem["request_id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/conversations/sophia/messages",
            Some(&token),
            Some(json!({ "content": "" })),
        )
        .await;
    assert!(status.is_client_error());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The chat service, for people: the refusal in one line, with its reason and request id,
    // and no span fields trailing after it.
    let chat: String = s.chat.iter().map(|p| plain(&p.log())).collect();
    let refusal = chat
        .lines()
        .find(|l| l.contains(&request_id))
        .unwrap_or_else(|| panic!("no line with {request_id}:\n{chat}"));
    assert!(
        refusal.contains("WARN GET /api/v1/conversations/nobody/messages 404 ")
            && refusal.contains(" ms not_found: not found  req="),
        "{refusal}"
    );
    assert!(!refusal.contains("limit=37"), "no query string: {refusal}");
    assert!(
        !refusal.contains("http.") && !refusal.contains("otel."),
        "{refusal}"
    );
    assert!(refusal.len() < 200, "{refusal}");
    assert!(
        chat.lines().any(
            |l| l.contains("WARN POST /api/v1/conversations/sophia/messages 422")
                && l.contains("validation_failed: content: must not be empty")
        ),
        "{chat}"
    );
    assert!(
        !chat.lines().any(|l| l.trim_start().starts_with('{')),
        "no JSON in compact logs:\n{chat}"
    );

    // The gateway, for machines: every line JSON; each request one object with the same facts.
    let gateway = s.gateway_proc.log();
    let events: Vec<Value> = gateway
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access: Vec<&Value> = events.iter().filter(|e| e["target"] == "access").collect();
    let of = |path: &str| {
        access
            .iter()
            .find(|e| e["fields"]["path"] == path)
            .unwrap_or_else(|| panic!("no access event for {path}:\n{gateway}"))
    };
    let list = of("/api/v1/characters");
    assert_eq!(
        (
            list["level"].as_str(),
            list["fields"]["method"].as_str(),
            list["fields"]["status"].as_u64()
        ),
        (Some("INFO"), Some("GET"), Some(200))
    );
    assert!(list["fields"]["ms"].as_f64().unwrap() >= 0.0);
    let missing = of("/api/v1/conversations/nobody/messages");
    assert_eq!(missing["level"], "WARN");
    assert_eq!(missing["fields"]["status"], 404);
    assert_eq!(missing["fields"]["request_id"], request_id.as_str());
    assert!(
        !gateway.contains("Error encountered while processing"),
        "no second, longer warning per refusal:\n{gateway}"
    );
}
