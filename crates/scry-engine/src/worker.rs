//! The durable pipeline: `ingest` turns inputs into enrichment jobs in the store's queue, and a
//! [`Worker`] leases jobs (enrichments and rule actions), runs them, stores the results and only
//! then marks the jobs done (DESIGN.md invariant 3).
//!
//! A worker killed at any point loses nothing accepted: a job it held is leased again when the
//! lease runs out, and a job whose results were stored but not yet acknowledged is run again
//! harmlessly — the sources answer it from the answer archive, where every paid answer is written
//! as it arrives, and rule actions are keyed by the job, so they do not act twice. A scheduled
//! refresh enqueues indicators last enriched longer ago than the refresh interval, and each pass
//! pulls the threat feeds that are due, queueing what they newly list when a feed asks for that.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scry_core::{Observable, Tlp};
use scry_rules::Trigger;
use scry_sources::feeds::{FeedSettings, PullOutcome, PullReport};
use scry_sources::{EnrichOptions, Feeds};
use scry_store::{Job, JobOutcome, NewJob, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::automation::{ACTION_JOB, Automation, AutomationError, JobsReport, Occasion, now_ms};
use crate::enrich::{EngineError, Recorder, spawn_reader};
use crate::input::{Candidate, InputError, InputFormat, InputSource, Item, Position, Rejection};
use crate::record::{Record, Status};
use crate::{Engine, Progress, Summary};

/// The job kind of an enrichment.
pub const ENRICH_JOB: &str = "enrich";

/// Jobs enqueued per store call while ingesting.
const ENQUEUE_BATCH: usize = 1_000;

/// How long a stopping worker waits for the jobs it is running before it lets them go (their
/// leases released), so a stop takes effect within seconds whatever a peer does.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often a worker waiting for its jobs looks up, to see a stop or save what finished.
const STOP_POLL: Duration = Duration::from_millis(500);

/// Finished enrichments saved at once; also saved when the oldest has waited [`SAVE_WAIT`].
const SAVE_BATCH: usize = 200;
const SAVE_WAIT: Duration = Duration::from_secs(2);

/// The payload of an enrichment job: the indicator and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnrichJob {
    /// The normalized indicator.
    value: String,
    tlp: Option<String>,
    /// The text as given, and where.
    input: String,
    file: String,
    line: u64,
    object: Option<u64>,
    /// `ingest`, `schedule` or `feed:NAME`.
    origin: String,
    /// Ask the sources even when a cached answer is fresh.
    force: bool,
}

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub inputs: Vec<InputSource>,
    pub format: InputFormat,
    pub default_tlp: Option<Tlp>,
    pub force: bool,
    /// Enrichment attempts per indicator.
    pub max_attempts: u32,
    /// Who queued it, for the automation history: `ingest`, `api:TOKEN`, …
    pub origin: String,
    /// At most this many distinct indicators: past it nothing is queued and the ingest fails
    /// with [`EngineError::TooManyIndicators`]. `None` streams any amount (the command line).
    pub max_indicators: Option<u64>,
}

/// How an ingest went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Indicators read (before de-duplication), plus rejected pieces.
    pub read: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Enrichment jobs added to the queue.
    pub queued: u64,
    pub bytes: u64,
}

/// The distinct indicators in `input` read as `format`, counted without queuing anything: the
/// server's check of an upload against its cap before it takes the upload on. Blocking: call it
/// off the async threads.
pub fn count_indicators(input: &InputSource, format: InputFormat) -> Result<u64, InputError> {
    let mut seen = crate::enrich::Fingerprints::default();
    let counters = crate::input::ReadCounters::default();
    crate::input::read_input(input, format, &counters, &mut |item| {
        if let Item::Candidate(candidate) = item {
            seen.insert(crate::enrich::fingerprint(&candidate.observable));
        }
    })?;
    Ok(seen.len() as u64)
}

