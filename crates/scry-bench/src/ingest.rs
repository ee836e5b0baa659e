//! W1 ingest: mixed indicators in plain text, CSV and a STIX bundle, parsed, normalized,
//! de-duplicated, classified and stored in SQLite — then the same input again, all duplicates.
//! Floors in the same run: parse-only throughput of the same file, and batched saves of already
//! built records into the same schema. Given a PostgreSQL server, the text file's run and the
//! store floor are repeated there, in a schema of their own that is dropped afterwards.
//!
//! The text file is ingested in a process of its own — once whole and once its first tenth — so
//! that process's peak memory is the engine's and the store's alone, and the two peaks show how
//! memory grows with the input.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use scry_core::{EgressGate, EgressPolicy};
use scry_engine::input::{InputFormat, InputSource, Item, ReadCounters, read_input};
use scry_engine::{Engine, EnrichRequest, Progress};
use scry_sources::{Classification, EnrichOptions};

use crate::{Measure, sqlite_store};
use scry_bench::data::Dice;

/// Records saved per batch by the store floor, as the engine's recorder saves them.
const SAVE_BATCH: usize = 200;
/// The environment variable that hands a store's URL to an ingest process, so a password in it
/// is not on a command line.
pub(crate) const STORE_URL_VAR: &str = "SCRY_BENCH_STORE_URL";

/// What one process's ingest of a file into a store, and then of the same file again, gave.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct IngestRun {
    read: u64,
    unique: u64,
    rejected: u64,
    seconds: f64,
    /// The process's peak resident memory at the end of the first ingest.
    peak_rss_kib: Option<u64>,
    again_unchanged: u64,
    again_seconds: f64,
    /// The peak during the second ingest alone, where the kernel lets the peak be reset.
    again_peak_rss_kib: Option<u64>,
}

/// Writes `count` indicators with 10 % repeated, as text, CSV and (a tenth of them) STIX.
fn write_inputs(dir: &Path, count: usize, seed: u64) -> anyhow::Result<()> {
    let mut dice = Dice::new(seed);
    let unique: Vec<String> = (0..count - count / 10).map(|_| dice.indicator()).collect();
    let mut all = unique.clone();
    for _ in 0..count / 10 {
        all.push(unique[dice.below(unique.len() as u64) as usize].clone());
    }
    let mut text = std::io::BufWriter::new(std::fs::File::create(dir.join("w1.txt"))?);
    let mut tenth = std::io::BufWriter::new(std::fs::File::create(dir.join("w1-tenth.txt"))?);
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("w1.csv"))?);
    writeln!(csv, "indicator,tlp,comment")?;
    for (n, value) in all.iter().enumerate() {
        writeln!(text, "{value}")?;
        if n < count / 10 {
            writeln!(tenth, "{value}")?;
        }
        writeln!(csv, "{value},green,row {n}")?;
    }
    text.flush()?;
    tenth.flush()?;
    csv.flush()?;
    let objects: Vec<serde_json::Value> = all
        .iter()
        .take(count / 10)
        .enumerate()
        .map(|(n, value)| {
            let pattern = match value.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => format!("[ipv4-addr:value = '{value}']"),
                Ok(std::net::IpAddr::V6(_)) => format!("[ipv6-addr:value = '{value}']"),
                Err(_) if value.starts_with("https://") => format!("[url:value = '{value}']"),
                Err(_) => format!("[domain-name:value = '{value}']"),
            };
            serde_json::json!({
                "type": "indicator", "spec_version": "2.1",
                "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
                "created": "2026-11-24T00:00:00.000Z", "modified": "2026-11-24T00:00:00.000Z",
                "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-11-24T00:00:00Z"
            })
        })
        .collect();
    let bundle = serde_json::json!({
        "type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objects
    });
    std::fs::write(dir.join("w1.stix.json"), serde_json::to_vec(&bundle)?)?;
    Ok(())
}

/// Items one pass of the reader gives (parse and normalize, no de-duplication).
fn parse_only(path: &Path, format: InputFormat) -> anyhow::Result<(u64, f64)> {
    let counters = ReadCounters::default();
    let started = Instant::now();
    let mut items = 0u64;
    read_input(
        &InputSource::from_arg(&path.display().to_string()),
        format,
        &counters,
        &mut |item| {
            if matches!(item, Item::Candidate(_)) {
                items += 1;
            }
        },
    )?;
    Ok((items, started.elapsed().as_secs_f64()))
}

/// The engine of a plain ingest: classification only, saving to `store` when there is one.
fn engine(store: Option<Arc<dyn scry_store::Store>>) -> Arc<Engine> {
    let engine = Engine::new(
        EgressGate::new(EgressPolicy::default()),
        vec![Arc::new(Classification)],
    );
    Arc::new(match store {
        Some(store) => engine.with_store(store),
        None => engine,
    })
}

