//! Threat feeds as a source: published lists (plain lists, netsets, CSV, Tor exits, abuse.ch
//! exports, Criminal IP's C2 Daily Feed) pulled on an interval and asked on this machine.
//!
//! A pull asks each due feed with `If-None-Match` / `If-Modified-Since`, so an unchanged feed
//! costs one small answer; a changed one is parsed (its malformed lines reported by number) and
//! its body and state written beside each other in the feed directory, each by an atomic rename.
//! The in-memory index is rebuilt and swapped in one step, so lookups never pause or see half a
//! feed. Failures are kept in the feed's state and reported, and the previous copy stays in use.
//!
//! The `feeds` source answers which feeds list an indicator (the address itself or a network
//! holding it; a URL's host too): one reason per feed, weighted by its confidence, and when
//! several agree a "N of M feeds agree" reason on top.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use scry_core::observable::UrlHost;
use scry_core::{Cleared, Destination, Observable, Reason};
use scry_offline::feeds::{FeedFormat, FeedProblem, parse};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::fetch::{Fetched, Validators, fetch_if_changed};
use crate::{EnrichOptions, Finding, Source, SourceError, SourceFuture};

const SOURCE: &str = "feeds";
/// The largest feed body taken.
const MAX_BODY: usize = 256 << 20;

/// Where a feed comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedLocation {
    Url(url::Url),
    File(PathBuf),
}

impl FeedLocation {
    /// The location as shown in messages: a URL without its query, which may hold a key.
    pub fn shown(&self) -> String {
        match self {
            FeedLocation::Url(url) => crate::fetch::shown(url),
            FeedLocation::File(path) => path.display().to_string(),
        }
    }
}

/// One configured feed.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub name: String,
    pub location: FeedLocation,
    pub format: FeedFormat,
    /// 0–100, for entries that do not carry their own.
    pub confidence: u8,
    /// Added to every entry.
    pub tags: Vec<String>,
    /// Priority points a listing adds at confidence 100.
    pub points: i32,
    pub interval: Duration,
    /// Request headers whose values are read from the environment (`Auth-Key` → a variable).
    pub header_env: BTreeMap<String, String>,
    /// Queue what a pull newly lists for enrichment.
    pub ingest: bool,
    /// The TLP of what it lists, when queued.
    pub tlp: Option<scry_core::Tlp>,
}

/// What is kept of a feed's pulls, in `NAME.json` beside its body `NAME.feed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The last pull that reached the feed (changed or not), Unix milliseconds.
    pub checked_ms: Option<i64>,
    /// When the body last changed.
    pub changed_ms: Option<i64>,
    pub entries: u64,
    pub problems: u64,
    /// The last pull's failure, cleared by a pull that works.
    pub last_error: Option<String>,
    pub failed_ms: Option<i64>,
}

/// How one feed's pull went.
#[derive(Debug, Clone, PartialEq)]
pub enum PullOutcome {
    /// A new body: its entries, the lines that could not be read, and what it newly lists.
    Updated {
        entries: u64,
        problems: Vec<FeedProblem>,
        new: Vec<Observable>,
    },
    NotModified,
    /// Pulled less than its interval ago.
    NotDue,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PullReport {
    pub feed: String,
    pub outcome: PullOutcome,
}

/// One listing of an indicator by a feed.
#[derive(Debug, Clone)]
struct Listing {
    feed: usize,
    value: String,
    line: u64,
    confidence: u8,
    tags: Vec<String>,
    fields: BTreeMap<String, String>,
}

/// Every listing of every feed, by what is listed.
#[derive(Default)]
struct FeedIndex {
    listings: Vec<Listing>,
    exact: HashMap<String, Vec<u32>>,
    v4: PrefixMap<Ipv4Net, Vec<u32>>,
    v6: PrefixMap<Ipv6Net, Vec<u32>>,
}

impl FeedIndex {
    fn add(&mut self, listing: Listing, observable: &Observable) {
        let id = self.listings.len() as u32;
        match observable {
            Observable::Cidr(IpNet::V4(net)) => self.v4.entry(*net).or_default().push(id),
            Observable::Cidr(IpNet::V6(net)) => self.v6.entry(*net).or_default().push(id),
            _ => self
                .exact
                .entry(listing.value.clone())
                .or_default()
                .push(id),
        }
        self.listings.push(listing);
    }

