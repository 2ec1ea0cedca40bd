#![doc = include_str!("../README.md")]

//! `dreamctl`: Dream's operator CLI.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use db_core::migrate::{self, Outcome};
use db_core::models::SecretString;
use db_core::seed::{self, SeedConfig};
use db_core::{AsyncPgConnection, explain};

async fn establish(url: &str) -> anyhow::Result<AsyncPgConnection> {
    db_core::pool::connect_unpooled(url, "dreamctl")
        .await
        .context("cannot connect to the database")
}
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

mod monitor;

#[derive(Parser)]
#[command(
    name = "dreamctl",
    version,
    about = "Operate a Dream deployment: migrations, data, query plans"
)]
struct Cli {
    /// PostgreSQL to work on.
    #[arg(long, env = "DATABASE_URL", default_value = db_core::config::DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations and print what was applied or skipped.
    Migrate {
        /// Create the database first if it does not exist.
        #[arg(long)]
        create_database: bool,
    },
    /// Load the demo catalogue and account, or generate the synthetic dataset.
    Seed(SeedArgs),
    /// VACUUM (ANALYZE) every table (most dead tuples first), forget expired session
    /// revocations, and report dead tuples before and after, sizes, unused or overlapping
    /// indexes. Meant to run nightly (k8s/base/maintenance-cronjob.yaml).
    Maintenance {
        /// Report only; vacuum nothing.
        #[arg(long)]
        dry_run: bool,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The live dashboard, in 80×24: each process's health, request and error rates and pools,
    /// Redis, latency per operation against its kind's target, the latest slow queries. Plain
    /// text (no screen clearing) when the output is not a terminal.
    Monitor {
        /// One report and exit (rates and percentiles over one --interval).
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes (at least 1).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
        /// One JSON document per line and refresh instead of the text dashboard.
        #[arg(long)]
        json: bool,
        /// A process to watch as NAME=URL of its admin listener (repeatable; replicas as
        /// chat-1, chat-2); default: the local `make dev` admin ports (each port + 1000).
        #[arg(long = "service", value_name = "NAME=URL")]
        services: Vec<String>,
    },
    /// EXPLAIN (ANALYZE, BUFFERS) every hot query; fail on a sequential scan of a large table.
    Explain {
        /// Print only the summary table, not the plans.
        #[arg(long)]
        summary: bool,
    },
}

#[derive(Args)]
struct SeedArgs {
    /// Load the demo characters and the demo account only (what `make dev` does).
    #[arg(long)]
    demo: bool,
    /// Load (or update) the character catalogue only, and tell running services to drop their
    /// cached copies: what a deployment's migration Job runs. Idempotent; creates no account.
    #[arg(long, conflicts_with_all = ["demo", "reset", "if_empty"])]
    characters_only: bool,
    /// Replace existing data instead of refusing to seed a database that holds accounts besides
    /// the demo one (which is kept). The cache under REDIS_KEY_PREFIX is cleared either way.
    #[arg(long)]
    reset: bool,
    /// Keep existing data and succeed (what `make bench` does to reuse its database).
    #[arg(long, conflicts_with = "reset")]
    if_empty: bool,
    #[arg(long, default_value_t = SeedConfig::default().users)]
    users: i64,
    #[arg(long, default_value_t = SeedConfig::default().characters)]
    characters: i64,
    #[arg(long, default_value_t = SeedConfig::default().matches_per_user)]
    matches_per_user: i64,
    #[arg(long, default_value_t = SeedConfig::default().messages_per_match)]
    messages_per_match: i64,
    #[arg(long, default_value_t = SeedConfig::default().photos_per_match)]
    photos_per_match: i64,
    /// Connections inserting in parallel.
    #[arg(long, default_value_t = SeedConfig::default().parallelism)]
    parallelism: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Slow statements are what seeding and vacuuming are made of: not worth a warning.
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn,db_core::instrumentation=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Migrate { create_database } => {
            run_migrate(&cli.database_url, create_database).await
        }
        Command::Seed(args) => run_seed(&cli.database_url, args).await,
        Command::Explain { summary } => run_explain(&cli.database_url, summary).await,
        Command::Maintenance { dry_run, json } => {
            run_maintenance(&cli.database_url, dry_run, json).await
        }
        Command::Monitor {
            once,
            interval,
            json,
            services,
        } => run_monitor(once, interval, json, services).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The URL with its password hidden, for printing.
fn display_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn run_migrate(url: &str, create_database: bool) -> anyhow::Result<ExitCode> {
    if create_database && db_core::pool::create_database_if_missing(url).await? {
        println!("Created the database of {}", display_url(url));
    }
    println!("Migrating {}", display_url(url));
    let report = migrate::run_pending(url).await?;
    for (name, outcome) in &report.migrations {
        match outcome {
            Outcome::Applied(t) => println!("  ✅ applied  {name} ({} ms)", t.as_millis()),
            Outcome::Skipped => println!("  ⏭  skipped  {name} (already applied)"),
            Outcome::Failed(e) => println!("  ❌ failed   {name}: {e}"),
            Outcome::NotRun => println!("  ·  not run  {name}"),
        }
    }
    println!(
        "Summary: {} applied, {} skipped, {} failed ({} total)",
        report.applied(),
        report.skipped(),
        report.failed(),
        report.migrations.len()
    );
    Ok(if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn demo_password_hash() -> anyhow::Result<SecretString> {
    use argon2::{Argon2, PasswordHasher};
    let hash = Argon2::default()
        .hash_password(seed::DEMO_PASSWORD.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing the demo password: {e}"))?;
    Ok(SecretString::new(hash.to_string()))
}

async fn run_seed(url: &str, args: SeedArgs) -> anyhow::Result<ExitCode> {
    if args.characters_only {
        let mut conn: AsyncPgConnection = establish(url).await?;
        let n = seed::load_catalogue(&mut conn).await?;
        // Best effort: without Redis the services' copies expire on their own.
        let dropped = match db_core::RedisPool::new(&service_kit::config::redis()?) {
            Ok(redis) if redis.ping().await.is_ok() => {
                db_core::Cache::new(redis).invalidate_characters(None).await;
                true
            }
            _ => false,
        };
        println!(
            "Catalogue: {n} characters loaded{}",
            if dropped {
                "; cached copies dropped"
            } else {
                " (Redis not reached: cached copies expire within 30 minutes)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let hash = demo_password_hash()?;
    if args.demo {
        let mut conn: AsyncPgConnection = establish(url).await?;
        let report = seed::load_demo(&mut conn, &hash).await?;
        println!(
            "Demo catalogue: {} characters. Demo account {} ({}): password {:?}",
            report.characters,
            seed::DEMO_EMAIL,
            if report.user_created {
                "created"
            } else {
                "already there"
            },
            seed::DEMO_PASSWORD
        );
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = SeedConfig {
        users: args.users,
        characters: args.characters,
        matches_per_user: args.matches_per_user,
        messages_per_match: args.messages_per_match,
        photos_per_match: args.photos_per_match,
        parallelism: args.parallelism,
        ..SeedConfig::default()
    };
    println!(
        "Seeding {}: {} users, {} characters, {} matches each, {} messages and {} photos per match",
        display_url(url),
        cfg.users,
        cfg.characters,
        cfg.matches_per_user,
        cfg.messages_per_match,
        cfg.photos_per_match
    );
    let progress = SeedProgress::new(cfg.users)?;
    let report = |step: seed::Step| progress.step(step);
    let seeded = match seed::seed(url, &cfg, &hash, args.reset, &report).await {
        Err(seed::SeedError::NotEmpty(users)) if args.if_empty => {
            progress.clear();
            println!("Already seeded ({users} users): reused as it is.");
            return Ok(ExitCode::SUCCESS);
        }
        Err(seed::SeedError::NotEmpty(users)) => {
            progress.clear();
            anyhow::bail!(
                "the database already holds {users} account{} besides the demo one: \
                 `dreamctl seed --reset` (`make seed RESET=1`) replaces them (the demo account is kept)",
                if users == 1 { "" } else { "s" }
            );
        }
        other => other?,
    };
    progress.finish();
    let counts = &seeded.counts;
    println!(
        "Seeded in {:.1} s: {} users, {} characters, {} matches, {} messages ({} unread), {} photos, {} memories; ANALYZE done",
        seeded.took.as_secs_f64(),
        counts.users,
        counts.characters,
        counts.matches,
        counts.messages,
        counts.unread,
        counts.photos,
        counts.memories
    );
    // What the running services cached described the data that is gone: the whole keyspace
    // under our prefix goes (catalogue, leaderboard, match lists, profiles, windows), the
    // services' in-process catalogues are told to drop theirs, and the removed accounts'
    // sessions are announced revoked.
    let spinner = ProgressBar::new_spinner().with_message("clearing the cache…");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let cleared = clear_cache(&seeded).await;
    spinner.finish_and_clear();
    match cleared {
        Some((keys, prefix)) => println!(
            "Cache: {keys} keys under {prefix}: dropped; {}",
            sessions(seeded.revoked.len())
        ),
        None => println!(
            "Cache: Redis not reached, nothing dropped: clear the prefix or restart the services before using them; {}",
            sessions(seeded.revoked.len())
        ),
    }
    if seeded.demo_kept {
        println!(
            "Demo account {} kept (password {:?}), matched again with the first character",
            seed::DEMO_EMAIL,
            seed::DEMO_PASSWORD
        );
    }
    println!(
        "Every seeded user is user<N>@example.com with the password {:?}",
        seed::DEMO_PASSWORD
    );
    Ok(ExitCode::SUCCESS)
}

fn sessions(n: usize) -> String {
    format!(
        "{n} session{} of removed accounts revoked",
        if n == 1 { "" } else { "s" }
    )
}

/// Drops every key under the prefix, tells the services to drop their in-process catalogues and
/// that the removed accounts' session families are revoked. `None` when Redis does not answer.
async fn clear_cache(seeded: &seed::Seeded) -> Option<(u64, String)> {
    let redis = db_core::RedisPool::new(&service_kit::config::redis().ok()?).ok()?;
    redis.ping().await.ok()?;
    let prefix = redis.prefix().to_owned();
    let cache = db_core::Cache::new(redis);
    let keys = cache.delete_matching(&cache.keys().everything()).await;
    cache.invalidate_characters(None).await;
    cache.publish_revocations(&seeded.revoked).await;
    Some((keys, prefix))
}

/// A step's line once it is over: what it was and how long it took.
fn done(bar: &ProgressBar, started: Instant) {
    let what = bar.message();
    if let Ok(style) = ProgressStyle::with_template("  ✓ {msg}") {
        bar.set_style(style);
    }
    bar.finish_with_message(format!("{what} ({:.1} s)", started.elapsed().as_secs_f64()));
}

/// The seed's progress: one line per step, and a bar for the conversations (the long part).
/// Without a terminal (a Job's log, a pipe), plain lines instead: a step as it ends, and the
/// conversations every quarter.
struct SeedProgress {
    bars: MultiProgress,
    current: std::sync::Mutex<Option<(ProgressBar, Instant)>>,
    users: i64,
    plain: Option<std::sync::Mutex<PlainProgress>>,
}

struct PlainProgress {
    step: Option<(&'static str, Instant)>,
    quarter: i64,
}

impl SeedProgress {
    fn new(users: i64) -> anyhow::Result<Self> {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Ok(Self {
            bars: MultiProgress::new(),
            current: std::sync::Mutex::new(None),
            users,
            plain: (!terminal).then(|| {
                std::sync::Mutex::new(PlainProgress {
                    step: None,
                    quarter: 0,
                })
            }),
        })
    }

    fn plain_step(p: &mut PlainProgress, step: Option<seed::Step>) {
        if let Some(seed::Step::Conversations { done, total }) = step
            && p.step.is_some_and(|(name, _)| name == "conversations")
        {
            let quarter = done * 4 / total.max(1);
            if quarter > p.quarter && done < total {
                p.quarter = quarter;
                println!("  … {done}/{total} users");
            }
            return;
        }
        if let Some((name, started)) = p.step.take() {
            println!("  ✓ {name} ({:.1} s)", started.elapsed().as_secs_f64());
        }
        p.step = step.map(|s| {
            let name = match s {
                seed::Step::Emptying => "emptying the tables (demo account set aside)",
                seed::Step::Characters => "characters",
                seed::Step::Users => "users",
                seed::Step::Conversations { .. } => "conversations",
                seed::Step::Indexes => "search indexes and statistics",
            };
            (name, Instant::now())
        });
    }

    fn step(&self, step: seed::Step) {
        if let Some(plain) = &self.plain {
            if let Ok(mut p) = plain.lock() {
                Self::plain_step(&mut p, Some(step));
            }
            return;
        }
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        if let seed::Step::Conversations { done, .. } = step
            && let Some((bar, _)) = current.as_ref()
            && bar.length().is_some()
        {
            bar.set_position(done as u64);
            return;
        }
        if let Some((bar, started)) = current.take() {
            done(&bar, started);
        }
        let (message, bar) = match step {
            seed::Step::Emptying => ("emptying the tables (demo account set aside)", None),
            seed::Step::Characters => ("characters", None),
            seed::Step::Users => ("users", None),
            seed::Step::Conversations { .. } => (
                "conversations, photos, memories",
                Some(ProgressBar::new(self.users as u64)),
            ),
            seed::Step::Indexes => ("search indexes and statistics", None),
        };
        let bar = match bar {
            Some(bar) => bar.with_style(
                ProgressStyle::with_template(
                    "  {msg:34} [{bar:30}] {pos}/{len} users, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("  {msg:34} {spinner} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let bar = self.bars.add(bar.with_message(message));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        *current = Some((bar, Instant::now()));
    }

    fn finish(&self) {
        if let Some(plain) = &self.plain
            && let Ok(mut p) = plain.lock()
        {
            Self::plain_step(&mut p, None);
        }
        if let Ok(mut current) = self.current.lock()
            && let Some((bar, started)) = current.take()
        {
            done(&bar, started);
        }
    }

    fn clear(&self) {
        let _ = self.bars.clear();
    }
}

async fn run_explain(url: &str, summary: bool) -> anyhow::Result<ExitCode> {
    let mut conn: AsyncPgConnection = establish(url).await?;
    let Some(sample) = explain::Sample::from_data(&mut conn).await? else {
        anyhow::bail!("no conversation in the database: run `dreamctl seed` first");
    };
    println!(
        "EXPLAIN (ANALYZE, BUFFERS) on {} — user {}, character {}, search {:?}",
        display_url(url),
        sample.user_id,
        sample.character_id,
        sample.search_term
    );
    let plans = explain::explain_all(&mut conn, &sample).await?;
    if !summary {
        for p in &plans {
            println!("\n── {} ──\n{}", p.name, p.text());
        }
    }
    println!(
        "\n{:<38} {:>10}  {:<32} verdict",
        "query", "exec ms", "expected index"
    );
    let mut failed = 0;
    for p in &plans {
        let verdict = if !p.large_seq_scans.is_empty() {
            format!("SEQ SCAN on {}", p.large_seq_scans.join(", "))
        } else if !p.uses_index(p.expected_index) {
            "index not used".to_owned()
        } else {
            "ok".to_owned()
        };
        if !p.large_seq_scans.is_empty() {
            failed += 1;
        }
        println!(
            "{:<38} {:>10.3}  {:<32} {verdict}",
            p.name, p.execution_ms, p.expected_index
        );
    }
    if failed > 0 {
        println!(
            "\n{failed} hot quer{} scan a large table sequentially",
            if failed == 1 { "y" } else { "ies" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(b: i64) -> String {
    let b = b as f64;
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b} B"),
    }
}

async fn run_maintenance(url: &str, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    use db_core::maintenance;
    let mut conn: AsyncPgConnection = establish(url).await?;
    let before = maintenance::report(&mut conn).await?;
    if dry_run {
        if !json {
            println!("Dry run: would run");
            for sql in maintenance::vacuum_statements(&mut conn).await? {
                println!("  {sql}");
            }
            println!("  and forget the session revocations older than a day");
        }
    } else {
        let pruned = maintenance::prune_revocations(&mut conn).await?;
        if !json {
            println!("Forgot {pruned} session revocations older than a day (their tokens expired)");
        }
        for (sql, took) in maintenance::vacuum(&mut conn).await? {
            if !json {
                println!("  {sql}  ({} ms)", took.as_millis());
            }
        }
    }
    let report = maintenance::report(&mut conn).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let dead_before = |table: &str| {
        before
            .tables
            .iter()
            .find(|t| t.table == table)
            .map_or(0, |t| t.dead_rows)
    };
    println!(
        "\n{:<26} {:>10} {:>12} {:>10} {:>10} {:>10}",
        "table", "live rows", "dead before", "dead now", "table", "indexes"
    );
    for t in &report.tables {
        println!(
            "{:<26} {:>10} {:>12} {:>10} {:>10} {:>10}",
            t.table,
            t.live_rows,
            dead_before(&t.table),
            t.dead_rows,
            human_bytes(t.table_bytes),
            human_bytes(t.index_bytes)
        );
    }
    println!(
        "\n{:<40} {:<18} {:>12} {:>10}",
        "index", "table", "scans", "size"
    );
    for i in &report.indexes {
        println!(
            "{:<40} {:<18} {:>12} {:>10}",
            i.index,
            i.table,
            i.scans,
            human_bytes(i.bytes)
        );
    }
    let unused: Vec<_> = report.unused().map(|i| i.index.as_str()).collect();
    println!(
        "\nNever scanned since the statistics reset (constraints aside): {}",
        if unused.is_empty() {
            "none".to_owned()
        } else {
            unused.join(", ")
        }
    );
    if report.overlapping.is_empty() {
        println!("Duplicate or overlapping indexes: none");
    } else {
        for o in &report.overlapping {
            println!(
                "Overlapping: {} is a prefix of {} (drop it?)",
                o.index, o.covered_by
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_monitor(
    once: bool,
    interval: u64,
    json: bool,
    services: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let services: Vec<(String, String)> = if services.is_empty() {
        let port = |var: &str, default: u16| {
            std::env::var(var)
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(default)
        };
        [
            ("gateway", "GATEWAY_PORT", 8080),
            ("auth", "AUTH_PORT", 8081),
            ("chat", "CHAT_PORT", 8082),
            ("ai", "AI_PORT", 8083),
            ("media", "MEDIA_PORT", 8084),
        ]
        .into_iter()
        .map(|(n, var, d)| {
            let admin = port(var, d).saturating_add(1000);
            (n.to_owned(), format!("http://127.0.0.1:{admin}"))
        })
        .collect()
    } else {
        services
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(n, u)| (n.to_owned(), u.trim_end_matches('/').to_owned()))
            })
            .collect::<Option<_>>()
            .context("--service takes NAME=URL")?
    };
    let interval = std::time::Duration::from_secs(interval.max(1));
    let mut m = monitor::Monitor::new(services, &service_kit::config::redis()?)?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let style = monitor::Style {
        color: terminal && std::env::var_os("NO_COLOR").is_none(),
        rows: terminal.then_some(monitor::ROWS),
    };
    if once {
        // Rates need two readings: the report covers one interval.
        let _ = m.snapshot(10_000).await;
        tokio::time::sleep(interval).await;
    }
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
        // --once counts every key now; a live dashboard spreads the count over refreshes.
        let snapshot = m.snapshot(if once { 10_000 } else { 20 }).await;
        let text = if json {
            format!("{}\n", serde_json::to_string(&snapshot)?)
        } else if terminal && !once {
            // Home, the dashboard, then clear what an earlier, longer screen left below it.
            format!(
                "\x1b[H{}\x1b[J",
                monitor::render(&snapshot, style).replace('\n', "\x1b[K\n")
            )
        } else if once {
            monitor::render(&snapshot, style)
        } else {
            format!("{}\n", monitor::render(&snapshot, style))
        };
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) ends the monitor quietly.
            if out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if once {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