/// Reads inputs and queues one enrichment job per unique indicator; rejected input goes to
/// `on_rejected`. Every job is in the store when this returns.
pub async fn ingest(
    store: &dyn Store,
    request: IngestRequest,
    progress: Arc<Progress>,
    on_rejected: &mut (dyn FnMut(&Rejection) + Send),
) -> Result<IngestSummary, EngineError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(1024);
    let reader = spawn_reader(
        request.inputs.clone(),
        request.format,
        Arc::clone(&progress),
        tx,
    );
    // Each ingest is an occasion of its own: indicators ingested again later are queued again.
    let run = format!("{}-{}", now_ms(), std::process::id());
    let mut summary = IngestSummary::default();
    let mut jobs = Vec::with_capacity(ENQUEUE_BATCH);
    while let Some(item) = rx.recv().await {
        match item {
            Item::Rejected(rejection) => {
                summary.rejected += 1;
                on_rejected(&rejection);
            }
            Item::Candidate(candidate) => {
                let tlp = candidate.tlp.or(request.default_tlp);
                let payload = EnrichJob {
                    value: candidate.observable.value(),
                    tlp: tlp.map(|t| t.as_str().to_owned()),
                    input: candidate.input,
                    file: candidate.position.file.to_string(),
                    line: candidate.position.line,
                    object: candidate.position.object,
                    origin: request.origin.clone(),
                    force: request.force,
                };
                jobs.push(NewJob {
                    kind: ENRICH_JOB.into(),
                    dedupe_key: Some(format!(
                        "enrich|{}|{run}",
                        scry_stix::observable_id(&candidate.observable)
                    )),
                    payload: serde_json::to_value(&payload).expect("jobs serialize"),
                    run_after: now_ms(),
                    max_attempts: request.max_attempts,
                });
                progress.done.fetch_add(1, Ordering::Relaxed);
                match request.max_indicators {
                    // Capped: all or nothing, so a refused request has queued no work.
                    Some(max) if jobs.len() as u64 > max => {
                        drop(rx);
                        let _ = reader.join();
                        return Err(EngineError::TooManyIndicators { max });
                    }
                    Some(_) => {}
                    None if jobs.len() >= ENQUEUE_BATCH => {
                        summary.queued += store.enqueue_jobs(&jobs).await?;
                        jobs.clear();
                    }
                    None => {}
                }
            }
        }
    }
    for batch in jobs.chunks(ENQUEUE_BATCH) {
        summary.queued += store.enqueue_jobs(batch).await?;
    }
    let _ = reader.join();
    summary.read = progress.items.load(Ordering::Relaxed);
    summary.duplicates = progress.duplicates.load(Ordering::Relaxed);
    summary.bytes = progress.read.bytes.load(Ordering::Relaxed);
    Ok(summary)
}

/// How a worker takes jobs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Job kinds to take (all when empty).
    pub kinds: Vec<&'static str>,
    pub lease: Duration,
    /// Jobs in progress at once.
    pub concurrency: usize,
    /// Re-enrich indicators last enriched longer ago than this.
    pub refresh_after: Option<Duration>,
    pub refresh_batch: u32,
    pub max_attempts: u32,
    /// How long an idle worker waits before looking again.
    pub poll: Duration,
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkReport {
    /// Enrichment results, as for a direct run.
    pub enrich: Summary,
    /// Enrichment attempts that failed and wait for a retry.
    pub enrich_retrying: u64,
    pub actions: JobsReport,
    /// Indicators queued for a scheduled refresh.
    pub refreshes_queued: u64,
    /// Blocklist entries that expired.
    pub blocks_expired: u64,
    /// Feeds pulled with a new body, and indicators they newly listed that were queued.
    pub feeds_updated: u64,
    pub feed_entries_queued: u64,
    /// Feed pulls that failed, each with its reason.
    pub feed_failures: Vec<String>,
}

impl WorkReport {
    fn absorb(&mut self, other: WorkReport) {
        let (e, o) = (&mut self.enrich, other.enrich);
        e.unique += o.unique;
        e.enriched += o.enriched;
        e.cached += o.cached;
        e.skipped += o.skipped;
        e.rejected += o.rejected;
        e.failed += o.failed;
        e.credits += o.credits;
        e.stored.absorb(o.stored);
        e.rules.matched += o.rules.matched;
        e.rules.enqueued += o.rules.enqueued;
        e.rules.errors += o.rules.errors;
        self.enrich_retrying += other.enrich_retrying;
        self.actions.done += other.actions.done;
        self.actions.failed += other.actions.failed;
        self.actions.retrying += other.actions.retrying;
        self.refreshes_queued += other.refreshes_queued;
        self.blocks_expired += other.blocks_expired;
        self.feeds_updated += other.feeds_updated;
        self.feed_entries_queued += other.feed_entries_queued;
        self.feed_failures.extend(other.feed_failures);
    }
}

