//! Memory stays flat however large the input: ten times the lines with the same distinct
//! indicators peaks at the same resident size, and a million distinct indicators stay within a
//! fixed bound far below the size of their records.

use std::io::{BufWriter, Write};

use super::{run, scry, text};

/// Writes `lines` indicators (IPv4, domains, URLs and some junk), `unique` of them distinct.
fn generate(path: &std::path::Path, lines: u64, unique: u64) -> u64 {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("create input"));
    for i in 0..lines {
        let n = (i % unique).wrapping_mul(2_654_435_761) % 4_000_000_000;
        match n % 10 {
            0 => writeln!(out, "hxxp://host{n}.example-{}.com/path/{n}", n % 977),
            1 | 2 => writeln!(out, "host{n}.campaign-{}[.]net", n % 131),
            9 if i % 1000 == 0 => writeln!(out, "junk line {i}"),
            _ => writeln!(
                out,
                "{}.{}.{}.{}",
                1 + (n >> 24) % 223,
                (n >> 16) & 255,
                (n >> 8) & 255,
                n & 255
            ),
        }
        .expect("write line");
    }
    out.flush().expect("flush");
    std::fs::metadata(path).expect("size").len()
}

fn peak_kib(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak memory: "))
        .and_then(|rest| rest.strip_suffix(" KiB"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak memory line in: {stderr}"))
}

fn enrich_peak(home: &std::path::Path, input: &std::path::Path) -> (u64, String) {
    let mut command = scry(home);
    command
        .args(["enrich", "-v", "--no-store", "--format", "jsonl"])
        .arg(input)
        .env("SCRY_LOG", "error");
    command.stdout(std::process::Stdio::null());
    let output = run(command, b"");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    (peak_kib(&stderr), stderr)
}

#[test]
fn a_million_lines_with_flat_memory() {
    let home = tempfile::tempdir().expect("tempdir");
    let small = home.path().join("small.txt");
    let large = home.path().join("large.txt");
    generate(&small, 100_000, 50_000);
    let bytes = generate(&large, 1_000_000, 50_000);
    let (small_peak, _) = enrich_peak(home.path(), &small);
    let (large_peak, stderr) = enrich_peak(home.path(), &large);
    eprintln!(
        "peak memory: 100k lines {small_peak} KiB, 1M lines ({bytes} bytes) {large_peak} KiB"
    );
    assert!(stderr.contains("read 1000000,"), "{stderr}");
    // Ten times the input with the same distinct indicators: memory must not follow the input.
    assert!(
        large_peak < small_peak + 16 * 1024,
        "peak grew from {small_peak} KiB to {large_peak} KiB"
    );
}

#[test]
fn a_million_distinct_indicators_stay_bounded() {
    let home = tempfile::tempdir().expect("tempdir");
    let input = home.path().join("distinct.txt");
    let bytes = generate(&input, 1_000_000, 1_000_000);
    let (peak, stderr) = enrich_peak(home.path(), &input);
    eprintln!("peak memory: 1M distinct lines ({bytes} bytes) {peak} KiB");
    assert!(stderr.contains("read 1000000,"), "{stderr}");
    // Results spill to disk in 32 MiB runs and duplicates are tracked by 8-byte fingerprints, so
    // the peak stays far below the size of the records (several hundred MB as JSON).
    assert!(peak < 160 * 1024, "peak {peak} KiB");
}
