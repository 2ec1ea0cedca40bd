//! Character Cards, V2 (`chara_card_v2`) and V3 (`chara_card_v3`), as JSON and as PNG images
//! carrying the card in a `tEXt` chunk: `chara` (base64 of the V2 JSON) and `ccv3` (base64 of
//! the V3 JSON), the way SillyTavern reads and writes them. On import `ccv3` wins over `chara`
//! and keywords are compared without case; a V3 PNG is written with both chunks, so readers
//! that only know V2 still find the character.
//!
//! Mapping: `name` ↔ name, `description` ↔ persona, `first_mes` ↔ greeting, `mes_example` ↔
//! example dialogue, `tags` ↔ tags. Everything else a card carries (personality, scenario,
//! creator notes, alternate greetings, the character book, `extensions`, V3's assets and
//! dates, fields this code has never heard of) is kept as it came and given back on export.
//! The personality and the scenario also go into the model's prompt. The tagline is the first
//! line of `creator_notes` (and a character written here exports its tagline there).
//!
//! Every limit is checked before anything is stored, and each refusal names what was wrong.

use std::io::Cursor;

use base64::Engine;
use db_core::models::{Character, CharacterDraft, MAX_MESSAGE_CHARS};
use serde_json::{Map, Value, json};

/// Largest card JSON accepted (decoded, and after decompression for a compressed chunk).
pub const MAX_CARD_JSON_BYTES: usize = 1024 * 1024;
/// Largest PNG card or avatar upload (the gateway's limit for these operations).
pub const MAX_IMAGE_UPLOAD_BYTES: usize = 8 * 1024 * 1024;
/// Largest image side accepted, checked from the header before any pixel is decompressed.
pub const MAX_IMAGE_SIDE: u32 = 4096;
/// Most memory one image may decode into.
pub const MAX_DECODED_IMAGE_BYTES: usize = 64 * 1024 * 1024;

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_TAGLINE_CHARS: usize = 140;
pub const MAX_PERSONA_CHARS: usize = 32_000;
pub const MAX_GREETING_CHARS: usize = MAX_MESSAGE_CHARS;
pub const MAX_EXAMPLE_CHARS: usize = 16_000;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_CHARS: usize = 64;

/// The card's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Spec {
    V2,
    V3,
}

impl Spec {
    pub fn name(self) -> &'static str {
        match self {
            Spec::V2 => "chara_card_v2",
            Spec::V3 => "chara_card_v3",
        }
    }
    fn version(self) -> &'static str {
        match self {
            Spec::V2 => "2.0",
            Spec::V3 => "3.0",
        }
    }
    /// The PNG text chunk's keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Spec::V2 => "chara",
            Spec::V3 => "ccv3",
        }
    }
}

/// Why a card (or an avatar) was refused: the field (`card`, `card.spec`, `card.data.name`,
/// `avatar`, …) and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> CardError {
    CardError {
        field,
        message: message.into(),
    }
}

/// Within the body's limit, but too large inside (pixels, decompressed text).
fn too_large(field: &'static str, message: impl Into<String>) -> CardError {
    bad(field, message)
}

/// A card read from JSON or PNG: what to create, and (from a PNG) the image, re-encoded
/// without any of its text chunks.
#[derive(Debug)]
pub struct Imported {
    pub spec: Spec,
    pub draft: CharacterDraft,
    pub avatar: Option<Vec<u8>>,
}

/// The card fields that have columns of their own; everything else is kept in `card_extras`.
const MAPPED: [&str; 5] = ["name", "description", "first_mes", "mes_example", "tags"];