/// The request that reads `path` in `format`, one indicator at a time as the CLI does.
fn request(path: &Path, format: InputFormat) -> EnrichRequest {
    EnrichRequest {
        inputs: vec![InputSource::from_arg(&path.display().to_string())],
        format,
        default_tlp: None,
        options: EnrichOptions::default(),
        concurrency: 1,
        automation: None,
        dry_run: false,
    }
}

/// One end-to-end run into `store`.
async fn ingest(
    store: Arc<dyn scry_store::Store>,
    path: &Path,
    format: InputFormat,
) -> anyhow::Result<(scry_engine::Summary, f64)> {
    let engine = engine(Some(store));
    let started = Instant::now();
    let summary = engine
        .enrich(
            request(path, format),
            Arc::new(Progress::default()),
            &mut |_| Ok(()),
        )
        .await?;
    Ok((summary, started.elapsed().as_secs_f64()))
}

/// The stored forms of the records the engine builds from `path`, with no store: what the store
/// floor saves.
async fn built_records(path: &Path) -> anyhow::Result<Vec<scry_store::IndicatorRecord>> {
    let mut built = Vec::new();
    engine(None)
        .enrich(
            request(path, InputFormat::Lines),
            Arc::new(Progress::default()),
            &mut |record| {
                built.extend(scry_engine::enrich::stored_form(&record));
                Ok(())
            },
        )
        .await?;
    Ok(built)
}

/// Ingests `input` into the store named by [`STORE_URL_VAR`], then again: the body of the
/// process [`ingest_in_own_process`] starts.
pub(crate) async fn ingest_here(input: &Path) -> anyhow::Result<IngestRun> {
    let url =
        std::env::var(STORE_URL_VAR).with_context(|| format!("{STORE_URL_VAR} is not set"))?;
    let store = scry_store::open(&url)
        .await
        .with_context(|| format!("opening {}", scry_store::redact(&url)))?;
    let (first, seconds) = ingest(Arc::clone(&store), input, InputFormat::Lines).await?;
    let peak_rss_kib = crate::peak_rss_kib();
    let reset = crate::reset_peak_rss();
    let (again, again_seconds) = ingest(store, input, InputFormat::Lines).await?;
    Ok(IngestRun {
        read: first.read,
        unique: first.unique,
        rejected: first.rejected,
        seconds,
        peak_rss_kib,
        again_unchanged: again.stored.unchanged,
        again_seconds,
        again_peak_rss_kib: reset.then(crate::peak_rss_kib).flatten(),
    })
}

/// Ingests the text file `input` into the store at `url`, then again, in a new process of this
/// binary, so the peak memory it reports is the ingest's alone.
fn ingest_in_own_process(url: &str, input: &Path) -> anyhow::Result<IngestRun> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--ingest-text")
        .arg(input)
        .env(STORE_URL_VAR, url)
        .output()
        .context("starting an ingest process")?;
    anyhow::ensure!(
        output.status.success(),
        "the ingest of {} failed: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).context("the ingest process printed no result")
}

/// The store floor: already built records saved in the engine's batch size, per second.
async fn save_floor(
    store: Arc<dyn scry_store::Store>,
    built: &[scry_store::IndicatorRecord],
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for batch in built.chunks(SAVE_BATCH) {
        store.save_indicators(batch).await?;
    }
    Ok(built.len() as f64 / started.elapsed().as_secs_f64())
}

/// Checks an ingest of `expected` lines: all read, none rejected, and the second pass found every
/// unique indicator unchanged.
fn check(run: &IngestRun, expected: usize, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        run.read as usize == expected && run.rejected == 0,
        "{what}: read {} of {expected}, {} rejected",
        run.read,
        run.rejected
    );
    anyhow::ensure!(
        run.again_unchanged == run.unique,
        "{what} again: {} of {} unchanged",
        run.again_unchanged,
        run.unique
    );
    Ok(())
}

/// The measures of a text ingest run in its own process: the first pass against parsing and
/// against the store floor (`built` records saved at `floor` per second), the second pass (all
/// duplicates), and how peak memory grew from the run of the file's first tenth.
fn text_measures(
    store: &str,
    size: usize,
    parse_rate: f64,
    whole: &IngestRun,
    tenth: &IngestRun,
    (built, floor): (usize, f64),
) -> Vec<Measure> {
    let first_pass = |floor_name: &str, floor_rate: f64, target: &str| {
        Measure::new(
            "W1",
            &format!("ingest text into {store}"),
            size,
            "indicators/s",
            size as f64 / whole.seconds,
            floor_name,
            floor_rate,
            target,
        )
        .with_peak(whole.peak_rss_kib)
    };
    let mut measures = vec![
        first_pass(
            "parse only",
            parse_rate,
            ">= 100,000/s, within 3x of the floor",
        ),
        Measure::new(
            "W1",
            &format!("re-ingest text into {store} (all duplicates)"),
            size,
            "indicators/s",
            size as f64 / whole.again_seconds,
            "parse only",
            parse_rate,
            ">= 300,000/s",
        )
        .with_peak(whole.again_peak_rss_kib),
    ];
    // Where the kernel reports no peaks there is no memory row, rather than one of zeros.
    if let (Some(whole_kib), Some(tenth_kib)) = (whole.peak_rss_kib, tenth.peak_rss_kib) {
        measures.push(
            Measure::new(
                "W1",
                &format!("peak memory of text ingest into {store}"),
                size,
                "MiB",
                whole_kib as f64 / 1024.0,
                &format!("the same for the first {} lines", size / 10),
                tenth_kib as f64 / 1024.0,
                "independent of input size (ratio 1)",
            )
            .with_peak(Some(whole_kib)),
        );
    }
    measures.push(first_pass(
        &format!("batched saves of {built} built records"),
        floor,
        "within 3x of the floor",
    ));
    measures
}

