//! Where replies come from: a provider streams a reply token by token. `builtin` (the default)
//! works offline: deterministic for a given seed, in the character's voice, built from the
//! user's message and what the character remembers — so `make dev` and the tests need no model
//! and no network.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use db_core::models::Character;
use futures_util::future::BoxFuture;
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
    /// A continuation: the user's message that the reply being continued answers (a model
    /// reads `user_message`, the instruction to go on, and the reply as the newest history).
    pub continuing: Option<String>,
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
    /// The character's reply to `prompt.user_message`, token by token.
    fn stream(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>>;
    /// A message the character writes first after a silence (`prompt.user_message` is empty;
    /// the history is the conversation so far).
    fn stream_first(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>>;
    /// Facts about the user worth remembering in `message`, as the provider sees them; `None`
    /// when it cannot tell (the keyword rule is used instead).
    fn facts(&self, _message: String) -> FactsFuture {
        Box::pin(async { None })
    }
}

/// How a provider is asked to pull facts about the user out of a message (a real model); the
/// builtin provider answers `None` and the keyword rule (`generate::facts`) is used instead.
pub type FactsFuture = BoxFuture<'static, Option<Vec<String>>>;

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
    "coucou",
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
    "moment",
    "depuis",
    "était",
    "avoir",
    "faire",
];

/// The longest meaningful word of the message: what it is about, roughly.
fn topic(message: &str, character: &Character) -> Option<String> {
    let name = character.name.to_lowercase();
    message
        .split(|c: char| !c.is_alphabetic() && c != '-')
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 5 && !NOT_TOPICS.contains(&w.as_str()) && *w != name)
        .max_by_key(|w| w.chars().count())
}

/// What the user's message sounds like, from a few cue words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mood {
    Hello,
    Sad,
    Happy,
    Question,
    Plain,
}

fn mood(message: &str) -> Mood {
    let lower = message.to_lowercase();
    let has = |cues: &[&str]| cues.iter().any(|c| lower.contains(c));
    if has(&[
        "triste",
        "fatigué",
        "fatiguée",
        "épuisé",
        "stress",
        "seul",
        "seule",
        "déprim",
        "pas le moral",
        "galère",
        "nul",
    ]) {
        Mood::Sad
    } else if has(&[
        "génial",
        "heureux",
        "heureuse",
        "content",
        "super",
        "réussi",
        "trop bien",
        "youpi",
        "enfin",
    ]) {
        Mood::Happy
    } else if lower.trim_end().ends_with('?') {
        Mood::Question
    } else if has(&["salut", "bonjour", "bonsoir", "coucou", "hello"]) {
        Mood::Hello
    } else {
        Mood::Plain
    }
}

/// A character's way of speaking, from its tags and persona: what it reaches for (its world)
/// and how it opens (its manner).
struct Voice {
    world: &'static [&'static str],
    openers: &'static [&'static str],
}

fn voice(c: &Character) -> Voice {
    let words: String = format!("{} {}", c.tags.join(" "), c.persona).to_lowercase();
    let has = |w: &str| words.contains(w);
    let world: &'static [&'static str] = if has("littérature") || has("libraire") {
        &[
            "Ça me rappelle un roman que je viens de refermer.",
            "Je te mettrais bien un livre de côté pour ça.",
            "Il y a une phrase de Colette qui irait parfaitement ici.",
        ]
    } else if has("montagne") {
        &[
            "Ça me donne envie d'un sommet au lever du soleil.",
            "Là-haut, on appellerait ça une belle cordée.",
            "Au refuge, on en parlerait autour d'une fondue.",
        ]
    } else if has("cuisine") || has("pâtissi") {
        &[
            "Je t'imagine déjà avec une part de tarte tiède.",
            "Si c'était un dessert, ce serait un chou à la crème.",
            "Ça mérite un chocolat chaud, je te jure.",
        ]
    } else if has("musique") || has("pianiste") {
        &[
            "Il y a un morceau de piano qui irait parfaitement avec ça.",
            "Ça sonne comme une ballade en mi bémol.",
            "Ce soir, je jouerai quelque chose en y pensant.",
        ]
    } else if has("étoiles") || has("astrophysique") {
        &[
            "Les étoiles étaient magnifiques hier soir, tu sais.",
            "C'est un peu comme une comète : rare et lumineux.",
            "Même Saturne tournerait plus lentement pour écouter ça.",
        ]
    } else if has("photograph") || has("voyage") {
        &[
            "J'aurais voulu prendre ça en photo.",
            "Ça me rappelle une ruelle de Lisbonne au petit matin.",
            "Le train de demain m'emmène loin, mais je pense à ça.",
        ]
    } else if has("vigne") || has("vigneronne") {
        &[
            "Ici, les vignes prennent leur temps, comme toi.",
            "Ça se savoure comme un vieux bourgogne.",
            "Mon grand-père dirait que c'est une bonne année.",
        ]
    } else if has("jeux") || has("geek") {
        &[
            "C'est digne d'une quête secondaire, ça.",
            "Tiguidou ! Ça me donne une idée de niveau.",
            "Ça mérite une partie de jeu de société ce soir.",
        ]
    } else {
        &[
            "De mon côté, la journée a été douce.",
            "Ici, il fait un temps à rester au chaud.",
            "J'ai pensé à toi tout à l'heure.",
        ]
    };
    let openers: &'static [&'static str] =
        if has("humour") || has("taquin") || has("drôle") || has("bavard") {
            &[
                "Ha !",
                "Eh bien, eh bien…",
                "Attends, attends !",
                "Sérieusement ?",
            ]
        } else if has("calme") || has("poète") || has("poétique") || has("douce") || has("rêveuse")
        {
            &["Mmh…", "Tu sais…", "Doucement…", "Ah, toi…"]
        } else {
            &["Oh !", "Ah, toi !", "Tu sais quoi ?", "Coucou !"]
        };
    Voice { world, openers }
}

