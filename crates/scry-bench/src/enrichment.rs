//! W3, enrichment: indicators (30 % of them duplicates, 20 % of the unique ones already answered
//! by an earlier run) enriched through the Criminal IP source against the sandbox with a median
//! latency of 150 ms, a p99 of 1 s, a rate limit R, 1 % injected rate-limit answers and 2 %
//! injected server errors. Everything is judged from the sandbox's request log: successful calls
//! per second against R, calls above R in any one-second window, duplicate calls, and the wall time
//! against the time R allows for the indicators that needed a call. Beside it, a sequential client
//! (one request at a time and no retries, as the OpenCTI connector works) against the same sandbox.
//!
//! The sandbox runs on a runtime and thread of its own, as the service runs on machines of its
//! own: sharing the engine's runtime, a request would be stamped as arrived only when the busy
//! runtime got round to it, and arrivals would bunch in the log for reasons of the harness.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scry_engine::input::{InputFormat, InputSource};
use scry_engine::{EnrichRequest, Progress};
use scry_sandbox::{Faults, Sandbox, SandboxConfig};
use scry_sources::EnrichOptions;

use crate::Measure;
use scry_bench::data::Dice;

const KEY: &str = "bench-key";

fn sandbox_config(rate: u32) -> SandboxConfig {
    SandboxConfig {
        api_key: Some(KEY.into()),
        latency_median: Duration::from_millis(150),
        latency_p99: Duration::from_millis(1_000),
        rate_limit: Some((rate, Duration::from_secs(1))),
        faults: Faults {
            rate_limited: 0.01,
            server_error: 0.02,
            ..Faults::default()
        },
        scan_duration: Duration::ZERO,
        ..SandboxConfig::default()
    }
}

/// A sandbox served by a one-thread runtime of its own.
struct SandboxThread {
    sandbox: Option<Sandbox>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl SandboxThread {
    async fn start(config: SandboxConfig) -> anyhow::Result<SandboxThread> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sandbox")
            .enable_all()
            .build()?;
        let sandbox = runtime
            .spawn(Sandbox::start(config, "127.0.0.1:0".parse()?))
            .await??;
        Ok(SandboxThread {
            sandbox: Some(sandbox),
            runtime: Some(runtime),
        })
    }

    fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().expect("running until dropped")
    }
}

