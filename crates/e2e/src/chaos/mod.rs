//! The fault suite: the whole stack (gateway, auth, two chat replicas, ai, media) on a
//! PostgreSQL and a Redis of its own, an open-loop load of real clients through the gateway,
//! and faults injected into the servers and the services while it runs. Every experiment ends
//! with the truth checked in PostgreSQL: no acknowledged write lost or written twice, no read
//! that missed a write acknowledged before it started, each chat replica's answers equal to
//! what PostgreSQL holds, no conversation left stuck.
//!
//! `make chaos` runs every experiment on release binaries and writes the report
//! (`dream-chaos`); `crates/e2e/tests/faults.rs` runs the fast ones in `make test`.

mod experiments;
mod load;
mod report;
mod truth;

use std::time::Duration;

use futures_util::StreamExt;

use db_test::servers::{OwnPostgres, OwnRedis};
use serde_json::json;
use uuid::Uuid;

pub use experiments::{Experiment, Scale};
pub use load::{Load, Mix, Op};
pub use report::{Report, Row};

use crate::{Options, Stack};

/// One signed-in user of the load, matched with one character.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub token: String,
    pub refresh: String,
    pub character: String,
}

/// How to build a [`Rig`].
#[derive(Clone)]
pub struct RigOptions {
    pub users: usize,
    /// A PostgreSQL server of the rig's own (needed to stop or restart it); otherwise a
    /// database on the shared server.
    pub own_postgres: bool,
    /// Extra settings for every process (they win over the rig's).
    pub env: Vec<(&'static str, String)>,
}

/// The stack under test, with the servers it stands on and its users.
pub struct Rig {
    pub stack: Stack,
    pub redis: OwnRedis,
    pub pg: Option<OwnPostgres>,
    pub users: Vec<User>,
}

/// Settings every experiment shares: limits out of the way (the load is one address), replies
/// slow enough to be cut mid-stream, leases short enough to be taken over within a run.
fn rig_env() -> Vec<(&'static str, String)> {
    vec![
        ("RATE_LIMIT_IP_PER_MIN", "100000000".into()),
        ("RATE_LIMIT_USER_PER_MIN", "100000000".into()),
        ("LOGIN_LIMIT_PER_IP_PER_MIN", "100000".into()),
        // The load is many clients from one address.
        ("GATEWAY_MAX_PER_CLIENT", "100000".into()),
        ("REGISTER_LIMIT_PER_IP_PER_HOUR", "100000".into()),
        ("ACCESS_TOKEN_TTL_S", "3600".into()),
        ("AI_TOKEN_DELAY_MS", "25".into()),
        ("AI_LEASE_MS", "2000".into()),
        ("AI_REPLIES_PER_USER_PER_DAY", "100000".into()),
        ("MEDIA_PHOTOS_PER_USER_PER_DAY", "100000".into()),
        ("MEDIA_RENDER_DELAY_MS", "800".into()),
        ("MEDIA_JOB_LEASE_MS", "1500".into()),
        ("DB_POOL_MAX_SIZE", "8".into()),
        ("REDIS_COMMAND_TIMEOUT_MS", "250".into()),
        ("HTTP_WORKERS", "1".into()),
    ]
}

impl Rig {
    pub async fn start(options: RigOptions) -> anyhow::Result<Self> {
        let redis = tokio::task::block_in_place(OwnRedis::start)?;
        let (pg, database_url) = if options.own_postgres {
            let pg = tokio::task::block_in_place(OwnPostgres::start)?;
            let url = pg.url("dream");
            truth::create_database(&pg.url("postgres"), "dream").await?;
            db_core::migrate::run_pending(&url).await?;
            let mut conn = db_core::pool::connect_unpooled(&url, "chaos").await?;
            db_core::seed::load_catalogue(&mut conn).await?;
            (Some(pg), Some(url))
        } else {
            (None, None)
        };
        // The last setting of a variable wins: the caller's come last.
        let mut env = rig_env();
        env.extend(options.env.iter().cloned());
        let stack = Stack::with(Options {
            env,
            database_url,
            redis_url: Some(redis.url()),
            ..Options::default()
        })
        .await;
        let (_, catalogue) = stack
            .call(reqwest::Method::GET, "/api/v1/characters", None, None)
            .await;
        let characters: Vec<String> = catalogue
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        anyhow::ensure!(!characters.is_empty(), "no characters: {catalogue}");
        let run = Uuid::new_v4().simple().to_string();
        let signups = (0..options.users).map(|i| {
            let stack = &stack;
            let character = characters[i % characters.len()].clone();
            let email = format!("chaos-{}-{i}@example.com", &run[..8]);
            async move { sign_up_and_match(stack, &email, character).await }
        });
        // A few at a time: sign-ups may use half the hashing cores and have a short queue.
        let users: Vec<User> = futures_util::stream::iter(signups)
            .buffered(4)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            stack,
            redis,
            pg,
            users,
        })
    }

    pub fn pg(&self) -> &OwnPostgres {
        self.pg
            .as_ref()
            .expect("this experiment needs a rig with its own PostgreSQL")
    }
}

