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
use indicatif::{ProgressBar, ProgressStyle};

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
    /// VACUUM (ANALYZE) the large tables and report unused or overlapping indexes, sizes and
    /// dead tuples.
    Maintenance {
        /// Report only; vacuum nothing.
        #[arg(long)]
        dry_run: bool,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The live dashboard: pools, Redis, latency percentiles, slow queries.
    Monitor {
        /// Print one snapshot and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 5)]
        interval: u64,
        /// One JSON document per refresh instead of the text dashboard.
        #[arg(long)]
        json: bool,
        /// A service to watch as NAME=URL of its admin listener (repeatable); default: the
        /// local `make dev` admin ports (each service's port + 1000).
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
    /// Replace existing data instead of refusing to seed a non-empty database.
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
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn".into()),
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
    let bar = ProgressBar::new(cfg.users as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} users ({per_sec}, eta {eta})",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    let progress = |done: i64, _total: i64| bar.set_position(done as u64);
    let started = Instant::now();
    let (counts, _) = match seed::seed(url, &cfg, &hash, args.reset, &progress).await {
        Err(seed::SeedError::NotEmpty(users)) if args.if_empty => {
            bar.finish_and_clear();
            println!("Already seeded ({users} users): reused as it is.");
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    bar.finish();
    println!(
        "Seeded in {:.1} s: {} users, {} characters, {} matches, {} messages ({} unread), {} photos, {} memories; ANALYZE done",
        started.elapsed().as_secs_f64(),
        counts.users,
        counts.characters,
        counts.matches,
        counts.messages,
        counts.unread,
        counts.photos,
        counts.memories
    );
    println!(
        "Every seeded user is user<N>@example.com with the password {:?}",
        seed::DEMO_PASSWORD
    );
    Ok(ExitCode::SUCCESS)
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
    if dry_run {
        if !json {
            println!("Dry run: would run");
            for sql in maintenance::vacuum_statements() {
                println!("  {sql}");
            }
        }
    } else {
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
    println!(
        "\n{:<22} {:>12} {:>10} {:>7} {:>10} {:>10}",
        "table", "live rows", "dead", "dead %", "table", "indexes"
    );
    for t in &report.tables {
        println!(
            "{:<22} {:>12} {:>10} {:>6.1}% {:>10} {:>10}",
            t.table,
            t.live_rows,
            t.dead_rows,
            t.dead_ratio * 100.0,
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
    let mut m = monitor::Monitor::new(services, &service_kit::config::redis()?, interval)?;
    loop {
        // --once counts every key now; a live dashboard spreads the count over refreshes.
        let snapshot = m.snapshot(if once { 10_000 } else { 20 }).await;
        if json {
            println!("{}", serde_json::to_string(&snapshot)?);
        } else {
            if !once {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", monitor::render(&snapshot));
        }
        if once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}
