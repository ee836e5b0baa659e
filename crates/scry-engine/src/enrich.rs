//! An enrichment run: inputs in, one scored record per unique indicator out.
//!
//! Reading runs on its own thread and feeds a bounded channel, so a slow source applies
//! back-pressure instead of letting the input pile up in memory. Duplicates are recognized by a
//! 64-bit fingerprint of (STIX type, normalized value): 8 bytes per unique indicator, not the
//! indicator itself. Every source call passes the egress gate first; sources that leave the machine
//! run concurrently up to the configured limit. A source that reports itself unusable is turned
//! off for the rest of the run and named in the summary; nothing else stops a run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use scry_core::{Destination, EgressGate, Observable, Severity, SkipReason, Subject, Tlp, score};
use scry_sources::{EnrichOptions, Finding, Source, SourceError};
use scry_store::{IndicatorRecord, SaveReport, Store};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::automation::Occasion;
use crate::input::{self, Candidate, InputFormat, InputSource, Item, ReadCounters, Rejection};
use crate::record::{ReasonRecord, Record, SourceRecord, Status};

/// What to enrich and how.
#[derive(Debug, Clone)]
pub struct EnrichRequest {
    pub inputs: Vec<InputSource>,
    pub format: InputFormat,
    /// TLP for indicators whose input states none.
    pub default_tlp: Option<Tlp>,
    pub options: EnrichOptions,
    /// Indicators in flight at once.
    pub concurrency: usize,
    /// Rules to run on what is stored (needs a store).
    pub automation: Option<Arc<crate::automation::Automation>>,
}

/// Live counters of a run, for progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub read: ReadCounters,
    /// Indicators read (before de-duplication), plus rejected pieces.
    pub items: AtomicU64,
    pub duplicates: AtomicU64,
    /// Records produced.
    pub done: AtomicU64,
}

/// How a run went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub enriched: u64,
    pub cached: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub failed: u64,
    pub credits: u64,
    pub ignored_objects: u64,
    pub bytes: u64,
    /// Sources that could not be used, with the reason.
    pub unusable_sources: Vec<(String, String)>,
    /// What saving to the store did (all zero without a store).
    pub stored: SaveReport,
    /// What the rules did with the stored results.
    pub rules: crate::automation::RulesReport,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("writing results failed: {0}")]
    Output(#[from] io::Error),
    #[error(
        "saving results to the store failed (the run stopped so nothing is lost silently): {0}"
    )]
    Store(#[from] scry_store::StoreError),
    #[error("running rules on stored results failed (the run stopped): {0}")]
    Automation(#[from] crate::automation::AutomationError),
}

/// Records saved to the store at once.
const STORE_BATCH: usize = 500;

/// The enrichment engine: the gate and the sources.
pub struct Engine {
    gate: EgressGate,
    sources: Vec<Arc<dyn Source>>,
    store: Option<Arc<dyn Store>>,
    disabled: Vec<AtomicBool>,
    unusable: Mutex<Vec<(String, String)>>,
}

type Fingerprints = HashSet<u64, BuildHasherDefault<PassThroughHasher>>;

/// The set's keys are already hashes; hashing them again would be wasted work.
#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn fingerprint(observable: &Observable) -> u64 {
    let mut hasher = DefaultHasher::new();
    observable.stix_type().hash(&mut hasher);
    observable.value().hash(&mut hasher);
    hasher.finish()
}

impl Engine {
    pub fn new(gate: EgressGate, sources: Vec<Arc<dyn Source>>) -> Engine {
        let disabled = sources.iter().map(|_| AtomicBool::new(false)).collect();
        Engine {
            gate,
            sources,
            store: None,
            disabled,
            unusable: Mutex::new(Vec::new()),
        }
    }

