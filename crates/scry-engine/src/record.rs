//! The result record of one indicator: the stable shape every output format and API writes.
//!
//! The field names are a public contract (documented in README.md) that scripts and SIEM
//! pipelines depend on: add fields, never rename or remove them.

use std::collections::BTreeMap;

use scry_core::{Severity, SkipReason, Tlp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happened to an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one source answered with a new call.
    Enriched,
    /// Every source answer came from the cache.
    Cached,
    /// Not sent to any source; `skip_reason` says why.
    Skipped,
    /// The input is not a usable indicator; `error` says why.
    Rejected,
    /// A source failed for it after retries; `error` says how.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enriched => "enriched",
            Status::Cached => "cached",
            Status::Skipped => "skipped",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
        }
    }
}

/// What one source did about an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    /// It answered (now, from its cache, or, marked `stale`, earlier).
    Ok,
    /// It was not asked; `skip_reason` says why.
    Skipped,
    /// It was asked and failed; `error` says how.
    Failed,
    /// It said the indicator is not valid for it.
    Rejected,
}

impl SourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Ok => "ok",
            SourceStatus::Skipped => "skipped",
            SourceStatus::Failed => "failed",
            SourceStatus::Rejected => "rejected",
        }
    }
}

/// One contribution to the priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonRecord {
    pub source: String,
    pub signal: String,
    pub value: String,
    pub points: i32,
}

/// What one source said (or why it was not asked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub status: SourceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
    #[serde(default)]
    pub cached: bool,
    #[serde(default)]
    pub credits: u32,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// The tags this source's answer set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Set when this is an earlier answer kept because the latest attempt did not answer: when
    /// it was given and why it was not given again (see [`crate::merge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<crate::merge::Stale>,
    /// How long the source took, for the history; not part of the record's output.
    #[serde(skip)]
    pub elapsed_ms: Option<u64>,
}

/// The result for one input indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The text as it appeared in the input.
    pub input: String,
    /// The normalized indicator; `null` when rejected.
    pub indicator: Option<String>,
    /// STIX object type (`ipv4-addr`, `domain-name`, `url`, …); `null` when rejected.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub status: Status,
    pub skip_reason: Option<SkipReason>,
    pub error: Option<String>,
    /// 0–100.
    pub priority: u8,
    pub severity: Severity,
    pub reasons: Vec<ReasonRecord>,
    pub tags: Vec<String>,
    /// Per-source detail, keyed by source name.
    pub sources: BTreeMap<String, SourceRecord>,
    /// Deterministic STIX id of the observable; `null` when rejected.
    pub stix_id: Option<String>,
    pub tlp: Option<Tlp>,
    /// `file:line`, or `file: objects[i]` for STIX bundles.
    pub position: String,
    /// Other columns or fields the input carried with the indicator.
    pub context: Option<Map<String, Value>>,
}

impl Record {
    /// A link to a source's full report, the first one any source gave.
    pub fn report_url(&self) -> Option<&str> {
        self.sources.values().find_map(|s| s.report_url.as_deref())
    }
}
