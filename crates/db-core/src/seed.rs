//! A deterministic synthetic dataset, generated inside PostgreSQL (`INSERT ... SELECT` over
//! `generate_series`), so that millions of rows cost seconds and the same settings always give
//! the same rows. Used by `dreamctl seed`, the benchmarks and the EXPLAIN tests.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::{StreamExt, TryStreamExt};

use crate::models::{Character, NewMessage, NewUser, SecretString, Sender};
use crate::queries::{characters, matches, messages, users};

/// The demo catalogue shipped in `data/characters.json`.
pub const DEMO_CHARACTERS_JSON: &str = include_str!("../../../data/characters.json");

/// Parses the demo catalogue.
pub fn demo_characters() -> Result<Vec<Character>, serde_json::Error> {
    serde_json::from_str(DEMO_CHARACTERS_JSON)
}

/// The password every seeded and demo user shares (documented in the README).
pub const DEMO_PASSWORD: &str = "dream-demo-2026";
/// The demo account `seed --demo` creates.
pub const DEMO_EMAIL: &str = "demo@example.com";

#[derive(Debug, Clone)]
pub struct SeedConfig {
    pub users: i64,
    pub characters: i64,
    pub matches_per_user: i64,
    pub messages_per_match: i64,
    /// The last this-many messages of each conversation are unread if the character sent them.
    pub unread_tail: i64,
    pub photos_per_match: i64,
    pub memories_per_match: i64,
    /// Users generated per statement; the unit of progress and of parallel work.
    pub users_per_chunk: i64,
    /// Connections inserting at once.
    pub parallelism: usize,
    /// The newest message is this old, so two runs produce identical rows.
    pub anchor: DateTime<Utc>,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            users: 2_000,
            characters: 50,
            matches_per_user: 10,
            messages_per_match: 100,
            unread_tail: 4,
            photos_per_match: 10,
            memories_per_match: 3,
            users_per_chunk: 50,
            parallelism: 2,
            anchor: DateTime::from_timestamp(1_764_201_600, 0).unwrap_or_default(), // 2025-11-27T00:00:00Z
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedCounts {
    pub users: i64,
    pub characters: i64,
    pub matches: i64,
    pub messages: i64,
    pub unread: i64,
    pub photos: i64,
    pub memories: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the database already holds {0} users; pass --reset to replace them")]
    NotEmpty(i64),
    #[error("invalid seed settings: {0}")]
    Invalid(String),
    #[error("cannot connect: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Pool(#[from] crate::pool::DbError),
    #[error("bad demo catalogue: {0}")]
    Catalogue(#[from] serde_json::Error),
}

/// Where a seed run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Emptying the tables (a reset), the demo account set aside.
    Emptying,
    /// The character catalogue.
    Characters,
    /// The users' rows.
    Users,
    /// `done` of `total` users have all their matches, messages, photos and memories.
    Conversations { done: i64, total: i64 },
    /// Search indexes merged, statistics gathered.
    Indexes,
}

/// Told of each step as it starts (and of each chunk of conversations).
pub type Progress<'a> = &'a (dyn Fn(Step) + Sync);

/// What a seed run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    pub counts: SeedCounts,
    pub took: Duration,
    /// The demo account was there before and is there after (same id, same password; matched
    /// again with the first character, as `seed --demo` leaves it).
    pub demo_kept: bool,
    /// Session families of the accounts the reset removed, now revoked: their access tokens
    /// are refused from the next poll on (tell the services at once with
    /// `Cache::publish_revocations`).
    pub revoked: Vec<uuid::Uuid>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> QueryResult<i64> {
    Ok(diesel::sql_query(sql).get_result::<CountRow>(conn).await?.n)
}

/// What the tables hold now.
pub async fn counts(conn: &mut AsyncPgConnection) -> QueryResult<SeedCounts> {
    Ok(SeedCounts {
        users: count(conn, "SELECT count(*) AS n FROM users").await?,
        characters: count(conn, "SELECT count(*) AS n FROM characters").await?,
        matches: count(conn, "SELECT count(*) AS n FROM matches").await?,
        messages: count(conn, "SELECT count(*) AS n FROM chat_messages").await?,
        unread: count(
            conn,
            "SELECT count(*) AS n FROM chat_messages WHERE NOT is_read",
        )
        .await?,
        photos: count(conn, "SELECT count(*) AS n FROM received_photos").await?,
        memories: count(conn, "SELECT count(*) AS n FROM memories").await?,
    })
}

async fn session(url: &str) -> Result<AsyncPgConnection, SeedError> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    // Synthetic data: losing the last commits in a crash costs a re-run, nothing more.
    conn.batch_execute(
        "SET statement_timeout = 0; SET synchronous_commit = off; SET application_name = 'dreamctl-seed'",
    )
    .await?;
    Ok(conn)
}

