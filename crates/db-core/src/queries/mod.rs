//! Every SQL statement the services run. Functions take a connection and return
//! `QueryResult` (or a small error enum), never an HTTP type, so they compose in a transaction.
//!
//! Hot reads are hand-written SQL, each starting with a `/* name */` comment: the name labels
//! its latency histogram, and `crate::explain` runs the very same statement under EXPLAIN.

pub mod characters;
pub mod generations;
pub mod matches;
pub mod memories;
pub mod messages;
pub mod photos;
pub mod sessions;
pub mod users;

use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};

/// A hand-written statement with its bind parameters, ready to run or to EXPLAIN.
pub type HotQuery = BoxedSqlQuery<'static, Pg, SqlQuery>;

/// Escapes text for HTML before `ts_headline` wraps the matches in `<mark>`, so a highlight
/// can be shown as HTML without letting stored content inject markup.
pub(crate) const HEADLINE_OPTIONS: &str =
    "StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=2";
