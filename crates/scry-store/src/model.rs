//! The values the store takes and returns.

use scry_core::Facet;
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
    pub facets: Vec<(Facet, String)>,
}

/// An indicator as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIndicator {
    pub record: IndicatorRecord,
    /// When it was first stored.
    pub first_seen: i64,
    /// When its state last changed.
    pub last_changed: i64,
    /// The commit stamp of its current version (Unix µs): a stored change of its state, its
    /// workflow or a merge stamps a new one, strictly increasing in commit order.
    pub version_us: i64,
}

/// Vendor calls of one source with one outcome (`ok`, `cached`, `failed`) in a period, from the
/// automation history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCount {
    /// The source's name.
    pub source: String,
    /// The account paid with; `None` for calls recorded before accounts were.
    pub account: Option<String>,
    pub outcome: String,
    pub calls: u64,
    pub credits: u64,
}

/// HTTP requests of one source that ended one way in a period, from the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCount {
    pub source: String,
    /// `ok`, `429`, `5xx`, `timeout`, `refused`, `limit` or `other`.
    pub outcome: String,
    pub attempts: u64,
    /// Of them, requests that repeated a failed one.
    pub retries: u64,
}

/// Every HTTP request of one source the history holds, as a latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    pub source: String,
    /// Requests with a recorded latency.
    pub count: u64,
    /// Their latencies added up, in ms.
    pub sum_ms: u64,
    /// For each bound asked for, in that order, how many took that long or less.
    pub at_or_under: Vec<u64>,
}

/// An indicator due for a scheduled refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleIndicator {
    pub stix_id: String,
    pub kind: String,
    pub value: String,
    pub tlp: Option<String>,
    /// When it was last enriched (Unix ms).
    pub checked_at: i64,
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
    /// What changed from `before` (`None` when nothing was stored) to `record`; CVEs are read
    /// from the `cve` facets.
    pub fn between(before: Option<&IndicatorRecord>, record: &IndicatorRecord) -> Change {
        match before {
            None => Change::diff(None, std::iter::empty(), &[], record),
            Some(b) => Change::diff(
                Some(b.priority),
                b.tags.iter().map(String::as_str),
                &b.facets,
                record,
            ),
        }
    }

    /// The change to `record` from a state with this priority, these tags and these facets.
    pub(crate) fn diff<'t>(
        previous_priority: Option<u8>,
        then_tags: impl Iterator<Item = &'t str>,
        then_facets: &[(Facet, String)],
        record: &IndicatorRecord,
    ) -> Change {
        use std::collections::BTreeSet;
        fn cves(facets: &[(Facet, String)]) -> BTreeSet<String> {
            facets
                .iter()
                .filter(|(facet, _)| *facet == Facet::Cve)
                .map(|(_, value)| value.clone())
                .collect()
        }
        let now_tags: BTreeSet<String> = record.tags.iter().cloned().collect();
        let then_tags: BTreeSet<String> = then_tags.map(str::to_owned).collect();
        let now_cves = cves(&record.facets);
        let then_cves = cves(then_facets);
        Change {
            stix_id: record.stix_id.clone(),
            kind: record.kind.clone(),
            value: record.value.clone(),
            previous_priority,
            priority: record.priority,
            new_tags: now_tags.difference(&then_tags).cloned().collect(),
            removed_tags: then_tags.difference(&now_tags).cloned().collect(),
            new_cves: now_cves.difference(&then_cves).cloned().collect(),
            removed_cves: then_cves.difference(&now_cves).cloned().collect(),
        }
    }

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

/// Work to be done later, durably: the job survives a crash until a worker finishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What runs it (`action`, `enrich`, …).
    pub kind: String,
    /// Jobs with the same key are enqueued once, ever: the same rule firing for the same event
    /// twice (a re-run, a second worker) does not act twice.
    pub dedupe_key: Option<String>,
    pub payload: Value,
    /// Not before this time (Unix ms).
    pub run_after: i64,
    pub max_attempts: u32,
}

/// A job a worker holds the lease of.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
    /// Including this one.
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at: i64,
}

/// How a job attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    /// Try again at `at` (Unix ms); after the last attempt this is the same as `Failed`.
    Retry {
        at: i64,
        error: String,
    },
    Failed {
        error: String,
    },
}

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Pending and due now.
    pub ready: u64,
    /// Pending, but waiting for a retry time or held by a worker.
    pub waiting: u64,
    pub done: u64,
    pub failed: u64,
}

/// Every kind of history entry, with what it records (`scry history --kind`).
pub const EVENT_KINDS: &[(&str, &str)] = &[
    ("rule", "a rule matched (or, in a rehearsal, would have)"),
    ("action", "an action and its outcome"),
    ("skip", "an indicator not sent out, and why"),
    (
        "call",
        "a vendor call: paid, cached or failed, with its credits",
    ),
    (
        "attempt",
        "one HTTP request to a vendor: latency, outcome, retry",
    ),
    (
        "kept",
        "an earlier answer kept when a refresh could not replace it",
    ),
    (
        "budget",
        "a credit budget's alert share crossed, limit reached or refusal",
    ),
];

