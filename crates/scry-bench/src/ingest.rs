//! W1 ingest: mixed indicators in plain text, CSV and a STIX bundle, parsed, normalized,
//! de-duplicated, classified and stored in SQLite — then the same input again, all duplicates.
//! Floors in the same run: parse-only throughput of the same file, and batched saves of already
//! built records into the same schema. Given a PostgreSQL server, the text file's run and the
//! store floor are repeated there, in a schema of their own that is dropped afterwards.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use scry_core::{EgressGate, EgressPolicy};
use scry_engine::input::{InputFormat, InputSource, Item, ReadCounters, read_input};
use scry_engine::{Engine, EnrichRequest, Progress};
use scry_sources::{Classification, EnrichOptions};

use crate::data::Dice;
use crate::{Measure, sqlite_store};

/// Records saved per batch by the store floor, as the engine's recorder saves them.
const SAVE_BATCH: usize = 200;
/// Records the store floor saves at most.
const STORE_FLOOR_RECORDS: usize = 100_000;

/// Writes `count` indicators with 10 % repeated, as text, CSV and (a tenth of them) STIX.
fn write_inputs(dir: &Path, count: usize, seed: u64) -> anyhow::Result<()> {
    let mut dice = Dice::new(seed);
    let unique: Vec<String> = (0..count - count / 10).map(|_| dice.indicator()).collect();
    let mut all = unique.clone();
    for _ in 0..count / 10 {
        all.push(unique[dice.below(unique.len() as u64) as usize].clone());
    }
    let mut text = std::io::BufWriter::new(std::fs::File::create(dir.join("w1.txt"))?);
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("w1.csv"))?);
    writeln!(csv, "indicator,tlp,comment")?;
    for (n, value) in all.iter().enumerate() {
        writeln!(text, "{value}")?;
        writeln!(csv, "{value},green,row {n}")?;
    }
    text.flush()?;
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

fn engine(store: Arc<dyn scry_store::Store>) -> Arc<Engine> {
    Arc::new(
        Engine::new(
            EgressGate::new(EgressPolicy::default()),
            vec![Arc::new(Classification)],
        )
        .with_store(store),
    )
}

