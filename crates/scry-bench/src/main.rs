//! `scry-bench`: runs scry's workloads, each beside its floor on the same machine in the same
//! run (these machines are shared and noisy: absolute times drift, ratios hold), and writes the
//! results as JSON and as a short table. Data is generated from a seed, so runs compare.
//!
//! ```text
//! cargo run --release -p scry-bench                 # every workload at full size
//! cargo run --release -p scry-bench -- W4 --quick   # one workload, sizes for CI
//! ```
//!
//! Each workload runs in a child process of its own, so its peak memory is its own; a case that
//! measures its own peak (W1's text ingest, in a process of its own again) says so in its row.

mod enrichment;
mod graph;
mod http;
mod ingest;
mod lookups;
mod pivots;
mod rules;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::Parser;
use serde_json::{Value, json};

/// The workloads, in order.
const WORKLOADS: [&str; 6] = ["W1", "W2", "W3", "W4", "W5", "W6"];

#[derive(Debug, Parser)]
#[command(
    name = "scry-bench",
    about = "scry's benchmarks, each beside its floor"
)]
struct Cli {
    /// Workloads to run (W1 ingest, W2 rules, W3 enrichment, W4 lookups, W5 pivots, W6 HTTP); all
    /// when left out
    workloads: Vec<String>,
    /// Sizes that fit CI: a smoke test that the benchmarks still run, not a timing
    #[arg(long)]
    quick: bool,
    /// Seed for the generated data
    #[arg(long, default_value_t = 20261124)]
    seed: u64,
    /// A PostgreSQL server W1 also ingests into (in a schema of its own, dropped afterwards)
    #[arg(
        long,
        value_name = "URL",
        env = "SCRY_BENCH_POSTGRES_URL",
        hide_env_values = true
    )]
    postgres: Option<String>,
    /// Where the JSON results go
    #[arg(long, short = 'o', default_value = "target/bench/results.json")]
    output: PathBuf,
    /// Run one workload here and print its measures (used by the parent run)
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Ingest this text file twice into the store named by SCRY_BENCH_STORE_URL and print what
    /// it took (used by W1)
    #[arg(long, hide = true, value_name = "FILE")]
    ingest_text: Option<PathBuf>,
}

/// One measurement beside its floor.
#[derive(Debug, Clone)]
pub(crate) struct Measure {
    pub(crate) workload: String,
    pub(crate) case: String,
    pub(crate) size: usize,
    pub(crate) unit: String,
    pub(crate) rate: f64,
    pub(crate) floor: String,
    pub(crate) floor_rate: f64,
    pub(crate) target: String,
    /// The case's own peak resident memory, where it was measured apart from its workload's.
    pub(crate) peak_rss_kib: Option<u64>,
}

impl Measure {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        workload: &str,
        case: &str,
        size: usize,
        unit: &str,
        rate: f64,
        floor: &str,
        floor_rate: f64,
        target: &str,
    ) -> Measure {
        Measure {
            workload: workload.into(),
            case: case.into(),
            size,
            unit: unit.into(),
            rate,
            floor: floor.into(),
            floor_rate,
            target: target.into(),
            peak_rss_kib: None,
        }
    }

    /// The case's own peak memory, measured apart from the rest of its workload.
    pub(crate) fn with_peak(mut self, kib: Option<u64>) -> Measure {
        self.peak_rss_kib = kib;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "workload": self.workload,
            "case": self.case,
            "size": self.size,
            "unit": self.unit,
            "rate": self.rate,
            "floor": self.floor,
            "floor_rate": (self.floor_rate > 0.0).then_some(self.floor_rate),
            "ratio_to_floor": (self.floor_rate > 0.0).then(|| self.rate / self.floor_rate),
            "target": self.target,
        })
    }
}

/// The sizes of a workload: full, or for CI.
fn size(workload: &str, quick: bool) -> usize {
    match (workload, quick) {
        ("W1", false) => 1_000_000,
        ("W1", true) => 20_000,
        ("W2", false) => 1_000_000,
        ("W2", true) => 20_000,
        ("W3", false) => 10_000,
        ("W3", true) => 300,
        ("W5", false) => 1_000_000,
        ("W5", true) => 20_000,
        ("W6", false) => 200_000,
        ("W6", true) => 2_000,
        (_, false) => 1_000_000,
        (_, true) => 50_000,
    }
}

