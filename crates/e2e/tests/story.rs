//! A person's story through the gateway, and one request as one trace across the processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use e2e::{Options, Stack};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_story_through_the_gateway() {
    let mut s = Stack::start().await;
    let (status, health) = s.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready: Value = s
        .http
        .get(format!("{}/ready", s.gateway_proc.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            ready["services"]["auth"]["replicas_up"].as_bool(),
            ready["services"]["chat"]["routes_known"].as_bool()
        ),
        (Some(true), Some(true)),
        "{ready}"
    );

    let creds = json!({ "email": "lea@example.com", "password": "un mot de passe" });
    let (status, _) =
        s.post("/api/v1/auth/register", None, json!({ "email": "lea@example.com", "password": "un mot de passe", "display_name": "Léa" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, login) = s.post("/api/v1/auth/login", None, creds.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let access = login["access_token"].as_str().unwrap().to_owned();

    let (status, characters) = s
        .call(reqwest::Method::GET, "/api/v1/characters", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "the catalogue is public");
    assert!(characters.as_array().unwrap().len() >= 8);
    let (status, p) = s
        .call(reqwest::Method::GET, "/api/v1/users/me", None, None)
        .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "the gateway checks tokens"
    );

    assert_eq!(
        s.post(
            "/api/v1/matches",
            Some(&access),
            json!({ "character_id": "sophia" })
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let (status, sent) = s
        .post(
            "/api/v1/conversations/sophia/messages",
            Some(&access),
            json!({ "content": "On se voit au café demain ?" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (status, page) = s
        .get("/api/v1/conversations/sophia/messages", &access)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], sent["id"]);
    // The character answers, streamed through the gateway as server-sent events.
    let res = s
        .http
        .post(format!("{}/api/v1/conversations/sophia/reply", s.gateway))
        .bearer_auth(&access)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let stream = res.text().await.unwrap();
    assert!(stream.matches("event: token").count() >= 5, "{stream}");
    let done = stream
        .split("\n\n")
        .find(|e| e.contains("event: done"))
        .expect("a done event");
    let stored: Value =
        serde_json::from_str(done.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(stored["sender"], "character");
    let (_, page) = s
        .get("/api/v1/conversations/sophia/messages", &access)
        .await;
    assert_eq!(
        page["items"][0]["id"], stored["id"],
        "the reply is in the conversation"
    );
    assert_eq!(page["items"][1]["id"], sent["id"]);

    let (_, hits) = s.get("/api/v1/search/messages?q=cafés", &access).await;
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");

    // Rate-limit headers and the request id come back through the gateway.
    let res = s
        .http
        .get(format!("{}/api/v1/matches", s.gateway))
        .bearer_auth(&access)
        .header("x-request-id", "e2e-request-0042")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "e2e-request-0042");
    assert!(res.headers().contains_key("ratelimit-remaining"));

    // A second user sees nothing of the first.
    s.post(
        "/api/v1/auth/register",
        None,
        json!({ "email": "hugo@example.com", "password": "un autre secret", "display_name": "H" }),
    )
    .await;
    let (_, other) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "hugo@example.com", "password": "un autre secret" }),
        )
        .await;
    let other = other["access_token"].as_str().unwrap();
    assert_eq!(
        s.get("/api/v1/conversations/sophia/messages", other)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/api/v1/search/messages?q=café", other).await.1,
        json!([])
    );

    // Refresh, then logout: the session's tokens stop working at once.
    let (status, rotated) = s
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/api/v1/users/me", &access2).await.0, StatusCode::OK);
    assert_eq!(
        s.post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": rotated["refresh_token"] })
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (status, p) = s.get("/api/v1/users/me", &access2).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    assert_eq!(
        s.get("/api/v1/users/me", &access).await.0,
        StatusCode::UNAUTHORIZED,
        "the whole family"
    );
    assert_eq!(
        s.post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": rotated["refresh_token"] })
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    // One chat replica dies: reads keep working through the other.
    let (_, relog) = s.post("/api/v1/auth/login", None, creds).await;
    let access3 = relog["access_token"].as_str().unwrap().to_owned();
    s.chat[0].kill();
    for _ in 0..6 {
        assert_eq!(
            s.get("/api/v1/conversations/sophia/messages", &access3)
                .await
                .0,
            StatusCode::OK
        );
    }
    // The OpenAPI document, generated from the services' code, lists every route.
    let (status, doc) = s
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/users/me", "get"),
        ("/api/v1/users/me", "patch"),
        ("/api/v1/users/me/stats", "get"),
        ("/api/v1/leaderboard", "get"),
        ("/api/v1/characters", "get"),
        ("/api/v1/characters/{id}", "get"),
        ("/api/v1/matches", "post"),
        ("/api/v1/matches", "get"),
        ("/api/v1/conversations/{character_id}/messages", "get"),
        ("/api/v1/conversations/{character_id}/messages", "post"),
        ("/api/v1/conversations/{character_id}/read", "post"),
        ("/api/v1/conversations/{character_id}/typing", "put"),
        ("/api/v1/conversations/{character_id}/typing", "get"),
        ("/api/v1/search/messages", "get"),
        ("/api/v1/search/memories", "get"),
        ("/api/v1/memories", "get"),
        ("/api/v1/memories", "post"),
        ("/api/v1/memories/{id}", "patch"),
        ("/api/v1/memories/{id}", "delete"),
        ("/api/v1/conversations/{character_id}/reply", "post"),
        ("/api/v1/photos/{character_id}/generate", "post"),
        ("/api/v1/photos/jobs/{id}", "get"),
        ("/api/v1/photos/{character_id}", "get"),
        ("/api/v1/media/{photo_id}", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Message"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let (status, p) = s.get("/api/v1/nowhere", &access3).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

/// One request through the gateway is one trace: spans from the gateway, from the chat
/// service it reached, and from that service's PostgreSQL query, all under one trace id,
/// exported over OTLP/HTTP to a receiver in this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_gateway_service_and_database() {
    use std::sync::{Arc, Mutex};

    use actix_web::{App, HttpResponse, HttpServer, web};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    #[derive(Debug, Clone)]
    struct Seen {
        trace_id: String,
        service: String,
        name: String,
    }
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = seen.clone();
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let otlp = format!("http://{}", receiver.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let sink = sink.clone();
        App::new()
            .app_data(web::PayloadConfig::new(16 << 20))
            .route(
                "/v1/traces",
                web::post().to(move |body: web::Bytes| {
                    let sink = sink.clone();
                    async move {
                        let req = ExportTraceServiceRequest::decode(body).unwrap();
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|a| a.key == "service.name")
                                .and_then(|a| a.value.as_ref())
                                .map(|v| format!("{:?}", v.value))
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for span in ss.spans {
                                    let trace_id =
                                        span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                                    sink.lock().unwrap().push(Seen {
                                        trace_id,
                                        service: service.clone(),
                                        name: span.name,
                                    });
                                }
                            }
                        }
                        HttpResponse::Ok()
                            .content_type("application/x-protobuf")
                            .body(Vec::<u8>::new())
                    }
                }),
            )
    })
    .workers(1)
    .listen(receiver)
    .unwrap()
    .run();
    let receiver_task = tokio::spawn(server);

    let s = Stack::with(Options {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("AI_PHOTO_EVERY", "2".into()),
        ],
        ..Options::default()
    })
    .await;
    s.post(
        "/api/v1/auth/register",
        None,
        json!({ "email": "t@example.com", "password": "tracé tracé", "display_name": "T" }),
    )
    .await;
    let (_, login) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "t@example.com", "password": "tracé tracé" }),
        )
        .await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    // A caller's trace id is continued, not replaced.
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let res = s
        .http
        .get(format!("{}/api/v1/search/messages?q=bonjour", s.gateway))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["x-request-id"],
        trace_id.as_str(),
        "the request id is the trace id"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|x| x.trace_id == trace_id)
            .cloned()
            .collect();
        let from = |svc: &str| spans.iter().any(|x| x.service.contains(svc));
        let query = spans
            .iter()
            .any(|x| x.service.contains("chat") && x.name == "messages.search");
        if from("gateway") && from("chat") && query {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} incomplete: {spans:#?}\nall: {:#?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A reply that crosses an affection milestone: the ai service's call to the media service
    // is part of the reply's trace.
    s.post(
        "/api/v1/matches",
        Some(&token),
        json!({ "character_id": "sophia" }),
    )
    .await;
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&token),
        json!({ "content": "Une photo ?" }),
    )
    .await;
    let reply_trace = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let res = s
        .http
        .post(format!("{}/api/v1/conversations/sophia/reply", s.gateway))
        .bearer_auth(&token)
        .header(
            "traceparent",
            format!("00-{reply_trace}-00f067aa0ba902b7-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|x| x.trace_id == reply_trace)
            .cloned()
            .collect();
        let call = spans
            .iter()
            .any(|x| x.service.contains("ai") && x.name == "media.generate");
        let served = spans.iter().any(|x| x.service.contains("media"));
        if call && served {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reply trace {reply_trace} has no media call: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver_task.abort();
}

/// SIGTERM stops every process cleanly and soon (what Kubernetes and Ctrl-C send).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_stops_cleanly_on_sigterm() {
    let mut s = Stack::start().await;
    let mut procs: Vec<&mut e2e::Proc> =
        vec![&mut s.gateway_proc, &mut s.auth, &mut s.ai, &mut s.media];
    procs.extend(s.chat.iter_mut());
    for p in procs {
        let (status, took) = p
            .terminate(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} still running 10 s after SIGTERM", p.name));
        assert!(status.success(), "{} exited with {status}", p.name);
        assert!(took < Duration::from_secs(5), "{} took {took:?}", p.name);
    }
}