/// `POST path` until it is not refused for being busy (503, as a client honouring
/// `Retry-After` would).
async fn patiently(
    stack: &Stack,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
    for _ in 0..30 {
        let (status, answer) = stack.post(path, None, body.clone()).await;
        if status != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Ok((status, answer));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("{path}: still busy after 15 s")
}

/// Registers `email` and signs in; the login answer.
pub(crate) async fn sign_up(stack: &Stack, email: &str) -> anyhow::Result<serde_json::Value> {
    let credentials = json!({ "email": email, "password": "un mot de passe" });
    let mut registration = credentials.clone();
    registration["display_name"] = json!("Chaos");
    let (status, body) = patiently(stack, "/api/v1/auth/register", registration).await?;
    anyhow::ensure!(status.is_success(), "register {email}: {status} {body}");
    let (status, login) = patiently(stack, "/api/v1/auth/login", credentials).await?;
    anyhow::ensure!(status.is_success(), "login {email}: {status} {login}");
    Ok(login)
}

async fn sign_up_and_match(stack: &Stack, email: &str, character: String) -> anyhow::Result<User> {
    let login = sign_up(stack, email).await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = login["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = login["user"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no user id in {login}"))?;
    let (status, body) = stack
        .post(
            "/api/v1/matches",
            Some(&token),
            json!({ "character_id": character }),
        )
        .await;
    anyhow::ensure!(status.is_success(), "match {email}: {status} {body}");
    Ok(User {
        id,
        token,
        refresh,
        character,
    })
}

/// The sum of a counter's samples in a Prometheus text exposition whose labels include all
/// of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// Pins processes (every thread, and with `children` every child they have now; children
/// forked later inherit it) to `cpus` (a `taskset` list, e.g. "0" or "0-1"). `false` when
/// `taskset` could not do it.
pub fn pin(pids: &[u32], cpus: &str, children: bool) -> bool {
    let mut all = pids.to_vec();
    if children {
        for pid in pids {
            if let Ok(out) = std::process::Command::new("pgrep")
                .args(["-P", &pid.to_string()])
                .output()
            {
                all.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .filter_map(|l| l.trim().parse::<u32>().ok()),
                );
            }
        }
    }
    all.iter().all(|pid| {
        std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Resident memory of a process, in MiB, from /proc.
pub fn rss_mib(pid: u32) -> Option<f64> {
    bench_procs::rss_bytes(pid).map(|b| b as f64 / (1024.0 * 1024.0))
}

/// Percentile `p` (0–100) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_matching_series() {
        let text = "# TYPE cache_requests_total counter\n\
            cache_requests_total{family=\"conversation\",result=\"hit\"} 3\n\
            cache_requests_total{family=\"conversation\",result=\"miss\"} 5\n\
            cache_requests_total{family=\"matches\",result=\"hit\"} 7\n\
            cache_requests_total_other{family=\"conversation\",result=\"hit\"} 11\n";
        let hits = |f| {
            metric_sum(
                text,
                "cache_requests_total",
                &[("family", f), ("result", "hit")],
            )
        };
        assert_eq!(hits("conversation"), 3.0);
        assert_eq!(hits("matches"), 7.0);
        assert_eq!(metric_sum(text, "cache_requests_total", &[]), 15.0);
    }

    #[test]
    fn percentiles_of_a_few_samples() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 50.0), 51.0);
        assert_eq!(percentile_ms(&d, 99.0), 99.0);
        assert_eq!(percentile_ms(&[], 99.0), 0.0);
    }
}
