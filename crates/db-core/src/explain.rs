//! EXPLAIN for the hot queries: the very statements the services run, built by the same
//! functions, wrapped in `EXPLAIN (ANALYZE, BUFFERS)`. `dreamctl explain` prints the plans;
//! the EXPLAIN tests assert that each one uses its index.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::pagination::Cursor;
use crate::queries::{HotQuery, matches, memories, messages, photo_jobs, photos, users};

/// `EXPLAIN (ANALYZE, BUFFERS)` around any query. ANALYZE runs the statement: writes are
/// explained inside a transaction that is rolled back.
#[derive(Debug)]
pub struct ExplainAnalyze<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for ExplainAnalyze<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("EXPLAIN (ANALYZE, BUFFERS) ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for ExplainAnalyze<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for ExplainAnalyze<Q> {
    type SqlType = Text;
}

/// Tables this big must never be read with a sequential scan by a hot query.
pub const LARGE_TABLE_ROWS: f64 = 10_000.0;

/// Real parameters for the hot queries, taken from the data.
#[derive(Debug, Clone)]
pub struct Sample {
    pub user_id: Uuid,
    pub character_id: String,
    /// A message about halfway down the conversation, for the second page.
    pub before_message: Option<Cursor>,
    pub before_photo: Option<Cursor>,
    pub before_memory: Option<Cursor>,
    /// A word that occurs in the user's messages.
    pub search_term: String,
}

#[derive(QueryableByName)]
struct SampleRow {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Text)]
    character_id: String,
}

