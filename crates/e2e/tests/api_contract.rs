//! The merged OpenAPI document is a valid OpenAPI 3.1 document (checked by a real validator),
//! and the running API does what it says: schemathesis, every check, against the gateway.
//! Both tools come from PyPI (`make tools` installs them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use e2e::{Options, Stack};
use reqwest::Method;
use serde_json::json;

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: `make tools` installs it (pip install schemathesis openapi-spec-validator)"
    );
    Command::new(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_and_the_api_keeps_to_it() {
    let s = Stack::with(Options {
        env: vec![
            ("LOGIN_LIMIT_PER_IP_PER_MIN", "100000".into()),
            ("REGISTER_LIMIT_PER_IP_PER_HOUR", "100000".into()),
            ("AI_TOKEN_DELAY_MS", "0".into()),
        ],
        gateway_env: vec![
            ("RATE_LIMIT_IP_PER_MIN", "1000000".into()),
            ("RATE_LIMIT_USER_PER_MIN", "1000000".into()),
        ],
        ..Options::default()
    })
    .await;
    let (status, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert!(status.is_success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = tool("openapi-spec-validator").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What the validator does not check: one id per operation, a description for every
    // response, errors declared as problem documents, the shared errors declared everywhere.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: operationId {id:?} again"
            );
            let responses = op["responses"].as_object().unwrap();
            for (code, r) in responses {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {code}: no description"
                );
                if code.starts_with('4') || code.starts_with('5') || code == "default" {
                    assert!(
                        r["content"].get("application/problem+json").is_some(),
                        "{method} {path} {code}: errors are problem+json"
                    );
                }
            }
            for code in ["400", "429", "503"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path}: {code} undeclared"
                );
            }
            if op.get("security").is_some_and(|s| s != &json!([])) {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path}: 401 undeclared"
                );
            }
        }
    }

    // A user with a conversation, so that the operations have something to act on.
    let token = s.matched("contract@example.com", "sophia").await;
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&token),
        json!({ "content": "Bonjour !" }),
    )
    .await;
    // The writes of one's own characters check more than the document can say (a PNG must
    // carry a card; text fields are trimmed and their control characters refused): they run
    // apart, with every check but "a schema-valid request is accepted".
    const OWN_CHARACTER_WRITES: [&str; 3] = ["create_character", "update_character", "import_card"];
    // A body past a size limit is refused with 413 before its fields are read: a rejection too.
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        "[checks.negative_data_rejection]\nexpected-statuses = [\"400\", \"401\", \"403\", \"404\", \
         \"405\", \"406\", \"409\", \"413\", \"415\", \"422\", \"428\", \"429\", \"5xx\"]\n",
    )
    .unwrap();
    let schemathesis = |extra: &[&str]| {
        let run = tool("st")
            .current_dir(dir.path())
            .args(["run", &format!("{}/api/v1/openapi.json", s.gateway)])
            // One worker: with two threads, hypothesis's lambda descriptions parse source
            // concurrently and CPython 3.11.7's `ast` is not thread-safe there ("AST constructor
            // recursion depth mismatch", a runtime error of the tool, not of the API).
            .args(["--checks", "all", "--workers", "1", "--max-examples", "30"])
            .args(["--seed", "20261129"])
            // It would end the session every other operation is tried with.
            .args(["--exclude-path", "/api/v1/auth/logout-everywhere"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(extra)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&run.stdout).into_owned();
        let summary: Vec<&str> = report
            .lines()
            .filter(|l| {
                l.contains(" generated, ")
                    || l.contains("No issues found")
                    || l.contains(" failures")
            })
            .collect();
        println!("schemathesis: {}", summary.join(" | "));
        assert!(
            run.status.success(),
            "schemathesis found failures:\n{report}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
    };
    let mut rest = Vec::new();
    let mut apart = vec!["--exclude-checks", "positive_data_acceptance"];
    for id in OWN_CHARACTER_WRITES {
        rest.extend(["--exclude-operation-id", id]);
        apart.extend(["--include-operation-id", id]);
    }
    schemathesis(&rest);
    schemathesis(&apart);
}
