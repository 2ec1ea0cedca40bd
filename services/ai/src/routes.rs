//! The whole route table of the ai service.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::handlers::reply::{self, Ai};
use crate::provider::Builtin;

/// Routes with the default provider (`AI_TOKEN_DELAY_MS` paces the builtin one).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let delay = std::env::var("AI_TOKEN_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    configure_with(Ai {
        provider: Arc::new(Builtin {
            token_delay: Duration::from_millis(delay),
        }),
    })(cfg)
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
