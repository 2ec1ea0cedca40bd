//! The whole route table of the ai service.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::handlers::reply::{self, Ai};
use crate::openai::{OpenAi, OpenAiConfig};
use crate::provider::Builtin;

/// Routes with the provider the environment asks for: `AI_PROVIDER=builtin` (the default,
/// offline; `AI_TOKEN_DELAY_MS` paces it) or `openai` (`OPENAI_BASE_URL`, `OPENAI_MODEL`,
/// `OPENAI_API_KEY`, `AI_FIRST_TOKEN_TIMEOUT_MS`, `AI_TIMEOUT_MS`, `AI_RETRIES`), which falls
/// back to builtin when the API cannot answer.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let num = |k: &str, d: u64| env(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let builtin: Arc<dyn crate::provider::Provider> = Arc::new(Builtin {
        token_delay: Duration::from_millis(num("AI_TOKEN_DELAY_MS", 30)),
    });
    let provider = match env("AI_PROVIDER").as_deref() {
        Some("openai") => {
            let config = OpenAiConfig {
                base_url: env("OPENAI_BASE_URL")
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                model: env("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
                api_key: env("OPENAI_API_KEY"),
                first_token_timeout: Duration::from_millis(num(
                    "AI_FIRST_TOKEN_TIMEOUT_MS",
                    10_000,
                )),
                total_timeout: Duration::from_millis(num("AI_TIMEOUT_MS", 120_000)),
                retries: num("AI_RETRIES", 1) as u32,
            };
            match OpenAi::new(config, Some(builtin.clone())) {
                Ok(p) => Arc::new(p) as Arc<dyn crate::provider::Provider>,
                Err(e) => {
                    tracing::error!(error = %e, "openai provider unavailable; using builtin");
                    builtin
                }
            }
        }
        _ => builtin,
    };
    let photos = crate::photos::PhotoMilestones::from_env().unwrap_or_else(|e| {
        tracing::error!(error = %e, "photo milestones off");
        None
    });
    configure_with(Ai { provider, photos })(cfg)
}

pub fn configure_with(ai: Ai) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let ai = web::Data::new(ai);
    move |cfg| {
        service_kit::openapi::route(cfg, crate::openapi::document);
        cfg.app_data(ai.clone())
            .service(web::scope("/api/v1").route(
                "/conversations/{character_id}/reply",
                web::post().to(reply::handle),
            ));
    }
}
