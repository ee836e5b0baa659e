//! The inputs of W2 (fifty rules of the common shapes and the indicators they judge) and W4 (an
//! allowlist of CIDRs and a packed CTIDB file), built from a seed, so the harness and the
//! micro-benchmarks judge the same things.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use scry_rules::{
    ActionSpec, IndicatorContext, NamedLists, RuleSet, RuleSource, RuleSpec, Trigger,
};

use crate::data::Dice;

/// Rules in W2's set.
pub const RULES: usize = 50;

fn spec(name: String, when: String) -> RuleSource {
    let spec = RuleSpec {
        name,
        description: String::new(),
        on: vec![Trigger::Enriched],
        when,
        actions: vec![ActionSpec::Tag {
            tag: "bench".into(),
        }],
        enabled: true,
        cooldown_hours: None,
    };
    RuleSource::unplaced("bench", spec)
}

fn rule_set(conditions: Vec<String>, lists: NamedLists) -> RuleSet {
    let specs = conditions
        .into_iter()
        .enumerate()
        .map(|(n, when)| spec(format!("rule-{n}"), when))
        .collect();
    RuleSet::compile(specs, lists, &Default::default()).expect("the bench rules compile")
}

/// W2's fifty rules: CIDR lists of 1,000 networks, thresholds, tags, regular expressions on
/// domains and TLP, ten of each.
pub fn rules(seed: u64) -> RuleSet {
    let mut dice = Dice::new(seed ^ 0x5752);
    let mut lists = NamedLists::default();
    let mut conditions = Vec::new();
    for n in 0..10 {
        let networks: Vec<String> = (0..1_000)
            .map(|_| format!("{}/{}", dice.ipv4(), 16 + dice.below(9)))
            .collect();
        lists
            .add(&format!("nets_{n}"), networks.iter().map(String::as_str))
            .expect("the bench networks parse");
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
    rule_set(conditions, lists)
}

/// How many of `rules` match `context` on enrichment: W2's unit of work, fifty evaluations.
pub fn matches(rules: &RuleSet, context: &IndicatorContext) -> usize {
    rules
        .evaluate(Trigger::Enriched, context, "bench")
        .iter()
        .filter(|v| v.matched == Ok(true))
        .count()
}

/// The floor of W2: as many rules, each of the condition `true`.
pub fn trivial_rules() -> RuleSet {
    rule_set(vec!["true".to_owned(); RULES], NamedLists::default())
}

/// `count` stored indicators as rules see them: the W1 mix, with priorities, tags, TLP and AS.
pub fn contexts(count: usize, seed: u64) -> Vec<IndicatorContext> {
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

/// `count` networks for an allowlist, as W4 draws them: IPv4 /16–/32 and IPv6 /32–/128.
pub fn allowlist(dice: &mut Dice, count: usize) -> Vec<IpNet> {
    (0..count)
        .map(|_| match dice.ip() {
            IpAddr::V4(v4) => IpNet::new(v4.into(), 16 + dice.below(17) as u8),
            IpAddr::V6(v6) => IpNet::new(v6.into(), 32 + dice.below(97) as u8),
        })
        .map(|net| net.expect("a prefix length in range").trunc())
        .collect()
}

/// The first address of [`packed_ctidb`]'s ranges; range `i` is the /24 that starts `i × 256`
/// after it.
pub const PACKED_FIRST: u32 = 0x0100_0000;

/// A packed CTIDB file (layout v2) of `ranges` consecutive /24 ranges from [`PACKED_FIRST`], with
/// a flag section (every 7th range) and scores (every 3rd).
pub fn packed_ctidb(ranges: u32) -> Vec<u8> {
    let names = |list: &[&str]| {
        let mut out = (list.len() as u32).to_le_bytes().to_vec();
        for name in list {
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(name.as_bytes());
        }
        out
    };
    let start = |i: u32| PACKED_FIRST + i * 256;
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

/// `count` addresses inside [`packed_ctidb`]`(ranges)`'s ranges.
pub fn addresses_in_packed(dice: &mut Dice, ranges: u32, count: usize) -> Vec<Ipv4Addr> {
    let span = u64::from(ranges) * 256;
    (0..count)
        .map(|_| Ipv4Addr::from(PACKED_FIRST + dice.below(span) as u32))
        .collect()
}
