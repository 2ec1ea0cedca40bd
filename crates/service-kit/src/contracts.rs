//! What one service asks of another, typed once on both sides: the media service reads these
//! bodies and the ai service sends them through [`MediaClient`]. (Services never import each
//! other; they share these.)

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Secret;
use crate::http::Traced;

/// `POST /api/v1/photos/{character_id}/generate`.
#[derive(utoipa::ToSchema, Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratePhoto {
    /// What the photo should show, at most 500 characters; the character chooses if absent.
    #[schema(min_length = 1, max_length = 500)]
    pub prompt: Option<String>,
}

/// What the media service answers a photo request with (the part a caller needs).
#[derive(Debug, Clone, Deserialize)]
pub struct PhotoJobAccepted {
    pub id: Uuid,
}

/// The media service, called on a user's behalf (their token, the caller's trace).
#[derive(Clone, Debug)]
pub struct MediaClient {
    base_url: String,
    http: reqwest::Client,
}

impl MediaClient {
    pub fn new(base_url: impl Into<String>) -> anyhow::Result<Self> {
        Ok(Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http: crate::http::client(|b| b.timeout(std::time::Duration::from_secs(5)))?,
        })
    }

    /// Asks for a photo of `character`; the job's id.
    pub async fn generate(
        &self,
        authorization: &Secret,
        character: &str,
        body: &GeneratePhoto,
    ) -> anyhow::Result<Uuid> {
        let res = self
            .http
            .post(format!(
                "{}/api/v1/photos/{character}/generate",
                self.base_url
            ))
            .header("authorization", authorization.expose())
            .json(body)
            .traced()
            .send()
            .await?;
        anyhow::ensure!(
            res.status() == reqwest::StatusCode::ACCEPTED,
            "media answered {}",
            res.status()
        );
        Ok(res.json::<PhotoJobAccepted>().await?.id)
    }
}
