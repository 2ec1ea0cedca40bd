//! Logging in, and the load itself: the guide's four operations, users drawn from a Zipf
//! distribution, closed or open loop, latency in HDR histograms.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{self, Call, Connection, Pool, Target};
use crate::procs;
use hyper::header::HeaderValue;

#[derive(clap::Args)]
pub struct LoginArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Seeded users `user1@example.com` … `user{N}@example.com`.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    #[arg(long, default_value = "dream-demo-2026")]
    password: String,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    #[arg(long)]
    out: PathBuf,
}

/// A logged-in user: a real access token and the characters they matched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub n: usize,
    pub token: String,
    pub characters: Vec<String>,
}

fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .http1_only()
        .timeout(Duration::from_secs(10))
        .build()?)
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let http = client(args.parallel)?;
    let started = Instant::now();
    let gateway = args.gateway.trim_end_matches('/').to_owned();
    let sessions: Vec<anyhow::Result<Session>> = futures_util::stream::iter(1..=args.users)
        .map(|n| {
            let (http, gateway, password) = (http.clone(), gateway.clone(), args.password.clone());
            async move {
                let res = http
                    .post(format!("{gateway}/api/v1/auth/login"))
                    .json(&json!({ "email": format!("user{n}@example.com"), "password": password }))
                    .send()
                    .await?;
                anyhow::ensure!(res.status().is_success(), "login user{n}: {}", res.status());
                let body: serde_json::Value = res.json().await?;
                let token = body["access_token"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("login user{n}: no token"))?
                    .to_owned();
                let matches: serde_json::Value = http
                    .get(format!("{gateway}/api/v1/matches"))
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let characters = matches
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| m["character_id"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Session {
                    n,
                    token,
                    characters,
                })
            }
        })
        .buffered(args.parallel)
        .collect()
        .await;
    let sessions: Vec<Session> = sessions.into_iter().collect::<anyhow::Result<_>>()?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec(&sessions)?)?;
    println!(
        "logged in {} users in {:.1} s",
        sessions.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The guide's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The latest 100 messages of a conversation.
    Conversation,
    Matches,
    /// The first page of a photo gallery.
    Photos,
    /// Sending a message.
    Send,
    /// Not in the mix: the public character catalogue, served from the chat service's memory
    /// (no token, no Redis in chat). Run alone, through the gateway and straight to chat, it
    /// gives the machine's ceiling for a request of this shape.
    Catalogue,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::Conversation,
        Op::Matches,
        Op::Photos,
        Op::Send,
        Op::Catalogue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Conversation => "conversation",
            Op::Matches => "matches",
            Op::Photos => "photos",
            Op::Send => "send",
            Op::Catalogue => "catalogue",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Op> {
        Op::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown operation {s:?}"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// N connections, each sending its next request when the last one is answered.
    Closed,
    /// A fixed rate of requests, whatever the answers do.
    Open,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// What `login` wrote.
    #[arg(long)]
    tokens: PathBuf,
    /// A name for this run in the report.
    #[arg(long)]
    label: String,
    #[arg(long, value_enum, default_value = "closed")]
    mode: Mode,
    /// Connections (closed loop).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of the same load before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// The mix, as op=weight pairs.
    #[arg(long, default_value = "conversation=50,matches=20,photos=20,send=10")]
    mix: String,
    /// Zipf exponent of the user popularity.
    #[arg(long, default_value_t = 1.1)]
    zipf: f64,
    /// Whether the services run with their cache (recorded in the results).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cache: bool,
    /// A service to watch: name=url@pid (its /metrics and its process).
    #[arg(long = "service")]
    services: Vec<String>,
    /// A process without /metrics to watch: name=pid[,pid…] (nginx's workers, the reference
    /// hop), its CPU and resident memory summed over the pids.
    #[arg(long = "process")]
    processes: Vec<String>,
    /// The results file to append to (a JSON array).
    #[arg(long)]
    out: PathBuf,
}

/// Latency of one operation in a run, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpStats {
    pub requests: u64,
    pub errors: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    /// The share of the answered requests that took over [`TAIL_MS`].
    #[serde(default)]
    pub over_tail: Option<f64>,
}

/// Where the open loop's goal puts a request's latency: p99 at most this, in milliseconds.
pub const TAIL_MS: u64 = 5;

/// The sends' `INSERT` (with its COMMIT) as chat timed it during a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InsertTail {
    pub inserts: u64,
    /// The share of them that took over [`TAIL_MS`].
    pub over_tail: f64,
}

