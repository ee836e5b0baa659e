//! `scry`: the binary. It parses the command line, loads the configuration, builds the engine and
//! renders what the engine returns; every decision about indicators is made in the libraries.
//!
//! Exit status: 0 when the run completed (rejected input lines do not change that), 1 when a
//! configured source was unusable or the run failed, 2 for usage and configuration errors.

mod cli;
mod output;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scry_core::Tlp;
use scry_engine::config::{self, LoadedConfig};
use scry_engine::input::InputSource;
use scry_engine::pivot::NEIGHBOUR_COUNT_CAP;
use scry_engine::setup::Rules;
use scry_engine::sort::{DEFAULT_RUN_BYTES, PrioritySorter};
use scry_engine::{EnrichRequest, Progress, Status, Summary};
use scry_sources::{EnrichOptions, Source, SourceError};

use crate::cli::{
    Cli, Command, ConfigCommand, DataCommand, DbCommand, EnrichArgs, ExportArgs, ExportFormat,
    FeedsCommand, JobsCommand, PivotArgs, RulesCommand, SandboxArgs, ShowArgs, ShowFormat,
    SourcesCommand,
};
use crate::output::TableStyle;

/// Prints a line to stdout. Unlike `println!` it does not panic when the reader went away
/// (`scry pivot … | head`): the error ends the command, and `main` exits quietly on a closed pipe.
/// Writes a line to stdout, with control characters from stored or vendor text shown as escapes
/// ([`output::printable`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), "{}", crate::output::printable(&format!($($arg)*)))?;
    }};
}

mod automation;
mod data;
mod feeds;
mod queue;
mod serve;

