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
/// back to builtin when the API cannot answer. `AI_PROVIDER_BY_CHARACTER=sophia=openai,…`
/// gives some characters another provider than the default.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let num = |k: &str, d: u64| env(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let builtin: Arc<dyn crate::provider::Provider> = Arc::new(Builtin {
        token_delay: Duration::from_millis(num("AI_TOKEN_DELAY_MS", 30)),
    });
    // Built only if the default or some character asks for it.
    let openai = || -> Arc<dyn crate::provider::Provider> {
        let config = OpenAiConfig {
            base_url: env("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into()),
            model: env("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
            api_key: env("OPENAI_API_KEY"),
            first_token_timeout: Duration::from_millis(num("AI_FIRST_TOKEN_TIMEOUT_MS", 10_000)),
            total_timeout: Duration::from_millis(num("AI_TIMEOUT_MS", 120_000)),
            retries: num("AI_RETRIES", 1) as u32,
        };
        match OpenAi::new(config, Some(builtin.clone())) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::error!(error = %e, "openai provider unavailable; using builtin");
                builtin.clone()
            }
        }
    };
    let mut openai_once: Option<Arc<dyn crate::provider::Provider>> = None;
    let mut pick = |name: &str| -> Arc<dyn crate::provider::Provider> {
        match name {
            "openai" => openai_once.get_or_insert_with(openai).clone(),
            "builtin" => builtin.clone(),
            other => {
                tracing::error!(provider = other, "unknown AI provider; using builtin");
                builtin.clone()
            }
        }
    };
    let provider = pick(env("AI_PROVIDER").as_deref().unwrap_or("builtin"));
    let by_character = by_character(&env("AI_PROVIDER_BY_CHARACTER").unwrap_or_default())
        .into_iter()
        .map(|(character, name)| (character, pick(&name)))
        .collect();
    let photos = crate::photos::PhotoMilestones::from_env().unwrap_or_else(|e| {
        tracing::error!(error = %e, "photo milestones off");
        None
    });
    configure_with(Ai {
        provider,
        by_character,
        photos,
    })(cfg)
}

/// `sophia=openai,hugo=builtin` → the pairs; malformed items are skipped with an error log.
pub fn by_character(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .filter_map(|item| match item.split_once('=') {
            Some((c, p)) if !c.trim().is_empty() => {
                Some((c.trim().to_owned(), p.trim().to_owned()))
            }
            _ => {
                tracing::error!(
                    item,
                    "AI_PROVIDER_BY_CHARACTER: expected character=provider"
                );
                None
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    #[test]
    fn per_character_providers_parse() {
        assert_eq!(
            super::by_character(" sophia=openai, hugo = builtin ,bad,,=x"),
            vec![
                ("sophia".to_owned(), "openai".to_owned()),
                ("hugo".to_owned(), "builtin".to_owned())
            ]
        );
    }
}
