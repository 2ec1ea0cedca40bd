//! One row per experiment, and the report they make.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::load::{Op, Seen};
use super::percentile_ms;

/// What one experiment saw.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Row {
    pub experiment: &'static str,
    /// HTTP exchanges (client retries included).
    pub requests: u64,
    /// Exchanges without a 2xx answer.
    pub failed: u64,
    pub failed_reads: u64,
    /// Messages the clients tried to send, and those acknowledged.
    pub sends: u64,
    pub acked: u64,
    /// Acknowledged and not in PostgreSQL / stored more than once.
    pub lost: u64,
    pub duplicated: u64,
    /// Reads that missed a message acknowledged to the same user before the read started.
    pub stale_reads: u64,
    /// After the run: a chat replica's window or match list ≠ PostgreSQL.
    pub replica_mismatches: u64,
    /// Conversations that could not get a reply any more.
    pub stuck: Option<u64>,
    /// From the fault's end to the last failed request.
    pub recovery_s: Option<f64>,
    /// From Redis's return until every chat replica served a conversation from it again.
    pub cache_back_s: Option<f64>,
    /// Latency of the fast answers during the fault (sheds, 503s), p50 / p99 ms.
    pub refusal_ms: Option<(f64, f64)>,
    pub p99_ms: f64,
    pub notes: Vec<String>,
}

impl Row {
    pub(crate) fn from_load(experiment: &'static str, seen: &Seen) -> Self {
        let failed: Vec<_> = seen.records.iter().filter(|r| !r.ok()).collect();
        let mut ok: Vec<Duration> = seen
            .records
            .iter()
            .filter(|r| r.ok())
            .map(|r| r.latency)
            .collect();
        ok.sort();
        let mut by_status = std::collections::BTreeMap::<(u16, &str), u64>::new();
        for r in &failed {
            *by_status.entry((r.status, r.op.name())).or_default() += 1;
        }
        let mut notes = Vec::new();
        if !by_status.is_empty() {
            notes.push(format!(
                "failed exchanges by status (0: no answer): {}",
                by_status
                    .iter()
                    .map(|((status, op), n)| format!("{op} {status} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Self {
            notes,
            experiment,
            requests: seen.records.len() as u64 + seen.backlog,
            failed: failed.len() as u64 + seen.backlog,
            failed_reads: failed.iter().filter(|r| !r.op.writes()).count() as u64,
            stale_reads: seen.stale.len() as u64,
            p99_ms: percentile_ms(&ok, 99.0),
            ..Self::default()
        }
    }

    /// Nothing lost, nothing written twice, nothing stale, nothing stuck.
    pub fn whole(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.stale_reads == 0
            && self.replica_mismatches == 0
            && self.stuck.unwrap_or(0) == 0
    }
}

/// Latency percentiles of the failed exchanges of `op` (any op when `None`) with `status`.
pub(crate) fn refusals(seen: &Seen, status: u16, op: Option<Op>) -> Option<(f64, f64)> {
    let mut l: Vec<Duration> = seen
        .records
        .iter()
        .filter(|r| r.status == status && op.is_none_or(|o| r.op == o))
        .map(|r| r.latency)
        .collect();
    if l.is_empty() {
        return None;
    }
    l.sort();
    Some((percentile_ms(&l, 50.0), percentile_ms(&l, 99.0)))
}

/// The suite's report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub started: String,
    pub settings: String,
    pub rows: Vec<Row>,
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{v:.2} {unit}"))
        .unwrap_or_else(|| "–".into())
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Fault suite — {}\n", self.started);
        let _ = writeln!(s, "{}\n", self.settings);
        s.push_str(
            "| experiment | requests | failed (reads) | sends acked | lost | dup | stale reads | replicas ≠ PG | stuck | recovery | cache back | refusals p50/p99 | p99 ok |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} ({}) | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} ms |",
                r.experiment,
                r.requests,
                r.failed,
                r.failed_reads,
                r.acked,
                r.sends,
                r.lost,
                r.duplicated,
                r.stale_reads,
                r.replica_mismatches,
                r.stuck.map(|n| n.to_string()).unwrap_or_else(|| "–".into()),
                opt(r.recovery_s, "s"),
                opt(r.cache_back_s, "s"),
                r.refusal_ms
                    .map(|(a, b)| format!("{a:.2} / {b:.2} ms"))
                    .unwrap_or_else(|| "–".into()),
                r.p99_ms,
            );
        }
        s.push('\n');
        for r in &self.rows {
            if !r.notes.is_empty() {
                let _ = writeln!(s, "**{}**", r.experiment);
                for n in &r.notes {
                    let _ = writeln!(s, "- {n}");
                }
                s.push('\n');
            }
        }
        s
    }
}
