//! The report: a Markdown page (headline, every run, the guide's table beside ours), the same
//! data as JSON, and an SVG chart of the latency percentiles per operation.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::load::{Mode, Op, RunResult, TAIL_MS};

/// The optimization guide's published figures (ms), for the side-by-side table.
const GUIDE: [(Op, f64); 4] = [
    (Op::Conversation, 45.0),
    (Op::Matches, 38.0),
    (Op::Send, 92.0),
    (Op::Photos, 28.0),
];

/// The closed-loop mix run first, on a cold cache, and again after every other run of the mix,
/// on the running system (`scripts/bench.sh` labels them so; only the hop runs come after it).
const COLD_MIX: &str = "mix, closed loop";
const RUNNING_MIX: &str = "mix, closed loop, running system";

/// The runs `scripts/bench.sh` alternates, the gateway's hop against nginx's, one operation at
/// a time: `hop N: <operation> through the gateway` and `hop N: <operation> through nginx
/// proxy_pass`.
fn hop_label(op: Op, via_nginx: bool) -> String {
    if via_nginx {
        format!("{} through nginx proxy_pass", op.name())
    } else {
        format!("{} through the gateway", op.name())
    }
}

/// The pair a hop run belongs to (`hop N: <what>`), if it is a run of `what`.
fn pair_number(r: &RunResult, what: &str) -> Option<String> {
    let (n, rest) = r.label.strip_prefix("hop ")?.split_once(": ")?;
    (rest == what).then(|| n.to_owned())
}

/// The run of `what` in pair `n`.
fn in_pair<'a>(runs: &'a [RunResult], n: &str, what: &str) -> Option<&'a RunResult> {
    runs.iter()
        .find(|r| pair_number(r, what).as_deref() == Some(n))
}

/// The alternated hop runs of `op`, (through the gateway, through nginx) for each pair, in the
/// order they ran.
fn hop_pairs(runs: &[RunResult], op: Op) -> Vec<(&RunResult, &RunResult)> {
    let (gateway, nginx) = (hop_label(op, false), hop_label(op, true));
    runs.iter()
        .filter_map(|g| Some((g, in_pair(runs, &pair_number(g, &gateway)?, &nginx)?)))
        .collect()
}

/// The hop runs through `dream-bench floor` (a bare actix-web + hyper proxy), labelled
/// `hop N: <operation> through the actix-web floor`, run between each pair's two.
fn floor_label(op: Op) -> String {
    format!("{} through the actix-web floor", op.name())
}

/// The CPU of one proxy process (the gateway, nginx's workers, the floor) per request it
/// passed in a run, in µs.
fn proxy_cpu(r: &RunResult, proxy: &str) -> Option<f64> {
    let u = r.services.get(proxy)?;
    (r.throughput > 0.0).then(|| u.cpu_percent / 100.0 * 1e6 / r.throughput)
}

