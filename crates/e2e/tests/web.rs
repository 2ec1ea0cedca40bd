//! The web app (`web/`) against the real stack: its generated API client is the one the running
//! API's document makes; browser sessions keep their refresh token where page scripts cannot
//! read it; and the whole story in a real Chromium (`web/e2e/story.mjs`: playwright-core
//! driving Debian's `/usr/bin/chromium`, axe-core on every screen, screenshots in
//! `web/test-results/`). `make web` builds the app and installs its packages (from the
//! lockfile); `make tools` installs Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use e2e::{Options, Stack};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// The web app's own packages, installed by `make web`.
fn node_tool(name: &str) -> PathBuf {
    let path = web_dir().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: `make web` installs the web app's packages (npm ci)",
        path.display()
    );
    path
}

fn built() -> PathBuf {
    let dist = web_dir().join("dist");
    assert!(
        dist.join("index.html").exists(),
        "web/dist is missing: `make web` builds the app"
    );
    dist.canonicalize().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_api_client_is_current() {
    let s = Stack::start().await;
    let doc = s
        .http
        .get(format!("{}/api/v1/openapi.json", s.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("openapi.json");
    let output = dir.path().join("schema.d.ts");
    std::fs::write(&input, doc).unwrap();
    let run = Command::new(node_tool("openapi-typescript"))
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .current_dir(web_dir())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "openapi-typescript: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let fresh = std::fs::read_to_string(&output).unwrap();
    let path = web_dir().join("src/api/schema.d.ts");
    // `WEB_API_UPDATE=1` writes the fresh types instead of comparing (then commit them).
    if std::env::var_os("WEB_API_UPDATE").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        fresh == committed,
        "web/src/api/schema.d.ts is stale: the API changed. `make web-api` regenerates it from the \
         running API's document (with `make dev` running), or `WEB_API_UPDATE=1 cargo nextest run \
         -E 'binary(web)'` from a test stack; then commit it."
    );
}

fn cookies_of(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set: &[String], name: &str) -> Option<String> {
    set.iter().find_map(|c| {
        c.split(';')
            .next()?
            .strip_prefix(&format!("{name}="))
            .map(str::to_owned)
    })
}

/// `X-Dream-Session: cookie`: the refresh token only in an `HttpOnly`, `SameSite=Strict` cookie
/// on the refresh path; the access token's copy only opens images; without the header the
/// cookie is worth nothing; sign-out clears both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_keep_the_refresh_token_out_of_page_scripts() {
    let s = Stack::start().await;
    let post = |path: &str, body: Value| {
        s.http
            .post(format!("{}{path}", s.gateway))
            .header("x-dream-session", "cookie")
            .json(&body)
    };
    let res = post(
        "/api/v1/auth/register",
        json!({ "email": "page@example.com", "password": "un mot de passe", "display_name": "Page" }),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let set = cookies_of(&res);
    let body: Value = res.json().await.unwrap();
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token in the body: {body}"
    );
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_cookie = set
        .iter()
        .find(|c| c.starts_with("dream_refresh="))
        .unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/auth",
        "Max-Age=2592000",
    ] {
        assert!(refresh_cookie.contains(part), "{refresh_cookie}: {part}");
    }
    let media_cookie = set.iter().find(|c| c.starts_with("dream_media=")).unwrap();
    assert!(
        media_cookie.contains("HttpOnly")
            && media_cookie.contains("Path=/api/v1/media")
            && media_cookie.contains("SameSite=Strict"),
        "{media_cookie}"
    );
    let refresh = cookie_value(&set, "dream_refresh").unwrap();
    let media = cookie_value(&set, "dream_media").unwrap();
    assert_eq!(
        media, access,
        "the media cookie holds the short-lived token"
    );

    // The cookie alone (a cross-site form could send it, not the header) refreshes nothing.
    let res = s
        .http
        .post(format!("{}/api/v1/auth/refresh", s.gateway))
        .header("cookie", format!("dream_refresh={refresh}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // With the header it does, and rotates the cookie.
    let res = post("/api/v1/auth/refresh", json!({}))
        .header("cookie", format!("dream_refresh={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let set = cookies_of(&res);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let rotated = cookie_value(&set, "dream_refresh").unwrap();
    assert_ne!(rotated, refresh);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let media = cookie_value(&set, "dream_media").unwrap();

    // A photo, then its image through the media cookie alone (as `<img>` asks for it).
    s.post(
        "/api/v1/matches",
        Some(&access),
        json!({ "character_id": "sophia" }),
    )
    .await;
    let (status, job) = s
        .post(
            "/api/v1/photos/sophia/generate",
            Some(&access),
            json!({ "prompt": "un chat sur une pile de livres" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let url = loop {
        let (_, j) = s
            .get(
                &format!("/api/v1/photos/jobs/{}", job["id"].as_str().unwrap()),
                &access,
            )
            .await;
        if j["status"] == "done" {
            break j["photo"]["url"].as_str().unwrap().to_owned();
        }
        assert_ne!(j["status"], "failed", "{j}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let image = s
        .http
        .get(format!("{}{url}?w=128", s.gateway))
        .header("cookie", format!("dream_media={media}"))
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), StatusCode::OK);
    assert_eq!(image.headers()["content-type"], "image/jpeg");
    // The media cookie opens images only: not the API, not another method.
    let matches = s
        .http
        .get(format!("{}/api/v1/matches", s.gateway))
        .header("cookie", format!("dream_media={media}"))
        .send()
        .await
        .unwrap();
    assert_eq!(matches.status(), StatusCode::UNAUTHORIZED);
    let other = s.account("other@example.com").await;
    let theirs = s
        .http
        .get(format!("{}{url}", s.gateway))
        .header("cookie", format!("dream_media={other}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        theirs.status(),
        StatusCode::NOT_FOUND,
        "someone else's photo"
    );

    // Sign-out by cookie ends the family and clears both cookies.
    let res = post("/api/v1/auth/logout", json!({}))
        .header("cookie", format!("dream_refresh={rotated}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cleared = cookies_of(&res);
    assert!(
        cleared.iter().filter(|c| c.contains("Max-Age=0")).count() == 2,
        "{cleared:?}"
    );
    let res = post("/api/v1/auth/refresh", json!({}))
        .header("cookie", format!("dream_refresh={rotated}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = s.get("/api/v1/matches", &access).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the access token ended too"
    );
}

/// The gateway serves the built app; then the story in Chromium.
/// A page that changes its password stays signed in: the new session's refresh token comes
/// in its cookie (not the body), the old cookie is dead, the new one refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_changes_its_password_stays_signed_in() {
    let s = Stack::start().await;
    let res = s
        .http
        .post(format!("{}/api/v1/auth/register", s.gateway))
        .header("x-dream-session", "cookie")
        .json(&json!({ "email": "pw@example.com", "password": "un mot de passe", "display_name": "Pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let old = cookie_value(&cookies_of(&res), "dream_refresh").unwrap();
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let change = |mode: Option<&str>, current: &str, new: &str| {
        let mut req = s
            .http
            .put(format!("{}/api/v1/users/me/password", s.gateway))
            .bearer_auth(&access)
            .json(&json!({ "current_password": current, "new_password": new }));
        if let Some(mode) = mode {
            req = req.header("x-dream-session", mode);
        }
        req.send()
    };
    // A mode that is not `cookie` is refused before anything changes.
    let res = change(Some("jar"), "un mot de passe", "un autre mot de passe")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = change(Some("cookie"), "un mot de passe", "un autre mot de passe")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let set = cookies_of(&res);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    let new = cookie_value(&set, "dream_refresh").unwrap();
    assert_ne!(new, old);
    assert!(cookie_value(&set, "dream_media").is_some(), "{set:?}");
    let refresh = |cookie: String| {
        s.http
            .post(format!("{}/api/v1/auth/refresh", s.gateway))
            .header("x-dream-session", "cookie")
            .header("cookie", format!("dream_refresh={cookie}"))
            .json(&json!({}))
            .send()
    };
    assert_eq!(
        refresh(old).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refresh(new).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_story_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: `make tools` installs it (apt-get install -y chromium)"
    );
    assert!(
        web_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: `make web` installs the web app's packages (npm ci)"
    );
    let dist = built();
    let s = Stack::with(Options {
        env: vec![
            ("AI_PHOTO_EVERY", "2".into()),
            // Tokens paced as a model writes them, so that the page can be seen drawing them.
            ("AI_TOKEN_DELAY_MS", "30".into()),
            ("LOGIN_LIMIT_PER_IP_PER_MIN", "1000".into()),
        ],
        gateway_env: vec![("WEB_DIR", dist.display().to_string())],
        ..Options::default()
    })
    .await;

    // The page: no-cache, a strict CSP; its hashed assets: a year, immutable.
    let page = s
        .http
        .get(format!("{}/chat/sophia", s.gateway))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert!(script.starts_with("/assets/"), "{html}");
    let asset = s
        .http
        .get(format!("{}{script}", s.gateway))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // What is not the app's is still the API's: a 404 problem, not a page.
    for path in ["/metrics", "/api/v1/nothing", "/assets/gone.js"] {
        let res = s
            .http
            .get(format!("{}{path}", s.gateway))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["code"], "not_found", "{path}");
    }

    let out = Command::new("timeout")
        .args(["300", "node", "e2e/story.mjs"])
        .current_dir(web_dir())
        .env("BASE_URL", &s.gateway)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    println!("{log}");
    assert!(
        out.status.success(),
        "the browser story failed:\n{log}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains(" 0 failed"), "{log}");
}
