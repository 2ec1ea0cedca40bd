//! The front door, tried as an attacker would, against the real gateway and services: path
//! tricks that parsers read differently, internal endpoints, slow bodies, spoofed forwarding
//! headers, control bytes in every input, someone else's ids, refresh-token replay, lockouts,
//! races for a capped resource.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use e2e::{Options, Stack, get_request, raw};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}")]
}

/// Every path trick, with no token, a logged-out token and a valid one: refused by the gateway
/// (400 or 404 from it, never forwarded), and the internal endpoints answer only on the admin
/// listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_never_reach_what_they_aim_at() {
    let s = Stack::start().await;
    let login = s.sign_up("lea@example.com").await;
    let valid = login["access_token"].as_str().unwrap().to_owned();
    s.post(
        "/api/v1/matches",
        Some(&valid),
        json!({ "character_id": "sophia" }),
    )
    .await;
    let out = s.sign_up("out@example.com").await;
    let logged_out = out["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": out["refresh_token"] })
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let tricks = [
        "/api/v1/characters/%2E%2E/%2E%2E/%2E%2E/metrics",
        "/api/v1/characters/%2E%2E/%2E%2E/%2E%2E/ready",
        "/api/v1/characters/%2E%2E/%2E%2E/%2E%2E/internal/slow-queries",
        "/api/v1/characters/%2e%2e/matches",
        "/api/v1/characters/../matches",
        "/api/v1/characters/./../matches",
        "/api/v1/users/%2e%2e/%2e%2e/%2e%2e/internal/slow-queries",
        "/api/v1/photos/%2e%2e/%2e%2e/%2e%2e/internal/slow-queries",
        "/api/v1/characters/..%2fmatches",
        "/api/v1/characters/%2fmatches",
        "/api/v1/characters/%2Fmatches",
        "/api/v1/characters/..%5cmatches",
        "/api/v1/characters/%5C..%5Cmatches",
        "/api/v1/characters\\..\\matches",
        "/api/v1/characters/%252e%252e/matches",
        "/api/v1/characters/..;/matches",
        "//api/v1/matches",
        "/api//v1/matches",
        "/api/v1/matches/",
        "/API/v1/matches",
        "/api/v1/Matches",
        "/api/v1/matches%00",
        "/api/v1/matches%2500",
        "/metrics",
        "/ready",
        "/internal/slow-queries",
        "/api/v1/metrics",
        "/api/v1/internal/slow-queries",
        "/openapi.json",
    ];
    for token in [None, Some(&logged_out), Some(&valid)] {
        let headers = token.map(|t| bearer(t)).unwrap_or_default();
        for path in tricks {
            let (status, body) = raw(s.gateway_proc.port, &get_request(path, &headers), None).await;
            assert!(
                status == 400 || status == 404,
                "{path} (token: {}): {status} {body}",
                token.is_some()
            );
            let problem: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert!(
                problem["code"] == "bad_request" || problem["code"] == "not_found",
                "{path}: {body}"
            );
            assert!(
                !body.contains("db_pool") && !body.contains("slow"),
                "{path}: {body}"
            );
        }
    }
    // The logged-out token is refused at the gateway, and at the service behind it.
    let (status, _) = raw(
        s.gateway_proc.port,
        &get_request("/api/v1/matches", &bearer(&logged_out)),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let direct = s
        .http
        .get(format!("{}/api/v1/matches", s.chat[0].url()))
        .bearer_auth(&logged_out)
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct.status(),
        StatusCode::UNAUTHORIZED,
        "services refuse revoked sessions too"
    );
    // The internal endpoints are on the admin listeners only.
    for p in [&s.gateway_proc, &s.auth, &s.chat[0]] {
        let public = s
            .http
            .get(format!("{}/metrics", p.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(public.status(), StatusCode::NOT_FOUND, "{}", p.name);
        let admin = s
            .http
            .get(format!("{}/metrics", p.admin_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), StatusCode::OK, "{}", p.name);
    }
    // A declared path with an undeclared method: 405 with the methods it takes.
    let res = s
        .http
        .delete(format!("{}/api/v1/characters", s.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, POST");
}

/// Clients that send their body a byte at a time hold neither the upstream slots nor anyone
/// else's place: they get 408 when the body deadline passes, at most their share of places at
/// once, and everyone else is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_cannot_hold_the_door() {
    let s = Stack::with(Options {
        gateway_env: vec![
            ("GATEWAY_BODY_TIMEOUT_MS", "3000".into()),
            ("GATEWAY_MAX_IN_FLIGHT", "8".into()),
            ("GATEWAY_MAX_PER_CLIENT", "8".into()),
        ],
        ..Options::default()
    })
    .await;
    let port = s.gateway_proc.port;
    // Twelve slow uploads from one address: 8 are let in (and time out), 4 are refused at once.
    let mut slow = Vec::new();
    for _ in 0..12 {
        slow.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(std::net::SocketAddr::new(ATTACKER, 0)).unwrap();
            let mut stream = socket
                .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .unwrap();
            let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            let started = Instant::now();
            let mut answer = vec![0u8; 4096];
            loop {
                tokio::select! {
                    n = stream.read(&mut answer) => {
                        let n = n.unwrap_or(0);
                        let text = String::from_utf8_lossy(&answer[..n]).into_owned();
                        let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                        return (status, started.elapsed());
                    }
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if stream.write_all(b"{").await.is_err() {
                            return (0, started.elapsed());
                        }
                    }
                }
            }
        }));
    }
    // Meanwhile everyone else gets through, as many at once as there are upstream slots: the
    // slow bodies hold none of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut others = Vec::new();
    for _ in 0..8 {
        let http = s.http.clone();
        let url = format!("{}/api/v1/characters", s.gateway);
        others.push(tokio::spawn(async move {
            let started = Instant::now();
            let status = http.get(url).send().await.unwrap().status();
            (status, started.elapsed())
        }));
    }
    for o in others {
        let (status, took) = o.await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "another client is served during the attack"
        );
        assert!(
            took < Duration::from_secs(2),
            "and not kept waiting: {took:?}"
        );
    }
    let mut outcomes = Vec::new();
    for t in slow {
        outcomes.push(t.await.unwrap());
    }
    let timed_out = outcomes.iter().filter(|(s, _)| *s == 408).count();
    let refused = outcomes.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!((timed_out, refused), (8, 4), "{outcomes:?}");
    for (status, took) in &outcomes {
        if *status == 408 {
            assert!(
                *took < Duration::from_secs(6),
                "408 at the deadline: {took:?}"
            );
        }
    }
}