/// What `seed --demo` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    pub characters: usize,
    pub user_created: bool,
}

/// Loads (or refreshes) the demo catalogue and makes sure the demo account exists, matched
/// with the first demo character, whose greeting opens the conversation. Safe to run again.
/// Loads (or updates) the demo catalogue alone; returns how many characters.
pub async fn load_catalogue(conn: &mut AsyncPgConnection) -> Result<usize, SeedError> {
    Ok(characters::upsert(conn, &demo_characters()?).await?)
}

pub async fn load_demo(
    conn: &mut AsyncPgConnection,
    password_hash: &SecretString,
) -> Result<DemoReport, SeedError> {
    let demo = demo_characters()?;
    conn.transaction(async |conn| {
        characters::upsert(conn, &demo).await?;
        let created = match users::find_by_email(conn, DEMO_EMAIL).await? {
            Some(_) => false,
            None => {
                let new = NewUser {
                    email: DEMO_EMAIL.to_owned(),
                    password_hash: password_hash.clone(),
                    display_name: "Demo".to_owned(),
                };
                let user = users::create(conn, &new).await.map_err(|e| match e {
                    users::CreateUserError::Db(e) => SeedError::Pool(e),
                    users::CreateUserError::EmailTaken => {
                        SeedError::Invalid("demo user raced".into())
                    }
                })?;
                match_demo(conn, user.id).await?;
                true
            }
        };
        Ok(DemoReport {
            characters: demo.len(),
            user_created: created,
        })
    })
    .await
}

/// The demo account's first match: the first demo character, whose greeting opens the
/// conversation.
async fn match_demo(conn: &mut AsyncPgConnection, user: uuid::Uuid) -> Result<(), SeedError> {
    let first = demo_characters()?
        .into_iter()
        .next()
        .ok_or_else(|| SeedError::Invalid("empty demo catalogue".into()))?;
    let (_, new_match) = matches::create(conn, user, &first.id)
        .await
        .map_err(|e| match e {
            matches::MatchError::Db(e) => SeedError::Pool(e),
            matches::MatchError::UnknownCharacter => {
                SeedError::Invalid("demo character missing".into())
            }
        })?;
    if new_match {
        let greeting = NewMessage::new(user, first.id, Sender::Character, first.greeting);
        messages::insert_many(conn, &[greeting]).await?;
    }
    Ok(())
}

