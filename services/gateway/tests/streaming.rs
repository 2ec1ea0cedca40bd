//! The gateway passes a streamed answer (SSE) through as it comes, chunk by chunk, without
//! waiting for the end: the client reads the first event while the upstream still holds the
//! second back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use db_core::{Cache, RedisPool};
use futures_util::StreamExt;
use gateway::{Gateway, GatewayConfig};
use service_kit::TokenKeys;
use service_kit::auth::{DEV_PRIVATE_KEY_PEM, DEV_PUBLIC_KEY_PEM};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_stream_through_unbuffered() {
    service_kit::testing::install_crypto();
    // A fake "ai" upstream: one event now, the next only when the test says so.
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
    let fake = HttpServer::new(move || {
        let gate = gate.clone();
        App::new()
            .route(
                "/openapi.json",
                web::get().to(|| declares("post", "/api/v1/conversations/{character_id}/reply")),
            )
            .route(
                "/api/v1/conversations/{id}/reply",
                web::post().to(move || {
                    let gate = gate.clone();
                    async move {
                        let events = futures_util::stream::unfold(0u8, move |step| {
                            let gate = gate.clone();
                            async move {
                                match step {
                                    0 => Some((
                                        Ok::<_, std::io::Error>(web::Bytes::from_static(
                                            b"id: 1\ndata: Bonjour\n\n",
                                        )),
                                        1,
                                    )),
                                    1 => {
                                        gate.notified().await;
                                        Some((
                                            Ok(web::Bytes::from_static(b"id: 2\ndata: toi\n\n")),
                                            2,
                                        ))
                                    }
                                    _ => None,
                                }
                            }
                        });
                        HttpResponse::Ok()
                            .content_type("text/event-stream")
                            .streaming(events)
                    }
                }),
            )
    })
    .workers(1)
    .listen(upstream)
    .unwrap()
    .run();
    let fake = tokio::spawn(fake);

    let (base, token, server) = gateway_to("ai", upstream_url, None).await;

    let res = reqwest::Client::new()
        .post(format!("{base}/api/v1/conversations/sophia/reply"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("the first event arrives while the upstream holds the second back")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"id: 1\ndata: Bonjour\n\n");
    release.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&second[..], b"id: 2\ndata: toi\n\n");
    assert!(
        tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap()
            .is_none(),
        "then the stream ends"
    );
    server.abort();
    fake.abort();
}

