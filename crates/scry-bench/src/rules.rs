//! W2 rules: stored indicators against 50 rules — thresholds, CIDR lists, tags, regular
//! expressions on domains and TLP — as a full sweep and as a 10,000-indicator delta. The floor
//! is the same 50 rules with the condition `true`: what evaluation costs before any condition
//! does.

use std::time::Instant;

use scry_bench::fixtures::{self, RULES};
use scry_rules::{IndicatorContext, RuleSet};

use crate::Measure;

/// Nanoseconds per indicator-rule evaluation over `contexts`.
fn sweep(rules: &RuleSet, contexts: &[IndicatorContext]) -> (f64, usize) {
    let started = Instant::now();
    let mut matched = 0;
    for context in contexts {
        matched += fixtures::matches(rules, context);
    }
    let nanos = started.elapsed().as_nanos() as f64;
    (nanos / (contexts.len() * RULES) as f64, matched)
}

pub(crate) fn run(size: usize, seed: u64) -> anyhow::Result<Vec<Measure>> {
    let rules = fixtures::rules(seed);
    let floor = fixtures::trivial_rules();
    let all = fixtures::contexts(size, seed);
    let delta = &all[..all.len().min(10_000)];
    let mut measures = Vec::new();
    for (case, set) in [("full sweep", &all[..]), ("10,000-indicator delta", delta)] {
        let (ns, matched) = sweep(&rules, set);
        let (floor_ns, _) = sweep(&floor, set);
        anyhow::ensure!(matched > 0, "no bench rule matched anything");
        measures.push(Measure::new(
            "W2",
            &format!("50 rules, {case}"),
            set.len(),
            "evaluations/s",
            1e9 / ns,
            "50 rules of `true`",
            1e9 / floor_ns,
            "<= 200 ns per evaluation (>= 5,000,000/s)",
        ));
    }
    Ok(measures)
}