/// One run, as the report reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub label: String,
    pub mode: Mode,
    pub connections: usize,
    pub rate: Option<u64>,
    pub cache: bool,
    pub mix: String,
    pub seconds: f64,
    /// Seconds of load before the measured part.
    #[serde(default)]
    pub warmup: f64,
    pub requests: u64,
    pub errors: u64,
    /// Successful requests per second.
    pub throughput: f64,
    pub ops: BTreeMap<Op, OpStats>,
    /// The load generator's own CPU, percent of one core.
    pub generator_cpu_percent: f64,
    /// The whole machine's CPU in use (every process, PostgreSQL and Redis included),
    /// percent of all its cores.
    #[serde(default)]
    pub machine_cpu_percent: f64,
    pub services: BTreeMap<String, procs::Usage>,
    /// Cache hits over hits and misses, from the services' counters, during the run.
    pub hit_rate: Option<f64>,
    /// The same per cache family (`conversation`, `photos`, …) that was looked up in the run.
    #[serde(default)]
    pub family_hit_rates: BTreeMap<String, f64>,
    /// Database queries (all services) per API request the gateway answered.
    pub queries_per_request: Option<f64>,
    /// Open loop: how late the generator started its requests (inside their latency).
    #[serde(default)]
    pub lateness: Option<Lateness>,
    /// The sends' `INSERT` + COMMIT inside chat, when the run sent messages.
    #[serde(default)]
    pub send_insert: Option<InsertTail>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl RunResult {
    /// `conversation 97.9 %, matches 100.0 %, …`: the hit rate of each family looked up.
    pub fn family_hits(&self) -> String {
        self.family_hit_rates
            .iter()
            .map(|(family, h)| format!("{family} {:.1} %", 100.0 * h))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct Workload {
    sessions: Vec<Session>,
    /// Each session's `Authorization` value, made once.
    bearers: Vec<HeaderValue>,
    zipf: Zipf<f64>,
    ops: Vec<Op>,
    weights: Vec<u32>,
    target: Target,
}

impl Workload {
    fn pick(&self, rng: &mut SmallRng) -> (Op, usize, Option<&str>) {
        let total: u32 = self.weights.iter().sum();
        let mut r = rng.random_range(0..total.max(1));
        let mut op = self.ops[0];
        for (o, w) in self.ops.iter().zip(&self.weights) {
            if r < *w {
                op = *o;
                break;
            }
            r -= w;
        }
        let rank = self.zipf.sample(rng) as usize;
        let n = rank.clamp(1, self.sessions.len()) - 1;
        let s = &self.sessions[n];
        let c = (!s.characters.is_empty())
            .then(|| s.characters[rng.random_range(0..s.characters.len())].as_str());
        (op, n, c)
    }

    fn request(&self, rng: &mut SmallRng) -> (Op, Call) {
        let (mut op, n, c) = self.pick(rng);
        if c.is_none() && op != Op::Catalogue {
            op = Op::Matches;
        }
        let c = c.unwrap_or_default();
        let bearer = Some(self.bearers[n].clone());
        let call = match op {
            Op::Conversation => Call::get(
                format!("/api/v1/conversations/{c}/messages?limit=100"),
                bearer,
            ),
            Op::Matches => Call::get("/api/v1/matches".into(), bearer),
            Op::Photos => Call::get(format!("/api/v1/photos/{c}?limit=20"), bearer),
            Op::Send => Call {
                method: hyper::Method::POST,
                path: format!("/api/v1/conversations/{c}/messages"),
                token: bearer,
                json: Some(
                    serde_json::to_vec(
                        &json!({ "content": format!("bench {}", rng.random::<u32>()) }),
                    )
                    .unwrap_or_default()
                    .into(),
                ),
            },
            Op::Catalogue => Call::get("/api/v1/characters".into(), None),
        };
        (op, call)
    }
}

type Hists = BTreeMap<Op, (Histogram<u64>, u64)>;

fn new_hists() -> Hists {
    Op::ALL
        .into_iter()
        .map(|o| {
            // 1 µs .. 60 s, 3 significant digits.
            let h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| {
                Histogram::new(3).unwrap_or_else(|_| unreachable!("3 digits is valid"))
            });
            (o, (h, 0))
        })
        .collect()
}

fn record(h: &mut Hists, op: Op, micros: u64, ok: bool) {
    if let Some((hist, errors)) = h.get_mut(&op) {
        if ok {
            let _ = hist.record(micros.max(1));
        } else {
            *errors += 1;
        }
    }
}

/// Closed loop: `connections` workers, each with its own histograms, merged at the end.
async fn closed(
    w: Arc<Workload>,
    connections: usize,
    warmup: Duration,
    measure: Duration,
) -> Hists {
    let start = Instant::now();
    let (from, until) = (start + warmup, start + warmup + measure);
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(i as u64 + 1);
                let mut h = new_hists();
                let mut conn = Connection::new(w.target.clone());
                loop {
                    let t0 = Instant::now();
                    if t0 >= until {
                        break;
                    }
                    let (op, call) = w.request(&mut rng);
                    let ok = conn.exchange(call).await;
                    if t0 >= from {
                        record(&mut h, op, t0.elapsed().as_micros() as u64, ok);
                    }
                }
                h
            })
        })
        .collect();
    let mut all = new_hists();
    for t in tasks {
        if let Ok(h) = t.await {
            for (op, (hist, errors)) in h {
                if let Some((a, e)) = all.get_mut(&op) {
                    let _ = a.add(&hist);
                    *e += errors;
                }
            }
        }
    }
    all
}

