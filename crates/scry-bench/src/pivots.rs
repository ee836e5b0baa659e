//! W5, pivots: the questions an analyst asks of the graph, timed one after another on a stored
//! graph of a million observables (see [`crate::graph`]), each beside its floor — the same index
//! ranges read without building a single indicator (`count_sharing`), which is what the database
//! cannot avoid doing:
//!
//! - one hop: "all IPs in the ASN of X" (`scry pivot X --by asn`) and "all indicators exposing
//!   CVE Y", up to 1,000 rows, highest priority first;
//! - two hops: "IPs sharing an ASN with anything Z resolves to", walked through the stored hosts
//!   (Z's `resolves-to` → each host's ASN → who else has it), and as `scry pivot Z --by asn`
//!   answers it from the ASNs Z's own answer lists;
//! - the top 10 ASNs by count of high-priority indicators (the dashboard's list).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use scry_engine::pivot::{self, Pivot};
use scry_store::{Facet, Store, StoredIndicator};

use crate::graph::{self, Graph};
use crate::{Measure, percentiles, sqlite_store};
use scry_bench::data::Dice;

/// Rows a pivot answers at most: the page size the targets are for.
const ROWS: u32 = 1_000;
/// The priority the high-priority list starts at.
const HIGH: u8 = 80;

/// Latencies of one question and of its floor, and the rows it answered.
#[derive(Default)]
struct Timings {
    ms: Vec<f64>,
    floor_ms: Vec<f64>,
    rows: Vec<usize>,
}

impl Timings {
    fn measures(self, case: &str, size: usize, target: &str) -> Vec<Measure> {
        let (p50, p99) = percentiles(self.ms);
        let (floor50, floor99) = percentiles(self.floor_ms);
        let mean_rows = self.rows.iter().sum::<usize>() as f64 / self.rows.len().max(1) as f64;
        let biggest = self.rows.iter().copied().max().unwrap_or(0);
        let floor = "index ranges only";
        vec![
            Measure::new(
                "W5",
                &format!("{case} p50 ms"),
                size,
                "ms",
                p50,
                floor,
                floor50,
                "",
            ),
            Measure::new(
                "W5",
                &format!("{case} p99 ms"),
                size,
                "ms",
                p99,
                floor,
                floor99,
                target,
            ),
            Measure::new(
                "W5",
                &format!("{case} rows (mean; largest {biggest})"),
                size,
                "rows",
                mean_rows,
                "-",
                0.0,
                "",
            ),
        ]
    }
}

fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

async fn stored(store: &dyn Store, kind: &str, value: &str) -> anyhow::Result<StoredIndicator> {
    store
        .indicator(kind, value)
        .await?
        .with_context(|| format!("{value} is stored"))
}