impl Drop for SandboxThread {
    fn drop(&mut self) {
        // The sandbox stops serving when dropped; the runtime is let go without blocking, as
        // this runs inside the harness's own runtime.
        drop(self.sandbox.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An engine with the Criminal IP source at `rate` calls per second against `sandbox`, keeping
/// answers in `store`.
async fn engine(
    sandbox: &Sandbox,
    rate: u32,
    store: &Arc<dyn scry_store::Store>,
) -> anyhow::Result<Arc<scry_engine::Engine>> {
    let text = format!(
        "[sources.criminalip]\nbase_url = \"{}\"\napi_key = \"{KEY}\"\nmax_requests = {rate}\nper_seconds = 1.0\n\
         concurrency = {}\nretries = 4\nretry_base_ms = 200\ntimeout_seconds = 5\n",
        sandbox.url(),
        rate.max(4)
    );
    let loaded = scry_engine::config::LoadedConfig::from_config(
        scry_engine::config::from_toml_str(&text)?,
        None,
    )?;
    let services =
        scry_engine::setup::build(&loaded, Some(store), scry_engine::setup::Rules::Off).await?;
    Ok(services.engine)
}

async fn enrich(engine: &Arc<scry_engine::Engine>, path: &Path) -> anyhow::Result<f64> {
    let request = EnrichRequest {
        inputs: vec![InputSource::file(path)],
        format: InputFormat::Lines,
        default_tlp: None,
        options: EnrichOptions::default(),
        concurrency: 256,
        automation: None,
        dry_run: false,
    };
    let started = Instant::now();
    engine
        .enrich(request, Arc::new(Progress::default()), &mut |_| Ok(()))
        .await?;
    Ok(started.elapsed().as_secs_f64())
}

/// The most requests that arrived in any one-second window.
fn busiest_second(arrivals_ms: &[f64]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, at) in arrivals_ms.iter().enumerate() {
        while arrivals_ms[start] <= at - 1_000.0 {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// One request at a time over `ips`, no retries: successful calls per second, and how many of
/// the calls were answered. A call over the rate is refused at once and not asked again, so
/// where one call at a time outpaces R the answered count says what the rate hides.
async fn sequential(sandbox: &Sandbox, ips: &[String]) -> anyhow::Result<(f64, usize)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let started = Instant::now();
    let mut answered = 0;
    for ip in ips {
        let response = client
            .get(format!("{}/v1/asset/ip/report", sandbox.url()))
            .query(&[("ip", ip.as_str()), ("full", "true")])
            .header("x-api-key", KEY)
            .send()
            .await;
        if let Ok(response) = response
            && response.status().is_success()
            && response.bytes().await.is_ok()
        {
            answered += 1;
        }
    }
    Ok((answered as f64 / started.elapsed().as_secs_f64(), answered))
}

pub(crate) async fn run(
    size: usize,
    seed: u64,
    work: &Path,
    quick: bool,
) -> anyhow::Result<Vec<Measure>> {
    let rates: &[u32] = if quick { &[50] } else { &[5, 20, 50] };
    let mut out = Vec::new();
    for (n, &rate) in rates.iter().enumerate() {
        let mut dice = Dice::new(seed.wrapping_add(n as u64));
        let unique: Vec<String> = (0..size * 7 / 10)
            .map(|_| dice.ipv4().to_string())
            .collect();
        let fresh = unique.len() / 5;
        let mut input: Vec<&str> = unique.iter().map(String::as_str).collect();
        while input.len() < size {
            input.push(&unique[dice.below(unique.len() as u64) as usize]);
        }
        for i in (1..input.len()).rev() {
            input.swap(i, dice.below(i as u64 + 1) as usize);
        }
        let warm_path = work.join(format!("w3-warm-{rate}.txt"));
        let path = work.join(format!("w3-{rate}.txt"));
        std::fs::write(&warm_path, unique[..fresh].join("\n"))?;
        std::fs::write(&path, input.join("\n"))?;

        let served = SandboxThread::start(sandbox_config(rate)).await?;
        let sandbox = served.sandbox();
        let store = crate::sqlite_store(work, &format!("w3-{rate}.db")).await?;
        enrich(&engine(sandbox, rate, &store).await?, &warm_path).await?;
        let warmed = sandbox.log().entries().len();
        // A new engine, as a later run: what the earlier one bought comes from the store.
        let wall = enrich(&engine(sandbox, rate, &store).await?, &path).await?;
        let entries: Vec<_> = sandbox.log().entries().into_iter().skip(warmed).collect();
        let arrivals: Vec<f64> = entries.iter().map(|e| e.at_ms).collect();
        let ok: Vec<_> = entries.iter().filter(|e| e.outcome == "ok").collect();
        let mut answers: HashMap<&str, usize> = HashMap::new();
        for e in &ok {
            *answers.entry(e.query.as_str()).or_default() += 1;
        }
        let duplicates: usize = answers.values().map(|n| n - 1).sum();
        let span = match (ok.first(), ok.last()) {
            (Some(a), Some(b)) if b.at_ms > a.at_ms => (b.at_ms - a.at_ms) / 1_000.0,
            _ => wall,
        };
        let achieved = ok.len() as f64 / span;
        let needed = (unique.len() - fresh) as f64;
        let floor_ips: Vec<String> = unique[fresh..]
            .iter()
            .take(if quick { 60 } else { 300 })
            .cloned()
            .collect();
        let (sequential, sequential_answered) = sequential(sandbox, &floor_ips).await?;
        let r = f64::from(rate);
        let case = |what: &str| format!("R={rate}/s {what}");
        out.push(Measure::new(
            "W3",
            &case("successful calls/s"),
            size,
            "calls/s",
            achieved,
            "R",
            r,
            "≥ 0.95 × R",
        ));
        let calls = entries.len() as f64 / span;
        out.push(Measure::new(
            "W3",
            &case("all calls/s, retries and failures included"),
            size,
            "calls/s",
            calls,
            "R",
            r,
            "",
        ));
        let refused = entries
            .iter()
            .filter(|e| e.outcome == "rate-limited")
            .count();
        out.push(Measure::new(
            "W3",
            &case("refused by the sandbox's own rate limit"),
            size,
            "calls",
            refused as f64,
            "",
            0.0,
            "0",
        ));
        out.push(Measure::new(
            "W3",
            &case("busiest second, calls"),
            size,
            "calls",
            busiest_second(&arrivals) as f64,
            "R",
            r,
            "≤ R",
        ));
        out.push(Measure::new(
            "W3",
            &case("duplicate calls"),
            size,
            "calls",
            duplicates as f64,
            "",
            0.0,
            "0",
        ));
        out.push(Measure::new(
            "W3",
            &case("wall time, s"),
            size,
            "s",
            wall,
            "uncached ÷ R",
            needed / r,
            "≤ 1.1 × floor",
        ));
        out.push(Measure::new(
            "W3",
            &case("sequential client calls/s"),
            floor_ips.len(),
            "calls/s",
            sequential,
            "R",
            r,
            "",
        ));
        out.push(Measure::new(
            "W3",
            &case("sequential client calls answered"),
            floor_ips.len(),
            "calls",
            sequential_answered as f64,
            "calls made",
            floor_ips.len() as f64,
            "",
        ));
    }
    Ok(out)
}
