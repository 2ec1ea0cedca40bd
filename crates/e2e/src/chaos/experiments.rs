//! The experiments: a fault injected while the load runs (or while replies and photo jobs are
//! under way), healed, and the damage counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::load::{Load, Mix, Op, Seen, Target};
use super::report::{Row, refusals};
use bench_procs::cpu_seconds;

use super::{Rig, metric_sum, pin, rss_mib, truth};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Experiment {
    /// The load alone: the reference row.
    Baseline,
    /// Redis SIGKILLed, started again empty.
    RedisKill,
    /// Redis SIGSTOPped (connections accepted, nothing answered), then SIGCONT.
    RedisPause,
    /// One of the two chat replicas SIGKILLed, started again.
    ChatKill,
    /// PostgreSQL shut down fast and started again at once.
    PgRestart,
    /// PostgreSQL down for the fault's length.
    PgStop,
    /// The ai service SIGKILLed while replies stream.
    AiKill,
    /// The media service SIGKILLed while photo jobs run.
    MediaKill,
    /// Three times what the stack can serve, offered open loop.
    Overload,
}

impl Experiment {
    pub const ALL: [Experiment; 9] = [
        Experiment::Baseline,
        Experiment::RedisKill,
        Experiment::RedisPause,
        Experiment::ChatKill,
        Experiment::PgRestart,
        Experiment::PgStop,
        Experiment::AiKill,
        Experiment::MediaKill,
        Experiment::Overload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Experiment::Baseline => "baseline",
            Experiment::RedisKill => "redis-kill",
            Experiment::RedisPause => "redis-pause",
            Experiment::ChatKill => "chat-kill",
            Experiment::PgRestart => "pg-restart",
            Experiment::PgStop => "pg-stop",
            Experiment::AiKill => "ai-kill",
            Experiment::MediaKill => "media-kill",
            Experiment::Overload => "overload",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    pub fn needs_own_postgres(self) -> bool {
        matches!(self, Experiment::PgRestart | Experiment::PgStop)
    }

    pub async fn run(self, rig: &mut Rig, scale: &Scale) -> anyhow::Result<Row> {
        match self {
            Experiment::AiKill => ai_kill(rig, scale).await,
            Experiment::MediaKill => media_kill(rig, scale).await,
            Experiment::Overload => overload(rig, scale).await,
            fault => under_load(fault, rig, scale).await,
        }
    }
}

/// How hard and how long.
#[derive(Clone, Debug)]
pub struct Scale {
    /// Requests per second of the open-loop load.
    pub rate: f64,
    /// Load before the fault, the fault's length, load after it.
    pub before: Duration,
    pub fault: Duration,
    pub after: Duration,
    /// Replies cut by the ai experiment, photo jobs by the media one.
    pub streams: usize,
    /// Clients and length of the closed-loop run that measures capacity, and the overload's
    /// multiple of it.
    pub capacity_connections: usize,
    pub capacity_for: Duration,
    pub overload: f64,
}

impl Scale {
    /// The suite's size (`make chaos`): the 300 req/s, a 10 s fault.
    pub fn full() -> Self {
        Self {
            rate: 300.0,
            before: Duration::from_secs(5),
            fault: Duration::from_secs(10),
            after: Duration::from_secs(10),
            streams: 20,
            capacity_connections: 64,
            capacity_for: Duration::from_secs(8),
            overload: 3.0,
        }
    }

