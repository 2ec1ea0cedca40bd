//! Image generators behind one trait: `builtin` (offline, in-process, the default) and `http`
//! (an image API: OpenAI-compatible `/images/generations`, or a Stable Diffusion web UI's
//! `/sdapi/v1/txt2img`).

use std::io::Cursor;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use db_core::models::Character;
use futures_util::future::BoxFuture;
use image::ImageFormat;
use serde_json::{Value, json};
use service_kit::http::Traced;
use sha2::{Digest, Sha256};

/// What a photo is asked for.
#[derive(Debug, Clone)]
pub struct PhotoRequest {
    pub character: Character,
    /// What the user asked to see; `None` when the character chose (affection milestones).
    pub prompt: Option<String>,
    /// Varies the picture between jobs; the same seed and prompt give the same picture.
    pub seed: u64,
    pub width: u32,
    pub height: u32,
}

impl PhotoRequest {
    /// The scene: the user's words, or one drawn from what the character likes.
    pub fn scene(&self) -> String {
        match &self.prompt {
            Some(p) => p.clone(),
            None => {
                let tags = &self.character.tags;
                let pick = tags
                    .get((self.seed % tags.len().max(1) as u64) as usize)
                    .map(String::as_str)
                    .unwrap_or("promenade");
                format!("{pick}, une photo prise pour toi")
            }
        }
    }

    /// The text an image API is given: who is sending the photo, and of what.
    pub fn api_prompt(&self) -> String {
        format!(
            "A candid, natural-looking photo that {} ({}) takes and sends to a close friend. \
             Scene: {}. Photographic, soft light, no text.",
            self.character.name,
            self.character.tagline,
            self.scene()
        )
    }

    /// A seed mixing the character, the scene and the job's own seed.
    fn mixed_seed(&self) -> u64 {
        let mut h = Sha256::new();
        h.update(self.character.id.as_bytes());
        h.update([0]);
        h.update(self.scene().as_bytes());
        h.update(self.seed.to_le_bytes());
        let d = h.finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}

/// An encoded image, checked to be one.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

impl Image {
    /// Checks that `bytes` is a PNG, JPEG or WebP image and reads its size.
    pub fn from_bytes(bytes: Bytes) -> anyhow::Result<Self> {
        let format = image::guess_format(&bytes)?;
        let content_type = match format {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::WebP => "image/webp",
            other => anyhow::bail!("unsupported image format {other:?}"),
        };
        let (width, height) =
            image::ImageReader::with_format(Cursor::new(&bytes), format).into_dimensions()?;
        anyhow::ensure!(width > 0 && height > 0, "an empty image");
        Ok(Self {
            bytes,
            content_type,
            width,
            height,
        })
    }

    /// The file extension for storage keys.
    pub fn extension(&self) -> &'static str {
        match self.content_type {
            "image/png" => "png",
            "image/webp" => "webp",
            _ => "jpg",
        }
    }
}

/// Encodes a picture as a JPEG.
pub fn jpeg(img: &image::RgbImage, quality: u8) -> anyhow::Result<Bytes> {
    let mut out = Vec::with_capacity(64 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img)?;
    Ok(Bytes::from(out))
}

pub trait Generator: Send + Sync {
    fn name(&self) -> &'static str;
    fn generate<'a>(&'a self, req: &'a PhotoRequest) -> BoxFuture<'a, anyhow::Result<Image>>;
}

/// Paints the picture in-process (see [`crate::render`]).
#[derive(Debug, Clone, Default)]
pub struct Builtin {
    /// Added before answering, to pace it like a real model (`MEDIA_RENDER_DELAY_MS`).
    pub delay: Duration,
}

impl Generator for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn generate<'a>(&'a self, req: &'a PhotoRequest) -> BoxFuture<'a, anyhow::Result<Image>> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            let (id, scene, seed) = (req.character.id.clone(), req.scene(), req.mixed_seed());
            let (w, h) = (req.width, req.height);
            let bytes = tokio::task::spawn_blocking(move || {
                jpeg(&crate::render::render(&id, &scene, seed, w, h), 88)
            })
            .await??;
            Image::from_bytes(bytes)
        })
    }
}

