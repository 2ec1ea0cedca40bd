//! The keyspace: every Redis key family Dream uses, with its pattern, lifetime, value type and
//! who writes and invalidates it. Every key lives under a configurable prefix, so tests and
//! tenants get a keyspace of their own. Nothing here ever needs `KEYS`.

use std::time::Duration;

use uuid::Uuid;

/// A kind of cached data. `Family::ALL` is the table the monitor and the docs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    UserProfile,
    Conversation,
    MatchList,
    Character,
    PhotoPage,
    Typing,
    Unread,
    Leaderboard,
    Session,
    RateLimit,
}

/// One row of the keyspace table.
pub struct FamilySpec {
    pub family: Family,
    pub name: &'static str,
    pub pattern: &'static str,
    /// `None`: kept until deleted (write-behind state, rebuilt indexes).
    pub ttl: Option<Duration>,
    pub value: &'static str,
    pub written_by: &'static str,
    pub invalidated_by: &'static str,
}

const fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::UserProfile,
        Family::Conversation,
        Family::MatchList,
        Family::Character,
        Family::PhotoPage,
        Family::Typing,
        Family::Unread,
        Family::Leaderboard,
        Family::Session,
        Family::RateLimit,
    ];

    pub fn spec(self) -> FamilySpec {
        let s = |name, pattern, ttl, value, written_by, invalidated_by| FamilySpec {
            family: self,
            name,
            pattern,
            ttl,
            value,
            written_by,
            invalidated_by,
        };
        match self {
            Family::UserProfile => s(
                "user_profile",
                "user:profile:{user}",
                secs(15 * 60),
                "JSON User",
                "profile read (miss)",
                "profile edit, XP change",
            ),
            Family::Conversation => s(
                "conversation",
                "chat:recent:{user}:{character} (+ chat:ver:…)",
                secs(5 * 60),
                "string: a count, then the latest 100+ messages oldest first, each ready JSON and its cursor",
                "conversation read (miss, and in the background in its last quarter); every send appends and trims",
                "message edit or delete",
            ),
            Family::MatchList => s(
                "matches",
                "matches:{user}",
                secs(5 * 60),
                "JSON [MatchSummary]",
                "match list read (miss)",
                "new match, send, mark read, a reply (its affection)",
            ),
            Family::Character => s(
                "characters",
                "character:{id}, characters",
                secs(30 * 60),
                "JSON Character",
                "catalogue read (miss), also held in process",
                "catalogue upsert (pub/sub to every replica)",
            ),
            Family::PhotoPage => s(
                "photos",
                "photos:{user}:{character}",
                secs(5 * 60),
                "JSON first gallery page",
                "gallery read (miss, and in the background in its last quarter)",
                "new photo",
            ),
            Family::Typing => s(
                "typing",
                "typing:{user}:{character}",
                secs(10),
                "who is typing",
                "typing indicator",
                "expiry",
            ),
            Family::Unread => s(
                "unread",
                "unread:{user}:{character}",
                secs(30),
                "integer",
                "unread read (miss, from the partial index); +1 when the character writes",
                "mark read (reset to 0)",
            ),
            Family::Leaderboard => s(
                "leaderboard",
                "leaderboard:xp",
                None,
                "sorted set user → XP",
                "rebuilt from PostgreSQL when missing; every XP change",
                "never (kept exact)",
            ),
            Family::Session => s(
                "sessions",
                "session:{id}",
                secs(15 * 60),
                "session state",
                "auth service",
                "logout",
            ),
            Family::RateLimit => s(
                "rate_limits",
                "ratelimit:{scope}:{id}:{window}",
                secs(60),
                "integer counter",
                "gateway",
                "expiry",
            ),
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The default lifetime (the guide's): what [`Ttls::default`] holds. A running cache uses
    /// its own [`Ttls`] (`Cache::ttl`), which configuration may change.
    pub fn ttl(self) -> Option<Duration> {
        self.spec().ttl
    }

    /// Whether operators may change its lifetime: the data families. The leaderboard is kept
    /// exact with no lifetime; the rate-limit counters live as long as their window; no
    /// session key is written today.
    pub fn ttl_configurable(self) -> bool {
        self.ttl().is_some() && !matches!(self, Family::RateLimit | Family::Session)
    }

    /// The longest lifetime accepted: a conversation window or a match list is guarded by a
    /// version key that lives an hour, and must not outlive it; an hour is plenty elsewhere
    /// too, but a day is allowed for the catalogue and profiles, which change rarely.
    pub fn max_ttl(self) -> Duration {
        match self {
            Family::Character | Family::UserProfile => Duration::from_secs(24 * 3600),
            _ => Duration::from_secs(3600),
        }
    }
}

/// The lifetimes a cache gives each family, and the in-process catalogue's: the guide's values
/// unless configuration says otherwise (`CACHE_TTL_<FAMILY>_S`, read once at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    families: [Option<Duration>; Family::ALL.len()],
    /// The in-process copy of the catalogue (in front of Redis): the bound on how stale a
    /// replica's catalogue is if a change's message was missed.
    pub local_catalogue: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            families: Family::ALL.map(Family::ttl),
            local_catalogue: Duration::from_secs(60),
        }
    }
}

