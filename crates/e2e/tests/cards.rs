//! Characters of one's own and Character Cards through the real gateway and services: created,
//! given an avatar larger than the default body limit, imported and exported as PNG cards,
//! matched and chatted with, private to their owner, deleted. Prints each request and answer
//! (run with `--no-capture` to read them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use base64::Engine;
use e2e::Stack;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A request through the gateway with a raw body; prints it and its answer.
async fn raw(
    s: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let size = body.len();
    let mut req = s
        .http
        .request(method.clone(), format!("{}{path}", s.gateway))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.bytes().await.unwrap().to_vec();
    let shown = match headers.get("content-type").and_then(|v| v.to_str().ok()) {
        Some(ct) if ct.contains("json") => {
            let text = String::from_utf8_lossy(&bytes).to_string();
            if text.len() > 400 {
                format!("{}…", &text[..400])
            } else {
                text
            }
        }
        Some(ct) => format!("<{} bytes of {ct}>", bytes.len()),
        None => String::new(),
    };
    let sent = content_type
        .map(|ct| format!(" [{size} bytes of {ct}]"))
        .unwrap_or_default();
    println!("{method} {path}{sent}\n  → {} {shown}\n", status.as_u16());
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path}"
        );
    }
    (status, headers, bytes)
}

async fn json_call(
    s: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (ct, bytes) = match body {
        Some(b) => (Some("application/json"), b.to_string().into_bytes()),
        None => (None, Vec::new()),
    };
    let (status, _, bytes) = raw(s, method, path, token, ct, bytes).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// An image of noise (it does not compress), as a PNG of about `w`×`h`×3 bytes.
fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = x.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A PNG card as another application would make it: an image with `ccv3` and `chara` chunks.
fn png_card(card_v3: &Value) -> Vec<u8> {
    let mut v2 = card_v3.clone();
    v2["spec"] = json!("chara_card_v2");
    v2["spec_version"] = json!("2.0");
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, 64, 96);
        e.set_color(png::ColorType::Rgb);
        e.add_text_chunk("chara".into(), B64.encode(v2.to_string()))
            .unwrap();
        e.add_text_chunk("ccv3".into(), B64.encode(card_v3.to_string()))
            .unwrap();
        let mut w = e.write_header().unwrap();
        w.write_image_data(&vec![120u8; 64 * 96 * 3]).unwrap();
    }
    out
}