/// One line of the automation history: a rule that matched, an action and its outcome, a skip
/// and its reason, a vendor call and its cost, a change and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Assigned by the store (0 before it is recorded); increases with time.
    pub id: i64,
    pub at: i64,
    /// `rule`, `action`, `skip`, `call`, `change`, `budget`.
    pub kind: String,
    pub stix_id: Option<String>,
    pub indicator: Option<String>,
    pub rule: Option<String>,
    pub action: Option<String>,
    /// `matched`, `ok`, `failed`, `retry`, `dry-run`, a skip reason, …
    pub outcome: String,
    /// Who caused it: `manual`, `source:NAME`, `rule:NAME`, `schedule`.
    pub origin: String,
    /// For vendor calls and requests: the account paid with (key fingerprint and service
    /// address, see `scry_sources::account`), so a budget counts one key at one service only.
    pub account: Option<String>,
    pub duration_ms: Option<i64>,
    pub credits: i64,
    pub detail: Value,
}

impl Event {
    /// An event about one indicator at `at`; rule, action, duration and credits left unset.
    pub fn about(
        kind: &str,
        stix_id: &str,
        indicator: &str,
        outcome: &str,
        origin: &str,
        at: i64,
        detail: Value,
    ) -> Event {
        Event {
            id: 0,
            at,
            kind: kind.to_owned(),
            stix_id: Some(stix_id.to_owned()),
            indicator: Some(indicator.to_owned()),
            rule: None,
            action: None,
            outcome: outcome.to_owned(),
            origin: origin.to_owned(),
            account: None,
            duration_ms: None,
            credits: 0,
            detail,
        }
    }
}

/// Which events to list: newest first, each filter optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub stix_id: Option<String>,
    pub rule: Option<String>,
    pub kind: Option<String>,
    /// At or after (Unix ms).
    pub since: Option<i64>,
    /// Events with a smaller id than this (the next page).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// What analysts and rules set on an indicator, kept apart from what sources say so a
/// re-enrichment never undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub stix_id: String,
    /// One of `scry_rules::WORKFLOW_STATUSES` (`new` by default); checked where it is set.
    pub status: String,
    /// Tags added by rules or people, on top of the sources' tags.
    pub labels: Vec<String>,
    /// A priority set by hand or by a rule, shown instead of the computed one.
    pub priority_override: Option<u8>,
    /// The ticket opened for it.
    pub ticket: Option<String>,
    pub updated_at: i64,
    pub origin: String,
}

impl Workflow {
    /// The state of an indicator nobody has touched.
    pub fn untouched(stix_id: &str) -> Workflow {
        Workflow {
            stix_id: stix_id.to_owned(),
            status: "new".to_owned(),
            labels: Vec::new(),
            priority_override: None,
            ticket: None,
            updated_at: 0,
            origin: String::new(),
        }
    }
}

/// One entry of a named blocklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    pub list: String,
    pub value: String,
    pub stix_id: String,
    pub added_at: i64,
    pub expires_at: i64,
    pub reason: String,
    pub origin: String,
    /// The commit stamp of this entry's current version (Unix µs); the store sets it when the
    /// entry is written.
    pub version_us: i64,
    /// When it was removed (unblocked or expired), for a tombstone; `None` while it stands.
    pub removed_at: Option<i64>,
}

/// What the indicator list is ordered by; ties are broken by storage order, so every order is a
/// keyset over an index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IndicatorOrder {
    #[default]
    Priority,
    LastChanged,
    FirstSeen,
    Value,
    /// The commit order of versions (`StoredIndicator::version_us`): what TAXII pages by.
    /// Not offered to people (not in [`IndicatorOrder::NAMES`]).
    Version,
}

impl IndicatorOrder {
    /// The names the API and the workbench use.
    pub const NAMES: [&'static str; 4] = ["priority", "last_changed", "first_seen", "value"];

    pub fn name(self) -> &'static str {
        match self {
            IndicatorOrder::Priority => "priority",
            IndicatorOrder::LastChanged => "last_changed",
            IndicatorOrder::FirstSeen => "first_seen",
            IndicatorOrder::Value => "value",
            IndicatorOrder::Version => "version",
        }
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            IndicatorOrder::Version => "version_us",
            other => other.name(),
        }
    }
}

impl std::str::FromStr for IndicatorOrder {
    type Err = String;

    fn from_str(text: &str) -> Result<IndicatorOrder, String> {
        match text {
            "priority" => Ok(IndicatorOrder::Priority),
            "last_changed" => Ok(IndicatorOrder::LastChanged),
            "first_seen" => Ok(IndicatorOrder::FirstSeen),
            "value" => Ok(IndicatorOrder::Value),
            "version" => Ok(IndicatorOrder::Version),
            other => Err(format!(
                "unknown order {other:?} (expected one of {})",
                IndicatorOrder::NAMES.join(", ")
            )),
        }
    }
}