impl Ttls {
    pub fn get(&self, family: Family) -> Option<Duration> {
        self.families[family.index()]
    }

    /// Sets a configurable family's lifetime; refuses zero, past [`Family::max_ttl`], or a
    /// family whose lifetime is not a setting.
    pub fn set(&mut self, family: Family, ttl: Duration) -> Result<(), String> {
        if !family.ttl_configurable() {
            return Err(format!(
                "{}: its lifetime is not configurable",
                family.name()
            ));
        }
        if ttl.is_zero() || ttl > family.max_ttl() {
            return Err(format!(
                "{}: between 1 and {} seconds",
                family.name(),
                family.max_ttl().as_secs()
            ));
        }
        self.families[family.index()] = Some(ttl);
        Ok(())
    }
}

impl Family {
    /// The family a key of `keys` belongs to (its lock and version keys included).
    pub fn of_key(keys: &Keyspace, key: &str) -> Option<Family> {
        let rest = key.strip_prefix(keys.prefix())?.strip_prefix(':')?;
        let family = match rest.split(':').next()? {
            "user" => Family::UserProfile,
            "chat" => Family::Conversation,
            "matches" => Family::MatchList,
            "character" | "characters" | "invalidate" => Family::Character,
            "photos" => Family::PhotoPage,
            "typing" => Family::Typing,
            "unread" => Family::Unread,
            "leaderboard" => Family::Leaderboard,
            "session" => Family::Session,
            "ratelimit" => Family::RateLimit,
            _ => return None,
        };
        Some(family)
    }

    pub(crate) fn index(self) -> usize {
        Family::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// Builds keys under one prefix.
#[derive(Debug, Clone)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn k(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}:{rest}", self.prefix)
    }

