//! Characters of one's own and Character Cards V2/V3 over real HTTP, against the media service's
//! own database, Redis prefix and storage directory. The cards are written here from the
//! published specs (chara_card_v2, chara_card_v3), with every field the specs name, plus
//! fields the specs do not know, to show they survive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine;
use media::generator::Builtin;
use media::jobs::{JobConfig, Media};
use media::storage::Storage;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use service_kit::testing::TestApp;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Harness {
    app: TestApp,
    dir: tempfile::TempDir,
    alice: String,
    alice_id: uuid::Uuid,
    bob: String,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::from_url(dir.path().to_str().unwrap()).unwrap();
    let media = Media::new(storage, Arc::new(Builtin::default()), JobConfig::default());
    let app = TestApp::start_with("media", media::API, media::routes::data(media)).await;
    app.with_catalogue().await;
    let (alice_id, alice) = app.matched("alice@example.com", &[]).await;
    let (_, bob) = app.matched("bob@example.com", &[]).await;
    Harness {
        app,
        dir,
        alice,
        alice_id,
        bob,
    }
}

/// Files under the storage directory (avatars and photos).
fn stored_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends raw bytes; any error must be a problem document with its status and a request id.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let a = Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.bytes().await.unwrap().to_vec(),
    };
    if a.status.is_client_error() || a.status.is_server_error() {
        assert_eq!(
            a.headers.get("content-type").unwrap(),
            "application/problem+json"
        );
        let p = a.json();
        assert_eq!(p["status"], a.status.as_u16(), "{p}");
        assert!(p["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    }
    a
}

async fn import(h: &Harness, content_type: &str, body: Vec<u8>) -> Answer {
    send(
        &h.app,
        reqwest::Method::POST,
        "/api/v1/character-cards",
        &h.alice,
        Some(content_type),
        body,
    )
    .await
}

async fn export(h: &Harness, id: &str, query: &str) -> Answer {
    send(
        &h.app,
        reqwest::Method::GET,
        &format!("/api/v1/characters/{id}/card?{query}"),
        &h.alice,
        None,
        Vec::new(),
    )
    .await
}

/// A V2 card with every field of the spec, a character book, and fields nobody specified.
fn card_v2() -> Value {
    json!({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Mira Quell",
            "description": "{{char}} is a lighthouse keeper on a northern island.\nShe speaks softly.",
            "personality": "patient, wry, curious",
            "scenario": "{{user}} arrives on the supply boat in a storm.",
            "first_mes": "*Mira holds the lantern higher.* You made it across. Come in, quickly.",
            "mes_example": "<START>\n{{user}}: Do you ever get lonely?\n{{char}}: The sea talks a lot. I listen.",
            "creator_notes": "A quiet slow-burn character.\nWorks best with longer replies.",
            "system_prompt": "Write {{char}}'s next reply in a fictional chat.",
            "post_history_instructions": "Stay in character.",
            "alternate_greetings": ["The lamp flickers. *She looks up.* Oh — a visitor."],
            "character_book": {
                "name": "Quell Island",
                "scan_depth": 4,
                "token_budget": 512,
                "recursive_scanning": false,
                "extensions": {},
                "entries": [{
                    "keys": ["lighthouse"],
                    "content": "The lighthouse was built in 1881.",
                    "extensions": {},
                    "enabled": true,
                    "insertion_order": 0,
                    "case_sensitive": false,
                    "name": "lighthouse",
                    "priority": 10,
                    "id": 1,
                    "comment": "",
                    "selective": false,
                    "secondary_keys": [],
                    "constant": false,
                    "position": "before_char"
                }]
            },
            "tags": ["fantasy", "slow burn"],
            "creator": "dream-tests",
            "character_version": "1.2",
            "extensions": {
                "talkativeness": "0.5",
                "depth_prompt": {"prompt": "She smells of salt.", "depth": 4, "role": "system"},
                "some_other_app": {"nested": [1, 2, {"deep": true}]}
            },
            "a_field_from_the_future": {"kept": "as is"}
        }
    })
}

/// A V3 card: the V2 fields plus everything V3 adds.
fn card_v3() -> Value {
    let mut card = card_v2();
    card["spec"] = json!("chara_card_v3");
    card["spec_version"] = json!("3.0");
    let d = card["data"].as_object_mut().unwrap();
    d.insert("name".into(), json!("Mira Quell (V3)"));
    d.insert("nickname".into(), json!("Mimi"));
    d.insert(
        "creator_notes_multilingual".into(),
        json!({"en": "A quiet slow-burn character.", "fr": "Un personnage calme."}),
    );
    d.insert("source".into(), json!(["https://example.com/mira"]));
    d.insert(
        "group_only_greetings".into(),
        json!(["*Mira nods to the group.*"]),
    );
    d.insert("creation_date".into(), json!(1_764_000_000));
    d.insert("modification_date".into(), json!(1_764_400_000));
    d.insert(
        "assets".into(),
        json!([{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]),
    );
    card
}

/// A small RGBA image (a gradient), as a PNG with the given text chunks.
fn png_with(width: u32, height: u32, texts: &[(&str, String)], ztxt: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, width, height);
        e.set_color(png::ColorType::Rgba);
        e.set_depth(png::BitDepth::Eight);
        for (k, t) in texts {
            e.add_text_chunk((*k).to_owned(), t.clone()).unwrap();
        }
        for (k, t) in ztxt {
            e.add_ztxt_chunk((*k).to_owned(), t.clone()).unwrap();
        }
        let mut w = e.write_header().unwrap();
        let pixels: Vec<u8> = (0..width * height)
            .flat_map(|i| [(i % 256) as u8, (i / 7 % 256) as u8, 200, 255])
            .collect();
        w.write_image_data(&pixels).unwrap();
    }
    out
}

