//! The ai service's route table and its settings.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use service_kit::ApiConfig;
use utoipa_actix_web::scope;

use crate::handlers::reply::{Ai, continue_reply, write_reply};
use crate::openai::{OpenAi, OpenAiConfig};
use crate::provider::Builtin;

/// The provider the environment asks for: `AI_PROVIDER=builtin` (the default, offline;
/// `AI_TOKEN_DELAY_MS` paces it) or `openai` (`OPENAI_BASE_URL`, `OPENAI_MODEL`,
/// `OPENAI_API_KEY`, `AI_FIRST_TOKEN_TIMEOUT_MS`, `AI_TIMEOUT_MS`, `AI_RETRIES`), which falls
/// back to builtin when the API cannot answer. `AI_PROVIDER_BY_CHARACTER=sophia=openai,…`
/// gives some characters another provider than the default. Read once, at start-up; an unknown
/// provider name is an error that names the variable.
pub fn ai_from_env() -> anyhow::Result<Ai> {
    use service_kit::config::var as env;
    let num = |k: &str, d: u64| service_kit::config::var_or(k, d);
    let builtin: Arc<dyn crate::provider::Provider> = Arc::new(Builtin {
        token_delay: Duration::from_millis(num("AI_TOKEN_DELAY_MS", 30)?),
    });
    let openai_config = OpenAiConfig {
        base_url: env("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into()),
        model: env("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
        api_key: env("OPENAI_API_KEY").map(service_kit::Secret::new),
        first_token_timeout: Duration::from_millis(num("AI_FIRST_TOKEN_TIMEOUT_MS", 10_000)?),
        total_timeout: Duration::from_millis(num("AI_TIMEOUT_MS", 120_000)?),
        retries: num("AI_RETRIES", 1)? as u32,
        max_tokens: num("AI_MAX_TOKENS", 512)? as u32,
    };
    // Built only if the default or some character asks for it.
    let mut openai: Option<Arc<dyn crate::provider::Provider>> = None;
    let mut pick = |var: &str, name: &str| -> anyhow::Result<Arc<dyn crate::provider::Provider>> {
        match name {
            "builtin" => Ok(builtin.clone()),
            "openai" => {
                if openai.is_none() {
                    openai = Some(Arc::new(OpenAi::new(
                        openai_config.clone(),
                        Some(builtin.clone()),
                    )?));
                }
                Ok(openai.clone().unwrap_or_else(|| builtin.clone()))
            }
            other => anyhow::bail!("{var}={other:?}: expected builtin or openai"),
        }
    };
    let provider = pick(
        "AI_PROVIDER",
        env("AI_PROVIDER").as_deref().unwrap_or("builtin"),
    )?;
    let mut by_character = std::collections::HashMap::new();
    for (character, name) in
        by_character_spec(&env("AI_PROVIDER_BY_CHARACTER").unwrap_or_default())?
    {
        by_character.insert(character, pick("AI_PROVIDER_BY_CHARACTER", &name)?);
    }
    let d = crate::generate::Limits::default();
    let limits = crate::generate::Limits {
        max_tokens: num("AI_MAX_TOKENS", d.max_tokens as u64)? as usize,
        per_user_per_day: num("AI_REPLIES_PER_USER_PER_DAY", d.per_user_per_day as u64)? as i64,
        context_tokens: num("AI_CONTEXT_TOKENS", d.context_tokens as u64)? as usize,
        lease: Duration::from_millis(num("AI_LEASE_MS", d.lease.as_millis() as u64)?),
        max_memories: num("MEMORIES_PER_MATCH", d.max_memories as u64)? as i64,
    };
    anyhow::ensure!(
        limits.max_memories >= 1,
        "MEMORIES_PER_MATCH must be at least 1"
    );
    anyhow::ensure!(
        limits.lease >= Duration::from_millis(300),
        "AI_LEASE_MS must be at least 300"
    );
    anyhow::ensure!(limits.max_tokens > 0, "AI_MAX_TOKENS must be at least 1");
    Ok(Ai {
        provider,
        by_character,
        photos: crate::photos::PhotoMilestones::from_env()?,
        limits,
    })
}

/// `sophia=openai,hugo=builtin` → the pairs; a malformed item is an error.
pub fn by_character_spec(spec: &str) -> anyhow::Result<Vec<(String, String)>> {
    spec.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((c, p)) if !c.trim().is_empty() && !p.trim().is_empty() => {
                Ok((c.trim().to_owned(), p.trim().to_owned()))
            }
            _ => anyhow::bail!("AI_PROVIDER_BY_CHARACTER: {item:?} is not character=provider"),
        })
        .collect()
}

/// The whole route table of the ai service.
pub fn configure(cfg: &mut ApiConfig) {
    use crate::handlers::write_first::{match_settings, user_settings};
    cfg.service(
        scope("/api/v1")
            .service(write_reply)
            .service(continue_reply)
            .service(user_settings::get_write_first)
            .service(user_settings::update_write_first)
            .service(match_settings::get_match_write_first)
            .service(match_settings::update_match_write_first),
    );
}

/// The app data the handlers need.
pub fn data(ai: Ai) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let ai = web::Data::new(ai);
    move |cfg| {
        cfg.app_data(ai.clone());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_character_providers_parse() {
        assert_eq!(
            super::by_character_spec(" sophia=openai, hugo = builtin ,,").ok(),
            Some(vec![
                ("sophia".to_owned(), "openai".to_owned()),
                ("hugo".to_owned(), "builtin".to_owned())
            ])
        );
        assert!(super::by_character_spec("sophia=openai,bad").is_err());
        assert!(super::by_character_spec("=x").is_err());
    }
}