    pub fn user_profile(&self, user: Uuid) -> String {
        self.k(format_args!("user:profile:{user}"))
    }
    pub fn conversation(&self, user: Uuid, character: &str) -> String {
        self.k(format_args!("chat:recent:{user}:{character}"))
    }
    /// Bumped by every change to a conversation, so a window loaded before the change is not stored.
    pub fn conversation_version(&self, user: Uuid, character: &str) -> String {
        self.k(format_args!("chat:ver:{user}:{character}"))
    }
    /// Every conversation window of a user, for `SCAN`-based invalidation.
    pub fn conversations_of(&self, user: Uuid) -> String {
        self.k(format_args!("chat:recent:{user}:*"))
    }
    pub fn match_list(&self, user: Uuid) -> String {
        self.k(format_args!("matches:{user}"))
    }
    /// Bumped by every change to a user's match list (see `conversation_version`).
    pub fn match_list_version(&self, user: Uuid) -> String {
        self.k(format_args!("matches:ver:{user}"))
    }
    pub fn character(&self, id: &str) -> String {
        self.k(format_args!("character:{id}"))
    }
    pub fn character_list(&self) -> String {
        self.k(format_args!("characters"))
    }
    pub fn photo_page(&self, user: Uuid, character: &str) -> String {
        self.k(format_args!("photos:{user}:{character}"))
    }
    /// Bumped by every change to a gallery's first page (see `conversation_version`).
    pub fn photo_page_version(&self, user: Uuid, character: &str) -> String {
        self.k(format_args!("photos:ver:{user}:{character}"))
    }
    pub fn typing(&self, user: Uuid, character: &str) -> String {
        self.k(format_args!("typing:{user}:{character}"))
    }
    pub fn unread(&self, user: Uuid, character: &str) -> String {
        self.k(format_args!("unread:{user}:{character}"))
    }
    pub fn leaderboard(&self) -> String {
        self.k(format_args!("leaderboard:xp"))
    }
    pub fn session(&self, id: &str) -> String {
        self.k(format_args!("session:{id}"))
    }
    pub fn rate_limit(&self, scope: &str, id: &str, window: u64) -> String {
        self.k(format_args!("ratelimit:{scope}:{id}:{window}"))
    }
    /// The pub/sub channel that announces revoked session families.
    pub fn revocation_channel(&self) -> String {
        self.k(format_args!("revocations"))
    }
    /// The pub/sub channel that tells every replica to drop in-process copies.
    pub fn invalidation_channel(&self) -> String {
        self.k(format_args!("invalidate"))
    }
    /// The version key bumped with `key` (a window, a gallery page or a match list), if it
    /// has one.
    pub fn version_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(self.prefix())?.strip_prefix(':')?;
        if let Some(conversation) = rest.strip_prefix("chat:recent:") {
            return Some(self.k(format_args!("chat:ver:{conversation}")));
        }
        if let Some(gallery) = rest.strip_prefix("photos:") {
            return (!gallery.starts_with("ver:"))
                .then(|| self.k(format_args!("photos:ver:{gallery}")));
        }
        let user = rest.strip_prefix("matches:")?;
        (!user.contains(':')).then(|| self.k(format_args!("matches:ver:{user}")))
    }

    /// The cross-process load guard of a key.
    pub fn lock(&self, key: &str) -> String {
        format!("{key}:lock")
    }
    /// Every key of this keyspace, for `SCAN`.
    pub fn everything(&self) -> String {
        self.k(format_args!("*"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_galleries_and_match_lists_name_their_version_keys() {
        let k = Keyspace::new("t");
        let u = Uuid::nil();
        assert_eq!(
            k.version_of(&k.conversation(u, "sophia")),
            Some(k.conversation_version(u, "sophia"))
        );
        assert_eq!(
            k.version_of(&k.match_list(u)),
            Some(k.match_list_version(u))
        );
        assert_eq!(
            k.version_of(&k.photo_page(u, "sophia")),
            Some(k.photo_page_version(u, "sophia"))
        );
        assert_eq!(k.version_of(&k.photo_page_version(u, "sophia")), None);
        assert_eq!(k.version_of(&k.match_list_version(u)), None);
        assert_eq!(k.version_of(&k.unread(u, "sophia")), None);
        assert_eq!(k.version_of("other:chat:recent:x"), None);
    }

    #[test]
    fn the_default_ttls() {
        assert_eq!(Family::UserProfile.ttl(), secs(900));
        assert_eq!(Family::Conversation.ttl(), secs(300));
        assert_eq!(Family::Character.ttl(), secs(1800));
        assert_eq!(Family::Typing.ttl(), secs(10));
        assert_eq!(Family::Unread.ttl(), secs(30));
        let names: std::collections::HashSet<_> = Family::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), Family::ALL.len());
        assert!(Family::ALL.iter().enumerate().all(|(i, f)| f.index() == i));
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let k = Keyspace::new("t1");
        let u = Uuid::nil();
        assert_eq!(
            k.conversation(u, "sophia"),
            format!("t1:chat:recent:{u}:sophia")
        );
        assert_eq!(
            k.lock(&k.user_profile(u)),
            format!("t1:user:profile:{u}:lock")
        );
        assert!(k.conversations_of(u).starts_with("t1:chat:recent:"));
        assert_eq!(
            Family::of_key(&k, &k.conversation(u, "x")),
            Some(Family::Conversation)
        );
        assert_eq!(
            Family::of_key(&k, &k.lock(&k.user_profile(u))),
            Some(Family::UserProfile)
        );
        assert_eq!(
            Family::of_key(&k, &k.rate_limit("ip", "1", 2)),
            Some(Family::RateLimit)
        );
        assert_eq!(Family::of_key(&k, "other:chat:history"), None);
    }
}