/// A fresh schema on the PostgreSQL server at `base`, and the URL of a store in it.
async fn postgres_schema(base: &str, name: &str) -> anyhow::Result<(scry_store::SqlStore, String)> {
    let admin = scry_store::SqlStore::connect(base)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", scry_store::redact(base)))?;
    admin
        .execute_raw(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .await?;
    admin.execute_raw(&format!("CREATE SCHEMA {name}")).await?;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok((
        admin,
        format!("{base}{separator}options=-c%20search_path%3D{name}"),
    ))
}

/// Text into PostgreSQL, again (all duplicates), and the store floor there.
async fn postgres(
    base: &str,
    work: &Path,
    size: usize,
    parse_rate: f64,
    built: &[scry_store::IndicatorRecord],
) -> anyhow::Result<Vec<Measure>> {
    // Named by process, so runs sharing a server do not drop each other's schemas.
    let [schema, tenth_schema, floor_schema] =
        ["", "_tenth", "_floor"].map(|kind| format!("scry_bench_w1{kind}_{}", std::process::id()));
    let (admin, url) = postgres_schema(base, &schema).await?;
    let whole = ingest_in_own_process(&url, &work.join("w1.txt"))?;
    check(&whole, size, "PostgreSQL")?;
    let (_, tenth_url) = postgres_schema(base, &tenth_schema).await?;
    let tenth = ingest_in_own_process(&tenth_url, &work.join("w1-tenth.txt"))?;
    check(&tenth, size / 10, "PostgreSQL, a tenth")?;
    let (_, floor_url) = postgres_schema(base, &floor_schema).await?;
    let floor = save_floor(scry_store::open(&floor_url).await?, built).await?;
    for schema in [schema, tenth_schema, floor_schema] {
        admin
            .execute_raw(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
    }
    Ok(text_measures(
        "PostgreSQL",
        size,
        parse_rate,
        &whole,
        &tenth,
        (built.len(), floor),
    ))
}

pub(crate) async fn run(
    size: usize,
    seed: u64,
    work: &Path,
    postgres_url: Option<&str>,
) -> anyhow::Result<Vec<Measure>> {
    write_inputs(work, size, seed)?;
    let text = work.join("w1.txt");
    let (parsed, parse_seconds) = parse_only(&text, InputFormat::Lines)?;
    let parse_rate = parsed as f64 / parse_seconds;
    let sqlite_url = |name: &str| format!("sqlite://{}", work.join(name).display());
    let whole = ingest_in_own_process(&sqlite_url("w1-text.db"), &text)?;
    check(&whole, size, "text")?;
    let tenth = ingest_in_own_process(&sqlite_url("w1-tenth.db"), &work.join("w1-tenth.txt"))?;
    check(&tenth, size / 10, "text, a tenth")?;
    // The store floor: the records of the file's first tenth, already built.
    let built = built_records(&work.join("w1-tenth.txt")).await?;
    let floor = save_floor(sqlite_store(work, "w1-floor.db").await?, &built).await?;
    let mut measures = text_measures(
        "SQLite",
        size,
        parse_rate,
        &whole,
        &tenth,
        (built.len(), floor),
    );
    for (case, file, format, count) in [
        ("CSV", "w1.csv", InputFormat::Csv, size),
        ("STIX bundle", "w1.stix.json", InputFormat::Stix, size / 10),
    ] {
        let path = work.join(file);
        let (parsed, parse_seconds) = parse_only(&path, format)?;
        let store = sqlite_store(work, &format!("w1-{format:?}.db")).await?;
        let (summary, seconds) = ingest(store, &path, format).await?;
        anyhow::ensure!(
            summary.read as usize == count && summary.rejected == 0,
            "{case}: read {} of {count}, {} rejected",
            summary.read,
            summary.rejected
        );
        measures.push(Measure::new(
            "W1",
            &format!("ingest {case} into SQLite"),
            count,
            "indicators/s",
            count as f64 / seconds,
            "parse only",
            parsed as f64 / parse_seconds,
            ">= 100,000/s, within 3x of the floor",
        ));
    }
    if let Some(base) = postgres_url {
        measures.extend(postgres(base, work, size, parse_rate, &built).await?);
    }
    Ok(measures)
}