/// A memory as the character says it: first letter lowered, final stop dropped.
fn recalled(memory: &str) -> String {
    let m = memory.trim().trim_end_matches(['.', '!']);
    let mut chars = m.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The whole reply, before it is cut into tokens: deterministic for a seed, varied by the
/// character's voice, the message's mood and topic, what the character remembers and what the
/// user said before.
pub fn compose(p: &Prompt) -> String {
    let s = p.seed;
    let voice = voice(&p.character);
    let mood = mood(&p.user_message);
    let mut parts = vec![pick(s, "opener", voice.openers).to_owned()];
    parts.push(
        match mood {
            Mood::Hello => pick(
                s,
                "mood",
                &[
                    "Quel plaisir de te lire.",
                    "Te voilà enfin !",
                    "Je me demandais quand tu passerais.",
                ],
            ),
            Mood::Sad => pick(
                s,
                "mood",
                &[
                    "Je suis là, tu sais.",
                    "Viens, pose-toi deux minutes avec moi.",
                    "Ça a l'air lourd, ce que tu portes.",
                ],
            ),
            Mood::Happy => pick(
                s,
                "mood",
                &[
                    "Ça me met de bonne humeur aussi !",
                    "Je souris jusqu'aux oreilles.",
                    "Voilà une nouvelle qui fait du bien.",
                ],
            ),
            Mood::Question => pick(
                s,
                "mood",
                &[
                    "Bonne question…",
                    "Laisse-moi y réfléchir une seconde.",
                    "Tu me poses de ces questions !",
                ],
            ),
            Mood::Plain => "",
        }
        .to_owned(),
    );
    let now = topic(&p.user_message, &p.character);
    if let Some(t) = &now {
        let line = pick(
            s,
            "topic",
            &[
                "J'adore quand tu me parles de {t}.",
                "« {t} »… rien que le mot me fait sourire.",
                "Raconte-moi encore, {t} ça m'intrigue.",
                "Alors, {t}… dis-m'en plus.",
            ],
        );
        parts.push(line.replace("{t}", t));
    }
    // What the user said before, if it was about something else.
    let before = p
        .history
        .iter()
        .filter(|(from_user, _)| *from_user)
        .find_map(|(_, text)| topic(text, &p.character))
        .filter(|t| Some(t) != now.as_ref());
    if let Some(t) = before.filter(|_| s.is_multiple_of(3)) {
        parts.push(format!("Et tout à l'heure, {t}, tu ne m'as pas tout dit."));
    }
    if let Some(m) = remembered(p) {
        let line = pick(
            s,
            "memory",
            &[
                "Je n'ai pas oublié : {m}.",
                "Je repense à ce que tu m'as dit : {m}.",
                "Au fait, {m}, c'est toujours vrai ?",
            ],
        );
        parts.push(line.replace("{m}", &m));
    }
    parts.push(pick(s, "world", voice.world).to_owned());
    parts.push(question(s, mood).to_owned());
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}

/// The memory this reply recalls (one of them, by the seed), as the character says it.
fn remembered(p: &Prompt) -> Option<String> {
    let n = p.memories.len() as u64;
    (n > 0).then(|| recalled(&p.memories[(p.seed % n) as usize]))
}

/// The question a reply ends on, by the message's mood.
fn question(s: u64, mood: Mood) -> &'static str {
    match mood {
        Mood::Sad => pick(
            s,
            "question",
            &[
                "Qu'est-ce qui te ferait du bien, là ?",
                "Tu veux m'en parler ?",
            ],
        ),
        Mood::Question => pick(
            s,
            "question",
            &[
                "Et toi, qu'est-ce que tu en penses ?",
                "Tu voulais en venir où ?",
            ],
        ),
        _ => pick(
            s,
            "question",
            &[
                "Et toi, comment tu te sens ce soir ?",
                "Tu me racontes la suite ?",
                "Qu'est-ce qui te ferait plaisir, là, maintenant ?",
            ],
        ),
    }
}