/// The headline's line on the floor: the same operation through a bare actix-web + hyper
/// proxy in the same pairs, so that what the gateway adds stands apart from what its two
/// crates cost, and (when nginx ran) the two crates alone are set against nginx.
fn floor_line(op: Op, runs: &[RunResult]) -> Option<String> {
    let (gateway, floor, nginx) = (hop_label(op, false), floor_label(op), hop_label(op, true));
    // Each pair's gateway and floor runs, with its nginx run when there is one.
    let pairs: Vec<(&RunResult, &RunResult, Option<&RunResult>)> = runs
        .iter()
        .filter_map(|g| {
            let n = pair_number(g, &gateway)?;
            Some((g, in_pair(runs, &n, &floor)?, in_pair(runs, &n, &nginx)))
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let throughputs = pairs
        .iter()
        .map(|(_, f, _)| format!("{:.0}", f.throughput))
        .collect::<Vec<_>>()
        .join(" / ");
    let shares: Option<Vec<String>> = pairs
        .iter()
        .map(|(_, f, n)| {
            let n = n.filter(|n| n.throughput > 0.0)?;
            Some(format!("{:.0} %", 100.0 * f.throughput / n.throughput))
        })
        .collect();
    // Both medians over the same pairs: those with both CPUs.
    let cpus: Vec<(f64, f64)> = pairs
        .iter()
        .filter_map(|(g, f, _)| Some((proxy_cpu(f, "floor")?, proxy_cpu(g, "gateway")?)))
        .collect();
    let floor_cpu = median(cpus.iter().map(|c| c.0).collect());
    let gateway_cpu = median(cpus.iter().map(|c| c.1).collect());
    Some(format!(
        "- The floor under the gateway's hop: the {} through a bare actix-web + hyper proxy \
         (`dream-bench floor`: no token, limit, route table, request id, metrics or header \
         rule), run in the same pairs: **{throughputs} requests/s**{}{}.",
        op.name(),
        shares.map_or_else(String::new, |s| format!(
            ", at {} of nginx's throughput",
            s.join(" / ")
        )),
        match (floor_cpu, gateway_cpu) {
            (Some(f), Some(g)) => format!(
                "; {f:.0} µs of CPU per request (median), to which the gateway's own work adds \
                 {:.0} µs",
                g - f
            ),
            _ => String::new(),
        }
    ))
}

/// The median of some figures (none for none).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// For a run that sent messages: how many sends took longer than the open loop's goal allows
/// their p99, beside how many of the INSERTs (with the COMMIT) chat timed meanwhile did alone,
/// which no hop after PostgreSQL's can make up.
fn send_tail_line(run: &RunResult) -> Option<String> {
    let send = run.ops.get(&Op::Send)?;
    let insert = run.send_insert.as_ref()?;
    Some(format!(
        "  - Sends over {TAIL_MS} ms: **{:.2} %** of those answered (a p99 within {TAIL_MS} ms \
         allows 1 %); inside chat, the INSERT with its COMMIT alone took over {TAIL_MS} ms for \
         {:.2} % of the {} it timed meanwhile.",
        100.0 * send.over_tail?,
        100.0 * insert.over_tail,
        insert.inserts
    ))
}

/// The headline's line on the gateway's hop against nginx's, pair by pair.
fn hop_line(op: Op, pairs: &[(&RunResult, &RunResult)]) -> Option<String> {
    let join = |f: &dyn Fn(&RunResult, &RunResult) -> String| {
        pairs
            .iter()
            .map(|(g, n)| f(g, n))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let ratio = |g: &RunResult, n: &RunResult| g.throughput / n.throughput;
    let ratios: Vec<f64> = pairs.iter().map(|(g, n)| ratio(g, n)).collect();
    let mid = median(ratios)?;
    let gateway_cpu = median(
        pairs
            .iter()
            .filter_map(|(g, _)| proxy_cpu(g, "gateway"))
            .collect(),
    );
    let nginx_cpu = median(
        pairs
            .iter()
            .filter_map(|(_, n)| proxy_cpu(n, "nginx"))
            .collect(),
    );
    Some(format!(
        "- The gateway's hop against nginx's `proxy_pass` (the reference), the {} with {} \
         connections, alternated in {} pairs of runs: through the gateway **{} requests/s**, \
         through nginx {}; the gateway at **{}** of nginx's throughput (median {:.0} %){}.",
        op.name(),
        pairs[0].0.connections,
        pairs.len(),
        join(&|g, _| format!("{:.0}", g.throughput)),
        join(&|_, n| format!("{:.0}", n.throughput)),
        join(&|g, n| format!("{:.0} %", 100.0 * ratio(g, n))),
        100.0 * mid,
        match (gateway_cpu, nginx_cpu) {
            (Some(g), Some(n)) => format!(
                ", the CPU per request (median) {g:.0} µs in the gateway against {n:.0} µs in \
                 nginx's workers"
            ),
            (Some(g), None) => format!(", the gateway's CPU {g:.0} µs per request (median)"),
            (None, Some(n)) => format!(", nginx's workers' CPU {n:.0} µs per request (median)"),
            (None, None) => String::new(),
        },
    ))
}

fn find(runs: &[RunResult], mode: Mode, cache: bool, mixed: bool) -> Option<&RunResult> {
    runs.iter()
        .filter(|r| r.mode == mode && r.cache == cache && (r.ops.len() > 1) == mixed)
        .max_by(|a, b| a.throughput.total_cmp(&b.throughput))
}

/// The mixed open-loop run with the cache at the lowest rate.
fn lowest_open(runs: &[RunResult]) -> Option<&RunResult> {
    runs.iter()
        .filter(|r| r.mode == Mode::Open && r.cache && r.ops.len() > 1)
        .min_by_key(|r| r.rate.unwrap_or(u64::MAX))
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

/// A rate as a percentage with one decimal (`—` when there is none).
fn percent(v: Option<f64>) -> String {
    fmt_opt(v, |h| format!("{:.1} %", 100.0 * h))
}

pub fn write(results: &Path, out: &Path) -> anyhow::Result<()> {
    let runs: Vec<RunResult> = serde_json::from_slice(&std::fs::read(results)?)?;
    anyhow::ensure!(!runs.is_empty(), "no runs in {}", results.display());
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let stem = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let chart = out.with_extension("svg");
    chart_svg(&runs, &chart)?;
    std::fs::write(
        out.with_extension("json"),
        serde_json::to_vec_pretty(&runs)?,
    )?;

    let mut md = String::new();
    let date = runs[0].at.format("%Y-%m-%d");
    writeln!(md, "# Dream benchmark, {date}\n")?;
    writeln!(
        md,
        "Release build, the whole stack on one machine (the load generator included), the \
         `dreamctl seed` defaults (2,000 users, 20,000 matches, 2 M messages, 200 k photos), \
         requests through the gateway with real tokens, users drawn with Zipf s = 1.1. \
         The load generator is hyper on one thread (since report 2026-11-30-k; reqwest on two \
         before, which took about twice the CPU per request from the same two cores); a run \
         whose generator column says \"saturated\" was paced by the generator, not the services. \
         Reproduce with `make bench`.\n"
    )?;
    writeln!(md, "![latency percentiles per operation]({stem}.svg)\n")?;

    writeln!(md, "## Headline\n")?;
    let closed = find(&runs, Mode::Closed, true, true);
    let open = find(&runs, Mode::Open, true, true);
    if let Some(c) = closed {
        writeln!(
            md,
            "- Closed loop, {} connections, the mix: **{:.0} requests/s**, {} errors in {} requests.",
            c.connections, c.throughput, c.errors, c.requests
        )?;
    }
    for o in runs
        .iter()
        .filter(|r| r.mode == Mode::Open && r.cache && r.ops.len() > 1)
    {
        let worst = o.ops.values().map(|s| s.p99).fold(0.0, f64::max);
        writeln!(
            md,
            "- Open loop at {} requests/s of the mix: {:.0} answered per second, worst p99 over the operations **{worst:.2} ms**, {} errors in {} requests{}.",
            o.rate.unwrap_or(0),
            o.throughput,
            o.errors,
            o.requests,
            o.lateness.as_ref().map_or(String::new(), |l| format!(
                " (the generator started its requests late by p50 {:.3} / p99 {:.3} ms, counted in the latencies)",
                l.p50, l.p99
            ))
        )?;
        if let Some(line) = send_tail_line(o) {
            writeln!(md, "{line}")?;
        }
    }
    let labelled = |label: &str| runs.iter().find(|r| r.label == label);
    if let (Some(running), Some(cold)) = (labelled(RUNNING_MIX), labelled(COLD_MIX)) {
        writeln!(
            md,
            "- Cache hit rate in the closed-loop mix on a running system (after every other run \
             of the mix, {:.0} s warm-up): **{}** ({}); {} database queries per \
             request. From a cold Redis (the first run, {:.0} s warm-up): {} ({}).",
            running.warmup,
            percent(running.hit_rate),
            running.family_hits(),
            fmt_opt(running.queries_per_request, |q| format!("{q:.2}")),
            cold.warmup,
            percent(cold.hit_rate),
            cold.family_hits(),
        )?;
    } else if let Some(c) = closed.or(open) {
        writeln!(
            md,
            "- Cache hit rate during the mix: **{}**; {} database queries per request.",
            percent(c.hit_rate),
            fmt_opt(c.queries_per_request, |q| format!("{q:.2}"))
        )?;
    }
    if let Some(c) = closed.or(open) {
        let peak = c
            .services
            .iter()
            .map(|(n, u)| format!("{n} {:.0} MB", u.peak_rss_mb))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(md, "- Peak resident memory: {peak}.")?;
        writeln!(
            md,
            "- The machine's CPU in use during the closed-loop mix: {:.0} % of its 2 cores (the load generator alone: {:.0} % of one core).",
            c.machine_cpu_percent, c.generator_cpu_percent
        )?;
    }
    // The calibration runs: the cheapest API request, alone, with and without the gateway hop.
    let ceiling: Vec<String> = runs
        .iter()
        .filter(|r| r.ops.keys().eq([&Op::Catalogue]) && !r.label.starts_with("hop "))
        .map(|r| {
            format!(
                "{} ({} connections): **{:.0} requests/s**",
                r.label.trim_start_matches("ceiling: "),
                r.connections,
                r.throughput
            )
        })
        .collect();
    if !ceiling.is_empty() {
        writeln!(
            md,
            "- The machine's ceiling, measured with the cheapest request there is (the public \
             character catalogue, answered from the chat service's memory: no token, no Redis in \
             chat): {}.",
            ceiling.join("; ")
        )?;
    }
    for op in [Op::Catalogue, Op::Conversation] {
        let pairs = hop_pairs(&runs, op);
        if let Some(line) = hop_line(op, &pairs) {
            writeln!(md, "{line}")?;
        }
        if let Some(line) = floor_line(op, &runs) {
            writeln!(md, "{line}")?;
        }
    }
    writeln!(md)?;

    writeln!(md, "## Beside the guide\n")?;
    writeln!(
        md,
        "The guide published one latency per operation (no percentile or load stated). Ours: p50 / p95 / p99 in the open-loop mix at its lowest rate, and p95 in the no-cache run.\n"
    )?;
    writeln!(
        md,
        "| operation | guide | Dream p50 | Dream p95 | Dream p99 | Dream p95, no cache |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    let nocache = find(&runs, Mode::Closed, false, true).or(find(&runs, Mode::Open, false, true));
    // The guide's table takes the open-loop run at the lowest rate: latency, not saturation.
    let base = lowest_open(&runs).or(closed);
    for (op, guide) in GUIDE {
        let s = base.and_then(|r| r.ops.get(&op));
        let n = nocache.and_then(|r| r.ops.get(&op));
        writeln!(
            md,
            "| {} | {guide:.0} ms | {} | {} | {} | {} |",
            op.name(),
            fmt_opt(s.map(|s| s.p50), |v| format!("{v:.2} ms")),
            fmt_opt(s.map(|s| s.p95), |v| format!("{v:.2} ms")),
            fmt_opt(s.map(|s| s.p99), |v| format!("{v:.2} ms")),
            fmt_opt(n.map(|s| s.p95), |v| format!("{v:.2} ms")),
        )?;
    }
    writeln!(
        md,
        "| p95 target | < 200 ms | | | | |\n| cache hit rate | > 80 % | {} | | | |\n",
        percent(base.and_then(|r| r.hit_rate))
    )?;

    writeln!(md, "## Every run\n")?;
    writeln!(
        md,
        "| run | load | cache | req/s | errors | operation | p50 ms | p95 ms | p99 ms | max ms | hit rate | queries/req | generator CPU | machine CPU |"
    )?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in &runs {
        let load = match r.mode {
            Mode::Closed => format!("closed, {} conns", r.connections),
            Mode::Open => format!("open, {} req/s", r.rate.unwrap_or(0)),
        };
        for (i, (op, s)) in r.ops.iter().enumerate() {
            let first = i == 0;
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
                if first { r.label.as_str() } else { "" },
                if first { load.as_str() } else { "" },
                if first {
                    if r.cache { "on" } else { "off" }
                } else {
                    ""
                },
                if first {
                    format!("{:.0}", r.throughput)
                } else {
                    String::new()
                },
                s.errors,
                op.name(),
                s.p50,
                s.p95,
                s.p99,
                s.max,
                match (first, r.cache) {
                    (true, true) => percent(r.hit_rate),
                    // Only the in-process catalogue still counts hits with the cache off.
                    (true, false) => "cache off".to_owned(),
                    (false, _) => String::new(),
                },
                if first {
                    fmt_opt(r.queries_per_request, |q| format!("{q:.2}"))
                } else {
                    String::new()
                },
                if first {
                    format!(
                        "{:.0} %{}",
                        r.generator_cpu_percent,
                        if crate::load::generator_saturated(r) {
                            " (saturated)"
                        } else {
                            ""
                        }
                    )
                } else {
                    String::new()
                },
                if first {
                    format!("{:.0} %", r.machine_cpu_percent)
                } else {
                    String::new()
                },
            )?;
        }
    }
    writeln!(md, "\n## CPU and memory per service\n")?;
    writeln!(
        md,
        "CPU in percent of one core (the machine has 2), averaged over the run; peak resident memory sampled every 100 ms.\n"
    )?;
    let names: Vec<&String> = runs
        .iter()
        .flat_map(|r| r.services.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    write!(md, "| run |")?;
    for n in &names {
        write!(md, " {n} CPU | {n} RSS |")?;
    }
    writeln!(md)?;
    writeln!(md, "|---|{}", "---|---|".repeat(names.len()))?;
    for r in &runs {
        write!(md, "| {} |", r.label)?;
        for n in &names {
            match r.services.get(*n) {
                Some(u) => write!(md, " {:.0} % | {:.0} MB |", u.cpu_percent, u.peak_rss_mb)?,
                None => write!(md, " — | — |")?,
            }
        }
        writeln!(md)?;
    }
    if names.iter().any(|n| n.as_str() == "floor") {
        writeln!(
            md,
            "\nfloor is `dream-bench floor`, the bare actix-web + hyper proxy the hop runs set \
             the gateway against, watched in the runs through it only."
        )?;
    }
    if names.iter().any(|n| n.as_str() == "nginx") {
        writeln!(
            md,
            "\nnginx (the reference hop) is its worker processes together, watched in the runs \
             through it only; their resident memory is summed, so what the workers share is \
             counted once per worker."
        )?;
    }
    std::fs::write(out.with_extension("md"), md)?;
    println!(
        "report: {} (+ .json, .svg)",
        out.with_extension("md").display()
    );
    Ok(())
}

/// Grouped bars: p50, p95 and p99 of each operation, for the mixed runs with the cache on.
fn chart_svg(runs: &[RunResult], path: &Path) -> anyhow::Result<()> {
    let panels: Vec<&RunResult> = [lowest_open(runs), find(runs, Mode::Closed, true, true)]
        .into_iter()
        .flatten()
        .collect();
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, run) in areas.iter().zip(&panels) {
        let ymax = run.ops.values().map(|s| s.p99).fold(0.1, f64::max) * 1.45;
        let title = match run.mode {
            Mode::Open => format!("open loop, {} req/s", run.rate.unwrap_or(0)),
            Mode::Closed => format!(
                "closed loop, {} conns ({:.0} req/s)",
                run.connections, run.throughput
            ),
        };
        let ops: Vec<(Op, f64, f64, f64)> = run
            .ops
            .iter()
            .map(|(o, s)| (*o, s.p50, s.p95, s.p99))
            .collect();
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..ops.len() as f64, 0f64..ymax)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("latency (ms)")
            .draw()?;
        // Each operation's name above its bars.
        chart.draw_series(ops.iter().enumerate().map(|(i, o)| {
            Text::new(
                o.0.name().to_owned(),
                (i as f64 + 0.2, o.3.max(o.2) * 1.06 + ymax * 0.02),
                ("sans-serif", 13),
            )
        }))?;
        let colors = [
            RGBColor(110, 170, 230),
            RGBColor(240, 160, 60),
            RGBColor(200, 70, 70),
        ];
        for (pi, (label, color)) in ["p50", "p95", "p99"].iter().zip(colors).enumerate() {
            chart
                .draw_series(ops.iter().enumerate().map(|(i, o)| {
                    let v = [o.1, o.2, o.3][pi];
                    let x0 = i as f64 + 0.15 + pi as f64 * 0.23;
                    Rectangle::new([(x0, 0.0), (x0 + 0.2, v)], color.filled())
                }))?
                .label(*label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalogue run with its proxy's CPU, nginx's workers' in a run through nginx, else the
    /// gateway's (no operation statistics: the hop line reads none).
    fn run(label: &str, throughput: f64, proxy_cpu: f64) -> RunResult {
        let proxy = if label.contains("through nginx") {
            "nginx"
        } else if label.contains("actix-web floor") {
            "floor"
        } else {
            "gateway"
        };
        serde_json::from_value(serde_json::json!({
            "label": label,
            "mode": "closed",
            "connections": 64,
            "rate": null,
            "cache": true,
            "mix": "catalogue=1",
            "seconds": 8.0,
            "requests": (throughput * 8.0) as u64,
            "errors": 0,
            "throughput": throughput,
            "ops": {},
            "generator_cpu_percent": 50.0,
            "services": { proxy: { "cpu_percent": proxy_cpu, "peak_rss_mb": 30.0 } },
            "hit_rate": null,
            "queries_per_request": null,
            "at": "2026-11-30T18:00:00Z"
        }))
        .unwrap_or_else(|e| panic!("a run: {e}"))
    }

    /// The floor's runs are read pair by pair beside the gateway's: their throughput, and the
    /// CPU the gateway spends over theirs.
    #[test]
    fn the_floor_is_set_beside_the_gateway_in_the_same_pairs() {
        let runs = vec![
            run("hop 1: catalogue through the gateway", 18_000.0, 90.0),
            run(
                "hop 1: catalogue through the actix-web floor",
                19_000.0,
                57.0,
            ),
            run("hop 1: catalogue through nginx proxy_pass", 20_000.0, 80.0),
            run("hop 2: catalogue through the gateway", 21_000.0, 105.0),
            run(
                "hop 2: catalogue through the actix-web floor",
                20_000.0,
                60.0,
            ),
            run("hop 2: catalogue through nginx proxy_pass", 20_000.0, 90.0),
            // A floor run of a pair that is not there is not read.
            run(
                "hop 3: catalogue through the actix-web floor",
                1_000.0,
                99.0,
            ),
        ];
        let line = floor_line(Op::Catalogue, &runs).unwrap_or_default();
        assert!(
            line.contains("**19000 / 20000 requests/s**, at 95 % / 100 % of nginx's throughput"),
            "{line}"
        );
        assert!(
            line.contains(
                "30 µs of CPU per request (median), to which the gateway's own work adds 20 µs"
            ),
            "{line}"
        );
        assert!(!line.contains("  "), "one line, no runs of spaces: {line}");
        // Without floor runs (an older results file), no line.
        let older: Vec<RunResult> = runs
            .iter()
            .filter(|r| !r.label.contains("floor"))
            .cloned()
            .collect();
        assert_eq!(floor_line(Op::Catalogue, &older), None);
        // Without nginx, the floor is still set beside the gateway.
        let alone: Vec<RunResult> = runs
            .iter()
            .filter(|r| !r.label.contains("nginx"))
            .cloned()
            .collect();
        let line = floor_line(Op::Catalogue, &alone).unwrap_or_default();
        assert!(line.contains("**19000 / 20000 requests/s**;"), "{line}");
        assert!(!line.contains("nginx"), "{line}");
        assert!(line.contains("adds 20 µs"), "{line}");
    }

    #[test]
    fn the_hop_runs_are_compared_pair_by_pair() {
        let runs = vec![
            run("ceiling: catalogue straight to chat", 30_000.0, 0.0),
            run("hop 1: catalogue through the gateway", 18_000.0, 90.0),
            run("hop 1: catalogue through nginx proxy_pass", 20_000.0, 80.0),
            run("hop 2: catalogue through the gateway", 21_000.0, 100.0),
            run("hop 2: catalogue through nginx proxy_pass", 20_000.0, 90.0),
            run("hop 3: catalogue through the gateway", 10_000.0, 50.0),
            // A pair without its nginx run (nginx not installed) is left out.
            run("hop 4: catalogue through the gateway", 10_000.0, 50.0),
            run("hop 3: catalogue through nginx proxy_pass", 10_000.0, 40.0),
            // Another operation's pairs are its own.
            run("hop 1: conversation through the gateway", 9_000.0, 60.0),
            run(
                "hop 1: conversation through nginx proxy_pass",
                10_000.0,
                0.0,
            ),
        ];
        let pairs = hop_pairs(&runs, Op::Catalogue);
        assert_eq!(
            pairs
                .iter()
                .map(|(g, n)| (g.label.as_str(), n.throughput))
                .collect::<Vec<_>>(),
            [
                ("hop 1: catalogue through the gateway", 20_000.0),
                ("hop 2: catalogue through the gateway", 20_000.0),
                ("hop 3: catalogue through the gateway", 10_000.0),
            ]
        );
        let line = hop_line(Op::Catalogue, &pairs).unwrap_or_default();
        assert!(line.contains("the catalogue with 64 connections"), "{line}");
        assert!(
            line.contains("**18000 / 21000 / 10000 requests/s**"),
            "{line}"
        );
        assert!(
            line.contains("through nginx 20000 / 20000 / 10000;"),
            "{line}"
        );
        assert!(
            line.contains("**90 % / 105 % / 100 %** of nginx's throughput (median 100 %)"),
            "{line}"
        );
        // The gateway: 0.9 core over 18,000/s is 50 µs; 1 core over 21,000/s 48 µs; 0.5 over
        // 10,000/s 50 µs. nginx: 0.8 core over 20,000/s is 40 µs, 0.9 over 20,000/s 45 µs, 0.4
        // over 10,000/s 40 µs.
        assert!(
            line.contains(
                "the CPU per request (median) 50 µs in the gateway against 40 µs in nginx's workers"
            ),
            "{line}"
        );
        // Without nginx's CPU (an older results file), the gateway's alone.
        let mut older: Vec<RunResult> = runs.clone();
        for r in &mut older {
            r.services.remove("nginx");
        }
        let older = hop_line(Op::Catalogue, &hop_pairs(&older, Op::Catalogue)).unwrap_or_default();
        assert!(
            older.contains("the gateway's CPU 50 µs per request (median)."),
            "{older}"
        );
        // nginx's without the gateway's: nginx's alone.
        let mut nginx_only: Vec<RunResult> = runs.clone();
        for r in &mut nginx_only {
            r.services.remove("gateway");
        }
        let nginx_only =
            hop_line(Op::Catalogue, &hop_pairs(&nginx_only, Op::Catalogue)).unwrap_or_default();
        assert!(
            nginx_only.contains("nginx's workers' CPU 40 µs per request (median)."),
            "{nginx_only}"
        );
        assert_eq!(hop_line(Op::Catalogue, &[]), None);
        let conversation =
            hop_line(Op::Conversation, &hop_pairs(&runs, Op::Conversation)).unwrap_or_default();
        assert!(
            conversation.contains("the conversation with 64 connections, alternated in 1 pairs"),
            "{conversation}"
        );
        assert!(conversation.contains("**90 %**"), "{conversation}");
        assert_eq!(median(vec![3.0, 1.0]), Some(2.0));
    }

    #[test]
    fn the_send_tail_is_set_beside_its_insert() {
        let mut open = run("mix, open loop, 2000/s", 2000.0, 20.0);
        assert_eq!(send_tail_line(&open), None, "no send, no line");
        open.ops.insert(
            Op::Send,
            serde_json::from_value(serde_json::json!({
                "requests": 4000, "errors": 0, "p50": 1.9, "p95": 4.2, "p99": 7.6,
                "max": 31.0, "mean": 2.1, "over_tail": 0.0215
            }))
            .unwrap_or_else(|e| panic!("op stats: {e}")),
        );
        assert_eq!(send_tail_line(&open), None, "no INSERT histogram, no line");
        open.send_insert = Some(crate::load::InsertTail {
            inserts: 4100,
            over_tail: 0.0037,
        });
        let line = send_tail_line(&open).unwrap_or_default();
        assert!(
            line.contains("Sends over 5 ms: **2.15 %** of those answered"),
            "{line}"
        );
        assert!(line.contains("for 0.37 % of the 4100 it timed"), "{line}");
    }
}
