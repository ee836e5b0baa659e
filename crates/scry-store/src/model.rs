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
    /// What changed from the state before (`None` for points stored before scry kept changes).
    pub change: Option<Change>,
}

/// What an enrichment changed about an indicator: the diff rules trigger on ("priority rose by
/// 20", "a new CVE is exposed", "tagged c2"). For a new indicator, everything is new.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub stix_id: String,
    pub kind: String,
    pub value: String,
    /// `None` when the indicator was not stored before.
    pub previous_priority: Option<u8>,
    pub priority: u8,
    pub new_tags: Vec<String>,
    pub removed_tags: Vec<String>,
    pub new_cves: Vec<String>,
    pub removed_cves: Vec<String>,
}

impl Change {
    /// The priority difference (the whole priority for a new indicator).
    pub fn priority_delta(&self) -> i32 {
        i32::from(self.priority) - i32::from(self.previous_priority.unwrap_or(0))
    }

    /// True when nothing a rule could trigger on moved.
    pub fn is_empty(&self) -> bool {
        self.previous_priority == Some(self.priority)
            && self.new_tags.is_empty()
            && self.removed_tags.is_empty()
            && self.new_cves.is_empty()
            && self.removed_cves.is_empty()
    }
}

/// What a save did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveReport {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// New indicators, and stored ones whose priority, tags or CVEs moved, in batch order.
    pub changes: Vec<Change>,
}

impl SaveReport {
    /// Adds another save's counts and changes to this one.
    pub fn absorb(&mut self, other: SaveReport) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.changes.extend(other.changes);
    }
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

/// Where a pivot page ended: the next page starts after this (priority, id), so paging through a
/// value shared by a million indicators reads each page from the index, never from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PivotCursor {
    pub priority: u8,
    pub stix_id: String,
}

impl std::fmt::Display for PivotCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.priority, self.stix_id)
    }
}

impl std::str::FromStr for PivotCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<PivotCursor, String> {
        let invalid = || {
            format!(
                "invalid cursor {text:?}: expected PRIORITY:STIX_ID as a previous page printed it"
            )
        };
        let (priority, stix_id) = text.split_once(':').ok_or_else(invalid)?;
        let priority = priority.parse::<u8>().map_err(|_| invalid())?;
        if !stix_id.contains("--") || priority > 100 {
            return Err(invalid());
        }
        Ok(PivotCursor {
            priority,
            stix_id: stix_id.to_owned(),
        })
    }
}