/// Reads a card from its JSON text.
pub fn from_json(bytes: &[u8]) -> Result<Imported, CardError> {
    if bytes.len() > MAX_CARD_JSON_BYTES {
        return Err(too_large(
            "card",
            format!("a card may be at most {MAX_CARD_JSON_BYTES} bytes of JSON"),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad("card", "is not UTF-8 text"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let card: Value =
        serde_json::from_str(text).map_err(|e| bad("card", format!("is not valid JSON: {e}")))?;
    if has_nul(&card) {
        return Err(bad("card", "must not contain NUL characters"));
    }
    let Value::Object(mut card) = card else {
        return Err(bad("card", "must be a JSON object"));
    };
    let spec = match card.get("spec") {
        Some(Value::String(s)) if s == "chara_card_v2" => Spec::V2,
        Some(Value::String(s)) if s == "chara_card_v3" => Spec::V3,
        Some(Value::String(s)) => {
            return Err(bad(
                "card.spec",
                format!("{s:?} is not a supported spec: chara_card_v2 or chara_card_v3"),
            ));
        }
        Some(_) => return Err(bad("card.spec", "must be a string")),
        None => {
            return Err(bad(
                "card.spec",
                "is missing: only Character Card V2 and V3 are read",
            ));
        }
    };
    // `spec_version`'s value is not checked (SillyTavern ignores it too), only its type.
    if !matches!(
        card.get("spec_version"),
        None | Some(Value::Null | Value::String(_))
    ) {
        return Err(bad("card.spec_version", "must be a string"));
    }
    let mut data = match card.remove("data") {
        Some(Value::Object(d)) => d,
        Some(_) => return Err(bad("card.data", "must be an object")),
        None => return Err(bad("card.data", "is missing")),
    };
    let name = single_line(
        "card.data.name",
        &take_string(&mut data, "name", "card.data.name")?
            .ok_or_else(|| bad("card.data.name", "is missing"))?,
        MAX_NAME_CHARS,
    )?;
    if name.is_empty() {
        return Err(bad("card.data.name", "must not be empty"));
    }
    let persona = multi_line(
        "card.data.description",
        &take_string(&mut data, "description", "card.data.description")?.unwrap_or_default(),
        MAX_PERSONA_CHARS,
    )?;
    let greeting = multi_line(
        "card.data.first_mes",
        &take_string(&mut data, "first_mes", "card.data.first_mes")?.unwrap_or_default(),
        MAX_GREETING_CHARS,
    )?;
    let example_dialogue = multi_line(
        "card.data.mes_example",
        &take_string(&mut data, "mes_example", "card.data.mes_example")?.unwrap_or_default(),
        MAX_EXAMPLE_CHARS,
    )?;
    let tags = match data.remove("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut tags = Vec::new();
            for item in items {
                let Value::String(t) = item else {
                    return Err(bad("card.data.tags", "must be an array of strings"));
                };
                let t = single_line("card.data.tags", &t, MAX_TAG_CHARS)?;
                if !t.is_empty() && !tags.contains(&t) {
                    tags.push(t);
                }
            }
            if tags.len() > MAX_TAGS {
                return Err(bad("card.data.tags", format!("at most {MAX_TAGS} tags")));
            }
            tags
        }
        Some(_) => return Err(bad("card.data.tags", "must be an array of strings")),
    };
    // The typed fields of the spec that stay in the extras are still checked for their type,
    // so that an export gives back a card other readers accept.
    for field in [
        "personality",
        "scenario",
        "creator_notes",
        "system_prompt",
        "post_history_instructions",
        "creator",
        "character_version",
    ] {
        if let Some(v) = data.get(field)
            && !v.is_string()
            && !v.is_null()
        {
            return Err(bad("card.data", format!("{field} must be a string")));
        }
    }
    for field in ["alternate_greetings", "group_only_greetings"] {
        if let Some(v) = data.get(field)
            && !v.is_null()
            && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err(bad(
                "card.data",
                format!("{field} must be an array of strings"),
            ));
        }
    }
    if let Some(v) = data.get("extensions")
        && !v.is_object()
        && !v.is_null()
    {
        return Err(bad("card.data", "extensions must be an object"));
    }
    let tagline = data
        .get("creator_notes")
        .and_then(Value::as_str)
        .and_then(|n| n.lines().map(str::trim).find(|l| !l.is_empty()))
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control())
                .take(MAX_TAGLINE_CHARS)
                .collect::<String>()
        })
        .unwrap_or_default();
    for field in MAPPED {
        data.remove(field);
    }
    Ok(Imported {
        spec,
        draft: CharacterDraft {
            name,
            tagline: tagline.trim().to_owned(),
            persona,
            greeting,
            tags,
            example_dialogue,
            card_extras: Value::Object(data),
        },
        avatar: None,
    })
}