/// How late the generator itself started the open loop's requests (from the due time to the
/// request's task running on the runtime that sends it), in milliseconds: a check of the
/// instrument. Latency counts from each request's due time, so this is inside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lateness {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Open loop: requests start on a fixed schedule; each one's latency counts from when it was
/// due, not from when it got sent, so a stalled server shows in the numbers.
///
/// The schedule is kept by a thread of its own that sleeps to each due time: tokio's timers
/// tick in whole milliseconds, so a request due between two ticks waited for the next one (on
/// average half a millisecond more per request, every request of a 2,000/s run was sent in
/// pairs), and that wait was counted as the server's.
async fn open(
    w: Arc<Workload>,
    rate: u64,
    warmup: Duration,
    measure: Duration,
) -> (Hists, Option<Lateness>) {
    let hists = Arc::new(Mutex::new(new_hists()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(8192));
    let total = ((warmup + measure).as_secs_f64() * rate as f64) as u64;
    let warm = (warmup.as_secs_f64() * rate as f64) as u64;
    let runtime = tokio::runtime::Handle::current();
    let pool = Pool::new(w.target.clone());
    let late = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| unreachable!("1 µs .. 60 s, 3 digits is valid")),
    ));
    let pacer = {
        let (hists, late) = (hists.clone(), late.clone());
        std::thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(7);
            let mut tasks = Vec::with_capacity(total as usize);
            let start = Instant::now();
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let (op, call) = w.request(&mut rng);
                let (hists, pool) = (hists.clone(), pool.clone());
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    // Too many requests outstanding: counted as an error, never silently skipped.
                    if i >= warm {
                        record(
                            &mut hists.lock().unwrap_or_else(|e| e.into_inner()),
                            op,
                            0,
                            false,
                        );
                    }
                    continue;
                };
                let late = late.clone();
                tasks.push(runtime.spawn(async move {
                    // Started: the request is on the runtime that sends it.
                    if i >= warm {
                        let _ = late
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record((due.elapsed().as_micros() as u64).max(1));
                    }
                    let ok = pool.exchange(call).await;
                    let micros = due.elapsed().as_micros() as u64;
                    drop(permit);
                    if i >= warm {
                        record(
                            &mut hists.lock().unwrap_or_else(|e| e.into_inner()),
                            op,
                            micros,
                            ok,
                        );
                    }
                }));
            }
            tasks
        })
    };
    let tasks = match tokio::task::spawn_blocking(move || pacer.join()).await {
        Ok(Ok(tasks)) => tasks,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    for t in tasks {
        let _ = t.await;
    }
    let hists = Arc::try_unwrap(hists)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_else(|arc| {
            arc.lock()
                .map(|h| h.clone())
                .unwrap_or_else(|_| new_hists())
        });
    let late = late.lock().unwrap_or_else(|e| e.into_inner());
    let ms = |v: u64| v as f64 / 1000.0;
    let lateness = (!late.is_empty()).then(|| Lateness {
        p50: ms(late.value_at_quantile(0.50)),
        p99: ms(late.value_at_quantile(0.99)),
        max: ms(late.max()),
    });
    (hists, lateness)
}