/// Control characters in every text field and id are a 422 (or a 400 for a path), never a 500,
/// and nothing is stored; ids are checked before anything is looked up or cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_bytes_and_odd_ids_are_refused_before_anything_is_touched() {
    let s = Stack::start().await;
    let t = s.matched("lea@example.com", "sophia").await;
    let (_, memory) = s
        .post(
            "/api/v1/memories",
            Some(&t),
            json!({ "character_id": "sophia", "content": "Léa aime le thé" }),
        )
        .await;
    let memory = memory["id"].as_i64().unwrap();
    let nul = "un\u{0}deux";
    let esc = "rouge \u{1b}[31m";
    for bad in [nul, esc, "a\rb"] {
        let cases: Vec<(Method, String, Option<Value>)> = vec![
            (
                Method::POST,
                "/api/v1/conversations/sophia/messages".into(),
                Some(json!({ "content": bad })),
            ),
            (
                Method::POST,
                "/api/v1/memories".into(),
                Some(json!({ "character_id": "sophia", "content": bad })),
            ),
            (
                Method::PATCH,
                format!("/api/v1/memories/{memory}"),
                Some(json!({ "content": bad })),
            ),
            (
                Method::GET,
                format!("/api/v1/search/messages?q={}", urlencode(bad)),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/search/memories?q={}", urlencode(bad)),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/memories?character_id={}", urlencode(bad)),
                None,
            ),
            (
                Method::POST,
                "/api/v1/matches".into(),
                Some(json!({ "character_id": bad })),
            ),
            (
                Method::POST,
                "/api/v1/photos/sophia/generate".into(),
                Some(json!({ "prompt": bad })),
            ),
            (
                Method::PATCH,
                "/api/v1/users/me".into(),
                Some(json!({ "display_name": bad })),
            ),
        ];
        for (method, path, body) in cases {
            let (status, p) = s.call(method.clone(), &path, Some(&t), body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path}: {p}"
            );
            assert_eq!(p["code"], "validation_failed", "{p}");
        }
        let (status, p) = s
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "email": format!("lea{bad}@example.com"), "password": "x" }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "login: {p}");
    }
    let (status, _) = raw(
        s.gateway_proc.port,
        &get_request("/api/v1/characters/sophia%00", &[]),
        None,
    )
    .await;
    assert_eq!(status, 400);
    // Nothing was stored by any of it.
    let (_, page) = s.get("/api/v1/conversations/sophia/messages", &t).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the greeting alone: {page}");
    assert_eq!(items[0]["sender"], "character");
    let (_, memories) = s.get("/api/v1/memories?character_id=sophia", &t).await;
    assert_eq!(memories["items"][0]["content"], "Léa aime le thé");
    // Ids that are not ids are refused before any lookup, and nothing is cached for them.
    let long = "x".repeat(30_000);
    for id in [long.as_str(), "sophia:lock", "Sophia", "sophia%20"] {
        let (status, _) = raw(
            s.gateway_proc.port,
            &get_request(&format!("/api/v1/characters/{id}"), &[]),
            None,
        )
        .await;
        assert!(
            matches!(status, 400 | 404 | 414 | 422 | 431),
            "{}: {status}",
            &id[..id.len().min(20)]
        );
    }
    assert_eq!(
        s.call(Method::GET, "/api/v1/characters/nobody", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let mut redis = redis_keys(&s).await;
    redis.retain(|k| k.contains("character:"));
    assert_eq!(redis, Vec::<String>::new(), "no key per character id");
    // The public catalogue does not hand out the characters' personas.
    let (_, catalogue) = s.call(Method::GET, "/api/v1/characters", None, None).await;
    assert!(catalogue[0]["name"].is_string());
    assert!(
        catalogue
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("persona").is_none())
    );
}

