//! Photo milestones: when a reply carries a match's affection past a multiple of
//! `AI_PHOTO_EVERY` points, the character sends a photo. The ai service asks the media service
//! for it over HTTP, on the user's behalf (their token) and in the same trace.

use std::time::Duration;

use service_kit::Secret;
use tracing::Instrument;

#[derive(Clone, Debug)]
pub struct PhotoMilestones {
    /// The media service (`MEDIA_URL`).
    pub base_url: String,
    /// Affection points between two photos (`AI_PHOTO_EVERY`).
    pub every: i64,
    http: reqwest::Client,
}

impl PhotoMilestones {
    pub fn new(base_url: impl Into<String>, every: i64) -> anyhow::Result<Self> {
        anyhow::ensure!(every > 0, "AI_PHOTO_EVERY must be positive");
        Ok(Self {
            base_url: base_url.into(),
            every,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// From `MEDIA_URL` (default `http://127.0.0.1:8084`) and `AI_PHOTO_EVERY` (default 20;
    /// 0 turns milestones off).
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let every: i64 = match std::env::var("AI_PHOTO_EVERY") {
            Ok(v) if !v.is_empty() => v
                .parse()
                .map_err(|_| anyhow::anyhow!("AI_PHOTO_EVERY={v:?} is not a number"))?,
            _ => 20,
        };
        if every == 0 {
            return Ok(None);
        }
        let url = std::env::var("MEDIA_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "http://127.0.0.1:8084".into());
        Self::new(url, every).map(Some)
    }

    /// Whether going from `before` to `after` points passes a milestone.
    pub fn crossed(&self, before: i64, after: i64) -> bool {
        crossed(self.every, before, after)
    }

    /// Asks the media service for a photo of `character`'s choosing; returns the job id.
    pub async fn ask(&self, authorization: &Secret, character: &str) -> anyhow::Result<String> {
        let url = format!(
            "{}/api/v1/photos/{character}/generate",
            self.base_url.trim_end_matches('/')
        );
        let span = tracing::info_span!("media.generate", otel.kind = "client", %url);
        async {
            let mut req = self
                .http
                .post(&url)
                .header("authorization", authorization.expose())
                .json(&serde_json::json!({}));
            if let Some(tp) = service_kit::telemetry::traceparent() {
                req = req.header("traceparent", tp);
            }
            let res = req.send().await?;
            anyhow::ensure!(
                res.status() == reqwest::StatusCode::ACCEPTED,
                "media answered {}",
                res.status()
            );
            let job: serde_json::Value = res.json().await?;
            Ok(job["id"].as_str().unwrap_or_default().to_owned())
        }
        .instrument(span)
        .await
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