#[derive(QueryableByName)]
struct CursorRow {
    #[diesel(sql_type = Timestamptz)]
    at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct WordRow {
    #[diesel(sql_type = Text)]
    word: String,
}

impl Sample {
    /// The busiest conversation of the first seeded user (or of any user), deterministic for
    /// a given dataset. `None` when there is no conversation at all.
    pub async fn from_data(conn: &mut AsyncPgConnection) -> QueryResult<Option<Self>> {
        let row: Option<SampleRow> = diesel::sql_query(
            "SELECT m.user_id, m.character_id FROM matches m JOIN users u ON u.id = m.user_id \
             ORDER BY (u.email = 'user1@example.com') DESC, u.email, m.character_id LIMIT 1",
        )
        .get_result(conn)
        .await
        .optional()?;
        let Some(SampleRow {
            user_id,
            character_id,
        }) = row
        else {
            return Ok(None);
        };
        let middle = |table: &str, at: &str| {
            format!(
                "SELECT {at} AS at, id FROM {table} WHERE user_id = $1 AND character_id = $2 \
                 ORDER BY {at} DESC, id DESC OFFSET (SELECT count(*) / 2 FROM {table} \
                 WHERE user_id = $1 AND character_id = $2) LIMIT 1"
            )
        };
        let mut cursors = Vec::new();
        for (table, at) in [
            ("chat_messages", "created_at"),
            ("received_photos", "received_at"),
            ("memories", "created_at"),
        ] {
            let c: Option<CursorRow> = diesel::sql_query(middle(table, at))
                .bind::<SqlUuid, _>(user_id)
                .bind::<Text, _>(&character_id)
                .get_result(conn)
                .await
                .optional()?;
            cursors.push(c.map(|c| Cursor::new(c.at, c.id)));
        }
        // The longest word of the user's newest message: real, and selective.
        let word: Option<WordRow> = diesel::sql_query(
            "SELECT w AS word FROM (SELECT content FROM chat_messages WHERE user_id = $1 AND character_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1) m, regexp_split_to_table(m.content, '[^[:alpha:]]+') w \
             ORDER BY length(w) DESC, w LIMIT 1",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(&character_id)
        .get_result(conn)
        .await
        .optional()?;
        Ok(Some(Self {
            user_id,
            before_message: cursors[0],
            before_photo: cursors[1],
            before_memory: cursors[2],
            search_term: word.map(|w| w.word).unwrap_or_else(|| "bonjour".to_owned()),
            character_id,
        }))
    }
}

/// One hot query: its name, the index it must use, and whether it writes.
pub struct HotQuerySpec {
    pub name: &'static str,
    pub index: &'static str,
    pub writes: bool,
    pub query: HotQuery,
}

/// Every hot query, with the sample's parameters and the pages the services ask for.
pub fn hot_queries(s: &Sample) -> Vec<HotQuerySpec> {
    let spec = |name, index, writes, query| HotQuerySpec {
        name,
        index,
        writes,
        query,
    };
    let (u, c) = (s.user_id, s.character_id.as_str());
    let mut v = vec![
        spec(
            "messages.latest (100)",
            "chat_messages_conversation_idx",
            false,
            messages::latest_query(u, c, None, 100),
        ),
        spec(
            "matches.list_with_last_message",
            "chat_messages_conversation_idx",
            false,
            matches::list_with_last_message_query(u),
        ),
        spec(
            "messages.unread_count",
            "chat_messages_unread_idx",
            false,
            messages::unread_count_query(u, c),
        ),
        spec(
            "messages.mark_read",
            "chat_messages_unread_idx",
            true,
            messages::mark_read_query(u, c),
        ),
        spec(
            "photos.latest (20)",
            "received_photos_gallery_idx",
            false,
            photos::latest_query(u, c, None, 20),
        ),
        spec(
            "photo_jobs.claim",
            "photo_jobs_queue_idx",
            true,
            photo_jobs::claim_query(std::time::Duration::from_secs(30)),
        ),
        spec(
            "messages.search",
            "chat_messages_search_idx",
            false,
            messages::search_query(u, &s.search_term, None, 20),
        ),
        spec(
            "messages.search (one conversation)",
            "chat_messages_",
            false,
            messages::search_query(u, &s.search_term, Some(c), 20),
        ),
        spec(
            "memories.list (20)",
            "memories_owner_idx",
            false,
            memories::list_query(u, c, None, 20),
        ),
        spec(
            "memories.search",
            "memories_",
            false,
            memories::search_query(u, &s.search_term, None, 20),
        ),
        spec(
            "users.top_by_xp (10)",
            "users_xp_idx",
            false,
            users::top_by_xp_query(10),
        ),
        // A count over users: below ~10k users the planner rightly reads the small table whole.
        spec("users.rank_of", "users", false, users::rank_of_query(u)),
    ];
    if let Some(b) = s.before_message {
        v.insert(
            1,
            spec(
                "messages.latest (100, before)",
                "chat_messages_conversation_idx",
                false,
                messages::latest_query(u, c, Some(b), 100),
            ),
        );
    }
    if let Some(b) = s.before_photo {
        v.push(spec(
            "photos.latest (20, before)",
            "received_photos_gallery_idx",
            false,
            photos::latest_query(u, c, Some(b), 20),
        ));
    }
    if let Some(b) = s.before_memory {
        v.push(spec(
            "memories.list (20, before)",
            "memories_owner_idx",
            false,
            memories::list_query(u, c, Some(b), 20),
        ));
    }
    v
}

/// A plan as EXPLAIN ANALYZE printed it, with what `dreamctl explain` checks.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub name: &'static str,
    pub expected_index: &'static str,
    pub lines: Vec<String>,
    pub execution_ms: f64,
    /// Tables read with a sequential scan that hold more than [`LARGE_TABLE_ROWS`] rows.
    pub large_seq_scans: Vec<String>,
}

impl Plan {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
    pub fn uses_index(&self, prefix: &str) -> bool {
        self.lines.iter().any(|l| l.contains(prefix))
    }
    pub fn is_ok(&self) -> bool {
        self.large_seq_scans.is_empty() && self.uses_index(self.expected_index)
    }
}

#[derive(QueryableByName)]
struct TableRows {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Runs EXPLAIN (ANALYZE, BUFFERS) for one hot query.
pub async fn explain(conn: &mut AsyncPgConnection, spec: HotQuerySpec) -> QueryResult<Plan> {
    let HotQuerySpec {
        name,
        index,
        writes,
        query,
    } = spec;
    let lines: Vec<String> = if writes {
        let mut lines = Vec::new();
        let _ = conn
            .transaction::<(), diesel::result::Error, _>(async |conn| {
                lines = ExplainAnalyze(query).load(conn).await?;
                Err(diesel::result::Error::RollbackTransaction)
            })
            .await;
        lines
    } else {
        ExplainAnalyze(query).load(conn).await?
    };
    let large: Vec<String> = diesel::sql_query(
        "SELECT relname::text AS name FROM pg_class WHERE relkind = 'r' AND reltuples > $1 \
         AND relnamespace = 'public'::regnamespace",
    )
    .bind::<diesel::sql_types::Double, _>(LARGE_TABLE_ROWS)
    .load::<TableRows>(conn)
    .await?
    .into_iter()
    .map(|t| t.name)
    .collect();
    let large_seq_scans = lines
        .iter()
        .filter_map(|l| l.split("Seq Scan on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|table| large.iter().any(|t| t == table))
        .map(str::to_owned)
        .collect();
    let execution_ms = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .and_then(|t| t.trim_end_matches(" ms").parse().ok())
        .unwrap_or(f64::NAN);
    Ok(Plan {
        name,
        expected_index: index,
        lines,
        execution_ms,
        large_seq_scans,
    })
}

/// Explains every hot query on the current data.
pub async fn explain_all(conn: &mut AsyncPgConnection, sample: &Sample) -> QueryResult<Vec<Plan>> {
    let mut plans = Vec::new();
    for spec in hot_queries(sample) {
        plans.push(explain(conn, spec).await?);
    }
    Ok(plans)
}
