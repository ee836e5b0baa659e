//! The `stix-import` source: what the producer of an imported STIX object judged — its score
//! (`x_opencti_score`), its confidence, its labels, who made it and its markings — kept as one
//! source's answer beside the others, so it counts in the priority like any other source, shows
//! under its own name, and is kept (as a stale answer) when the indicator is enriched again
//! without the file.
//!
//! Points: an imported score counts at half weight, scaled by the producer's confidence
//! (`score × confidence / 200`, confidence 100 when the object gives none): another tool's
//! verdict raises the priority, and scry's own sources corroborate it to the top. Labels become
//! tags.

use scry_core::Reason;
use serde_json::{Map, Value, json};

/// The source's name in records, reasons and the history.
pub const STIX_IMPORT: &str = "stix-import";

/// What the imported object said, as one source's answer: `None` for input that is not STIX or
/// carries no judgement (no score, confidence or labels).
pub fn imported_finding(context: &Map<String, Value>) -> Option<scry_sources::Finding> {
    let stix_id = context.get("stix_id").and_then(Value::as_str)?;
    let score = context
        .get("x_opencti_score")
        .and_then(Value::as_f64)
        .filter(|s| (0.0..=100.0).contains(s));
    let confidence = context
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| (0.0..=100.0).contains(c));
    let labels: Vec<String> = context
        .get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    if score.is_none() && confidence.is_none() && labels.is_empty() {
        return None;
    }
    let mut reasons = Vec::new();
    if let Some(score) = score {
        let weight = confidence.unwrap_or(100.0);
        let points = (score * weight / 200.0).round() as i32;
        let said = match confidence {
            Some(c) => format!("{score} (confidence {c})"),
            None => format!("{score}"),
        };
        if points > 0 {
            reasons.push(Reason::new(STIX_IMPORT, "imported-score", said, points));
        }
    }
    let mut details = json!({ "object": stix_id });
    for (key, name) in [
        ("x_opencti_score", "score"),
        ("confidence", "confidence"),
        ("created_by_ref", "created_by_ref"),
        ("object_marking_refs", "object_marking_refs"),
        ("name", "name"),
    ] {
        if let Some(value) = context.get(key) {
            details[name] = value.clone();
        }
    }
    if !labels.is_empty() {
        details["labels"] = json!(labels);
    }
    Some(scry_sources::Finding {
        reasons,
        tags: labels,
        details,
        report_url: None,
        from_cache: false,
        credits: 0,
        raw: Vec::new(),
        asn: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_score_counts_at_half_weight_scaled_by_confidence() {
        let finding = imported_finding(&context(json!({
            "stix_id": "indicator--1", "x_opencti_score": 80, "confidence": 50,
            "labels": ["Botnet", " c2 "], "created_by_ref": "identity--x",
        })))
        .expect("a finding");
        assert_eq!(finding.reasons.len(), 1);
        assert_eq!(finding.reasons[0].points, 20);
        assert_eq!(finding.reasons[0].value, "80 (confidence 50)");
        assert_eq!(finding.tags, ["botnet", "c2"]);
        assert_eq!(finding.details["created_by_ref"], "identity--x");
        let sure = imported_finding(&context(
            json!({"stix_id": "indicator--1", "x_opencti_score": 90}),
        ))
        .expect("a finding");
        assert_eq!(sure.reasons[0].points, 45);
    }

    #[test]
    fn nothing_judged_is_no_answer() {
        assert!(
            imported_finding(&context(json!({"stix_id": "indicator--1", "name": "x"}))).is_none()
        );
        assert!(imported_finding(&context(json!({"x_opencti_score": 80}))).is_none());
        let out_of_range = imported_finding(&context(
            json!({"stix_id": "i", "x_opencti_score": 900, "labels": ["a"]}),
        ))
        .expect("the labels");
        assert!(out_of_range.reasons.is_empty());
    }
}
