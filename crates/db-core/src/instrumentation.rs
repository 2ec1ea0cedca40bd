//! Every query is timed through diesel's instrumentation hooks: a latency histogram per query,
//! a per-request query counter, slow-query warnings and a bounded list of recent slow queries.
//!
//! diesel reports a query's start (SQL and bind parameters) and its finish (SQL only), with no
//! timing; diesel-async may pipeline several queries on one connection, so starts and finishes
//! are paired by SQL text, not by order.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use serde::Serialize;

use crate::config::SlowQueryConfig;

/// The pool's health check. Not counted as a request's query.
pub const PING_SQL: &str = "SELECT 1 /* pool ping */";

/// How many slow queries [`recent_slow_queries`] keeps.
pub const SLOW_QUERY_LOG_CAPACITY: usize = 100;

/// Queries whose finish never arrived (a dropped future) are forgotten past this many.
const MAX_IN_FLIGHT: usize = 64;

tokio::task_local! {
    static QUERY_COUNTER: Arc<AtomicU64>;
}

static SLOW_QUERIES: Mutex<VecDeque<SlowQuery>> = Mutex::new(VecDeque::new());
static SLOW_QUERY_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Runs `fut` and returns its output with the number of queries it sent. Services wrap each
/// request in it; tests use it to prove a handler runs exactly the queries it should.
pub async fn count_queries<F: Future>(fut: F) -> (F::Output, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let out = QUERY_COUNTER.scope(counter.clone(), fut).await;
    (out, counter.load(Ordering::Relaxed))
}

/// A query that took at least the warning threshold.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SlowQuery {
    pub at: DateTime<Utc>,
    pub name: String,
    pub duration_ms: f64,
    pub sql: String,
    /// Bind parameters, only past the second threshold; secrets print as `<redacted>`.
    pub binds: Option<String>,
    pub failed: bool,
}

/// The most recent slow queries of this process, newest last.
pub fn recent_slow_queries() -> Vec<SlowQuery> {
    SLOW_QUERIES
        .lock()
        .map(|q| q.iter().cloned().collect())
        .unwrap_or_default()
}

/// How many slow queries this process has seen since it started.
pub fn slow_query_total() -> u64 {
    SLOW_QUERY_TOTAL.load(Ordering::Relaxed)
}

struct InFlight {
    sql: String,
    binds: String,
    name: String,
    started: Instant,
    span: tracing::Span,
}

/// Installed on every pooled connection by [`crate::PgPool`].
pub struct QueryInstrumentation {
    slow: SlowQueryConfig,
    in_flight: VecDeque<InFlight>,
}

impl QueryInstrumentation {
    pub fn new(slow: SlowQueryConfig) -> Self {
        Self {
            slow,
            in_flight: VecDeque::new(),
        }
    }

    fn start(&mut self, text: String) {
        let (sql, binds) = split_binds(&text);
        if sql == PING_SQL {
            return;
        }
        let _ = QUERY_COUNTER.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
        let name = query_name(sql);
        let span = tracing::info_span!(
            "db.query",
            otel.name = %name,
            otel.kind = "client",
            db.system = "postgresql",
            db.statement = %sql,
        );
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(InFlight {
            sql: sql.to_owned(),
            binds: binds.to_owned(),
            name,
            started: Instant::now(),
            span,
        });
    }

    fn finish(&mut self, sql: &str, failed: bool) {
        let Some(pos) = self.in_flight.iter().position(|q| q.sql == sql) else {
            return;
        };
        let Some(q) = self.in_flight.remove(pos) else {
            return;
        };
        let elapsed = q.started.elapsed();
        metrics::histogram!("db_query_duration_seconds", "query" => q.name.clone())
            .record(elapsed.as_secs_f64());
        if failed {
            metrics::counter!("db_query_errors_total", "query" => q.name.clone()).increment(1);
        }
        if elapsed >= self.slow.warn_after {
            record_slow(q, elapsed, failed, self.slow);
        }
    }
}

impl Instrumentation for QueryInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => self.start(query.to_string()),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                self.finish(&query.to_string(), error.is_some())
            }
            _ => {}
        }
    }
}

fn record_slow(q: InFlight, elapsed: Duration, failed: bool, slow: SlowQueryConfig) {
    SLOW_QUERY_TOTAL.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("db_slow_queries_total", "query" => q.name.clone()).increment(1);
    let ms = elapsed.as_secs_f64() * 1e3;
    let binds = (elapsed >= slow.binds_after).then_some(q.binds);
    q.span.in_scope(|| match &binds {
        Some(binds) => tracing::warn!(query = %q.name, duration_ms = ms, sql = %q.sql, binds = %binds, failed, "very slow query"),
        None => tracing::warn!(query = %q.name, duration_ms = ms, sql = %q.sql, failed, "slow query"),
    });
    if let Ok(mut log) = SLOW_QUERIES.lock() {
        if log.len() >= SLOW_QUERY_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(SlowQuery {
            at: Utc::now(),
            name: q.name,
            duration_ms: ms,
            sql: q.sql,
            binds,
            failed,
        });
    }
}

/// diesel prints a query as `SQL -- binds: [..]`.
fn split_binds(text: &str) -> (&str, &str) {
    match text.rsplit_once(" -- binds: ") {
        Some((sql, binds)) => (sql, binds),
        None => (text, ""),
    }
}

/// A short, low-cardinality name for a query: the `/* name */` our hand-written queries start
/// with, else the statement's verb and first table (`select chat_messages`).
pub fn query_name(sql: &str) -> String {
    let sql = sql.trim_start();
    if let Some(rest) = sql.strip_prefix("/*")
        && let Some((name, _)) = rest.split_once("*/")
    {
        return name.trim().to_owned();
    }
    let mut words = sql.split_whitespace();
    let verb = words.next().unwrap_or("").to_ascii_lowercase();
    let marker = match verb.as_str() {
        "select" => "from",
        "insert" => "into",
        "delete" => "from",
        "update" => return format!("update {}", clean_ident(words.next().unwrap_or(""))),
        _ => return verb,
    };
    let table = words
        .skip_while(|w| !w.eq_ignore_ascii_case(marker))
        .nth(1)
        .map(clean_ident)
        .unwrap_or_default();
    format!("{verb} {table}")
}

fn clean_ident(word: &str) -> String {
    word.trim_matches(|c: char| c == '"' || c == '(' || c == ')' || c == ',' || c == ';')
        .split('.')
        .next_back()
        .unwrap_or("")
        .trim_matches('"')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_leading_comment_or_the_statement() {
        assert_eq!(
            query_name("/* messages.latest */ SELECT 1"),
            "messages.latest"
        );
        assert_eq!(
            query_name(r#"SELECT "users"."id" FROM "users" WHERE "users"."email" = $1"#),
            "select users"
        );
        assert_eq!(
            query_name(r#"INSERT INTO "chat_messages" ("user_id") VALUES ($1)"#),
            "insert chat_messages"
        );
        assert_eq!(
            query_name(r#"UPDATE "matches" SET "affection" = $1"#),
            "update matches"
        );
        assert_eq!(query_name("BEGIN"), "begin");
    }

    #[test]
    fn binds_are_split_from_the_sql() {
        assert_eq!(split_binds("SELECT $1 -- binds: [1]"), ("SELECT $1", "[1]"));
        assert_eq!(split_binds("SELECT 1"), ("SELECT 1", ""));
    }
}
