//! The indicator and budget contexts: every name a condition or template can use, with its type
//! and a stable meaning. Unknown numbers are 0 and unknown text is empty, so conditions compare
//! without null checks.
//!
//! [`INDICATOR_FIELDS`] and [`BUDGET_FIELDS`] are the one definition: `scry rules check`
//! type-checks conditions against them, `docs/rules.md` is generated from them (`scry rules
//! reference`), and a test holds them equal to what the structs below serialize.

use serde::{Deserialize, Serialize};

/// The type of a context field, as a condition sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    Int,
    Double,
    String,
    /// A list of text.
    StringList,
}

impl FieldType {
    /// The name the reference and the error messages use.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Bool => "bool",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::String => "string",
            FieldType::StringList => "list of string",
        }
    }
}

/// One name a condition can read: its full path, type and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub path: &'static str,
    pub kind: FieldType,
    pub meaning: &'static str,
}

const fn field(path: &'static str, kind: FieldType, meaning: &'static str) -> Field {
    Field {
        path,
        kind,
        meaning,
    }
}

use FieldType::{Bool, Double, Int, String as Text, StringList};

/// What a condition sees of an indicator (every trigger but `budget-alert`).
pub const INDICATOR_FIELDS: &[Field] = &[
    field(
        "indicator.type",
        Text,
        "STIX type: `ipv4-addr`, `ipv6-addr`, `domain-name`, `url`, …",
    ),
    field("indicator.value", Text, "the normalized value"),
    field("indicator.stix_id", Text, "the observable's STIX id"),
    field(
        "indicator.priority",
        Int,
        "0–100; a manual override when one is set",
    ),
    field(
        "indicator.computed_priority",
        Int,
        "0–100 as the sources scored it",
    ),
    field(
        "indicator.severity",
        Text,
        "`critical`, `high`, `medium`, `low`, `info`",
    ),
    field(
        "indicator.tags",
        StringList,
        "the sources' tags and the labels rules and people added",
    ),
    field(
        "indicator.status",
        Text,
        "workflow status: `new`, `investigating`, `escalated`, `blocked`, `false-positive` or `closed`",
    ),
    field(
        "indicator.tlp",
        Text,
        "`clear`, `green`, `amber`, `amber+strict`, `red`, or empty",
    ),
    field(
        "indicator.source",
        Text,
        "the input file or feed it came in by, `schedule` for a refresh, `automation` for a rule's re-enrichment",
    ),
    field(
        "indicator.enrichment",
        Text,
        "`enriched`, `skipped`, `failed`, …",
    ),
    field(
        "indicator.skip_reason",
        Text,
        "why it was not sent out, when it was not",
    ),
    field(
        "indicator.asn",
        Int,
        "autonomous system number, 0 when unknown",
    ),
    field("indicator.as_name", Text, "autonomous system name"),
    field(
        "indicator.country",
        Text,
        "ISO 3166 country code, upper case",
    ),
    field("indicator.cves", StringList, "CVE ids exposed"),
    field(
        "indicator.phishing_probability",
        Double,
        "0–100 for domains and URLs",
    ),
    field(
        "indicator.criminalip.inbound",
        Text,
        "Criminal IP inbound level, lower case (`safe` … `critical`)",
    ),
    field(
        "indicator.criminalip.outbound",
        Text,
        "Criminal IP outbound level, lower case",
    ),
    field(
        "indicator.criminalip.inbound_level",
        Int,
        "the inbound level as 1 (safe) … 5 (critical), 0 unknown",
    ),
    field(
        "indicator.criminalip.outbound_level",
        Int,
        "the outbound level as 1 (safe) … 5 (critical), 0 unknown",
    ),
    field(
        "indicator.criminalip.report_url",
        Text,
        "link to the full report",
    ),
    field(
        "indicator.previous.exists",
        Bool,
        "false for an indicator seen for the first time",
    ),
    field(
        "indicator.previous.priority",
        Int,
        "the priority before this change",
    ),
    field("indicator.new_tags", StringList, "tags this change added"),
    field("indicator.new_cves", StringList, "CVEs this change added"),
    field("indicator.ticket", Text, "the ticket opened for it, if any"),
];

