//! W6, HTTP: `scry serve`'s router on W5's generated graph, under a bounded load on loopback —
//! indicator GET, the queue page, a TAXII objects page of 100 and a blocklist (EDL) — each beside
//! a trivial handler served by the same router in the same run: the most requests per second with
//! 32 requests in flight, and p50/p99 latency at a fixed rate.
//!
//! The load comes from this process too (2 cores shared by client and server), so the figures
//! are a floor for what a separate client would see.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use scry_engine::access::{self, Role};
use scry_store::BlockEntry;

use crate::{Measure, percentiles, sqlite_store};
use scry_bench::data::Dice;

/// Requests in flight when measuring the most requests per second.
const IN_FLIGHT: usize = 32;
/// Entries on the blocklist served as EDL.
const BLOCKED: usize = 1_000;

/// What the load asks for.
struct Target {
    case: &'static str,
    paths: Vec<String>,
}

/// The most requests per second with [`IN_FLIGHT`] in flight for `seconds`.
async fn saturate(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    target: &Target,
    seconds: f64,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..IN_FLIGHT {
        let (client, base, token) = (client.clone(), base.to_owned(), token.to_owned());
        let paths = target.paths.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0_u64;
            let mut n = worker;
            while Instant::now() < deadline {
                let path = &paths[n % paths.len()];
                n += IN_FLIGHT;
                let response = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                let status = response.status();
                let body = response.bytes().await?;
                anyhow::ensure!(
                    status.is_success(),
                    "{path}: {status} {}",
                    String::from_utf8_lossy(&body)
                );
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Latency at a fixed rate: p50 and p99 in ms (failed requests included), and how many failed.
struct AtRate {
    p50: f64,
    p99: f64,
    failed: usize,
}

/// `rate` requests per second for `seconds`, started on schedule whether or not earlier ones are
/// done (an open load, as clients arrive). A server that falls behind shows it in the tail and,
/// past its store's connection wait, in failed requests.
async fn at_rate(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    target: &Target,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<AtRate> {
    let count = (rate * seconds).ceil() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        tokio::time::sleep_until(started + interval * n as u32).await;
        let request = client
            .get(format!("{base}{}", target.paths[n % target.paths.len()]))
            .bearer_auth(token);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = match request.send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (sent.elapsed().as_secs_f64() * 1000.0, ok)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    for task in tasks {
        let (ms, ok) = task.await?;
        latencies.push(ms);
        failed += usize::from(!ok);
    }
    let (p50, p99) = percentiles(latencies);
    Ok(AtRate { p50, p99, failed })
}

pub(crate) async fn run(
    size: usize,
    seed: u64,
    work: &Path,
    quick: bool,
) -> anyhow::Result<Vec<Measure>> {
    let store = sqlite_store(work, "w6.db").await?;
    let now = scry_engine::automation::now_ms();
    let graph = crate::graph::generate(store.as_ref(), size, seed, now).await?;
    let values: Vec<&str> = graph.values().collect();
    let blocked: Vec<BlockEntry> = values
        .iter()
        .take(BLOCKED)
        .map(|value| BlockEntry {
            list: "edl".into(),
            value: (*value).to_owned(),
            stix_id: scry_stix::observable_id(
                &scry_core::Observable::parse(value).expect("stored"),
            ),
            added_at: now,
            expires_at: now + 86_400_000,
            reason: "bench".into(),
            origin: "bench".into(),
            version_us: 0,
            removed_at: None,
        })
        .collect();
    for entry in &blocked {
        store.block(entry).await?;
    }
    let (token, _) = access::create_token(store.as_ref(), "bench", Role::Viewer, None).await?;

    let loaded = scry_engine::config::LoadedConfig::from_config(
        scry_engine::config::from_toml_str("[automation.blocklists.edl]\ndays = 7\n")?,
        None,
    )?;
    let services = scry_engine::setup::build(
        &loaded,
        Some(&store),
        scry_engine::setup::Rules::On { dry_run: false },
    )
    .await?;
    let automation = services.automation.expect("rules were asked for");
    let state = scry_server::AppState::new(
        Arc::clone(&store),
        Arc::new(loaded),
        services.engine,
        automation,
    );
    let app = scry_server::router(state).route("/trivial", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    // The TAXII collection of every enriched indicator.
    let collections: serde_json::Value = client
        .get(format!("{base}/taxii2/api/collections/"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let collection = collections["collections"][0]["id"]
        .as_str()
        .context("a collection")?
        .to_owned();
    let pick = |n: usize| -> Vec<String> {
        let mut d = Dice::new(seed ^ 0x5eed);
        (0..n)
            .map(|_| values[d.below(values.len() as u64) as usize].to_owned())
            .collect()
    };
    let targets = [
        Target {
            case: "indicator GET",
            paths: pick(1_000)
                .into_iter()
                .map(|v| format!("/api/v1/indicators/{v}"))
                .collect(),
        },
        Target {
            case: "queue page (50 rows)",
            paths: vec![
                "/".into(),
                "/?sort=-last_changed".into(),
                "/?min_priority=80".into(),
            ],
        },
        Target {
            case: "TAXII objects page of 100",
            paths: vec![format!(
                "/taxii2/api/collections/{collection}/objects/?limit=100"
            )],
        },
        Target {
            case: "EDL (1,000 entries)",
            paths: vec!["/edl/edl.txt".into()],
        },
    ];
    let trivial = Target {
        case: "trivial handler",
        paths: vec!["/trivial".into()],
    };
    let seconds = if quick { 0.5 } else { 5.0 };
    let mut out = Vec::new();
    // Warm the connections and the store's caches.
    saturate(&client, &base, &token, &trivial, 0.2).await?;
    let trivial_max = saturate(&client, &base, &token, &trivial, seconds).await?;
    for target in &targets {
        let max = saturate(&client, &base, &token, target, seconds).await?;
        out.push(Measure::new(
            "W6",
            &format!("{} max throughput", target.case),
            size,
            "req/s",
            max,
            "trivial handler",
            trivial_max,
            "",
        ));
    }
    // Latency at fixed rates, each beside the trivial handler at the same rate.
    let fixed = [
        (
            0,
            if quick { 200.0 } else { 2_000.0 },
            "p99 ≤ 5 ms at 2,000 req/s",
        ),
        (2, if quick { 20.0 } else { 50.0 }, "p99 ≤ 50 ms"),
    ];
    for (index, rate, target) in fixed {
        let measured = at_rate(&client, &base, &token, &targets[index], rate, seconds).await?;
        let floor = at_rate(&client, &base, &token, &trivial, rate, seconds).await?;
        let case = targets[index].case;
        let requests = (rate * seconds).ceil() as usize;
        out.push(Measure::new(
            "W6",
            &format!("{case} p50 ms at {rate:.0}/s"),
            size,
            "ms",
            measured.p50,
            "trivial handler",
            floor.p50,
            "",
        ));
        out.push(Measure::new(
            "W6",
            &format!("{case} p99 ms at {rate:.0}/s"),
            size,
            "ms",
            measured.p99,
            "trivial handler",
            floor.p99,
            target,
        ));
        out.push(Measure::new(
            "W6",
            &format!("{case} failed of {requests} at {rate:.0}/s"),
            size,
            "requests",
            measured.failed as f64,
            "trivial handler",
            floor.failed as f64,
            "0",
        ));
    }
    Ok(out)
}