/// Takes jobs from the store's queue and runs them.
pub struct Worker {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    automation: Option<Arc<Automation>>,
    settings: WorkerSettings,
    owner: String,
    feeds: Option<Arc<Feeds>>,
}

/// Enrichments finished but not yet saved: their jobs are acknowledged after the save.
#[derive(Default)]
struct Unsaved {
    jobs: Vec<(Job, JobOutcome)>,
    /// When the oldest of them finished.
    since: Option<Instant>,
}

impl Unsaved {
    fn push(&mut self, job: Job, outcome: JobOutcome) {
        self.jobs.push((job, outcome));
        self.since.get_or_insert_with(Instant::now);
    }

    /// True when the oldest has waited `wait`.
    fn waited(&self, wait: Duration) -> bool {
        self.since.is_some_and(|t| t.elapsed() >= wait)
    }
}

/// A job that finished running.
enum Finished {
    Enriched(Job, Option<Occasion>, Box<Record>),
    Acted(Job, Result<JobOutcome, AutomationError>),
    /// A job this worker cannot run, with the reason.
    Refused(Job, String),
}

impl Worker {
    /// A worker over `store`. With rules in a dry run (shadow mode) it takes no action job: it
    /// queues none, and actions queued before wait for a worker that acts.
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        automation: Option<Arc<Automation>>,
        mut settings: WorkerSettings,
    ) -> Worker {
        if automation.as_ref().is_some_and(|a| a.is_dry_run()) {
            if settings.kinds.is_empty() {
                settings.kinds = vec![ENRICH_JOB];
            } else {
                settings.kinds.retain(|kind| *kind != ACTION_JOB);
            }
        }
        Worker {
            engine,
            store,
            automation,
            settings,
            owner: format!("scry-{}-{}", std::process::id(), now_ms()),
            feeds: None,
        }
    }

    /// Pulls these feeds when they are due, on every pass of [`Worker::run`].
    pub fn with_feeds(mut self, feeds: Option<Arc<Feeds>>) -> Worker {
        self.feeds = feeds;
        self
    }

    /// Runs due jobs until none is left that is due now; jobs waiting for a retry, or leased by
    /// another worker, stay for a later pass. Expired blocklist entries are removed first.
    pub async fn drain(&self, progress: &Progress) -> Result<WorkReport, EngineError> {
        self.drain_until(progress, &AtomicBool::new(false)).await
    }

    /// [`Worker::drain`], taking no new job once `stopping` is set.
    async fn drain_until(
        &self,
        progress: &Progress,
        stopping: &AtomicBool,
    ) -> Result<WorkReport, EngineError> {
        let mut report = WorkReport::default();
        if let Some(automation) = &self.automation {
            report.blocks_expired = automation.expire_blocks().await?;
        }
        let mut sink = |_: Record| -> io::Result<()> { Ok(()) };
        let mut recorder = Recorder::new(
            &self.engine,
            progress,
            &mut sink,
            Some(self.store.as_ref()),
            self.automation.as_deref(),
        );
        let concurrency = self.settings.concurrency.max(1);
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, Job> = HashMap::new();
        // Actions take locks (`action_locks`), in queue order: a rule's steps happen in the order
        // written, and two actions never edit one indicator's workflow state at once.
        let mut busy: HashSet<String> = HashSet::new();
        let mut held_back: VecDeque<Job> = VecDeque::new();
        let mut unsaved = Unsaved::default();
        // Jobs are saved, and leases renewed, well inside a lease.
        let save_wait = SAVE_WAIT.min(self.settings.lease / 3);
        let mut renewed = Instant::now();
        let mut queue_empty = false;
        // Whether a job finished since the queue last looked empty: saving results and running
        // actions may have queued more.
        let mut worked = false;
        // When this pass first saw the stop.
        let mut stop_seen: Option<Instant> = None;
        loop {
            if stopping.load(Ordering::Relaxed) {
                queue_empty = true;
                worked = false;
                let since = *stop_seen.get_or_insert_with(Instant::now);
                if !tasks.is_empty() && since.elapsed() >= STOP_GRACE {
                    // Jobs still running past the grace are let go: their leases are released
                    // now, so this or another worker takes them up again, and nothing waits on
                    // a stuck peer.
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    let abandoned: Vec<i64> = in_flight
                        .drain()
                        .map(|(_, job)| job.id)
                        .chain(held_back.drain(..).map(|job| job.id))
                        .collect();
                    tracing::warn!(
                        jobs = abandoned.len(),
                        "stopping: jobs still running after {} s are left for a later run",
                        STOP_GRACE.as_secs()
                    );
                    self.store
                        .renew_leases(&self.owner, &abandoned, now_ms())
                        .await?;
                    self.save(&mut recorder, &mut unsaved).await?;
                    break;
                }
            }
            let free = concurrency.saturating_sub(tasks.len() + held_back.len());
            if !queue_empty && (free >= concurrency.div_ceil(4) || tasks.is_empty()) {
                let jobs = self
                    .store
                    .claim_jobs(
                        &self.owner,
                        &self.settings.kinds,
                        now_ms(),
                        self.settings.lease.as_millis() as i64,
                        free as u32,
                    )
                    .await?;
                queue_empty = jobs.is_empty();
                if queue_empty {
                    worked = false;
                }
                for job in jobs {
                    let ahead: HashSet<String> = held_back.iter().flat_map(action_locks).collect();
                    if !take_locks(&job, &mut busy, &ahead) {
                        held_back.push_back(job);
                        continue;
                    }
                    let handle = self.spawn(&mut tasks, job.clone());
                    in_flight.insert(handle, job);
                }
            }
            if tasks.is_empty() {
                // Saving runs the rules, which may queue actions: look again after a save.
                let saved = !unsaved.jobs.is_empty();
                self.save(&mut recorder, &mut unsaved).await?;
                if queue_empty {
                    if !worked && !saved {
                        break;
                    }
                    queue_empty = false;
                }
                continue;
            }
            worked = true;
            if renewed.elapsed() >= self.settings.lease / 3 {
                let held: Vec<i64> = in_flight
                    .values()
                    .chain(unsaved.jobs.iter().map(|(job, _)| job))
                    .chain(held_back.iter())
                    .map(|job| job.id)
                    .collect();
                let until = now_ms() + self.settings.lease.as_millis() as i64;
                self.store.renew_leases(&self.owner, &held, until).await?;
                renewed = Instant::now();
            }
            // Look up at least twice a second, so a stop is seen at once.
            let poll = save_wait.min(STOP_POLL);
            let done = match tokio::time::timeout(poll, tasks.join_next_with_id()).await {
                Ok(done) => done.expect("tasks is not empty"),
                Err(_) => {
                    // Nothing finished for a while: save what did, and renew leases.
                    if unsaved.waited(save_wait) {
                        self.save(&mut recorder, &mut unsaved).await?;
                    }
                    continue;
                }
            };
            let finished = match done {
                Ok((id, finished)) => {
                    in_flight.remove(&id);
                    finished
                }
                Err(error) => {
                    let job = in_flight
                        .remove(&error.id())
                        .expect("every task has its job");
                    tracing::error!(job = job.id, %error, "job task failed");
                    Finished::Refused(job, format!("internal error while running: {error}"))
                }
            };
            let released = match &finished {
                Finished::Acted(job, _) | Finished::Refused(job, _) => action_locks(job),
                Finished::Enriched(..) => Vec::new(),
            };
            if !released.is_empty() {
                for lock in &released {
                    busy.remove(lock);
                }
                // Held-back actions whose locks are now free start, in queue order.
                let mut waiting = VecDeque::with_capacity(held_back.len());
                let mut ahead = HashSet::new();
                while let Some(job) = held_back.pop_front() {
                    if take_locks(&job, &mut busy, &ahead) {
                        let handle = self.spawn(&mut tasks, job.clone());
                        in_flight.insert(handle, job);
                    } else {
                        ahead.extend(action_locks(&job));
                        waiting.push_back(job);
                    }
                }
                held_back = waiting;
            }
            match finished {
                Finished::Enriched(job, occasion, record) => {
                    report.enrich.unique += 1;
                    let outcome = enrichment_outcome(&job, &record);
                    if matches!(outcome, JobOutcome::Retry { .. }) {
                        // Not stored: a failed attempt must not replace a good earlier state.
                        recorder.add_history_only(&record);
                        report.enrich_retrying += 1;
                    } else {
                        recorder.add_for(*record, occasion).await?;
                    }
                    unsaved.push(job, outcome);
                }
                Finished::Acted(job, outcome) => {
                    let outcome = outcome?;
                    match &outcome {
                        JobOutcome::Done => report.actions.done += 1,
                        JobOutcome::Failed { .. } => report.actions.failed += 1,
                        JobOutcome::Retry { .. } => report.actions.retrying += 1,
                    }
                    self.finish(&job, &outcome).await?;
                }
                Finished::Refused(job, error) => {
                    report.actions.failed += 1;
                    self.finish(&job, &JobOutcome::Failed { error }).await?;
                }
            }
            if unsaved.jobs.len() >= SAVE_BATCH || unsaved.waited(save_wait) {
                self.save(&mut recorder, &mut unsaved).await?;
            }
        }
        report.absorb(WorkReport {
            enrich: std::mem::take(&mut recorder.summary),
            ..WorkReport::default()
        });
        Ok(report)
    }

    /// Stores the finished enrichments (running the rules on them), then acknowledges their jobs:
    /// never the other way round.
    async fn save(
        &self,
        recorder: &mut Recorder<'_>,
        unsaved: &mut Unsaved,
    ) -> Result<(), EngineError> {
        recorder.flush().await?;
        unsaved.since = None;
        for (job, outcome) in unsaved.jobs.drain(..) {
            self.finish(&job, &outcome).await?;
        }
        Ok(())
    }

    async fn finish(&self, job: &Job, outcome: &JobOutcome) -> Result<(), EngineError> {
        if !self
            .store
            .finish_job(job.id, &self.owner, outcome, now_ms())
            .await?
        {
            tracing::warn!(
                job = job.id,
                "the job's lease ran out before it finished; another worker runs it again"
            );
        }
        Ok(())
    }

    /// Starts one job; returns its task id.
    fn spawn(&self, tasks: &mut JoinSet<Finished>, job: Job) -> tokio::task::Id {
        match job.kind.as_str() {
            ENRICH_JOB => {
                let engine = Arc::clone(&self.engine);
                tasks
                    .spawn(async move {
                        match enrichment(&job) {
                            Ok((candidate, options, occasion)) => {
                                let record = engine.enrich_one(candidate, options).await;
                                Finished::Enriched(job, Some(occasion), Box::new(record))
                            }
                            Err(error) => Finished::Refused(job, error),
                        }
                    })
                    .id()
            }
            ACTION_JOB => match &self.automation {
                Some(automation) => {
                    let automation = Arc::clone(automation);
                    tasks
                        .spawn(async move {
                            let outcome = automation.run_action(&job).await;
                            Finished::Acted(job, outcome)
                        })
                        .id()
                }
                None => tasks
                    .spawn(async move {
                        Finished::Refused(job, "no rules are loaded in this worker".into())
                    })
                    .id(),
            },
            other => {
                let error = format!("unknown job kind {other:?}");
                tasks
                    .spawn(async move { Finished::Refused(job, error) })
                    .id()
            }
        }
    }

    /// Queues a refresh of indicators last enriched longer ago than the refresh interval; returns
    /// how many were queued (an indicator already queued for its refresh is not queued twice).
    pub async fn schedule_refresh(&self) -> Result<u64, EngineError> {
        let Some(after) = self.settings.refresh_after else {
            return Ok(0);
        };
        let before = now_ms() - after.as_millis() as i64;
        let stale = self
            .store
            .stale_indicators(before, self.settings.refresh_batch)
            .await?;
        let jobs: Vec<NewJob> = stale
            .iter()
            .map(|s| {
                let payload = EnrichJob {
                    value: s.value.clone(),
                    tlp: s.tlp.clone(),
                    input: s.value.clone(),
                    file: "schedule".into(),
                    line: 0,
                    object: None,
                    origin: "schedule".into(),
                    force: true,
                };
                NewJob {
                    kind: ENRICH_JOB.into(),
                    // Until the refresh is stored, its indicator keeps the same check time.
                    dedupe_key: Some(format!("refresh|{}|{}", s.stix_id, s.checked_at)),
                    payload: serde_json::to_value(&payload).expect("jobs serialize"),
                    run_after: now_ms(),
                    max_attempts: self.settings.max_attempts,
                }
            })
            .collect();
        Ok(self.store.enqueue_jobs(&jobs).await?)
    }

    /// Works until `stop` completes: queues scheduled refreshes, drains the queue, and waits
    /// `poll` when idle. `on_pass` sees what each pass did. On a stop no new job is taken and the
    /// jobs in progress finish, so every job taken is stored and acknowledged.
    pub async fn run(
        &self,
        stop: impl Future<Output = ()>,
        progress: &Progress,
        on_pass: &mut dyn FnMut(&WorkReport),
    ) -> Result<WorkReport, EngineError> {
        let mut total = WorkReport::default();
        let stopping = AtomicBool::new(false);
        tokio::pin!(stop);
        loop {
            let mut pass = WorkReport {
                refreshes_queued: self.schedule_refresh().await?,
                ..WorkReport::default()
            };
            for source in self.engine.sources() {
                match source.reload() {
                    Ok(true) => tracing::info!(source = source.name(), "new local data taken up"),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(source = source.name(), "local data not reloaded: {error}");
                    }
                }
            }
            if let Some(feeds) = &self.feeds {
                let (reports, queued) = pull_feeds(
                    feeds,
                    self.store.as_ref(),
                    false,
                    &[],
                    self.settings.max_attempts,
                )
                .await?;
                pass.feed_entries_queued = queued;
                for report in reports {
                    match report.outcome {
                        PullOutcome::Updated { .. } => pass.feeds_updated += 1,
                        PullOutcome::Failed(error) => {
                            tracing::warn!(feed = %report.feed, "feed pull failed: {error}");
                            pass.feed_failures.push(format!("{}: {error}", report.feed));
                        }
                        PullOutcome::NotModified | PullOutcome::NotDue => {}
                    }
                }
            }
            let drain = self.drain_until(progress, &stopping);
            tokio::pin!(drain);
            let drained = loop {
                tokio::select! {
                    drained = &mut drain => break drained,
                    () = &mut stop, if !stopping.load(Ordering::Relaxed) => {
                        stopping.store(true, Ordering::Relaxed);
                    }
                }
            };
            pass.absorb(drained?);
            on_pass(&pass);
            total.absorb(pass);
            if stopping.load(Ordering::Relaxed) {
                return Ok(total);
            }
            tokio::select! {
                () = &mut stop => return Ok(total),
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }
}

