//! Configuration: `scry.toml` plus `SCRY_*` environment overrides, typed and validated.
//!
//! Where the file comes from: `--config FILE` (or `SCRY_CONFIG`), else `./scry.toml`, else
//! `$XDG_CONFIG_HOME/scry/scry.toml` (`~/.config/scry/scry.toml`), else built-in defaults.
//! Environment variables override file values with `__` between levels:
//! `SCRY_ENRICH__CONCURRENCY=16`, `SCRY_EGRESS__ALLOWLIST='["10.0.0.0/8"]'`. Unknown keys are
//! errors that name the key and where it came from, so a typo never silently does nothing.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use std::sync::Arc;
use std::time::Duration;

use scry_core::{EgressGate, EgressPolicy, Tlp};
use scry_offline::NetPack;
use scry_offline::phishing::Brand;
use scry_sources::criminalip::client::RetryPolicy;
use scry_sources::criminalip::{IpCalls, ScanKind};
use scry_sources::feeds::FeedSettings;
use scry_sources::guard::BudgetLimits;
use scry_sources::{
    Classification, CriminalIp, CriminalIpSettings, Ctidb, FeedSource, Feeds, Geo, Phishing,
    Secret, Source, SourceContext,
};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub store: StoreConfig,
    pub egress: EgressConfig,
    pub enrich: EnrichConfig,
    pub sources: SourcesConfig,
    pub automation: AutomationConfig,
    pub worker: WorkerConfig,
    pub feeds: FeedsConfig,
    pub server: ServerConfig,
    /// Rules written in this file; playbook files in `[automation] playbooks` add more. Kept
    /// as written here: the automation reads them from the file with their positions
    /// ([`scry_rules::read_rules`]), so a mistake in one rule does not stop the configuration
    /// from loading and every mistake is reported where it is.
    pub rules: Vec<figment::value::Value>,
}

/// `[feeds]`: threat feeds pulled on an interval, each in its own `[feeds.NAME]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct FeedsConfig {
    /// Where pulled copies are kept; default `feeds/` beside the default store.
    pub dir: Option<PathBuf>,
    /// Points for each agreeing feed beyond the first.
    pub corroboration_points: i32,
    /// The feeds, by name.
    #[serde(flatten)]
    pub feeds: std::collections::BTreeMap<String, FeedConfig>,
}

impl Default for FeedsConfig {
    fn default() -> FeedsConfig {
        FeedsConfig {
            dir: None,
            corroboration_points: 10,
            feeds: Default::default(),
        }
    }
}

/// `[feeds.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub url: Option<String>,
    pub path: Option<PathBuf>,
    /// `list`, `netset`, `csv`, `tor-exits`, `abuse-ch` or `criminalip-c2`.
    pub format: String,
    /// For `csv`: which columns mean what.
    pub columns: Option<CsvColumnsConfig>,
    /// 0–100 for entries without their own (default 50).
    pub confidence: Option<u8>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Points a listing adds at confidence 100 (default 20).
    pub points: Option<i32>,
    /// How often to pull (default 60).
    pub interval_minutes: Option<f64>,
    /// Queue newly listed indicators for enrichment.
    #[serde(default)]
    pub ingest: bool,
    pub tlp: Option<String>,
    /// Request headers read from environment variables: `{ "Auth-Key" = "ABUSECH_AUTH_KEY" }`.
    #[serde(default)]
    pub header_env: std::collections::BTreeMap<String, String>,
}

/// `[feeds.NAME.columns]` of a CSV feed; columns by header name or 1-based number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvColumnsConfig {
    pub indicator: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub confidence: Option<String>,
    #[serde(default = "yes")]
    pub header: bool,
    pub delimiter: Option<char>,
}

fn yes() -> bool {
    true
}

/// Where rules act: named lists for conditions, message channels, ticket systems, blocklists.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutomationConfig {
    /// Evaluate rules and record what they would do, without doing it.
    pub dry_run: bool,
    /// A folder of playbook files (`*.toml`, each with `[[rules]]`).
    pub playbooks: Option<PathBuf>,
    pub lists: std::collections::BTreeMap<String, ListConfig>,
    pub channels: std::collections::BTreeMap<String, EndpointConfig>,
    pub tickets: std::collections::BTreeMap<String, EndpointConfig>,
    pub blocklists: std::collections::BTreeMap<String, BlocklistConfig>,
}

/// A named list: entries here, in files, or both.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListConfig {
    pub entries: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// Where rules send: a chat webhook or a ticket system's create call (`http://`, `https://`), or
/// for channels an SMTP server (`smtp://` with STARTTLS, `smtps://` with TLS from the start).
/// Endpoints are configuration only; nothing in indicator data can choose where a message goes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointConfig {
    pub url: String,
    /// A ready-made template: `slack`, `teams`, `json`, `email`, `jira`, `servicenow`
    /// (`email` when an SMTP channel names none).
    pub template: Option<String>,
    /// Or a template of your own (minijinja), used instead.
    pub body: Option<String>,
    /// The body is JSON (sent as `application/json` and checked before sending).
    pub json: bool,
    pub headers: std::collections::BTreeMap<String, String>,
    /// An environment variable holding the `Authorization` header value (never written here).
    pub authorization_env: Option<String>,
    /// Values templates see as `params` (Jira `project`, `issue_type`; ServiceNow `assignment_group`).
    pub params: std::collections::BTreeMap<String, String>,
    /// Tickets: where the created ticket's id is in the answer (JSON pointer).
    pub id_pointer: Option<String>,
    pub timeout_seconds: f64,
    pub max_attempts: u32,
    /// E-mail: the sender, `Name <address>` or an address.
    pub from: Option<String>,
    /// E-mail: the recipients.
    pub to: Vec<String>,
    /// E-mail: a subject template of your own (the ready-made one when left out).
    pub subject: Option<String>,
    /// E-mail: the SMTP user; its password is read from the variable `password_env` names.
    pub username: Option<String>,
    pub password_env: Option<String>,
    /// E-mail over `smtp://`: upgrade to TLS with STARTTLS (required when true). False sends in
    /// the clear, for a relay on a trusted network; never together with a password, except to
    /// this host.
    pub starttls: bool,
}

impl Default for EndpointConfig {
    fn default() -> EndpointConfig {
        EndpointConfig {
            url: String::new(),
            template: None,
            body: None,
            json: true,
            headers: Default::default(),
            authorization_env: None,
            params: Default::default(),
            id_pointer: None,
            timeout_seconds: 10.0,
            max_attempts: 5,
            from: None,
            to: Vec::new(),
            subject: None,
            username: None,
            password_env: None,
            starttls: true,
        }
    }
}