/// `name=pid[,pid…]` of `--process`.
fn parse_processes(specs: &[String]) -> anyhow::Result<Vec<(String, Vec<u32>)>> {
    specs
        .iter()
        .map(|s| {
            let (name, pids) = s
                .split_once('=')
                .filter(|(name, _)| !name.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("--process {s:?}: expected name=pid[,pid…]"))?;
            let pids = pids
                .split(',')
                .map(|p| p.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--process {s:?}: a pid is not a number ({e})"))?;
            Ok((name.trim().to_owned(), pids))
        })
        .collect()
}

fn parse_services(specs: &[String]) -> anyhow::Result<Vec<(String, String, Option<u32>)>> {
    specs
        .iter()
        .map(|s| {
            let (name, rest) = s
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--service {s:?}: expected name=url@pid"))?;
            let (url, pid) = match rest.rsplit_once('@') {
                Some((u, p)) => (u, Some(p.parse()?)),
                None => (rest, None),
            };
            Ok((name.to_owned(), url.trim_end_matches('/').to_owned(), pid))
        })
        .collect()
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let sessions: Vec<Session> = serde_json::from_slice(&std::fs::read(&args.tokens)?)?;
    anyhow::ensure!(
        !sessions.is_empty(),
        "no sessions in {}",
        args.tokens.display()
    );
    let mut ops = Vec::new();
    let mut weights = Vec::new();
    for part in args.mix.split(',') {
        let (op, w) = part
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--mix {part:?}: expected op=weight"))?;
        ops.push(Op::parse(op.trim())?);
        weights.push(w.trim().parse()?);
    }
    let w = Arc::new(Workload {
        zipf: Zipf::new(sessions.len() as f64, args.zipf)?,
        bearers: sessions
            .iter()
            .map(|s| client::bearer(&s.token))
            .collect::<anyhow::Result<_>>()?,
        sessions,
        ops,
        weights,
        target: Target::parse(&args.gateway)?,
    });
    let services = parse_services(&args.services)?;
    let urls: Vec<(String, String)> = services
        .iter()
        .map(|(n, u, _)| (n.clone(), u.clone()))
        .collect();
    let mut pids: Vec<(String, Vec<u32>)> = services
        .iter()
        .filter_map(|(n, _, p)| p.map(|p| (n.clone(), vec![p])))
        .collect();
    pids.extend(parse_processes(&args.processes)?);
    let mut names = std::collections::BTreeSet::new();
    for (name, _) in &pids {
        anyhow::ensure!(names.insert(name), "{name:?} is watched twice");
    }
    // For the services' /metrics, before and after.
    let http = client(8)?;
    let (warmup, measure) = (
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.duration),
    );

    // Counters and CPU from the end of the warm-up to the end of the run.
    let probe = {
        let (http, urls, pids) = (http.clone(), urls.clone(), pids.clone());
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let counters = procs::scrape(&http, &urls).await;
            let cpu = procs::cpu_by_pid(&pids);
            let me = procs::cpu_seconds(std::process::id()).unwrap_or(0.0);
            let machine = procs::machine_jiffies();
            let at = Instant::now();
            // Peak resident memory, sampled every 100 ms while measuring.
            let mut peaks: BTreeMap<String, u64> = BTreeMap::new();
            while at.elapsed() < measure {
                for (n, p) in &pids {
                    let rss = p.iter().filter_map(|p| procs::rss_bytes(*p)).sum();
                    let e = peaks.entry(n.clone()).or_default();
                    *e = (*e).max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (counters, cpu, me, at, peaks, machine)
        })
    };
    let (hists, lateness) = match args.mode {
        Mode::Closed => (
            closed(w.clone(), args.connections, warmup, measure).await,
            None,
        ),
        Mode::Open => open(w.clone(), args.rate, warmup, measure).await,
    };
    let (before, cpu_before, me_before, measured_from, peaks, machine_before) = probe.await?;
    let machine_cpu_percent = match (machine_before, procs::machine_jiffies()) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    };
    let seconds = measured_from
        .elapsed()
        .as_secs_f64()
        .max(measure.as_secs_f64());
    let generator_cpu_percent =
        100.0 * (procs::cpu_seconds(std::process::id()).unwrap_or(0.0) - me_before) / seconds;
    let after = procs::scrape(&http, &urls).await;
    let delta = after.delta(&before);
    let usage = procs::usage_map(&pids, &cpu_before, &peaks, seconds);

    let ms = |v: u64| v as f64 / 1000.0;
    let mut op_stats = BTreeMap::new();
    let (mut requests, mut errors) = (0, 0);
    for (op, (h, e)) in &hists {
        if h.is_empty() && *e == 0 {
            continue;
        }
        requests += h.len() + e;
        errors += e;
        op_stats.insert(
            *op,
            OpStats {
                requests: h.len() + e,
                errors: *e,
                p50: ms(h.value_at_quantile(0.50)),
                p95: ms(h.value_at_quantile(0.95)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
                over_tail: (!h.is_empty()).then(|| {
                    let within = h.count_between(0, TAIL_MS * 1000);
                    h.len().saturating_sub(within) as f64 / h.len() as f64
                }),
            },
        );
    }
    let sent = op_stats.contains_key(&Op::Send);
    let (cache_hits, cache_misses) = delta.cache_totals();
    let lookups = cache_hits + cache_misses;
    let result = RunResult {
        label: args.label,
        mode: args.mode,
        connections: args.connections,
        rate: (args.mode == Mode::Open).then_some(args.rate),
        cache: args.cache,
        mix: args.mix,
        seconds,
        warmup: warmup.as_secs_f64(),
        requests,
        errors,
        throughput: (requests - errors) as f64 / seconds,
        ops: op_stats,
        generator_cpu_percent,
        machine_cpu_percent,
        services: usage,
        hit_rate: (lookups > 0.0).then(|| cache_hits / lookups),
        family_hit_rates: delta
            .families
            .iter()
            .filter(|(_, (h, m))| h + m > 0.0)
            .map(|(family, (h, m))| (family.clone(), h / (h + m)))
            .collect(),
        queries_per_request: (delta.gateway_requests > 0.0)
            .then(|| delta.db_queries / delta.gateway_requests),
        lateness,
        send_insert: delta.send_insert_over(TAIL_MS * 1000).filter(|_| sent).map(
            |(inserts, over_tail)| InsertTail {
                inserts: inserts as u64,
                over_tail,
            },
        ),
        at: chrono::Utc::now(),
    };
    print_run(&result);
    let mut all: Vec<RunResult> = std::fs::read(&args.out)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    all.push(result);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&all)?)?;
    Ok(())
}