/// Pulls the feeds named in `only` (all when empty) that are due, or all with `force`, and queues
/// what each feed with `ingest` newly lists. Returns each feed's outcome and the jobs queued.
pub async fn pull_feeds(
    feeds: &Feeds,
    store: &dyn Store,
    force: bool,
    only: &[String],
    max_attempts: u32,
) -> Result<(Vec<PullReport>, u64), EngineError> {
    let reports = feeds.pull(force, only).await;
    let mut queued = 0;
    for report in &reports {
        let PullOutcome::Updated { new, .. } = &report.outcome else {
            continue;
        };
        let Some(feed) = feeds.settings().iter().find(|f| f.name == report.feed) else {
            continue;
        };
        if feed.ingest && !new.is_empty() {
            queued += queue_feed_entries(store, feed, new, max_attempts).await?;
        }
    }
    Ok((reports, queued))
}

/// Queues one enrichment job per newly listed indicator, keyed by the pull so that a feed
/// listing an indicator again later queues it again.
async fn queue_feed_entries(
    store: &dyn Store,
    feed: &FeedSettings,
    new: &[Observable],
    max_attempts: u32,
) -> Result<u64, EngineError> {
    let pull = now_ms();
    let origin = format!("feed:{}", feed.name);
    let mut queued = 0;
    for chunk in new.chunks(ENQUEUE_BATCH) {
        let jobs: Vec<NewJob> = chunk
            .iter()
            .map(|observable| {
                let payload = EnrichJob {
                    value: observable.value(),
                    tlp: feed.tlp.map(|t| t.as_str().to_owned()),
                    input: observable.value(),
                    file: origin.clone(),
                    line: 0,
                    object: None,
                    origin: origin.clone(),
                    force: false,
                };
                NewJob {
                    kind: ENRICH_JOB.into(),
                    dedupe_key: Some(format!(
                        "enrich|{}|{origin}|{pull}",
                        scry_stix::observable_id(observable)
                    )),
                    payload: serde_json::to_value(&payload).expect("jobs serialize"),
                    run_after: now_ms(),
                    max_attempts,
                }
            })
            .collect();
        queued += store.enqueue_jobs(&jobs).await?;
    }
    Ok(queued)
}

