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
    /// Reads a stored state; parts that do not read as expected count as unknown.
    pub fn from_stored(record: &scry_store::IndicatorRecord, checked_at: i64) -> Known {
        Known {
            sources: serde_json::from_value(record.sources.clone()).unwrap_or_default(),
            reasons: serde_json::from_value(record.reasons.clone()).unwrap_or_default(),
            tags: record.tags.clone(),
            checked_at,
        }
    }
}

/// `fresh` with every earlier good answer it lacks put back, marked stale; the priority, severity,
/// reasons and tags follow from the merged answers. Returns what was kept.
pub fn merge(mut fresh: Record, known: &Known) -> (Record, Vec<KeptAnswer>) {
    if fresh.skip_reason.as_deref() == Some(SkipReason::Allowlisted.as_str()) {
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
                let word = match s.status {
                    SourceStatus::Skipped => {
                        s.skip_reason.clone().unwrap_or_else(|| "skipped".into())
                    }
                    other => other.as_str().to_owned(),
                };
                let detail = s
                    .error
                    .as_deref()
                    .or(s.skip_reason.as_deref())
                    .unwrap_or("");
                (word, format!("{}: {detail}", s.status.as_str()))
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