    /// Saves every record of every run to `store`.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Engine {
        self.store = Some(store);
        self
    }

    pub fn sources(&self) -> &[Arc<dyn Source>] {
        &self.sources
    }

    /// True when some source sends indicators off the machine.
    pub fn has_external_sources(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s.destination(), Destination::External { .. }))
    }

    /// Checks every source before a run; unusable ones are turned off and reported.
    pub async fn preflight(&self) {
        for (index, source) in self.sources.iter().enumerate() {
            if let Err(SourceError::Unusable(message)) = source.check().await {
                self.disable(index, message);
            }
        }
    }

    fn disable(&self, index: usize, message: String) {
        if !self.disabled[index].swap(true, Ordering::SeqCst) {
            let name = self.sources[index].name().to_owned();
            tracing::error!(source = %name, %message, "source unusable; it is off for the rest of the run");
            self.unusable
                .lock()
                .expect("not poisoned")
                .push((name, message));
        }
    }

    /// Runs an enrichment: every record goes to `sink` as it is ready (in completion order).
    pub async fn enrich(
        self: &Arc<Self>,
        request: EnrichRequest,
        progress: Arc<Progress>,
        sink: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<Summary, EngineError> {
        let (tx, mut rx) = mpsc::channel::<Item>(1024);
        let reader = spawn_reader(
            request.inputs.clone(),
            request.format,
            Arc::clone(&progress),
            tx,
        );
        let mut recorder = Recorder::new(
            self,
            &progress,
            sink,
            self.store.as_deref(),
            request.automation.as_deref(),
        );
        let concurrent = self.has_external_sources();
        let concurrency = request.concurrency.max(1);
        let mut tasks = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, (String, String)> = HashMap::new();
        while let Some(item) = rx.recv().await {
            match item {
                Item::Rejected(rejection) => recorder.add(rejected_record(rejection)).await?,
                Item::Candidate(mut candidate) => {
                    recorder.summary.unique += 1;
                    candidate.tlp = candidate.tlp.or(request.default_tlp);
                    if !concurrent {
                        recorder
                            .add(self.enrich_one(candidate, request.options).await)
                            .await?;
                        continue;
                    }
                    while tasks.len() >= concurrency {
                        let done = tasks.join_next_with_id().await.expect("tasks is not empty");
                        recorder.add(finished(done, &mut in_flight)).await?;
                    }
                    let label = (candidate.input.clone(), candidate.position.to_string());
                    let engine = Arc::clone(self);
                    let options = request.options;
                    let handle =
                        tasks.spawn(async move { engine.enrich_one(candidate, options).await });
                    in_flight.insert(handle.id(), label);
                }
            }
        }
        while let Some(done) = tasks.join_next_with_id().await {
            recorder.add(finished(done, &mut in_flight)).await?;
        }
        recorder.flush().await?;
        let mut summary = recorder.summary;
        // The reader has finished: the channel closed because it dropped its sender.
        let _ = reader.join();
        summary.read = progress.items.load(Ordering::Relaxed);
        summary.duplicates = progress.duplicates.load(Ordering::Relaxed);
        summary.bytes = progress.read.bytes.load(Ordering::Relaxed);
        summary.ignored_objects = progress.read.ignored_objects.load(Ordering::Relaxed);
        summary.unusable_sources = self.unusable.lock().expect("not poisoned").clone();
        Ok(summary)
    }

    /// Asks every source about one indicator and builds its record.
    pub async fn enrich_one(&self, candidate: Candidate, options: EnrichOptions) -> Record {
        self.enrich_with(candidate, options, None).await
    }

    /// Like [`Engine::enrich_one`], asking only the external source named `only` (when given);
    /// sources on this machine always run.
    pub async fn enrich_with(
        &self,
        candidate: Candidate,
        options: EnrichOptions,
        only: Option<&str>,
    ) -> Record {
        let observable = &candidate.observable;
        // Sources on this machine run first; the AS they find lets ASN allowlist entries keep
        // the indicator from the external ones.
        let mut subject = Subject {
            observable,
            tlp: candidate.tlp,
            asn: None,
        };
        let mut sources = BTreeMap::new();
        let mut reasons = Vec::new();
        let mut tags = Vec::new();
        let mut external = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            if !source.supports(observable) {
                continue;
            }
            let destination = source.destination();
            let is_external = matches!(destination, Destination::External { .. });
            if is_external && only.is_some_and(|name| name != source.name()) {
                continue;
            }
            let started = std::time::Instant::now();
            let outcome = if self.disabled[index].load(Ordering::Relaxed) {
                Err(Outcome::Failed("source unusable for this run".into()))
            } else {
                match self.gate.clear(subject, destination) {
                    Err(reason) => Err(Outcome::Skipped(reason)),
                    Ok(cleared) => match source.enrich(cleared, options).await {
                        Ok(finding) => Ok(finding),
                        Err(SourceError::Unusable(message)) => {
                            self.disable(index, message.clone());
                            Err(Outcome::Failed(format!("source unusable: {message}")))
                        }
                        Err(SourceError::Failed(message)) => Err(Outcome::Failed(message)),
                        Err(SourceError::InvalidIndicator(message)) => {
                            Err(Outcome::Rejected(message))
                        }
                        Err(SourceError::BudgetExhausted) => {
                            Err(Outcome::Skipped(SkipReason::Budget))
                        }
                    },
                }
            };
            let mut source_record = match outcome {
                Ok(finding) => {
                    subject.asn = subject.asn.or(finding.asn);
                    reasons.extend(finding.reasons.iter().cloned());
                    tags.extend(finding.tags.iter().cloned());
                    ok_record(finding)
                }
                Err(Outcome::Skipped(reason)) => SourceRecord::status("skipped").skip(reason),
                Err(Outcome::Failed(message)) => SourceRecord::status("failed").error(message),
                Err(Outcome::Rejected(message)) => SourceRecord::status("rejected").error(message),
            };
            source_record.elapsed_ms = Some(started.elapsed().as_millis() as u64);
            if is_external {
                external.push(source.name().to_owned());
            }
            sources.insert(source.name().to_owned(), source_record);
        }
        let (status, skip_reason, error) = self.status(&subject, &external, &sources);
        tags.sort();
        tags.dedup();
        let priority = score::priority(&reasons);
        reasons.sort_by_key(|r| std::cmp::Reverse(r.points));
        let reasons = reasons
            .into_iter()
            .map(|r| ReasonRecord {
                source: r.source,
                signal: r.signal,
                value: r.value,
                points: r.points,
            })
            .collect();
        Record {
            indicator: Some(observable.value()),
            kind: Some(observable.stix_type().to_owned()),
            stix_id: Some(scry_stix::observable_id(observable)),
            input: candidate.input,
            status,
            skip_reason,
            error,
            priority,
            severity: Severity::from_priority(priority).as_str().to_owned(),
            reasons,
            tags,
            sources,
            tlp: candidate.tlp.map(|t| t.as_str().to_owned()),
            position: candidate.position.to_string(),
            context: candidate.context,
        }
    }

    /// The record's status from what the external sources did. When external sources exist but
    /// none handles this kind of indicator, it is skipped as `unsupported-type`; with no external
    /// source configured at all, the status says whether one would have been allowed to see it.
    fn status(
        &self,
        subject: &Subject<'_>,
        external: &[String],
        sources: &BTreeMap<String, SourceRecord>,
    ) -> (Status, Option<String>, Option<String>) {
        if external.is_empty() {
            if !subject.observable.is_enrichable() || self.has_external_sources() {
                return (
                    Status::Skipped,
                    Some(SkipReason::UnsupportedType.as_str().into()),
                    None,
                );
            }
            let nominal = Destination::External { max_tlp: Tlp::Red };
            return match self.gate.clear(*subject, nominal) {
                Ok(_) => (Status::Enriched, None, None),
                Err(reason) => (Status::Skipped, Some(reason.as_str().into()), None),
            };
        }
        let answers: Vec<&SourceRecord> = external
            .iter()
            .filter_map(|name| sources.get(name))
            .collect();
        let ok: Vec<_> = answers.iter().filter(|s| s.status == "ok").collect();
        if !ok.is_empty() {
            let status = if ok.iter().all(|s| s.cached) {
                Status::Cached
            } else {
                Status::Enriched
            };
            return (status, None, None);
        }
        let first = |status: &str| answers.iter().find(|s| s.status == status);
        if let Some(failed) = first("failed") {
            return (Status::Failed, None, failed.error.clone());
        }
        if let Some(rejected) = first("rejected") {
            return (Status::Rejected, None, rejected.error.clone());
        }
        let reason = first("skipped").and_then(|s| s.skip_reason.clone());
        (Status::Skipped, reason, None)
    }
}

