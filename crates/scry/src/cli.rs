//! The command-line shape of `scry`: global options and subcommands, with examples in `--help`.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use scry_engine::input::InputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "scry",
    version,
    about = "Threat-intelligence enrichment and prioritization",
    long_about = "scry reads indicators (IPs, CIDR blocks, domains, URLs) from files, feeds and analysts, \
                  enriches them, explains their priority and acts on them.",
    after_help = "Examples:\n  scry enrich iocs.txt\n  cat report.eml | scry enrich --input-format text -\n  scry config init"
)]
pub(crate) struct Cli {
    /// Configuration file [default: ./scry.toml, else $XDG_CONFIG_HOME/scry/scry.toml]
    #[arg(long, global = true, env = "SCRY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Store URL (sqlite:///path or postgres://…) [default: SQLite file in $XDG_DATA_HOME/scry]
    #[arg(long, global = true, env = "SCRY_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,

    /// More detail on stderr (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Only errors on stderr: no progress, no summary, no rejected-line reports
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read indicators, enrich them and print them by priority
    #[command(after_help = "Examples:\n  \
        scry enrich iocs.txt                       # a list, a CSV, JSON Lines or a STIX bundle (detected)\n  \
        scry enrich feed.csv.gz alerts.jsonl       # several inputs, gzip read transparently\n  \
        pbpaste | scry enrich --input-format text -   # every indicator in pasted prose\n  \
        scry enrich --format json iocs.txt > out.json\n  \
        scry enrich --tlp amber --format csv iocs.txt")]
    Enrich(EnrichArgs),
    /// Read and enrich indicators into the store without printing them
    #[command(
        after_help = "Examples:\n  scry import feed.csv.gz\n  scry --store postgres://scry@db/scry import alerts.jsonl"
    )]
    Import(EnrichArgs),
    /// Queue indicators for enrichment by `scry worker` (durable: nothing queued is lost)
    #[command(after_help = "Examples:\n  \
        scry ingest feed.csv.gz && scry jobs run        # queue, then enrich until done\n  \
        scry --store postgres://scry@db/scry ingest alerts.jsonl   # workers elsewhere pick them up")]
    Ingest(IngestArgs),
    /// Run queued jobs (enrichments, rule actions, scheduled refreshes) until stopped
    #[command(after_help = "Examples:\n  \
        scry worker                                   # Ctrl-C or SIGTERM stops it after the current pass\n  \
        scry --store postgres://scry@db/scry worker   # several workers may share one PostgreSQL store")]
    Worker(WorkerArgs),
    /// Everything the store knows about one indicator
    #[command(
        after_help = "Examples:\n  scry show 45.155.205.233\n  scry show 'hxxp://evil[.]com/login' --format json"
    )]
    Show(ShowArgs),
    /// What shares an ASN, CVE, country, subnet, certificate, service or domain with an indicator
    #[command(after_help = "Examples:\n  \
        scry pivot 45.155.205.233 --by asn --min-priority 80   # the same network, high priority only\n  \
        scry pivot 45.155.205.233 --by cve                     # hosts exposing the same CVEs\n  \
        scry pivot 45.155.205.233 --by domain                  # domains resolving to it\n  \
        scry pivot evil.example.com --by subnet --format json")]
    Pivot(PivotArgs),
    /// Write stored indicators out, for other tools
    #[command(after_help = "Examples:\n  \
        scry export --format jsonl --min-priority 80 > high.jsonl\n  \
        scry export --format csv --since 2026-11-01 --output changed.csv\n  \
        scry export --format stix --min-priority 70 --output high.stix.json")]
    Export(ExportArgs),
    /// Manage the store
    #[command(subcommand)]
    Db(DbCommand),
    /// Check or create the configuration file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the configured enrichment sources
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Serve a local Criminal IP-compatible API with synthetic data (tests, demos, rehearsals)
    #[command(after_help = "Examples:\n  \
        scry sandbox --listen 127.0.0.1:8099\n  \
        CRIMINALIP_API_KEY=demo CRIMINALIP_BASE_URL=http://127.0.0.1:8099 scry enrich examples/iocs.txt\n  \
        scry sandbox --credits 100 --rate-limit 5 --latency-median-ms 150 --latency-p99-ms 1000 --log requests.jsonl\n  \
        scry sandbox --server-error-rate 0.02 --rate-limited-rate 0.01 --refuse-concurrent")]
    Sandbox(SandboxArgs),
    /// Check rules and playbooks, or see what they would do for an indicator
    #[command(subcommand)]
    Rules(RulesCommand),
    /// The automation history: rule matches, actions and their outcomes, skips, vendor calls
    #[command(after_help = "Examples:\n  \
        scry history --indicator 45.155.205.233\n  \
        scry history --rule block-high --since 2026-11-01\n  \
        scry history --kind skip --format jsonl")]
    History(HistoryArgs),
    /// Run queued jobs (enrichments and rule actions) until none is due, or count them
    #[command(after_help = "Examples:\n  scry jobs run\n  scry jobs status")]
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The offline network data (IP to country and AS): where it comes from, or a new pack
    #[command(subcommand)]
    Data(DataCommand),
    /// Threat feeds: pull them now, or see when each was pulled and what it holds
    #[command(subcommand)]
    Feeds(FeedsCommand),
    /// Serve the workbench, the REST API, TAXII 2.1, blocklists and metrics, with workers
    #[command(after_help = "Examples:\n  \
        scry token create --role admin alice && scry serve   # then open http://127.0.0.1:8080\n  \
        scry serve --listen 0.0.0.0:8443 --no-worker         # workers run elsewhere on a shared store\n  \
        curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/api/v1/indicators?min_priority=80")]
    Serve(ServeArgs),
    /// API tokens for `scry serve`: create (shown once), list, revoke
    #[command(subcommand)]
    Token(TokenCommand),
    /// Local users who log in to the workbench with a password
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; the password is read from the first line of standard input
    #[command(after_help = "Examples:\n  \
        read -rs PASSWORD && printf '%s\\n' \"$PASSWORD\" | scry user add alice --role analyst")]
    Add {
        /// Letters, digits, '.', '_', '-'
        name: String,
        /// viewer (read), analyst (also submit and act), admin (also manage tokens)
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Revoke a user and end their browser sessions
    Revoke { name: String },
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on [default: [server] listen, 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) listen: Option<String>,
    /// Serve only; let `scry worker` processes elsewhere run the jobs
    #[arg(long)]
    pub(crate) no_worker: bool,
    /// Jobs the built-in worker runs at once (default: [enrich] concurrency)
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print its secret (the only time it is shown)
    Create {
        /// A name for who or what uses it (letters, digits, '.', '_', '-')
        name: String,
        /// viewer (read), analyst (also submit and act), admin (also manage tokens)
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Valid for this many days [default: until revoked]
        #[arg(long, value_name = "N")]
        days: Option<u32>,
    },
    /// Every token and user: role, when created, last used, revoked (never a secret)
    List,
    /// Revoke a token and end its browser sessions
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FeedsCommand {
    /// Pull the feeds that are due (all with --force), and queue what a feed with `ingest`
    /// newly lists; a running `scry worker` does this on every pass
    #[command(after_help = "Examples:\n  scry feeds pull\n  scry feeds pull --force feodo")]
    Pull {
        /// Pull even feeds pulled less than their interval ago
        #[arg(long)]
        force: bool,
        /// Only these feeds
        names: Vec<String>,
    },
    /// Each feed: where it comes from, when it was last pulled and changed, entries, problems
    #[command(after_help = "Examples:\n  scry feeds status\n  scry feeds status --format json")]
    Status {
        #[arg(long, short = 'f', value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// The network data in use: its sources, licences, date and size
    #[command(after_help = "Examples:\n  scry data status\n  scry data status --format json")]
    Status {
        #[arg(long, short = 'f', value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Rebuild the network data from its upstream files ([sources.geo] update_asn and
    /// update_country) when they changed, and use it from then on
    #[command(after_help = "Examples:\n  scry data update\n  scry data update --force")]
    Update {
        /// Fetch every file again, even when the copy held is current
        #[arg(long)]
        force: bool,
    },
    /// Build a network data pack from the registries' CSV files (start,end,asn,organization and
    /// start,end,country), for `[sources.geo] pack`
    #[command(after_help = "Examples:\n  \
        scry data build --meta meta.json --asn asn-ipv4.csv --asn asn-ipv6.csv \\\n      \
        --country geo-whois-asn-country-ipv4.csv --country geo-whois-asn-country-ipv6.csv \\\n      \
        --output netpack.bin.gz")]
    Build {
        /// Where the data comes from (JSON: built, sources[provides, package, license,
        /// attribution, data_as_of])
        #[arg(long)]
        meta: PathBuf,
        /// CSV files of start,end,asn,organization
        #[arg(long, required = true)]
        asn: Vec<PathBuf>,
        /// CSV files of start,end,country
        #[arg(long, required = true)]
        country: Vec<PathBuf>,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// Load every rule, list, channel, ticket system and blocklist, and report every mistake
    Check,
    /// Which rules would fire for a stored indicator, and what they would do (nothing is done)
    #[command(after_help = "Examples:\n  scry rules test 45.155.205.233")]
    Test {
        /// The indicator, as stored (defanged input is fine)
        indicator: String,
    },
    /// Print the rules reference (Markdown): triggers, every field a condition can use with its
    /// type, functions and actions; the same text as docs/rules.md
    Reference,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// Run every due job, then stop; jobs waiting for a retry stay queued
    Run {
        /// Shadow mode: store enrichments, record what rules would do, queue and run no action
        #[arg(long)]
        dry_run: bool,
    },
    /// How many jobs are ready, waiting, done and failed
    Status,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Only this indicator
    #[arg(long)]
    pub(crate) indicator: Option<String>,
    /// Only this rule
    #[arg(long)]
    pub(crate) rule: Option<String>,
    /// Only this kind of entry
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(scry_store::EVENT_KINDS.iter().map(|(kind, meaning)| clap::builder::PossibleValue::new(*kind).help(*meaning))))]
    pub(crate) kind: Option<String>,
    /// Only on or after this UTC date (YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub(crate) since: Option<String>,
    /// At most this many, newest first
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,
    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = HistoryFormat::Table)]
    pub(crate) format: HistoryFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HistoryFormat {
    Table,
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SourcesCommand {
    /// Check that each source is usable (key accepted, service reachable) without enriching
    #[command(after_help = "Examples:\n  scry sources test\n  scry sources test criminalip")]
    Test {
        /// Only this source
        name: Option<String>,
    },
    /// Calls, errors, cache hit rate, latency and credits per source, today and this month
    /// (from the automation history in the store)
    #[command(after_help = "Examples:\n  scry sources status\n  scry sources status --format json")]
    Status {
        #[arg(long, short = 'f', value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SandboxArgs {
    /// Address to listen on (loopback only unless you mean it)
    #[arg(long, default_value = "127.0.0.1:8099")]
    pub(crate) listen: std::net::SocketAddr,
    /// The only API key accepted [default: any non-empty key]
    #[arg(long, env = "SCRY_SANDBOX_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Varies the synthetic data; the same seed always gives the same reports
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Median answer latency
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_median_ms: u64,
    /// 99th-percentile answer latency
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_p99_ms: u64,
    /// Requests per key per second before answering 429
    #[arg(long)]
    pub(crate) rate_limit: Option<u32>,
    /// Credits the account has; "limit exceeded" once spent
    #[arg(long)]
    pub(crate) credits: Option<u64>,
    /// Refuse a call while another is in flight with the same key
    #[arg(long)]
    pub(crate) refuse_concurrent: bool,
    /// The HTTP status of that refusal (the service's is not documented; 400 and 403 are seen)
    #[arg(long, default_value_t = 400, value_name = "STATUS")]
    pub(crate) concurrent_status: u16,
    /// Share of requests answered 429
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate_limited_rate: f64,
    /// Share of requests answered 500
    #[arg(long, default_value_t = 0.0)]
    pub(crate) server_error_rate: f64,
    /// Share of requests held until the client times out
    #[arg(long, default_value_t = 0.0)]
    pub(crate) timeout_rate: f64,
    /// Share of requests answered with truncated JSON
    #[arg(long, default_value_t = 0.0)]
    pub(crate) malformed_rate: f64,
    /// Answer errors with HTTP 200 and the status in the body only
    #[arg(long)]
    pub(crate) errors_in_body: bool,
    /// Seconds a domain scan takes
    #[arg(long, default_value_t = 2.0)]
    pub(crate) scan_seconds: f64,
    /// Append every request to this JSON Lines file
    #[arg(long, value_name = "FILE")]
    pub(crate) log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// Files to read (`-` for standard input); gzip is read transparently
    #[arg(value_name = "INPUT", required = true)]
    pub(crate) inputs: Vec<String>,
    /// Input format: auto, lines, text, csv, jsonl, stix
    #[arg(long, default_value = "auto", value_parser = InputFormat::from_str, value_name = "FORMAT")]
    pub(crate) input_format: InputFormat,
    /// TLP for indicators whose input states none
    #[arg(long, value_name = "LEVEL")]
    pub(crate) tlp: Option<String>,
    /// Ask the sources even when a cached answer is still fresh
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Shadow mode: store enrichments, record what rules would do, queue and run no action
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Jobs in progress at once (default: [enrich] concurrency)
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct EnrichArgs {
    /// Input files; `-` (or nothing, when stdin is piped) reads standard input
    #[arg(value_name = "INPUT")]
    pub(crate) inputs: Vec<String>,

    /// Input format: auto (from the file name, else the content), lines, text, csv, jsonl or stix
    #[arg(long, default_value = "auto", value_parser = InputFormat::from_str, value_name = "FORMAT")]
    pub(crate) input_format: InputFormat,

    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,

    /// TLP for indicators whose input states none (clear, green, amber, amber+strict, red)
    #[arg(long, value_name = "LEVEL")]
    pub(crate) tlp: Option<String>,

    /// Ask sources again even when a cached answer is still fresh
    #[arg(long)]
    pub(crate) force: bool,

    #[arg(
        long,
        value_name = "N",
        help = format!(
            "Indicators enriched at once [default: [enrich] concurrency, {}]",
            scry_engine::config::DEFAULT_ENRICH_CONCURRENCY
        )
    )]
    pub(crate) concurrency: Option<usize>,

    /// Never show the progress bar
    #[arg(long)]
    pub(crate) no_progress: bool,

    /// Do not save results to the store
    #[arg(long)]
    pub(crate) no_store: bool,

    /// A rehearsal: enrich and evaluate rules, record in the history what would happen, but
    /// store no result and do no action, so the real run afterwards acts as if this one had not
    /// happened (paid answers are still kept, so it does not pay twice)
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The indicator (defanged forms are fine)
    pub(crate) indicator: String,

    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = ShowFormat::Text)]
    pub(crate) format: ShowFormat,
}

