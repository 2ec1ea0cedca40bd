//! Where replies come from: a provider streams a reply token by token. `builtin` (the default)
//! works offline: deterministic for a given seed, in the character's voice, built from the
//! user's message and what the character remembers — so `make dev` and the tests need no model
//! and no network.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use db_core::models::Character;
use futures_util::stream::{self, BoxStream, StreamExt};

/// What a provider is asked to answer.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub character: Character,
    pub user_message: String,
    /// What the character remembers of the user, most relevant first.
    pub memories: Vec<String>,
    /// The latest messages, newest first (the cached window): `(from the user, text)`.
    pub history: Vec<(bool, String)>,
    pub seed: u64,
}

/// A rough token count (about four characters a token for French and English text).
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

impl Prompt {
    /// Cuts the context to `budget` tokens: the persona and the user's message always stay;
    /// then memories (most relevant first) and the history (newest first) as they fit.
    pub fn within_budget(mut self, budget: usize) -> Self {
        let mut used =
            estimate_tokens(&self.character.persona) + estimate_tokens(&self.user_message);
        let mut fits = |text: &str| {
            let cost = estimate_tokens(text);
            (used + cost <= budget).then(|| used += cost).is_some()
        };
        self.memories.retain(|m| fits(m));
        let kept = self.history.iter().take_while(|(_, t)| fits(t)).count();
        self.history.truncate(kept);
        self
    }
}

#[derive(Debug, thiserror::Error)]
#[error("provider failed: {0}")]
pub struct ProviderError(pub String);

pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    fn stream(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>>;
}

/// The offline provider.
pub struct Builtin {
    /// Pause between tokens, as a model would take (0 in tests).
    pub token_delay: Duration,
}

fn pick<'a>(seed: u64, salt: &str, options: &[&'a str]) -> &'a str {
    let mut h = DefaultHasher::new();
    (seed, salt).hash(&mut h);
    options[(h.finish() % options.len() as u64) as usize]
}

/// Long words that say nothing about the topic.
const NOT_TOPICS: &[&str] = &[
    "appelle",
    "bonjour",
    "bonsoir",
    "salut",
    "comment",
    "pourquoi",
    "quelque",
    "quelqu'un",
    "toujours",
    "maintenant",
    "vraiment",
    "beaucoup",
    "aujourd'hui",
    "peut-être",
    "pense",
    "penses",
    "sophia",
    "moment",
];

/// The longest meaningful word of the message: what it is about, roughly.
fn topic(message: &str) -> Option<String> {
    message
        .split(|c: char| !c.is_alphabetic() && c != '-')
        .filter(|w| w.chars().count() >= 5 && !NOT_TOPICS.contains(&w.to_lowercase().as_str()))
        .max_by_key(|w| w.chars().count())
        .map(str::to_lowercase)
}

fn flavour(c: &Character, seed: u64) -> &'static str {
    let tag = |t: &str| c.tags.iter().any(|x| x == t);
    if tag("littérature") {
        "Ça me rappelle un roman que je viens de refermer."
    } else if tag("montagne") || tag("aventure") {
        "Ça me donne envie d'un sommet au lever du soleil."
    } else if tag("cuisine") || tag("gourmande") {
        "Je t'imagine déjà avec une part de tarte tiède."
    } else if tag("musique") {
        "Il y a un morceau de piano qui irait parfaitement avec ça."
    } else if tag("science") || tag("étoiles") {
        "Les étoiles étaient magnifiques hier soir, tu sais."
    } else {
        pick(
            seed,
            "flavour",
            &[
                "De mon côté, la journée a été douce.",
                "Ici, il fait un temps à rester au chaud.",
                "J'ai pensé à toi tout à l'heure.",
            ],
        )
    }
}

/// The whole reply, before it is cut into tokens.
pub fn compose(p: &Prompt) -> String {
    let s = p.seed;
    let mut parts = vec![
        pick(
            s,
            "opener",
            &["Oh !", "Ah, toi !", "Tu sais quoi ?", "Hmm…", "Coucou !"],
        )
        .to_owned(),
    ];
    if let Some(t) = topic(&p.user_message) {
        let line = pick(
            s,
            "topic",
            &[
                "J'adore quand tu me parles de {t}.",
                "« {t} »… rien que le mot me fait sourire.",
                "Raconte-moi encore, {t} ça m'intrigue.",
            ],
        );
        parts.push(line.replace("{t}", &t));
    }
    if let Some(m) = p.memories.first() {
        let m = m.trim_end_matches('.');
        let mut chars = m.chars();
        let lowered: String = chars
            .next()
            .map(|c| c.to_lowercase().chain(chars).collect())
            .unwrap_or_default();
        parts.push(format!("Je n'ai pas oublié : {lowered}."));
    }
    parts.push(flavour(&p.character, s).to_owned());
    parts.push(
        pick(
            s,
            "question",
            &[
                "Et toi, comment tu te sens ce soir ?",
                "Tu me racontes la suite ?",
                "Qu'est-ce qui te ferait plaisir, là, maintenant ?",
            ],
        )
        .to_owned(),
    );
    parts.join(" ")
}

impl Provider for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn stream(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>> {
        let text = compose(&prompt);
        let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        let delay = self.token_delay;
        stream::iter(words)
            .then(move |w| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(w)
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(seed: u64, memories: Vec<String>) -> Prompt {
        let character = db_core::seed::demo_characters()
            .unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("catalogue"));
        Prompt {
            character,
            user_message: "Je reviens de la bibliothèque municipale".into(),
            memories,
            history: vec![],
            seed,
        }
    }

    #[test]
    fn the_context_is_cut_to_the_budget_newest_history_first() {
        let mut p = prompt(1, vec!["m".repeat(40), "n".repeat(40)]);
        p.history = (0..10)
            .map(|i| (i % 2 == 0, format!("{i}").repeat(40)))
            .collect();
        let base = estimate_tokens(&p.character.persona) + estimate_tokens(&p.user_message);
        let cut = p.clone().within_budget(base + 10 + 10 + 30);
        assert_eq!(cut.memories.len(), 2, "memories first");
        assert_eq!(cut.history.len(), 3, "then the three newest messages");
        assert_eq!(cut.history[0].1, "0".repeat(40));
        let tight = p.clone().within_budget(base);
        assert!(tight.memories.is_empty() && tight.history.is_empty());
        assert_eq!(
            tight.user_message, p.user_message,
            "the message itself always stays"
        );
        assert_eq!(p.clone().within_budget(usize::MAX).history.len(), 10);
    }

    #[test]
    fn the_same_seed_gives_the_same_reply_in_the_characters_voice() {
        let a = compose(&prompt(7, vec!["Aime la randonnée.".into()]));
        assert_eq!(a, compose(&prompt(7, vec!["Aime la randonnée.".into()])));
        assert!(a.contains("bibliothèque"), "{a}");
        assert!(a.contains("aime la randonnée"), "{a}");
        assert!(a.contains("roman"), "Sophia is a bookseller: {a}");
        let others: std::collections::HashSet<String> =
            (0..20).map(|s| compose(&prompt(s, vec![]))).collect();
        assert!(others.len() > 3, "seeds vary the reply");
    }
}