/// An error the user caused by how scry was called or configured: exit status 2.
#[derive(Debug)]
struct UsageError(anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

pub(crate) fn usage(error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(UsageError(error.into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            if reader_went_away(&error) {
                return ExitCode::SUCCESS;
            }
            let code = if error.is::<UsageError>() { 2 } else { 1 };
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}

/// True when the error is stdout's reader closing the pipe (`scry … | head`), however wrapped.
fn reader_went_away(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == Some(io::ErrorKind::BrokenPipe)
            || cause.downcast_ref::<csv::Error>().is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == io::ErrorKind::BrokenPipe))
    })
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,scry=debug,scry_engine=debug,scry_sources=debug",
        (false, _) => "debug,scry=trace,scry_engine=trace,scry_sources=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(
            io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let loaded = config::load(cli.config.as_deref()).map_err(usage)?;
    match cli.command {
        Command::Enrich(args) => enrich(
            args,
            &loaded,
            cli.store.as_deref(),
            Output::Print,
            cli.quiet,
            cli.verbose,
        ),
        Command::Import(args) => enrich(
            args,
            &loaded,
            cli.store.as_deref(),
            Output::StoreOnly,
            cli.quiet,
            cli.verbose,
        ),
        Command::Ingest(args) => queue::ingest(&args, &loaded, cli.store.as_deref(), cli.quiet),
        Command::Worker(args) => queue::run_worker(&args, &loaded, cli.store.as_deref(), cli.quiet),
        Command::Show(args) => show(&args, &loaded, cli.store.as_deref()),
        Command::Pivot(args) => pivot(&args, &loaded, cli.store.as_deref()),
        Command::Export(args) => export(&args, &loaded, cli.store.as_deref()),
        Command::Db(DbCommand::Migrate) => db_migrate(&loaded, cli.store.as_deref()),
        Command::Db(DbCommand::Backup { file }) => db_backup(&loaded, cli.store.as_deref(), &file),
        Command::Config(ConfigCommand::Check) => config_check(&loaded, cli.store.as_deref()),
        Command::Config(ConfigCommand::Init { path, force }) => config_init(&path, force),
        Command::Sources(SourcesCommand::Test { name }) => {
            sources_test(&loaded, cli.store.as_deref(), name.as_deref())
        }
        Command::Sources(SourcesCommand::Status { format }) => {
            automation::sources_status(&loaded, cli.store.as_deref(), format)
        }
        Command::Sandbox(args) => sandbox(args),
        Command::Rules(RulesCommand::Check) => automation::rules_check(&loaded),
        Command::Rules(RulesCommand::Reference) => {
            out!("{}", scry_rules::reference::markdown().trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules(RulesCommand::Test { indicator }) => {
            automation::rules_test(&loaded, cli.store.as_deref(), &indicator)
        }
        Command::History(args) => automation::history(&args, &loaded, cli.store.as_deref()),
        Command::Jobs(JobsCommand::Run { dry_run }) => {
            queue::jobs_run(&loaded, cli.store.as_deref(), dry_run, cli.quiet)
        }
        Command::Jobs(JobsCommand::Status) => {
            automation::jobs_status(&loaded, cli.store.as_deref())
        }
        Command::Data(DataCommand::Build {
            meta,
            asn,
            country,
            output,
        }) => data::build(&meta, &asn, &country, &output),
        Command::Data(DataCommand::Status { format }) => data::status(&loaded, format),
        Command::Data(DataCommand::Update { force }) => data::update(&loaded, force, cli.quiet),
        Command::Feeds(FeedsCommand::Pull { force, names }) => {
            feeds::pull(&loaded, cli.store.as_deref(), force, &names, cli.quiet)
        }
        Command::Feeds(FeedsCommand::Status { format }) => feeds::status(&loaded, format),
        Command::Serve(args) => serve::serve(&args, &loaded, cli.store.as_deref(), cli.quiet),
        Command::Token(command) => serve::token(command, &loaded, cli.store.as_deref()),
        Command::User(command) => serve::user(command, &loaded, cli.store.as_deref()),
    }
}

/// The async runtime of one command. Every store the command opened (through [`open_store`]) is
/// closed when it ends, whichever way it ends, so a SQLite store is one self-contained file
/// afterwards.
pub(crate) struct CommandRuntime {
    runtime: tokio::runtime::Runtime,
}

/// Stores opened by the running command, closed when its runtime ends.
static OPENED_STORES: std::sync::Mutex<Vec<Arc<dyn scry_store::Store>>> =
    std::sync::Mutex::new(Vec::new());

impl CommandRuntime {
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

impl Drop for CommandRuntime {
    fn drop(&mut self) {
        let opened = std::mem::take(&mut *OPENED_STORES.lock().expect("not poisoned"));
        self.runtime.block_on(async {
            for store in opened {
                if let Err(error) = store.close().await {
                    tracing::error!("closing the store failed: {error}");
                }
            }
        });
    }
}

pub(crate) fn runtime() -> anyhow::Result<CommandRuntime> {
    Ok(CommandRuntime {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?,
    })
}

/// `scry sources test`: the seeds' "Test Connection", for every source or one. The sources are
/// built over the store, so the check takes its place in the rate window every process shares.
fn sources_test(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    let url = loaded.store_url(store_url);
    let services = runtime.block_on(async {
        let store = open_store(&url).await?;
        queue::services(loaded, Some(&store), Rules::Off).await
    })?;
    let sources = services.engine.sources();
    let chosen: Vec<&Arc<dyn Source>> = sources
        .iter()
        .filter(|s| only.is_none_or(|name| s.name() == name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = sources.iter().map(|s| s.name()).collect();
        let hint = if only == Some("criminalip") {
            "; set CRIMINALIP_API_KEY or add [sources.criminalip] to the configuration"
        } else {
            ""
        };
        return Err(usage(anyhow!(
            "no configured source named {:?} (configured: {}){hint}",
            only.unwrap_or(""),
            names.join(", ")
        )));
    }
    let mut failed = false;
    for source in chosen {
        match runtime.block_on(source.check()) {
            Ok(description) => out!("{}: OK: {description}", source.name()),
            Err(SourceError::Unusable(message)) | Err(SourceError::Failed(message)) => {
                failed = true;
                out!("{}: UNUSABLE: {message}", source.name());
            }
            Err(other) => {
                failed = true;
                out!("{}: UNUSABLE: {other}", source.name());
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `scry sandbox`: serves until interrupted.
fn sandbox(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let rates = [
        args.rate_limited_rate,
        args.server_error_rate,
        args.timeout_rate,
        args.malformed_rate,
    ];
    if rates.iter().any(|r| !(0.0..=1.0).contains(r)) || rates.iter().sum::<f64>() > 1.0 {
        return Err(usage(anyhow!(
            "fault rates are shares between 0 and 1, and together at most 1"
        )));
    }
    if !(args.scan_seconds.is_finite() && args.scan_seconds >= 0.0) {
        return Err(usage(anyhow!("--scan-seconds must be zero or more")));
    }
    let config = scry_sandbox::SandboxConfig {
        api_key: args.api_key,
        seed: args.seed,
        latency_median: Duration::from_millis(args.latency_median_ms),
        latency_p99: Duration::from_millis(args.latency_p99_ms.max(args.latency_median_ms)),
        rate_limit: args.rate_limit.map(|n| (n, Duration::from_secs(1))),
        credits: args.credits,
        refuse_concurrent: args.refuse_concurrent,
        concurrent_status: args.concurrent_status,
        faults: scry_sandbox::Faults {
            rate_limited: args.rate_limited_rate,
            server_error: args.server_error_rate,
            timeout: args.timeout_rate,
            malformed: args.malformed_rate,
        },
        errors_in_body: args.errors_in_body,
        scan_duration: Duration::from_secs_f64(args.scan_seconds),
        log_path: args.log,
        ..scry_sandbox::SandboxConfig::default()
    };
    let runtime = runtime()?;
    runtime.block_on(async {
        let sandbox = scry_sandbox::Sandbox::start(config, args.listen)
            .await
            .map_err(usage)?;
        eprintln!(
            "scry sandbox: Criminal IP-compatible API on {} (stop with Ctrl-C)",
            sandbox.url()
        );
        eprintln!(
            "point scry at it: CRIMINALIP_BASE_URL={} CRIMINALIP_API_KEY=<any key>",
            sandbox.url()
        );
        tokio::select! {
            () = sandbox.run_forever() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `enrich` does with its records besides storing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Print them by priority (`scry enrich`).
    Print,
    /// Only store them (`scry import`).
    StoreOnly,
}

fn enrich(
    args: EnrichArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    output: Output,
    quiet: bool,
    verbose: u8,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if output == Output::StoreOnly && args.no_store {
        return Err(usage(anyhow!(
            "`scry import` stores what it reads; --no-store would leave nothing to do"
        )));
    }
    let inputs = resolve_inputs(&args.inputs)?;
    let default_tlp = match &args.tlp {
        Some(level) => Some(level.parse().map_err(|e| usage(anyhow!("--tlp: {e}")))?),
        None => loaded.default_tlp().map_err(usage)?,
    };
    let mut request = EnrichRequest {
        inputs: inputs.clone(),
        format: args.input_format,
        default_tlp,
        options: EnrichOptions { force: args.force },
        concurrency: args.concurrency.unwrap_or(loaded.config.enrich.concurrency),
        automation: None,
        dry_run: args.dry_run,
    };
    if request.concurrency == 0 {
        return Err(usage(anyhow!("--concurrency must be at least 1")));
    }
    let runtime = runtime()?;
    let store_url = loaded.store_url(store_url);
    let store = if args.no_store {
        None
    } else {
        Some(runtime.block_on(open_store(&store_url))?)
    };
    if store.is_none() && args.dry_run {
        return Err(usage(anyhow!(
            "--dry-run is about rules, which act on stored results; drop --no-store"
        )));
    }
    let rules = if store.is_some() {
        Rules::On {
            dry_run: args.dry_run,
        }
    } else {
        Rules::Off
    };
    let services = runtime.block_on(queue::services(loaded, store.as_ref(), rules))?;
    let engine = services.engine;
    let mut actions = None;
    if let (Some(store), Some(rules)) = (&store, services.automation)
        && !rules.rules().rules().is_empty()
    {
        // A rehearsal or shadow mode queues no action, and must not run actions other runs
        // queued.
        actions = (!rules.is_dry_run())
            .then(|| queue::action_worker(loaded, Arc::clone(&engine), store, Arc::clone(&rules)))
            .transpose()?;
        request.automation = Some(rules);
    }
    let automation = request.automation.clone();

    let progress = Arc::new(Progress::default());
    let bar = progress_bar(&inputs, quiet || args.no_progress);
    let mut sorter = PrioritySorter::new(DEFAULT_RUN_BYTES);
    let summary = runtime.block_on(async {
        engine.preflight().await;
        let ticker = tokio::spawn(tick(bar.clone(), Arc::clone(&progress)));
        let mut sink = |record: scry_engine::Record| -> io::Result<()> {
            if record.status == Status::Rejected && !quiet {
                let what = if record.input.is_empty() {
                    String::new()
                } else {
                    format!(" {:?}", record.input)
                };
                bar.suspend(|| {
                    eprintln!(
                        "{}: rejected{what}: {}",
                        record.position,
                        record.error.as_deref().unwrap_or("")
                    )
                });
            }
            match output {
                Output::Print => sorter.push(&record),
                Output::StoreOnly => Ok(()),
            }
        };
        let result = engine
            .enrich(request, Arc::clone(&progress), &mut sink)
            .await;
        ticker.abort();
        let summary = result?;
        let jobs = match &actions {
            Some(worker) => Some(worker.drain(&Progress::default()).await?.actions),
            None => None,
        };
        anyhow::Ok((summary, jobs))
    })?;
    let (summary, jobs) = summary;
    bar.finish_and_clear();

    if output == Output::Print {
        let style = TableStyle {
            color: colour_stdout(),
            widest_indicator: sorter.widest_indicator(),
            width: table_width(),
        };
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        output::write_records(args.format, sorter.into_sorted()?, &mut out, &style)?;
        out.flush()?;
    }

    if !quiet {
        eprintln!("{}", summary_line(&summary, started.elapsed()));
        if !args.no_store {
            let s = &summary.stored;
            eprintln!(
                "store {}{}: {} new, {} changed, {} unchanged",
                scry_store::redact(&store_url),
                if args.dry_run {
                    " (dry run: would be, nothing saved)"
                } else {
                    ""
                },
                s.inserted,
                s.updated,
                s.unchanged
            );
        }
        if automation.as_ref().is_some_and(|a| a.is_dry_run()) {
            let r = &summary.rules;
            eprintln!(
                "rules (dry run): {} would act ({} on a state already acted on); nothing queued, \
                 see `scry history --kind rule`",
                r.matched, r.repeated
            );
        }
        if let Some(jobs) = jobs {
            let r = &summary.rules;
            eprintln!(
                "rules{}: {} matched, {} actions queued; actions: {} done, {} failed, {} waiting for a retry{}",
                if automation.as_ref().is_some_and(|a| a.is_dry_run()) {
                    " (dry run)"
                } else {
                    ""
                },
                r.matched,
                r.enqueued,
                jobs.done,
                jobs.failed,
                jobs.retrying,
                if r.errors > 0 {
                    format!(
                        "; {} rule evaluations failed (see `scry history --kind rule`)",
                        r.errors
                    )
                } else {
                    String::new()
                }
            );
            if jobs.retrying > 0 {
                eprintln!("note: run `scry jobs run` later to retry the waiting actions");
            }
        }
        for line in engine.sources().iter().filter_map(|s| s.status_line()) {
            eprintln!("{line}");
        }
        if !engine.has_external_sources() {
            let offline: Vec<&str> = engine.sources().iter().map(|s| s.name()).collect();
            eprintln!(
                "note: Criminal IP is not configured, so nothing left this machine: results come from \
                 the offline sources only ({}). To add Criminal IP, export CRIMINALIP_API_KEY=<your key>, \
                 or set api_key_file under [sources.criminalip] (`scry config init` writes a \
                 commented configuration)",
                offline.join(", ")
            );
        }
        if verbose > 0
            && let Some(peak) = peak_memory_kib()
        {
            eprintln!("peak memory: {peak} KiB");
        }
    }
    for (source, message) in &summary.unusable_sources {
        eprintln!("error: source {source} was unusable: {message}");
    }
    Ok(if summary.unusable_sources.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Opens the store, creating and migrating it as needed. A URL scry does not understand is a usage
/// error; a store that cannot be reached is not.
pub(crate) async fn open_store(url: &str) -> anyhow::Result<Arc<dyn scry_store::Store>> {
    // The default store's folder is scry's to make; a folder named in --store is the user's.
    if url == config::default_store_url() {
        let folder = config::default_data_dir();
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating the store's folder {}", folder.display()))?;
    }
    match scry_store::open(url).await {
        Ok(store) => {
            OPENED_STORES
                .lock()
                .expect("not poisoned")
                .push(Arc::clone(&store));
            Ok(store)
        }
        Err(
            error @ (scry_store::StoreError::UnsupportedUrl(_)
            | scry_store::StoreError::MissingFolder(_)),
        ) => Err(usage(error)),
        Err(error) => Err(anyhow::Error::new(error)
            .context("check --store, SCRY_STORE or [store] url, or run with --no-store")),
    }
}

/// `scry db backup FILE`.
fn db_backup(
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        match store.backup(file).await {
            Ok(()) => {}
            Err(
                error @ (scry_store::StoreError::Invalid(_) | scry_store::StoreError::Conflict(_)),
            ) => {
                return Err(usage(error));
            }
            Err(error) => {
                return Err(
                    anyhow::Error::new(error).context(format!("backing up to {}", file.display()))
                );
            }
        }
        out!(
            "store {} copied to {}",
            scry_store::redact(&url),
            file.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// `scry db migrate`.
fn db_migrate(loaded: &LoadedConfig, store_url: Option<&str>) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let shown = scry_store::redact(&url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let count = store.count_indicators().await?;
        out!(
            "store {shown} ({}) is at schema version {}; {count} indicators",
            store.backend(),
            scry_store::migrations::latest_version()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// An indicator named on the command line (defanged forms are fine).
fn indicator_argument(text: &str) -> anyhow::Result<scry_core::Observable> {
    scry_core::Observable::parse(text)
        .map_err(|e| usage(anyhow!("{text:?} is not an indicator: {e}")))
}

/// Says that an indicator is not in the store and how to put it there; exit status 1.
fn not_stored(observable: &scry_core::Observable, store_url: &str) -> ExitCode {
    eprintln!(
        "{} is not in the store {}; enrich it first: scry enrich - <<< '{}'",
        observable.value(),
        scry_store::redact(store_url),
        observable.value()
    );
    ExitCode::from(1)
}

/// `scry show INDICATOR`: everything the store knows about one indicator.
fn show(
    args: &ShowArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let observable = indicator_argument(&args.indicator)?;
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    let (stored, history, neighbours, workflow) = runtime.block_on(async {
        let store = open_store(&url).await?;
        let stored = store
            .indicator(observable.stix_type(), &observable.value())
            .await?;
        let (history, neighbours, workflow) = match &stored {
            Some(s) => (
                store.score_history(&s.record.stix_id).await?,
                scry_engine::pivot::neighbours(store.as_ref(), s).await?,
                store.workflow(&s.record.stix_id).await?,
            ),
            None => (Vec::new(), Vec::new(), None),
        };
        Ok::<_, anyhow::Error>((stored, history, neighbours, workflow))
    })?;
    let Some(stored) = stored else {
        return Ok(not_stored(&observable, &url));
    };
    let r = &stored.record;
    if args.format == ShowFormat::Json {
        let mut json = scry_engine::view::stored_json(&stored);
        json["neighbours"] = neighbours
            .iter()
            .map(|n| serde_json::json!({"facet": n.link.as_str(), "value": n.value, "others": n.others.min(NEIGHBOUR_COUNT_CAP), "more": n.others > NEIGHBOUR_COUNT_CAP}))
            .collect();
        json["history"] = history
            .iter()
            .map(|p| {
                serde_json::json!({"at": p.at, "priority": p.priority, "severity": p.severity, "change": p.change})
            })
            .collect();
        if let Some(w) = &workflow {
            json["workflow"] = serde_json::json!({
                "status": w.status, "labels": w.labels, "priority_override": w.priority_override,
                "ticket": w.ticket, "updated_at": w.updated_at, "origin": w.origin,
            });
        }
        out!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{} ({})  priority {} {}",
        r.value,
        r.kind,
        r.priority,
        r.severity
    );
    out!(
        "status      {}{}",
        r.enrichment_status,
        r.skip_reason
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    );
    if let Some(w) = &workflow {
        out!(
            "workflow    {}{}{}{}   (by {}, {})",
            w.status,
            if w.labels.is_empty() {
                String::new()
            } else {
                format!("; labels {}", w.labels.join(", "))
            },
            w.priority_override
                .map(|p| format!("; priority set to {p}"))
                .unwrap_or_default(),
            w.ticket
                .as_deref()
                .map(|t| format!("; ticket {t}"))
                .unwrap_or_default(),
            w.origin,
            format_ms(w.updated_at)
        );
    }
    out!("stix id     {}", r.stix_id);
    if let Some(tlp) = &r.tlp {
        out!("tlp         {tlp}");
    }
    if !r.tags.is_empty() {
        out!("tags        {}", r.tags.join(", "));
    }
    out!(
        "first seen  {}   last changed {}",
        format_ms(stored.first_seen),
        format_ms(stored.last_changed)
    );
    let reasons = r.reasons.as_array().cloned().unwrap_or_default();
    if !reasons.is_empty() {
        out!("reasons");
        for reason in reasons {
            out!(
                "  {:>+4}  {:<11} {:<22} {}",
                reason["points"].as_i64().unwrap_or(0),
                reason["source"].as_str().unwrap_or(""),
                reason["signal"].as_str().unwrap_or(""),
                reason["value"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(sources) = r.sources.as_object() {
        for (name, source) in sources {
            let link = source
                .get("report_url")
                .and_then(|u| u.as_str())
                .map(|u| format!("  {u}"))
                .unwrap_or_default();
            out!(
                "source {name}: {}{link}",
                source.get("status").and_then(|s| s.as_str()).unwrap_or("?")
            );
        }
    }
    if !neighbours.is_empty() {
        out!("neighbours (shared with other stored indicators; `scry pivot` lists them)");
        for n in &neighbours {
            let others = match n.others {
                0 => String::new(),
                c if c > NEIGHBOUR_COUNT_CAP => {
                    format!("  ({NEIGHBOUR_COUNT_CAP}+ others)")
                }
                c => format!("  ({c} other{})", if c == 1 { "" } else { "s" }),
            };
            out!("  {:<12} {}{others}", n.link.as_str(), n.value);
        }
    }
    if !history.is_empty() {
        out!("history");
        for point in &history {
            let what = point
                .change
                .as_ref()
                .map(scry_engine::view::change_text)
                .unwrap_or_default();
            out!(
                "  {}  {:>3} {:<8} {what}",
                format_ms(point.at),
                point.priority,
                point.severity
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `scry pivot INDICATOR --by FACET`: what shares it, ranked by priority (an indexed lookup).
fn pivot(
    args: &PivotArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let observable = indicator_argument(&args.indicator)?;
    let is_ip = matches!(observable, scry_core::Observable::Ip(_));
    let from = args.by.facets(is_ip).0.map_or("address", |f| f.as_str());
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let store = open_store(&url).await?;
        let Some(stored) = store
            .indicator(observable.stix_type(), &observable.value())
            .await?
        else {
            return Ok::<_, anyhow::Error>(None);
        };
        let page = scry_engine::pivot::page(
            store.as_ref(),
            &stored,
            args.by,
            args.min_priority,
            args.after.as_ref(),
            args.limit,
        )
        .await?;
        Ok(Some(page))
    })?;
    let Some(scry_engine::pivot::PivotPage {
        values,
        matched,
        rows,
        next,
    }) = result
    else {
        return Ok(not_stored(&observable, &url));
    };
    // A full page may have a next one: say how to get it.
    let next_page = || {
        if let Some(cursor) = &next {
            eprintln!("more may follow: add --after {cursor}");
        }
    };
    if values.is_empty() {
        eprintln!(
            "nothing is known of {}'s {from}: enrich it with a source that reports it (Criminal IP gives ASN, country, CVEs, services)",
            observable.value()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == ShowFormat::Json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(s, shared)| serde_json::json!({"indicator": s.record.value, "type": s.record.kind, "priority": s.record.priority, "severity": s.record.severity, "shared": {"facet": matched, "value": shared}, "stix_id": s.record.stix_id}))
            .collect();
        out!("{}", serde_json::to_string_pretty(&json)?);
        next_page();
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{} {from}: {}", observable.value(), values.join(", "));
    out!("PRI SEVERITY TYPE              INDICATOR                                  SHARED");
    for (s, shared) in &rows {
        out!(
            "{:>3} {:<8} {:<17} {:<42} {matched} {shared}",
            s.record.priority,
            s.record.severity,
            s.record.kind,
            s.record.value
        );
    }
    eprintln!(
        "{} indicators{}",
        rows.len(),
        if args.min_priority > 0 {
            format!(" with priority >= {}", args.min_priority)
        } else {
            String::new()
        }
    );
    next_page();
    Ok(ExitCode::SUCCESS)
}

/// `scry export`: every stored indicator matching the filters, streamed page by page.
fn export(
    args: &ExportArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    const PAGE: u32 = 1_000;
    let since = since_ms(args.since.as_deref())?.unwrap_or(0);
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    if args.format == ExportFormat::Edl {
        let written = automation::export_edl(loaded, store_url, args.list.as_deref(), &mut out)?;
        out.flush()?;
        eprintln!(
            "exported {written} entries of blocklist {}",
            args.list.as_deref().unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.list.is_some() {
        return Err(usage(anyhow!("--list is for --format edl")));
    }
    let unmarked_tlp = match &args.unmarked_tlp {
        Some(level) => level
            .parse::<Tlp>()
            .map_err(|e| usage(anyhow!("--unmarked-tlp: {e}")))?,
        None => loaded.default_tlp()?.unwrap_or(Tlp::Amber),
    };
    let stix_options = scry_stix::MapOptions {
        validity_days: args.validity_days,
        max_related: args.max_related,
    };
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    let written = runtime.block_on(async {
        let store = open_store(&url).await?;
        let mut bundle = match args.format {
            ExportFormat::Stix => Some(scry_stix::BundleWriter::start(&mut out)?),
            _ => None,
        };
        if args.format == ExportFormat::Csv {
            out.write_all(&csv_row(&[
                "indicator",
                "type",
                "stix_id",
                "priority",
                "severity",
                "status",
                "skip_reason",
                "tlp",
                "tags",
                "reasons",
                "report_url",
                "first_seen",
                "last_changed",
            ])?)?;
        }
        let (mut after, mut written, mut own) = (0_i64, 0_u64, 0_u64);
        loop {
            let page = store
                .export_page(args.min_priority, since, after, PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            // What people and rules added (labels, a priority override) is published too.
            let workflows: std::collections::HashMap<String, scry_store::Workflow> =
                if matches!(args.format, ExportFormat::Stix) {
                    let ids: Vec<String> =
                        page.iter().map(|(_, s)| s.record.stix_id.clone()).collect();
                    store
                        .workflows(&ids)
                        .await?
                        .into_iter()
                        .map(|w| (w.stix_id.clone(), w))
                        .collect()
                } else {
                    Default::default()
                };
            for (_, stored) in &page {
                let r = &stored.record;
                let is_own = r
                    .skip_reason
                    .as_deref()
                    .and_then(|reason| reason.parse::<scry_core::SkipReason>().ok())
                    .is_some_and(scry_core::SkipReason::is_own);
                if is_own && !args.include_own {
                    own += 1;
                    continue;
                }
                let report_url = scry_engine::view::report_url(stored);
                match args.format {
                    ExportFormat::Stix => {
                        let objects = scry_engine::view::stix_objects(
                            stored,
                            workflows.get(&r.stix_id),
                            unmarked_tlp,
                            &stix_options,
                        )?;
                        bundle
                            .as_mut()
                            .expect("a STIX export has a bundle")
                            .write(&mut out, &objects)?;
                    }
                    ExportFormat::Jsonl => {
                        serde_json::to_writer(&mut out, &scry_engine::view::stored_json(stored))?;
                        out.write_all(b"\n")?;
                    }
                    ExportFormat::Edl => unreachable!("EDL exports return above"),
                    ExportFormat::Csv => {
                        let reasons: Vec<scry_engine::record::ReasonRecord> =
                            serde_json::from_value(r.reasons.clone()).unwrap_or_default();
                        let reasons = output::reasons_text(&reasons);
                        out.write_all(&csv_row(&[
                            r.value.as_str(),
                            r.kind.as_str(),
                            r.stix_id.as_str(),
                            &r.priority.to_string(),
                            r.severity.as_str(),
                            r.enrichment_status.as_str(),
                            r.skip_reason.as_deref().unwrap_or(""),
                            r.tlp.as_deref().unwrap_or(""),
                            &r.tags.join(";"),
                            &reasons,
                            report_url.unwrap_or(""),
                            &format_ms(stored.first_seen),
                            &format_ms(stored.last_changed),
                        ])?)?;
                    }
                }
                written += 1;
            }
        }
        if let Some(bundle) = bundle {
            bundle.finish(&mut out)?;
        }
        out.flush()?;
        Ok::<_, anyhow::Error>((written, own))
    })?;
    let (written, own) = written;
    eprintln!(
        "exported {written} indicators from {}{}",
        scry_store::redact(&url),
        if own > 0 {
            format!(
                "; {own} of your own (private, internal, allowlisted) left out: --include-own adds them"
            )
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// One CSV row (quoted as needed), as bytes.
fn csv_row(fields: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(fields)?;
    writer
        .into_inner()
        .map_err(|e| anyhow!("encoding CSV: {e}"))
}

/// A Unix-milliseconds time as `YYYY-MM-DD HH:MM:SS` UTC.
/// `--since DATE` as Unix milliseconds at the start of that UTC day.
fn since_ms(date: Option<&str>) -> anyhow::Result<Option<i64>> {
    date.map(|date| {
        scry_core::calendar::days_from_timestamp(date)
            .map(|days| days * 86_400_000)
            .ok_or_else(|| usage(anyhow!("--since {date:?}: expected a date as YYYY-MM-DD")))
    })
    .transpose()
}

pub(crate) fn format_ms(ms: i64) -> String {
    let t = scry_core::calendar::UtcTime::from_ms(ms);
    let (y, m, d) = t.date;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        t.hour, t.minute, t.second
    )
}

/// Turns the arguments into inputs: files must exist; `-`, or no argument with piped stdin, is stdin.
fn resolve_inputs(args: &[String]) -> anyhow::Result<Vec<InputSource>> {
    if args.is_empty() {
        if io::stdin().is_terminal() {
            return Err(usage(anyhow!(
                "no input: name files to read, or pipe indicators into `scry enrich -`"
            )));
        }
        return Ok(vec![InputSource::from_arg("-")]);
    }
    if args.iter().filter(|a| *a == "-").count() > 1 {
        return Err(usage(anyhow!("standard input (-) can be read only once")));
    }
    args.iter()
        .map(|arg| {
            let input = InputSource::from_arg(arg);
            if let Some(path) = &input.path {
                std::fs::File::open(path).map_err(|e| {
                    usage(anyhow!(
                        "cannot read {}: {e} (check the path, or use - for standard input)",
                        path.display()
                    ))
                })?;
                if path.is_dir() {
                    return Err(usage(anyhow!(
                        "cannot read {}: it is a folder; name the files in it ({}/*.txt) instead",
                        path.display(),
                        path.display()
                    )));
                }
            }
            Ok(input)
        })
        .collect()
}

/// The width a table keeps to: `COLUMNS` when set, else the terminal's when stdout is one; none
/// for a file or a pipe, where each row stays on one line.
fn table_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(columns);
    }
    if !io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(io::stdout()).map(|(terminal_size::Width(w), _)| usize::from(w))
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

fn colour_stdout() -> bool {
    io::stdout().is_terminal() && !no_color()
}

/// A bar on stderr sized by the bytes of the input files (a spinner for stdin); hidden when stderr
/// is not a terminal.
fn progress_bar(inputs: &[InputSource], hidden: bool) -> ProgressBar {
    if hidden || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total: Option<u64> = inputs.iter().map(InputSource::size_on_disk).sum();
    let bar = match total {
        Some(bytes) => ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
                )
                .expect("valid template"),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} {msg}")
                .expect("valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn tick(bar: ProgressBar, progress: Arc<Progress>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        bar.set_position(progress.read.bytes.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{} read, {} done",
            progress.items.load(Ordering::Relaxed),
            progress.done.load(Ordering::Relaxed)
        ));
    }
}

fn summary_line(s: &Summary, elapsed: Duration) -> String {
    let mut line = format!(
        "read {}, unique {}, duplicates {}, enriched {}, cached {}, skipped {}, rejected {}, failed {}, credits used {}",
        s.read,
        s.unique,
        s.duplicates,
        s.enriched,
        s.cached,
        s.skipped,
        s.rejected,
        s.failed,
        s.credits
    );
    if s.ignored_objects > 0 {
        line.push_str(&format!(
            ", non-indicator STIX objects {}",
            s.ignored_objects
        ));
    }
    line.push_str(&format!(" in {:.2} s", elapsed.as_secs_f64()));
    line
}

/// Peak resident memory of this process (Linux `VmHWM`).
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn config_check(loaded: &LoadedConfig, store: Option<&str>) -> anyhow::Result<ExitCode> {
    // Everything is built first: "configuration OK" is printed only when all of it is.
    let gate = loaded.egress_gate().map_err(usage)?;
    let default_tlp = loaded.default_tlp().map_err(usage)?;
    let services = runtime()?.block_on(queue::services(loaded, None, Rules::Off))?;
    let origin = loaded.path.as_ref().map_or_else(
        || "built-in defaults (no file found)".to_owned(),
        |p| p.display().to_string(),
    );
    out!("configuration OK: {origin}");
    out!("store: {}", scry_store::redact(&loaded.store_url(store)));
    out!("allowlist: {} entries", gate.policy().len());
    out!(
        "default TLP: {}",
        default_tlp.map_or_else(|| "none".to_owned(), |t| t.to_string())
    );
    out!(
        "enrichment concurrency: {}",
        loaded.config.enrich.concurrency
    );
    let names: Vec<String> = services
        .engine
        .sources()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    out!("sources: {}", names.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn config_init(path: &std::path::Path, force: bool) -> anyhow::Result<ExitCode> {
    if path.exists() && !force {
        return Err(usage(anyhow!(
            "{} already exists; use --force to replace it",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, config::EXAMPLE).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {}; check it with `scry --config {} config check`",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