fn take_string(
    data: &mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, CardError> {
    match data.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Text of several lines: `\r\n` and `\r` become `\n`, tabs stay, other control characters
/// are refused; trimmed; at most `max` characters.
pub fn multi_line(field: &'static str, text: &str, max: usize) -> Result<String, CardError> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(bad(field, "must not contain control characters"));
    }
    let text = text.trim();
    if text.chars().count() > max {
        return Err(bad(field, format!("at most {max} characters")));
    }
    Ok(text.to_owned())
}

/// One line, trimmed, at most `max` characters.
pub fn single_line(field: &'static str, text: &str, max: usize) -> Result<String, CardError> {
    if text.chars().any(char::is_control) {
        return Err(bad(field, "must be one line without control characters"));
    }
    let text = text.trim();
    if text.chars().count() > max {
        return Err(bad(field, format!("at most {max} characters")));
    }
    Ok(text.to_owned())
}

/// The card of a character, as the spec asks.
pub fn to_json(c: &Character, spec: Spec, with_icon_asset: bool) -> Value {
    let mut data = match &c.card_extras {
        Value::Object(extras) => extras.clone(),
        _ => Map::new(),
    };
    data.insert("name".into(), json!(c.name));
    data.insert("description".into(), json!(c.persona));
    data.insert("first_mes".into(), json!(c.greeting));
    data.insert("mes_example".into(), json!(c.example_dialogue));
    data.insert("tags".into(), json!(c.tags));
    let mut default = |key: &str, value: Value| {
        let absent = data.get(key).is_none_or(Value::is_null);
        if absent {
            data.insert(key.to_owned(), value);
        }
    };
    default("personality", json!(""));
    default("scenario", json!(""));
    default("creator_notes", json!(c.tagline));
    default("system_prompt", json!(""));
    default("post_history_instructions", json!(""));
    default("alternate_greetings", json!([]));
    default("creator", json!(""));
    default("character_version", json!(""));
    default("extensions", json!({}));
    if spec == Spec::V3 {
        default("group_only_greetings", json!([]));
        default("creation_date", json!(c.created_at.timestamp()));
        default("modification_date", json!(c.updated_at.timestamp()));
        if with_icon_asset {
            default(
                "assets",
                json!([{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]),
            );
        }
    }
    let mut card = Map::new();
    card.insert("spec".into(), json!(spec.name()));
    card.insert("spec_version".into(), json!(spec.version()));
    if spec == Spec::V2 {
        // The V1 fields at the top as well, as SillyTavern writes them, for older readers.
        for key in [
            "name",
            "description",
            "personality",
            "scenario",
            "first_mes",
            "mes_example",
        ] {
            if let Some(v) = data.get(key) {
                card.insert(key.into(), v.clone());
            }
        }
    }
    card.insert("data".into(), Value::Object(data));
    Value::Object(card)
}

/// Decoded pixels, 8 bits per sample.
struct Pixels {
    width: u32,
    height: u32,
    color: png::ColorType,
    data: Vec<u8>,
}

/// Decodes a PNG with every bound checked before the work it bounds: the signature, the
/// header's size, memory, then the pixels and every chunk after them.
fn decode_png(bytes: &[u8]) -> Result<(Pixels, png::Info<'static>), CardError> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    if !bytes.starts_with(&SIGNATURE) {
        return Err(bad("card", "is not a PNG image"));
    }
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: MAX_DECODED_IMAGE_BYTES,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let header = decoder
        .read_header_info()
        .map_err(|e| bad("card", format!("is not a readable PNG image: {e}")))?;
    if header.width > MAX_IMAGE_SIDE || header.height > MAX_IMAGE_SIDE {
        return Err(too_large(
            "card",
            format!(
                "the image is {}×{}; at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE}",
                header.width, header.height
            ),
        ));
    }
    let mut reader = decoder.read_info().map_err(png_error)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| too_large("card", "the image is too large to decode"))?;
    let mut data = vec![0; size];
    let frame = reader.next_frame(&mut data).map_err(png_error)?;
    data.truncate(frame.buffer_size());
    reader.finish().map_err(png_error)?;
    let (color, _) = reader.output_color_type();
    let info = reader.info().clone();
    Ok((
        Pixels {
            width: frame.width,
            height: frame.height,
            color,
            data,
        },
        info,
    ))
}

fn png_error(e: png::DecodingError) -> CardError {
    match e {
        png::DecodingError::LimitsExceeded => {
            too_large("card", "the image needs more memory than allowed to decode")
        }
        e => bad("card", format!("is not a readable PNG image: {e}")),
    }
}

