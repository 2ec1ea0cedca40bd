//! `make chaos`: every fault experiment on a fresh stack of its own (its own PostgreSQL and
//! Redis, two chat replicas), one row each, the report printed and written beside the
//! benchmark results.

use clap::Parser;
use e2e::chaos::{Experiment, Report, Rig, RigOptions, Scale};

#[derive(Parser)]
#[command(about = "Dream's fault suite: faults injected under load, the damage counted")]
struct Args {
    /// Experiments to run (comma-separated), or `all`.
    #[arg(long, default_value = "all")]
    experiments: String,
    /// Open-loop requests per second during the load experiments.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Users in the load (each matched with one character).
    #[arg(long, default_value_t = 40)]
    users: usize,
    /// Seconds of fault.
    #[arg(long, default_value_t = 10)]
    fault_secs: u64,
    /// RUST_LOG of the stack's processes (their logs are printed when a row is not whole).
    #[arg(long, default_value = "warn")]
    rust_log: String,
    /// Where to write the report (`.md` and `.json` are added).
    #[arg(long, default_value = "bench/results/chaos")]
    out: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    service_kit::testing::install_crypto();
    let experiments: Vec<Experiment> = if args.experiments == "all" {
        Experiment::ALL.to_vec()
    } else {
        args.experiments
            .split(',')
            .map(|n| {
                Experiment::parse(n.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown experiment {n:?}; known: {}",
                        Experiment::ALL.map(Experiment::name).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut scale = Scale::full();
    scale.rate = args.rate;
    scale.fault = std::time::Duration::from_secs(args.fault_secs);
    let mut report = Report {
        started: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        settings: format!(
            "Release binaries; gateway, auth, two chat replicas, ai, media on a PostgreSQL and a Redis of their own; \
             {} users; open loop at {} req/s (20 % sends with client ids, 50 % conversation reads, 30 % match lists); \
             {:.0} s of load, {:.0} s of fault, {:.0} s after; every acknowledged write checked in PostgreSQL.",
            args.users,
            scale.rate,
            scale.before.as_secs_f64(),
            scale.fault.as_secs_f64(),
            scale.after.as_secs_f64()
        ),
        rows: Vec::new(),
    };
    for e in experiments {
        eprintln!("── {}", e.name());
        let mut rig = Rig::start(RigOptions {
            users: args.users,
            own_postgres: true,
            env: vec![("RUST_LOG", args.rust_log.clone())],
        })
        .await?;
        let row = e.run(&mut rig, &scale).await?;
        eprintln!("{row:#?}");
        if !row.whole() || row.notes.iter().any(|n| n.contains("not back")) {
            for p in rig.stack.processes() {
                let log = p.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("── {} (last {} lines)", p.name, tail.len());
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        report.rows.push(row);
        drop(rig);
    }
    let md = report.markdown();
    println!("{md}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(format!("{}.md", args.out), &md)?;
    std::fs::write(
        format!("{}.json", args.out),
        serde_json::to_string_pretty(&report)?,
    )?;
    let broken: Vec<_> = report.rows.iter().filter(|r| !r.whole()).collect();
    if !broken.is_empty() {
        anyhow::bail!(
            "not whole: {}",
            broken
                .iter()
                .map(|r| r.experiment)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
