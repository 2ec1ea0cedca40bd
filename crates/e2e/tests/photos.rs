//! Photos through the gateway: made, listed, downloaded, kept private, delivered exactly once
//! across a killed media service, and sent by a character at affection milestones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use e2e::{Options, Stack};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn wait_job(s: &Stack, token: &str, job: &str, until: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, j) = s.get(&format!("/api/v1/photos/jobs/{job}"), token).await;
        if status == StatusCode::OK && until.contains(&j["status"].as_str().unwrap()) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {job}: {status} {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn download(s: &Stack, url: &str, token: &str, etag: Option<&str>) -> reqwest::Response {
    let mut req = s.http.get(format!("{}{url}", s.gateway)).bearer_auth(token);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    req.send().await.unwrap()
}

/// A photo through the gateway, with the media service killed mid-job and started again:
/// the job is taken over and the photo delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_through_the_gateway_survive_a_killed_media_service() {
    let mut s = Stack::with(Options {
        env: vec![
            ("MEDIA_RENDER_DELAY_MS", "1500".into()),
            ("MEDIA_JOB_LEASE_MS", "1500".into()),
        ],
        ..Options::default()
    })
    .await;
    let lea = s.account("lea@example.com").await;
    s.post(
        "/api/v1/matches",
        Some(&lea),
        json!({ "character_id": "sophia" }),
    )
    .await;

    let (status, job) = s
        .post(
            "/api/v1/photos/sophia/generate",
            Some(&lea),
            json!({ "prompt": "les toits de Paris la nuit" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = wait_job(&s, &lea, job["id"].as_str().unwrap(), &["done", "failed"]).await;
    assert_eq!(done["status"], "done", "{done}");
    let url = done["photo"]["url"].as_str().unwrap().to_owned();
    let (_, gallery) = s.get("/api/v1/photos/sophia", &lea).await;
    assert_eq!(gallery["items"][0]["id"], done["photo"]["id"]);
    let res = download(&s, &url, &lea, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("private")
    );
    let bytes = res.bytes().await.unwrap();
    assert!(
        bytes.starts_with(b"\xFF\xD8\xFF")
            || bytes.starts_with(b"\x89PNG")
            || &bytes[8..12] == b"WEBP",
        "an image signature"
    );
    assert_eq!(
        download(&s, &url, &lea, Some(&etag)).await.status(),
        StatusCode::NOT_MODIFIED
    );
    let hugo = s.account("hugo@example.com").await;
    assert_eq!(
        download(&s, &url, &hugo, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (_, page) = s.get("/api/v1/conversations/sophia/messages", &lea).await;
    assert_eq!(page["items"][0]["photo_id"], done["photo"]["id"], "{page}");

    // Kill the media service while a job runs; start it again.
    let (_, job) = s
        .post(
            "/api/v1/photos/sophia/generate",
            Some(&lea),
            json!({ "prompt": "le canal au petit matin" }),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let running = wait_job(&s, &lea, &id, &["running", "done"]).await;
    assert_eq!(running["status"], "running", "caught mid-job");
    s.media.kill();
    let (status, _) = s.get(&format!("/api/v1/photos/jobs/{id}"), &lea).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "no media replica is up");
    s.media.restart(&s.http).await;
    let done = wait_job(&s, &lea, &id, &["done", "failed"]).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "taken over after the dead attempt's lease: {done}"
    );

    // Exactly once: one photo and one photo message for that prompt.
    let (_, gallery) = s.get("/api/v1/photos/sophia?limit=100", &lea).await;
    let photos = gallery["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["prompt"] == "le canal au petit matin")
        .count();
    assert_eq!(photos, 1, "{gallery}");
    let (_, page) = s
        .get("/api/v1/conversations/sophia/messages?limit=100", &lea)
        .await;
    let carrying = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["photo_id"] == done["photo"]["id"])
        .count();
    assert_eq!(carrying, 1, "{page}");
}

/// Affection milestones: with a photo every 2 points, each reply crosses one, and the ai
/// service asks the media service for a photo on the user's behalf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_crosses_an_affection_milestone_brings_a_photo() {
    let s = Stack::with(Options {
        env: vec![("AI_PHOTO_EVERY", "2".into())],
        ..Options::default()
    })
    .await;
    let lea = s.account("lea@example.com").await;
    s.post(
        "/api/v1/matches",
        Some(&lea),
        json!({ "character_id": "sophia" }),
    )
    .await;
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&lea),
        json!({ "content": "Je t'envoie des bises !" }),
    )
    .await;
    let (status, reply) = s
        .post("/api/v1/conversations/sophia/reply", Some(&lea), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, gallery) = s.get("/api/v1/photos/sophia", &lea).await;
        if let Some(p) = gallery["items"].as_array().unwrap().as_slice().first() {
            assert_eq!(p["prompt"], Value::Null, "the character chose");
            break;
        }
        assert!(Instant::now() < deadline, "no milestone photo arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