/// Where a page of the indicator list ended: the ordering key of its last row and that row's
/// storage id. Written as `ORDER:KEY~ID`; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorCursor {
    pub order: IndicatorOrder,
    pub descending: bool,
    /// The ordering column's value: a number, or the indicator's value for [`IndicatorOrder::Value`].
    pub key: String,
    pub id: i64,
}

impl std::fmt::Display for IndicatorCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let direction = if self.descending { "-" } else { "" };
        write!(
            f,
            "{direction}{}:{}~{}",
            self.order.name(),
            self.key,
            self.id
        )
    }
}

impl std::str::FromStr for IndicatorCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<IndicatorCursor, String> {
        let invalid = || format!("invalid cursor {text:?}: pass `next` as a previous page gave it");
        let (descending, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (order, rest) = rest.split_once(':').ok_or_else(invalid)?;
        let order: IndicatorOrder = order.parse().map_err(|_| invalid())?;
        let (key, id) = rest.rsplit_once('~').ok_or_else(invalid)?;
        let id = id.parse::<i64>().map_err(|_| invalid())?;
        if order != IndicatorOrder::Value && key.parse::<i64>().is_err() {
            return Err(invalid());
        }
        Ok(IndicatorCursor {
            order,
            descending,
            key: key.to_owned(),
            id,
        })
    }
}

/// Which indicators to list, in which order: every filter optional. Filters on columns narrow
/// the index range read; tag and source filters are checked on each row read, so a page may hold
/// fewer than `limit` rows while `next` still says where to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorQuery {
    /// STIX types (`ipv4-addr`, `domain-name`, `url`, …); any when empty.
    pub kinds: Vec<String>,
    pub min_priority: u8,
    pub max_priority: u8,
    /// `critical`, `high`, `medium`, `low`, `info`; any when empty.
    pub severities: Vec<String>,
    /// Carries this tag (a source's tag or a workflow label).
    pub tag: Option<String>,
    /// A source has an answer for it.
    pub source: Option<String>,
    /// Workflow status (`new` for untouched indicators).
    pub status: Option<String>,
    /// Enrichment status: `enriched`, `skipped`, `failed`.
    pub enrichment: Option<String>,
    /// Changed at or after (Unix ms).
    pub changed_since: Option<i64>,
    /// Changed before (Unix ms).
    pub changed_before: Option<i64>,
    /// Its current version was committed after this stamp (Unix µs, see
    /// `StoredIndicator::version_us`).
    pub version_after: Option<i64>,
    /// The value contains this text.
    pub text: Option<String>,
    pub order: IndicatorOrder,
    pub descending: bool,
    pub after: Option<IndicatorCursor>,
    pub limit: u32,
}

impl Default for IndicatorQuery {
    fn default() -> IndicatorQuery {
        IndicatorQuery {
            kinds: Vec::new(),
            min_priority: 0,
            max_priority: 100,
            severities: Vec::new(),
            tag: None,
            source: None,
            status: None,
            enrichment: None,
            changed_since: None,
            changed_before: None,
            version_after: None,
            text: None,
            order: IndicatorOrder::Priority,
            descending: true,
            after: None,
            limit: 50,
        }
    }
}

/// One row of the indicator list: the indicator and its workflow state.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedIndicator {
    pub stored: StoredIndicator,
    /// `new` when nobody has touched it.
    pub status: String,
    /// Workflow labels on top of the sources' tags.
    pub labels: Vec<String>,
    /// Where a page that ends with this row ends: the next page starts after it.
    pub cursor: IndicatorCursor,
}

/// A page of the indicator list, and where the next one starts (`None`: this is the last).
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorPage {
    pub rows: Vec<ListedIndicator>,
    pub next: Option<IndicatorCursor>,
}

/// Who may use the server: an API token (only the SHA-256 of its secret is stored) or a local
/// user who logs in to the workbench with a password (only a salted PBKDF2 hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    /// `token` or `user`.
    pub kind: String,
    /// `viewer`, `analyst` or `admin`.
    pub role: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A browser session: opened with a token or a password, kept by a cookie whose secret is stored hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: Account,
    /// The anti-forgery value every state-changing form carries.
    pub csrf: String,
    pub expires_at: i64,
}

/// What the dashboard counts, read in a few aggregate queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    pub indicators: u64,
    /// Indicators per severity.
    pub by_severity: Vec<(String, u64)>,
    /// The most shared values of `asn`, `country`, `cve` and of tags, most first: (kind, value,
    /// indicators).
    pub top: Vec<(String, String, u64)>,
    /// Indicators first seen per UTC day (days since 1970-01-01).
    pub new_per_day: Vec<(i64, u64)>,
    /// Source calls per UTC day, source and outcome.
    pub calls_per_day: Vec<(i64, String, String, u64)>,
}