#[derive(Debug, Args)]
pub(crate) struct PivotArgs {
    /// The indicator to start from (it must be in the store)
    pub(crate) indicator: String,

    /// What to pivot on: asn, cve, country, subnet, certificate, service or domain
    #[arg(long, value_parser = scry_engine::pivot::Pivot::from_str)]
    pub(crate) by: scry_engine::pivot::Pivot,

    /// Only indicators with at least this priority
    #[arg(long, default_value_t = 0)]
    pub(crate) min_priority: u8,

    /// At most this many (one page)
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,

    /// The page after this cursor, as the previous page printed it
    #[arg(long, value_name = "CURSOR", value_parser = scry_store::PivotCursor::from_str)]
    pub(crate) after: Option<scry_store::PivotCursor>,

    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = ShowFormat::Text)]
    pub(crate) format: ShowFormat,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = ExportFormat::Jsonl)]
    pub(crate) format: ExportFormat,

    /// Only indicators with at least this priority
    #[arg(long, default_value_t = 0)]
    pub(crate) min_priority: u8,

    /// Only indicators that changed on or after this UTC date (YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub(crate) since: Option<String>,

    /// Write here instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// STIX: the TLP marking of indicators stored without one (default: [enrich] default_tlp, else amber)
    #[arg(long, value_name = "LEVEL")]
    pub(crate) unmarked_tlp: Option<String>,

    /// STIX: days an indicator stays valid after its last change (valid_until)
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub(crate) validity_days: u32,

    /// STIX: at most this many related objects of one kind (services, CVEs, addresses) per indicator
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) max_related: usize,

    /// EDL: the blocklist to write
    #[arg(long, value_name = "NAME")]
    pub(crate) list: Option<String>,

    /// Also export your own entries: private and other special-use addresses, internal and
    /// reserved names, allowlisted indicators (left out by default: they are not threats to share)
    #[arg(long)]
    pub(crate) include_own: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON object per indicator
    Jsonl,
    /// CSV with a header row
    Csv,
    /// A STIX 2.1 bundle: observables, indicators, infrastructure, locations, vulnerabilities and relationships
    Stix,
    /// A blocklist as an external dynamic list: one entry per line (needs --list)
    Edl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShowFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Create the store or bring its schema up to date
    #[command(
        after_help = "Examples:\n  scry db migrate\n  scry --store postgres://scry@db.internal/scry db migrate"
    )]
    Migrate,
    /// Write a consistent copy of a SQLite store to FILE while scry may be running (PostgreSQL:
    /// use pg_dump)
    #[command(
        after_help = "Examples:\n  scry db backup /backups/scry-$(date +%F).db\n  \
        pg_dump -Fc -f scry.dump postgres://scry@db.internal/scry   (a PostgreSQL store)"
    )]
    Backup {
        /// Where the copy goes; it must not exist yet
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns, coloured on a terminal
    Table,
    /// One JSON array
    Json,
    /// One JSON object per line
    Jsonl,
    /// CSV with a header row
    Csv,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Load and validate the configuration, and say what it resolves to
    #[command(
        after_help = "Examples:\n  scry config check\n  scry --config /etc/scry/scry.toml config check"
    )]
    Check,
    /// Write a commented example configuration
    #[command(
        after_help = "Examples:\n  scry config init            # writes ./scry.toml\n  scry config init ~/.config/scry/scry.toml"
    )]
    Init {
        /// Where to write it
        #[arg(default_value = "scry.toml")]
        path: PathBuf,
        /// Replace an existing file
        #[arg(long)]
        force: bool,
    },
}