/// A named blocklist, served as a plain-text EDL (`/edl/NAME.txt`, `scry export --format edl`)
/// and as a TAXII collection. See `crate::blocklist` for what each setting does to the list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlocklistConfig {
    /// How long an entry stays unless the rule says otherwise.
    pub days: u32,
    /// Entries whose indicator falls below this priority are removed.
    pub min_priority: u8,
    /// What the list holds: firewalls read one entry type per list.
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    /// Whose firewall reads it: sets the form of URL entries and the default size cap.
    pub vendor: FirewallVendor,
    /// Entries served at most (the newest first); `None`: the vendor's limit, if it has one.
    pub max_entries: Option<usize>,
}

impl Default for BlocklistConfig {
    fn default() -> BlocklistConfig {
        BlocklistConfig {
            days: 7,
            min_priority: 0,
            entry_type: EntryType::Any,
            vendor: FirewallVendor::Generic,
            max_entries: None,
        }
    }
}

/// The one kind of entry a blocklist holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryType {
    /// IPv4 and IPv6 addresses and CIDR blocks.
    Ip,
    /// Domain names.
    Domain,
    /// URLs.
    Url,
    /// Every kind in one list, for readers that take mixed lists (no firewall named here does).
    Any,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Ip => "ip",
            EntryType::Domain => "domain",
            EntryType::Url => "url",
            EntryType::Any => "any",
        }
    }
}

/// The firewall a blocklist is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirewallVendor {
    /// Entries as stored; no cap unless `max_entries` sets one.
    Generic,
    /// Palo Alto Networks PAN-OS external dynamic lists: URL entries without `http(s)://`, as
    /// its formatting guidelines ask; 50,000 entries (the IP limit of most models).
    PanOs,
    /// Fortinet FortiGate threat feeds: URL entries with their scheme; 131,072 entries or
    /// 10 MB, the limit of each feed before FortiOS 7.4.4.
    Fortigate,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite:///path/scry.db` or `postgres://…`; `--store` / `SCRY_STORE` take precedence.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// IPs, CIDR blocks, ranges, ASNs, domains and `*.domain` wildcards never sent to any source.
    pub allowlist: Vec<String>,
    /// Files with one allowlist entry per line (`#` comments allowed).
    pub allowlist_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// Indicators in progress at once; each source limits its own requests.
    pub concurrency: usize,
    /// TLP assumed for indicators whose input states none.
    pub default_tlp: Option<String>,
}

/// `[enrich] concurrency` when the configuration does not set it.
pub const DEFAULT_ENRICH_CONCURRENCY: usize = 32;

impl Default for EnrichConfig {
    fn default() -> EnrichConfig {
        EnrichConfig {
            concurrency: DEFAULT_ENRICH_CONCURRENCY,
            default_tlp: None,
        }
    }
}