/// More of a reply the user asked the character to continue: about the message it answers
/// (its topic and mood, never the instruction's words), without an opener, and without a
/// sentence the reply already holds.
pub fn compose_more(p: &Prompt, asked: &str) -> String {
    let s = p.seed;
    let voice = voice(&p.character);
    let said = p
        .history
        .iter()
        .find(|(from_user, _)| !from_user)
        .map_or("", |(_, text)| text.as_str());
    let mut parts = Vec::new();
    if let Some(t) = topic(asked, &p.character) {
        let line = pick(
            s,
            "more-topic",
            &[
                "Et puis, {t}… je n'ai pas fini d'y penser.",
                "Pour {t}, il y a encore autre chose.",
                "Je reviens sur {t}, tu permets ?",
            ],
        );
        parts.push(line.replace("{t}", &t));
    }
    if let Some(m) = remembered(p) {
        parts.push(format!("Ça me fait penser : {m}."));
    }
    // A line of its world it has not said yet (from a place that varies with the seed).
    let n = voice.world.len();
    let start = (s % n.max(1) as u64) as usize;
    if let Some(world) = (0..n)
        .map(|i| voice.world[(start + i) % n])
        .find(|line| !said.contains(line))
    {
        parts.push(world.to_owned());
    }
    parts.push(question(s, mood(asked)).to_owned());
    parts.retain(|line| !said.contains(line.as_str()));
    if parts.is_empty() {
        parts.push(
            pick(
                s,
                "more",
                &[
                    "Enfin, tu vois ce que je veux dire.",
                    "Bref, je m'emballe un peu.",
                ],
            )
            .to_owned(),
        );
    }
    parts.join(" ")
}

/// A message the character writes first, after a silence: it picks up the thread (the last
/// thing the user talked about, or something it remembers) in its own voice.
pub fn compose_first(p: &Prompt) -> String {
    let s = p.seed;
    let voice = voice(&p.character);
    let mut parts = vec![
        pick(
            s,
            "first",
            &[
                "Coucou, ça fait un moment !",
                "Tu me manquais un peu, alors je t'écris.",
                "Je passe juste te dire bonjour.",
                "Dis, tu es là ?",
            ],
        )
        .to_owned(),
    ];
    let last_topic = p
        .history
        .iter()
        .filter(|(from_user, _)| *from_user)
        .find_map(|(_, text)| topic(text, &p.character));
    match (last_topic, p.memories.first()) {
        (Some(t), m) if s.is_multiple_of(2) || m.is_none() => {
            parts.push(
                pick(
                    s,
                    "thread",
                    &[
                        "Je repensais à ce que tu m'as dit sur {t}.",
                        "Alors, {t}, ça a donné quoi ?",
                    ],
                )
                .replace("{t}", &t),
            );
        }
        (_, Some(m)) => {
            parts.push(format!("Je pensais à toi : {}.", recalled(m)));
        }
        (_, None) => {}
    }
    parts.push(pick(s, "world", voice.world).to_owned());
    parts.push(
        pick(
            s,
            "ask",
            &[
                "Tu me racontes ta journée ?",
                "Qu'est-ce que tu deviens ?",
                "Tu as un moment pour moi ?",
            ],
        )
        .to_owned(),
    );
    parts.join(" ")
}

/// The text as the builtin provider streams it: a word at a time, paced like a model.
fn words(text: String, delay: Duration) -> BoxStream<'static, Result<String, ProviderError>> {
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    stream::iter(words)
        .then(move |w| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(w)
        })
        .boxed()
}

