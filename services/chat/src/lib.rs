//! The chat service. Every path acts on the caller's own data only: another user's
//! conversation, match or memory is a 404, never their data.

pub mod handlers;
pub mod routes;

/// The chat service's own settings, read once at start-up, and its background work.
#[derive(Clone, Debug)]
pub struct Chat {
    /// `MEMORIES_PER_MATCH` (default 200): the most memories one match keeps.
    pub memories_per_match: i64,
    /// The search indexes' pending lists merged every [`PENDING_LIST_MERGES`], so that no
    /// send has to merge a full one (a few hundred milliseconds).
    merges: std::sync::Arc<tokio::task::JoinHandle<()>>,
}

/// How often the search indexes' pending lists are merged: at a few hundred sends a second,
/// a few dozen pages each time, tens of milliseconds of PostgreSQL in the background.
pub const PENDING_LIST_MERGES: std::time::Duration = std::time::Duration::from_secs(10);

impl service_kit::Service for Chat {
    const NAME: &'static str = "chat";
    const DEFAULT_PORT: u16 = 8082;
    const API: service_kit::Api = API;

    async fn start(kit: &service_kit::Kit) -> anyhow::Result<Self> {
        let memories_per_match = service_kit::config::var_or(
            "MEMORIES_PER_MATCH",
            db_core::store::DEFAULT_MEMORIES_PER_MATCH,
        )?;
        anyhow::ensure!(
            memories_per_match >= 1,
            "MEMORIES_PER_MATCH must be at least 1"
        );
        let merges = kit.store.spawn_pending_list_merges(PENDING_LIST_MERGES);
        Ok(Chat {
            memories_per_match,
            merges: std::sync::Arc::new(merges),
        })
    }

    fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        cfg.app_data(actix_web::web::Data::new(self.clone()));
    }

    async fn stop(self, _within: std::time::Duration) {
        self.merges.abort();
    }
}

/// The chat service's API.
pub const API: service_kit::Api = service_kit::Api {
    title: "Dream chat",
    description: "Characters, matches, conversations, search and memories",
    routes: routes::configure,
};

/// Its OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    API.document()
}
