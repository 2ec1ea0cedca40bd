//! The media service: the photos characters send. A request queues a job in PostgreSQL; workers
//! on any replica make the image (builtin renderer or an image API), store it through
//! `object_store`, and deliver it to the gallery and the conversation exactly once.

pub mod cards;
pub mod export;
pub mod generator;
pub mod handlers;
pub mod jobs;
pub mod purges;
pub mod render;
pub mod routes;
pub mod storage;

/// The media service: its storage and generator (from the environment, read once) and the
/// job workers it runs.
#[derive(Clone)]
pub struct MediaService {
    media: jobs::Media,
    workers: std::sync::Arc<std::sync::Mutex<Option<jobs::Workers>>>,
    purges: std::sync::Arc<tokio::task::JoinHandle<()>>,
}

impl service_kit::Service for MediaService {
    const NAME: &'static str = "media";
    const DEFAULT_PORT: u16 = 8084;
    const API: service_kit::Api = API;

    async fn start(kit: &service_kit::Kit) -> anyhow::Result<Self> {
        let media = routes::media_from_env()?;
        tracing::info!(
            store = media.storage.url(),
            generator = media.generator.name(),
            workers = media.jobs.workers,
            "media storage and generator"
        );
        let workers = jobs::Workers::spawn(kit.clone(), media.clone());
        let purges = purges::spawn(kit.clone(), media.clone());
        Ok(Self {
            media,
            workers: std::sync::Arc::new(std::sync::Mutex::new(Some(workers))),
            purges: std::sync::Arc::new(purges),
        })
    }

    fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        routes::data(self.media.clone())(cfg);
    }

    async fn stop(self, within: std::time::Duration) {
        self.purges.abort();
        let workers = self.workers.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = workers {
            w.shutdown(within).await;
        }
    }
}

/// The media service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream media",
    description: "Photos the characters send",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