    fn covering(&self, ip: IpAddr, out: &mut Vec<u32>) {
        match ip {
            IpAddr::V4(v4) => {
                if let Ok(net) = Ipv4Net::new(v4, 32) {
                    out.extend(self.v4.cover(&net).flat_map(|(_, ids)| ids.iter().copied()));
                }
            }
            IpAddr::V6(v6) => {
                if let Ok(net) = Ipv6Net::new(v6, 128) {
                    out.extend(self.v6.cover(&net).flat_map(|(_, ids)| ids.iter().copied()));
                }
            }
        }
    }

    /// The listings of `observable`, at most one per feed (the first line that lists it).
    fn lookup(&self, observable: &Observable) -> Vec<&Listing> {
        let mut ids = Vec::new();
        let exact = |value: String, ids: &mut Vec<u32>| {
            if let Some(found) = self.exact.get(&value) {
                ids.extend(found.iter().copied());
            }
        };
        exact(observable.value(), &mut ids);
        match observable {
            Observable::Ip(ip) => self.covering(*ip, &mut ids),
            Observable::Cidr(IpNet::V4(net)) => {
                ids.extend(self.v4.cover(net).flat_map(|(_, l)| l.iter().copied()));
            }
            Observable::Cidr(IpNet::V6(net)) => {
                ids.extend(self.v6.cover(net).flat_map(|(_, l)| l.iter().copied()));
            }
            Observable::Url(url) => match url.host() {
                UrlHost::Ip(ip) => {
                    exact(ip.to_string(), &mut ids);
                    self.covering(*ip, &mut ids);
                }
                UrlHost::Domain(domain) => exact(domain.as_str().to_owned(), &mut ids),
            },
            _ => {}
        }
        let mut seen = HashSet::new();
        let mut found: Vec<&Listing> = ids
            .into_iter()
            .map(|id| &self.listings[id as usize])
            .collect();
        found.sort_by_key(|l| (l.feed, l.line));
        found.retain(|l| seen.insert(l.feed));
        found
    }

    fn values_of(&self, feed: usize) -> HashSet<&str> {
        self.listings
            .iter()
            .filter(|l| l.feed == feed)
            .map(|l| l.value.as_str())
            .collect()
    }
}

/// The configured feeds, their copies on disk and the index over them.
pub struct Feeds {
    feeds: Vec<FeedSettings>,
    dir: PathBuf,
    /// Points per agreeing feed beyond the first.
    corroboration_points: i32,
    http: reqwest::Client,
    index: RwLock<Arc<FeedIndex>>,
    /// When a feed is due, and when it was checked or failed.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("feeds", &self.feeds.len())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers see the old file
/// or the new one, never part of one.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

fn label(tag: &str) -> String {
    tag.trim().to_ascii_lowercase().replace([' ', '_'], "-")
}

impl Feeds {
    /// Reads what earlier pulls left in `dir`.
    pub fn new(
        feeds: Vec<FeedSettings>,
        dir: PathBuf,
        corroboration_points: i32,
        clock: Arc<dyn Clock>,
    ) -> Result<Feeds, String> {
        let http = crate::fetch::http_client()?;
        let feeds = Feeds {
            feeds,
            dir,
            corroboration_points,
            http,
            index: RwLock::new(Arc::new(FeedIndex::default())),
            clock,
        };
        feeds.reload();
        Ok(feeds)
    }

    pub fn settings(&self) -> &[FeedSettings] {
        &self.feeds
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn body_path(&self, feed: &FeedSettings) -> PathBuf {
        self.dir.join(format!("{}.feed", feed.name))
    }

    fn state_path(&self, feed: &FeedSettings) -> PathBuf {
        self.dir.join(format!("{}.json", feed.name))
    }

    /// What earlier pulls of `feed` left; nothing when it was never pulled.
    pub fn state(&self, feed: &FeedSettings) -> FeedState {
        std::fs::read(self.state_path(feed))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save_state(&self, feed: &FeedSettings, state: &FeedState) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(state).expect("states serialize");
        replace_file(&self.state_path(feed), &bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.state_path(feed).display()))
    }

    fn current(&self) -> Arc<FeedIndex> {
        Arc::clone(&self.index.read().expect("the index lock is not poisoned"))
    }