/// Every kind of object is its owner's: another user gets 404 for it, and sees nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_ids_lead_nowhere() {
    let s = Stack::with(Options {
        env: vec![
            ("MEDIA_RENDER_DELAY_MS", "0".into()),
            ("AI_PHOTO_EVERY", "0".into()),
        ],
        ..Options::default()
    })
    .await;
    let a = s.matched("a@example.com", "sophia").await;
    let b = s.matched("b@example.com", "hugo").await;
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&a),
        json!({ "content": "Un secret entre nous." }),
    )
    .await;
    let (_, memory) = s
        .post(
            "/api/v1/memories",
            Some(&a),
            json!({ "character_id": "sophia", "content": "secret" }),
        )
        .await;
    let (status, job) = s
        .post(
            "/api/v1/photos/sophia/generate",
            Some(&a),
            json!({ "prompt": "un secret" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let photo = loop {
        let (_, j) = s.get(&format!("/api/v1/photos/jobs/{job_id}"), &a).await;
        if j["status"] == "done" {
            break j["photo"]["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let m = memory["id"].as_i64().unwrap();
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            "/api/v1/conversations/sophia/messages".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/conversations/sophia/messages".into(),
            Some(json!({ "content": "coucou" })),
        ),
        (
            Method::POST,
            "/api/v1/conversations/sophia/read".into(),
            None,
        ),
        (
            Method::GET,
            "/api/v1/conversations/sophia/typing".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/conversations/sophia/reply".into(),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/memories/{m}"),
            Some(json!({ "content": "à moi" })),
        ),
        (Method::DELETE, format!("/api/v1/memories/{m}"), None),
        (Method::GET, format!("/api/v1/photos/jobs/{job_id}"), None),
        (Method::GET, "/api/v1/photos/sophia".into(), None),
        (
            Method::POST,
            "/api/v1/photos/sophia/generate".into(),
            Some(json!({})),
        ),
        (Method::GET, format!("/api/v1/media/{photo}"), None),
    ];
    for (method, path, body) in cases {
        let (status, p) = s.call(method.clone(), &path, Some(&b), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {p}");
    }
    assert_eq!(
        s.get("/api/v1/search/messages?q=secret", &b).await.1,
        json!([])
    );
    assert_eq!(
        s.get("/api/v1/search/memories?q=secret", &b).await.1,
        json!([])
    );
    assert_eq!(
        s.get("/api/v1/memories?character_id=sophia", &b).await.1["items"],
        json!([])
    );
    // And the owner still has everything.
    assert_eq!(
        s.get(&format!("/api/v1/media/{photo}"), &a).await.0,
        StatusCode::OK
    );
    let (_, mine) = s.get("/api/v1/memories?character_id=sophia", &a).await;
    assert_eq!(mine["items"][0]["content"], "secret");
}

/// Sessions: a replayed refresh token ends its family's access tokens at once; guessing a
/// password slows the guesser down and never locks the owner out; spoofed forwarding headers
/// change nothing; sign-ups are limited per address; request ids are taken only when sane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_throttles_hold_against_replay_guessing_and_spoofing() {
    let s = Stack::with(Options {
        env: vec![("REGISTER_LIMIT_PER_IP_PER_HOUR", "4".into())],
        ..Options::default()
    })
    .await;
    let login = s.sign_up("lea@example.com").await;
    let first_access = login["access_token"].as_str().unwrap().to_owned();
    let (status, rotated) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stolen = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/api/v1/users/me", &stolen).await.0, StatusCode::OK);
    // The old refresh token again: a replay. The whole family ends, now.
    let (status, _) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for token in [&stolen, &first_access] {
        assert_eq!(
            s.get("/api/v1/users/me", token).await.0,
            StatusCode::UNAUTHORIZED
        );
        let direct = s
            .http
            .get(format!("{}/api/v1/users/me", s.auth.url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            direct.status(),
            StatusCode::UNAUTHORIZED,
            "at the service too"
        );
    }
    let (status, _) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": rotated["refresh_token"] }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the rotated refresh token died with it"
    );

    // Someone else guesses Léa's password from another address, claiming to be elsewhere.
    let attacker = reqwest::Client::builder()
        .local_address(ATTACKER)
        .build()
        .unwrap();
    let mut refused = 0;
    for i in 0..10 {
        let res = attacker
            .post(format!("{}/api/v1/auth/login", s.gateway))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("forwarded", format!("for=198.51.100.{i}"))
            .header("x-real-ip", format!("198.51.100.{i}"))
            .json(&json!({ "email": "lea@example.com", "password": "wrong guess" }))
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("guess {i}: {other}"),
        }
    }
    assert!(
        refused >= 4,
        "spoofed headers did not reset the guesser's backoff ({refused} refused)"
    );
    let (status, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "lea@example.com", "password": "un mot de passe" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the owner signs in while someone guesses elsewhere"
    );

    // Sign-ups: four per address per hour here; the attacker's address is counted on its own.
    for i in 0..3 {
        let (status, _) = s
            .post("/api/v1/auth/register", None, json!({ "email": format!("n{i}@example.com"), "password": "un mot de passe", "display_name": "N" }))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, p) = s
        .post("/api/v1/auth/register", None, json!({ "email": "n9@example.com", "password": "un mot de passe", "display_name": "N" }))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let res = attacker
        .post(format!("{}/api/v1/auth/register", s.gateway))
        .json(&json!({ "email": "x@example.com", "password": "un mot de passe", "display_name": "X" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    // Request ids: a sane one is kept; anything else is replaced, never echoed.
    for (sent, kept) in [
        ("a1b2c3d4e5f6a7b8-request", true),
        ("<script>x</script>", false),
        ("short", false),
    ] {
        let res = s
            .http
            .get(format!("{}/api/v1/characters", s.gateway))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let echoed = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(echoed == sent, kept, "{sent} -> {echoed}");
    }
}

/// Forty requests race for the last photo places: exactly the cap is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_photo_cap_is_exact_under_a_race() {
    let s = Stack::with(Options {
        env: vec![
            ("MEDIA_RENDER_DELAY_MS", "20000".into()),
            ("MEDIA_MAX_PENDING", "5".into()),
        ],
        ..Options::default()
    })
    .await;
    let t = s.matched("lea@example.com", "sophia").await;
    let mut racers = Vec::new();
    for i in 0..40 {
        let (http, url, t) = (
            s.http.clone(),
            format!("{}/api/v1/photos/sophia/generate", s.gateway),
            t.clone(),
        );
        racers.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(t)
                .json(&json!({ "prompt": format!("photo {i}") }))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for r in racers {
        statuses.push(r.await.unwrap());
    }
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let capped = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((accepted, capped), (5, 35), "{statuses:?}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every key of the stack's Redis prefix.
async fn redis_keys(s: &Stack) -> Vec<String> {
    let cache = db_core::Cache::new(
        db_core::RedisPool::new(&db_core::RedisConfig {
            key_prefix: s.redis_prefix.clone(),
            ..db_test::redis_config()
        })
        .unwrap(),
    );
    cache.keys_matching(&format!("{}:*", s.redis_prefix)).await
}

/// A compressed body is refused before anything expands it (at the gateway, and at a service
/// reached directly); an HTTP/1.0 client gets a body it can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_refused_and_http_1_0_is_served_plainly() {
    let s = Stack::start().await;
    // A gzip header and a few bytes: what matters is that nothing decompresses it.
    let gz: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];
    for base in [&s.gateway, &s.auth.url()] {
        let res = s
            .http
            .post(format!("{base}/api/v1/auth/login"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gz.to_vec())
            .send()
            .await
            .unwrap();
        let (status, p) = e2e::read("gzip", res).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported_media_type")
            ),
            "{base}"
        );
    }
    let request = "GET /api/v1/characters/sophia HTTP/1.0\r\nHost: x\r\n\r\n";
    let (status, body) = raw(s.gateway_proc.port, request, None).await;
    assert_eq!(status, 200);
    let card: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not chunked: {body:?}"));
    assert_eq!(card["id"], "sophia");
}

/// Inputs that once broke things further down: search text PostgreSQL could not parse,
/// characters that grow when lowercased, a reply longer than a message holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_text_never_reaches_a_500() {
    let s = Stack::with(Options {
        env: vec![
            ("AI_TOKEN_DELAY_MS", "0".into()),
            ("AI_PHOTO_EVERY", "0".into()),
        ],
        ..Options::default()
    })
    .await;
    let t = s.matched("lea@example.com", "sophia").await;
    let dashes = "-".repeat(40);
    for path in ["/api/v1/search/messages", "/api/v1/search/memories"] {
        let (status, hits) = s.get(&format!("{path}?q={}", urlencode(&dashes)), &t).await;
        assert_eq!((status, hits), (StatusCode::OK, json!([])), "{path}");
        let (status, _) = s
            .get(
                &format!("{path}?q={}", urlencode(&format!("{dashes}café"))),
                &t,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let turkish = format!("{}@example.com", "\u{130}".repeat(200));
    let (status, p) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": turkish, "password": "un mot de passe", "display_name": "I" }),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
    for content in [format!("Bonjour {dashes}"), "\u{130}".repeat(4000)] {
        let (status, _) = s
            .post(
                "/api/v1/conversations/sophia/messages",
                Some(&t),
                json!({ "content": content }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, reply) = s
            .post("/api/v1/conversations/sophia/reply", Some(&t), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        assert!(reply["content"].as_str().unwrap().chars().count() <= 8000);
    }
}

/// Swipes and plain asks racing on one message: one reply, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_swipes_never_write_or_count_a_reply_twice() {
    let s = Stack::with(Options {
        env: vec![
            ("AI_TOKEN_DELAY_MS", "0".into()),
            ("AI_PHOTO_EVERY", "0".into()),
        ],
        ..Options::default()
    })
    .await;
    let t = s.matched("lea@example.com", "sophia").await;
    for round in 0..5 {
        s.post(
            "/api/v1/conversations/sophia/messages",
            Some(&t),
            json!({ "content": format!("Message {round}") }),
        )
        .await;
        let mut racers = Vec::new();
        for i in 0..6 {
            let (http, t) = (s.http.clone(), t.clone());
            let url = format!(
                "{}/api/v1/conversations/sophia/reply{}",
                s.gateway,
                if i % 2 == 0 { "?regenerate=true" } else { "" }
            );
            racers.push(tokio::spawn(async move {
                http.post(url).bearer_auth(t).send().await.unwrap().status()
            }));
        }
        for r in racers {
            let status = r.await.unwrap();
            assert!(
                matches!(status.as_u16(), 200 | 201 | 409),
                "round {round}: {status}"
            );
        }
    }
    // Whatever the interleaving: one reply per message, and XP for five replies.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = s
            .get("/api/v1/conversations/sophia/messages?limit=100", &t)
            .await;
        let items = page["items"].as_array().unwrap();
        // The greeting the match opened with is not a reply.
        let replies = items.iter().filter(|m| m["sender"] == "character").count() - 1;
        let (_, me) = s.get("/api/v1/users/me", &t).await;
        if replies >= 5 {
            assert_eq!(replies, 5, "one reply per message: {page}");
            assert_eq!(me["xp"], 50, "counted once each");
            break;
        }
        assert!(Instant::now() < deadline, "replies: {replies}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Photos are capped per day (a paid image API, and the disk, cannot be drained by one
/// account); replies that may take minutes cannot take the slots everyone else needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_photo_cap_and_long_operations_keep_to_their_share() {
    let s = Stack::with(Options {
        env: vec![
            ("MEDIA_PHOTOS_PER_USER_PER_DAY", "3".into()),
            ("MEDIA_MAX_PENDING", "10".into()),
            ("AI_TOKEN_DELAY_MS", "150".into()),
            ("AI_PHOTO_EVERY", "0".into()),
        ],
        gateway_env: vec![("GATEWAY_MAX_LONG_IN_FLIGHT", "1".into())],
        ..Options::default()
    })
    .await;
    let t = s.matched("lea@example.com", "sophia").await;
    for i in 0..3 {
        let (status, _) = s
            .post(
                "/api/v1/photos/sophia/generate",
                Some(&t),
                json!({ "prompt": format!("photo {i}") }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, p) = s
        .post("/api/v1/photos/sophia/generate", Some(&t), json!({}))
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );

    // One slow reply written whole holds the one long slot: a second is shed, everything else
    // is served.
    let u = s.matched("hugo@example.com", "hugo").await;
    for token in [&t, &u] {
        let c = if token == &t { "sophia" } else { "hugo" };
        s.post(
            &format!("/api/v1/conversations/{c}/messages"),
            Some(token),
            json!({ "content": "Raconte-moi ta journée." }),
        )
        .await;
    }
    let slow = {
        let (http, url, t) = (
            s.http.clone(),
            format!("{}/api/v1/conversations/sophia/reply", s.gateway),
            t.clone(),
        );
        tokio::spawn(async move { http.post(url).bearer_auth(t).send().await.unwrap().status() })
    };
    // Wait until the slow reply is being written (it holds its slot from then on).
    let lea: uuid::Uuid = s.get("/api/v1/users/me", &t).await.1["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut conn = s.conn().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (started, _) = db_core::queries::generations::started_since(
            &mut conn,
            lea,
            chrono::DateTime::UNIX_EPOCH,
        )
        .await
        .unwrap();
        if started > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the slow reply never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = s
        .post("/api/v1/conversations/hugo/reply", Some(&u), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the long slot is taken"
    );
    let (status, _) = s.call(Method::GET, "/api/v1/characters", None, None).await;
    assert_eq!(status, StatusCode::OK, "other requests are not affected");
    assert_eq!(s.get("/api/v1/matches", &u).await.0, StatusCode::OK);
    assert_eq!(slow.await.unwrap(), StatusCode::CREATED);
}

/// CORS through the real gateway: a page of an allowed origin may read answers (with the
/// request id and rate-limit headers exposed) and send what the API needs after a preflight;
/// another origin's page gets no `Access-Control-Allow-Origin` (its browser keeps the answer
/// from it) and its preflights are refused; no page
/// may ask to send `x-dream-session` (the header that asks for session cookies); and an answer
/// to a request without `Origin` still says it varies by it, so that a shared cache never hands
/// a page an answer made for another origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_origins_may_read_and_write_from_a_page() {
    const APP: &str = "https://app.example";
    let s = Stack::with(Options {
        gateway_env: vec![("CORS_ORIGINS", APP.into())],
        ..Options::default()
    })
    .await;
    let url = format!("{}/api/v1/characters", s.gateway);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };

    let from_app = s.http.get(&url).header("origin", APP).send().await.unwrap();
    assert_eq!(from_app.status(), StatusCode::OK);
    assert_eq!(header(&from_app, "access-control-allow-origin"), APP);
    let exposed = header(&from_app, "access-control-expose-headers");
    for name in ["x-request-id", "ratelimit-remaining", "retry-after"] {
        assert!(exposed.contains(name), "{name} in {exposed:?}");
    }
    assert!(header(&from_app, "vary").contains("Origin"));

    let elsewhere = s
        .http
        .get(&url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    // Answered (CORS is the browser's to enforce), but not for that page to read.
    assert!(
        !elsewhere
            .headers()
            .contains_key("access-control-allow-origin")
    );

    let preflight = |origin: &str, headers: &str| {
        s.http
            .request(Method::OPTIONS, format!("{}/api/v1/matches", s.gateway))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", headers)
            .send()
    };
    let allowed = preflight(APP, "authorization, content-type").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(header(&allowed, "access-control-allow-origin"), APP);
    assert!(header(&allowed, "access-control-allow-methods").contains("POST"));
    let allowed_headers = header(&allowed, "access-control-allow-headers").to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    for (origin, headers) in [
        (APP, "x-dream-session"),
        ("https://evil.example", "content-type"),
    ] {
        let refused = preflight(origin, headers).await.unwrap();
        assert!(
            !refused.status().is_success()
                && !refused
                    .headers()
                    .contains_key("access-control-allow-origin"),
            "{origin} asking for {headers}: {} {:?}",
            refused.status(),
            refused.headers()
        );
    }

    let no_origin = s.http.get(&url).send().await.unwrap();
    assert_eq!(no_origin.status(), StatusCode::OK);
    assert!(
        !no_origin
            .headers()
            .contains_key("access-control-allow-origin")
    );
    // ...by Origin as well as by what the service's answer varies by.
    let varies = header(&no_origin, "vary");
    assert!(
        varies.contains("Origin") && varies.contains("Authorization"),
        "{varies}"
    );
    assert!(
        header(&from_app, "vary").contains("Authorization"),
        "{:?}",
        header(&from_app, "vary")
    );
}

/// Whom a request is counted against. A client connected straight to the gateway is its
/// connection's peer, whatever it claims (the gateway works that out once per connection);
/// behind a trusted proxy, each request on the proxy's kept-alive connection is from the
/// address the proxy forwarded, request by request. Seen through the per-address limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_count_against_the_address_the_gateway_trusts() {
    // A public key whose private half was thrown away: behind a proxy the gateway refuses the
    // development keys, and the catalogue needs no token.
    const NOBODYS_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA+Je8zNbCgoFa32EMntUAWmI7UZCkh0UnqSShuVPfIm0=
-----END PUBLIC KEY-----";
    for behind_a_proxy in [false, true] {
        let mut gateway_env = vec![
            ("RATE_LIMIT_IP_PER_MIN", "3".into()),
            // Counted here alone: no sync with Redis in the middle of the seven requests.
            ("GATEWAY_LIMIT_SYNC_MS", "600000".into()),
        ];
        if behind_a_proxy {
            gateway_env.push(("TRUSTED_PROXIES", "127.0.0.0/8".into()));
            gateway_env.push(("JWT_PUBLIC_KEY_PEM", NOBODYS_KEY.into()));
        }
        let s = Stack::with(Options {
            gateway_env,
            ..Options::default()
        })
        .await;
        // One connection, kept alive, carrying two clients' requests in turn.
        let proxy = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        // The limits count in windows of a wall-clock minute: all seven in one of them.
        db_test::clear_of_a_minute_edge().await;
        let mut answers = Vec::new();
        for i in 0..7 {
            let res = proxy
                .get(format!("{}/api/v1/characters", s.gateway))
                .header("x-forwarded-for", format!("198.51.100.{}", i % 2))
                .send()
                .await
                .unwrap();
            answers.push(res.status().as_u16());
        }
        let expected = if behind_a_proxy {
            // Three each; the seventh is the first client's fourth.
            [200, 200, 200, 200, 200, 200, 429]
        } else {
            // All from 127.0.0.1: three, then refused.
            [200, 200, 200, 429, 429, 429, 429]
        };
        assert_eq!(answers, expected, "behind a proxy: {behind_a_proxy}");
        // Another peer is counted apart from the first.
        let elsewhere = reqwest::Client::builder()
            .local_address(ATTACKER)
            .build()
            .unwrap()
            .get(format!("{}/api/v1/characters", s.gateway))
            .header("x-forwarded-for", "198.51.100.9")
            .send()
            .await
            .unwrap();
        assert_eq!(
            elsewhere.status(),
            StatusCode::OK,
            "behind a proxy: {behind_a_proxy}"
        );
    }
}
