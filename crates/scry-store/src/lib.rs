//! scry's store: the current state of every indicator, its score history, and every raw vendor
//! answer with its time, in SQLite (one file, the default) or PostgreSQL (for teams and several
//! workers), behind one contract.
//!
//! One implementation serves both databases through sqlx's `Any` driver: the schema uses only
//! integers and text (JSON is stored as text), and the one dialect difference that matters —
//! placeholders — is generated per backend. Migrations are embedded and versioned
//! ([`migrations`]); both backends pass the same contract suite (`tests/it`).
//!
//! Saving is batched and idempotent: a record identical to what is stored changes nothing (not even
//! a timestamp); a changed one updates the row and, when its priority or reasons moved, adds a score
//! history point.

mod access;
mod automation;
pub mod migrations;
mod model;
mod overview;
mod rate;
mod search;
mod sql;

pub use scry_core::Facet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use model::{
    Account, AnswerKey, AttemptCount, BlockEntry, CallCount, Change, EVENT_KINDS, Event,
    EventFilter, IndicatorCursor, IndicatorOrder, IndicatorPage, IndicatorQuery, IndicatorRecord,
    Job, JobOutcome, LatencyHistogram, ListedIndicator, NewJob, Overview, PivotCursor, QueueDepth,
    SaveReport, ScorePoint, Session, StaleIndicator, StoredIndicator, VendorAnswer, Workflow,
};
pub use search::MAX_PAGE;
pub use sql::{SqlStore, redact};

/// The future store methods return; boxed so stores can be held as trait objects.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported store URL {0:?}: use sqlite:///path/to/scry.db or postgres://user@host/db"
    )]
    UnsupportedUrl(String),
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error(
        "the folder {0} does not exist: create it first (scry makes only its default store's folder), or check the path for a typo"
    )]
    MissingFolder(String),
    #[error("cannot reach the PostgreSQL server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("store migration {version} ({name}) failed: {source}")]
    Migration {
        version: u32,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "the store's schema is version {found}, newer than this scry knows ({known}); upgrade scry"
    )]
    SchemaTooNew { found: i64, known: u32 },
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The request cannot be served as asked (a cursor for another order, …).
    #[error("{0}")]
    Invalid(String),
    /// What was to be created exists already.
    #[error("{0}")]
    Conflict(String),
}

