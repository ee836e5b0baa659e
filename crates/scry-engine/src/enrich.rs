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
use crate::record::{ReasonRecord, Record, SourceRecord, SourceStatus, Status};

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
    /// A rehearsal: results are merged and the rules evaluated as usual, and what would happen
    /// goes to the history, but no state is saved and no action queued, so a real run afterwards
    /// behaves as if this one had not happened.
    pub dry_run: bool,
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
    #[error(
        "more than {max} distinct indicators in one request: split the input, or raise [server] max_indicators_per_request"
    )]
    TooManyIndicators { max: u64 },
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
    /// When each external source is asked, by source name (always, when absent).
    targeting: HashMap<String, crate::targeting::Targeting>,
}

pub(crate) type Fingerprints = HashSet<u64, BuildHasherDefault<PassThroughHasher>>;

/// The set's keys are already hashes; hashing them again would be wasted work.
#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

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

pub(crate) fn fingerprint(observable: &Observable) -> u64 {
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
            targeting: HashMap::new(),
        }
    }

    /// Asks each named source only about what its targeting admits.
    pub fn with_targeting(
        mut self,
        targeting: HashMap<String, crate::targeting::Targeting>,
    ) -> Engine {
        self.targeting = targeting;
        self
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
        sink: &mut (dyn FnMut(Record) -> io::Result<()> + Send),
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
        recorder.rehearsal = request.dry_run;
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
                    Ok(_)
                        if !self
                            .targets(source.name(), &candidate, &sources, &reasons, &tags)
                            .await =>
                    {
                        Err(Outcome::Skipped(SkipReason::Condition))
                    }
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
                Ok(mut finding) => {
                    subject.asn = subject.asn.or(finding.asn);
                    reasons.extend(finding.reasons.iter().cloned());
                    tags.extend(finding.tags.iter().cloned());
                    finding.tags.sort();
                    finding.tags.dedup();
                    ok_record(finding)
                }
                Err(Outcome::Skipped(reason)) => {
                    SourceRecord::status(SourceStatus::Skipped).skip(reason)
                }
                Err(Outcome::Failed(message)) => {
                    SourceRecord::status(SourceStatus::Failed).error(message)
                }
                Err(Outcome::Rejected(message)) => {
                    SourceRecord::status(SourceStatus::Rejected).error(message)
                }
            };
            source_record.elapsed_ms = Some(started.elapsed().as_millis() as u64);
            if is_external {
                external.push(source.name().to_owned());
            }
            sources.insert(source.name().to_owned(), source_record);
        }
        // An imported STIX object's own judgement is one more source's answer.
        if let Some(finding) = candidate
            .context
            .as_ref()
            .and_then(crate::imported::imported_finding)
        {
            reasons.extend(finding.reasons.iter().cloned());
            tags.extend(finding.tags.iter().cloned());
            sources.insert(crate::imported::STIX_IMPORT.to_owned(), ok_record(finding));
        }
        let (status, skip_reason, error) = self.status(&subject, &external, &sources);
        let mut record = assemble(&candidate, &reasons, &tags, sources);
        record.status = status;
        record.skip_reason = skip_reason;
        record.error = error;
        record.context = candidate.context;
        record
    }

    /// Whether `source` is to be asked about the candidate, given what the sources before it
    /// found: its `types`, then its `enrich_when` over the indicator as they see it (with the
    /// priority stored before, when a store is open).
    async fn targets(
        &self,
        source: &str,
        candidate: &Candidate,
        sources: &BTreeMap<String, SourceRecord>,
        reasons: &[scry_core::Reason],
        tags: &[String],
    ) -> bool {
        let Some(targeting) = self.targeting.get(source) else {
            return true;
        };
        let observable = &candidate.observable;
        if targeting.excludes_type(observable) {
            return false;
        }
        if !targeting.has_condition() {
            return true;
        }
        let so_far = assemble(candidate, reasons, tags, sources.clone());
        let Some(state) = stored_form(&so_far) else {
            return false;
        };
        let before = match &self.store {
            Some(store) => match store.indicator(&state.kind, &state.value).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%source, "enrich_when: the stored state could not be read: {error}");
                    None
                }
            },
            None => None,
        };
        let change = scry_store::Change {
            previous_priority: before.as_ref().map(|b| b.record.priority),
            ..scry_store::Change::default()
        };
        let context = crate::automation::indicator_context(&state, None, Some(&change));
        match targeting.admits(&context) {
            Ok(admitted) => admitted,
            Err(error) => {
                tracing::warn!(%source, indicator = %state.value, "enrich_when could not be evaluated, so the source is not asked: {error}");
                false
            }
        }
    }

    /// The record's status from what the external sources did. When no external source handles
    /// this kind of indicator (a CIDR block, or none is configured), the local sources' answers
    /// stand and the status says whether an external source would have been allowed to see it;
    /// only an indicator no source can enrich at all is `unsupported-type`.
    fn status(
        &self,
        subject: &Subject<'_>,
        external: &[String],
        sources: &BTreeMap<String, SourceRecord>,
    ) -> (Status, Option<SkipReason>, Option<String>) {
        if external.is_empty() {
            if !subject.observable.is_enrichable() {
                return (Status::Skipped, Some(SkipReason::UnsupportedType), None);
            }
            let nominal = Destination::External { max_tlp: Tlp::Red };
            return match self.gate.clear(*subject, nominal) {
                Ok(_) => (Status::Enriched, None, None),
                Err(reason) => (Status::Skipped, Some(reason), None),
            };
        }
        let answers: Vec<&SourceRecord> = external
            .iter()
            .filter_map(|name| sources.get(name))
            .collect();
        let ok: Vec<_> = answers
            .iter()
            .filter(|s| s.status == SourceStatus::Ok)
            .collect();
        if !ok.is_empty() {
            let status = if ok.iter().all(|s| s.cached) {
                Status::Cached
            } else {
                Status::Enriched
            };
            return (status, None, None);
        }
        let first = |status: SourceStatus| answers.iter().find(|s| s.status == status);
        if let Some(failed) = first(SourceStatus::Failed) {
            return (Status::Failed, None, failed.error.clone());
        }
        if let Some(rejected) = first(SourceStatus::Rejected) {
            return (Status::Rejected, None, rejected.error.clone());
        }
        let reason = first(SourceStatus::Skipped).and_then(|s| s.skip_reason);
        (Status::Skipped, reason, None)
    }
}