    /// Rebuilds the index from the copies on disk and swaps it in.
    fn reload(&self) {
        let mut index = FeedIndex::default();
        for (number, feed) in self.feeds.iter().enumerate() {
            let Ok(text) = std::fs::read_to_string(self.body_path(feed)) else {
                continue;
            };
            for entry in parse(&feed.format, &text).entries {
                let mut tags: Vec<String> = feed.tags.iter().map(|t| label(t)).collect();
                tags.extend(entry.tags.iter().map(|t| label(t)));
                tags.sort();
                tags.dedup();
                let listing = Listing {
                    feed: number,
                    value: entry.observable.value(),
                    line: entry.line,
                    confidence: entry.confidence.unwrap_or(feed.confidence).min(100),
                    tags,
                    fields: entry.fields,
                };
                index.add(listing, &entry.observable);
            }
        }
        *self.index.write().expect("the index lock is not poisoned") = Arc::new(index);
    }

    /// Pulls the feeds named in `only` (all when empty) that are due, or all of them with
    /// `force`, then swaps the new index in.
    pub async fn pull(&self, force: bool, only: &[String]) -> Vec<PullReport> {
        let mut reports = Vec::new();
        let before = self.current();
        for (number, feed) in self.feeds.iter().enumerate() {
            if !only.is_empty() && !only.contains(&feed.name) {
                continue;
            }
            let state = self.state(feed);
            let due = state
                .checked_ms
                .is_none_or(|at| self.clock.now_ms() - at >= feed.interval.as_millis() as i64);
            let outcome = if force || due {
                self.pull_one(feed, state, &before.values_of(number)).await
            } else {
                PullOutcome::NotDue
            };
            reports.push(PullReport {
                feed: feed.name.clone(),
                outcome,
            });
        }
        if reports
            .iter()
            .any(|r| matches!(r.outcome, PullOutcome::Updated { .. }))
        {
            self.reload();
        }
        reports
    }

    async fn pull_one(
        &self,
        feed: &FeedSettings,
        mut state: FeedState,
        before: &HashSet<&str>,
    ) -> PullOutcome {
        let fetched = match &feed.location {
            FeedLocation::Url(url) => {
                let validators = Validators {
                    etag: state.etag.clone(),
                    last_modified: state.last_modified.clone(),
                };
                let mut headers = Vec::new();
                for (header, variable) in &feed.header_env {
                    match std::env::var(variable) {
                        Ok(value) => headers.push((header.clone(), value)),
                        Err(_) => {
                            return self.failed(
                                feed,
                                state,
                                format!(
                                    "the environment variable {variable} for the {header} header is not set"
                                ),
                            );
                        }
                    }
                }
                fetch_if_changed(&self.http, url, &validators, &headers, MAX_BODY).await
            }
            FeedLocation::File(path) => read_file(path, &state),
        };
        let now = self.clock.now_ms();
        let outcome = match fetched {
            Ok(Fetched::NotModified) => {
                state.checked_ms = Some(now);
                state.last_error = None;
                PullOutcome::NotModified
            }
            Ok(Fetched::Body { bytes, validators }) => {
                let text = String::from_utf8_lossy(&bytes);
                let parsed = parse(&feed.format, &text);
                if let Err(e) = std::fs::create_dir_all(&self.dir)
                    .and_then(|()| replace_file(&self.body_path(feed), text.as_bytes()))
                {
                    return self.failed(
                        feed,
                        state,
                        format!("cannot write {}: {e}", self.body_path(feed).display()),
                    );
                }
                let mut new: Vec<Observable> = Vec::new();
                let mut seen = HashSet::new();
                for entry in &parsed.entries {
                    let value = entry.observable.value();
                    if !before.contains(value.as_str()) && seen.insert(value) {
                        new.push(entry.observable.clone());
                    }
                }
                state = FeedState {
                    etag: validators.etag,
                    last_modified: validators.last_modified,
                    checked_ms: Some(now),
                    changed_ms: Some(now),
                    entries: parsed.entries.len() as u64,
                    problems: parsed.problems.len() as u64,
                    last_error: None,
                    failed_ms: None,
                };
                PullOutcome::Updated {
                    entries: parsed.entries.len() as u64,
                    problems: parsed.problems,
                    new,
                }
            }
            Err(error) => return self.failed(feed, state, error),
        };
        match self.save_state(feed, &state) {
            Ok(()) => outcome,
            Err(error) => PullOutcome::Failed(error),
        }
    }

