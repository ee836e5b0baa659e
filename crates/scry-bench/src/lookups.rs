//! W4 lookups: addresses (80 % IPv4, 20 % IPv6) against an allowlist of 100,000 CIDRs, the
//! embedded network data and a packed CTIDB file, each on one core. Floors: a linear scan of the
//! same allowlist and of the same CTIDB ranges (on a sample, as rates), and the vendor's Python
//! reader on the same file where it is installed.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Instant;

use ipnet::IpNet;
use scry_core::{EgressPolicy, Observable, Subject};
use scry_offline::ctidb_bin::{PackedDb, Verification};

use crate::Measure;
use crate::data::Dice;

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

/// A packed CTIDB file (layout v2) of `ranges` /24 ranges with a flag section and scores.
fn packed_file(ranges: u32) -> Vec<u8> {
    let names = |list: &[&str]| {
        let mut out = (list.len() as u32).to_le_bytes().to_vec();
        for name in list {
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(name.as_bytes());
        }
        out
    };
    let start = |i: u32| 0x0100_0000 + i * 256;
    let mut geo = ranges.to_le_bytes().to_vec();
    for i in 0..ranges {
        for value in [start(i), start(i) + 255, 1 + i % 3, 4 + i % 5, 0] {
            geo.extend(value.to_le_bytes());
        }
    }
    geo.extend(names(&[
        "", "KR", "US", "NL", "AS-A", "AS-B", "AS-C", "AS-D", "AS-E",
    ]));
    let flagged: Vec<u32> = (0..ranges).step_by(7).collect();
    let mut flags = 1u32.to_le_bytes().to_vec();
    flags.push(6);
    flags.extend(0u32.to_le_bytes());
    flags.extend((flagged.len() as u32).to_le_bytes());
    for i in &flagged {
        flags.extend(start(*i).to_le_bytes());
        flags.extend((start(*i) + 255).to_le_bytes());
    }
    let scored: Vec<u32> = (0..ranges).step_by(3).collect();
    let mut scores = (scored.len() as u32).to_le_bytes().to_vec();
    for i in &scored {
        scores.extend(start(*i).to_le_bytes());
        scores.extend((start(*i) + 255).to_le_bytes());
        scores.extend([3u8, 4]);
    }
    let sections = [(1u8, geo), (2, flags), (3, scores)];
    let mut out = b"CTIDBV2\0".to_vec();
    for value in [2u16, 0, 1, sections.len() as u16] {
        out.extend(value.to_le_bytes());
    }
    let mut at = 16 + sections.len() * 20;
    for (kind, body) in &sections {
        out.extend([*kind, 0, 0, 0]);
        out.extend((at as u64).to_le_bytes());
        out.extend((body.len() as u64).to_le_bytes());
        at += body.len();
    }
    for (_, body) in sections {
        out.extend(body);
    }
    out
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
    let networks: Vec<IpNet> = (0..(size / 10).max(1_000))
        .map(|_| match dice.ip() {
            IpAddr::V4(v4) => IpNet::new(v4.into(), 16 + dice.below(17) as u8),
            IpAddr::V6(v6) => IpNet::new(v6.into(), 32 + dice.below(97) as u8),
        })
        .map(|net| net.expect("a prefix length in range").trunc())
        .collect();
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
    std::fs::write(&path, packed_file(ranges))?;
    let db = PackedDb::open(&path, &Verification::Skip)?;
    let span = u64::from(ranges) * 256;
    let v4: Vec<Ipv4Addr> = (0..size)
        .map(|_| Ipv4Addr::from(0x0100_0000 + dice.below(span) as u32))
        .collect();
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