    /// Small and short, for `make test` on debug builds.
    pub fn quick() -> Self {
        Self {
            rate: 40.0,
            before: Duration::from_secs(2),
            fault: Duration::from_secs(3),
            after: Duration::from_secs(8),
            streams: 4,
            capacity_connections: 16,
            capacity_for: Duration::from_secs(3),
            overload: 3.0,
        }
    }
}

fn target(rig: &Rig) -> Target {
    target_keeping(rig, 512)
}

/// A target whose client keeps up to `connections` idle connections open for reuse.
fn target_keeping(rig: &Rig, connections: usize) -> Target {
    Target {
        base: rig.stack.gateway.clone(),
        http: Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(connections)
            // Within the servers' keep-alive: an idle connection is never reused as it closes.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        users: Arc::new(rig.users.clone()),
    }
}

/// Conversation reads served from Redis so far, per chat replica.
async fn conversation_hits(rig: &Rig) -> Vec<f64> {
    let mut out = Vec::new();
    for c in &rig.stack.chat {
        let text = match rig
            .stack
            .http
            .get(format!("{}/metrics", c.admin_url()))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push(metric_sum(
            &text,
            "cache_requests_total",
            &[("family", "conversation"), ("result", "hit")],
        ));
    }
    out
}

/// Waits (up to `within`) until every chat replica has served a conversation from Redis since
/// `since`'s counts; how long that took.
async fn cache_back(rig: &Rig, since: &[f64], within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        let now = conversation_hits(rig).await;
        if now.iter().zip(since).all(|(n, s)| n > s) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// Fills in what PostgreSQL and the replicas say after a load.
async fn settle_and_check(rig: &Rig, row: &mut Row, seen: &Seen) -> anyhow::Result<()> {
    let mut conn = rig.stack.conn().await;
    let w = truth::writes(&mut conn, &seen.sent).await?;
    row.sends = w.attempted;
    row.acked = w.acked;
    row.lost = w.lost;
    row.duplicated = w.duplicated;
    if w.stored_unacked > 0 {
        row.notes.push(format!(
            "{} messages stored without the client seeing the acknowledgement (the connection was cut); a retry with the same client_id would get them",
            w.stored_unacked
        ));
    }
    // Another replica's invalidations reach Redis within the journal's replay period.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mismatches = truth::replica_mismatches(rig).await?;
    row.replica_mismatches = mismatches.len() as u64;
    for m in mismatches.iter().take(5) {
        row.notes
            .push(format!("{} user {}: {}", m.replica, m.user, m.what));
    }
    for s in seen.stale.iter().take(5) {
        row.notes.push(format!(
            "stale {} at {:.2} s for user {}: expected {} newest seen {:?}",
            s.op.name(),
            s.at.as_secs_f64(),
            s.user,
            s.expected,
            s.newest_seen
        ));
    }
    Ok(())
}

/// The open-loop load with one fault injected in its middle.
async fn under_load(fault: Experiment, rig: &mut Rig, scale: &Scale) -> anyhow::Result<Row> {
    let load = Load::open(target(rig), scale.rate, Mix::default());
    tokio::time::sleep(scale.before).await;
    let fault_at = load.elapsed();
    let mut notes = Vec::new();
    let mut logout_user = None;
    match fault {
        Experiment::Baseline => {}
        Experiment::RedisKill => {
            rig.redis.kill();
            // A logout while Redis is away must still end the session everywhere.
            logout_user = Some(logout_during_outage(rig).await?);
        }
        Experiment::RedisPause => rig.redis.pause()?,
        Experiment::ChatKill => rig.stack.chat[0].kill(),
        Experiment::PgRestart => {
            tokio::task::block_in_place(|| {
                rig.pg().stop()?;
                rig.pg().start_again()
            })?;
        }
        Experiment::PgStop => tokio::task::block_in_place(|| rig.pg().stop())?,
        _ => unreachable!("not a load experiment"),
    }
    if !matches!(fault, Experiment::PgRestart | Experiment::Baseline) {
        tokio::time::sleep(scale.fault).await;
    }
    let hits_at_heal = conversation_hits(rig).await;
    match fault {
        Experiment::RedisKill => tokio::task::block_in_place(|| rig.redis.restart())?,
        Experiment::RedisPause => rig.redis.resume()?,
        Experiment::ChatKill => {
            let http = rig.stack.http.clone();
            rig.stack.chat[0].restart(&http).await;
        }
        Experiment::PgStop => tokio::task::block_in_place(|| rig.pg().start_again())?,
        _ => {}
    }
    let healed_at = load.elapsed();
    let cache = if matches!(fault, Experiment::RedisKill | Experiment::RedisPause) {
        let back = cache_back(rig, &hits_at_heal, scale.after).await;
        if back.is_none() {
            for c in &rig.stack.chat {
                let text = rig
                    .stack
                    .http
                    .get(format!("{}/metrics", c.admin_url()))
                    .send()
                    .await?
                    .text()
                    .await?;
                for l in text.lines().filter(|l| {
                    l.starts_with("cache_redis")
                        || l.contains("family=\"conversation\"")
                        || l.starts_with("redis")
                }) {
                    notes.push(format!("{}: {l}", c.name));
                }
            }
            notes.push(format!(
                "the cache was not back within {:.0} s",
                scale.after.as_secs_f64()
            ));
        }
        back
    } else {
        None
    };
    let ends = healed_at + scale.after;
    let left = ends.saturating_sub(load.elapsed());
    tokio::time::sleep(left).await;
    if let Some(u) = &logout_user {
        notes.push(check_logout(rig, u, "after Redis came back").await);
    }
    let seen = load.stop().await;
    let mut row = Row::from_load(fault.name(), &seen);
    row.cache_back_s = cache.map(secs);
    if fault != Experiment::Baseline {
        let last_failure = seen
            .records
            .iter()
            .filter(|r| !r.ok())
            .map(|r| r.at + r.latency)
            .max();
        row.recovery_s = Some(secs(
            last_failure.map_or(Duration::ZERO, |l| l.saturating_sub(healed_at)),
        ));
        let during = |r: &&super::load::Record| r.at >= fault_at && r.at < healed_at;
        let shed = seen
            .records
            .iter()
            .filter(during)
            .filter(|r| !r.ok())
            .count();
        if shed > 0 {
            notes.push(format!(
                "{shed} requests refused during the fault ({} of them writes)",
                seen.records
                    .iter()
                    .filter(during)
                    .filter(|r| !r.ok() && r.op.writes())
                    .count()
            ));
        }
    }
    if matches!(fault, Experiment::PgStop | Experiment::PgRestart) {
        row.refusal_ms = refusals(&seen, 503, Some(Op::Send));
    }
    row.notes.extend(notes);
    settle_and_check(rig, &mut row, &seen).await?;
    Ok(row)
}

struct LoggedOut {
    token: String,
}

/// A user who logs out while Redis is down; their token must be refused by the gateway and by
/// every chat replica within a few seconds.
async fn logout_during_outage(rig: &Rig) -> anyhow::Result<LoggedOut> {
    let email = format!("chaos-logout-{}@example.com", Uuid::new_v4().simple());
    let login = super::sign_up(&rig.stack, &email).await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = login["refresh_token"].as_str().unwrap_or_default();
    let (status, body) = rig
        .stack
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    anyhow::ensure!(
        status.is_success(),
        "logout with Redis down: {status} {body}"
    );
    Ok(LoggedOut { token })
}

/// Whether the logged-out token is refused everywhere (waits up to 5 s for it).
async fn check_logout(rig: &Rig, u: &LoggedOut, when: &str) -> String {
    let bases: Vec<(String, &str)> = std::iter::once((rig.stack.gateway.clone(), "gateway"))
        .chain(rig.stack.chat.iter().map(|c| (c.url(), c.name)))
        .collect();
    let started = Instant::now();
    let mut accepted = Vec::new();
    for (base, name) in &bases {
        loop {
            let status = rig
                .stack
                .http
                .get(format!("{base}/api/v1/matches"))
                .bearer_auth(&u.token)
                .send()
                .await
                .map(|r| r.status())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            if started.elapsed() > Duration::from_secs(5) {
                accepted.push(format!("{name} ({status})"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if accepted.is_empty() {
        format!(
            "a logout made while Redis was down: refused by the gateway and both chat replicas ({when}, within {:.1} s)",
            started.elapsed().as_secs_f64()
        )
    } else {
        format!(
            "LOGOUT LOST: a logged-out token still accepted by {} ({when})",
            accepted.join(", ")
        )
    }
}

/// How one cut stream ended.
#[derive(Debug, PartialEq, Eq)]
enum StreamEnd {
    Done,
    ErrorEvent,
    SilentEof,
    NotStarted(u16),
}

/// Replies streaming when the ai service is SIGKILLed: each stream must end with an `error`
/// event, the ai service started again, and each conversation then get exactly one reply.
async fn ai_kill(rig: &mut Rig, scale: &Scale) -> anyhow::Result<Row> {
    use futures_util::StreamExt;
    let users: Vec<_> = rig.users.iter().take(scale.streams).cloned().collect();
    let mut asked = Vec::new();
    let mut requests = 0u64;
    for u in &users {
        let (status, m) = rig
            .stack
            .post(
                &format!("/api/v1/conversations/{}/messages", u.character),
                Some(&u.token),
                json!({ "content": "Raconte-moi ta journée, en détail.", "client_id": Uuid::new_v4() }),
            )
            .await;
        requests += 1;
        anyhow::ensure!(status.is_success(), "send: {status} {m}");
        asked.push(m["id"].as_i64().unwrap_or_default());
    }
    let (tokens_tx, mut tokens_rx) = tokio::sync::mpsc::channel::<()>(users.len());
    let streams: Vec<_> = users
        .iter()
        .map(|u| {
            let http = rig.stack.http.clone();
            let url = format!(
                "{}/api/v1/conversations/{}/reply",
                rig.stack.gateway, u.character
            );
            let token = u.token.clone();
            let tx = tokens_tx.clone();
            tokio::spawn(async move {
                let res = match http
                    .post(url)
                    .bearer_auth(token)
                    .header("accept", "text/event-stream")
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => r,
                    Ok(r) => return StreamEnd::NotStarted(r.status().as_u16()),
                    Err(_) => return StreamEnd::NotStarted(0),
                };
                let mut body = res.bytes_stream();
                let mut text = String::new();
                let mut told = false;
                while let Ok(Some(chunk)) =
                    tokio::time::timeout(Duration::from_secs(15), body.next()).await
                {
                    let Ok(chunk) = chunk else { break };
                    text.push_str(&String::from_utf8_lossy(&chunk));
                    if !told && text.matches("event: token").count() >= 3 {
                        told = true;
                        let _ = tx.send(()).await;
                    }
                }
                if text.contains("event: done") {
                    StreamEnd::Done
                } else if text.contains("event: error") {
                    StreamEnd::ErrorEvent
                } else {
                    StreamEnd::SilentEof
                }
            })
        })
        .collect();
    drop(tokens_tx);
    // Cut when every stream has shown a few tokens (or after 3 s).
    let deadline = Instant::now() + Duration::from_secs(3);
    for _ in 0..users.len() {
        if tokio::time::timeout_at(deadline.into(), tokens_rx.recv())
            .await
            .is_err()
        {
            break;
        }
    }
    rig.stack.ai.kill();
    let mut ends = Vec::new();
    for s in streams {
        ends.push(s.await?);
        requests += 1;
    }
    let killed_at = Instant::now();
    let http = rig.stack.http.clone();
    rig.stack.ai.restart(&http).await;
    // Each conversation asks again (all at once, as their clients would) until answered.
    let asks = users.iter().map(|u| {
        let stack = &rig.stack;
        async move {
            let give_up = Instant::now() + Duration::from_secs(30);
            let (mut asked, mut busy, mut failed) = (0u64, 0u64, 0u64);
            loop {
                let (status, body) = stack
                    .post(
                        &format!("/api/v1/conversations/{}/reply", u.character),
                        Some(&u.token),
                        json!({}),
                    )
                    .await;
                asked += 1;
                if status.is_success() {
                    return (asked, busy, failed, Ok(killed_at.elapsed()));
                }
                if status == StatusCode::CONFLICT {
                    busy += 1;
                } else {
                    failed += 1;
                }
                if Instant::now() > give_up {
                    return (asked, busy, failed, Err(format!("{status} {body}")));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let outcomes = futures_util::future::join_all(asks).await;
    let mut stuck = 0u64;
    let (mut failed, mut busy) = (0u64, 0u64);
    let mut answered_in = Vec::new();
    let mut last_refusal = None;
    for (asked, b, f, outcome) in outcomes {
        requests += asked;
        busy += b;
        failed += f;
        match outcome {
            Ok(took) => answered_in.push(took),
            Err(refusal) => {
                stuck += 1;
                last_refusal = Some(refusal);
            }
        }
    }
    let mut conn = rig.stack.conn().await;
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let (duplicated, unanswered) = truth::replies(&mut conn, &ids, &asked).await?;
    let count = |e: &dyn Fn(&StreamEnd) -> bool| ends.iter().filter(|x| e(x)).count();
    let mut row = Row {
        experiment: Experiment::AiKill.name(),
        requests,
        failed,
        sends: asked.len() as u64,
        acked: asked.len() as u64,
        lost: unanswered,
        duplicated,
        stuck: Some(stuck),
        recovery_s: answered_in.iter().max().map(|d| secs(*d)),
        ..Row::default()
    };
    row.notes.push(format!(
        "{} streams cut: {} ended with an error event, {} finished before the kill, {} silent EOF, {} not started",
        ends.len(),
        count(&|e| *e == StreamEnd::ErrorEvent),
        count(&|e| *e == StreamEnd::Done),
        count(&|e| *e == StreamEnd::SilentEof),
        count(&|e| matches!(e, StreamEnd::NotStarted(_))),
    ));
    row.notes.push(format!(
        "asked again: {busy}× 409 generation_in_progress while the dead writer's lease ran, then answered; {} of {} conversations answered, exactly once each ({} duplicated)",
        users.len() as u64 - stuck,
        users.len(),
        duplicated
    ));
    if let Some(r) = last_refusal {
        row.notes
            .push(format!("STUCK: still refused after 30 s: {r}"));
    }
    if count(&|e| *e == StreamEnd::SilentEof) > 0 {
        row.stuck = Some(stuck + count(&|e| *e == StreamEnd::SilentEof) as u64);
        row.notes
            .push("SILENT EOF: a cut stream ended without an error event".into());
    }
    Ok(row)
}

/// Photo jobs running when the media service is SIGKILLed: each must end done, with exactly
/// one photo and one photo message.
async fn media_kill(rig: &mut Rig, scale: &Scale) -> anyhow::Result<Row> {
    let users: Vec<_> = rig.users.iter().take(scale.streams).cloned().collect();
    let run = Uuid::new_v4().simple().to_string();
    let mut jobs = Vec::new();
    let mut requests = 0u64;
    for (i, u) in users.iter().enumerate() {
        let prompt = format!("chaos {} {i}", &run[..8]);
        let (status, job) = rig
            .stack
            .post(
                &format!("/api/v1/photos/{}/generate", u.character),
                Some(&u.token),
                json!({ "prompt": prompt }),
            )
            .await;
        requests += 1;
        anyhow::ensure!(status == StatusCode::ACCEPTED, "generate: {status} {job}");
        jobs.push((
            u.clone(),
            job["id"].as_str().unwrap_or_default().to_owned(),
            prompt,
        ));
    }
    // Kill once at least one job runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    'wait: while Instant::now() < deadline {
        for (u, id, _) in &jobs {
            let (_, j) = rig
                .stack
                .get(&format!("/api/v1/photos/jobs/{id}"), &u.token)
                .await;
            requests += 1;
            if j["status"] == "running" {
                break 'wait;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.stack.media.kill();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = rig.stack.http.clone();
    rig.stack.media.restart(&http).await;
    let mut failed = 0u64;
    let mut took = Duration::ZERO;
    for (u, id, _) in &jobs {
        let give_up = Instant::now() + Duration::from_secs(60);
        let status = loop {
            let (_, j) = rig
                .stack
                .get(&format!("/api/v1/photos/jobs/{id}"), &u.token)
                .await;
            requests += 1;
            let status = j["status"].as_str().unwrap_or_default().to_owned();
            if status == "done" || status == "failed" || Instant::now() > give_up {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if status == "done" {
            took = took.max(killed_at.elapsed());
        } else {
            failed += 1;
        }
    }
    let mut conn = rig.stack.conn().await;
    let prompts: Vec<String> = jobs.iter().map(|(_, _, p)| p.clone()).collect();
    let counts = truth::photos_by_prompt(&mut conn, &prompts).await?;
    let lost = prompts
        .iter()
        .filter(|p| counts.get(*p).is_none_or(|(photos, _)| *photos == 0))
        .count() as u64;
    let duplicated = counts
        .values()
        .map(|(photos, messages)| (photos - 1).max(0) + (messages - 1).max(0))
        .sum::<i64>() as u64;
    let mut row = Row {
        experiment: Experiment::MediaKill.name(),
        requests,
        failed,
        sends: jobs.len() as u64,
        acked: jobs.len() as u64,
        lost,
        duplicated,
        stuck: Some(lost),
        recovery_s: Some(secs(took)),
        ..Row::default()
    };
    row.notes.push(format!(
        "{} photo jobs, media killed mid-job: every job done with one photo and one photo message unless counted above",
        jobs.len()
    ));
    Ok(row)
}

/// Capacity measured closed loop, then three times that offered open loop: goodput, how fast
/// the refusals are, and the gateway's memory.
///
/// On a machine of two cores or more the stack (every service, its Redis and its PostgreSQL)
/// is pinned to the first core and this process, the load generator, to the second, for both
/// runs: the generator then takes nothing from the stack, as on a machine of its own. Sharing
/// the cores, a generator offering three times the capacity would take most of them and
/// measure itself.
async fn overload(rig: &mut Rig, scale: &Scale) -> anyhow::Result<Row> {
    let mix = Mix { send: 10, read: 60 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let me = std::process::id();
    let mut stack: Vec<u32> = vec![
        rig.stack.gateway_proc.pid(),
        rig.stack.auth.pid(),
        rig.stack.ai.pid(),
        rig.stack.media.pid(),
    ];
    stack.extend(rig.stack.chat.iter().map(|c| c.pid()));
    stack.extend(rig.redis.pid());
    stack.extend(rig.pg.as_ref().and_then(|pg| pg.pid()));
    // The services are this process's children: pinning it must leave them where they are.
    let pinned = cores >= 2 && pin(&stack, "0", true) && pin(&[me], "1", false);
    let result = overload_runs(rig, scale, mix, pinned).await;
    if cores >= 2 {
        pin(&[me], &format!("0-{}", cores - 1), false);
    }
    result
}

/// Connections (and so requests waiting at once) the overload's clients hold, unless
/// `CHAOS_OVERLOAD_MAX_WAITING` says otherwise: four times the gateway's in-flight bound, so
/// the gateway, not the clients, decides what is refused.
const OVERLOAD_CONNECTIONS: usize = 1024;

/// The part of a closed-loop capacity run that is counted: the first quarter (caches filling,
/// pools opening) is not.
fn counted(scale: &Scale) -> std::ops::Range<Duration> {
    let warm = scale.capacity_for / 4;
    warm..warm + scale.capacity_for
}

/// The closed-loop rate of `mix` on the warm stack (see [`counted`]), and what it saw.
async fn capacity_of(rig: &Rig, scale: &Scale, connections: usize, mix: Mix) -> (f64, Seen) {
    let closed = Load::closed(target(rig), connections, mix);
    tokio::time::sleep(counted(scale).end).await;
    let measured = closed.stop().await;
    let rate = answered_per_second(&measured.records, counted(scale), |_| true);
    (rate, measured)
}

/// Successful answers per second to the requests of the kinds `of` takes, among those started
/// within `window`.
fn answered_per_second(
    records: &[super::load::Record],
    window: std::ops::Range<Duration>,
    of: impl Fn(Op) -> bool,
) -> f64 {
    let n = records
        .iter()
        .filter(|r| r.ok() && of(r.op) && window.contains(&r.at))
        .count();
    n as f64 / (window.end - window.start).as_secs_f64()
}

/// A number from the environment, or `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Connections accepted by this machine's TCP since boot (`/proc/net/snmp`, PassiveOpens).
fn tcp_passive_opens() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "PassiveOpens")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

async fn overload_runs(
    rig: &mut Rig,
    scale: &Scale,
    mix: Mix,
    pinned: bool,
) -> anyhow::Result<Row> {
    let connections = env_or("CHAOS_CAPACITY_CONNECTIONS", scale.capacity_connections);
    let (capacity, measured) = capacity_of(rig, scale, connections, mix).await;
    let gateway = rig.stack.gateway_proc.pid();
    let rss_before = rss_mib(gateway).unwrap_or_default();
    // `CHAOS_OVERLOAD_TIMES`: another multiple of the capacity (does memory stay flat at 6x?).
    let times = std::env::var("CHAOS_OVERLOAD_TIMES")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(scale.overload);
    let offered = capacity * times;
    let me = std::process::id();
    let cpu_before = cpu_seconds(me).unwrap_or_default();
    let gateway_cpu_before = cpu_seconds(gateway).unwrap_or_default();
    // The clients of the overload hold at most this many connections, each kept open between
    // requests, as browsers do: the overload is three times the requests, not a flood of new
    // connections (44,000 in 10 s when each waiting request could open one: the kernel's
    // backlog overflowed and SYN retransmits, 1 s, 3 s, 7 s, became the refusals' p99).
    let max_waiting = env_or("CHAOS_OVERLOAD_MAX_WAITING", OVERLOAD_CONNECTIONS);
    let opened_before = tcp_passive_opens();
    let load = Load::open_bounded(target_keeping(rig, max_waiting), offered, mix, max_waiting);
    let mut peak = rss_before;
    let started = Instant::now();
    while started.elapsed() < scale.fault {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(rss_mib(gateway).unwrap_or_default());
    }
    let generator_cpu = cpu_seconds(me).unwrap_or_default() - cpu_before;
    let gateway_cpu = cpu_seconds(gateway).unwrap_or_default() - gateway_cpu_before;
    let opened = tcp_passive_opens().zip(opened_before).map(|(a, b)| a - b);
    let seen = load.stop().await;
    let ran = scale.fault.as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_mib(gateway).unwrap_or_default();
    let fault_window = Duration::ZERO..scale.fault;
    let good = answered_per_second(&seen.records, fault_window.clone(), |_| true);
    // Per kind, against the same kind's rate in the capacity run: a send costs the stack
    // several reads, and a client retries a refused send (not a read), so the answered mix
    // shifts under overload and requests per second alone mislead.
    let per_kind: Vec<String> = [(true, "sends"), (false, "reads")]
        .into_iter()
        .map(|(sends, name)| {
            let kind = |op: Op| (op == Op::Send) == sends;
            let before = answered_per_second(&measured.records, counted(scale), kind);
            let during = answered_per_second(&seen.records, fault_window.clone(), kind);
            format!(
                "{name} {during:.0}/s = {:.0} % of their {before:.0}/s",
                100.0 * during / before.max(1.0)
            )
        })
        .collect();
    // What the overload answered is not the mix it was offered (above); the stack's capacity
    // for the answered mix, measured right after, tells whether shedding wasted any of it.
    let share = |op: Op| {
        let rate = answered_per_second(&seen.records, fault_window.clone(), |o| o == op);
        (100.0 * rate / good.max(1.0 / ran)).round() as u64
    };
    let answered_mix = Mix {
        send: share(Op::Send),
        read: share(Op::Read),
    };
    let (capacity_answered, _) = capacity_of(rig, scale, connections, answered_mix).await;
    let mut row = Row::from_load(Experiment::Overload.name(), &seen);
    row.refusal_ms = refusals(&seen, 503, None);
    let others = seen
        .records
        .iter()
        .filter(|r| !r.ok() && r.status != 503)
        .count();
    row.notes.push(if pinned {
        "the stack (services, Redis, PostgreSQL) pinned to core 0, the load generator to core 1"
            .to_owned()
    } else {
        "the load generator shares the cores with the stack".to_owned()
    });
    row.notes.push(format!(
        "capacity (closed loop, {connections} clients): {capacity:.0} req/s; offered {offered:.0} req/s open loop for {ran:.0} s"
    ));
    row.notes.push(format!(
        "during the overload: the generator used {:.0} % of a core, the gateway {:.0} %",
        100.0 * generator_cpu / ran,
        100.0 * gateway_cpu / ran
    ));
    row.notes.push(format!(
        "goodput {good:.0} req/s = {:.0} % of capacity; {} shed with 503, {} other failures, {} not sent (client backlog)",
        100.0 * good / capacity.max(1.0),
        seen.records.iter().filter(|r| r.status == 503).count(),
        others,
        seen.backlog
    ));
    row.notes.push(format!(
        "answered by kind against the capacity run: {}",
        per_kind.join("; ")
    ));
    row.notes.push(format!(
        "capacity for the answered mix ({} % sends, {} % conversation reads, the rest match lists), measured right after: {capacity_answered:.0} req/s; goodput = {:.0} % of it",
        answered_mix.send,
        answered_mix.read,
        100.0 * good / capacity_answered.max(1.0)
    ));
    row.notes.push(format!(
        "clients: at most {max_waiting} requests waiting, on connections kept open; TCP connections accepted on the machine during the overload: {}",
        opened.map_or("?".to_owned(), |n| n.to_string())
    ));
    row.notes.push(format!(
        "gateway RSS {rss_before:.1} MiB before, {peak:.1} MiB peak, {rss_after:.1} MiB 3 s after"
    ));
    settle_and_check(rig, &mut row, &seen).await?;
    Ok(row)
}
