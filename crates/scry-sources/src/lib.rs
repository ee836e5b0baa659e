//! Enrichment sources behind one interface.
//!
//! A [`Source`] answers "what do you know about this indicator?" with a [`Finding`]: reasons that
//! add to the priority, tags, a JSON detail object shown under the source's name, and a link to the
//! source's own report. Sources that leave the machine declare an external [`Destination`] and only
//! ever receive indicators the egress gate has [`Cleared`] for them; the shared limiter, budget and
//! cache every external call goes through (DESIGN.md invariant 2) wrap sources from outside.
//!
//! Sources know nothing of input files, output formats or the CLI.

pub mod classify;
pub mod clock;
pub mod criminalip;
pub mod ctidb;
pub mod feeds;
pub mod fetch;
pub mod geo;
pub mod guard;
pub mod phishing;
pub mod secret;

use std::future::Future;
use std::pin::Pin;

use scry_core::{Cleared, Destination, Observable, Reason};

pub use classify::Classification;
pub use criminalip::{CriminalIp, CriminalIpSettings};
pub use ctidb::Ctidb;
pub use feeds::{FeedSource, Feeds};
pub use geo::Geo;
pub use phishing::Phishing;
pub use secret::Secret;

/// The address an IP lookup is about: an IP, or a URL's IP host.
pub(crate) fn address_of(observable: &Observable) -> Option<std::net::IpAddr> {
    match observable {
        Observable::Ip(ip) => Some(*ip),
        Observable::Url(url) => match url.host() {
            scry_core::observable::UrlHost::Ip(ip) => Some(*ip),
            scry_core::observable::UrlHost::Domain(_) => None,
        },
        _ => None,
    }
}

/// The future a source returns; boxed so sources can be held as trait objects.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one source found about one indicator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finding {
    /// Contributions to the priority, each explained.
    pub reasons: Vec<Reason>,
    pub tags: Vec<String>,
    /// Source-specific detail, shown under the source's name in results.
    pub details: serde_json::Value,
    /// The source's own page about this indicator, for a one-click pivot.
    pub report_url: Option<String>,
    /// True when the answer came from the cache rather than a new call.
    pub from_cache: bool,
    /// Credits the call cost (0 for cached answers and free sources).
    pub credits: u32,
    /// The raw answers behind the finding, by call, kept whole for storage and re-analysis.
    pub raw: Vec<(String, serde_json::Value)>,
    /// The autonomous system the indicator is in, when this source knows it; the egress gate
    /// applies ASN allowlist entries with it to the sources asked after this one.
    pub asn: Option<u32>,
}

/// Per-request options a front end passes down.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnrichOptions {
    /// Bypass the cache and ask the source again.
    pub force: bool,
}

/// How a source call failed. Each variant tells the caller what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source cannot work at all (rejected key, unreachable service): stop using it for this
    /// run and report it; `scry` exits with status 1.
    #[error("source unusable: {0}")]
    Unusable(String),
    /// This indicator could not be enriched after the source's retries; recorded as `failed`.
    #[error("{0}")]
    Failed(String),
    /// The source says the indicator is not valid for it; recorded as `rejected`.
    #[error("rejected by the source: {0}")]
    InvalidIndicator(String),
    /// The source's credit budget is spent; the indicator is skipped with reason `budget`.
    #[error("credit budget spent")]
    BudgetExhausted,
}

/// Where paid answers are kept beyond the process (the store), so that a later run or another
/// worker reuses an answer still within its TTL instead of paying for it again.
pub trait AnswerArchive: Send + Sync {
    /// The newest answer for `key` that is still fresh at `now_ms`, with when it expires.
    fn load<'a>(
        &'a self,
        key: &'a ArchiveKey,
        now_ms: i64,
    ) -> SourceFuture<'a, Result<Option<(serde_json::Value, i64)>, String>>;

    /// Keeps an answer fetched at `fetched_ms`, fresh until `expires_ms`.
    fn save<'a>(
        &'a self,
        key: &'a ArchiveKey,
        body: &'a serde_json::Value,
        fetched_ms: i64,
        expires_ms: i64,
    ) -> SourceFuture<'a, Result<(), String>>;
}