/// Encodes pixels as a PNG with the given text chunks (`tEXt`).
fn encode_png(p: &Pixels, texts: &[(&str, String)]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, p.width, p.height);
        encoder.set_color(p.color);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        for (keyword, text) in texts {
            encoder.add_text_chunk((*keyword).to_owned(), text.clone())?;
        }
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&p.data)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Reads a card from a PNG image: the `ccv3` chunk if there is one, else `chara` (`tEXt`, or
/// `zTXt`/`iTXt`, decompressed no further than the card limit). The image becomes the avatar,
/// re-encoded without its text chunks.
pub fn from_png(bytes: &[u8]) -> Result<Imported, CardError> {
    let (pixels, info) = decode_png(bytes)?;
    let mut found: Vec<(String, String)> = Vec::new();
    for t in &info.uncompressed_latin1_text {
        found.push((t.keyword.to_ascii_lowercase(), t.text.clone()));
    }
    for t in &info.compressed_latin1_text {
        let keyword = t.keyword.to_ascii_lowercase();
        if keyword == "ccv3" || keyword == "chara" {
            let mut t = t.clone();
            t.decompress_text_with_limit(MAX_CARD_JSON_BYTES * 4 / 3 + 4)
                .map_err(|_| {
                    too_large(
                        "card",
                        "the card's compressed text chunk decompresses past the limit",
                    )
                })?;
            let text = t
                .get_text()
                .map_err(|_| bad("card", "the card's text chunk is unreadable"))?;
            found.push((keyword, text));
        }
    }
    for t in &info.utf8_text {
        let keyword = t.keyword.to_ascii_lowercase();
        if keyword == "ccv3" || keyword == "chara" {
            let mut t = t.clone();
            t.decompress_text_with_limit(MAX_CARD_JSON_BYTES * 4 / 3 + 4)
                .map_err(|_| {
                    too_large(
                        "card",
                        "the card's compressed text chunk decompresses past the limit",
                    )
                })?;
            let text = t
                .get_text()
                .map_err(|_| bad("card", "the card's text chunk is unreadable"))?;
            found.push((keyword, text));
        }
    }
    let (keyword, text) = ["ccv3", "chara"]
        .iter()
        .find_map(|k| found.iter().find(|(kw, _)| kw == k))
        .ok_or_else(|| {
            bad(
                "card",
                "the PNG carries no character card (no chara or ccv3 text chunk)",
            )
        })?;
    if text.len() > MAX_CARD_JSON_BYTES * 4 / 3 + 4 {
        return Err(too_large(
            "card",
            format!("a card may be at most {MAX_CARD_JSON_BYTES} bytes of JSON"),
        ));
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let json = engine.decode(compact.as_bytes()).map_err(|e| {
        bad(
            "card",
            format!("the {keyword} chunk is not valid base64: {e}"),
        )
    })?;
    let mut imported = from_json(&json)?;
    let expected = if keyword == "ccv3" {
        Spec::V3
    } else {
        Spec::V2
    };
    if keyword == "ccv3" && imported.spec != expected {
        return Err(bad(
            "card.spec",
            "a ccv3 chunk must hold a chara_card_v3 card",
        ));
    }
    imported.avatar = Some(encode_png(&pixels, &[]).map_err(|e| bad("card", e.to_string()))?);
    Ok(imported)
}

/// An uploaded avatar (PNG, JPEG or WebP), checked and re-encoded as a PNG without metadata.
pub fn avatar_from_upload(bytes: &[u8]) -> Result<Vec<u8>, CardError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad("avatar", format!("unreadable: {e}")))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP) => {}
        _ => return Err(bad("avatar", "must be a PNG, JPEG or WebP image")),
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODED_IMAGE_BYTES as u64);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(
            "avatar",
            format!("at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels"),
        ),
        e => bad("avatar", format!("is not a readable image: {e}")),
    })?;
    let rgba = img.to_rgba8();
    encode_png(
        &Pixels {
            width: rgba.width(),
            height: rgba.height(),
            color: png::ColorType::Rgba,
            data: rgba.into_raw(),
        },
        &[],
    )
    .map_err(|e| bad("avatar", e.to_string()))
}

/// The character's card as a PNG: its avatar (or, without one, a portrait drawn here) with the
/// card in `chara` (V2), or in `ccv3` and `chara` (V3).
pub fn to_png(c: &Character, spec: Spec, avatar: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    let pixels = match avatar.map(decode_png) {
        Some(Ok((p, _))) => p,
        Some(Err(e)) => anyhow::bail!("stored avatar of {}: {}", c.id, e.message),
        None => {
            let seed =
                c.id.bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            let img = crate::render::render(&c.id, "portrait", seed, 400, 600);
            Pixels {
                width: img.width(),
                height: img.height(),
                color: png::ColorType::Rgb,
                data: img.into_raw(),
            }
        }
    };
    let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let mut texts = vec![("chara", b64(&to_json(c, Spec::V2, false)))];
    if spec == Spec::V3 {
        texts.push(("ccv3", b64(&to_json(c, Spec::V3, true))));
    }
    encode_png(&pixels, &texts)
}