fn chunks(png_bytes: &[u8]) -> Vec<(String, Value)> {
    let mut r = png::Decoder::new(Cursor::new(png_bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut buf).unwrap();
    r.finish().unwrap();
    r.info()
        .uncompressed_latin1_text
        .iter()
        .map(|t| {
            (
                t.keyword.clone(),
                serde_json::from_slice(&B64.decode(&t.text).unwrap()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_characters_and_cards_through_the_gateway() {
    let s = Stack::start().await;
    let alice = s.account("alice@example.com").await;
    let bob = s.account("bob@example.com").await;
    let (_, public) = json_call(&s, Method::GET, "/api/v1/characters", None, None).await;
    let public = public.as_array().unwrap().len();

    // Write a character.
    let (status, noor) = json_call(
        &s,
        Method::POST,
        "/api/v1/characters",
        Some(&alice),
        Some(json!({
            "name": "Noor", "tagline": "Botanist with opinions",
            "persona": "You are Noor, a botanist who loves ferns.",
            "greeting": "Oh! Mind the ferns.", "tags": ["cozy", "science"],
            "example_dialogue": "{{user}}: Which plant?\n{{char}}: The fern, always."
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{noor}");
    let noor_id = noor["id"].as_str().unwrap().to_owned();

    // An avatar of about 1.7 MB: over the gateway's default body limit (1 MiB), within the
    // 8 MiB the avatar operation declares.
    let avatar = noisy_png(760, 760);
    assert!(avatar.len() > 1024 * 1024, "{}", avatar.len());
    let (status, _, body) = raw(
        &s,
        Method::PUT,
        &format!("/api/v1/characters/{noor_id}/avatar"),
        Some(&alice),
        Some("image/png"),
        avatar,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // The same size elsewhere is refused by the gateway.
    let (status, _) = json_call(
        &s,
        Method::POST,
        "/api/v1/characters",
        Some(&alice),
        Some(json!({"name": "Big", "persona": "p".repeat(1_100_000)})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) = raw(
        &s,
        Method::POST,
        "/api/v1/character-cards",
        Some(&alice),
        Some("image/png"),
        vec![0; 8 * 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Import a PNG card (V3, with a V2 copy).
    let card = json!({
        "spec": "chara_card_v3", "spec_version": "3.0",
        "data": {
            "name": "Mira Quell", "description": "{{char}} keeps the lighthouse on Quell Island.",
            "personality": "patient, wry", "scenario": "{{user}} arrives on the supply boat in a storm.",
            "first_mes": "*She raises the lantern.* You made it across.",
            "mes_example": "{{user}}: Lonely?\n{{char}}: The sea talks. I listen.",
            "creator_notes": "Slow burn.", "system_prompt": "", "post_history_instructions": "",
            "alternate_greetings": ["Oh — a visitor."], "group_only_greetings": [],
            "tags": ["fantasy"], "creator": "e2e", "character_version": "1",
            "extensions": {"depth_prompt": {"prompt": "salt", "depth": 4}},
            "nickname": "Mimi", "creation_date": 1764000000, "modification_date": 1764000000
        }
    });
    let (status, _, body) = raw(
        &s,
        Method::POST,
        "/api/v1/character-cards",
        Some(&alice),
        Some("image/png"),
        png_card(&card),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mira: Value = serde_json::from_slice(&body).unwrap();
    let mira_id = mira["id"].as_str().unwrap().to_owned();
    assert_eq!(mira["name"], "Mira Quell");
    assert!(mira["avatar_url"].is_string());

    // Alice's catalogue: hers first. Bob's and an anonymous one: the public ones.
    let (_, mine) = json_call(&s, Method::GET, "/api/v1/characters", Some(&alice), None).await;
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), public + 2);
    let own: Vec<&str> = mine
        .iter()
        .filter(|c| c["owned"] == true)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(own, [mira_id.as_str(), noor_id.as_str()]);
    for token in [Some(bob.as_str()), None] {
        let (_, theirs) = json_call(&s, Method::GET, "/api/v1/characters", token, None).await;
        assert_eq!(theirs.as_array().unwrap().len(), public);
    }

    // Export as a V3 PNG card, and import it again: the same character.
    let (status, headers, exported) = raw(
        &s,
        Method::GET,
        &format!("/api/v1/characters/{mira_id}/card?spec=v3&format=png"),
        Some(&alice),
        None,
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".png")
    );
    let found = chunks(&exported);
    let ccv3 = &found.iter().find(|(k, _)| k == "ccv3").unwrap().1;
    // Every field back as it went in, plus V3's default icon asset (the PNG is the icon).
    let mut data = ccv3["data"].clone();
    let assets = data.as_object_mut().unwrap().remove("assets").unwrap();
    assert_eq!(assets[0]["uri"], "ccdefault:");
    assert_eq!(data, card["data"], "every field back, as it went in");
    assert_eq!(
        found.iter().find(|(k, _)| k == "chara").unwrap().1["spec"],
        "chara_card_v2"
    );
    println!("exported ccv3 chunk: {ccv3}\n");
    let (status, _, body) = raw(
        &s,
        Method::POST,
        "/api/v1/character-cards",
        Some(&alice),
        Some("image/png"),
        exported,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut again: Value = serde_json::from_slice(&body).unwrap();
    // The icon asset the export added is kept, like any field a card carries.
    again["card_extras"]
        .as_object_mut()
        .unwrap()
        .remove("assets");
    for f in [
        "name",
        "tagline",
        "persona",
        "greeting",
        "tags",
        "example_dialogue",
        "card_extras",
    ] {
        assert_eq!(again[f], mira[f], "{f}");
    }
    let (status, json_card) = json_call(
        &s,
        Method::GET,
        &format!("/api/v1/characters/{noor_id}/card?spec=v2"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        (status, json_card["spec"].as_str()),
        (StatusCode::OK, Some("chara_card_v2"))
    );
    assert_eq!(json_card["data"]["description"], noor["persona"]);

    // Match and chat with one's own character like with anyone.
    let (status, _) = json_call(
        &s,
        Method::POST,
        "/api/v1/matches",
        Some(&alice),
        Some(json!({"character_id": mira_id})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let conv = format!("/api/v1/conversations/{mira_id}");
    let (status, _) = json_call(
        &s,
        Method::POST,
        &format!("{conv}/messages"),
        Some(&alice),
        Some(json!({"content": "Bonsoir Mira, il fait froid ici."})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, reply) = json_call(
        &s,
        Method::POST,
        &format!("{conv}/reply"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["sender"], "character");

    // Bob: 404 everywhere.
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/characters/{mira_id}"), None),
        (
            Method::GET,
            format!("/api/v1/characters/{mira_id}/card"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/characters/{mira_id}/avatar"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/characters/{mira_id}"),
            Some(json!({"name": "Mine"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/characters/{mira_id}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/matches".to_owned(),
            Some(json!({"character_id": mira_id})),
        ),
        (
            Method::POST,
            format!("{conv}/messages"),
            Some(json!({"content": "hi"})),
        ),
        (Method::POST, format!("{conv}/reply"), None),
        (
            Method::POST,
            format!("/api/v1/photos/{mira_id}/generate"),
            None,
        ),
        (Method::GET, format!("/api/v1/photos/{mira_id}"), None),
    ] {
        let (status, p) = json_call(&s, method.clone(), &path, Some(&bob), body).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method} {path}"
        );
    }

    // Declared once: in the merged OpenAPI document.
    let (_, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    for (path, method) in [
        ("/api/v1/characters", "post"),
        ("/api/v1/characters/{id}", "patch"),
        ("/api/v1/characters/{id}", "delete"),
        ("/api/v1/characters/{id}", "get"),
        ("/api/v1/characters/{id}/avatar", "put"),
        ("/api/v1/characters/{id}/avatar", "get"),
        ("/api/v1/characters/{id}/card", "get"),
        ("/api/v1/character-cards", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(
        doc["paths"]["/api/v1/character-cards"]["post"]["x-dream-max-body-bytes"],
        8 * 1024 * 1024
    );

    // Deleting it takes its conversation and avatar.
    let (status, _) = json_call(
        &s,
        Method::DELETE,
        &format!("/api/v1/characters/{mira_id}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = json_call(
        &s,
        Method::GET,
        &format!("{conv}/messages"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, matches) = json_call(&s, Method::GET, "/api/v1/matches", Some(&alice), None).await;
    assert!(!matches.to_string().contains(&mira_id));
}