/// How an enrichment job ends: a failure is retried while attempts remain.
fn enrichment_outcome(job: &Job, record: &Record) -> JobOutcome {
    if record.status != Status::Failed {
        return JobOutcome::Done;
    }
    let error = record
        .error
        .clone()
        .unwrap_or_else(|| "enrichment failed".into());
    if job.attempts < job.max_attempts {
        JobOutcome::Retry {
            at: now_ms() + retry_delay_ms(job.attempts),
            error,
        }
    } else {
        JobOutcome::Failed { error }
    }
}

/// The locks an action job holds while it runs: the steps of one rule on one indicator run in
/// the order written (`ID|RULE`), and actions that may edit the indicator's workflow state run
/// one at a time (`ID`). A message (`notify`) edits nothing, so a slow channel holds up only
/// the later steps of its own rule.
fn action_locks(job: &Job) -> Vec<String> {
    if job.kind != ACTION_JOB {
        return Vec::new();
    }
    let text = |key: &str| job.payload.get(key).and_then(Value::as_str).unwrap_or("");
    let subject = text("stix_id");
    let mut locks = vec![format!("{subject}|{}", text("rule"))];
    let action = job.payload.pointer("/action/do").and_then(Value::as_str);
    if action != Some("notify") {
        locks.push(subject.to_owned());
    }
    locks
}

