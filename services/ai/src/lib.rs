//! The ai service: the characters' replies, streamed, written exactly once.

pub mod generate;
pub mod handlers;
pub mod openai;
pub mod photos;
pub mod provider;
pub mod routes;

/// The ai service: the providers that write each character's replies (from the environment,
/// read once).
#[derive(Clone)]
pub struct AiService(std::sync::Arc<handlers::reply::Ai>);

impl service_kit::Service for AiService {
    const NAME: &'static str = "ai";
    const DEFAULT_PORT: u16 = 8083;
    const API: service_kit::Api = API;

    async fn start(_kit: &service_kit::Kit) -> anyhow::Result<Self> {
        Ok(Self(std::sync::Arc::new(routes::ai_from_env()?)))
    }

    fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        cfg.app_data(actix_web::web::Data::from(self.0.clone()));
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
