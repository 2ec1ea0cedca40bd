//! `dream-bench`: the load generator behind `make bench`.
//!
//! - `login`: logs the seeded users in through the gateway (real tokens) and notes their matches.
//! - `run`: one measured run (closed loop: N connections as fast as they go; open loop: a fixed
//!   request rate, latency counted from each request's intended start, so a stall is not
//!   hidden by coordinated omission), with users drawn from a Zipf distribution. It also reads
//!   every service's CPU time and resident memory from `/proc`, and the cache hit rate and
//!   queries per request from the services' own `/metrics`. Results go to a JSON file.
//! - `report`: the Markdown report, its JSON, and an SVG chart of the latency percentiles.
//! - `floor`: a bare actix-web + hyper proxy, the reference the gateway's hop is set against
//!   beside nginx's (see `floor.rs`).

mod client;
mod floor;
mod load;
use bench_procs as procs;
mod report;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Dream's load generator and benchmark report")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log the seeded users in and save their tokens and matches.
    Login(load::LoginArgs),
    /// Run one load and append its measurements to a results file.
    Run(load::RunArgs),
    /// Serve a bare actix-web proxy to one upstream (the hop's floor, for `make bench`).
    Floor(floor::FloorArgs),
    /// Write the report (Markdown, JSON, SVG chart) from a results file.
    Report {
        /// The results `run` appended to.
        #[arg(long)]
        results: PathBuf,
        /// Output path without extension, e.g. bench/results/2026-11-27.
        #[arg(long)]
        out: PathBuf,
    },
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let command = match Cli::parse().command {
        // actix-web's own runtimes, one per worker: not inside the generator's.
        Command::Floor(args) => return floor::serve(args),
        command => command,
    };
    // One thread: the load's tasks wake each other without waking another thread, and the
    // generator takes less of the two cores the services under it need.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Login(args) => load::login(args).await,
            Command::Run(args) => load::run(args).await,
            Command::Report { results, out } => report::write(&results, &out),
            // Served above, before any runtime: actix-web's own cannot start inside this one.
            Command::Floor(_) => Err(anyhow::anyhow!("the floor is not served from here")),
        }
    })
}
