//! Every SQL statement the services run. Functions take a connection and return
//! `QueryResult` (or a small error enum), never an HTTP type, so they compose in a transaction.
//!
//! Hot reads are hand-written SQL, each starting with a `/* name */` comment: the name labels
//! its latency histogram, and `crate::explain` runs the very same statement under EXPLAIN.

pub mod account;
pub mod characters;
pub mod generations;
pub mod invalidations;
pub mod matches;
pub mod memories;
pub mod messages;
pub mod nudges;
pub mod photo_jobs;
pub mod photos;
pub mod sessions;
pub mod users;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, BoxedSqlQuery, Query, QueryFragment, QueryId, SqlQuery};
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::pagination::{Cursor, KeysetPage, clamp_limit};

/// A hand-written statement with its bind parameters, ready to run or to EXPLAIN.
pub type HotQuery = BoxedSqlQuery<'static, Pg, SqlQuery>;

/// A hand-written statement kept prepared on its connection, so that PostgreSQL parses and
/// plans it once per connection rather than on every call: diesel prepares raw SQL anew each
/// time, not knowing that its text is one of a few the code writes. Only for statements whose
/// text comes from the code alone (every value bound) and whose plan does not depend on the
/// values, since PostgreSQL may settle on one generic plan: the lookups of one user's rows by
/// an index (not the searches, whose best plan depends on the words).
pub(crate) struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// Cached by its text (and bind types), not by type: the text varies (a cursor or none).
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

/// Escapes text for HTML before `ts_headline` wraps the matches in `<mark>`, so a highlight
/// can be shown as HTML without letting stored content inject markup.
pub(crate) const HEADLINE_OPTIONS: &str =
    "StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=2";

/// A conversation's rows of one table, newest first by `(at, id)`, paged by keyset. Served by
/// the `(user_id, character_id, at DESC, id DESC)` index each such table has.
pub(crate) struct Keyset {
    pub name: &'static str,
    pub table: &'static str,
    pub columns: &'static str,
    pub at: &'static str,
}

impl Keyset {
    /// Rows strictly older than `before` when given; `limit + 1` of them, so that the caller
    /// knows whether a page follows.
    pub fn query(
        &self,
        user_id: Uuid,
        character_id: &str,
        before: Option<Cursor>,
        limit: i64,
    ) -> HotQuery {
        let Keyset {
            name,
            table,
            columns,
            at,
        } = self;
        let base = format!(
            "/* {name} */ SELECT {columns} FROM {table} WHERE user_id = $1 AND character_id = $2"
        );
        let q = |sql: String| {
            diesel::sql_query(sql)
                .into_boxed()
                .bind::<SqlUuid, _>(user_id)
                .bind::<Text, _>(character_id.to_owned())
        };
        match before {
            None => q(format!("{base} ORDER BY {at} DESC, id DESC LIMIT $3"))
                .bind::<BigInt, _>(limit + 1),
            Some(c) => q(format!(
                "{base} AND ({at}, id) < ($3, $4) ORDER BY {at} DESC, id DESC LIMIT $5"
            ))
            .bind::<Timestamptz, _>(c.at)
            .bind::<BigInt, _>(c.id)
            .bind::<BigInt, _>(limit + 1),
        }
    }

    /// One page of at most `limit` (clamped) rows, with the cursor of the next page.
    pub async fn page<T>(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        user_id: Uuid,
        character_id: &str,
        before: Option<Cursor>,
        limit: i64,
        key: fn(&T) -> Cursor,
    ) -> diesel::QueryResult<KeysetPage<T>>
    where
        T: diesel::deserialize::QueryableByName<Pg> + Send + 'static,
    {
        use diesel_async::RunQueryDsl;
        let limit = clamp_limit(limit);
        let rows: Vec<T> = Prepared(self.query(user_id, character_id, before, limit))
            .load(conn)
            .await?;
        Ok(KeysetPage::from_overfetch(rows, limit as usize, key))
    }
}

/// The search text as `websearch_to_tsquery` can always take it: each word keeps at most one
/// leading `-` (a run of them nests NOTs until PostgreSQL refuses the query: "tsquery stack too
/// small"), words with no letter or digit go, at most 32 words remain. Empty: nothing to find.
pub fn web_search_text(query: &str) -> String {
    query
        .split_whitespace()
        .filter_map(|word| {
            let core = word.trim_start_matches('-');
            if !core.chars().any(char::is_alphanumeric) {
                return None;
            }
            Some(if word.starts_with('-') {
                format!("-{core}")
            } else {
                core.to_owned()
            })
        })
        .take(32)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_text_keeps_words_and_one_negation() {
        let dashes = "-".repeat(40);
        assert_eq!(
            super::web_search_text(&format!("Bonjour {dashes}")),
            "Bonjour"
        );
        assert_eq!(super::web_search_text(&format!("{dashes}café")), "-café");
        assert_eq!(
            super::web_search_text("\"thé vert\" -(a - - ( \"-\""),
            "\"thé vert\" -(a"
        );
        assert_eq!(super::web_search_text("a-b c"), "a-b c");
        assert_eq!(super::web_search_text("!!! ---"), "");
        assert_eq!(
            super::web_search_text(&"mot ".repeat(50))
                .split(' ')
                .count(),
            32
        );
    }
}