/// A rate window shared beyond the process (the store), so that every process calling a vendor
/// with the same key keeps under one rate limit together.
pub trait RateLedger: Send + Sync {
    /// Takes a place for one call in `scope`'s window of at most `max` calls in any
    /// `window_ms`: `None` when taken, otherwise the milliseconds until one frees up.
    fn take<'a>(
        &'a self,
        scope: &'a str,
        max: u32,
        window_ms: i64,
    ) -> SourceFuture<'a, Result<Option<i64>, String>>;
}

/// What a paid source is given from outside when it is built, so that its limits and its
/// answers hold beyond the process: where paid answers are kept, the rate window shared with
/// every process using the same key, and the credits earlier runs spent. Sources that pay
/// nothing ignore it; without a store every part is empty.
#[derive(Clone)]
pub struct SourceContext {
    pub archive: Option<std::sync::Arc<dyn AnswerArchive>>,
    pub rate_ledger: Option<std::sync::Arc<dyn RateLedger>>,
    /// Credits spent today and this month (UTC) by account ([`account`]), from the store's
    /// history; calls recorded before accounts were are under the source's name.
    pub spent: std::collections::HashMap<String, (u64, u64)>,
    /// The wall clock: the system's in a run, a [`clock::ManualClock`] in a test.
    pub clock: std::sync::Arc<dyn clock::Clock>,
}

impl SourceContext {
    /// Credits spent today and this month with `account` of `source`: its own, and those
    /// recorded before accounts were (counted against every account, so no limit is exceeded
    /// for want of knowing whose they were).
    pub fn spent_by(&self, source: &str, account: &str) -> (u64, u64) {
        let own = self.spent.get(account).copied().unwrap_or_default();
        let unattributed = self.spent.get(source).copied().unwrap_or_default();
        (own.0 + unattributed.0, own.1 + unattributed.1)
    }
}

/// The account a paid source calls with: its key's fingerprint at the service's address
/// (`3f9a0c2b7e11@api.criminalip.io`). Budgets, rate windows and the history count per account,
/// so credits spent against `scry sandbox` are not counted against the real service, and two
/// keys are two budgets. Neither part is secret.
pub fn account(key_fingerprint: &str, base_url: &str) -> String {
    let address = url::Url::parse(base_url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| base_url.to_owned());
    format!("{key_fingerprint}@{address}")
}

impl Default for SourceContext {
    fn default() -> SourceContext {
        SourceContext {
            archive: None,
            rate_ledger: None,
            spent: Default::default(),
            clock: clock::system(),
        }
    }
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("archive", &self.archive.is_some())
            .field("rate_ledger", &self.rate_ledger.is_some())
            .field("spent", &self.spent)
            .field("clock", &self.clock)
            .finish()
    }
}

/// Identifies one paid call: (source, key fingerprint, call, indicator, parameters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchiveKey {
    pub source: String,
    pub key_fingerprint: String,
    pub call: String,
    pub indicator: String,
    pub parameters: String,
}

/// An enrichment source.
pub trait Source: Send + Sync {
    /// Stable identifier, used as the key of this source's detail in results and in config.
    fn name(&self) -> &str;

    /// Where this source sends what it is asked about.
    fn destination(&self) -> Destination;

    /// True if this source has anything to say about this kind of indicator.
    fn supports(&self, observable: &Observable) -> bool;

    /// Enriches one indicator. Only gate-cleared indicators can be passed.
    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>>;

    /// Checks that the source is usable (key accepted, service reachable) and says how it is
    /// configured, without enriching anything.
    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>>;

    /// The account paid calls are charged to ([`account`]); `None` for sources that pay nothing.
    fn account(&self) -> Option<String> {
        None
    }

    /// The HTTP requests sent since the last call (latency, outcome by kind, retry or not), for
    /// the history; sources that send nothing have none.
    fn take_attempts(&self) -> Vec<guard::Attempt> {
        Vec::new()
    }

    /// Budget events (alert share crossed, limit reached, refused by the service) raised since
    /// the last call; sources without a budget raise none.
    fn take_budget_events(&self) -> Vec<guard::BudgetEvent> {
        Vec::new()
    }

    /// Re-reads local data that changed on disk since it was read (a network data pack
    /// `scry data update` replaced); true when it did. Long-running processes call it between
    /// passes; on an error the data in use stays.
    fn reload(&self) -> Result<bool, String> {
        Ok(false)
    }

    /// One line on how the source has been doing (calls, cache hits, credits, latency), for
    /// summaries; `None` for sources with nothing to report.
    fn status_line(&self) -> Option<String> {
        None
    }
}
