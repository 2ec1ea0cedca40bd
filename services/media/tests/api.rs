//! The media service over real HTTP with its workers running, against its own database, Redis
//! prefix and storage directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_core::models::Sender;
use media::generator::{Builtin, Generator};
use media::jobs::{JobConfig, Media, Workers};
use media::storage::Storage;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::testing::TestApp;
use uuid::Uuid;

/// A media service on a storage directory of its own, removed when the test ends.
fn media_with(generator: Arc<dyn Generator>, jobs: JobConfig) -> (Media, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::from_url(dir.path().to_str().unwrap()).unwrap();
    (Media::new(storage, generator, jobs), dir)
}

fn fast_jobs() -> JobConfig {
    JobConfig {
        poll: Duration::from_millis(50),
        backoff: Duration::from_millis(50),
        width: 320,
        height: 240,
        ..JobConfig::default()
    }
}

async fn user(app: &TestApp, email: &str, character: Option<&str>) -> (Uuid, String) {
    app.matched(email, character.as_slice()).await
}

/// A media service with its workers, the demo characters, and Léa matched with Sophia.
async fn start(media: Media, with_workers: bool) -> (TestApp, Option<Workers>, Uuid, String) {
    let app = TestApp::start_with("media", media::API, media::routes::data(media.clone())).await;
    app.with_catalogue().await;
    let workers = with_workers.then(|| Workers::spawn(app.kit.clone(), media));
    let (id, token) = user(&app, "lea@example.com", Some("sophia")).await;
    (app, workers, id, token)
}

async fn wait_done(app: &TestApp, token: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, j) = app.get(&format!("/api/v1/photos/jobs/{job}"), token).await;
        assert_eq!(status, StatusCode::OK, "{j}");
        if j["status"] == "done" || j["status"] == "failed" {
            return j;
        }
        assert!(Instant::now() < deadline, "job never finished: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn generate(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, job) = app
        .post("/api/v1/photos/sophia/generate", Some(token), body)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "queued");
    job
}

