//! Merging a new enrichment into what was known (DESIGN.md invariant 8): knowledge is never erased
//! by a failure to learn more.
//!
//! A source that answered before and this time failed, was skipped (budget, TLP, rate, condition,
//! not configured, unsupported type) or was not asked keeps its last good answer: its detail,
//! report link, the reasons it gave and the tags it set, marked `stale` with when it was answered
//! and why it was not answered again. Only a fresh successful answer replaces it. The one
//! exception is an indicator the allowlist now covers: allowlisting is a decision, not a failure,
//! and what the outside sources said about it no longer counts.
//!
//! Pure: the previous state and the time it was checked are given.

use scry_core::{Reason, Severity, SkipReason, score};
use serde::{Deserialize, Serialize};

use crate::record::{ReasonRecord, Record, SourceRecord, SourceStatus};

/// Why a source's earlier answer stands in for a new one, and since when it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stale {
    /// When the kept answer was last given fresh (Unix milliseconds).
    pub answered_at: i64,
    /// What happened on the latest attempt: `skipped: budget`, `failed: …`, `not configured`.
    pub because: String,
}

/// One answer kept in place of a new one, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    pub source: String,
    pub stale: Stale,
    /// The latest attempt's outcome in one word: the skip reason, `failed`, `rejected` or
    /// `not-asked`.
    pub outcome: String,
}

/// The parts of a stored state a merge reads: per-source answers, reasons and tags.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub sources: std::collections::BTreeMap<String, SourceRecord>,
    pub reasons: Vec<ReasonRecord>,
    pub tags: Vec<String>,
    /// When the state was last checked (Unix milliseconds): a fresh answer in it was given then.
    pub checked_at: i64,
}

impl Known {
    /// Reads a stored state; a part that does not read as expected (one source's answer, one
    /// reason) counts as unknown, and the rest still counts.
    pub fn from_stored(record: &scry_store::IndicatorRecord, checked_at: i64) -> Known {
        let sources = record
            .sources
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, answer)| {
                let answer = serde_json::from_value(answer.clone()).ok()?;
                Some((name.clone(), answer))
            })
            .collect();
        let reasons = record
            .reasons
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|reason| serde_json::from_value(reason.clone()).ok())
            .collect();
        Known {
            sources,
            reasons,
            tags: record.tags.clone(),
            checked_at,
        }
    }
}

/// Whether `fresh` lacks a good answer `stored` has (so [`merge`] has something to keep): a
/// look at each stored answer's status, without reading the answers themselves.
pub fn lacks_earlier_answer(fresh: &Record, stored: &scry_store::IndicatorRecord) -> bool {
    stored
        .sources
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, answer)| answer.get("status").and_then(|s| s.as_str()) == Some("ok"))
        .any(|(name, _)| {
            fresh
                .sources
                .get(name)
                .is_none_or(|now| now.status != SourceStatus::Ok)
        })
}

