//! Stored indicators in the shapes front ends show: the JSON object the CLI, the REST API and
//! exports share, the STIX objects of one indicator, and a line on what an enrichment changed.
//! One definition each, so `scry show --format json`, `GET /api/v1/indicators/…` and TAXII agree.

use scry_core::Tlp;
use scry_stix::{IndicatorState, MapOptions, StixObject};
use scry_store::{Change, StoredIndicator, Workflow};
use serde_json::{Value, json};

/// A stored indicator as JSON.
pub fn stored_json(stored: &StoredIndicator) -> Value {
    let r = &stored.record;
    json!({
        "indicator": r.value, "type": r.kind, "stix_id": r.stix_id, "priority": r.priority, "severity": r.severity,
        "status": r.enrichment_status, "skip_reason": r.skip_reason, "tlp": r.tlp, "tags": r.tags, "reasons": r.reasons,
        "sources": r.sources, "first_seen": stored.first_seen, "last_changed": stored.last_changed,
        "network": scry_core::network::place(&scry_core::network::claims(&r.sources)),
    })
}

/// A run's result for one input as JSON (`scry enrich --format json|jsonl`): the record with the
/// network placement the stored indicator shows too.
pub fn record_json(record: &crate::record::Record) -> Value {
    let mut json = serde_json::to_value(record).unwrap_or_default();
    let sources = json.get("sources").cloned().unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        object.insert(
            "network".into(),
            serde_json::to_value(scry_core::network::place(&scry_core::network::claims(
                &sources,
            )))
            .unwrap_or_default(),
        );
    }
    json
}

/// The Criminal IP (or other) report link of a stored indicator, when a source gave one.
pub fn report_url(stored: &StoredIndicator) -> Option<&str> {
    stored
        .record
        .sources
        .as_object()?
        .values()
        .find_map(|s| s.get("report_url").and_then(|u| u.as_str()))
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("stored indicator {value}: {reason}")]
    Unreadable { value: String, reason: String },
}

/// The STIX objects of a stored indicator with its analyst state (`workflow`: labels and a
/// priority override are published); one stored without TLP is marked `unmarked_tlp`.
pub fn stix_objects(
    stored: &StoredIndicator,
    workflow: Option<&Workflow>,
    unmarked_tlp: Tlp,
    options: &MapOptions,
) -> Result<Vec<StixObject>, ViewError> {
    let r = &stored.record;
    let unreadable = |reason: String| ViewError::Unreadable {
        value: r.value.clone(),
        reason,
    };
    let tlp = match &r.tlp {
        Some(level) => level
            .parse::<Tlp>()
            .map_err(|e| unreadable(e.to_string()))?,
        None => unmarked_tlp,
    };
    let state = IndicatorState {
        kind: &r.kind,
        value: &r.value,
        priority: r.priority,
        severity: &r.severity,
        status: &r.enrichment_status,
        skip_reason: r.skip_reason.as_deref(),
        tlp,
        tags: &r.tags,
        reasons: &r.reasons,
        sources: &r.sources,
        first_seen_ms: stored.first_seen,
        last_changed_ms: stored.last_changed,
        labels: workflow.map_or(&[], |w| w.labels.as_slice()),
        priority_override: workflow.and_then(|w| w.priority_override),
        version_us: stored.version_us,
    };
    scry_stix::indicator_objects(&state, options).map_err(|e| unreadable(e.to_string()))
}

/// One line on what an enrichment changed: "first seen", or "+35 from 40; new tags c2; …".
pub fn change_text(change: &Change) -> String {
    let Some(before) = change.previous_priority else {
        return "first seen".to_owned();
    };
    let mut parts = Vec::new();
    if before != change.priority {
        parts.push(format!("{:+} from {before}", change.priority_delta()));
    }
    for (label, list) in [
        ("new tags", &change.new_tags),
        ("tags dropped", &change.removed_tags),
        ("new CVEs", &change.new_cves),
        ("CVEs gone", &change.removed_cves),
    ] {
        if !list.is_empty() {
            parts.push(format!("{label} {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        parts.push("reasons reworded".to_owned());
    }
    parts.join("; ")
}