/// Counts records, hands them to the sink, and saves them to the store in batches, running the
/// rules on each saved batch.
pub(crate) struct Recorder<'a> {
    /// Whose sources' budget events go to the history with each batch.
    engine: &'a Engine,
    pub(crate) summary: Summary,
    pending: Vec<IndicatorRecord>,
    /// Why each pending record is saved, one for one.
    occasions: Vec<Occasion>,
    /// History of this batch: skips and vendor calls.
    events: Vec<scry_store::Event>,
    progress: &'a Progress,
    sink: &'a mut dyn FnMut(Record) -> io::Result<()>,
    store: Option<&'a dyn Store>,
    automation: Option<&'a crate::automation::Automation>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        progress: &'a Progress,
        sink: &'a mut dyn FnMut(Record) -> io::Result<()>,
        store: Option<&'a dyn Store>,
        automation: Option<&'a crate::automation::Automation>,
    ) -> Recorder<'a> {
        Recorder {
            engine,
            summary: Summary::default(),
            pending: Vec::new(),
            occasions: Vec::new(),
            events: Vec::new(),
            progress,
            sink,
            store,
            automation,
        }
    }

    /// A record of a direct run: the rules see it as a `manual` occasion.
    async fn add(&mut self, record: Record) -> Result<(), EngineError> {
        self.add_for(record, None).await
    }

    /// Counts a record, keeps its history and hands it to the sink; saves it (in the next batch)
    /// for `occasion`, or as a manual run's record when `None`.
    pub(crate) async fn add_for(
        &mut self,
        record: Record,
        occasion: Option<Occasion>,
    ) -> Result<(), EngineError> {
        let summary = &mut self.summary;
        match record.status {
            Status::Enriched => summary.enriched += 1,
            Status::Cached => summary.cached += 1,
            Status::Skipped => summary.skipped += 1,
            Status::Rejected => summary.rejected += 1,
            Status::Failed => summary.failed += 1,
        }
        summary.credits += record
            .sources
            .values()
            .map(|s| u64::from(s.credits))
            .sum::<u64>();
        self.progress.done.fetch_add(1, Ordering::Relaxed);
        if self.store.is_some()
            && let Some(stored) = stored_form(&record)
        {
            history_events(&record, &stored, &mut self.events);
            self.occasions.push(occasion.unwrap_or_else(|| Occasion {
                key: stored.observed_at.to_string(),
                trigger: Some(scry_rules::Trigger::Manual),
                source: input_name(&record.position).to_owned(),
            }));
            self.pending.push(stored);
        }
        (self.sink)(record)?;
        if self.pending.len() >= STORE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Keeps only the history of a record that is not saved (an attempt that will be retried).
    pub(crate) fn add_history_only(&mut self, record: &Record) {
        if let Some(stored) = stored_form(record) {
            history_events(record, &stored, &mut self.events);
        }
    }

    /// Saves the batch, its history and the budget events raised meanwhile, then hands both to
    /// the rules.
    pub(crate) async fn flush(&mut self) -> Result<(), EngineError> {
        if let Some(store) = self.store
            && !(self.pending.is_empty() && self.events.is_empty())
        {
            let report = store.save_indicators(&self.pending).await?;
            let budget = crate::usage::take_budget_notices(self.engine);
            self.events
                .extend(budget.iter().map(crate::usage::BudgetNotice::history_event));
            store.record_events(&self.events).await?;
            if let Some(automation) = self.automation {
                for rules in [
                    automation
                        .on_saved(&self.pending, &self.occasions, &report.changes)
                        .await?,
                    automation.on_budget(&budget).await?,
                ] {
                    self.summary.rules.matched += rules.matched;
                    self.summary.rules.enqueued += rules.enqueued;
                    self.summary.rules.errors += rules.errors;
                }
            }
            // The changes are kept in the score history; the summary keeps counts only, so a
            // long run's memory does not grow with them.
            self.summary.stored.absorb(SaveReport {
                changes: Vec::new(),
                ..report
            });
            self.pending.clear();
            self.occasions.clear();
            self.events.clear();
        }
        Ok(())
    }
}