/// The protocol an image API speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST {base}/images/generations` (OpenAI and compatible servers), `b64_json` or `url`.
    OpenAi,
    /// `POST {base}/sdapi/v1/txt2img` (AUTOMATIC1111 / Forge Stable Diffusion web UI).
    StableDiffusion,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub dialect: Dialect,
    pub base_url: String,
    pub model: Option<String>,
    pub api_key: Option<service_kit::Secret>,
    pub timeout: Duration,
}

/// An image API over HTTP.
pub struct Http {
    config: HttpConfig,
    client: reqwest::Client,
}

impl Http {
    pub fn new(config: HttpConfig) -> anyhow::Result<Self> {
        let timeout = config.timeout;
        let client = service_kit::http::client(|b| b.timeout(timeout))?;
        Ok(Self { config, client })
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let mut req = self.client.post(&url).json(&body);
        if let Some(key) = self
            .config
            .api_key
            .as_ref()
            .map(service_kit::Secret::expose)
        {
            req = req.bearer_auth(key);
        }
        let res = req.traced().send().await?;
        let status = res.status();
        if !status.is_success() {
            let text = res.text().await.unwrap_or_default();
            anyhow::bail!(
                "{url}: {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(res.json().await?)
    }

    fn decode(b64: &str) -> anyhow::Result<Bytes> {
        // Some servers prefix a data URL.
        let b64 = b64.rsplit_once(',').map_or(b64, |(_, data)| data);
        Ok(Bytes::from(
            base64::engine::general_purpose::STANDARD.decode(b64.trim())?,
        ))
    }
}

impl Generator for Http {
    fn name(&self) -> &'static str {
        match self.config.dialect {
            Dialect::OpenAi => "openai",
            Dialect::StableDiffusion => "stable-diffusion",
        }
    }

    fn generate<'a>(&'a self, req: &'a PhotoRequest) -> BoxFuture<'a, anyhow::Result<Image>> {
        Box::pin(async move {
            let bytes = match self.config.dialect {
                Dialect::OpenAi => {
                    let mut body = json!({
                        "prompt": req.api_prompt(),
                        "n": 1,
                        "size": format!("{}x{}", req.width, req.height),
                        "response_format": "b64_json",
                    });
                    if let Some(m) = &self.config.model {
                        body["model"] = json!(m);
                    }
                    let res = self.post("/images/generations", body).await?;
                    let first = &res["data"][0];
                    if let Some(b64) = first["b64_json"].as_str() {
                        Self::decode(b64)?
                    } else if let Some(url) = first["url"].as_str() {
                        self.client
                            .get(url)
                            .send()
                            .await?
                            .error_for_status()?
                            .bytes()
                            .await?
                    } else {
                        anyhow::bail!("the image API answered without an image");
                    }
                }
                Dialect::StableDiffusion => {
                    let res = self
                        .post(
                            "/sdapi/v1/txt2img",
                            json!({
                                "prompt": req.api_prompt(),
                                "width": req.width,
                                "height": req.height,
                                "seed": req.mixed_seed() % (1 << 31),
                                "steps": 20,
                            }),
                        )
                        .await?;
                    let b64 = res["images"][0].as_str().ok_or_else(|| {
                        anyhow::anyhow!("the image API answered without an image")
                    })?;
                    Self::decode(b64)?
                }
            };
            Image::from_bytes(bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_images_pass() {
        assert!(Image::from_bytes(Bytes::from_static(b"not an image")).is_err());
        assert!(Image::from_bytes(Bytes::from_static(b"\x89PNG\r\n\x1a\n")).is_err());
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3]));
        let ok = Image::from_bytes(jpeg(&img, 80).unwrap()).unwrap();
        assert_eq!((ok.content_type, ok.width, ok.height), ("image/jpeg", 3, 2));
    }
}
