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
    // The gateway as `make dev` runs it; the services as production does (the default).
    let s = Stack::with(Options {
        env: vec![("RUST_LOG", "info,actix_server=warn".into())],
        gateway_env: vec![("LOG_FORMAT", "compact".into())],
        ..Options::default()
    })
    .await;
    let (status, _) = s.call(Method::GET, "/api/v1/characters", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.call(Method::GET, "/api/v1/users/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
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

    // The gateway, for people: one line per request, a refusal with its reason, no span fields.
    let gateway = plain(&s.gateway_proc.log());
    let line = |needle: &str| {
        gateway
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}:\n{gateway}"))
            .to_owned()
    };
    let list = line("GET /api/v1/characters ");
    assert!(
        list.contains("INFO GET /api/v1/characters 200 ") && list.contains(" ms  req="),
        "{list}"
    );
    let refused = line("GET /api/v1/users/me");
    assert!(
        refused.contains("WARN GET /api/v1/users/me 401 ")
            && refused.contains("unauthorized: authentication required  req="),
        "{refused}"
    );
    let missing = line(&request_id);
    assert!(
        missing.contains("WARN GET /api/v1/conversations/nobody/messages 404 "),
        "{missing}"
    );
    assert!(!missing.contains("limit=37"), "no query string: {missing}");
    for l in [&list, &refused, &missing] {
        assert!(!l.contains("http.") && !l.contains("otel."), "{l}");
        assert!(l.len() < 200, "{l}");
    }
    assert_eq!(
        gateway.matches("/api/v1/characters").count(),
        1,
        "one line per request:\n{gateway}"
    );
    assert!(
        !gateway.lines().any(|l| l.trim_start().starts_with('{')),
        "no JSON in compact logs:\n{gateway}"
    );

    // A chat replica, for machines: every line JSON; each request one object with the facts as
    // fields, the refusal's code and detail included.
    let chat: String = s.chat.iter().map(|p| p.log()).collect();
    let events: Vec<Value> = chat
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access = |path: &str| {
        events
            .iter()
            .find(|e| e["target"] == "access" && e["fields"]["path"] == path)
            .unwrap_or_else(|| panic!("no access event for {path}:\n{chat}"))
    };
    let missing = access("/api/v1/conversations/nobody/messages");
    assert_eq!(
        (
            missing["level"].as_str(),
            missing["fields"]["method"].as_str(),
            missing["fields"]["status"].as_u64(),
            missing["fields"]["code"].as_str(),
            missing["fields"]["request_id"].as_str(),
        ),
        (
            Some("WARN"),
            Some("GET"),
            Some(404),
            Some("not_found"),
            Some(request_id.as_str())
        )
    );
    assert!(missing["fields"]["ms"].as_f64().unwrap() >= 0.0);
    let invalid = access("/api/v1/conversations/sophia/messages");
    assert_eq!(invalid["fields"]["code"], "validation_failed");
    assert_eq!(invalid["fields"]["detail"], "content: must not be empty");
    assert!(
        !chat.contains("Error encountered while processing"),
        "no second, longer warning per refusal:\n{chat}"
    );
}