/// Every text chunk of a PNG, keyword → text, and its size.
fn png_texts(bytes: &[u8]) -> (Vec<(String, String)>, (u32, u32)) {
    let mut r = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let frame = r.next_frame(&mut buf).unwrap();
    r.finish().unwrap();
    let texts = r
        .info()
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    (texts, (frame.width, frame.height))
}

fn decode_chunk(texts: &[(String, String)], keyword: &str) -> Option<Value> {
    texts
        .iter()
        .find(|(k, _)| k == keyword)
        .map(|(_, t)| serde_json::from_slice(&B64.decode(t).unwrap()).unwrap())
}

/// The fields a character has in Dream, to compare two of them.
fn fields(c: &Value) -> Value {
    json!({
        "name": c["name"], "tagline": c["tagline"], "persona": c["persona"],
        "greeting": c["greeting"], "tags": c["tags"], "example_dialogue": c["example_dialogue"],
        "card_extras": c["card_extras"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_cards_round_trip_v2_and_v3() {
    let h = start().await;
    for (card, spec) in [(card_v2(), "v2"), (card_v3(), "v3")] {
        let first = import(&h, "application/json", card.to_string().into_bytes()).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
        let first = first.json();
        assert_eq!(first["name"], card["data"]["name"]);
        assert_eq!(first["persona"], card["data"]["description"]);
        assert_eq!(first["greeting"], card["data"]["first_mes"]);
        assert_eq!(first["example_dialogue"], card["data"]["mes_example"]);
        assert_eq!(first["tagline"], "A quiet slow-burn character.");
        assert_eq!(first["avatar_url"], Value::Null);
        let id = first["id"].as_str().unwrap();

        let exported = export(&h, id, &format!("spec={spec}&format=json")).await;
        assert_eq!(exported.status, StatusCode::OK);
        assert!(
            exported.headers["content-disposition"]
                .to_str()
                .unwrap()
                .contains(&format!("{id}.json"))
        );
        let exported = exported.json();
        // Every field of the card, the unknown ones included, comes back as it went in.
        assert_eq!(exported["spec"], card["spec"]);
        assert_eq!(exported["spec_version"], card["spec_version"]);
        assert_eq!(exported["data"], card["data"], "{spec}");
        if spec == "v2" {
            assert_eq!(exported["name"], card["data"]["name"], "V1 fields mirrored");
        }

        // Export → import → equal fields.
        let second = import(&h, "application/json", exported.to_string().into_bytes()).await;
        assert_eq!(second.status, StatusCode::CREATED);
        assert_eq!(fields(&second.json()), fields(&first), "{spec}");
        assert_ne!(second.json()["id"], first["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_cards_round_trip_v2_and_v3() {
    let h = start().await;
    // V2: a `chara` chunk. V3: `ccv3`, and a `chara` with another name that must lose to it.
    let v2 = card_v2();
    let v3 = card_v3();
    let mut decoy = card_v2();
    decoy["data"]["name"] = json!("Not This One");
    let pngs = [
        (
            "v2",
            v2.clone(),
            png_with(48, 64, &[("chara", B64.encode(v2.to_string()))], &[]),
        ),
        (
            "v3",
            v3.clone(),
            png_with(
                48,
                64,
                &[
                    ("chara", B64.encode(decoy.to_string())),
                    ("ccv3", B64.encode(v3.to_string())),
                ],
                &[],
            ),
        ),
    ];
    for (spec, card, png) in pngs {
        let first = import(&h, "image/png", png).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
        let first = first.json();
        assert_eq!(first["name"], card["data"]["name"], "{spec}");
        let id = first["id"].as_str().unwrap().to_owned();
        // The image became the avatar, without the card in it.
        let avatar_url = first["avatar_url"].as_str().unwrap();
        let avatar = send(
            &h.app,
            reqwest::Method::GET,
            avatar_url,
            &h.alice,
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(avatar.status, StatusCode::OK);
        assert_eq!(avatar.headers["content-type"], "image/png");
        let (texts, size) = png_texts(&avatar.body);
        assert!(
            texts.is_empty(),
            "the stored avatar carries no text: {texts:?}"
        );
        assert_eq!(size, (48, 64));

        let exported = export(&h, &id, &format!("spec={spec}&format=png")).await;
        assert_eq!(exported.status, StatusCode::OK);
        assert_eq!(exported.headers["content-type"], "image/png");
        let (texts, size) = png_texts(&exported.body);
        assert_eq!(size, (48, 64), "the card is the avatar");
        let chara = decode_chunk(&texts, "chara").expect("a chara chunk");
        assert_eq!(chara["spec"], "chara_card_v2");
        let ccv3 = decode_chunk(&texts, "ccv3");
        if spec == "v2" {
            assert!(ccv3.is_none());
            assert_eq!(chara["data"], card["data"]);
        } else {
            let ccv3 = ccv3.expect("a ccv3 chunk");
            assert_eq!(ccv3["spec"], "chara_card_v3");
            assert_eq!(ccv3["spec_version"], "3.0");
            assert_eq!(ccv3["data"], card["data"]);
            // The V2 copy carries the same character for readers that only know V2.
            assert_eq!(chara["data"]["name"], card["data"]["name"]);
        }

        // Export → import → equal fields.
        let second = import(&h, "image/png", exported.body.clone()).await;
        assert_eq!(second.status, StatusCode::CREATED, "{}", second.json());
        assert_eq!(fields(&second.json()), fields(&first), "{spec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_character_written_here_exports_and_imports_whole() {
    let h = start().await;
    let (status, made) = h
        .app
        .post(
            "/api/v1/characters",
            Some(&h.alice),
            json!({
                "name": "Noor", "tagline": "Botanist with opinions",
                "persona": "You are Noor, a botanist.\r\nYou love ferns.",
                "greeting": "Oh! Mind the ferns.", "tags": ["cozy", "science", "cozy"],
                "example_dialogue": "{{user}}: Which plant?\n{{char}}: The fern, always."
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(
        made["persona"],
        "You are Noor, a botanist.\nYou love ferns."
    );
    assert_eq!(made["tags"], json!(["cozy", "science"]));
    let id = made["id"].as_str().unwrap();
    assert!(id.starts_with("noor-"), "{id}");
    for spec in ["v2", "v3"] {
        for format in ["json", "png"] {
            let card = export(&h, id, &format!("spec={spec}&format={format}")).await;
            assert_eq!(card.status, StatusCode::OK);
            let ct = if format == "png" {
                "image/png"
            } else {
                "application/json"
            };
            let back = import(&h, ct, card.body).await;
            assert_eq!(back.status, StatusCode::CREATED, "{}", back.json());
            let back = back.json();
            for f in [
                "name",
                "tagline",
                "persona",
                "greeting",
                "tags",
                "example_dialogue",
            ] {
                assert_eq!(back[f], made[f], "{spec} {format} {f}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_hostile_cards_are_refused_and_nothing_is_stored() {
    let h = start().await;
    let json_card = |f: &dyn Fn(&mut Value)| {
        let mut c = card_v2();
        f(&mut c);
        c.to_string().into_bytes()
    };
    let chara_png = |text: String| png_with(8, 8, &[("chara", text)], &[]);
    // An image that decodes to 5000×5000: refused from its header, before any pixel.
    let huge_image = {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, 5000, 5000);
        e.set_color(png::ColorType::Grayscale);
        e.set_depth(png::BitDepth::One);
        e.add_text_chunk("chara".into(), B64.encode(card_v2().to_string()))
            .unwrap();
        let mut w = e.write_header().unwrap();
        w.write_image_data(&vec![0u8; 625 * 5000]).unwrap();
        w.finish().unwrap();
        out
    };
    let truncated = {
        let p = chara_png(B64.encode(card_v2().to_string()));
        p[..p.len() / 2].to_vec()
    };
    let mut big_card = card_v2();
    big_card["data"]["extensions"]["padding"] = json!("x".repeat(1_200_000));
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            "application/json",
            b"{\"spec\": \"chara_card_v2\", ".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "not an object",
            "application/json",
            b"[1, 2]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "wrong spec",
            "application/json",
            json_card(&|c| c["spec"] = json!("chara_card_v9")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.spec",
        ),
        (
            "no spec (V1)",
            "application/json",
            json_card(&|c| {
                c.as_object_mut().unwrap().remove("spec");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.spec",
        ),
        (
            "no data",
            "application/json",
            json_card(&|c| {
                c.as_object_mut().unwrap().remove("data");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data",
        ),
        (
            "no name",
            "application/json",
            json_card(&|c| {
                c["data"].as_object_mut().unwrap().remove("name");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data.name",
        ),
        (
            "empty name",
            "application/json",
            json_card(&|c| c["data"]["name"] = json!("  ")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data.name",
        ),
        (
            "name not a string",
            "application/json",
            json_card(&|c| c["data"]["name"] = json!(42)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data.name",
        ),
        (
            "name too long",
            "application/json",
            json_card(&|c| c["data"]["name"] = json!("n".repeat(65))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data.name",
        ),
        (
            "tags not strings",
            "application/json",
            json_card(&|c| c["data"]["tags"] = json!([1])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data.tags",
        ),
        (
            "greeting too long",
            "application/json",
            json_card(&|c| c["data"]["first_mes"] = json!("g".repeat(8001))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data.first_mes",
        ),
        (
            "NUL in a field",
            "application/json",
            json_card(&|c| c["data"]["description"] = json!("a\u{0}b")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "NUL deep in the extensions",
            "application/json",
            json_card(&|c| c["data"]["extensions"]["x"] = json!(["ok", {"k": "\u{0}"}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "control characters",
            "application/json",
            json_card(&|c| c["data"]["description"] = json!("bell\u{7}")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data.description",
        ),
        (
            "extensions not an object",
            "application/json",
            json_card(&|c| c["data"]["extensions"] = json!("x")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.data",
        ),
        (
            "card JSON over 1 MiB",
            "application/json",
            big_card.to_string().into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            "not a PNG",
            "image/png",
            b"GIF89a not a png at all".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "JSON sent as a PNG",
            "image/png",
            card_v2().to_string().into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "truncated PNG",
            "image/png",
            truncated,
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "PNG without a card",
            "image/png",
            png_with(8, 8, &[("Comment", "hello".into())], &[]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "bad base64",
            "image/png",
            chara_png("!!! not base64 @@@".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "base64 of garbage",
            "image/png",
            chara_png(B64.encode([0xff, 0xfe, 0x00, 0x01])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "wrong spec in a PNG",
            "image/png",
            chara_png(B64.encode(json_card(&|c| c["spec"] = json!("nope")))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.spec",
        ),
        (
            "V2 card in a ccv3 chunk",
            "image/png",
            png_with(8, 8, &[("ccv3", B64.encode(card_v2().to_string()))], &[]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card.spec",
        ),
        (
            "huge chunk: 1.6 MB of card",
            "image/png",
            chara_png(B64.encode(big_card.to_string())),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "compressed chunk that inflates to 16 MB",
            "image/png",
            png_with(8, 8, &[], &[("chara", "A".repeat(16_000_000))]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "5000×5000 image",
            "image/png",
            huge_image,
            StatusCode::UNPROCESSABLE_ENTITY,
            "card",
        ),
        (
            "body over 8 MiB",
            "image/png",
            vec![0u8; 8 * 1024 * 1024 + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            "another media type",
            "text/plain",
            b"hello".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "",
        ),
    ];
    for (what, ct, body, status, field) in cases {
        let size = body.len();
        let a = import(&h, ct, body).await;
        let p = a.json();
        assert_eq!(a.status, status, "{what} ({size} bytes): {p}");
        if !field.is_empty() {
            assert_eq!(p["field"], field, "{what}: {p}");
        }
        println!(
            "{what:<42} {size:>9} bytes → {} {} {}",
            a.status.as_u16(),
            p["field"],
            p["detail"]
        );
    }
    // Nothing was stored by any of them.
    let (status, mine) = h.app.get("/api/v1/characters/nobody/card", &h.alice).await;
    assert_eq!(
        (status, mine["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(stored_files(h.dir.path()), 0);
    let left = h
        .app
        .kit
        .store
        .characters()
        .owned_by(h.alice_id)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_characters_and_avatars_are_owner_only_and_deleted_whole() {
    let h = start().await;
    let (status, made) = h
        .app
        .post(
            "/api/v1/characters",
            Some(&h.alice),
            json!({"name": "Ivo", "persona": "You are Ivo, a sailor."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    // A JPEG avatar is kept as a PNG of the same size.
    let jpeg = {
        let img =
            image::RgbImage::from_fn(30, 20, |x, y| image::Rgb([x as u8 * 8, y as u8 * 12, 90]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    };
    let put = |token: String, body: Vec<u8>| {
        let id = id.clone();
        let app = &h.app;
        async move {
            send(
                app,
                reqwest::Method::PUT,
                &format!("/api/v1/characters/{id}/avatar"),
                &token,
                Some("image/jpeg"),
                body,
            )
            .await
        }
    };
    let a = put(h.alice.clone(), jpeg.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let url = a.json()["avatar_url"].as_str().unwrap().to_owned();
    let got = send(
        &h.app,
        reqwest::Method::GET,
        &url,
        &h.alice,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(png_texts(&got.body).1, (30, 20));
    let etag = got.headers["etag"].to_str().unwrap().to_owned();
    let again = h
        .app
        .http
        .get(format!("{}{url}", h.app.base))
        .bearer_auth(&h.alice)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // Replacing it deletes the old object.
    assert_eq!(
        put(h.alice.clone(), jpeg.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(stored_files(h.dir.path()), 1);
    // Not an image; too large.
    let bad = put(h.alice.clone(), b"hello".to_vec()).await;
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("avatar"))
    );

    // Bob: 404 everywhere, as for a character that does not exist; nothing changes.
    let m = reqwest::Method::GET;
    for (method, path, body) in [
        (m.clone(), format!("/api/v1/characters/{id}/card"), None),
        (
            m.clone(),
            format!("/api/v1/characters/{id}/card?format=png"),
            None,
        ),
        (m.clone(), format!("/api/v1/characters/{id}/avatar"), None),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/characters/{id}"),
            Some(json!({"name": "Mine now"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/characters/{id}/avatar"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/characters/{id}"),
            None,
        ),
    ] {
        let (status, p) = h.app.call(method.clone(), &path, Some(&h.bob), body).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method} {path}"
        );
    }
    let stolen = put(h.bob.clone(), jpeg.clone()).await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    // Public catalogue characters are not anyone's to edit or export.
    let (status, _) = h
        .app
        .call(
            reqwest::Method::PATCH,
            "/api/v1/characters/sophia",
            Some(&h.alice),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h.app.get("/api/v1/characters/sophia/card", &h.alice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Edits: partial, checked.
    let (status, edited) = h
        .app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/characters/{id}"),
            Some(&h.alice),
            Some(json!({"greeting": "Ahoy.", "tags": ["sea"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        (edited["greeting"].as_str(), edited["persona"].as_str()),
        (Some("Ahoy."), Some("You are Ivo, a sailor."))
    );
    for bad in [
        json!({"name": ""}),
        json!({"persona": "x".repeat(32_001)}),
        json!({"tags": ["a\u{0}"]}),
        json!({"owner_id": "me"}),
    ] {
        let (status, p) = h
            .app
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/characters/{id}"),
                Some(&h.alice),
                Some(bad.clone()),
            )
            .await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{bad}: {status} {p}"
        );
    }

    // Deleting it deletes its avatar.
    let (status, _) = h
        .app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/characters/{id}"),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored_files(h.dir.path()), 0);
    let (status, _) = h
        .app
        .get(&format!("/api/v1/characters/{id}/card"), &h.alice)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The gateway builds its route table from this document: it must read back as OpenAPI.
#[test]
fn the_document_reads_back_as_openapi() {
    let doc = serde_json::to_value(media::API.document()).unwrap();
    let back: Result<utoipa::openapi::OpenApi, _> = serde_json::from_value(doc.clone());
    assert!(back.is_ok(), "{:?}", back.err());
    let import = &doc["paths"]["/api/v1/character-cards"]["post"];
    assert_eq!(import["x-dream-max-body-bytes"], 8 * 1024 * 1024);
    assert!(import["requestBody"]["content"]["image/png"].is_object());
    let dangling = service_kit::openapi::dangling_refs(&media::API.document());
    assert!(dangling.is_empty(), "{dangling:?}");
}
