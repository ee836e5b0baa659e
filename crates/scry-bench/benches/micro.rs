//! Criterion micro-benchmarks of the single operations W2 and W4 repeat a million times: one
//! indicator judged by fifty rules, and one address looked up in an allowlist of 100,000 CIDRs,
//! the embedded AS and country data and a packed CTIDB file. The harness (`scry-bench W2 W4`)
//! gives rates beside floors over a whole run; these give per-call times with confidence
//! intervals and compare each run with the last, to see a change's effect on one operation.
//!
//! `cargo bench -p scry-bench --bench micro` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scry_bench::data::Dice;
use scry_bench::fixtures::{self, RULES};
use scry_core::{EgressPolicy, Observable, Subject};
use scry_offline::ctidb_bin::{PackedDb, Verification};

const SEED: u64 = 20261124;
/// Distinct inputs each benchmark cycles through, so one lucky value does not decide it.
const INPUTS: usize = 4_096;

/// Runs `call` on each of `inputs` in turn, one per iteration.
fn cycling<T>(inputs: &[T], mut call: impl FnMut(&T) -> usize) -> impl FnMut() -> usize {
    let mut next = 0;
    move || {
        next = (next + 1) % inputs.len();
        call(&inputs[next])
    }
}

fn rules(c: &mut Criterion) {
    let contexts = fixtures::contexts(INPUTS, SEED);
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(RULES as u64));
    for (name, set) in [
        ("fifty rules, one indicator", fixtures::rules(SEED)),
        (
            "fifty rules of true, one indicator",
            fixtures::trivial_rules(),
        ),
    ] {
        let mut judge = cycling(&contexts, |context| {
            fixtures::matches(&set, black_box(context))
        });
        group.bench_function(name, |b| b.iter(&mut judge));
    }
    group.finish();
}

fn lookups(c: &mut Criterion) {
    let mut dice = Dice::new(SEED);
    let addresses: Vec<IpAddr> = (0..INPUTS).map(|_| dice.ip()).collect();
    let mut group = c.benchmark_group("lookups");
    group.throughput(Throughput::Elements(1));

    let mut policy = EgressPolicy::default();
    for net in fixtures::allowlist(&mut dice, 100_000) {
        policy.allow(&net.to_string()).expect("a generated network");
    }
    let observables: Vec<Observable> = addresses.iter().map(|a| Observable::Ip(*a)).collect();
    group.bench_function("allowlist of 100,000 CIDRs", |b| {
        b.iter(cycling(&observables, |observable| {
            usize::from(policy.is_allowlisted(&Subject {
                observable: black_box(observable),
                tlp: None,
                asn: None,
            }))
        }))
    });

    let pack = scry_offline::embedded().expect("the embedded network data");
    group.bench_function("embedded AS and country data", |b| {
        b.iter(cycling(&addresses, |address| {
            usize::from(pack.lookup(black_box(*address)).is_some())
        }))
    });

    let ranges = 1_000_000;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("micro.bin");
    std::fs::write(&path, fixtures::packed_ctidb(ranges)).expect("the packed file is written");
    let db = PackedDb::open(&path, &Verification::Skip).expect("the packed file opens");
    let inside = fixtures::addresses_in_packed(&mut dice, ranges, INPUTS);
    group.bench_function("packed CTIDB v2, 1,000,000 ranges", |b| {
        b.iter(cycling(&inside, |address| {
            usize::from(db.record(black_box(*address)).expect("a lookup").is_some())
        }))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = micro;
    config = config();
    targets = rules, lookups
}
criterion_main!(micro);
