//! The `http` generator against local servers that speak the two image APIs: OpenAI-compatible
//! `/images/generations` (answering `b64_json` or a `url`) and the Stable Diffusion web UI's
//! `/sdapi/v1/txt2img`; and what it does with answers that are not images.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use media::generator::{Dialect, Generator, Http, HttpConfig, PhotoRequest};
use serde_json::{Value, json};

struct Seen {
    body: Mutex<Value>,
    auth: Mutex<String>,
    mode: Mutex<&'static str>,
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn openai(seen: web::Data<Seen>, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    *seen.body.lock().unwrap() = body.into_inner();
    *seen.auth.lock().unwrap() = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let base = format!("http://{}", req.connection_info().host());
    match *seen.mode.lock().unwrap() {
        "url" => {
            HttpResponse::Ok().json(json!({ "data": [{ "url": format!("{base}/files/1.png") }] }))
        }
        "garbage" => {
            HttpResponse::Ok().json(json!({ "data": [{ "b64_json": b64(b"<html>nope</html>") }] }))
        }
        "empty" => HttpResponse::Ok().json(json!({ "data": [] })),
        "error" => {
            HttpResponse::BadRequest().json(json!({ "error": { "message": "content policy" } }))
        }
        _ => HttpResponse::Ok().json(json!({ "data": [{ "b64_json": b64(&png(64, 48)) }] })),
    }
}

async fn file() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/png")
        .body(png(32, 32))
}

async fn txt2img(seen: web::Data<Seen>, body: web::Json<Value>) -> HttpResponse {
    *seen.body.lock().unwrap() = body.into_inner();
    HttpResponse::Ok().json(json!({ "images": [b64(&png(40, 30))], "parameters": {} }))
}

fn serve() -> (String, web::Data<Seen>) {
    let seen = web::Data::new(Seen {
        body: Mutex::new(Value::Null),
        auth: Mutex::new(String::new()),
        mode: Mutex::new("b64"),
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/images/generations", web::post().to(openai))
            .route("/files/1.png", web::get().to(file))
            .route("/sdapi/v1/txt2img", web::post().to(txt2img))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (base, seen)
}

fn request() -> PhotoRequest {
    let character = db_core::seed::demo_characters()
        .unwrap()
        .into_iter()
        .find(|c| c.id == "sophia")
        .unwrap();
    PhotoRequest {
        character,
        prompt: Some("le marché du dimanche".into()),
        seed: 7,
        width: 512,
        height: 512,
    }
}

fn http(base: &str, dialect: Dialect) -> Http {
    service_kit::testing::install_crypto();
    Http::new(HttpConfig {
        dialect,
        base_url: base.into(),
        model: Some("dream-images".into()),
        api_key: Some(service_kit::Secret::new("sk-test")),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

#[actix_web::test]
async fn openai_compatible_images_in_b64_or_by_url() {
    let (base, seen) = serve();
    let api = http(&format!("{base}/v1"), Dialect::OpenAi);
    let image = api.generate(&request()).await.unwrap();
    assert_eq!(
        (image.content_type, image.width, image.height),
        ("image/png", 64, 48)
    );
    assert_eq!(&image.bytes[..8], b"\x89PNG\r\n\x1a\n");
    let body = seen.body.lock().unwrap().clone();
    assert_eq!(body["model"], "dream-images");
    assert_eq!(body["size"], "512x512");
    assert_eq!(body["response_format"], "b64_json");
    let prompt = body["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("Sophia") && prompt.contains("le marché du dimanche"),
        "{prompt}"
    );
    assert_eq!(*seen.auth.lock().unwrap(), "Bearer sk-test");

    *seen.mode.lock().unwrap() = "url";
    let image = api.generate(&request()).await.unwrap();
    assert_eq!((image.width, image.height), (32, 32));

    for mode in ["garbage", "empty", "error"] {
        *seen.mode.lock().unwrap() = mode;
        let err = api.generate(&request()).await.unwrap_err();
        assert!(!err.to_string().is_empty(), "{mode}");
    }
}

#[actix_web::test]
async fn stable_diffusion_web_ui_txt2img() {
    let (base, seen) = serve();
    let api = http(&base, Dialect::StableDiffusion);
    let image = api.generate(&request()).await.unwrap();
    assert_eq!(
        (image.content_type, image.width, image.height),
        ("image/png", 40, 30)
    );
    let body = seen.body.lock().unwrap().clone();
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(512), Some(512))
    );
    assert!(body["seed"].as_u64().is_some());
}