/// `[server]`: how `scry serve` listens and whom it lets in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port; `--listen` takes precedence.
    pub listen: String,
    /// How long a browser session lasts.
    pub session_hours: f64,
    /// Largest request body (uploads of indicator files included), in MiB.
    pub max_body_mib: u32,
    /// Whether blocklists (EDL) need a token; firewalls poll them, often without one.
    pub edl_requires_token: bool,
    /// Send cookies over HTTPS only. Leave it on behind a TLS proxy; turn it off only for plain
    /// HTTP on loopback.
    pub secure_cookies: bool,
    /// Priority from which an indicator counts as high priority: the TAXII collection, the
    /// dashboard's widget and the live notifications.
    pub high_priority: u8,
    /// Connections served at once. At the cap, the oldest connection that has not yet sent a
    /// request is closed to make room, or the new one is refused when every one has.
    pub max_connections: u32,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: u32,
    /// Time a client has to send a request's headers (and a TLS handshake); also the longest a
    /// kept-alive connection waits idle for its next request.
    pub header_timeout_seconds: f64,
    /// Time a request has for its body and its answer (a live stream, once started, runs on).
    pub request_timeout_seconds: f64,
    /// Distinct indicators one submission or upload may hold, and action jobs (indicators ×
    /// actions) one request may queue.
    pub max_indicators_per_request: u32,
    /// Actions one request may ask for on each indicator.
    pub max_actions_per_request: u32,
    /// Largest size a compressed upload may expand to, in MiB.
    pub max_expanded_mib: u32,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client:
    /// login throttling and logs then go by the client's address instead of the proxy's. Empty:
    /// the header is ignored, since any client could write it.
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain: with `tls_key`, `scry serve` speaks HTTPS (TAXII 2.1 requires it).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            session_hours: 12.0,
            max_body_mib: 16,
            edl_requires_token: false,
            secure_cookies: true,
            high_priority: 80,
            max_connections: 1024,
            max_connections_per_address: 128,
            header_timeout_seconds: 10.0,
            request_timeout_seconds: 60.0,
            max_indicators_per_request: 10_000,
            max_actions_per_request: 10,
            max_expanded_mib: 64,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[worker]`: how `scry worker` and `scry jobs run` take jobs from the queue, and the scheduled
/// refresh of indicators enriched long ago.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// How long a worker holds a job; a worker that dies gives its jobs back after this.
    pub lease_seconds: u64,
    /// Enrichment attempts per indicator before its failure is stored.
    pub max_attempts: u32,
    /// Re-enrich indicators last enriched longer ago than this (0: never).
    pub refresh_after_hours: f64,
    /// How often `scry worker` looks for indicators to refresh and for new jobs when idle.
    pub poll_seconds: f64,
    /// Indicators a refresh pass enqueues at most.
    pub refresh_batch: u32,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            lease_seconds: 120,
            max_attempts: 4,
            refresh_after_hours: 0.0,
            poll_seconds: 5.0,
            refresh_batch: 1_000,
        }
    }
}

/// Sources that need configuration. Built-in classification needs none and is always on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    pub geo: GeoConfig,
    pub phishing: PhishingConfig,
    pub ctidb: CtidbConfig,
    pub criminalip: Option<CriminalIpConfig>,
}

/// `[sources.ctidb]`: a Criminal IP offline database (`.ctidb` or packed `.bin`) asked on this
/// machine; on when `path` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtidbConfig {
    pub path: Option<PathBuf>,
}

/// `[sources.geo]`: country and AS of public addresses from the offline network data, on unless
/// turned off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    pub enabled: bool,
    /// A network data pack to use instead of the one built in (`scry data build` makes one).
    pub pack: Option<PathBuf>,
    /// Where `scry data update` fetches the AS data (CSV: start,end,asn,organization).
    pub update_asn: Vec<String>,
    /// … and the country data (CSV: start,end,country).
    pub update_country: Vec<String>,
}

/// The upstream files `scry data update` reads by default: the latest ip-location-db releases.
const UPSTREAM: &str = "https://cdn.jsdelivr.net/npm/@ip-location-db";

/// `[sources.phishing]`: look-alike and phishing heuristics for domains and URLs, on unless turned
/// off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhishingConfig {
    pub enabled: bool,
    /// The organization's own registrable domains: look-alikes of these matter most.
    pub own_domains: Vec<String>,
    /// More brands to protect: a brand word and its own registrable domains.
    pub brands: std::collections::BTreeMap<String, Vec<String>>,
    /// Also protect the shipped list of widely phished brands.
    pub default_brands: bool,
}

impl Default for PhishingConfig {
    fn default() -> PhishingConfig {
        PhishingConfig {
            enabled: true,
            own_domains: Vec::new(),
            brands: Default::default(),
            default_brands: true,
        }
    }
}

impl Default for GeoConfig {
    fn default() -> GeoConfig {
        let files = |package: &str, stem: &str| {
            ["ipv4", "ipv6"]
                .map(|family| format!("{UPSTREAM}/{package}/{stem}-{family}.csv"))
                .to_vec()
        };
        GeoConfig {
            enabled: true,
            pack: None,
            update_asn: files("asn", "asn"),
            update_country: files("geo-whois-asn-country", "geo-whois-asn-country"),
        }
    }
}

/// `[sources.criminalip]`. The source is on when this table exists or `CRIMINALIP_API_KEY` is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CriminalIpConfig {
    pub enabled: bool,
    /// Overridden by `CRIMINALIP_BASE_URL`.
    pub base_url: Option<String>,
    /// Prefer `api_key_file` or `CRIMINALIP_API_KEY`: a key in the file is readable by whoever reads it.
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    pub max_tlp: String,
    pub max_requests: u32,
    pub per_seconds: f64,
    pub concurrency: u32,
    pub timeout_seconds: f64,
    pub retries: u32,
    pub retry_base_ms: u64,
    pub daily_credits: Option<u64>,
    pub monthly_credits: Option<u64>,
    pub alert_percent: u8,
    pub cache_ttl_hours: f64,
    pub cache_ttl_risky_hours: f64,
    pub domain_report_max_age_days: u32,
    pub ip_calls: Vec<String>,
    pub domain_scan: String,
    pub quick_check: bool,
    /// Send URLs' query strings to Criminal IP (never their user names and passwords).
    pub send_url_query: bool,
    pub scan_poll_seconds: f64,
    pub scan_timeout_seconds: f64,
    /// Points per signal, `[sources.criminalip.weights]`.
    pub weights: scry_sources::criminalip::map::Weights,
    /// Ask only about these STIX types (`ipv4-addr`, `ipv6-addr`, `domain-name`, `url`); every
    /// type the source looks up when empty.
    pub types: Vec<String>,
    /// Ask only when this CEL condition over the indicator, as the local sources see it, holds
    /// (see `scry_engine::targeting`); always when left out.
    pub enrich_when: Option<String>,
}

impl Default for CriminalIpConfig {
    fn default() -> CriminalIpConfig {
        CriminalIpConfig {
            enabled: true,
            base_url: None,
            api_key: None,
            api_key_file: None,
            max_tlp: "amber".into(),
            max_requests: 1,
            per_seconds: 1.0,
            concurrency: 1,
            timeout_seconds: 30.0,
            retries: 3,
            retry_base_ms: 500,
            daily_credits: None,
            monthly_credits: None,
            alert_percent: 80,
            cache_ttl_hours: 24.0,
            cache_ttl_risky_hours: 6.0,
            domain_report_max_age_days: 7,
            ip_calls: Vec::new(),
            domain_scan: "full".into(),
            quick_check: false,
            send_url_query: false,
            scan_poll_seconds: 3.0,
            scan_timeout_seconds: 180.0,
            weights: scry_sources::criminalip::map::Weights::default(),
            types: Vec::new(),
            enrich_when: None,
        }
    }
}

/// A configuration problem, said so that it can be fixed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist (create one with `scry config init {0}`)")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
    #[error("invalid configuration{}: {message}", origin.as_ref().map(|o| format!(" in {o}")).unwrap_or_default())]
    Value {
        origin: Option<String>,
        message: String,
    },
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// The feeds, built once: the `feeds` source and the worker that pulls them share them.
    feeds: Arc<std::sync::OnceLock<Option<Arc<Feeds>>>>,
}

/// The commented example `scry config init` writes. It must load as the defaults (tested).
pub const EXAMPLE: &str = r#"# scry configuration. Every key is optional; the values shown are the defaults.
# Environment variables override this file: SCRY_ENRICH__CONCURRENCY=16, and so on
# (SCRY_ + section + __ + key, upper-case).

[store]
# Where results are stored. --store and SCRY_STORE take precedence.
# Default: an SQLite file in the XDG data directory (~/.local/share/scry/scry.db).
# url = "sqlite:///var/lib/scry/scry.db"

[egress]
# Never sent to any external source, whatever rules say: your own networks and
# known-good infrastructure. IPs, CIDR blocks, ranges (a-b), ASNs (AS64512),
# exact domains, and *.domain for every name below a domain.
# Private, loopback, link-local, documentation and other special-use addresses,
# and names under internal suffixes (.local, .corp, .internal, .home.arpa, ...)
# are never sent out in any case.
allowlist = []
# Files with one entry per line; '#' starts a comment.
allowlist_files = []

[enrich]
# Indicators being enriched at once. Each source has its own request limits; this
# only bounds the indicators in progress (e.g. waiting for a domain scan).
concurrency = 32
# TLP assumed for indicators whose input states none (clear, green, amber,
# amber+strict, red). An indicator above a source's maximum TLP is not sent to it.
# Unset, an unmarked indicator may be sent to any source; "amber+strict" keeps unmarked
# input home while marked CLEAR, GREEN and AMBER input goes out (a stated but unknown
# marking always counts as RED).
# default_tlp = "amber+strict"

[worker]
# `scry ingest` queues indicators; `scry worker` (or `scry jobs run`) enriches them,
# stores the results and only then marks each job done.
lease_seconds = 120              # a worker that dies gives its jobs back after this
max_attempts = 4                 # enrichment attempts before a failure is stored
# Re-enrich indicators last enriched longer ago than this (the polling interval);
# 0 turns scheduled refreshes off. Each refresh may cost credits.
refresh_after_hours = 0
refresh_batch = 1000             # indicators queued per refresh pass, longest ago first
poll_seconds = 5                 # how often an idle worker looks again

[server]
# `scry serve`: the workbench, the REST API (/api/v1, OpenAPI at /api/v1/openapi.json),
# TAXII 2.1 (/taxii2/), blocklists (/edl/NAME.txt) and /metrics. Create a token
# first: scry token create --role admin NAME
listen = "127.0.0.1:8080"        # --listen takes precedence
session_hours = 12               # how long a browser login lasts
max_body_mib = 16                # largest request, uploads included
edl_requires_token = false       # firewalls often poll blocklists without one
secure_cookies = true            # turn off only for plain HTTP on another host than localhost
high_priority = 80               # the TAXII collection, dashboard widget and live alerts
# Limits that keep the server answering under hostile traffic.
max_connections = 1024           # at the cap the oldest connection yet to send a request makes room
max_connections_per_address = 128
header_timeout_seconds = 10      # to send a request's headers; also the longest idle keep-alive
request_timeout_seconds = 60     # for a request's body and answer
max_indicators_per_request = 10000   # per submission, upload or action request
max_actions_per_request = 10
max_expanded_mib = 64            # a compressed upload may expand to this much
# Reverse proxies whose X-Forwarded-For names the client (for login throttling and logs).
trusted_proxies = []             # e.g. ["127.0.0.1", "10.0.0.0/8"]
# HTTPS (TAXII 2.1 requires it): a PEM certificate chain and its private key.
# tls_cert = "/etc/scry/tls/cert.pem"
# tls_key = "/etc/scry/tls/key.pem"

[sources]
# Enrichment sources, one table per source.

[sources.geo]
# Country, autonomous system and organization of public addresses, from the network data
# built into scry (registry data, CC BY 4.0; `scry data status` shows its sources and date).
# Nothing is sent anywhere. `pack` names a newer pack made with `scry data build`.
enabled = true
# pack = "/var/lib/scry/netpack.bin.gz"
# `scry data update` rebuilds the pack from these files when they change (asked with
# If-None-Match / If-Modified-Since) and writes it to `pack`, or to netpack.bin.gz beside the
# default store, which is then used instead of the built-in one.
update_asn = [
  "https://cdn.jsdelivr.net/npm/@ip-location-db/asn/asn-ipv4.csv",
  "https://cdn.jsdelivr.net/npm/@ip-location-db/asn/asn-ipv6.csv",
]
update_country = [
  "https://cdn.jsdelivr.net/npm/@ip-location-db/geo-whois-asn-country/geo-whois-asn-country-ipv4.csv",
  "https://cdn.jsdelivr.net/npm/@ip-location-db/geo-whois-asn-country/geo-whois-asn-country-ipv6.csv",
]

[sources.phishing]
# Look-alike and phishing signals for domains and URLs (homoglyphs, typos, a brand in an
# unrelated name, credential-bait words, abused suffixes, DGA-like names). Nothing is sent.
enabled = true
# Your organization's registrable domains: look-alikes of them matter most.
own_domains = []
# More brands to protect, each with its own registrable domains:
# brands = { contoso = ["contoso.com", "contoso-cdn.net"] }
default_brands = true            # also protect a shipped list of widely phished brands

[sources.ctidb]
# A Criminal IP offline database, asked on this machine: a `.ctidb` file or a packed `.bin`
# file (either layout; the licence signature is checked against Criminal IP's published key,
# and CTIDB_SKIP_SIGNATURE_VERIFY=1 skips that, as in Criminal IP's own reader). Its scores,
# flags, ports and CVEs count with the [sources.criminalip.weights] below.
# path = "/var/lib/scry/criminalip.bin"

[feeds]
# Threat feeds pulled on an interval (`scry feeds pull`, or a running `scry worker`) and asked
# on this machine: a listing adds the feed's points times its confidence, and each further
# feed that lists the same indicator adds corroboration_points ("2 of 3 feeds agree").
# dir = "/var/lib/scry/feeds"     # default: feeds/ beside the default store
corroboration_points = 10
#
# [feeds.feodo]
# url = "https://feodotracker.abuse.ch/downloads/ipblocklist.csv"
# format = "abuse-ch"             # list, netset, csv, tor-exits, abuse-ch, criminalip-c2
# confidence = 90                 # 0-100, for entries without their own (default 50)
# points = 20                     # at confidence 100
# tags = ["botnet-c2"]
# interval_minutes = 60           # pulls ask with If-None-Match / If-Modified-Since
# ingest = false                  # queue newly listed indicators for enrichment
# tlp = "clear"
# header_env = { "Auth-Key" = "ABUSECH_AUTH_KEY" }   # header values from the environment
#
# [feeds.partner]
# path = "/srv/intel/partner.csv"
# format = "csv"
# columns = { indicator = "ioc", tags = ["family"], confidence = "confidence" }

# External sources: a table turns its source on.

# [sources.criminalip]
# Criminal IP exposure intelligence. The key comes from api_key, api_key_file or the
# CRIMINALIP_API_KEY environment variable; setting CRIMINALIP_API_KEY alone turns the source on.
# CRIMINALIP_BASE_URL overrides base_url (e.g. to point at `scry sandbox`).
# base_url = "https://api.criminalip.io"
# api_key_file = "/etc/scry/criminalip.key"
# max_tlp = "amber"              # indicators above this TLP are never sent
# max_requests = 1               # at most this many requests ...
# per_seconds = 1.0              # ... in any window of this many seconds
# concurrency = 1                # requests in flight; non-Enterprise keys allow 1
# timeout_seconds = 30.0
# retries = 3                    # after the first attempt, with exponential backoff and jitter
# retry_base_ms = 500
# daily_credits = 1000           # no limit when unset; indicators past it are skipped (budget)
# monthly_credits = 20000
# alert_percent = 80             # warn once per period when usage crosses this share
# cache_ttl_hours = 24.0         # how long answers are reused
# cache_ttl_risky_hours = 6.0    # ... for Dangerous and Critical answers
# domain_report_max_age_days = 7 # reuse an earlier domain scan younger than this
# ip_calls = []                  # extra calls per IP: "malicious-info", "suspicious-info", "privacy-threat"
# domain_scan = "full"           # or "lite"
# quick_check = false            # also ask the domain quick check
# send_url_query = false         # send a URL's ?query too (never its user:password@)
# scan_poll_seconds = 3.0
# scan_timeout_seconds = 180.0
# Spend credits where they matter: ask only about these types, and only when the condition
# holds. The condition is CEL over the indicator as the sources on this machine see it (class,
# country and AS, feeds, look-alike heuristics, the priority they give, and
# indicator.previous.priority as stored) with the [automation.lists]; a "no" is a skip with
# reason `condition`, and an answer bought before is kept.
# types = ["ipv4-addr", "ipv6-addr", "domain-name", "url"]
# enrich_when = 'indicator.country != "US" || in_list(indicator.asn, "watched_asns")'
#
# [sources.criminalip.weights]
# Points each signal adds to the priority (clamped to 0-100). The base is the worse of the
# inbound and outbound levels; the reason shown beside the priority says which.
# critical = 90
# dangerous = 80
# moderate = 50
# low = 20
# safe = 0
# tor = 15
# anonymous_vpn = 10
# vpn = 5
# proxy = 5
# darkweb = 10
# scanner = 10
# ids = 10                       # IDS (Snort) signatures fired
# c2 = 30                        # a C2 framework seen on an open port
# remote_access = 5              # RDP, VNC, Telnet, SSH, SMB or WinRM exposed
# malicious_category = 15        # malware, phishing, botnet, C2, spam, DDoS categories
# malicious_info = 10            # flagged by the malicious-info call
# cve_critical = 20              # an exposed CVE with CVSS >= 9.0
# cve_high = 10                  # ... >= 7.0
# cve_medium = 5                 # ... >= 4.0
# phishing_high = 40             # phishing probability >= 80 %
# phishing_medium = 25           # ... >= 50 %
# phishing_low = 10              # ... >= 20 %
# credential_input = 15          # the page asks for credentials
# fake_domain = 20               # imitates another domain
# suspicious_file = 15
# phishing_record = 10
# dga = 10                       # DGA score >= 8
# newborn_domain = 5
"#;

/// Where the configuration file is looked for when none is named.
pub fn default_config_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("scry.toml")];
    if let Some(dir) = xdg_dir("XDG_CONFIG_HOME", ".config") {
        paths.push(dir.join("scry").join("scry.toml"));
    }
    paths
}

/// scry's folder in the XDG data directory.
pub fn default_data_dir() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share")
        .unwrap_or_else(|| PathBuf::from("."))
        .join("scry")
}

/// The default store: an SQLite file in the XDG data directory.
pub fn default_store_url() -> String {
    format!("sqlite://{}", default_data_dir().join("scry.db").display())
}

fn xdg_dir(variable: &str, fallback_under_home: &str) -> Option<PathBuf> {
    match std::env::var_os(variable) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback_under_home)),
    }
}

/// Loads the configuration: the named file (which must exist), else the first default path that
/// exists, else defaults; then environment overrides.
pub fn load(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let path = match explicit {
        Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_owned())),
        Some(p) => Some(p.to_owned()),
        None => default_config_paths().into_iter().find(|p| p.exists()),
    };
    let mut figment = Figment::new();
    if let Some(p) = &path {
        figment = figment.merge(Toml::file_exact(p));
    }
    figment = figment.merge(
        Env::prefixed("SCRY_")
            .split("__")
            // Every key lives in a section, so an override always names one: SCRY_ENRICH__CONCURRENCY.
            // Other SCRY_ variables (SCRY_STORE, SCRY_CONFIG, SCRY_LOG, SCRY_TEST_POSTGRES_URL, …) are
            // not configuration and are left alone. `split` has turned `__` into `.` by now.
            .filter(|key| key.as_str().contains('.')),
    );
    let config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
    LoadedConfig::from_config(config, path)
}

/// Parses configuration text (used by tests and `config check` of a given string).
pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

impl LoadedConfig {
    /// A configuration given whole (read from `path`, if from a file), checked.
    pub fn from_config(config: Config, path: Option<PathBuf>) -> Result<LoadedConfig, ConfigError> {
        let loaded = LoadedConfig {
            config,
            path,
            feeds: Arc::default(),
        };
        loaded.validate()?;
        Ok(loaded)
    }

    fn origin(&self) -> Option<String> {
        self.path.as_ref().map(|p| p.display().to_string())
    }

    /// A configuration problem found outside this module, said with where the configuration is.
    pub fn invalid(&self, message: String) -> ConfigError {
        self.value_error(message)
    }

    fn value_error(&self, message: String) -> ConfigError {
        ConfigError::Value {
            origin: self.origin(),
            message,
        }
    }

    /// Checks values that parse as TOML but mean nothing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, feed) in &self.config.feeds.feeds {
            self.feed_settings(name, feed)?;
        }
        if self.config.enrich.concurrency == 0 {
            return Err(self.value_error("[enrich] concurrency must be at least 1".into()));
        }
        let worker = &self.config.worker;
        if worker.lease_seconds == 0 || worker.max_attempts == 0 {
            return Err(self
                .value_error("[worker] lease_seconds and max_attempts must be at least 1".into()));
        }
        if !(worker.refresh_after_hours >= 0.0 && worker.refresh_after_hours.is_finite()) {
            return Err(self.value_error(
                "[worker] refresh_after_hours must be a number of hours, 0 or more".into(),
            ));
        }
        if !(worker.poll_seconds > 0.0 && worker.poll_seconds.is_finite()) {
            return Err(self.value_error("[worker] poll_seconds must be above 0".into()));
        }
        let server = &self.config.server;
        for (key, seconds) in [
            ("header_timeout_seconds", server.header_timeout_seconds),
            ("request_timeout_seconds", server.request_timeout_seconds),
        ] {
            if !(seconds > 0.0 && seconds.is_finite()) {
                return Err(self.value_error(format!("[server] {key} must be above 0")));
            }
        }
        for (key, n) in [
            ("max_connections", server.max_connections),
            (
                "max_connections_per_address",
                server.max_connections_per_address,
            ),
            (
                "max_indicators_per_request",
                server.max_indicators_per_request,
            ),
            ("max_actions_per_request", server.max_actions_per_request),
            ("max_expanded_mib", server.max_expanded_mib),
        ] {
            if n == 0 {
                return Err(self.value_error(format!("[server] {key} must be at least 1")));
            }
        }
        self.trusted_proxies()?;
        if server.tls_cert.is_some() != server.tls_key.is_some() {
            return Err(self.value_error(
                "[server] tls_cert and tls_key go together: set both for HTTPS, or neither".into(),
            ));
        }
        for (name, list) in &self.config.automation.blocklists {
            if list.entry_type == EntryType::Any && list.vendor != FirewallVendor::Generic {
                return Err(self.value_error(format!(
                    "[automation.blocklists.{name}] a {} list holds one type of entry: set type = \"ip\", \"domain\" or \"url\"",
                    crate::blocklist::vendor_name(list.vendor)
                )));
            }
            if list.max_entries == Some(0) {
                return Err(self.value_error(format!(
                    "[automation.blocklists.{name}] max_entries must be at least 1"
                )));
            }
        }
        self.default_tlp()?;
        self.egress_gate()?;
        // Source settings (keys above all) are checked where sources are built — `enrich`,
        // `import`, `sources test`, `config check` — so that `show` or `pivot` need no key.
        Ok(())
    }

    /// `[server] trusted_proxies` as networks (an address is a network of one).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.config
            .server
            .trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        self.value_error(format!(
                            "[server] trusted_proxies: {entry:?} is not an address or a CIDR block"
                        ))
                    })
            })
            .collect()
    }

    pub fn default_tlp(&self) -> Result<Option<Tlp>, ConfigError> {
        self.config
            .enrich
            .default_tlp
            .as_deref()
            .map(|t| {
                t.parse::<Tlp>()
                    .map_err(|e| self.value_error(format!("[enrich] default_tlp: {e}")))
            })
            .transpose()
    }

    /// The egress gate built from `[egress]`, including allowlist files.
    pub fn egress_gate(&self) -> Result<EgressGate, ConfigError> {
        let mut policy = EgressPolicy::default();
        for entry in &self.config.egress.allowlist {
            policy
                .allow(entry)
                .map_err(|e| self.value_error(format!("[egress] allowlist: {e}")))?;
        }
        for file in &self.config.egress.allowlist_files {
            let resolved = self.resolve(file);
            let text = std::fs::read_to_string(&resolved).map_err(|e| {
                self.value_error(format!(
                    "[egress] allowlist_files: cannot read {}: {e}",
                    resolved.display()
                ))
            })?;
            for (number, line) in text.lines().enumerate() {
                let entry = line.split('#').next().unwrap_or("").trim();
                if !entry.is_empty() {
                    policy.allow(entry).map_err(|e| ConfigError::Value {
                        origin: Some(format!("{}:{}", resolved.display(), number + 1)),
                        message: e.to_string(),
                    })?;
                }
            }
        }
        Ok(EgressGate::new(policy))
    }

    /// The brands `[sources.phishing]` protects, the organization's own first; `None` when the
    /// source is off.
    pub fn protected_brands(&self) -> Result<Option<Vec<Brand>>, ConfigError> {
        let config = &self.config.sources.phishing;
        if !config.enabled {
            return Ok(None);
        }
        let registrable = |key: &str, name: &str| -> Result<String, ConfigError> {
            let domain = scry_core::DomainName::parse(name).map_err(|e| {
                self.value_error(format!("[sources.phishing] {key}: {name:?}: {e}"))
            })?;
            match domain.registrable() {
                Some(r) if r == domain.as_str() => Ok(r.to_owned()),
                _ => Err(self.value_error(format!(
                    "[sources.phishing] {key}: {name:?} is not a registrable domain (write example.com, not www.example.com)"
                ))),
            }
        };
        let mut brands = Vec::new();
        for domain in &config.own_domains {
            let domain = registrable("own_domains", domain)?;
            let name = domain.split('.').next().unwrap_or(&domain).to_owned();
            brands.push(Brand {
                name,
                domains: vec![domain],
            });
        }
        for (name, domains) in &config.brands {
            let domains = domains
                .iter()
                .map(|d| registrable(&format!("brands.{name}"), d))
                .collect::<Result<Vec<_>, _>>()?;
            brands.push(Brand {
                name: name.to_ascii_lowercase(),
                domains,
            });
        }
        if config.default_brands {
            brands.extend(scry_offline::phishing::default_brands());
        }
        Ok(Some(brands))
    }

    /// The feeds of `[feeds]`, or `None` when there are none. Built once per configuration.
    pub fn feeds(&self) -> Result<Option<Arc<Feeds>>, ConfigError> {
        if let Some(built) = self.feeds.get() {
            return Ok(built.clone());
        }
        let config = &self.config.feeds;
        if config.feeds.is_empty() {
            return Ok(None);
        }
        let mut feeds = Vec::new();
        for (name, feed) in &config.feeds {
            feeds.push(self.feed_settings(name, feed)?);
        }
        let dir = match &config.dir {
            Some(dir) => self.resolve(dir),
            None => default_data_dir().join("feeds"),
        };
        let built = Feeds::new(
            feeds,
            dir,
            config.corroboration_points,
            scry_sources::clock::system(),
        )
        .map(Arc::new)
        .map_err(|e| self.value_error(format!("[feeds]: {e}")))?;
        Ok(self.feeds.get_or_init(|| Some(built)).clone())
    }

    fn feed_settings(&self, name: &str, feed: &FeedConfig) -> Result<FeedSettings, ConfigError> {
        use scry_offline::feeds::{CsvMapping, FeedFormat};
        use scry_sources::feeds::FeedLocation;
        let fail = |message: String| self.value_error(format!("[feeds.{name}] {message}"));
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(
                "names a feed with letters, digits, - and _ only".into(),
            ));
        }
        let location = match (&feed.url, &feed.path) {
            (Some(url), None) => {
                let parsed = url::Url::parse(url).map_err(|e| fail(format!("url: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(fail("url: only http and https feeds can be pulled".into()));
                }
                FeedLocation::Url(parsed)
            }
            (None, Some(path)) => FeedLocation::File(self.resolve(path)),
            _ => return Err(fail("needs one of url or path".into())),
        };
        let format = match (feed.format.as_str(), &feed.columns) {
            ("csv", Some(columns)) => {
                let delimiter = columns.delimiter.unwrap_or(',');
                if !delimiter.is_ascii() {
                    return Err(fail("columns.delimiter must be one ASCII character".into()));
                }
                FeedFormat::Csv(CsvMapping {
                    indicator: columns.indicator.clone(),
                    tags: columns.tags.clone(),
                    confidence: columns.confidence.clone(),
                    header: columns.header,
                    delimiter: delimiter as u8,
                })
            }
            ("csv", None) => {
                return Err(fail(
                    "format csv needs [feeds.NAME.columns] with at least indicator".into(),
                ));
            }
            (_, Some(_)) => return Err(fail("columns only apply to format csv".into())),
            ("list", None) => FeedFormat::List,
            ("netset", None) => FeedFormat::Netset,
            ("tor-exits", None) => FeedFormat::TorExits,
            ("abuse-ch", None) => FeedFormat::AbuseCh,
            ("criminalip-c2", None) => FeedFormat::CriminalIpC2,
            (other, None) => {
                return Err(fail(format!(
                    "format {other:?} is not one of list, netset, csv, tor-exits, abuse-ch, criminalip-c2"
                )));
            }
        };
        let confidence = feed.confidence.unwrap_or(50);
        if confidence > 100 {
            return Err(fail("confidence is 0–100".into()));
        }
        let minutes = feed.interval_minutes.unwrap_or(60.0);
        if !(minutes.is_finite() && minutes >= 1.0) {
            return Err(fail("interval_minutes must be at least 1".into()));
        }
        let tlp = feed
            .tlp
            .as_deref()
            .map(|t| t.parse::<Tlp>().map_err(|e| fail(format!("tlp: {e}"))))
            .transpose()?;
        Ok(FeedSettings {
            name: name.to_owned(),
            location,
            format,
            confidence,
            tags: feed.tags.clone(),
            points: feed.points.unwrap_or(20),
            interval: Duration::from_secs_f64(minutes * 60.0),
            header_env: feed.header_env.clone(),
            ingest: feed.ingest,
            tlp,
        })
    }

    /// Where `scry data update` writes the pack: `[sources.geo] pack`, else beside the default
    /// store.
    pub fn updated_pack_path(&self) -> PathBuf {
        match &self.config.sources.geo.pack {
            Some(file) => self.resolve(file),
            None => default_data_dir().join("netpack.bin.gz"),
        }
    }

    /// The pack in use: the one `[sources.geo] pack` names, else one `scry data update` wrote,
    /// else `None` for the built-in one.
    pub fn network_pack_path(&self) -> Option<PathBuf> {
        let path = self.updated_pack_path();
        (self.config.sources.geo.pack.is_some() || path.exists()).then_some(path)
    }

    /// The network data pack `[sources.geo]` names or `scry data update` wrote, else the
    /// built-in one; `None` when the source is off.
    pub fn network_pack(&self) -> Result<Option<Arc<NetPack>>, ConfigError> {
        let geo = &self.config.sources.geo;
        if !geo.enabled {
            return Ok(None);
        }
        let pack = match self.network_pack_path() {
            Some(path) => {
                let bytes = std::fs::read(&path).map_err(|e| {
                    self.value_error(format!(
                        "[sources.geo] pack: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                NetPack::from_gzip(&bytes).map(Arc::new).map_err(|e| {
                    self.value_error(format!("[sources.geo] pack {}: {e}", path.display()))
                })?
            }
            None => scry_offline::embedded().map_err(|e| self.value_error(e))?,
        };
        Ok(Some(pack))
    }

    /// The sources the configuration turns on: those on this machine first (classification,
    /// offline data), so what they find is known before anything is sent out.
    pub fn build_sources(
        &self,
        context: &SourceContext,
    ) -> Result<Vec<Arc<dyn Source>>, ConfigError> {
        let mut sources: Vec<Arc<dyn Source>> = vec![Arc::new(Classification)];
        if let Some(pack) = self.network_pack()? {
            sources.push(Arc::new(Geo::watching(pack, self.updated_pack_path())));
        }
        if let Some(brands) = self.protected_brands()? {
            sources.push(Arc::new(Phishing::new(brands)));
        }
        if let Some(feeds) = self.feeds()? {
            sources.push(Arc::new(FeedSource(feeds)));
        }
        if let Some(file) = &self.config.sources.ctidb.path {
            let path = self.resolve(file);
            let weights = self
                .config
                .sources
                .criminalip
                .as_ref()
                .map(|c| c.weights)
                .unwrap_or_default();
            let source = Ctidb::open(&path, weights).map_err(|e| {
                self.value_error(format!("[sources.ctidb] path {}: {e}", path.display()))
            })?;
            sources.push(Arc::new(source));
        }
        if let Some(settings) = self.criminalip_settings()? {
            let source = CriminalIp::with_context(settings, context)
                .map_err(|e| self.value_error(format!("[sources.criminalip]: {e}")))?;
            sources.push(Arc::new(source));
        }
        Ok(sources)
    }

    /// The Criminal IP settings, or `None` when the source is not configured.
    pub fn criminalip_settings(&self) -> Result<Option<CriminalIpSettings>, ConfigError> {
        let env_key = std::env::var("CRIMINALIP_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(Secret::new);
        let config = match (&self.config.sources.criminalip, &env_key) {
            (Some(c), _) if !c.enabled => return Ok(None),
            (Some(c), _) => c.clone(),
            (None, Some(_)) => CriminalIpConfig::default(),
            (None, None) => return Ok(None),
        };
        let fail = |message: String| self.value_error(format!("[sources.criminalip] {message}"));
        let key = match (&config.api_key, &config.api_key_file, env_key) {
            (Some(key), _, _) => key.clone(),
            (None, Some(file), _) => {
                let path = self.resolve(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    fail(format!("api_key_file: cannot read {}: {e}", path.display()))
                })?;
                Secret::new(text)
            }
            (None, None, Some(key)) => key,
            (None, None, None) => {
                return Err(fail("has no API key: set api_key_file, api_key, or the CRIMINALIP_API_KEY environment variable".into()));
            }
        };
        if key.is_empty() {
            return Err(fail("API key is empty".into()));
        }
        let seconds = |name: &str, value: f64| -> Result<Duration, ConfigError> {
            if value.is_finite() && value > 0.0 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(fail(format!("{name} must be a positive number of seconds")))
            }
        };
        let mut ip_calls = IpCalls::default();
        for call in &config.ip_calls {
            match call.as_str() {
                "malicious-info" => ip_calls.malicious_info = true,
                "suspicious-info" => ip_calls.suspicious_info = true,
                "privacy-threat" => ip_calls.privacy_threat = true,
                other => {
                    return Err(fail(format!(
                        "ip_calls: unknown call {other:?} (expected malicious-info, suspicious-info or privacy-threat)"
                    )));
                }
            }
        }
        let domain_scan = match config.domain_scan.as_str() {
            "full" => ScanKind::Full,
            "lite" => ScanKind::Lite,
            other => {
                return Err(fail(format!(
                    "domain_scan: {other:?} is neither \"full\" nor \"lite\""
                )));
            }
        };
        if config.max_requests == 0 || config.concurrency == 0 {
            return Err(fail(
                "max_requests and concurrency must be at least 1".into(),
            ));
        }
        if config.alert_percent == 0 || config.alert_percent > 100 {
            return Err(fail("alert_percent must be between 1 and 100".into()));
        }
        let base_url = std::env::var("CRIMINALIP_BASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .or(config.base_url.clone())
            .unwrap_or_else(|| scry_sources::criminalip::DEFAULT_BASE_URL.to_owned());
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(fail(format!(
                "base_url {base_url:?} must start with http:// or https://"
            )));
        }
        Ok(Some(CriminalIpSettings {
            base_url,
            api_key: key,
            max_tlp: config
                .max_tlp
                .parse()
                .map_err(|e| fail(format!("max_tlp: {e}")))?,
            max_requests: config.max_requests,
            per: seconds("per_seconds", config.per_seconds)?,
            concurrency: config.concurrency,
            timeout: seconds("timeout_seconds", config.timeout_seconds)?,
            retry: RetryPolicy {
                retries: config.retries,
                base: Duration::from_millis(config.retry_base_ms),
                cap: Duration::from_secs(30),
            },
            budget: BudgetLimits {
                daily: config.daily_credits,
                monthly: config.monthly_credits,
                alert_percent: config.alert_percent,
            },
            cache_ttl: seconds("cache_ttl_hours", config.cache_ttl_hours * 3600.0)?,
            cache_ttl_risky: seconds(
                "cache_ttl_risky_hours",
                config.cache_ttl_risky_hours * 3600.0,
            )?,
            domain_report_max_age_days: config.domain_report_max_age_days,
            ip_calls,
            domain_scan,
            quick_check: config.quick_check,
            send_url_query: config.send_url_query,
            scan_poll_interval: seconds("scan_poll_seconds", config.scan_poll_seconds)?,
            scan_timeout: seconds("scan_timeout_seconds", config.scan_timeout_seconds)?,
            weights: config.weights,
        }))
    }

    /// Relative paths in the configuration are relative to the file they are written in.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.path.as_ref().and_then(|p| p.parent()) {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// The store URL: the command-line value, else the configured one, else the default.
    pub fn store_url(&self, from_command_line: Option<&str>) -> String {
        from_command_line
            .map(str::to_owned)
            .or_else(|| self.config.store.url.clone())
            .unwrap_or_else(default_store_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_settings_are_checked_and_name_the_feed() {
        let check = |text: &str| {
            let loaded = LoadedConfig {
                config: from_toml_str(text).expect("parses"),
                path: None,
                feeds: Arc::default(),
            };
            loaded.validate().map_err(|e| e.to_string())
        };
        let good = "[feeds]\ncorroboration_points = 5\n[feeds.partner]\npath = \"p.csv\"\n\
                    format = \"csv\"\ncolumns = { indicator = \"ioc\", delimiter = \";\" }\n";
        assert_eq!(check(good), Ok(()));
        for (text, expected) in [
            (
                "[feeds.a]\nformat = \"list\"\n",
                "[feeds.a] needs one of url or path",
            ),
            (
                "[feeds.a]\npath = \"x\"\nformat = \"stix\"\n",
                "[feeds.a] format \"stix\" is not one of",
            ),
            (
                "[feeds.a]\npath = \"x\"\nformat = \"csv\"\n",
                "format csv needs [feeds.NAME.columns]",
            ),
            (
                "[feeds.a]\nurl = \"ftp://x/y\"\nformat = \"list\"\n",
                "only http and https",
            ),
            (
                "[feeds.a]\npath = \"x\"\nformat = \"list\"\nconfidence = 120\n",
                "confidence is 0–100",
            ),
            (
                "[feeds.a]\npath = \"x\"\nformat = \"list\"\ninterval_minutes = 0.5\n",
                "interval_minutes must be at least 1",
            ),
            (
                "[feeds.\"a b\"]\npath = \"x\"\nformat = \"list\"\n",
                "letters, digits, - and _ only",
            ),
        ] {
            let error = check(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
        let typo = from_toml_str("[feeds.a]\npath = \"x\"\nformat = \"list\"\nconfidense = 5\n");
        assert!(typo.is_err(), "unknown feed keys are refused");
    }

    #[test]
    fn the_example_is_the_defaults() {
        assert_eq!(
            from_toml_str(EXAMPLE).expect("example parses"),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = from_toml_str("[enrich]\nconcurency = 4\n").expect_err("typo");
        let text = err.to_string();
        assert!(text.contains("concurency"), "{text}");
        let err = from_toml_str("[sources.virustotal]\nkey = 'x'\n").expect_err("unknown source");
        assert!(err.to_string().contains("virustotal"), "{err}");
    }

    /// The weights documented in the example are the ones in force, and each can be changed.
    #[test]
    fn documented_weights_are_the_defaults_and_can_be_set() {
        let section = EXAMPLE
            .split("# [sources.criminalip.weights]")
            .nth(1)
            .expect("the example documents the weights");
        let uncommented: String = section
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| line.contains(" = "))
            .map(|line| format!("{line}\n"))
            .collect();
        let config = from_toml_str(&format!("[sources.criminalip.weights]\n{uncommented}"))
            .expect("documented weights parse");
        let weights = config.sources.criminalip.expect("section").weights;
        assert_eq!(weights, scry_sources::criminalip::map::Weights::default());
        assert!(uncommented.lines().count() >= 28, "{uncommented}");

        let config = from_toml_str("[sources.criminalip.weights]\ntor = 40\n").expect("parses");
        let weights = config.sources.criminalip.expect("section").weights;
        assert_eq!(
            (weights.tor, weights.c2),
            (40, 30),
            "unset weights keep their defaults"
        );
        let err = from_toml_str("[sources.criminalip.weights]\ntorr = 40\n").expect_err("typo");
        assert!(err.to_string().contains("torr"), "{err}");
    }
}
