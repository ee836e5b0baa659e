//! The values the store takes and returns.

use serde_json::Value;

/// An indicator's state after an enrichment, as the engine saves it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorRecord {
    pub stix_id: String,
    /// STIX type.
    pub kind: String,
    /// Normalized value.
    pub value: String,
    pub priority: u8,
    pub severity: String,
    /// `enriched`, `cached`, `skipped`, `failed`, …
    pub enrichment_status: String,
    pub skip_reason: Option<String>,
    pub tlp: Option<String>,
    pub tags: Vec<String>,
    /// The reasons, as a JSON array.
    pub reasons: Value,
    /// Per-source detail, as a JSON object.
    pub sources: Value,
    /// When this state was observed (Unix milliseconds).
    pub observed_at: i64,
    /// What the indicator shares with others, for pivots: (facet, value) pairs such as
    /// `("asn", "9009")`, `("cve", "CVE-2023-38408")`, `("subnet", "45.155.205.0/24")`.
    pub facets: Vec<(String, String)>,
}

/// An indicator as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIndicator {
    pub record: IndicatorRecord,
    /// When it was first stored.
    pub first_seen: i64,
    /// When its state last changed.
    pub last_changed: i64,
}

/// One point of an indicator's priority history.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorePoint {
    pub at: i64,
    pub priority: u8,
    pub severity: String,
    pub reasons: Value,
}

/// What a save did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveReport {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// Identifies one vendor call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    pub source: String,
    pub key_fingerprint: String,
    pub call: String,
    pub indicator: String,
    pub parameters: String,
}

/// A raw vendor answer with its time.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorAnswer {
    pub key: AnswerKey,
    pub fetched_at: i64,
    pub expires_at: i64,
    pub body: Value,
}