async fn fetch(app: &TestApp, path: &str, token: &str, etag: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_made_listed_downloaded_and_kept_private() {
    let (media, _dir) = media_with(Arc::new(Builtin::default()), fast_jobs());
    let (app, _workers, lea, token) = start(media, true).await;

    // 202 with the job and where to follow it.
    let res = app
        .http
        .post(format!("{}/api/v1/photos/sophia/generate", app.base))
        .bearer_auth(&token)
        .json(&json!({ "prompt": "un coucher de soleil sur la plage" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/photos/jobs/{}", job["id"].as_str().unwrap())
    );

    let done = wait_done(&app, &token, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], 1);
    let photo = &done["photo"];
    assert_eq!(photo["prompt"], "un coucher de soleil sur la plage");
    assert_eq!(
        (photo["width"].as_i64(), photo["height"].as_i64()),
        (Some(320), Some(240))
    );
    let url = photo["url"].as_str().unwrap().to_owned();

    // The gallery lists it, newest first.
    let (status, gallery) = app.get("/api/v1/photos/sophia", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gallery["items"].as_array().unwrap().len(), 1);
    assert_eq!(gallery["items"][0]["id"], photo["id"]);
    assert!(
        gallery["items"][0].get("storage_key").is_none(),
        "no storage detail leaks"
    );

    // The image: a real JPEG, private, with an ETag that answers 304 next time.
    let res = fetch(&app, &url, &token, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = res.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xFF\xD8\xFF", "JPEG signature");
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    let again = fetch(&app, &url, &token, Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());

    // A smaller rendition, with its own ETag, made once and then served from storage.
    let small = fetch(&app, &format!("{url}?w=128"), &token, None).await;
    assert_eq!(small.status(), StatusCode::OK);
    let small_etag = small.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(small_etag, etag);
    let small = image::load_from_memory(&small.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (128, 96));
    let same = fetch(&app, &format!("{url}?w=128"), &token, None).await;
    assert_eq!(same.headers()["etag"].to_str().unwrap(), small_etag);
    // Asking for a rendition as large as the photo gives the photo.
    let full = fetch(&app, &format!("{url}?w=512"), &token, None).await;
    assert_eq!(full.headers()["etag"].to_str().unwrap(), etag);

    // The photo arrived in the conversation as an unread message from Sophia carrying it.
    let conversation = app
        .kit
        .store
        .conversations()
        .page(lea, "sophia", None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(conversation.len(), 2, "the greeting, then the photo");
    assert_eq!(conversation[0].sender, Sender::Character);
    assert_eq!(conversation[0].photo_id, photo["id"].as_i64());
    assert!(!conversation[0].is_read);
    assert_eq!(
        app.kit
            .store
            .conversations()
            .unread_count(lea, "sophia")
            .await
            .unwrap(),
        2,
        "the greeting and the photo"
    );

    // Nobody else sees any of it: not the job, the gallery or the image.
    let (_, other) = user(&app, "max@example.com", Some("sophia")).await;
    let (status, _) = app
        .get(
            &format!("/api/v1/photos/jobs/{}", job["id"].as_str().unwrap()),
            &other,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let res = fetch(&app, &url, &other, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = fetch(&app, &url, &other, Some(&etag)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "an ETag is no key");
    let (status, theirs) = app.get("/api/v1/photos/sophia", &other).await;
    assert_eq!(status, StatusCode::OK);
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let (status, _) = app.get("/api/v1/photos/hugo", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no match, no gallery");
    let res = app
        .http
        .get(format!("{}{url}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_prompt_and_character_gets_its_own_picture() {
    let (media, _dir) = media_with(Arc::new(Builtin::default()), fast_jobs());
    let (app, _workers, lea, token) = start(media, true).await;
    app.kit.store.matches().create(lea, "hugo").await.unwrap();
    let mut images = Vec::new();
    for (character, prompt) in [
        ("sophia", "la plage la nuit"),
        ("sophia", "la montagne au matin"),
        ("hugo", "la plage la nuit"),
    ] {
        let (status, job) = app
            .post(
                &format!("/api/v1/photos/{character}/generate"),
                Some(&token),
                json!({ "prompt": prompt }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let done = wait_done(&app, &token, job["id"].as_str().unwrap()).await;
        let url = done["photo"]["url"].as_str().unwrap().to_owned();
        images.push(fetch(&app, &url, &token, None).await.bytes().await.unwrap());
    }
    assert_ne!(images[0], images[1], "another prompt, another picture");
    assert_ne!(images[0], images[2], "another character, another picture");
    // No prompt: the character chooses.
    let job = generate(&app, &token, Value::Null).await;
    let done = wait_done(&app, &token, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["prompt"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let jobs = JobConfig {
        max_pending: 2,
        ..fast_jobs()
    };
    // No workers: jobs stay queued, so the cap can be reached.
    let (media, _dir) = media_with(Arc::new(Builtin::default()), jobs);
    let (app, _none, _lea, token) = start(media, false).await;
    let path = "/api/v1/photos/sophia/generate";
    let cases = [
        (json!({ "prompt": "" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "prompt": "   " }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "prompt": "x".repeat(501) }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "prompt": 42 }), StatusCode::BAD_REQUEST),
        (json!({ "style": "noir" }), StatusCode::BAD_REQUEST),
        (json!("plage"), StatusCode::BAD_REQUEST),
    ];
    for (body, want) in cases {
        let (status, problem) = app.post(path, Some(&token), body.clone()).await;
        assert_eq!(status, want, "{body}: {problem}");
    }
    let res = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post("/api/v1/photos/hugo/generate", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not matched");
    let (status, _) = app
        .post("/api/v1/photos/sophia/generate", None, json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (path, want) in [
        ("/api/v1/photos/jobs/not-a-uuid", StatusCode::BAD_REQUEST),
        (
            &format!("/api/v1/photos/jobs/{}", Uuid::new_v4()) as &str,
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/media/abc", StatusCode::BAD_REQUEST),
        ("/api/v1/media/999999", StatusCode::NOT_FOUND),
        ("/api/v1/media/1?w=300", StatusCode::UNPROCESSABLE_ENTITY),
        ("/api/v1/media/1?w=big", StatusCode::BAD_REQUEST),
        ("/api/v1/media/1?size=2", StatusCode::BAD_REQUEST),
        (
            "/api/v1/photos/sophia?before=garbage",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/photos/sophia?limit=ten", StatusCode::BAD_REQUEST),
    ] {
        let (status, problem) = app.get(path, &token).await;
        assert_eq!(status, want, "{path}: {problem}");
    }
    // Nothing was queued by any of that; then the cap holds at two.
    assert_eq!(app.kit.store.photo_jobs().backlog().await.unwrap(), 0);
    generate(&app, &token, json!({ "prompt": "un" })).await;
    generate(&app, &token, json!({})).await;
    let (status, problem) = app.post(path, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "too_many_photo_jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_deliver_every_job_exactly_once() {
    let jobs = JobConfig {
        workers: 4,
        max_pending: 100,
        width: 64,
        height: 64,
        ..fast_jobs()
    };
    let (media, _dir) = media_with(Arc::new(Builtin::default()), jobs);
    let (app, workers, lea, token) = start(media.clone(), false).await;
    let mut ids = Vec::new();
    for i in 0..24 {
        let job = generate(&app, &token, json!({ "prompt": format!("photo {i}") })).await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    assert!(workers.is_none());
    // Two "replicas" of four workers each, sharing one database and one store.
    let a = Workers::spawn(app.kit.clone(), media.clone());
    let b = Workers::spawn(app.kit.clone(), media);
    for id in &ids {
        let done = wait_done(&app, &token, id).await;
        assert_eq!(done["status"], "done", "{done}");
        assert_eq!(done["attempts"], 1, "nobody claimed a job twice: {done}");
    }
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    let (_, gallery) = app.get("/api/v1/photos/sophia?limit=100", &token).await;
    assert_eq!(gallery["items"].as_array().unwrap().len(), 24);
    let with_photo = app
        .kit
        .store
        .conversations()
        .page(lea, "sophia", None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|m| m.photo_id.is_some())
        .count();
    assert_eq!(with_photo, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_left_by_a_dead_worker_is_taken_over_and_delivered_once() {
    let lease = Duration::from_millis(400);
    let jobs = JobConfig {
        lease,
        ..fast_jobs()
    };
    let (media, _dir) = media_with(Arc::new(Builtin::default()), jobs);
    let (app, _none, lea, token) = start(media.clone(), false).await;
    let job = generate(&app, &token, json!({ "prompt": "le port" })).await;
    // A worker claims the job, then "dies": it never renews nor finishes.
    let jobs = app.kit.store.photo_jobs();
    let dead = jobs.claim(lease).await.unwrap().unwrap();
    assert_eq!(dead.id.to_string(), job["id"].as_str().unwrap());
    assert!(jobs.claim(lease).await.unwrap().is_none(), "held");
    let (_, running) = app
        .get(&format!("/api/v1/photos/jobs/{}", dead.id), &token)
        .await;
    assert_eq!(running["status"], "running");

    // A live replica takes it over once the lease has run out.
    let workers = Workers::spawn(app.kit.clone(), media);
    let done = wait_done(&app, &token, &dead.id.to_string()).await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["attempts"], 2);
    workers.shutdown(Duration::from_secs(5)).await;

    // The dead attempt cannot deliver a second photo, even if it wakes up.
    let late = db_core::models::NewPhoto {
        user_id: lea,
        character_id: "sophia".into(),
        storage_key: "late.jpg".into(),
        content_type: "image/jpeg".into(),
        width: 1,
        height: 1,
        prompt: None,
    };
    assert!(
        app.kit
            .store
            .photo_jobs()
            .deliver(&dead, &late, "late")
            .await
            .unwrap()
            .is_none()
    );
    let (_, gallery) = app.get("/api/v1/photos/sophia", &token).await;
    assert_eq!(gallery["items"].as_array().unwrap().len(), 1);
}

/// An image API that is down: attempts back off, then the job fails with a clear code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_generator_is_retried_then_the_job_fails() {
    service_kit::testing::install_crypto();
    let http = media::generator::Http::new(media::generator::HttpConfig {
        dialect: media::generator::Dialect::OpenAi,
        // Nothing listens on port 9 (discard) here: connection refused at once.
        base_url: "http://127.0.0.1:9/v1".into(),
        model: None,
        api_key: None,
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let jobs = JobConfig {
        max_attempts: 2,
        ..fast_jobs()
    };
    let (media, _dir) = media_with(Arc::new(http), jobs);
    let (app, _workers, lea, token) = start(media, true).await;
    let job = generate(&app, &token, json!({ "prompt": "la mer" })).await;
    let done = wait_done(&app, &token, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["attempts"], 2);
    assert_eq!(
        done["error"], "generation_failed",
        "no internal detail leaks: {done}"
    );
    assert_eq!(done["photo"], Value::Null);
    assert_eq!(
        app.kit
            .store
            .conversations()
            .unread_count(lea, "sophia")
            .await
            .unwrap(),
        1,
        "the greeting alone: no photo arrived"
    );
}
