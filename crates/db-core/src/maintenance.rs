//! Routine upkeep: `VACUUM (ANALYZE)` of every table, the pruning of what has outlived its use,
//! and a health report of tables and indexes (unused, duplicate or overlapping indexes, sizes, dead tuples).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct TableReport {
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = BigInt)]
    pub live_rows: i64,
    #[diesel(sql_type = BigInt)]
    pub dead_rows: i64,
    /// Dead / (live + dead).
    #[diesel(sql_type = Double)]
    pub dead_ratio: f64,
    #[diesel(sql_type = BigInt)]
    pub table_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub index_bytes: i64,
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct IndexReport {
    #[diesel(sql_type = Text)]
    pub index: String,
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = BigInt)]
    pub scans: i64,
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
    /// Backs a primary key or unique constraint: needed whether or not it is scanned.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub enforces_constraint: bool,
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct Overlap {
    /// This index's key columns are a prefix of `covered_by`'s (same method, same predicate).
    #[diesel(sql_type = Text)]
    pub index: String,
    #[diesel(sql_type = Text)]
    pub covered_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tables: Vec<TableReport>,
    pub indexes: Vec<IndexReport>,
    pub overlapping: Vec<Overlap>,
}

impl Report {
    /// Indexes never scanned since the statistics were reset, constraints aside.
    pub fn unused(&self) -> impl Iterator<Item = &IndexReport> {
        self.indexes
            .iter()
            .filter(|i| i.scans == 0 && !i.enforces_constraint)
    }
}

pub async fn report(conn: &mut AsyncPgConnection) -> QueryResult<Report> {
    let tables = diesel::sql_query(
        "SELECT relname::text AS table, n_live_tup AS live_rows, n_dead_tup AS dead_rows, \
                CASE WHEN n_live_tup + n_dead_tup = 0 THEN 0 ELSE n_dead_tup::float8 / (n_live_tup + n_dead_tup) END AS dead_ratio, \
                pg_table_size(relid) AS table_bytes, pg_indexes_size(relid) AS index_bytes \
         FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY pg_total_relation_size(relid) DESC",
    )
    .load(conn)
    .await?;
    let indexes = diesel::sql_query(
        "SELECT s.indexrelname::text AS index, s.relname::text AS table, s.idx_scan AS scans, \
                pg_relation_size(s.indexrelid) AS bytes, (i.indisunique OR i.indisprimary) AS enforces_constraint \
         FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid \
         WHERE s.schemaname = 'public' ORDER BY pg_relation_size(s.indexrelid) DESC",
    )
    .load(conn)
    .await?;
    let overlapping = diesel::sql_query(
        "SELECT a.indexrelid::regclass::text AS index, b.indexrelid::regclass::text AS covered_by \
         FROM pg_index a JOIN pg_index b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid \
         JOIN pg_class ca ON ca.oid = a.indexrelid JOIN pg_class cb ON cb.oid = b.indexrelid \
         WHERE ca.relam = cb.relam AND ca.relnamespace = 'public'::regnamespace \
           AND coalesce(pg_get_expr(a.indpred, a.indrelid), '') = coalesce(pg_get_expr(b.indpred, b.indrelid), '') \
           AND (a.indkey::int2[])[0:a.indnkeyatts - 1] = (b.indkey::int2[])[0:a.indnkeyatts - 1] \
           AND a.indnkeyatts <= b.indnkeyatts AND NOT (a.indnkeyatts = b.indnkeyatts AND a.indexrelid > b.indexrelid) \
           AND NOT (a.indisunique AND NOT b.indisunique)",
    )
    .load(conn)
    .await?;
    Ok(Report {
        tables,
        indexes,
        overlapping,
    })
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    table: String,
}

#[derive(QueryableByName)]
struct Pages {
    #[diesel(sql_type = BigInt)]
    pages: i64,
}

/// Merges what the GIN indexes (the message and memory searches) queued in their pending
/// lists into the indexes; the pages merged. An insert only appends to a pending list, and
/// the insert that finds the list past `gin_pending_list_limit` (4 MB) merges all of it while
/// its caller waits: 256–321 ms on the benchmark's data, one send in some 50,000. Merged
/// often, in the background, the lists stay short and no send pays (searches, which also scan
/// the lists, are faster too). Needs the index owner's rights, as the migrations' user has.
pub async fn merge_pending_lists(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    diesel::sql_query(
        "SELECT COALESCE(sum(gin_clean_pending_list(i.indexrelid)), 0)::bigint AS pages \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam \
         WHERE am.amname = 'gin' AND c.relnamespace = 'public'::regnamespace",
    )
    .get_result::<Pages>(conn)
    .await
    .map(|p| p.pages)
}

/// The statements [`vacuum`] runs: one `VACUUM (ANALYZE)` per table of the schema, most dead
/// tuples first. Every table the report lists is vacuumed (the small ones take milliseconds):
/// the most bloated tables are the small, busy ones (replies being written, the job queue, the
/// invalidation journal), not the large ones.
pub async fn vacuum_statements(conn: &mut AsyncPgConnection) -> QueryResult<Vec<String>> {
    let tables: Vec<TableName> = diesel::sql_query(
        "SELECT relname::text AS table FROM pg_stat_user_tables WHERE schemaname = 'public' \
         ORDER BY n_dead_tup DESC, relname",
    )
    .load(conn)
    .await?;
    Ok(tables
        .into_iter()
        .map(|t| format!("VACUUM (ANALYZE) {}", quote_ident(&t.table)))
        .collect())
}

/// A table name as SQL: bare when it is a plain lower-case identifier, quoted otherwise.
fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `VACUUM (ANALYZE)` of every table, one at a time (VACUUM cannot run in a transaction).
pub async fn vacuum(
    conn: &mut AsyncPgConnection,
) -> QueryResult<Vec<(String, std::time::Duration)>> {
    let mut done = Vec::new();
    for sql in vacuum_statements(conn).await? {
        let started = std::time::Instant::now();
        conn.batch_execute(&sql).await?;
        done.push((sql, started.elapsed()));
    }
    Ok(done)
}

/// Forgets session revocations older than a day: every access token they could refuse has
/// expired (`ACCESS_TOKEN_TTL_S` is at most an hour). Returns how many went.
pub async fn prune_revocations(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    crate::queries::sessions::prune_revocations(
        conn,
        chrono::Utc::now() - chrono::Duration::days(1),
    )
    .await
}
