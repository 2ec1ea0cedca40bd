//! Photo milestones: when a reply carries a match's affection past a multiple of
//! `AI_PHOTO_EVERY` points, the character sends a photo. The ai service asks the media service
//! for it over HTTP, on the user's behalf (their token) and in the same trace.

use service_kit::Secret;
use service_kit::contracts::{GeneratePhoto, MediaClient};
use tracing::Instrument;

#[derive(Clone, Debug)]
pub struct PhotoMilestones {
    /// The media service (`MEDIA_URL`).
    pub base_url: String,
    /// Affection points between two photos (`AI_PHOTO_EVERY`).
    pub every: i64,
    media: MediaClient,
}

impl PhotoMilestones {
    pub fn new(base_url: impl Into<String>, every: i64) -> anyhow::Result<Self> {
        anyhow::ensure!(every > 0, "AI_PHOTO_EVERY must be positive");
        let base_url = base_url.into();
        Ok(Self {
            media: MediaClient::new(base_url.clone())?,
            base_url,
            every,
        })
    }

    /// From `MEDIA_URL` (default `http://127.0.0.1:8084`) and `AI_PHOTO_EVERY` (default 20;
    /// 0 turns milestones off).
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let every: i64 = service_kit::config::var_or("AI_PHOTO_EVERY", 20)?;
        if every == 0 {
            return Ok(None);
        }
        let url =
            service_kit::config::var("MEDIA_URL").unwrap_or_else(|| "http://127.0.0.1:8084".into());
        Self::new(url, every).map(Some)
    }

    /// Whether going from `before` to `after` points passes a milestone.
    pub fn crossed(&self, before: i64, after: i64) -> bool {
        crossed(self.every, before, after)
    }

    /// Asks the media service for a photo of `character`'s choosing; returns the job id.
    pub async fn ask(&self, authorization: &Secret, character: &str) -> anyhow::Result<String> {
        let span = tracing::info_span!("media.generate", otel.kind = "client", %character);
        let job = self
            .media
            .generate(authorization, character, &GeneratePhoto::default())
            .instrument(span)
            .await?;
        Ok(job.to_string())
    }
}

/// Whether going from `before` to `after` points passes a multiple of `every`.
pub fn crossed(every: i64, before: i64, after: i64) -> bool {
    after > before && before.div_euclid(every) < after.div_euclid(every)
}

/// What a generation needs to ask for a photo on the user's behalf.
#[derive(Clone, Debug)]
pub struct PhotoAsk {
    pub milestones: PhotoMilestones,
    /// The caller's `Authorization` header.
    pub authorization: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_are_crossed_once() {
        assert!(!crossed(20, 0, 2));
        assert!(crossed(20, 18, 20));
        assert!(crossed(20, 19, 21));
        assert!(!crossed(20, 20, 22));
        assert!(crossed(20, 38, 40));
        assert!(!crossed(20, 22, 20), "losing points sends nothing");
    }
}