/// One end-to-end run into `store`; with `keep`, the stored forms of the first records.
async fn ingest(
    store: Arc<dyn scry_store::Store>,
    path: &Path,
    format: InputFormat,
    keep: Option<&mut Vec<scry_store::IndicatorRecord>>,
) -> anyhow::Result<(scry_engine::Summary, f64)> {
    let engine = engine(store);
    let request = EnrichRequest {
        inputs: vec![InputSource::from_arg(&path.display().to_string())],
        format,
        default_tlp: None,
        options: EnrichOptions::default(),
        concurrency: 1,
        automation: None,
    };
    let started = Instant::now();
    let mut kept = keep;
    let mut sink = |record: scry_engine::Record| {
        if let Some(kept) = kept.as_deref_mut()
            && kept.len() < STORE_FLOOR_RECORDS
            && let Some(stored) = scry_engine::enrich::stored_form(&record)
        {
            kept.push(stored);
        }
        Ok(())
    };
    let summary = engine
        .enrich(request, Arc::new(Progress::default()), &mut sink)
        .await?;
    Ok((summary, started.elapsed().as_secs_f64()))
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
    kept: &[scry_store::IndicatorRecord],
) -> anyhow::Result<Vec<Measure>> {
    let path = work.join("w1.txt");
    // Named by process, so runs sharing a server do not drop each other's schemas.
    let [schema, floor_schema] =
        ["", "_floor"].map(|kind| format!("scry_bench_w1{kind}_{}", std::process::id()));
    let (admin, url) = postgres_schema(base, &schema).await?;
    let store = scry_store::open(&url).await?;
    let (summary, seconds) = ingest(Arc::clone(&store), &path, InputFormat::Lines, None).await?;
    anyhow::ensure!(
        summary.read as usize == size,
        "PostgreSQL: read {} of {size}",
        summary.read
    );
    let (again, again_seconds) =
        ingest(Arc::clone(&store), &path, InputFormat::Lines, None).await?;
    anyhow::ensure!(
        again.stored.unchanged as usize == summary.unique as usize,
        "PostgreSQL re-ingest: {} of {} unchanged",
        again.stored.unchanged,
        summary.unique
    );
    drop(store);
    let (_, floor_url) = postgres_schema(base, &floor_schema).await?;
    let floor_store = scry_store::open(&floor_url).await?;
    let started = Instant::now();
    for batch in kept.chunks(SAVE_BATCH) {
        floor_store.save_indicators(batch).await?;
    }
    let floor = kept.len() as f64 / started.elapsed().as_secs_f64();
    drop(floor_store);
    for schema in [schema, floor_schema] {
        admin
            .execute_raw(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
    }
    Ok(vec![
        Measure::new(
            "W1",
            "ingest text into PostgreSQL",
            size,
            "indicators/s",
            size as f64 / seconds,
            "parse only",
            parse_rate,
            ">= 100,000/s, within 3x of the floor",
        ),
        Measure::new(
            "W1",
            "re-ingest text into PostgreSQL (all duplicates)",
            size,
            "indicators/s",
            size as f64 / again_seconds,
            "parse only",
            parse_rate,
            ">= 300,000/s",
        ),
        Measure::new(
            "W1",
            "ingest text into PostgreSQL",
            size,
            "indicators/s",
            size as f64 / seconds,
            &format!("batched saves of {} built records", kept.len()),
            floor,
            "within 3x of the floor",
        ),
    ])
}

pub(crate) async fn run(
    size: usize,
    seed: u64,
    work: &Path,
    postgres_url: Option<&str>,
) -> anyhow::Result<Vec<Measure>> {
    write_inputs(work, size, seed)?;
    let mut measures = Vec::new();
    let mut kept = Vec::new();
    for (case, file, format, count) in [
        ("text", "w1.txt", InputFormat::Lines, size),
        ("csv", "w1.csv", InputFormat::Csv, size),
        ("stix", "w1.stix.json", InputFormat::Stix, size / 10),
    ] {
        let path = work.join(file);
        let (parsed, parse_seconds) = parse_only(&path, format)?;
        let store = sqlite_store(work, &format!("w1-{case}.db")).await?;
        let keep = (case == "text").then_some(&mut kept);
        let (summary, seconds) = ingest(Arc::clone(&store), &path, format, keep).await?;
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
        if case == "text" {
            let (again, seconds) = ingest(store, &path, format, None).await?;
            anyhow::ensure!(
                again.stored.unchanged as usize == summary.unique as usize,
                "re-ingest: {} of {} unchanged",
                again.stored.unchanged,
                summary.unique
            );
            measures.push(Measure::new(
                "W1",
                "re-ingest text (all duplicates)",
                count,
                "indicators/s",
                count as f64 / seconds,
                "parse only",
                parsed as f64 / parse_seconds,
                ">= 300,000/s",
            ));
        }
    }
    // The store floor: records already built, saved in the engine's batch size.
    let store = sqlite_store(work, "w1-floor.db").await?;
    let started = Instant::now();
    for batch in kept.chunks(SAVE_BATCH) {
        store.save_indicators(batch).await?;
    }
    let floor = kept.len() as f64 / started.elapsed().as_secs_f64();
    let end_to_end = measures[0].rate;
    measures.push(Measure::new(
        "W1",
        "ingest text into SQLite",
        size,
        "indicators/s",
        end_to_end,
        &format!("batched saves of {} built records", kept.len()),
        floor,
        "within 3x of the floor",
    ));
    if let Some(base) = postgres_url {
        let parse_rate = measures[0].floor_rate;
        measures.extend(postgres(base, work, size, parse_rate, &kept).await?);
    }
    Ok(measures)
}