/// The record of `candidate` from what its sources said: reasons (strongest first) summed into
/// the priority, tags sorted once each; the status says `enriched` until the caller sets it.
fn assemble(
    candidate: &Candidate,
    reasons: &[scry_core::Reason],
    tags: &[String],
    sources: BTreeMap<String, SourceRecord>,
) -> Record {
    let observable = &candidate.observable;
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    let priority = score::priority(reasons);
    let mut reasons: Vec<ReasonRecord> = reasons
        .iter()
        .map(|r| ReasonRecord {
            source: r.source.clone(),
            signal: r.signal.clone(),
            value: r.value.clone(),
            points: r.points,
        })
        .collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.points));
    Record {
        indicator: Some(observable.value()),
        kind: Some(observable.stix_type().to_owned()),
        stix_id: Some(scry_stix::observable_id(observable)),
        input: candidate.input.clone(),
        status: Status::Enriched,
        skip_reason: None,
        error: None,
        priority,
        severity: Severity::from_priority(priority),
        reasons,
        tags,
        sources,
        tlp: candidate.tlp,
        position: candidate.position.to_string(),
        context: None,
    }
}

/// Counts records, merges each into what the store knew of it, saves them in batches with their
/// history, runs the rules on each saved batch, and hands the merged records to the sink. Without
/// a store, records go to the sink as they come.
pub(crate) struct Recorder<'a> {
    /// Whose sources' budget events go to the history with each batch.
    engine: &'a Engine,
    pub(crate) summary: Summary,
    /// Records waiting for the next save, each with why it is saved.
    pending: Vec<(Record, Occasion)>,
    /// History of this batch: skips, vendor calls and kept answers.
    events: Vec<scry_store::Event>,
    progress: &'a Progress,
    sink: &'a mut (dyn FnMut(Record) -> io::Result<()> + Send),
    store: Option<&'a dyn Store>,
    automation: Option<&'a crate::automation::Automation>,
    /// Saves nothing: see [`EnrichRequest::dry_run`].
    pub(crate) rehearsal: bool,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        progress: &'a Progress,
        sink: &'a mut (dyn FnMut(Record) -> io::Result<()> + Send),
        store: Option<&'a dyn Store>,
        automation: Option<&'a crate::automation::Automation>,
    ) -> Recorder<'a> {
        Recorder {
            engine,
            summary: Summary::default(),
            pending: Vec::new(),
            events: Vec::new(),
            progress,
            sink,
            store,
            automation,
            rehearsal: false,
        }
    }

    /// A record of a direct run: the rules see it as a `manual` occasion.
    async fn add(&mut self, record: Record) -> Result<(), EngineError> {
        self.add_for(record, None).await
    }

    /// Counts a record and saves it (in the next batch) for `occasion`, or as a manual run's
    /// record when `None`; the sink gets it once it is merged and saved.
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
        if self.store.is_none() || record.stix_id.is_none() {
            return Ok((self.sink)(record)?);
        }
        let occasion = occasion.unwrap_or_else(|| Occasion {
            key: crate::automation::now_ms().to_string(),
            trigger: Some(scry_rules::Trigger::Manual),
            source: input_name(&record.position).to_owned(),
        });
        self.pending.push((record, occasion));
        if self.pending.len() >= STORE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Keeps only the history of a record that is not saved (an attempt that will be retried).
    pub(crate) fn add_history_only(&mut self, record: &Record) {
        if let Some(stored) = stored_form(record) {
            history_events(self.engine, record, &stored, &mut self.events);
        }
    }

    /// Merges the batch into the stored states, saves it with its history and the budget events
    /// raised meanwhile, hands both to the rules, then the merged records to the sink.
    pub(crate) async fn flush(&mut self) -> Result<(), EngineError> {
        let Some(store) = self.store else {
            return Ok(());
        };
        self.events
            .extend(crate::usage::take_attempt_events(self.engine));
        if self.pending.is_empty() && self.events.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let ids: Vec<&str> = pending
            .iter()
            .filter_map(|(r, _)| r.stix_id.as_deref())
            .collect();
        let mut earlier: HashMap<String, (IndicatorRecord, i64)> = if ids.is_empty() {
            HashMap::new()
        } else {
            store
                // Facets only matter to the rules (CVEs before) and to a rehearsal's changes.
                .previous_states(&ids, self.automation.is_some() || self.rehearsal)
                .await?
                .into_iter()
                .map(|(stored, checked_at)| {
                    (stored.record.stix_id.clone(), (stored.record, checked_at))
                })
                .collect()
        };
        let mut records = Vec::with_capacity(pending.len());
        let mut states = Vec::with_capacity(pending.len());
        let mut occasions = Vec::with_capacity(pending.len());
        let mut previous = Vec::with_capacity(pending.len());
        for (record, occasion) in pending {
            let before = record.stix_id.as_ref().and_then(|id| earlier.remove(id));
            let (record, kept) = match &before {
                Some((state, checked_at)) if crate::merge::lacks_earlier_answer(&record, state) => {
                    crate::merge::merge(
                        record,
                        &crate::merge::Known::from_stored(state, *checked_at),
                    )
                }
                _ => (record, Vec::new()),
            };
            let Some(stored) = stored_form(&record) else {
                (self.sink)(record)?;
                continue;
            };
            history_events(self.engine, &record, &stored, &mut self.events);
            self.events
                .extend(kept.iter().map(|k| kept_event(k, &stored)));
            // A record repeated within the batch compares with its state just before.
            earlier.insert(stored.stix_id.clone(), (stored.clone(), stored.observed_at));
            previous.push(before.map(|(state, _)| state));
            states.push(stored);
            occasions.push(occasion);
            records.push(record);
        }
        let report = if self.rehearsal {
            // What the save would do, without saving: a dry run leaves the state as it was.
            would_save(&states, &previous)
        } else {
            store.save_indicators(&states).await?
        };
        let budget = crate::usage::take_budget_notices(self.engine);
        self.events
            .extend(budget.iter().map(crate::usage::BudgetNotice::history_event));

        store.record_events(&self.events).await?;
        self.events.clear();
        if let Some(automation) = self.automation {
            for rules in [
                automation
                    .on_saved(&states, &occasions, &previous, &report.changes)
                    .await?,
                automation.on_budget(&budget).await?,
            ] {
                self.summary.rules.matched += rules.matched;
                self.summary.rules.enqueued += rules.enqueued;
                self.summary.rules.errors += rules.errors;
                self.summary.rules.repeated += rules.repeated;
            }
        }
        // The changes are kept in the score history; the summary keeps counts only, so a long
        // run's memory does not grow with them.
        self.summary.stored.absorb(SaveReport {
            changes: Vec::new(),
            ..report
        });
        for record in records {
            (self.sink)(record)?;
        }
        Ok(())
    }
}