/// The input a record came from: its position without the line or object.
fn input_name(position: &str) -> &str {
    match position.rsplit_once(':') {
        Some((file, _)) => file,
        None => position,
    }
}

/// The automation history of one record: why it was not sent out, and every vendor call (paid,
/// answered from the cache, or failed) with its cost.
fn history_events(record: &Record, stored: &IndicatorRecord, events: &mut Vec<scry_store::Event>) {
    let event =
        |kind: &str, outcome: &str, origin: String, credits: u32, detail| scry_store::Event {
            credits: i64::from(credits),
            ..scry_store::Event::about(
                kind,
                &stored.stix_id,
                &stored.value,
                outcome,
                &origin,
                stored.observed_at,
                detail,
            )
        };

    if record.status == Status::Skipped {
        let reason = record.skip_reason.as_deref().unwrap_or("skipped");
        events.push(event(
            "skip",
            reason,
            "egress".into(),
            0,
            serde_json::json!({"input": record.position, "tlp": record.tlp}),
        ));
    }
    for (name, source) in &record.sources {
        let outcome = match source.status.as_str() {
            "ok" if source.cached => "cached",
            "ok" if source.credits > 0 => "ok",
            "failed" => "failed",
            _ => continue,
        };
        events.push(scry_store::Event {
            duration_ms: source.elapsed_ms.map(|ms| ms as i64),
            ..event(
                "call",
                outcome,
                format!("source:{name}"),
                source.credits,
                match &source.error {
                    Some(error) => serde_json::json!({"error": error}),
                    None => serde_json::json!({"priority": record.priority}),
                },
            )
        });
    }
}