/// What a `budget-alert` rule sees: a source's credit use, not an indicator.
pub const BUDGET_FIELDS: &[Field] = &[
    field(
        "budget.source",
        Text,
        "the source whose credits these are (`criminalip`)",
    ),
    field(
        "budget.event",
        Text,
        "`alert` (the alert share was crossed), `exhausted` (the limit is reached), `refused` (the service said the credits are gone)",
    ),
    field(
        "budget.period",
        Text,
        "`daily` or `monthly`; empty for `refused`",
    ),
    field(
        "budget.used",
        Int,
        "credits used in the period (0 for `refused`)",
    ),
    field(
        "budget.limit",
        Int,
        "the limit for the period (0 for `refused`)",
    ),
    field("budget.percent", Int, "`used` as a share of `limit`, 0–100"),
    field("budget.message", Text, "what happened, in words"),
];

/// What Criminal IP said, flattened for conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CriminalIpContext {
    pub inbound: String,
    pub outbound: String,
    pub inbound_level: i64,
    pub outbound_level: i64,
    pub report_url: String,
}

/// The state before the change being acted on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PreviousContext {
    pub exists: bool,
    pub priority: i64,
}

/// The indicator as a condition sees it (see the module documentation for each name).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndicatorContext {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    pub stix_id: String,
    pub priority: i64,
    pub computed_priority: i64,
    pub severity: String,
    pub tags: Vec<String>,
    pub status: String,
    pub tlp: String,
    pub source: String,
    pub enrichment: String,
    pub skip_reason: String,
    pub asn: i64,
    pub as_name: String,
    pub country: String,
    pub cves: Vec<String>,
    pub phishing_probability: f64,
    pub criminalip: CriminalIpContext,
    pub previous: PreviousContext,
    pub new_tags: Vec<String>,
    pub new_cves: Vec<String>,
    pub ticket: String,
}

/// A Criminal IP level name as a number: safe 1 … critical 5, unknown 0.
pub fn level_number(level: &str) -> i64 {
    match level.to_ascii_lowercase().as_str() {
        "safe" => 1,
        "low" => 2,
        "moderate" => 3,
        "dangerous" => 4,
        "critical" => 5,
        _ => 0,
    }
}

/// A source's credit use, as a `budget-alert` rule sees it (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetContext {
    pub source: String,
    pub event: String,
    pub period: String,
    pub used: i64,
    pub limit: i64,
    pub percent: i64,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every leaf of `value` as (path, type).
    fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, FieldType)>) {
        let kind = match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    leaves(&format!("{prefix}.{key}"), inner, out);
                }
                return;
            }
            Value::Bool(_) => FieldType::Bool,
            Value::Number(n) if n.is_f64() => FieldType::Double,
            Value::Number(_) => FieldType::Int,
            Value::String(_) => FieldType::String,
            Value::Array(_) => FieldType::StringList,
            Value::Null => panic!("{prefix} is null"),
        };
        out.push((prefix.to_owned(), kind));
    }

    fn sorted(fields: &[Field]) -> Vec<(String, FieldType)> {
        let mut all: Vec<_> = fields.iter().map(|f| (f.path.to_owned(), f.kind)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The field tables are exactly what the contexts serialize, name for name and type for
    /// type, so the checker and the reference cannot drift from what conditions see.
    #[test]
    fn the_field_tables_are_the_contexts() {
        for (name, value, fields) in [
            (
                "indicator",
                serde_json::to_value(IndicatorContext::default()).expect("json"),
                INDICATOR_FIELDS,
            ),
            (
                "budget",
                serde_json::to_value(BudgetContext::default()).expect("json"),
                BUDGET_FIELDS,
            ),
        ] {
            let mut found = Vec::new();
            leaves(name, &value, &mut found);
            found.sort_by(|a, b| a.0.cmp(&b.0));
            assert!(found.len() > 5, "the positive control: {found:?}");
            assert_eq!(found, sorted(fields));
        }
    }
}