/// What saving `states` over `previous` would report, computed without writing: new states,
/// changed ones (and their changes for the rules) and unchanged ones.
fn would_save(states: &[IndicatorRecord], previous: &[Option<IndicatorRecord>]) -> SaveReport {
    let mut report = SaveReport::default();
    for (state, before) in states.iter().zip(previous) {
        match before {
            None => {
                report.inserted += 1;
                report
                    .changes
                    .push(scry_store::Change::between(None, state));
            }
            Some(before) => {
                if same_state(state, before) {
                    report.unchanged += 1;
                } else {
                    report.updated += 1;
                    let change = scry_store::Change::between(Some(before), state);
                    if !change.is_empty() || before.reasons != state.reasons {
                        report.changes.push(change);
                    }
                }
            }
        }
    }
    report
}

/// True when two states differ in nothing but when they were observed and the order of facets.
fn same_state(a: &IndicatorRecord, b: &IndicatorRecord) -> bool {
    let sorted = |r: &IndicatorRecord| {
        let mut facets = r.facets.clone();
        facets.sort();
        facets.dedup();
        facets
    };
    IndicatorRecord {
        observed_at: b.observed_at,
        facets: Vec::new(),
        ..a.clone()
    } == IndicatorRecord {
        facets: Vec::new(),
        ..b.clone()
    } && sorted(a) == sorted(b)
}

