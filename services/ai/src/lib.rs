//! The ai service: the characters' replies, streamed, written exactly once.

pub mod generate;
pub mod handlers;
pub mod openai;
pub mod photos;
pub mod provider;
pub mod routes;
pub mod write_first;

/// The ai service: the providers that write each character's replies (from the environment,
/// read once), and the scheduler of the messages characters write first.
#[derive(Clone)]
pub struct AiService(
    std::sync::Arc<handlers::reply::Ai>,
    write_first::Scheduler,
    std::sync::Arc<write_first::Config>,
);

impl service_kit::Service for AiService {
    const NAME: &'static str = "ai";
    const DEFAULT_PORT: u16 = 8083;
    const API: service_kit::Api = API;

    async fn start(kit: &service_kit::Kit) -> anyhow::Result<Self> {
        let ai = std::sync::Arc::new(routes::ai_from_env()?);
        let config = write_first::Config::from_env()?;
        let providers = ai.clone();
        let scheduler = write_first::Scheduler::spawn(
            kit.clone(),
            config.clone(),
            std::sync::Arc::new(move |c: &str| providers.provider_for(c)),
        );
        Ok(Self(ai, scheduler, std::sync::Arc::new(config)))
    }

    fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        cfg.app_data(actix_web::web::Data::from(self.0.clone()));
        cfg.app_data(actix_web::web::Data::from(self.2.clone()));
    }

    async fn stop(self, within: std::time::Duration) {
        self.1.shutdown(within).await;
    }
}

/// The ai service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream ai",
    description: "Characters' replies",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