/// A SQLite store in the workload's directory, created and migrated.
pub(crate) async fn sqlite_store(
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<std::sync::Arc<dyn scry_store::Store>> {
    let url = format!("sqlite://{}", dir.join(name).display());
    scry_store::open(&url)
        .await
        .with_context(|| format!("opening {url}"))
}

/// Latencies in ms: p50 and p99.
pub(crate) fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.50), at(0.99))
}

/// Peak resident memory of this process, from `/proc/self/status`.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Starts this process's peak resident memory again from what it holds now (Linux's
/// `clear_refs`); false where the kernel does not allow it.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        });
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|l| l.trim().to_owned())
        });
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory": memory,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

/// The runtime an async workload (or W1's ingest process) runs on.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Runs one workload in this process.
fn child(
    workload: &str,
    quick: bool,
    seed: u64,
    postgres: Option<&str>,
) -> anyhow::Result<Vec<Measure>> {
    let work = tempfile::tempdir()?;
    let size = size(workload, quick);
    match workload {
        "W1" => runtime()?.block_on(ingest::run(size, seed, work.path(), postgres)),
        "W2" => rules::run(size, seed),
        "W3" => runtime()?.block_on(enrichment::run(size, seed, work.path(), quick)),
        "W4" => lookups::run(size, seed, work.path()),
        "W5" => runtime()?.block_on(pivots::run(size, seed, work.path(), quick)),
        "W6" => runtime()?.block_on(http::run(size, seed, work.path(), quick)),
        other => anyhow::bail!("no workload {other:?} (there are {})", WORKLOADS.join(", ")),
    }
}

/// A rate or a latency, with decimals only where they matter.
fn figure(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn table(results: &[Value]) {
    println!(
        "{:<4} {:<58} {:>9} {:>14} {:>14} {:>8} {:>9}  target",
        "", "case", "size", "rate", "floor", "ratio", "peak MiB"
    );
    for r in results {
        let number = |key: &str| r[key].as_f64();
        println!(
            "{:<4} {:<58} {:>9} {:>14} {:>14} {:>8} {:>9}  {}",
            r["workload"].as_str().unwrap_or(""),
            r["case"].as_str().unwrap_or(""),
            r["size"],
            number("rate").map_or(String::new(), figure),
            number("floor_rate").map_or("-".into(), figure),
            number("ratio_to_floor").map_or("-".into(), |v| format!("{v:.2}")),
            r["peak_rss_kib"]
                .as_u64()
                .map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
            r["target"].as_str().unwrap_or(""),
        );
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(input) = &cli.ingest_text {
        let run = runtime()?.block_on(ingest::ingest_here(input))?;
        println!("{}", serde_json::to_string(&run)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(workload) = &cli.child {
        let measures = child(workload, cli.quick, cli.seed, cli.postgres.as_deref())?;
        let peak = peak_rss_kib();
        let rows: Vec<Value> = measures
            .iter()
            .map(|m| {
                let mut row = m.to_json();
                row["peak_rss_kib"] = json!(m.peak_rss_kib.or(peak));
                row["peak_rss_own"] = json!(m.peak_rss_kib.is_some());
                row
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let selected: Vec<String> = if cli.workloads.is_empty() {
        WORKLOADS.iter().map(|w| (*w).to_owned()).collect()
    } else {
        cli.workloads
            .iter()
            .map(|w| w.to_ascii_uppercase())
            .collect()
    };
    if let Some(unknown) = selected.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        anyhow::bail!(
            "no workload {unknown:?}: this harness runs {}",
            WORKLOADS.join(", ")
        );
    }
    let exe = std::env::current_exe()?;
    let mut results = Vec::new();
    for workload in &selected {
        eprintln!(
            "running {workload}{} …",
            if cli.quick { " (quick)" } else { "" }
        );
        let mut command = Command::new(&exe);
        command.args(["--child", workload, "--seed", &cli.seed.to_string()]);
        if cli.quick {
            command.arg("--quick");
        }
        if let Some(url) = &cli.postgres {
            // Through the environment, so a password in the URL is not on a command line.
            command.env("SCRY_BENCH_POSTGRES_URL", url);
        }
        let output = command
            .output()
            .with_context(|| format!("running {workload}"))?;
        anyhow::ensure!(
            output.status.success(),
            "{workload} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rows: Vec<Value> = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("{workload} printed no results"))?;
        results.extend(rows);
    }
    let report = json!({
        "quick": cli.quick,
        "seed": cli.seed,
        "machine": machine(),
        "results": results,
    });
    if let Some(folder) = cli.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(&cli.output, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", cli.output.display()))?;
    table(&results);
    eprintln!("results: {}", cli.output.display());
    Ok(ExitCode::SUCCESS)
}