impl Provider for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn stream(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>> {
        let text = match &prompt.continuing {
            Some(asked) => compose_more(&prompt, asked),
            None => compose(&prompt),
        };
        words(text, self.token_delay)
    }

    fn stream_first(&self, prompt: Prompt) -> BoxStream<'static, Result<String, ProviderError>> {
        words(compose_first(&prompt), self.token_delay)
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
            continuing: None,
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

    fn character(id: &str) -> Character {
        db_core::seed::demo_characters()
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id} in the catalogue"))
    }

    #[test]
    fn the_same_seed_gives_the_same_reply_in_the_characters_voice() {
        let a = compose(&prompt(7, vec!["Aime la randonnée.".into()]));
        assert_eq!(a, compose(&prompt(7, vec!["Aime la randonnée.".into()])));
        assert!(a.contains("bibliothèque"), "{a}");
        assert!(a.contains("aime la randonnée"), "{a}");
        let books = ["roman", "livre", "Colette"];
        assert!(
            books.iter().any(|w| a.contains(w)),
            "Sophia is a bookseller: {a}"
        );
        let others: std::collections::HashSet<String> =
            (0..20).map(|s| compose(&prompt(s, vec![]))).collect();
        assert!(others.len() > 10, "seeds vary the reply: {}", others.len());
    }

    #[tokio::test]
    async fn a_continuation_goes_on_about_the_message_not_the_instruction() {
        let mut p = prompt(7, vec![]);
        let asked = p.user_message.clone();
        // What the instruction alone made of it before: a reply about its own words.
        p.user_message = crate::generate::CONTINUE_INSTRUCTION.into();
        assert!(compose(&p).contains("« dernière »"), "{}", compose(&p));
        for seed in 0..24 {
            p.seed = seed;
            p.user_message = asked.clone();
            p.continuing = None;
            let first = compose(&p);
            p.user_message = crate::generate::CONTINUE_INSTRUCTION.into();
            p.history = vec![(false, first.clone()), (true, "Bonsoir".into())];
            p.continuing = Some(asked.clone());
            let more = compose_more(&p, &asked);
            assert!(more.contains("bibliothèque"), "{more}");
            for word in ["continue", "dernière", "réponse", "répéter"] {
                assert!(!more.to_lowercase().contains(word), "{more}");
            }
            for opener in voice(&p.character).openers {
                assert!(!more.starts_with(opener), "{more}");
            }
            // Nothing the reply already said is said again.
            for sentence in more.split_inclusive(['.', '?', '!']) {
                let sentence = sentence.trim();
                assert!(
                    sentence.len() < 4 || !first.contains(sentence),
                    "{sentence:?} repeats {first:?}"
                );
            }
        }
        // The builtin provider writes the continuation when asked for one.
        let streamed: String = Builtin {
            token_delay: Duration::ZERO,
        }
        .stream(p.clone())
        .map(|w| w.unwrap_or_default())
        .collect::<Vec<_>>()
        .await
        .concat();
        assert_eq!(streamed, compose_more(&p, &asked));
    }

    #[test]
    fn the_reply_follows_the_character_the_mood_and_the_memories() {
        let mut p = prompt(3, vec![]);
        let sophia = compose(&p);
        p.character = character("hugo");
        let hugo = compose(&p);
        assert_ne!(sophia, hugo);
        let mountain = ["sommet", "cordée", "refuge"];
        assert!(mountain.iter().any(|w| hugo.contains(w)), "{hugo}");
        // The same seed, another mood.
        let sad: std::collections::HashSet<String> = (0..12)
            .map(|s| {
                let mut p = prompt(s, vec![]);
                p.user_message = "Je suis tellement fatiguée ce soir".into();
                compose(&p)
            })
            .collect();
        let comfort = [
            "Je suis là",
            "pose-toi",
            "lourd",
            "fait du bien",
            "m'en parler",
        ];
        assert!(
            sad.iter().all(|r| comfort.iter().any(|w| r.contains(w))),
            "{sad:?}"
        );
        // Each memory is called up by some seed.
        let memories = vec!["Aime le jazz.".to_owned(), "A un chat roux.".to_owned()];
        let said: String = (0..8)
            .map(|s| compose(&prompt(s, memories.clone())))
            .collect();
        assert!(
            said.contains("aime le jazz") && said.contains("a un chat roux"),
            "{said}"
        );
        // What the user said before comes back sometimes.
        let mut p = prompt(0, vec![]);
        p.history = vec![
            (false, "Bonne nuit".into()),
            (true, "Mon concert de violoncelle".into()),
        ];
        assert!(compose(&p).contains("violoncelle"), "{}", compose(&p));
    }

    #[test]
    fn writing_first_picks_up_the_thread() {
        let mut p = prompt(2, vec![]);
        p.user_message.clear();
        p.history = vec![
            (false, "À demain !".into()),
            (true, "Demain j'ai mon entretien d'embauche".into()),
        ];
        let first = compose_first(&p);
        assert!(first.contains("entretien"), "{first}");
        assert_eq!(first, compose_first(&p));
        let p = Prompt {
            history: vec![],
            memories: vec!["Adore les chats.".into()],
            ..prompt(1, vec![])
        };
        assert!(
            compose_first(&p).contains("adore les chats"),
            "{}",
            compose_first(&p)
        );
    }
}
