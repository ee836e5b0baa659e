//! The indicator context: every name a condition or template can use, with a stable meaning.
//! Unknown numbers are 0 and unknown text is empty, so conditions compare without null checks.
//!
//! | name | meaning |
//! |---|---|
//! | `indicator.type` | STIX type: `ipv4-addr`, `ipv6-addr`, `domain-name`, `url`, … |
//! | `indicator.value` | the normalized value |
//! | `indicator.stix_id` | the observable's STIX id |
//! | `indicator.priority` | 0–100; a manual override when one is set |
//! | `indicator.computed_priority` | 0–100 as the sources scored it |
//! | `indicator.severity` | `critical`, `high`, `medium`, `low`, `info` |
//! | `indicator.tags` | the sources' tags and the labels rules and people added |
//! | `indicator.status` | workflow status: `new`, `investigating`, `blocked`, `closed`, … |
//! | `indicator.tlp` | `clear`, `green`, `amber`, `amber+strict`, `red`, or empty |
//! | `indicator.source` | the input file or feed it came in by, `schedule` for a refresh, `automation` for a rule's re-enrichment |
//! | `indicator.enrichment` | `enriched`, `skipped`, `failed`, … |
//! | `indicator.skip_reason` | why it was not sent out, when it was not |
//! | `indicator.asn`, `.as_name`, `.country` | network and place, when known |
//! | `indicator.cves` | CVE ids exposed |
//! | `indicator.phishing_probability` | 0–100 for domains and URLs |
//! | `indicator.criminalip.inbound`, `.outbound` | Criminal IP level, lower case (`critical` …) |
//! | `indicator.criminalip.inbound_level`, `.outbound_level` | the same as 1 (safe) … 5 (critical) |
//! | `indicator.criminalip.report_url` | link to the full report |
//! | `indicator.previous.exists` | false for an indicator seen for the first time |
//! | `indicator.previous.priority` | the priority before this change |
//! | `indicator.new_tags`, `.new_cves` | what this change added |
//! | `indicator.ticket` | the ticket opened for it, if any |
//!
//! Rules on the `budget-alert` trigger see `budget` instead: a source's credit use, not an
//! indicator.
//!
//! | name | meaning |
//! |---|---|
//! | `budget.source` | the source whose credits these are (`criminalip`) |
//! | `budget.event` | `alert` (the alert share was crossed), `exhausted` (the limit is reached), `refused` (the service said the credits are gone) |
//! | `budget.period` | `daily` or `monthly`; empty for `refused` |
//! | `budget.used`, `.limit` | credits used and the limit for the period (0 for `refused`) |
//! | `budget.percent` | `used` as a share of `limit`, 0–100 |
//! | `budget.message` | what happened, in words |

use serde::{Deserialize, Serialize};

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