/// Past `max_in_flight` requests waiting on upstreams, the gateway answers 503 at once instead
/// of queueing; a slot frees as soon as an answer's head is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_gateway_sheds_load_at_once() {
    service_kit::testing::install_crypto();
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (a, r) = (arrived.clone(), release.clone());
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
    let fake = HttpServer::new(move || {
        let (a, r) = (a.clone(), r.clone());
        App::new()
            .route(
                "/openapi.json",
                web::get().to(|| declares("get", "/api/v1/matches")),
            )
            .route(
                "/api/v1/matches",
                web::get().to(move || {
                    let (a, r) = (a.clone(), r.clone());
                    async move {
                        a.notify_one();
                        r.notified().await;
                        HttpResponse::Ok().json(serde_json::json!([]))
                    }
                }),
            )
    })
    .workers(1)
    .listen(upstream)
    .unwrap()
    .run();
    let fake = tokio::spawn(fake);
    let (base, token, server) = gateway_to("chat", upstream_url, Some(1)).await;
    let http = reqwest::Client::new();
    let get = || {
        http.get(format!("{base}/api/v1/matches"))
            .bearer_auth(&token)
            .send()
    };
    let first = tokio::spawn(get());
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .expect("the first request reached the upstream");
    let shed = tokio::time::timeout(Duration::from_secs(5), get())
        .await
        .expect("answered at once, not queued")
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["content-type"], "application/problem+json");
    assert!(shed.headers().contains_key("retry-after"));
    release.notify_one();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    // The slot is free again.
    let again = tokio::spawn(get());
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .unwrap();
    release.notify_one();
    assert_eq!(again.await.unwrap().unwrap().status(), 200);
    server.abort();
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_past_its_routes_timeout_is_cut_off() {
    service_kit::testing::install_crypto();
    // Two operations that may take a second: one never answers, one streams an event and then
    // nothing more.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
    let operation = |id: &str| {
        serde_json::json!({ "get": {
            "operationId": id,
            "responses": {},
            "security": [{ "bearer": [] }],
            "x-dream-timeout-seconds": 1
        } })
    };
    let document = serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "fake", "version": "0" },
        "paths": {
            "/api/v1/silent": operation("silent"),
            "/api/v1/events": operation("events"),
        }
    });
    let fake = HttpServer::new(move || {
        let document = document.clone();
        App::new()
            .route(
                "/openapi.json",
                web::get().to(move || {
                    let document = document.clone();
                    async move { HttpResponse::Ok().json(document) }
                }),
            )
            .route(
                "/api/v1/silent",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/api/v1/events",
                web::get().to(|| async {
                    let first = futures_util::stream::once(async {
                        Ok::<_, std::io::Error>(web::Bytes::from_static(
                            b"id: 1\ndata: Bonjour\n\n",
                        ))
                    });
                    HttpResponse::Ok()
                        .content_type("text/event-stream")
                        .streaming(first.chain(futures_util::stream::pending()))
                }),
            )
    })
    .workers(1)
    .listen(upstream)
    .unwrap()
    .run();
    let fake = tokio::spawn(fake);
    let (base, token, server) = gateway_to("chat", upstream_url, None).await;
    let http = reqwest::Client::new();

    // No answer by the deadline: 504, long before the upstream would have answered.
    let silent = tokio::time::timeout(
        Duration::from_secs(10),
        http.get(format!("{base}/api/v1/silent"))
            .bearer_auth(&token)
            .send(),
    )
    .await
    .expect("answered at the route's deadline")
    .unwrap();
    assert_eq!(silent.status(), 504);
    assert_eq!(silent.headers()["content-type"], "application/problem+json");

    // A stream past the deadline: the event that came, then the error event, then the end.
    let res = http
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let whole = tokio::time::timeout(Duration::from_secs(10), res.text())
        .await
        .expect("the stream ends at the route's deadline")
        .unwrap();
    assert!(whole.starts_with("id: 1\ndata: Bonjour\n\n"), "{whole}");
    assert!(
        whole.ends_with(std::str::from_utf8(gateway::proxy::UPSTREAM_CUT_EVENT).unwrap()),
        "{whole}"
    );
    server.abort();
    fake.abort();
}

/// A fake upstream's document: one operation, behind a bearer token.
async fn declares(method: &str, path: &str) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "fake", "version": "0" },
        "paths": { path: { method: {
            "operationId": "fake",
            "responses": {},
            "security": [{ "bearer": [] }]
        } } }
    }))
}

/// A gateway in front of one upstream service (its routes loaded), and a token it accepts.
async fn gateway_to(
    service: &'static str,
    upstream_url: String,
    max_in_flight: Option<usize>,
) -> (String, String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let keys = TokenKeys::signer(
        DEV_PUBLIC_KEY_PEM,
        DEV_PRIVATE_KEY_PEM,
        false,
        Duration::from_secs(60),
    )
    .unwrap();
    let token = keys
        .mint(uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
        .unwrap();
    let mut config = GatewayConfig::from_env().unwrap();
    config.upstreams = vec![(service, vec![upstream_url])];
    if let Some(n) = max_in_flight {
        config.max_in_flight = n;
    }
    let cache = Cache::new(RedisPool::new(&db_test::redis_config()).unwrap());
    let gw = web::Data::new(Gateway::new(config, cache, keys).unwrap());
    gw.directory.refresh(&gw.upstreams, gw.client()).await;
    assert!(
        !gw.directory.snapshot().table.is_empty(),
        "the upstream's routes are known"
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(gw.clone())
            .configure(gateway::configure)
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    (base, token, tokio::spawn(server))
}