/// Whether the generator's one thread was (nearly) all used: then it, not the services, set
/// the run's pace.
pub fn generator_saturated(r: &RunResult) -> bool {
    r.generator_cpu_percent >= 90.0
}

fn print_run(r: &RunResult) {
    println!(
        "── {} ({:?}{}, cache {}) ── {:.0} req/s, {} requests, {} errors, hit rate {}, {} queries/request, generator CPU {:.0}%, machine CPU {:.0}%",
        r.label,
        r.mode,
        match r.mode {
            Mode::Closed => format!(", {} connections", r.connections),
            Mode::Open => format!(", {} req/s offered", r.rate.unwrap_or(0)),
        },
        if r.cache { "on" } else { "off" },
        r.throughput,
        r.requests,
        r.errors,
        r.hit_rate
            .map_or("—".into(), |h| format!("{:.1}%", 100.0 * h)),
        r.queries_per_request
            .map_or("—".into(), |q| format!("{q:.2}")),
        r.generator_cpu_percent,
        r.machine_cpu_percent,
    );
    if generator_saturated(r) {
        println!(
            "   the generator used {:.0} % of its one thread: this run measured it as much as the services",
            r.generator_cpu_percent
        );
    }
    for (op, s) in &r.ops {
        println!(
            "   {:<13} p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ({} requests, {} errors)",
            op.name(),
            s.p50,
            s.p95,
            s.p99,
            s.max,
            s.requests,
            s.errors
        );
    }
    if !r.family_hit_rates.is_empty() {
        println!("   cache hit rate per family: {}", r.family_hits());
    }
    if let (Some(over), Some(insert)) = (
        r.ops.get(&Op::Send).and_then(|s| s.over_tail),
        &r.send_insert,
    ) {
        println!(
            "   over {TAIL_MS} ms: {:.2} % of the sends answered; inside chat, {:.2} % of the {} INSERTs (with the COMMIT) it timed",
            100.0 * over,
            100.0 * insert.over_tail,
            insert.inserts
        );
    }
    if let Some(l) = &r.lateness {
        println!(
            "   the generator started requests late by p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms (inside the latencies above)",
            l.p50, l.p99, l.max
        );
    }
    for (name, u) in &r.services {
        println!(
            "   {name:<13} CPU {:>5.0}%  peak RSS {:>6.1} MB",
            u.cpu_percent, u.peak_rss_mb
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_named_with_their_pids() {
        let specs = ["nginx=12, 13".to_owned(), "redis=7".to_owned()];
        assert_eq!(
            parse_processes(&specs).unwrap_or_default(),
            [
                ("nginx".to_owned(), vec![12, 13]),
                ("redis".to_owned(), vec![7])
            ]
        );
        for bad in ["nginx", "nginx=", "nginx=12,x", "=12"] {
            assert!(parse_processes(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