/// The values of one facet an indicator has.
fn facet_values(stored: &StoredIndicator, facet: Facet) -> Vec<String> {
    stored
        .record
        .facets
        .iter()
        .filter(|(f, _)| *f == facet)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The floor of a pivot over `values`: the same index ranges, counted, nothing built.
async fn count_ranges(
    store: &dyn Store,
    facet: Facet,
    values: &[String],
    exclude: &str,
) -> anyhow::Result<u64> {
    let mut n = 0;
    for value in values {
        n += store
            .count_sharing(facet, value, exclude, u64::from(ROWS))
            .await?;
    }
    Ok(n)
}

/// "All IPs in the ASN of X".
async fn asn_of(
    store: &dyn Store,
    graph: &Graph,
    dice: &mut Dice,
    t: &mut Timings,
) -> anyhow::Result<()> {
    let (ip, _) = &graph.hosts[dice.below(graph.hosts.len() as u64) as usize];
    let started = Instant::now();
    let x = stored(store, "ipv4-addr", ip).await?;
    let page = pivot::page(store, &x, Pivot::Asn, 0, None, ROWS).await?;
    t.ms.push(ms_since(started));
    t.rows.push(page.rows.len());
    let started = Instant::now();
    let x = stored(store, "ipv4-addr", ip).await?;
    count_ranges(
        store,
        Facet::Asn,
        &facet_values(&x, Facet::Asn),
        &x.record.stix_id,
    )
    .await?;
    t.floor_ms.push(ms_since(started));
    Ok(())
}

/// "All indicators exposing CVE Y", Y drawn as hosts draw theirs.
async fn exposing(
    store: &dyn Store,
    graph: &Graph,
    dice: &mut Dice,
    t: &mut Timings,
) -> anyhow::Result<()> {
    let cve = vec![graph::cve_name(graph::skewed(dice, graph.cves, 2))];
    let started = Instant::now();
    let rows = store.sharing(Facet::Cve, &cve, "", 0, None, ROWS).await?;
    t.ms.push(ms_since(started));
    t.rows.push(rows.len());
    let started = Instant::now();
    count_ranges(store, Facet::Cve, &cve, "").await?;
    t.floor_ms.push(ms_since(started));
    Ok(())
}

/// "IPs sharing an ASN with anything Z resolves to", walked through the stored hosts.
async fn two_hop_walk(store: &dyn Store, z: &str, t: &mut Timings) -> anyhow::Result<()> {
    let started = Instant::now();
    let domain = stored(store, "domain-name", z).await?;
    let mut asns = Vec::new();
    for ip in facet_values(&domain, Facet::ResolvesTo) {
        asns.extend(facet_values(
            &stored(store, "ipv4-addr", &ip).await?,
            Facet::Asn,
        ));
    }
    asns.sort();
    asns.dedup();
    let rows = store
        .sharing(Facet::Asn, &asns, &domain.record.stix_id, 0, None, ROWS)
        .await?;
    t.ms.push(ms_since(started));
    t.rows.push(rows.len());
    let started = Instant::now();
    let domain = stored(store, "domain-name", z).await?;
    let mut asns = Vec::new();
    for ip in facet_values(&domain, Facet::ResolvesTo) {
        asns.extend(facet_values(
            &stored(store, "ipv4-addr", &ip).await?,
            Facet::Asn,
        ));
    }
    count_ranges(store, Facet::Asn, &asns, &domain.record.stix_id).await?;
    t.floor_ms.push(ms_since(started));
    Ok(())
}

/// The same question as `scry pivot Z --by asn` answers it.
async fn two_hop_pivot(store: &dyn Store, z: &str, t: &mut Timings) -> anyhow::Result<()> {
    let started = Instant::now();
    let domain = stored(store, "domain-name", z).await?;
    let page = pivot::page(store, &domain, Pivot::Asn, 0, None, ROWS).await?;
    t.ms.push(ms_since(started));
    t.rows.push(page.rows.len());
    let started = Instant::now();
    let domain = stored(store, "domain-name", z).await?;
    count_ranges(
        store,
        Facet::Asn,
        &facet_values(&domain, Facet::Asn),
        &domain.record.stix_id,
    )
    .await?;
    t.floor_ms.push(ms_since(started));
    Ok(())
}

pub(crate) async fn run(
    size: usize,
    seed: u64,
    work: &Path,
    quick: bool,
) -> anyhow::Result<Vec<Measure>> {
    let store = sqlite_store(work, "w5.db").await?;
    let started = Instant::now();
    let graph = graph::generate(
        store.as_ref(),
        size,
        seed,
        scry_engine::automation::now_ms(),
    )
    .await?;
    let built = started.elapsed().as_secs_f64();
    let store = store.as_ref();
    let samples = if quick { 100 } else { 2_000 };
    let mut dice = Dice::new(seed ^ 0x9170);
    let (mut one_asn, mut one_cve, mut walk, mut folded) = Default::default();
    for _ in 0..samples {
        asn_of(store, &graph, &mut dice, &mut one_asn).await?;
        exposing(store, &graph, &mut dice, &mut one_cve).await?;
        let z = &graph.domains[dice.below(graph.domains.len() as u64) as usize];
        two_hop_walk(store, z, &mut walk).await?;
        two_hop_pivot(store, z, &mut folded).await?;
    }
    let mut top = Vec::new();
    for _ in 0..if quick { 3 } else { 20 } {
        let started = Instant::now();
        let list = store.top_facet_values(Facet::Asn, HIGH, 10).await?;
        anyhow::ensure!(list.len() == 10, "top ASNs: {} listed", list.len());
        top.push(ms_since(started));
    }
    let mut out = vec![Measure::new(
        "W5",
        &format!(
            "graph stored ({} observables, {} edges; {} ASNs, {} CVEs to draw from)",
            graph.hosts.len() + graph.domains.len(),
            graph.edges,
            graph.asns,
            graph.cves
        ),
        size,
        "observables/s",
        size as f64 / built,
        "-",
        0.0,
        "",
    )];
    out.extend(one_asn.measures("one hop: IPs in the ASN of X", size, "p99 <= 10 ms"));
    out.extend(one_cve.measures("one hop: indicators exposing CVE Y", size, "p99 <= 10 ms"));
    out.extend(walk.measures(
        "two hops: ASN-mates of Z's resolved IPs, walked",
        size,
        "p99 <= 100 ms",
    ));
    out.extend(folded.measures("two hops as `scry pivot Z --by asn`", size, "p99 <= 100 ms"));
    let (p50, p99) = percentiles(top);
    out.push(Measure::new(
        "W5",
        &format!("top 10 ASNs by priority >= {HIGH} count p50 ms"),
        size,
        "ms",
        p50,
        "-",
        0.0,
        "",
    ));
    out.push(Measure::new(
        "W5",
        &format!("top 10 ASNs by priority >= {HIGH} count p99 ms"),
        size,
        "ms",
        p99,
        "-",
        0.0,
        "",
    ));
    Ok(out)
}
