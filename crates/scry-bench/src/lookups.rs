//! W4 lookups: addresses (80 % IPv4, 20 % IPv6) against an allowlist of 100,000 CIDRs, the
//! embedded network data and a packed CTIDB file, each on one core. Floors: a linear scan of the
//! same allowlist and of the same CTIDB ranges (on a sample, as rates), and the vendor's Python
//! reader on the same file where it is installed.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Instant;

use scry_bench::data::Dice;
use scry_bench::fixtures;
use scry_core::{EgressPolicy, Observable, Subject};
use scry_offline::ctidb_bin::{PackedDb, Verification};

use crate::Measure;

/// Addresses the linear-scan floors look up (their rate is per address).
const SCAN_SAMPLE: usize = 2_000;

/// Runs `lookup` over `addresses`, returning lookups per second and how many answered.
fn rate(addresses: &[IpAddr], mut lookup: impl FnMut(IpAddr) -> bool) -> (f64, usize) {
    let started = Instant::now();
    let found = addresses.iter().filter(|a| lookup(**a)).count();
    (
        addresses.len() as f64 / started.elapsed().as_secs_f64(),
        found,
    )
}

/// The vendor's Python reader's lookups per second on `path`, when it is installed.
fn python_rate(path: &std::path::Path, addresses: &[Ipv4Addr]) -> Option<f64> {
    let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    let script = format!(
        "import json, sys, time\nfrom ctidb_bin import PackedReader\n\
         r = PackedReader.open({path:?})\naddresses = json.load(sys.stdin)\n\
         t = time.perf_counter()\nfor a in addresses: r.get(a)\n\
         print(len(addresses) / (time.perf_counter() - t))",
        path = path.display().to_string()
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .env("CTIDB_SKIP_SIGNATURE_VERIFY", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::io::Write::write_all(
        child.stdin.as_mut()?,
        serde_json::to_string(&list).ok()?.as_bytes(),
    )
    .ok()?;
    drop(child.stdin.take());
    let output = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

pub(crate) fn run(size: usize, seed: u64, work: &std::path::Path) -> anyhow::Result<Vec<Measure>> {
    let mut dice = Dice::new(seed);
    let addresses: Vec<IpAddr> = (0..size).map(|_| dice.ip()).collect();
    let mut measures = Vec::new();

    // The allowlist: 100,000 CIDRs (a tenth of the size in --quick runs).
    let networks = fixtures::allowlist(&mut dice, (size / 10).max(1_000));
    let mut policy = EgressPolicy::default();
    for net in &networks {
        policy.allow(&net.to_string())?;
    }
    let observables: Vec<Observable> = addresses.iter().map(|a| Observable::Ip(*a)).collect();
    let started = Instant::now();
    let allowed = observables
        .iter()
        .filter(|o| {
            policy.is_allowlisted(&Subject {
                observable: o,
                tlp: None,
                asn: None,
            })
        })
        .count();
    let trie = observables.len() as f64 / started.elapsed().as_secs_f64();
    let sample = &addresses[..SCAN_SAMPLE.min(addresses.len())];
    let (scan, _) = rate(sample, |a| networks.iter().any(|n| n.contains(&a)));
    anyhow::ensure!(allowed > 0, "no address fell in the allowlist");
    measures.push(Measure::new(
        "W4",
        &format!("allowlist of {} CIDRs", networks.len()),
        size,
        "lookups/s",
        trie,
        "linear scan",
        scan,
        ">= 5,000,000/s per core",
    ));

    // The embedded network data.
    let pack = scry_offline::embedded().map_err(|e| anyhow::anyhow!(e))?;
    let (packed_rate, known) = rate(&addresses, |a| pack.lookup(a).is_some());
    anyhow::ensure!(known > 0, "the network data knew no address");
    measures.push(Measure::new(
        "W4",
        "embedded AS and country data",
        size,
        "lookups/s",
        packed_rate,
        "",
        0.0,
        ">= 1,000,000/s per core",
    ));

    // A packed CTIDB file, memory-mapped from disk.
    let ranges = (size as u32).clamp(10_000, 1_000_000);
    let path = work.join("w4.bin");
    std::fs::write(&path, fixtures::packed_ctidb(ranges))?;
    let db = PackedDb::open(&path, &Verification::Skip)?;
    let v4 = fixtures::addresses_in_packed(&mut dice, ranges, size);
    let started = Instant::now();
    let mut hits = 0usize;
    for address in &v4 {
        if db.record(*address)?.is_some() {
            hits += 1;
        }
    }
    let ctidb = v4.len() as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(hits == v4.len(), "every address is in a range");
    let reference = python_rate(&path, &v4[..v4.len().min(20_000)]);
    measures.push(Measure::new(
        "W4",
        &format!("packed CTIDB v2, {ranges} ranges"),
        size,
        "lookups/s",
        ctidb,
        if reference.is_some() {
            "ctidb-bin 0.0.7 (Python)"
        } else {
            "ctidb-bin not installed"
        },
        reference.unwrap_or(0.0),
        ">= 2,000,000/s per core",
    ));
    Ok(measures)
}