/// `fresh` with every earlier good answer it lacks put back, marked stale; the priority, severity,
/// reasons and tags follow from the merged answers. Returns what was kept.
pub fn merge(mut fresh: Record, known: &Known) -> (Record, Vec<KeptAnswer>) {
    if fresh.skip_reason == Some(SkipReason::Allowlisted) {
        return (fresh, Vec::new());
    }
    let fresh_tags: Vec<String> = fresh
        .sources
        .values()
        .filter(|s| s.status == SourceStatus::Ok)
        .flat_map(|s| s.tags.iter().cloned())
        .collect();
    let mut kept = Vec::new();
    for (name, earlier) in &known.sources {
        if earlier.status != SourceStatus::Ok {
            continue;
        }
        let now = fresh.sources.get(name);
        if now.is_some_and(|s| s.status == SourceStatus::Ok) {
            continue;
        }
        let (outcome, because) = match now {
            None => (
                "not-asked".to_owned(),
                "not asked (not configured)".to_owned(),
            ),
            Some(s) => {
                let word = match (s.status, s.skip_reason) {
                    (SourceStatus::Skipped, Some(reason)) => reason.as_str(),
                    (other, _) => other.as_str(),
                };
                let detail = s
                    .error
                    .as_deref()
                    .or(s.skip_reason.map(SkipReason::as_str))
                    .unwrap_or("");
                (word.to_owned(), format!("{}: {detail}", s.status.as_str()))
            }
        };
        let stale = Stale {
            answered_at: earlier
                .stale
                .as_ref()
                .map_or(known.checked_at, |s| s.answered_at),
            because,
        };
        // Answers stored before sources kept their own tags: the tags no fresh source gives.
        let tags = if earlier.tags.is_empty() && earlier.stale.is_none() {
            known
                .tags
                .iter()
                .filter(|t| !fresh_tags.contains(t))
                .cloned()
                .collect()
        } else {
            earlier.tags.clone()
        };
        fresh.tags.extend(tags.iter().cloned());
        fresh
            .reasons
            .extend(known.reasons.iter().filter(|r| r.source == *name).cloned());
        let elapsed_ms = now.and_then(|s| s.elapsed_ms);
        fresh.sources.insert(
            name.clone(),
            SourceRecord {
                tags,
                stale: Some(stale.clone()),
                cached: false,
                credits: 0,
                elapsed_ms,
                ..earlier.clone()
            },
        );
        kept.push(KeptAnswer {
            source: name.clone(),
            stale,
            outcome,
        });
    }
    if !kept.is_empty() {
        fresh.tags.sort();
        fresh.tags.dedup();
        let reasons: Vec<Reason> = fresh
            .reasons
            .iter()
            .map(|r| Reason::new(&r.source, &r.signal, r.value.clone(), r.points))
            .collect();
        fresh.priority = score::priority(&reasons);
        fresh.severity = Severity::from_priority(fresh.priority);
        fresh.reasons.sort_by_key(|r| std::cmp::Reverse(r.points));
    }
    (fresh, kept)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::record::Status;

    fn answer(status: SourceStatus, tags: &[&str]) -> SourceRecord {
        SourceRecord {
            status,
            skip_reason: (status == SourceStatus::Skipped).then_some(SkipReason::Budget),
            error: (status == SourceStatus::Failed).then(|| "HTTP 503".to_owned()),
            report_url: None,
            cached: false,
            credits: 0,
            data: serde_json::json!({"inbound": "Critical"}),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            stale: None,
            elapsed_ms: None,
        }
    }

    fn reason(source: &str, points: i32) -> ReasonRecord {
        ReasonRecord {
            source: source.into(),
            signal: "score".into(),
            value: points.to_string(),
            points,
        }
    }

    fn record(sources: &[(&str, SourceRecord)], reasons: Vec<ReasonRecord>) -> Record {
        let priority = reasons.iter().map(|r| r.points).sum::<i32>().clamp(0, 100) as u8;
        Record {
            input: "185.220.101.47".into(),
            indicator: Some("185.220.101.47".into()),
            kind: Some("ipv4-addr".into()),
            status: Status::Skipped,
            skip_reason: Some(SkipReason::Budget),
            error: None,
            priority,
            severity: Severity::from_priority(priority),
            reasons,
            tags: sources.iter().flat_map(|(_, s)| s.tags.clone()).collect(),
            sources: sources
                .iter()
                .map(|(n, s)| ((*n).to_owned(), s.clone()))
                .collect::<BTreeMap<_, _>>(),
            stix_id: Some("ipv4-addr--x".into()),
            tlp: None,
            position: "-:1".into(),
            context: None,
        }
    }

    fn known(record: &Record, checked_at: i64) -> Known {
        Known {
            sources: record.sources.clone(),
            reasons: record.reasons.clone(),
            tags: record.tags.clone(),
            checked_at,
        }
    }

    #[test]
    fn an_answer_not_given_again_is_kept_with_its_reasons_tags_and_age() {
        let before = record(
            &[
                ("geo", answer(SourceStatus::Ok, &[])),
                ("criminalip", answer(SourceStatus::Ok, &["tor"])),
            ],
            vec![reason("criminalip", 90), reason("geo", 0)],
        );
        let now = record(
            &[
                ("geo", answer(SourceStatus::Ok, &[])),
                ("criminalip", answer(SourceStatus::Skipped, &[])),
            ],
            vec![reason("geo", 0)],
        );
        let (merged, kept) = merge(now, &known(&before, 1_000));
        assert_eq!((merged.priority, merged.severity), (90, Severity::Critical));
        assert_eq!(merged.tags, ["tor"]);
        let stale = merged.sources["criminalip"].stale.clone().expect("stale");
        assert_eq!(stale.answered_at, 1_000);
        assert_eq!(stale.because, "skipped: budget");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].outcome, "budget");

        // Kept again later: it still dates from when it was answered.
        let again = record(
            &[("criminalip", answer(SourceStatus::Failed, &[]))],
            Vec::new(),
        );
        let (merged, _) = merge(again, &known(&merged, 5_000));
        let stale = merged.sources["criminalip"].stale.clone().expect("stale");
        assert_eq!(stale.answered_at, 1_000);
        assert_eq!(stale.because, "failed: HTTP 503");
        assert_eq!(merged.priority, 90);
    }

    #[test]
    fn a_fresh_answer_replaces_and_allowlisting_drops() {
        let before = record(
            &[("criminalip", answer(SourceStatus::Ok, &["tor"]))],
            vec![reason("criminalip", 90)],
        );
        let fresh = record(
            &[("criminalip", answer(SourceStatus::Ok, &[]))],
            vec![reason("criminalip", 10)],
        );
        let (merged, kept) = merge(fresh, &known(&before, 1_000));
        assert!(kept.is_empty());
        assert_eq!(merged.priority, 10);
        assert!(merged.tags.is_empty());

        let mut allowlisted = record(&[], Vec::new());
        allowlisted.skip_reason = Some(SkipReason::Allowlisted);
        let (merged, kept) = merge(allowlisted, &known(&before, 1_000));
        assert!(kept.is_empty() && merged.priority == 0 && merged.sources.is_empty());
    }
}