/// The history entry of an answer kept in place of a new one: "refresh skipped: budget; kept the
/// answer from …".
fn kept_event(kept: &crate::merge::KeptAnswer, stored: &IndicatorRecord) -> scry_store::Event {
    scry_store::Event::about(
        "kept",
        &stored.stix_id,
        &stored.value,
        &kept.outcome,
        &format!("source:{}", kept.source),
        stored.observed_at,
        serde_json::json!({
            "answered_at": kept.stale.answered_at,
            "because": kept.stale.because,
        }),
    )
}

/// The input a record came from: its position without the line or object.
fn input_name(position: &str) -> &str {
    match position.rsplit_once(':') {
        Some((file, _)) => file,
        None => position,
    }
}

/// The automation history of one record: why it was not sent out, and every vendor call (paid,
/// answered from the cache, or failed) with its cost and the account of `engine`'s source it was
/// charged to.
fn history_events(
    engine: &Engine,
    record: &Record,
    stored: &IndicatorRecord,
    events: &mut Vec<scry_store::Event>,
) {
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
        let reason = record.skip_reason.map_or("skipped", SkipReason::as_str);
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
            account: engine
                .sources()
                .iter()
                .find(|s| s.name() == name)
                .and_then(|s| s.account()),
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
        severity: record.severity.as_str().to_owned(),
        enrichment_status: match record.status {
            Status::Cached => Status::Enriched.as_str().to_owned(),
            other => other.as_str().to_owned(),
        },
        skip_reason: record.skip_reason.map(|r| r.as_str().to_owned()),
        tlp: record.tlp.map(|t| t.as_str().to_owned()),
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
    fn status(status: SourceStatus) -> SourceRecord {
        SourceRecord {
            status,
            skip_reason: None,
            error: None,
            report_url: None,
            cached: false,
            credits: 0,
            data: serde_json::Value::Null,
            tags: Vec::new(),
            stale: None,
            elapsed_ms: None,
        }
    }
    fn skip(mut self, reason: SkipReason) -> SourceRecord {
        self.skip_reason = Some(reason);
        self
    }
    fn error(mut self, message: String) -> SourceRecord {
        self.error = Some(message);
        self
    }
}

fn ok_record(finding: Finding) -> SourceRecord {
    SourceRecord {
        status: SourceStatus::Ok,
        skip_reason: None,
        error: None,
        report_url: finding.report_url,
        cached: finding.from_cache,
        credits: finding.credits,
        data: finding.details,
        tags: finding.tags,
        stale: None,
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
        severity: Severity::Info,
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
