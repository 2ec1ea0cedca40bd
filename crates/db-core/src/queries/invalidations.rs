//! The journal of cache keys a write could not drop (its process could not reach Redis).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::cache_invalidations;

pub async fn record(conn: &mut AsyncPgConnection, keys: &[String]) -> QueryResult<usize> {
    let rows: Vec<_> = keys
        .iter()
        .map(|k| cache_invalidations::key.eq(k))
        .collect();
    diesel::insert_into(cache_invalidations::table)
        .values(rows)
        .execute(conn)
        .await
}

/// Entries recorded after `since` (on `cache_invalidations_at_idx`): id and key.
pub async fn since(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> QueryResult<Vec<(i64, String)>> {
    cache_invalidations::table
        .filter(cache_invalidations::at.gt(since))
        .select((cache_invalidations::id, cache_invalidations::key))
        .load(conn)
        .await
}

/// Forgets what was recorded before `before`.
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(cache_invalidations::table.filter(cache_invalidations::at.lt(before)))
        .execute(conn)
        .await
}