    fn failed(&self, feed: &FeedSettings, mut state: FeedState, error: String) -> PullOutcome {
        state.last_error = Some(error.clone());
        state.failed_ms = Some(self.clock.now_ms());
        let _ = std::fs::create_dir_all(&self.dir);
        match self.save_state(feed, &state) {
            Ok(()) => PullOutcome::Failed(error),
            Err(also) => PullOutcome::Failed(format!("{error}; {also}")),
        }
    }

    /// The finding for one indicator (pure over the current index).
    pub fn describe(&self, observable: &Observable) -> Finding {
        let index = self.current();
        let listings = index.lookup(observable);
        if listings.is_empty() {
            return Finding::default();
        }
        let mut reasons = Vec::new();
        let mut tags = BTreeSet::new();
        let mut listed_by = Vec::new();
        for listing in &listings {
            let feed = &self.feeds[listing.feed];
            let points = (feed.points * i32::from(listing.confidence) + 50) / 100;
            let mut value = format!("{} (confidence {}", feed.name, listing.confidence);
            if !listing.tags.is_empty() {
                value.push_str(&format!("; {}", listing.tags.join(", ")));
            }
            value.push(')');
            reasons.push(Reason::new(SOURCE, "listed", value, points));
            tags.extend(listing.tags.iter().cloned());
            listed_by.push(json!({
                "feed": feed.name,
                "listed": listing.value,
                "line": listing.line,
                "confidence": listing.confidence,
                "tags": listing.tags,
                "fields": listing.fields,
            }));
        }
        if listings.len() > 1 {
            let names: Vec<&str> = listings
                .iter()
                .map(|l| self.feeds[l.feed].name.as_str())
                .collect();
            let value = format!(
                "{} of {} feeds agree: {}",
                listings.len(),
                self.feeds.len(),
                names.join(", ")
            );
            let points = self.corroboration_points * (listings.len() as i32 - 1);
            reasons.push(Reason::new(SOURCE, "corroborated", value, points));
        }
        Finding {
            reasons,
            tags: tags.into_iter().collect(),
            details: json!({ "listed_by": listed_by, "feeds": self.feeds.len() }),
            ..Finding::default()
        }
    }
}

/// A local feed file; its size and modification time stand in for an ETag.
fn read_file(path: &Path, state: &FeedState) -> Result<Fetched, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let metadata = std::fs::metadata(path).map_err(fail)?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let tag = format!("\"{}-{modified}\"", metadata.len());
    if state.etag.as_deref() == Some(tag.as_str()) {
        return Ok(Fetched::NotModified);
    }
    Ok(Fetched::Body {
        bytes: std::fs::read(path).map_err(fail)?,
        validators: Validators {
            etag: Some(tag),
            last_modified: None,
        },
    })
}

/// The source named `feeds`.
#[derive(Debug, Clone)]
pub struct FeedSource(pub Arc<Feeds>);

impl Source for FeedSource {
    fn name(&self) -> &str {
        SOURCE
    }

    fn destination(&self) -> Destination {
        Destination::Local
    }

    fn supports(&self, _observable: &Observable) -> bool {
        true
    }

    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        _options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        let finding = self.0.describe(indicator.observable());
        Box::pin(async move { Ok(finding) })
    }

    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        let feeds = &self.0;
        let pulled = feeds
            .settings()
            .iter()
            .filter(|f| feeds.state(f).checked_ms.is_some())
            .count();
        let listings = feeds.current().listings.len();
        let text = format!(
            "{} feeds configured, {pulled} pulled, {listings} listings in {}",
            feeds.settings().len(),
            feeds.dir().display()
        );
        Box::pin(async move { Ok(text) })
    }

    fn status_line(&self) -> Option<String> {
        let never: Vec<&str> = self
            .0
            .settings()
            .iter()
            .filter(|f| self.0.state(f).checked_ms.is_none())
            .map(|f| f.name.as_str())
            .collect();
        (!never.is_empty()).then(|| {
            format!(
                "note: feeds never pulled, so they list nothing yet: {} (`scry feeds pull` or a running `scry worker` pulls them)",
                never.join(", ")
            )
        })
    }
}

impl FeedSettings {
    /// A settings value as shown by `scry feeds status`.
    pub fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "location": self.location.shown(),
            "confidence": self.confidence,
            "points": self.points,
            "tags": self.tags,
            "interval_minutes": self.interval.as_secs_f64() / 60.0,
        })
    }
}