/// Fills an empty database (or, with `reset`, a non-empty one) with the synthetic dataset. A
/// database holding only what `seed --demo` loads (the catalogue, the demo account) counts as
/// empty. The demo account survives either way, with its id and password.
pub async fn seed(
    url: &str,
    cfg: &SeedConfig,
    password_hash: &SecretString,
    reset: bool,
    progress: Progress<'_>,
) -> Result<Seeded, SeedError> {
    let started = Instant::now();
    if cfg.matches_per_user > cfg.characters {
        return Err(SeedError::Invalid(
            "matches per user exceed the characters".into(),
        ));
    }
    if cfg.users < 1 || cfg.users_per_chunk < 1 || cfg.parallelism < 1 || cfg.characters < 1 {
        return Err(SeedError::Invalid("counts must be positive".into()));
    }
    let mut conn = session(url).await?;
    let demo_account = users::find_by_email(&mut conn, DEMO_EMAIL).await?;
    let existing = count(&mut conn, "SELECT count(*) AS n FROM users").await?
        - i64::from(demo_account.is_some());
    if existing > 0 && !reset {
        return Err(SeedError::NotEmpty(existing));
    }
    progress(Step::Emptying);
    // The sessions of the accounts about to go are revoked first: their access tokens must not
    // keep reading (from a cache, or as a new user with the same id) after the reset.
    let revoked: Vec<uuid::Uuid> = diesel::sql_query(
        "INSERT INTO session_revocations (family_id, user_id)          SELECT DISTINCT ON (family_id) family_id, user_id FROM refresh_sessions          WHERE user_id IS DISTINCT FROM $1          ON CONFLICT (family_id) DO NOTHING RETURNING family_id",
    )
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(demo_account.as_ref().map(|u| u.id))
    .load::<Family>(&mut conn)
    .await?
    .into_iter()
    .map(|f| f.family_id)
    .collect();
    // CASCADE empties every table that refers to users or characters, new ones included.
    conn.batch_execute("TRUNCATE users, characters, affection_flushes RESTART IDENTITY CASCADE")
        .await?;

    progress(Step::Characters);
    // Characters: the demo catalogue first, then generated ones up to the count.
    let demo = demo_characters()?;
    let demo: Vec<Character> = demo.into_iter().take(cfg.characters as usize).collect();
    characters::upsert(&mut conn, &demo).await?;
    diesel::sql_query(
        "INSERT INTO characters (id, name, tagline, persona, greeting, tags) \
         SELECT 'persona-' || lpad(g::text, 3, '0'), \
                (ARRAY['Léa','Hugo','Chloé','Louis','Manon','Jules','Inès','Arthur','Jade','Nathan'])[1 + g % 10] || ' ' || g, \
                'Un personnage généré pour les tests de charge', \
                'Tu es un personnage chaleureux et curieux, qui parle français avec naturel.', \
                'Salut ! Ravi de faire ta connaissance.', \
                ARRAY['généré'] \
         FROM generate_series($1::int + 1, $2::int) g",
    )
    .bind::<Integer, _>(demo.len() as i32)
    .bind::<Integer, _>(cfg.characters as i32)
    .execute(&mut conn)
    .await?;

    progress(Step::Users);
    if let Some(user) = &demo_account {
        // Back with its id, password and name; its conversations start again.
        diesel::sql_query(
            "INSERT INTO users (id, email, password_hash, display_name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind::<diesel::sql_types::Uuid, _>(user.id)
        .bind::<Text, _>(&user.email)
        .bind::<Text, _>(&user.password_hash)
        .bind::<Text, _>(&user.display_name)
        .bind::<Timestamptz, _>(user.created_at)
        .execute(&mut conn)
        .await?;
        match_demo(&mut conn, user.id).await?;
    }
    diesel::sql_query(
        "INSERT INTO users (id, email, password_hash, display_name, xp, created_at, updated_at) \
         SELECT md5('dream-user-' || n)::uuid, 'user' || n || '@example.com', $2, \
                (ARRAY['Camille','Lucas','Emma','Gabriel','Alice','Raphaël','Louise','Adam','Rose','Noah', \
                       'Anna','Léo','Zoé','Paul','Mila','Tom'])[1 + n % 16] || ' ' || n, \
                (n * 7919) % 25000, $3 - make_interval(days => 30 + (n % 300)::int), $3 \
         FROM generate_series(1, $1) n",
    )
    .bind::<BigInt, _>(cfg.users)
    .bind::<Text, _>(password_hash)
    .bind::<Timestamptz, _>(cfg.anchor)
    .execute(&mut conn)
    .await?;
    drop(conn);

    let chunks: Vec<(i64, i64)> = (0..(cfg.users + cfg.users_per_chunk - 1) / cfg.users_per_chunk)
        .map(|i| {
            (
                1 + i * cfg.users_per_chunk,
                ((i + 1) * cfg.users_per_chunk).min(cfg.users),
            )
        })
        .collect();
    let mut workers = Vec::with_capacity(cfg.parallelism);
    for _ in 0..cfg.parallelism.min(chunks.len()) {
        workers.push(Worker::new(url, cfg).await?);
    }
    let done = std::sync::atomic::AtomicI64::new(0);
    progress(Step::Conversations {
        done: 0,
        total: cfg.users,
    });
    // Each worker takes the next chunk as soon as it is free.
    let queue = tokio::sync::Mutex::new(chunks.into_iter());
    futures_util::stream::iter(workers)
        .map(|mut w| {
            let queue = &queue;
            let done = &done;
            async move {
                loop {
                    let next = queue.lock().await.next();
                    let Some((first, last)) = next else { break };
                    w.chunk(first, last).await?;
                    let n = done.fetch_add(last - first + 1, std::sync::atomic::Ordering::Relaxed)
                        + last
                        - first
                        + 1;
                    progress(Step::Conversations {
                        done: n,
                        total: cfg.users,
                    });
                }
                Ok::<_, SeedError>(())
            }
        })
        .buffer_unordered(cfg.parallelism)
        .try_collect::<Vec<()>>()
        .await?;

    progress(Step::Indexes);
    let mut conn = session(url).await?;
    // Merge what the GIN indexes queued in their pending lists (autovacuum would, later):
    // until then every search also scans the list, ~10x slower.
    crate::maintenance::merge_pending_lists(&mut conn).await?;
    conn.batch_execute("ANALYZE").await?;
    let counts = counts(&mut conn).await?;
    Ok(Seeded {
        counts,
        took: started.elapsed(),
        demo_kept: demo_account.is_some(),
        revoked,
    })
}

#[derive(QueryableByName)]
struct Family {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    family_id: uuid::Uuid,
}

/// One connection with its own copy of the word tables.
struct Worker {
    conn: AsyncPgConnection,
    cfg: SeedConfig,
    stride: i64,
}

/// French words the synthetic conversations are made of.
const WORDS: &[&str] = &[
    "bonjour",
    "bonsoir",
    "merci",
    "toujours",
    "jamais",
    "souvent",
    "demain",
    "hier",
    "aujourd'hui",
    "ce soir",
    "je",
    "tu",
    "nous",
    "vous",
    "elle",
    "il",
    "on",
    "mon",
    "ton",
    "notre",
    "votre",
    "le",
    "la",
    "les",
    "un",
    "une",
    "des",
    "du",
    "au",
    "avec",
    "sans",
    "pour",
    "dans",
    "sur",
    "sous",
    "chez",
    "vers",
    "mais",
    "donc",
    "car",
    "et",
    "ou",
    "si",
    "quand",
    "comme",
    "très",
    "trop",
    "peu",
    "beaucoup",
    "vraiment",
    "peut-être",
    "aime",
    "adore",
    "pense",
    "rêve",
    "voudrais",
    "cherche",
    "trouve",
    "raconte",
    "écoute",
    "regarde",
    "marche",
    "danse",
    "chante",
    "cuisine",
    "voyage",
    "lis",
    "écris",
    "souris",
    "ris",
    "attends",
    "imagine",
    "découvre",
    "retrouve",
    "souviens",
    "musique",
    "plage",
    "montagne",
    "forêt",
    "mer",
    "soleil",
    "lune",
    "étoiles",
    "pluie",
    "neige",
    "vent",
    "ville",
    "village",
    "café",
    "thé",
    "chocolat",
    "croissant",
    "fromage",
    "vin",
    "restaurant",
    "marché",
    "jardin",
    "fleurs",
    "livre",
    "film",
    "chanson",
    "concert",
    "musée",
    "tableau",
    "photo",
    "voyage",
    "train",
    "vélo",
    "bateau",
    "avion",
    "Paris",
    "Lyon",
    "Marseille",
    "Bordeaux",
    "Nice",
    "Bretagne",
    "Provence",
    "Normandie",
    "Alpes",
    "Montréal",
    "chat",
    "chien",
    "oiseau",
    "cheval",
    "ami",
    "amie",
    "famille",
    "frère",
    "sœur",
    "enfance",
    "souvenir",
    "week-end",
    "vacances",
    "soirée",
    "matin",
    "nuit",
    "printemps",
    "été",
    "automne",
    "hiver",
    "anniversaire",
    "doux",
    "belle",
    "beau",
    "heureux",
    "heureuse",
    "triste",
    "fatigué",
    "curieux",
    "calme",
    "drôle",
    "tendre",
    "magnifique",
    "incroyable",
    "simple",
    "secret",
    "nouveau",
    "ancien",
    "petit",
    "grand",
    "chaud",
    "froid",
    "cœur",
    "sourire",
    "regard",
    "voix",
    "silence",
    "histoire",
    "idée",
    "envie",
    "rendez-vous",
    "promenade",
    "randonnée",
    "piscine",
    "guitare",
    "piano",
    "peinture",
    "poésie",
    "roman",
    "jeu",
    "série",
    "recette",
];

impl Worker {
    async fn new(url: &str, cfg: &SeedConfig) -> Result<Self, SeedError> {
        let mut conn = session(url).await?;
        conn.batch_execute(
            "CREATE TEMP TABLE seed_chars ON COMMIT PRESERVE ROWS AS \
             SELECT id, (row_number() OVER (ORDER BY id) - 1)::int AS ord FROM characters; \
             CREATE UNIQUE INDEX ON seed_chars (ord); \
             CREATE TEMP TABLE seed_sentences (idx int PRIMARY KEY, text text NOT NULL)",
        )
        .await?;
        // 1,000 sentences of 5 to 14 words; messages pair two of them.
        diesel::sql_query(
            "INSERT INTO seed_sentences \
             SELECT s, upper(left(t, 1)) || substr(t, 2) || (ARRAY['.', ' !', ' ?', '...', '.'])[1 + s % 5] \
             FROM (SELECT s, array_to_string(ARRAY( \
                       SELECT ($1::text[])[1 + ((s * 7919 + j * 104729 + j * j * 31) % cardinality($1::text[]))] \
                       FROM generate_series(1, 5 + s % 10) j ORDER BY j), ' ') AS t \
                   FROM generate_series(0, 999) s) x",
        )
        .bind::<Array<Text>, _>(WORDS)
        .execute(&mut conn)
        .await?;
        conn.batch_execute("ANALYZE seed_chars; ANALYZE seed_sentences")
            .await?;
        // A stride coprime with the character count gives each user distinct characters.
        let stride = (7..).find(|s| gcd(*s, cfg.characters) == 1).unwrap_or(1);
        Ok(Self {
            conn,
            cfg: cfg.clone(),
            stride,
        })
    }

    /// Matches, messages, photos and memories of users `first..=last`, in one transaction.
    async fn chunk(&mut self, first: i64, last: i64) -> Result<(), SeedError> {
        let cfg = self.cfg.clone();
        let stride = self.stride;
        // Shared by every statement: user n, their k-th match, its character, the time of its
        // last message (conversations end at staggered times before the anchor).
        let matches_cte = "WITH um AS ( \
                SELECT n, k, md5('dream-user-' || n)::uuid AS user_id, c.id AS character_id, \
                       $3::timestamptz - make_interval(mins => ((n * 37 + k * 211) % 43200)::int) AS last_at \
                FROM generate_series($1::bigint, $2::bigint) n \
                CROSS JOIN generate_series(0, $4::bigint - 1) k \
                JOIN seed_chars c ON c.ord = (n * 3 + k * $5::bigint) % $6::bigint)";
        self.conn
            .transaction::<(), SeedError, _>(async |conn| {
                let bind = |sql: String| {
                    diesel::sql_query(sql)
                        .into_boxed()
                        .bind::<BigInt, _>(first)
                        .bind::<BigInt, _>(last)
                        .bind::<Timestamptz, _>(cfg.anchor)
                        .bind::<BigInt, _>(cfg.matches_per_user)
                        .bind::<BigInt, _>(stride)
                        .bind::<BigInt, _>(cfg.characters)
                };
                bind(format!(
                    "{matches_cte} INSERT INTO matches (user_id, character_id, affection, created_at) \
                     SELECT user_id, character_id, (n * 13 + k * 7) % 100, last_at - interval '60 days' FROM um"
                ))
                .execute(conn)
                .await?;
                bind(format!(
                    "{matches_cte} INSERT INTO chat_messages (user_id, character_id, sender, content, is_read, created_at) \
                     SELECT um.user_id, um.character_id, \
                            CASE WHEN i % 2 = 0 THEN 'user' ELSE 'character' END::message_sender, \
                            CASE WHEN i % 3 = 0 THEN s1.text || ' ' || s2.text ELSE s1.text END, \
                            i % 2 = 0 OR i < $7 - $8, \
                            um.last_at - make_interval(mins => ($7 - 1 - i)::int * 3) \
                     FROM um CROSS JOIN generate_series(0, $7 - 1) i \
                     JOIN seed_sentences s1 ON s1.idx = (um.n * 131 + um.k * 31 + i * 17) % 1000 \
                     JOIN seed_sentences s2 ON s2.idx = (um.n * 37 + um.k * 101 + i * 53 + 500) % 1000"
                ))
                .bind::<BigInt, _>(cfg.messages_per_match)
                .bind::<BigInt, _>(cfg.unread_tail)
                .execute(conn)
                .await?;
                bind(format!(
                    // Every photo came from a finished job, as in a live system.
                    "{matches_cte}, photo AS ( \
                     INSERT INTO received_photos (user_id, character_id, storage_key, content_type, width, height, prompt, received_at) \
                     SELECT um.user_id, um.character_id, \
                            'seed/' || um.user_id || '/' || um.character_id || '/' || p || '.png', 'image/png', 512, 512, \
                            s.text, um.last_at - make_interval(hours => (p * 5)::int) \
                     FROM um CROSS JOIN generate_series(0, $7 - 1) p \
                     JOIN seed_sentences s ON s.idx = (um.n * 7 + um.k * 11 + p * 13) % 1000 \
                     RETURNING id, user_id, character_id, prompt, received_at) \
                     INSERT INTO photo_jobs (id, user_id, character_id, prompt, status, attempts, photo_id, run_after, created_at, finished_at) \
                     SELECT md5('dream-photo-job-' || id)::uuid, user_id, character_id, left(prompt, 500), 'done', 1, id, \
                            received_at - interval '2 seconds', received_at - interval '2 seconds', received_at FROM photo"
                ))
                .bind::<BigInt, _>(cfg.photos_per_match)
                .execute(conn)
                .await?;
                bind(format!(
                    "{matches_cte} INSERT INTO memories (user_id, character_id, content, created_at, updated_at) \
                     SELECT um.user_id, um.character_id, s.text, \
                            um.last_at - make_interval(hours => (r * 30)::int), um.last_at - make_interval(hours => (r * 30)::int) \
                     FROM um CROSS JOIN generate_series(0, $7 - 1) r \
                     JOIN seed_sentences s ON s.idx = (um.n * 19 + um.k * 3 + r * 29 + 250) % 1000"
                ))
                .bind::<BigInt, _>(cfg.memories_per_match)
                .execute(conn)
                .await?;
                Ok(())
            })
            .await
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