/// Takes `job`'s locks when all are free (and none is wanted by a job waiting ahead of it in
/// `ahead`); returns whether it may start.
fn take_locks(job: &Job, busy: &mut HashSet<String>, ahead: &HashSet<String>) -> bool {
    let locks = action_locks(job);
    if locks.iter().any(|l| busy.contains(l) || ahead.contains(l)) {
        return false;
    }
    busy.extend(locks);
    true
}

/// Retry delay after attempt `attempt` (1-based): 5 s, 10 s, 20 s … capped at 10 minutes.
fn retry_delay_ms(attempt: u32) -> i64 {
    (5_000_i64 << attempt.saturating_sub(1).min(7)).min(600_000)
}

/// The candidate, options and occasion of an enrichment job.
fn enrichment(job: &Job) -> Result<(Candidate, EnrichOptions, Occasion), String> {
    let payload: EnrichJob = serde_json::from_value(job.payload.clone())
        .map_err(|e| format!("job {} has an unreadable payload: {e}", job.id))?;
    let observable = Observable::parse(&payload.value).map_err(|e| {
        format!(
            "job {}: {:?} is not an indicator: {e}",
            job.id, payload.value
        )
    })?;
    let tlp = payload
        .tlp
        .as_deref()
        .map(str::parse::<Tlp>)
        .transpose()
        .map_err(|e| format!("job {}: tlp: {e}", job.id))?;
    let occasion = Occasion {
        key: format!("job:{}", job.id),
        trigger: (payload.origin == "schedule").then_some(Trigger::Schedule),
        source: payload.file.clone(),
    };
    let candidate = Candidate {
        position: Position {
            file: Arc::from(payload.file.as_str()),
            line: payload.line,
            object: payload.object,
        },
        input: payload.input,
        observable,
        tlp,
        context: None,
    };
    Ok((
        candidate,
        EnrichOptions {
            force: payload.force,
        },
        occasion,
    ))
}