/// The state of an indicator as the store keeps it: the record without what only describes this
/// run (whether an answer came from the cache, the credits it cost), so re-running over the same
/// data stores nothing new. Rejected input has no indicator and is not stored.
pub fn stored_form(record: &Record) -> Option<IndicatorRecord> {
    let mut sources = serde_json::Map::new();
    for (name, source) in &record.sources {
        let mut value = serde_json::to_value(source).ok()?;
        if let Some(object) = value.as_object_mut() {
            object.remove("cached");
            object.remove("credits");
        }
        sources.insert(name.clone(), value);
    }
    Some(IndicatorRecord {
        stix_id: record.stix_id.clone()?,
        kind: record.kind.clone()?,
        value: record.indicator.clone()?,
        priority: record.priority,
        severity: record.severity.clone(),
        enrichment_status: match record.status {
            Status::Cached => Status::Enriched.as_str().to_owned(),
            other => other.as_str().to_owned(),
        },
        skip_reason: record.skip_reason.clone(),
        tlp: record.tlp.clone(),
        tags: record.tags.clone(),
        reasons: serde_json::to_value(&record.reasons).ok()?,
        sources: serde_json::Value::Object(sources),
        facets: crate::pivot::facets(record),
        observed_at: crate::automation::now_ms(),
    })
}

enum Outcome {
    Skipped(SkipReason),
    Failed(String),
    Rejected(String),
}

impl SourceRecord {
    fn status(status: &str) -> SourceRecord {
        SourceRecord {
            status: status.into(),
            skip_reason: None,
            error: None,
            report_url: None,
            cached: false,
            credits: 0,
            data: serde_json::Value::Null,
            elapsed_ms: None,
        }
    }
    fn skip(mut self, reason: SkipReason) -> SourceRecord {
        self.skip_reason = Some(reason.as_str().into());
        self
    }
    fn error(mut self, message: String) -> SourceRecord {
        self.error = Some(message);
        self
    }
}

fn ok_record(finding: Finding) -> SourceRecord {
    SourceRecord {
        status: "ok".into(),
        skip_reason: None,
        error: None,
        report_url: finding.report_url,
        cached: finding.from_cache,
        credits: finding.credits,
        data: finding.details,
        elapsed_ms: None,
    }
}

fn rejected_record(rejection: Rejection) -> Record {
    unusable_record(
        Status::Rejected,
        rejection.input,
        rejection.position.to_string(),
        rejection.reason,
    )
}

/// A record for input that produced no indicator state: rejected input, or a task that broke.
fn unusable_record(status: Status, input: String, position: String, error: String) -> Record {
    Record {
        input,
        indicator: None,
        kind: None,
        status,
        skip_reason: None,
        error: Some(error),
        priority: 0,
        severity: Severity::Info.as_str().into(),
        reasons: Vec::new(),
        tags: Vec::new(),
        sources: BTreeMap::new(),
        stix_id: None,
        tlp: None,
        position,
        context: None,
    }
}

/// Turns a finished task into its record; a task that panicked becomes a `failed` record.
pub(crate) fn finished(
    done: Result<(tokio::task::Id, Record), tokio::task::JoinError>,
    in_flight: &mut HashMap<tokio::task::Id, (String, String)>,
) -> Record {
    match done {
        Ok((id, record)) => {
            in_flight.remove(&id);
            record
        }
        Err(error) => {
            let (input, position) = in_flight.remove(&error.id()).unwrap_or_default();
            tracing::error!(%input, %position, %error, "enrichment task failed");
            unusable_record(
                Status::Failed,
                input,
                position,
                format!("internal error while enriching: {error}"),
            )
        }
    }
}

/// Reads every input on a thread of its own, de-duplicating, and sends items down `tx`.
pub(crate) fn spawn_reader(
    inputs: Vec<InputSource>,
    format: InputFormat,
    progress: Arc<Progress>,
    tx: mpsc::Sender<Item>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("scry-reader".into())
        .spawn(move || {
            let mut seen = Fingerprints::default();
            let mut open = true;
            for input in &inputs {
                let result = input::read_input(input, format, &progress.read, &mut |item| {
                    if !open {
                        return;
                    }
                    progress.items.fetch_add(1, Ordering::Relaxed);
                    if let Item::Candidate(c) = &item
                        && !seen.insert(fingerprint(&c.observable))
                    {
                        progress.duplicates.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    open = tx.blocking_send(item).is_ok();
                });
                if let Err(e) = result {
                    let position = input::Position {
                        file: input.display_name().into(),
                        line: 0,
                        object: None,
                    };
                    let reason = e.to_string();
                    open = open
                        && tx
                            .blocking_send(Item::Rejected(Rejection {
                                position,
                                input: String::new(),
                                reason,
                            }))
                            .is_ok();
                }
                if !open {
                    return;
                }
            }
        })
        .expect("the reader thread starts")
}