/// What every store does.
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Whether the database answers: one round trip, no table read.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Applies the migrations not applied yet; returns the versions applied now.
    fn migrate(&self) -> StoreFuture<'_, Vec<u32>>;

    /// Closes every connection. On SQLite the write-ahead log is checkpointed into the database
    /// file first, so after a close the one file `scry.db` holds everything (a copy of it is a
    /// whole backup). Nothing may use the store afterwards.
    fn close(&self) -> StoreFuture<'_, ()>;

    /// Writes a consistent copy of the whole database to `path` while it stays in use (SQLite's
    /// `VACUUM INTO`); the file must not exist. PostgreSQL refuses: `pg_dump` is its backup tool.
    fn backup<'a>(&'a self, path: &'a std::path::Path) -> StoreFuture<'a, ()>;

    /// The stored states of the indicators with these STIX ids (those not stored are left out),
    /// each with when it was last checked, for merging a new enrichment into what was known;
    /// their facets only `with_facets` (a second read).
    fn previous_states<'a>(
        &'a self,
        stix_ids: &'a [&'a str],
        with_facets: bool,
    ) -> StoreFuture<'a, Vec<(StoredIndicator, i64)>>;

    /// Saves enrichment results, batched; identical records change nothing.
    fn save_indicators<'a>(&'a self, batch: &'a [IndicatorRecord]) -> StoreFuture<'a, SaveReport>;

    /// The stored state of one indicator, by STIX type and normalized value.
    fn indicator<'a>(
        &'a self,
        kind: &'a str,
        value: &'a str,
    ) -> StoreFuture<'a, Option<StoredIndicator>>;

    /// The priority of an indicator over time, oldest first.
    fn score_history<'a>(&'a self, stix_id: &'a str) -> StoreFuture<'a, Vec<ScorePoint>>;

    /// Indicators with at least `min_priority`, highest first, at most `limit`.
    fn top_indicators(&self, min_priority: u8, limit: u32)
    -> StoreFuture<'_, Vec<StoredIndicator>>;

    /// One page of indicators with at least `min_priority` that changed at or after `changed_since`
    /// (Unix ms), in storage order after the cursor `after` (0 to start); each with its cursor.
    /// Keyset pagination: every page is an index range, never an OFFSET scan.
    fn export_page(
        &self,
        min_priority: u8,
        changed_since: i64,
        after: i64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<(i64, StoredIndicator)>>;

    /// Up to `limit` indicators last enriched before `before` (Unix ms), longest ago first: what
    /// a scheduled refresh asks about again. An index range, never a scan.
    fn stale_indicators(&self, before: i64, limit: u32) -> StoreFuture<'_, Vec<StaleIndicator>>;

    /// Number of stored indicators.
    fn count_indicators(&self) -> StoreFuture<'_, u64>;

    /// How many indicators have at least `min_priority` (their computed priority), first seen at
    /// or after `first_seen_since` when given: exact, from the priority index.
    fn count_at_priority(
        &self,
        min_priority: u8,
        first_seen_since: Option<i64>,
    ) -> StoreFuture<'_, u64>;

    /// Other indicators that have `facet` = one of `values`, highest priority first (then by id),
    /// with the value they share; the page after `after` when given. An indexed lookup, never a
    /// scan; for one value, each page is an index range however many indicators share it, and
    /// for several, each value's range is read up to `limit` entries at most.
    fn sharing<'a>(
        &'a self,
        facet: Facet,
        values: &'a [String],
        exclude_stix_id: &'a str,
        min_priority: u8,
        after: Option<&'a PivotCursor>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(StoredIndicator, String)>>;

    /// How many other indicators have `facet` = `value`, counting at most `cap` (an index range
    /// read of at most `cap` entries, so a hub value costs no more than a small one).
    fn count_sharing<'a>(
        &'a self,
        facet: Facet,
        value: &'a str,
        exclude_stix_id: &'a str,
        cap: u64,
    ) -> StoreFuture<'a, u64>;

    /// Keeps raw vendor answers (history; also what the answer cache reloads from).
    fn save_answers<'a>(&'a self, answers: &'a [VendorAnswer]) -> StoreFuture<'a, ()>;

    /// The newest answer for a call, if any.
    fn latest_answer<'a>(&'a self, key: &'a AnswerKey) -> StoreFuture<'a, Option<VendorAnswer>>;

    /// Takes a place for one vendor call in `scope`'s window, which holds at most `max` calls in
    /// any `window_ms`, counted by the database's clock across every process using this store.
    /// `None` when the place is taken; otherwise the milliseconds until one frees up.
    fn take_rate_slot<'a>(
        &'a self,
        scope: &'a str,
        max: u32,
        window_ms: i64,
    ) -> StoreFuture<'a, Option<i64>>;

    /// Adds jobs; one whose `dedupe_key` was ever enqueued before is left out. Returns how many
    /// were added.
    fn enqueue_jobs<'a>(&'a self, jobs: &'a [NewJob]) -> StoreFuture<'a, u64>;

    /// Leases up to `limit` jobs of the given `kinds` (all kinds when empty) that are due at
    /// `now` (oldest first) to `owner` until `now + lease_ms`. A job whose worker died is due again when its lease runs out; one that
    /// has used all its attempts that way is marked failed instead. Several workers may claim at
    /// once: each job goes to one of them.
    fn claim_jobs<'a>(
        &'a self,
        owner: &'a str,
        kinds: &'a [&'a str],
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Job>>;

    /// Moves the lease of jobs `owner` still holds to `until`, for work that outlasts a lease;
    /// returns how many it still held.
    fn renew_leases<'a>(
        &'a self,
        owner: &'a str,
        ids: &'a [i64],
        until: i64,
    ) -> StoreFuture<'a, u64>;

    /// Ends an attempt. Returns false (and changes nothing) when `owner` no longer holds the
    /// lease: the job ran too long and another worker has it now.
    fn finish_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        outcome: &'a JobOutcome,
        now: i64,
    ) -> StoreFuture<'a, bool>;

    /// Jobs per state at `now`.
    fn queue_depth(&self, now: i64) -> StoreFuture<'_, QueueDepth>;

    /// Appends to the automation history.
    fn record_events<'a>(&'a self, events: &'a [Event]) -> StoreFuture<'a, ()>;

    /// Vendor calls recorded at or after `since` (Unix ms), per source and outcome.
    fn call_counts(&self, since: i64) -> StoreFuture<'_, Vec<CallCount>>;

    /// How long `source`'s calls with `outcome` took (ms), at or after `since`, the newest
    /// `limit` at most, in no particular order.
    fn call_durations<'a>(
        &'a self,
        source: &'a str,
        outcome: &'a str,
        since: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<i64>>;

    /// HTTP requests to vendors recorded at or after `since` (history kind `attempt`), per source
    /// and outcome kind, with how many of them repeated a failed one.
    fn attempt_counts(&self, since: i64) -> StoreFuture<'_, Vec<AttemptCount>>;

    /// How long `source`'s HTTP requests took (ms), at or after `since`, the newest `limit` at
    /// most, in no particular order.
    fn attempt_latencies<'a>(
        &'a self,
        source: &'a str,
        since: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<i64>>;

    /// Every HTTP request the history holds, per source, counted against `bounds_ms` (ascending
    /// latency bounds in ms): what a cumulative latency histogram is made of.
    fn attempt_latency_histograms<'a>(
        &'a self,
        bounds_ms: &'a [u64],
    ) -> StoreFuture<'a, Vec<LatencyHistogram>>;

    /// Automation history, newest first.
    fn events<'a>(&'a self, filter: &'a EventFilter) -> StoreFuture<'a, Vec<Event>>;

    /// The workflow states of those of `stix_ids` someone or something touched, in no order.
    fn workflows<'a>(&'a self, stix_ids: &'a [String]) -> StoreFuture<'a, Vec<Workflow>>;

    /// The workflow state of an indicator (`None`: untouched).
    fn workflow<'a>(&'a self, stix_id: &'a str) -> StoreFuture<'a, Option<Workflow>>;

    /// Replaces the workflow state of an indicator.
    fn save_workflow<'a>(&'a self, workflow: &'a Workflow) -> StoreFuture<'a, ()>;

    /// Adds an entry to a blocklist, or moves an existing entry's expiry later.
    fn block<'a>(&'a self, entry: &'a BlockEntry) -> StoreFuture<'a, ()>;

    /// Every entry of `list`, tombstones of removed ones too, whose version was committed after
    /// `after_us`, in commit order, `limit` at most.
    fn blocklist_changes<'a>(
        &'a self,
        list: &'a str,
        after_us: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<BlockEntry>>;

    /// Removes an entry (a tombstone stays for feeds); returns whether it was there.
    fn unblock<'a>(&'a self, list: &'a str, value: &'a str) -> StoreFuture<'a, bool>;

    /// A blocklist's entries that have not expired at `now`, by value.
    fn blocklist<'a>(&'a self, list: &'a str, now: i64) -> StoreFuture<'a, Vec<BlockEntry>>;

    /// The lists `value` is on at `now`, by name.
    fn blocked_on<'a>(&'a self, value: &'a str, now: i64) -> StoreFuture<'a, Vec<String>>;

    /// Removes the entries of every list that expired before `now` (tombstones stay for feeds),
    /// and returns them.
    fn expire_blocks(&self, now: i64) -> StoreFuture<'_, Vec<BlockEntry>>;

    /// One page of the indicator list (see [`IndicatorQuery`]); a keyset page over an index.
    fn search_indicators<'a>(&'a self, query: &'a IndicatorQuery)
    -> StoreFuture<'a, IndicatorPage>;

    /// The stored state of one indicator, by its STIX id.
    fn indicator_by_id<'a>(&'a self, stix_id: &'a str) -> StoreFuture<'a, Option<StoredIndicator>>;

    /// Adds an API token with the SHA-256 (hex) of its secret; a name in use is a `Conflict`.
    fn create_token<'a>(
        &'a self,
        name: &'a str,
        role: &'a str,
        secret_hash: &'a str,
        created_at: i64,
        expires_at: Option<i64>,
    ) -> StoreFuture<'a, Account>;

    /// Adds a local user with the hash of their password; a name in use is a `Conflict`.
    fn create_user<'a>(
        &'a self,
        name: &'a str,
        role: &'a str,
        password_hash: &'a str,
        created_at: i64,
    ) -> StoreFuture<'a, Account>;

    /// A local user and their password hash, revoked or not.
    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<(Account, String)>>;

    /// The token whose secret has this SHA-256 (hex), revoked or not.
    fn token_by_hash<'a>(&'a self, secret_hash: &'a str) -> StoreFuture<'a, Option<Account>>;

    /// Every account (tokens and users), by name.
    fn accounts(&self) -> StoreFuture<'_, Vec<Account>>;

    /// Revokes an account and ends its sessions; returns whether a live account had that name.
    fn revoke_account<'a>(&'a self, name: &'a str, at: i64) -> StoreFuture<'a, bool>;

    /// Notes when an account was last used.
    fn touch_account(&self, id: i64, at: i64) -> StoreFuture<'_, ()>;

    /// Opens a browser session for a token; expired sessions are removed on the way.
    fn create_session<'a>(
        &'a self,
        secret_hash: &'a str,
        account_id: i64,
        csrf: &'a str,
        now: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, ()>;

    /// The live session whose secret has this SHA-256 (hex), with its token.
    fn session<'a>(&'a self, secret_hash: &'a str, now: i64) -> StoreFuture<'a, Option<Session>>;

    /// Ends a session.
    fn end_session<'a>(&'a self, secret_hash: &'a str) -> StoreFuture<'a, ()>;

    /// The dashboard's counts: days from `since` (Unix ms), the `top` values of each kind.
    fn overview(&self, since: i64, top: u32) -> StoreFuture<'_, Overview>;

    /// The `limit` values of `facet` (`asn`, `cve`, …) shared by the most indicators of at least
    /// `min_priority`, most first, ties by value: "the ASNs with the most high-priority hosts".
    fn top_facet_values<'a>(
        &'a self,
        facet: Facet,
        min_priority: u8,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(String, u64)>>;
}

/// Opens (creating it if needed) the store at `url` and brings its schema up to date.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = SqlStore::connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}
