//! W2 rules: stored indicators against 50 rules — thresholds, CIDR lists, tags, regular
//! expressions on domains and TLP — as a full sweep and as a 10,000-indicator delta. The floor
//! is the same 50 rules with the condition `true`: what evaluation costs before any condition
//! does.

use std::time::Instant;

use scry_rules::{ActionSpec, IndicatorContext, NamedLists, RuleSet, RuleSpec, Trigger};

use crate::Measure;
use crate::data::Dice;

const RULES: usize = 50;

fn spec(name: String, when: String) -> (String, RuleSpec) {
    let spec = RuleSpec {
        name,
        description: String::new(),
        on: vec![Trigger::Enriched],
        when,
        actions: vec![ActionSpec::Tag {
            tag: "bench".into(),
        }],
        enabled: true,
    };
    ("bench".to_owned(), spec)
}

fn rule_set(conditions: Vec<String>, lists: NamedLists) -> RuleSet {
    let specs = conditions
        .into_iter()
        .enumerate()
        .map(|(n, when)| spec(format!("rule-{n}"), when))
        .collect();
    RuleSet::compile(specs, lists, &Default::default()).expect("the bench rules compile")
}

fn contexts(count: usize, seed: u64) -> Vec<IndicatorContext> {
    let mut dice = Dice::new(seed);
    const TAGS: [&str; 6] = ["c2", "tor", "scanner", "phishing", "vpn", "malware"];
    const TLPS: [&str; 4] = ["clear", "green", "amber", "red"];
    (0..count)
        .map(|_| {
            let value = dice.indicator();
            let kind = if value.starts_with("https://") {
                "url"
            } else if value.contains(':') {
                "ipv6-addr"
            } else if value.chars().all(|c| c.is_ascii_digit() || c == '.') {
                "ipv4-addr"
            } else {
                "domain-name"
            };
            let priority = dice.below(101) as i64;
            IndicatorContext {
                kind: kind.to_owned(),
                value,
                priority,
                computed_priority: priority,
                tags: (0..dice.below(3))
                    .map(|_| TAGS[dice.below(6) as usize].to_owned())
                    .collect(),
                tlp: TLPS[dice.below(4) as usize].to_owned(),
                asn: dice.below(70_000) as i64,
                country: "NL".to_owned(),
                ..IndicatorContext::default()
            }
        })
        .collect()
}

/// Nanoseconds per indicator-rule evaluation over `contexts`.
fn sweep(rules: &RuleSet, contexts: &[IndicatorContext]) -> (f64, usize) {
    let started = Instant::now();
    let mut matched = 0;
    for context in contexts {
        matched += rules
            .evaluate(Trigger::Enriched, context, "bench")
            .iter()
            .filter(|v| v.matched == Ok(true))
            .count();
    }
    let nanos = started.elapsed().as_nanos() as f64;
    (nanos / (contexts.len() * RULES) as f64, matched)
}

pub(crate) fn run(size: usize, seed: u64) -> anyhow::Result<Vec<Measure>> {
    let mut dice = Dice::new(seed ^ 0x5752);
    let mut lists = NamedLists::default();
    let mut conditions = Vec::new();
    for n in 0..10 {
        let networks: Vec<String> = (0..1_000)
            .map(|_| format!("{}/{}", dice.ipv4(), 16 + dice.below(9)))
            .collect();
        lists
            .add(&format!("nets_{n}"), networks.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        conditions.push(format!(
            "indicator.type == \"ipv4-addr\" && cidr_match(indicator.value, \"nets_{n}\")"
        ));
        conditions.push(format!("indicator.priority > {}", 50 + n * 5));
        conditions.push(format!(
            "\"{}\" in indicator.tags && indicator.priority >= {}",
            ["c2", "tor", "scanner", "phishing", "vpn"][n % 5],
            n * 10
        ));
        conditions.push(format!(
            "indicator.type == \"domain-name\" && indicator.value.matches(\"^[a-z]{{{}}}[a-z]*\\\\.(xyz|top|io)$\")",
            6 + n % 4
        ));
        conditions.push(format!(
            "indicator.tlp == \"{}\" && indicator.asn > {}",
            ["red", "amber"][n % 2],
            n * 5_000
        ));
    }
    assert_eq!(conditions.len(), RULES);
    let rules = rule_set(conditions, lists);
    let floor = rule_set(vec!["true".to_owned(); RULES], NamedLists::default());
    let all = contexts(size, seed);
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
