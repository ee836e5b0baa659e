//! Automation: rules evaluated on what enrichment stored, their actions run as durable jobs, and
//! every step written to the automation history.
//!
//! A matching rule does not act directly: each of its actions becomes a job in the store's queue,
//! keyed by (rule, indicator, trigger, observation, step) so the same match never acts twice,
//! whichever run or worker sees it. Workers lease jobs, run them, and retry failures with
//! backoff; outbound calls (messages, tickets) go only to configured endpoints. A rule never sees
//! changes it made itself, and changes made by actions re-trigger other rules at most
//! [`MAX_CHAIN`] deep, so rules cannot loop.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use scry_core::Facet;
use scry_core::exposure::{Exposure, Level};
use scry_rules::context::level_number;
use scry_rules::rule::Targets;
use scry_rules::template::EMAIL_SUBJECT;
use scry_rules::{
    ActionSpec, BudgetContext, CriminalIpContext, IndicatorContext, NamedLists, PreviousContext,
    RuleSet, RuleSource, RuleSpec, Template, Trigger, read_playbook, read_rules,
};
use scry_sources::Secret;
use scry_store::{
    BlockEntry, Change, Event, IndicatorRecord, Job, JobOutcome, NewJob, Store, StoreError,
    Workflow,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{BlocklistConfig, EndpointConfig, LoadedConfig};
use crate::enrich::Recorder;
use crate::usage::BudgetNotice;

/// How many times an action's change may trigger further rules in a row.
pub const MAX_CHAIN: u32 = 3;

/// The label of an indicator on at least one blocklist: `block` sets it, and it goes when the
/// last entry does (unblocked, expired, allowlisted, fallen below a list's minimum).
pub const BLOCKED_LABEL: &str = "blocked-by-scry";

/// The job kind of rule actions.
pub const ACTION_JOB: &str = "action";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    #[error("automation store access failed: {0}")]
    Store(#[from] StoreError),
    #[error("rules act on stored indicators: open a store (drop --no-store)")]
    NoStore,
    #[error("re-enrichment failed: {0}")]
    Enrichment(#[from] Box<crate::EngineError>),
}

/// A configured channel or ticket system, ready to send.
struct Endpoint {
    template: Template,
    params: BTreeMap<String, String>,
    max_attempts: u32,
    delivery: Delivery,
    /// The most one attempt may take, whole.
    deadline: Duration,
}

/// How an endpoint's messages travel.
enum Delivery {
    Http(HttpTarget),
    Mail(MailTarget),
}

/// An HTTP POST: a chat webhook or a ticket system's create call.
struct HttpTarget {
    url: String,
    headers: Vec<(String, String)>,
    authorization: Option<Secret>,
    /// Tickets: where the created ticket's id is in the answer.
    id_pointer: Option<String>,
    timeout: Duration,
}

/// An e-mail through an SMTP server.
struct MailTarget {
    /// Holds the password, if any; never printed.
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject: Template,
}

/// Rules and where their actions go, loaded from configuration.
pub struct Automation {
    /// Where jobs, history, workflow and blocklists live; rules can be checked without one.
    store: Option<Arc<dyn Store>>,
    rules: RuleSet,
    channels: BTreeMap<String, Endpoint>,
    tickets: BTreeMap<String, Endpoint>,
    blocklists: BTreeMap<String, BlocklistConfig>,
    dry_run: bool,
    http: reqwest::Client,
    /// For `enrich` actions.
    engine: Option<Arc<crate::Engine>>,
}

impl std::fmt::Debug for Automation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automation")
            .field("rules", &self.rules.rules().len())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// The payload of an action job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ActionJob {
    rule: String,
    step: usize,
    action: ActionSpec,
    trigger: Trigger,
    stix_id: String,
    kind: String,
    value: String,
    /// How many action-caused changes led here.
    chain: u32,
    /// For `budget-alert` rules: the budget event acted on (no indicator then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    budget: Option<BudgetContext>,
}

/// Why records were saved, for the rules: what identifies the occasion (so a replayed occasion
/// acts once), the trigger it raises besides the ones every save raises, and where the indicator
/// came from (`indicator.source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occasion {
    /// A job id (`job:42`) or an observation time: the same occasion seen twice keeps its key.
    pub key: String,
    /// `manual` for a direct `scry enrich`, `schedule` for a refresh, none otherwise.
    pub trigger: Option<Trigger>,
    /// The input or feed the indicator came in by.
    pub source: String,
}

/// What one pass over the queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobsReport {
    pub done: u64,
    pub failed: u64,
    pub retrying: u64,
}

/// What evaluating rules over saved records did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RulesReport {
    /// Matches acted on (or, in a dry run, that would be).
    pub matched: u64,
    pub enqueued: u64,
    pub errors: u64,
    /// Matches on a state the rule had matched already: nothing to do again.
    pub repeated: u64,
}

/// A rule match to act on: its history entry and its action jobs.
struct Match {
    event: Event,
    jobs: Vec<NewJob>,
}

/// The named lists of `[automation.lists]`, from their entries and files, with every problem
/// found (each naming where it is).
pub fn named_lists(loaded: &LoadedConfig) -> (NamedLists, Vec<String>) {
    let origin = loaded
        .path
        .as_ref()
        .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    let mut errors = Vec::new();
    let mut lists = NamedLists::default();
    for (name, list) in &loaded.config.automation.lists {
        if let Err(e) = lists.add(name, list.entries.iter().map(String::as_str)) {
            errors.push(format!("{origin}: [automation.lists.{name}]: {e}"));
        }
        for file in &list.files {
            let path = loaded.resolve(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Err(e) = lists.add(name, text.lines()) {
                        errors.push(format!("{}: {e}", path.display()));
                    }
                }
                Err(e) => errors.push(format!(
                    "{origin}: [automation.lists.{name}] cannot read {}: {e}",
                    path.display()
                )),
            }
        }
    }
    (lists, errors)
}

/// Loads every rule (configuration and playbook folder), list, channel, ticket system and
/// blocklist. Every problem is reported, each naming where it is.
pub fn load(loaded: &LoadedConfig, sources: &[String]) -> Result<Automation, Vec<String>> {
    let config = &loaded.config.automation;
    let origin = loaded
        .path
        .as_ref()
        .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    let (lists, mut errors) = named_lists(loaded);
    let mut endpoints = |kind: &str, table: &BTreeMap<String, EndpointConfig>| {
        let mut built = BTreeMap::new();
        for (name, endpoint) in table {
            match build_endpoint(endpoint, kind == "channels") {
                Ok(e) => {
                    built.insert(name.clone(), e);
                }
                Err(message) => {
                    errors.push(format!("{origin}: [automation.{kind}.{name}]: {message}"))
                }
            }
        }
        built
    };
    let channels = endpoints("channels", &config.channels);
    let tickets = endpoints("tickets", &config.tickets);
    let mut specs = config_rules(loaded, &origin, &mut errors);
    if let Some(folder) = &config.playbooks {
        match playbook_rules(&loaded.resolve(folder)) {
            Ok((more, mut mistakes)) => {
                specs.extend(more);
                errors.append(&mut mistakes);
            }
            Err(e) => errors.push(e),
        }
    }
    let targets = Targets {
        channels: config.channels.keys().cloned().collect(),
        ticket_systems: config.tickets.keys().cloned().collect(),
        blocklists: config.blocklists.keys().cloned().collect(),
        sources: sources.iter().cloned().collect(),
    };
    let rules = match RuleSet::compile(specs, lists, &targets) {
        Ok(rules) => Some(rules),
        Err(rule_errors) => {
            errors.extend(rule_errors.iter().map(ToString::to_string));
            None
        }
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| vec![format!("cannot build the HTTP client: {e}")])?;
    match rules {
        Some(rules) if errors.is_empty() => Ok(Automation {
            store: None,
            rules,
            channels,
            tickets,
            blocklists: config.blocklists.clone(),
            dry_run: config.dry_run,
            http,
            engine: None,
        }),
        _ => Err(errors),
    }
}

/// Builds a channel (`accepts_mail`) or ticket system from its configuration. Every setting that
/// does not fit the endpoint's kind is an error, so a mistyped e-mail channel does not silently
/// become a webhook.
fn build_endpoint(config: &EndpointConfig, accepts_mail: bool) -> Result<Endpoint, String> {
    let url = url::Url::parse(&config.url).map_err(|e| format!("url {:?}: {e}", config.url))?;
    let mail = match url.scheme() {
        "http" | "https" => false,
        "smtp" | "smtps" if accepts_mail => true,
        _ if accepts_mail => {
            return Err(format!(
                "url {:?}: use http or https for a webhook, smtp or smtps for e-mail",
                config.url
            ));
        }
        _ => return Err(format!("url {:?}: use http or https", config.url)),
    };
    let settings: &[(&str, bool)] = if mail {
        &[
            ("headers", !config.headers.is_empty()),
            ("authorization_env", config.authorization_env.is_some()),
            ("id_pointer", config.id_pointer.is_some()),
        ]
    } else {
        &[
            ("from", config.from.is_some()),
            ("to", !config.to.is_empty()),
            ("subject", config.subject.is_some()),
            ("username", config.username.is_some()),
            ("password_env", config.password_env.is_some()),
            ("starttls", !config.starttls),
        ]
    };
    // Settings of the other kind of endpoint, given here.
    let misplaced: Vec<&str> = settings
        .iter()
        .filter_map(|(key, set)| set.then_some(*key))
        .collect();
    if !misplaced.is_empty() {
        return Err(format!(
            "{} only for {} endpoints",
            misplaced.join(", "),
            if mail {
                "HTTP"
            } else {
                "e-mail (smtp://, smtps://)"
            }
        ));
    }
    let timeout = Duration::from_secs_f64(config.timeout_seconds.max(0.1));
    let (template, delivery) = if mail {
        let template = Template::new(
            config.template.as_deref().or(Some("email")),
            config.body.as_deref(),
            false,
        )
        .map_err(|e| e.to_string())?;
        (template, Delivery::Mail(build_mail(&url, config, timeout)?))
    } else {
        let template = Template::new(
            config.template.as_deref(),
            config.body.as_deref(),
            config.json,
        )
        .map_err(|e| e.to_string())?;
        let authorization = config
            .authorization_env
            .as_deref()
            .map(|variable| secret_from_env("authorization_env", variable))
            .transpose()?;
        let id_pointer = config
            .id_pointer
            .clone()
            .or_else(|| match config.template.as_deref() {
                Some("jira") => Some("/key".to_owned()),
                Some("servicenow") => Some("/result/number".to_owned()),
                _ => None,
            });
        let target = HttpTarget {
            url: config.url.clone(),
            headers: config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            authorization,
            id_pointer,
            timeout,
        };
        (template, Delivery::Http(target))
    };
    Ok(Endpoint {
        template,
        params: config.params.clone(),
        max_attempts: config.max_attempts.max(1),
        delivery,
        deadline: timeout,
    })
}

/// A secret from the environment variable `variable`, which the setting `key` names and which
/// must be set.
fn secret_from_env(key: &str, variable: &str) -> Result<Secret, String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(format!("{key} names {variable}, which is not set")),
    }
}

/// An SMTP transport for `smtp://host[:port]` (STARTTLS, or in the clear when `starttls` is
/// false) or `smtps://host[:port]` (TLS from the start).
fn build_mail(
    url: &url::Url,
    config: &EndpointConfig,
    timeout: Duration,
) -> Result<MailTarget, String> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "put the SMTP user in `username` and its password in the variable `password_env` names, not in the url"
                .into(),
        );
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("url {:?} names no host", config.url))?;
    let implicit_tls = url.scheme() == "smtps";
    let in_clear = !implicit_tls && !config.starttls;
    let port = url.port().unwrap_or(if implicit_tls {
        465
    } else if in_clear {
        25
    } else {
        587
    });
    let from: Mailbox = config
        .from
        .as_deref()
        .ok_or("`from` is required for e-mail")?
        .parse()
        .map_err(|e| format!("from {:?}: {e}", config.from.as_deref().unwrap_or("")))?;
    if config.to.is_empty() {
        return Err("`to` lists no recipient".into());
    }
    let to = config
        .to
        .iter()
        .map(|address| {
            address
                .parse::<Mailbox>()
                .map_err(|e| format!("to {address:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let credentials = match (&config.username, &config.password_env) {
        (Some(user), Some(variable)) => {
            let password = secret_from_env("password_env", variable)?;
            Some(Credentials::new(user.clone(), password.expose().to_owned()))
        }
        (None, None) => None,
        _ => return Err("`username` and `password_env` go together".into()),
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // smtp:// is not a special scheme to the URL standard, so an IPv4 host stays text.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    };
    if in_clear && credentials.is_some() && !loopback {
        return Err(
            "a password is never sent in the clear: keep starttls = true, use smtps://, or drop username"
                .into(),
        );
    }
    let builder = if implicit_tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| e.to_string())?
    } else if in_clear {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| e.to_string())?
    };
    let mut builder = builder.port(port).timeout(Some(timeout));
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    let subject = Template::new(
        None,
        Some(config.subject.as_deref().unwrap_or(EMAIL_SUBJECT)),
        false,
    )
    .map_err(|e| format!("subject: {e}"))?;
    Ok(MailTarget {
        transport: builder.build(),
        from,
        to,
        subject,
    })
}

/// The rules of the configuration file, read from the file with their positions; rules given
/// without a file (a configuration built in code) are read without.
fn config_rules(loaded: &LoadedConfig, origin: &str, errors: &mut Vec<String>) -> Vec<RuleSource> {
    if let Some(path) = &loaded.path {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let (rules, mistakes) = read_rules(origin, &text);
                errors.extend(mistakes.iter().map(ToString::to_string));
                return rules;
            }
            Err(e) => errors.push(format!("{origin}: cannot read the rules: {e}")),
        }
        return Vec::new();
    }
    let mut rules = Vec::new();
    for (index, raw) in loaded.config.rules.iter().enumerate() {
        match raw.deserialize::<RuleSpec>() {
            Ok(spec) => rules.push(RuleSource::unplaced(origin, spec)),
            Err(e) => errors.push(format!("{origin}: rule #{}: {e}", index + 1)),
        }
    }
    rules
}

/// The rules of every `*.toml` file in `folder`, in file-name order, with every mistake in them;
/// an error when the folder cannot be read.
fn playbook_rules(folder: &Path) -> Result<(Vec<RuleSource>, Vec<String>), String> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| format!("cannot read playbooks folder {}: {e}", folder.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let (more, mistakes) = read_playbook(&name, &text);
                rules.extend(more);
                errors.extend(mistakes.iter().map(ToString::to_string));
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    Ok((rules, errors))
}

/// What a condition sees of a stored indicator.
pub fn indicator_context(
    record: &IndicatorRecord,
    workflow: Option<&Workflow>,
    change: Option<&Change>,
) -> IndicatorContext {
    // Criminal IP's answer, else its offline database's; where neither has a say (no key, an
    // indicator not asked), the offline AS and country data.
    let detail = |name: &str| record.sources.get(name).and_then(|s| s.get("data"));
    let (cip_source, cip) = Exposure::preferred(detail).unwrap_or(("", Exposure::default()));
    let geo = detail("geo").map(Exposure::read).unwrap_or_default();
    let report_url = record
        .sources
        .get(cip_source)
        .and_then(|s| s.get("report_url"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let facet = |wanted: Facet| -> Vec<String> {
        record
            .facets
            .iter()
            .filter(|(f, _)| *f == wanted)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let level_word =
        |level: Option<Level>| level.map_or(String::new(), |l| l.as_str().to_ascii_lowercase());
    let (inbound, outbound) = (level_word(cip.inbound), level_word(cip.outbound));
    let mut tags = record.tags.clone();
    if let Some(w) = workflow {
        tags.extend(w.labels.iter().cloned());
        tags.sort();
        tags.dedup();
    }
    let priority = workflow
        .and_then(|w| w.priority_override)
        .unwrap_or(record.priority);
    IndicatorContext {
        kind: record.kind.clone(),
        value: record.value.clone(),
        stix_id: record.stix_id.clone(),
        priority: i64::from(priority),
        computed_priority: i64::from(record.priority),
        severity: record.severity.clone(),
        tags,
        status: workflow.map_or_else(|| "new".to_owned(), |w| w.status.clone()),
        tlp: record.tlp.clone().unwrap_or_default(),
        source: String::new(),
        enrichment: record.enrichment_status.clone(),
        skip_reason: record.skip_reason.clone().unwrap_or_default(),
        asn: cip
            .asn
            .or(geo.asn)
            .map_or(0, |a| i64::try_from(a).unwrap_or(0)),
        as_name: cip
            .as_name
            .filter(|n| !n.is_empty())
            .or(geo.as_name)
            .unwrap_or_default(),
        country: cip
            .country
            .filter(|c| !c.is_empty())
            .or(geo.country)
            .unwrap_or_default()
            .to_ascii_uppercase(),
        cves: facet(Facet::Cve),
        phishing_probability: cip.phishing_probability.unwrap_or(0.0),
        criminalip: CriminalIpContext {
            inbound_level: level_number(&inbound),
            outbound_level: level_number(&outbound),
            inbound,
            outbound,
            report_url,
        },
        previous: PreviousContext {
            exists: change.is_none_or(|c| c.previous_priority.is_some()),
            priority: i64::from(
                change.map_or(record.priority, |c| c.previous_priority.unwrap_or(0)),
            ),
        },
        new_tags: change.map(|c| c.new_tags.clone()).unwrap_or_default(),
        new_cves: change.map(|c| c.new_cves.clone()).unwrap_or_default(),
        ticket: workflow.and_then(|w| w.ticket.clone()).unwrap_or_default(),
    }
}

/// An event about one indicator, now.
fn event(
    kind: &str,
    record: &IndicatorRecord,
    outcome: &str,
    origin: &str,
    detail: Value,
) -> Event {
    Event::about(
        kind,
        &record.stix_id,
        &record.value,
        outcome,
        origin,
        now_ms(),
        detail,
    )
}

/// Backoff before retry `attempt` (1-based): 2 s, 4 s, 8 s … capped at 10 minutes.
fn backoff_ms(attempt: u32) -> i64 {
    (2_000_i64 << attempt.saturating_sub(1).min(9)).min(600_000)
}

impl Automation {
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The store rules act on.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Automation {
        self.store = Some(store);
        self
    }

    fn store(&self) -> Result<&dyn Store, AutomationError> {
        self.store.as_deref().ok_or(AutomationError::NoStore)
    }

    /// The engine `enrich` actions use.
    pub fn with_engine(mut self, engine: Arc<crate::Engine>) -> Automation {
        self.engine = Some(engine);
        self
    }

    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// Evaluates rules for records just saved, with the changes the save reported and the states
    /// they replaced, and enqueues the actions of every rule that newly matches. Blocklist entries
    /// of indicators that became allowlisted or fell below a list's minimum priority are removed.
    ///
    /// Actions fire on transitions, not evaluations: a rule acts when it matches now and did not
    /// match the state before (a new indicator, a threshold crossed), or when it matches both and
    /// the save brought a new tag or CVE. A rule with `cooldown_hours` may also act again on an
    /// unchanged state, once per cooldown window. Each rule is evaluated once per save, whichever
    /// of the triggers it listens to were raised. In a dry run nothing is enqueued or unblocked;
    /// what would happen goes to the history.
    ///
    /// `occasions` and `previous` go with `records`, one for one.
    pub async fn on_saved(
        &self,
        records: &[IndicatorRecord],
        occasions: &[Occasion],
        previous: &[Option<IndicatorRecord>],
        changes: &[Change],
    ) -> Result<RulesReport, AutomationError> {
        debug_assert_eq!(records.len(), occasions.len());
        debug_assert_eq!(records.len(), previous.len());
        let mut report = RulesReport::default();
        let by_id: BTreeMap<&str, &Change> =
            changes.iter().map(|c| (c.stix_id.as_str(), c)).collect();
        let mut events = Vec::new();
        let mut matches = Vec::new();
        for ((record, occasion), before) in records.iter().zip(occasions).zip(previous) {
            let change = by_id.get(record.stix_id.as_str()).copied();
            self.maintain_blocklists(record, change, &mut events)
                .await?;
            let mut triggers: Vec<Trigger> = occasion.trigger.into_iter().collect();
            triggers.push(Trigger::Ingested);
            if record.enrichment_status == "enriched" {
                triggers.push(Trigger::Enriched);
            }
            match change {
                Some(c) if c.previous_priority.is_none() => triggers.push(Trigger::Created),
                Some(_) => triggers.push(Trigger::Updated),
                None => {}
            }
            if !triggers.iter().any(|t| self.rules.listens(*t)) {
                continue;
            }
            let workflow = self.store()?.workflow(&record.stix_id).await?;
            let mut context = indicator_context(record, workflow.as_ref(), change);
            context.source.clone_from(&occasion.source);
            let earlier = before.as_ref().map(|b| {
                let mut context = indicator_context(b, workflow.as_ref(), None);
                context.source.clone_from(&occasion.source);
                context
            });
            let brought_news =
                change.is_some_and(|c| !c.new_tags.is_empty() || !c.new_cves.is_empty());
            self.evaluate(
                &triggers,
                record,
                &context,
                earlier.as_ref(),
                brought_news,
                &occasion.key,
                "source",
                0,
                &mut events,
                &mut matches,
                &mut report,
            );
        }
        self.commit(matches, events, &mut report).await?;
        Ok(report)
    }

    /// Enqueues the jobs of each match and records it with the other events; in a dry run only
    /// records what would be done.
    async fn commit(
        &self,
        matches: Vec<Match>,
        mut events: Vec<Event>,
        report: &mut RulesReport,
    ) -> Result<(), AutomationError> {
        let store = self.store()?;
        for Match { mut event, jobs } in matches {
            report.matched += 1;
            if self.dry_run {
                event.outcome = "dry-run".into();
            } else {
                report.enqueued += store.enqueue_jobs(&jobs).await?;
            }
            events.push(event);
        }
        store.record_events(&events).await?;
        Ok(())
    }

    /// Enqueues the actions of the `budget-alert` rules that budget events match, once per rule,
    /// event and period, and records each match. (The events themselves are history already.)
    pub async fn on_budget(
        &self,
        notices: &[BudgetNotice],
    ) -> Result<RulesReport, AutomationError> {
        let mut report = RulesReport::default();
        if notices.is_empty() {
            return Ok(report);
        }
        let mut events = Vec::new();
        let mut matches = Vec::new();
        for notice in notices {
            for verdict in self.rules.evaluate_budget(&notice.budget) {
                let rule = &verdict.rule.spec;
                let mut e = notice.history_event();
                e.kind = "rule".into();
                e.rule = Some(rule.name.clone());
                match verdict.matched {
                    Ok(false) => continue,
                    Ok(true) => {
                        e.outcome = "matched".into();
                        e.detail = json!({"trigger": Trigger::BudgetAlert.as_str(),
                            "budget": notice.budget,
                            "actions": rule.actions.iter().map(ActionSpec::describe).collect::<Vec<_>>()});
                        let occasion = format!(
                            "budget|{}|{}|{}|{}",
                            notice.budget.source,
                            notice.budget.event,
                            notice.budget.period,
                            notice.period_key,
                        );
                        let template = ActionJob {
                            rule: rule.name.clone(),
                            step: 0,
                            action: ActionSpec::RevertPriority,
                            trigger: Trigger::BudgetAlert,
                            stix_id: String::new(),
                            kind: String::new(),
                            value: String::new(),
                            chain: 0,
                            budget: Some(notice.budget.clone()),
                        };
                        let jobs = self.action_jobs(&template, &rule.actions, &occasion, now_ms());
                        matches.push(Match { event: e, jobs });
                    }
                    Err(message) => {
                        report.errors += 1;
                        e.outcome = "error".into();
                        e.detail =
                            json!({"trigger": Trigger::BudgetAlert.as_str(), "error": message});
                        events.push(e);
                    }
                }
            }
        }
        self.commit(matches, events, &mut report).await?;
        Ok(report)
    }

    /// Evaluates each rule listening to one of `triggers` once; a rule acts when it matches now
    /// and did not match `earlier` (the state before; `None` for a new indicator), when it
    /// matches both and the change `brought_news` (a new tag or CVE), or when its cooldown
    /// window is new. Matches that act become [`Match`]es, failed evaluations events.
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        triggers: &[Trigger],
        record: &IndicatorRecord,
        context: &IndicatorContext,
        earlier: Option<&IndicatorContext>,
        brought_news: bool,
        occasion: &str,
        origin: &str,
        chain: u32,
        events: &mut Vec<Event>,
        matches: &mut Vec<Match>,
        report: &mut RulesReport,
    ) {
        let before: BTreeMap<&str, bool> = match earlier {
            Some(earlier) => self
                .rules
                .evaluate_any(triggers, earlier, origin)
                .into_iter()
                .map(|(_, v)| (v.rule.spec.name.as_str(), v.matched == Ok(true)))
                .collect(),
            None => BTreeMap::new(),
        };
        for (trigger, verdict) in self.rules.evaluate_any(triggers, context, origin) {
            let rule = &verdict.rule.spec;
            match verdict.matched {
                Ok(false) => continue,
                Ok(true) => {
                    let matched_before = before.get(rule.name.as_str()).copied().unwrap_or(false);
                    // What makes this match one to act on, and so its jobs' de-duplication key.
                    let why = if !matched_before || brought_news {
                        occasion.to_owned()
                    } else if let Some(hours) = rule.cooldown_hours {
                        let window = (hours * 3_600_000.0).max(1.0) as i64;
                        format!("cooldown-{}", now_ms() / window)
                    } else {
                        report.repeated += 1;
                        continue;
                    };
                    let mut e = event(
                        "rule",
                        record,
                        "matched",
                        origin,
                        json!({"trigger": trigger.as_str(), "priority": context.priority,
                               "actions": rule.actions.iter().map(ActionSpec::describe).collect::<Vec<_>>()}),
                    );
                    e.rule = Some(rule.name.clone());
                    let template = ActionJob {
                        rule: rule.name.clone(),
                        step: 0,
                        action: ActionSpec::RevertPriority,
                        trigger,
                        stix_id: record.stix_id.clone(),
                        kind: record.kind.clone(),
                        value: record.value.clone(),
                        chain,
                        budget: None,
                    };
                    let occasion = format!("{}|{why}|{chain}", record.stix_id);
                    let jobs = self.action_jobs(&template, &rule.actions, &occasion, now_ms());
                    matches.push(Match { event: e, jobs });
                }
                Err(message) => {
                    report.errors += 1;
                    let mut e = event(
                        "rule",
                        record,
                        "error",
                        origin,
                        json!({"trigger": trigger.as_str(), "error": message}),
                    );
                    e.rule = Some(rule.name.clone());
                    events.push(e);
                }
            }
        }
    }

    /// Whether a person may ask for `action` by hand: what it names must be configured.
    pub fn check_manual_action(&self, action: &ActionSpec) -> Result<(), String> {
        let missing = |kind: &str, name: &str, known: Vec<&String>| {
            let known: Vec<&str> = known.into_iter().map(String::as_str).collect();
            Err(format!(
                "no {kind} named {name:?} (configured: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        };
        match action {
            ActionSpec::Block { list, .. } | ActionSpec::Unblock { list }
                if !self.blocklists.contains_key(list) =>
            {
                missing("blocklist", list, self.blocklists.keys().collect())
            }
            ActionSpec::Notify { channel } | ActionSpec::Escalate { channel, .. }
                if !self.channels.contains_key(channel) =>
            {
                missing("channel", channel, self.channels.keys().collect())
            }
            ActionSpec::Ticket { system } if !self.tickets.contains_key(system) => {
                missing("ticket system", system, self.tickets.keys().collect())
            }
            ActionSpec::Enrich { source: Some(_) } => {
                Err("enrich by hand asks every source; leave `source` out".to_owned())
            }
            ActionSpec::SetPriority { priority } if *priority > 100 => {
                Err(format!("priority {priority} is above 100"))
            }
            ActionSpec::Tag { tag } | ActionSpec::Untag { tag } if tag.trim().is_empty() => {
                Err("the tag is empty".to_owned())
            }
            ActionSpec::SetStatus { status } | ActionSpec::Escalate { status, .. } => {
                scry_rules::check_status(status)
            }
            _ => Ok(()),
        }
    }

    /// Queues actions a person asked for on stored indicators; the workers do them like rule
    /// actions and record them in the history as rule `manual:WHO`. Returns the jobs queued.
    pub async fn queue_manual_actions(
        &self,
        records: &[IndicatorRecord],
        actions: &[ActionSpec],
        who: &str,
    ) -> Result<u64, AutomationError> {
        let rule = format!("manual:{who}");
        let asked_at = now_ms();
        let mut jobs = Vec::with_capacity(records.len() * actions.len());
        for record in records {
            let template = ActionJob {
                rule: rule.clone(),
                step: 0,
                action: ActionSpec::RevertPriority,
                trigger: Trigger::Manual,
                stix_id: record.stix_id.clone(),
                kind: record.kind.clone(),
                value: record.value.clone(),
                chain: 0,
                budget: None,
            };
            let occasion = format!("{}|{asked_at}|{}", record.stix_id, std::process::id());
            jobs.extend(self.action_jobs(&template, actions, &occasion, asked_at));
        }
        Ok(self.store()?.enqueue_jobs(&jobs).await?)
    }

    /// One job per action of a rule, in order, like `template` but for its step and action;
    /// each keyed `RULE|OCCASION|STEP`, so the same occasion never queues a step twice.
    fn action_jobs(
        &self,
        template: &ActionJob,
        actions: &[ActionSpec],
        occasion: &str,
        run_after: i64,
    ) -> Vec<NewJob> {
        actions
            .iter()
            .enumerate()
            .map(|(step, action)| {
                let payload = ActionJob {
                    step,
                    action: action.clone(),
                    ..template.clone()
                };
                NewJob {
                    kind: ACTION_JOB.to_owned(),
                    dedupe_key: Some(format!("{}|{occasion}|{step}", template.rule)),
                    payload: serde_json::to_value(&payload).expect("jobs serialize"),
                    run_after,
                    max_attempts: self.attempts_for(action),
                }
            })
            .collect()
    }

    fn attempts_for(&self, action: &ActionSpec) -> u32 {
        match action {
            ActionSpec::Notify { channel } | ActionSpec::Escalate { channel, .. } => {
                self.channels.get(channel).map_or(5, |c| c.max_attempts)
            }
            ActionSpec::Ticket { system } => self.tickets.get(system).map_or(5, |t| t.max_attempts),
            _ => 3,
        }
    }

    async fn maintain_blocklists(
        &self,
        record: &IndicatorRecord,
        change: Option<&Change>,
        events: &mut Vec<Event>,
    ) -> Result<(), AutomationError> {
        let allowlisted = record.skip_reason.as_deref() == Some("allowlisted");
        let fell = change.is_some_and(|c| c.previous_priority.is_some_and(|p| p > c.priority));
        if self.dry_run || (!allowlisted && !fell) {
            return Ok(());
        }
        for (name, list) in &self.blocklists {
            if (allowlisted || record.priority < list.min_priority)
                && self.store()?.unblock(name, &record.value).await?
            {
                let why = if allowlisted {
                    "allowlisted".to_owned()
                } else {
                    format!(
                        "priority {} is below {}",
                        record.priority, list.min_priority
                    )
                };
                let mut e = event(
                    "action",
                    record,
                    "unblocked",
                    "automation",
                    json!({"list": name, "why": why}),
                );
                e.action = Some("unblock".into());
                events.push(e);
            }
        }
        self.follow_blocks(&record.stix_id, &record.value).await
    }

    /// Keeps the `blocked-by-scry` label true: it goes when the indicator is on no blocklist.
    async fn follow_blocks(&self, stix_id: &str, value: &str) -> Result<(), AutomationError> {
        let store = self.store()?;
        let Some(mut workflow) = store.workflow(stix_id).await? else {
            return Ok(());
        };
        if !workflow.labels.iter().any(|l| l == BLOCKED_LABEL)
            || !store.blocked_on(value, now_ms()).await?.is_empty()
        {
            return Ok(());
        }
        workflow.labels.retain(|l| l != BLOCKED_LABEL);
        workflow.updated_at = now_ms();
        workflow.origin = "automation".into();
        store.save_workflow(&workflow).await?;
        Ok(())
    }

    /// Removes expired blocklist entries and records each removal; returns how many.
    pub async fn expire_blocks(&self) -> Result<u64, AutomationError> {
        let expired = self.store()?.expire_blocks(now_ms()).await?;
        if !expired.is_empty() {
            let events: Vec<Event> = expired
                .iter()
                .map(|entry| Event {
                    action: Some("unblock".into()),
                    ..Event::about(
                        "action",
                        &entry.stix_id,
                        &entry.value,
                        "expired",
                        &entry.origin,
                        now_ms(),
                        json!({"list": entry.list, "expired_at": entry.expires_at}),
                    )
                })
                .collect();
            self.store()?.record_events(&events).await?;
            for entry in &expired {
                self.follow_blocks(&entry.stix_id, &entry.value).await?;
            }
        }
        Ok(expired.len() as u64)
    }

    /// Runs one action job and records what happened; the caller finishes the job.
    pub async fn run_action(&self, job: &Job) -> Result<JobOutcome, AutomationError> {
        let payload: ActionJob = match serde_json::from_value(job.payload.clone()) {
            Ok(p) => p,
            Err(e) => {
                return Ok(JobOutcome::Failed {
                    error: format!("job {} has an unreadable payload: {e}", job.id),
                });
            }
        };
        let started = Instant::now();
        let origin = format!("rule:{}", payload.rule);
        let dry_run = || {
            Ok(Acted::Did(format!(
                "dry run: would {}",
                payload.action.describe()
            )))
        };
        // The indicator acted on (stix id, value); none for a budget event.
        let (result, about) = match &payload.budget {
            Some(budget) => {
                let result = if self.dry_run {
                    dry_run()
                } else {
                    self.act_on_budget(&payload, budget).await
                };
                (result, None)
            }
            None => {
                let Some(stored) = self
                    .store()?
                    .indicator(&payload.kind, &payload.value)
                    .await?
                else {
                    return Ok(JobOutcome::Failed {
                        error: format!("{} is no longer stored", payload.value),
                    });
                };
                let record = stored.record;
                let workflow = self.store()?.workflow(&record.stix_id).await?;
                let context = indicator_context(&record, workflow.as_ref(), None);
                let result = if self.dry_run {
                    dry_run()
                } else {
                    self.act(&payload, &record, workflow, &context, &origin)
                        .await?
                };
                (result, Some((record.stix_id, record.value)))
            }
        };
        let elapsed = started.elapsed().as_millis() as i64;
        let (outcome, job_outcome, detail) = match result {
            Ok(Acted::Did(what)) => (
                if self.dry_run { "dry-run" } else { "ok" },
                JobOutcome::Done,
                json!({"did": what}),
            ),
            Ok(Acted::Nothing(why)) => ("skipped", JobOutcome::Done, json!({"why": why})),
            Err(Failure::Retry(error)) if job.attempts < job.max_attempts => (
                "retry",
                JobOutcome::Retry {
                    at: now_ms() + backoff_ms(job.attempts),
                    error: error.clone(),
                },
                json!({"error": error, "attempt": job.attempts, "of": job.max_attempts}),
            ),
            Err(Failure::Retry(error)) | Err(Failure::Permanent(error)) => (
                "failed",
                JobOutcome::Failed {
                    error: error.clone(),
                },
                json!({"error": error, "attempt": job.attempts, "of": job.max_attempts}),
            ),
        };
        let (stix_id, value) = about.unwrap_or_default();
        let mut e = Event::about(
            "action",
            &stix_id,
            &value,
            outcome,
            &origin,
            now_ms(),
            detail,
        );
        if payload.budget.is_some() {
            e.stix_id = None;
            e.indicator = None;
        }
        e.rule = Some(payload.rule.clone());
        e.action = Some(payload.action.name().to_owned());
        e.duration_ms = Some(elapsed);
        self.store()?.record_events(&[e]).await?;
        Ok(job_outcome)
    }

    /// Does one action of a `budget-alert` rule: only messages, as there is no indicator.
    async fn act_on_budget(
        &self,
        job: &ActionJob,
        budget: &BudgetContext,
    ) -> Result<Acted, Failure> {
        match &job.action {
            ActionSpec::Notify { channel } => self
                .send(
                    channel,
                    false,
                    json!({
                        "budget": budget,
                        "rule": job.rule,
                        "action": job.action.name(),
                        "trigger": job.trigger.as_str(),
                    }),
                )
                .await
                .map(Acted::Did),
            other => Err(Failure::Permanent(format!(
                "{} acts on an indicator; a budget event has none",
                other.name()
            ))),
        }
    }

    /// Does one action. Workflow changes re-trigger `updated` rules other than this one.
    async fn act(
        &self,
        job: &ActionJob,
        record: &IndicatorRecord,
        workflow: Option<Workflow>,
        context: &IndicatorContext,
        origin: &str,
    ) -> Result<Result<Acted, Failure>, AutomationError> {
        let mut state = workflow.unwrap_or_else(|| Workflow::untouched(&record.stix_id));
        let before = state.clone();
        let outcome = match &job.action {
            ActionSpec::Tag { tag } => {
                if !state.labels.contains(tag) {
                    state.labels.push(tag.clone());
                    state.labels.sort();
                }
                Ok(Acted::Did(format!("tagged {tag}")))
            }
            ActionSpec::Untag { tag } => {
                state.labels.retain(|l| l != tag);
                Ok(Acted::Did(format!("removed tag {tag}")))
            }
            ActionSpec::SetStatus { status } => {
                state.status = status.clone();
                Ok(Acted::Did(format!("status {status}")))
            }
            ActionSpec::SetPriority { priority } => {
                state.priority_override = Some(*priority);
                Ok(Acted::Did(format!("priority set to {priority}")))
            }
            ActionSpec::RevertPriority => {
                state.priority_override = None;
                Ok(Acted::Did(format!("priority back to {}", record.priority)))
            }
            ActionSpec::Block { list, days } => {
                let config = self.blocklists.get(list).cloned().unwrap_or_default();
                if let Err(refusal) = crate::blocklist::admits(list, &config, &record.value) {
                    return Ok(Ok(Acted::Nothing(refusal)));
                }
                let days = days.unwrap_or(config.days);
                let now = now_ms();
                self.store()?
                    .block(&BlockEntry {
                        list: list.clone(),
                        value: record.value.clone(),
                        stix_id: record.stix_id.clone(),
                        added_at: now,
                        expires_at: now + i64::from(days) * 86_400_000,
                        reason: format!("priority {} ({})", context.priority, job.rule),
                        origin: origin.to_owned(),
                        version_us: 0,
                        removed_at: None,
                    })
                    .await?;
                if !state.labels.iter().any(|l| l == BLOCKED_LABEL) {
                    state.labels.push(BLOCKED_LABEL.to_owned());
                    state.labels.sort();
                }
                Ok(Acted::Did(format!("on {list} for {days} days")))
            }
            ActionSpec::Unblock { list } => {
                let removed = self.store()?.unblock(list, &record.value).await?;
                if self
                    .store()?
                    .blocked_on(&record.value, now_ms())
                    .await?
                    .is_empty()
                {
                    state.labels.retain(|l| l != BLOCKED_LABEL);
                }
                Ok(if removed {
                    Acted::Did(format!("removed from {list}"))
                } else {
                    Acted::Nothing(format!("not on {list}"))
                })
            }
            ActionSpec::Notify { channel } => self
                .send(channel, false, indicator_message(job, record, context))
                .await
                .map(Acted::Did),
            ActionSpec::Escalate { channel, status } => {
                let sent = self
                    .send(channel, false, indicator_message(job, record, context))
                    .await;
                if sent.is_ok() {
                    state.status = status.clone();
                }
                sent.map(|s| Acted::Did(format!("{s}; status {status}")))
            }
            ActionSpec::Ticket { system } => {
                if let Some(open) = &state.ticket {
                    Ok(Acted::Nothing(format!("ticket {open} is already open")))
                } else {
                    match self
                        .send(system, true, indicator_message(job, record, context))
                        .await
                    {
                        Ok(id) => {
                            state.ticket = Some(id.clone());
                            Ok(Acted::Did(format!("ticket {id}")))
                        }
                        Err(f) => Err(f),
                    }
                }
            }
            ActionSpec::Enrich { source } => self.re_enrich(record, source.as_deref()).await?,
        };
        if state != before {
            state.updated_at = now_ms();
            state.origin = origin.to_owned();
            self.store()?.save_workflow(&state).await?;
            if job.chain < MAX_CHAIN && self.rules.listens(Trigger::Updated) {
                let now = indicator_context(record, Some(&state), None);
                let earlier = indicator_context(record, Some(&before), None);
                let mut events = Vec::new();
                let mut matches = Vec::new();
                let mut report = RulesReport::default();
                self.evaluate(
                    &[Trigger::Updated],
                    record,
                    &now,
                    Some(&earlier),
                    state.labels.iter().any(|l| !before.labels.contains(l)),
                    &state.updated_at.to_string(),
                    origin,
                    job.chain + 1,
                    &mut events,
                    &mut matches,
                    &mut report,
                );
                self.commit(matches, events, &mut report).await?;
            }
        }
        Ok(outcome)
    }

    /// Asks the sources again (bypassing the cache), saves the result, and runs the rules on it.
    async fn re_enrich(
        &self,
        record: &IndicatorRecord,
        only: Option<&str>,
    ) -> Result<Result<Acted, Failure>, AutomationError> {
        let Some(engine) = &self.engine else {
            return Ok(Err(Failure::Permanent(
                "this process has no enrichment engine".into(),
            )));
        };
        let observable = match scry_core::Observable::parse(&record.value) {
            Ok(o) => o,
            Err(e) => return Ok(Err(Failure::Permanent(e.to_string()))),
        };
        let candidate = crate::input::Candidate {
            position: crate::input::Position {
                file: Arc::from("automation"),
                line: 0,
                object: None,
            },
            input: record.value.clone(),
            observable,
            tlp: record.tlp.as_deref().and_then(|t| t.parse().ok()),
            context: None,
        };
        let fresh = engine
            .enrich_with(candidate, scry_sources::EnrichOptions { force: true }, only)
            .await;
        // The one pipeline's save: merged into what was known, saved with its history (every
        // paid call recorded once), then the rules.
        let mut saved = None;
        let progress = crate::Progress::default();
        let mut sink = |record: crate::Record| -> std::io::Result<()> {
            saved = Some(record.priority);
            Ok(())
        };
        let mut recorder = Recorder::new(
            engine,
            &progress,
            &mut sink,
            Some(self.store()?),
            Some(self),
        );
        if fresh.status == crate::Status::Failed {
            // Not saved, so the earlier state stands; the attempt's calls still go to the
            // history, so every budget counts them.
            recorder.add_history_only(&fresh);
            Box::pin(recorder.flush()).await.map_err(Box::new)?;
            return Ok(Err(Failure::Retry(
                fresh.error.unwrap_or_else(|| "enrichment failed".into()),
            )));
        }
        let occasion = Occasion {
            key: now_ms().to_string(),
            trigger: None,
            source: "automation".into(),
        };
        Box::pin(recorder.add_for(fresh, Some(occasion)))
            .await
            .map_err(Box::new)?;
        Box::pin(recorder.flush()).await.map_err(Box::new)?;
        drop(recorder);
        Ok(Ok(Acted::Did(match saved {
            Some(priority) => format!("re-enriched: priority {} → {priority}", record.priority),
            None => "re-enriched: nothing to store".to_owned(),
        })))
    }

    /// Renders `message` with the endpoint's template and sends it; for tickets, returns the id
    /// from the answer.
    async fn send(&self, name: &str, ticket: bool, mut message: Value) -> Result<String, Failure> {
        let endpoint = if ticket {
            self.tickets.get(name)
        } else {
            self.channels.get(name)
        }
        .ok_or_else(|| Failure::Permanent(format!("{name} is no longer configured")))?;
        message["params"] = json!(endpoint.params);
        let body = endpoint
            .template
            .render(&message)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        // One deadline over the whole exchange (connect, every SMTP step, the answer's body), so
        // a peer that accepts and then never answers fails this attempt instead of holding the
        // job, and the worker, forever; the attempt is retried later.
        let deadline = endpoint.deadline;
        let exchange = async {
            match &endpoint.delivery {
                Delivery::Http(target) => {
                    self.post(name, target, endpoint.template.is_json(), body, ticket)
                        .await
                }
                Delivery::Mail(mail) => send_mail(name, mail, &message, body).await,
            }
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Retry(format!(
                    "{name}: no complete answer within {:.1} s (timeout_seconds)",
                    deadline.as_secs_f64()
                )))
            })
    }

    /// POSTs a rendered body; for tickets, returns the id from the answer.
    async fn post(
        &self,
        name: &str,
        target: &HttpTarget,
        json_body: bool,
        body: String,
        ticket: bool,
    ) -> Result<String, Failure> {
        let mut request = self
            .http
            .post(&target.url)
            .timeout(target.timeout)
            .header(
                "content-type",
                if json_body {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                },
            )
            .header("user-agent", concat!("scry/", env!("CARGO_PKG_VERSION")));
        for (k, v) in &target.headers {
            request = request.header(k, v);
        }
        if let Some(secret) = &target.authorization {
            request = request.header("authorization", secret.expose());
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("{name}: {}", describe(&e))))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            if !ticket {
                return Ok(format!("{name} answered {}", status.as_u16()));
            }
            let id = target.id_pointer.as_deref().and_then(|pointer| {
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.pointer(pointer).cloned())
                    .and_then(|v| match v {
                        Value::String(s) => Some(s),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
            });
            return Ok(id.unwrap_or_else(|| format!("{name} (no id in the answer)")));
        }
        let snippet: String = text.chars().take(200).collect();
        let message = format!("{name} answered HTTP {}: {snippet}", status.as_u16());
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(Failure::Retry(message))
        } else {
            Err(Failure::Permanent(message))
        }
    }

    /// What the rules would do for a stored indicator, without doing anything: for
    /// `scry rules test`. Each verdict comes with the trigger it was evaluated for.
    pub fn test(&self, record: &IndicatorRecord, workflow: Option<&Workflow>) -> Vec<TestVerdict> {
        let context = indicator_context(record, workflow, None);
        let mut out = Vec::new();
        for trigger in [
            Trigger::Created,
            Trigger::Ingested,
            Trigger::Updated,
            Trigger::Enriched,
        ] {
            for verdict in self.rules.evaluate(trigger, &context, "manual") {
                out.push(TestVerdict {
                    trigger,
                    rule: verdict.rule.spec.name.clone(),
                    matched: verdict.matched,
                    actions: verdict
                        .rule
                        .spec
                        .actions
                        .iter()
                        .map(ActionSpec::describe)
                        .collect(),
                });
            }
        }
        out
    }
}

/// What a message about an indicator shows: the indicator, the rule and the top reasons.
fn indicator_message(
    job: &ActionJob,
    record: &IndicatorRecord,
    context: &IndicatorContext,
) -> Value {
    let reasons: Vec<&Value> = record
        .reasons
        .as_array()
        .map(|all| all.iter().take(8).collect())
        .unwrap_or_default();
    let reasons_text = reasons
        .iter()
        .map(|r| {
            format!(
                "+{} {} {}",
                r["points"],
                r["signal"].as_str().unwrap_or(""),
                r["value"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "indicator": context,
        "rule": job.rule,
        "action": job.action.name(),
        "trigger": job.trigger.as_str(),
        "reasons": reasons,
        "reasons_text": reasons_text,
    })
}

/// Sends a rendered message by e-mail. The SMTP server's 4xx answers and lost connections are
/// retried; its 5xx answers are not.
async fn send_mail(
    name: &str,
    mail: &MailTarget,
    message: &Value,
    body: String,
) -> Result<String, Failure> {
    let subject = mail
        .subject
        .render(message)
        .map_err(|e| Failure::Permanent(format!("subject: {e}")))?;
    // One line, whatever the template or the values in it hold.
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut builder = lettre::Message::builder()
        .from(mail.from.clone())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        builder = builder.to(to.clone());
    }
    let email = builder
        .body(body)
        .map_err(|e| Failure::Permanent(format!("{name}: {e}")))?;
    match mail.transport.send(email).await {
        Ok(response) => Ok(format!("{name} accepted the message ({})", response.code())),
        Err(e) if e.is_permanent() => Err(Failure::Permanent(format!("{name}: {e}"))),
        Err(e) => Err(Failure::Retry(format!("{name}: {e}"))),
    }
}

/// What a rule would do for an indicator on one trigger (`scry rules test`).
#[derive(Debug, Clone, PartialEq)]
pub struct TestVerdict {
    pub trigger: Trigger,
    pub rule: String,
    pub matched: Result<bool, String>,
    /// The actions, in words.
    pub actions: Vec<String>,
}

/// What an action did when it did not fail.
enum Acted {
    Did(String),
    Nothing(String),
}

/// Why an action failed: worth retrying (network, 429, 5xx) or not (4xx, bad template).
enum Failure {
    Retry(String),
    Permanent(String),
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        // reqwest's message names the URL, which is configuration, not a secret.
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(url: &str) -> EndpointConfig {
        EndpointConfig {
            url: url.into(),
            from: Some("scry <scry@example.org>".into()),
            to: vec!["soc@example.org".into()],
            ..EndpointConfig::default()
        }
    }

    fn problem(config: &EndpointConfig, channel: bool) -> String {
        match build_endpoint(config, channel) {
            Ok(_) => panic!("{} builds", config.url),
            Err(message) => message,
        }
    }

    #[test]
    fn endpoints_refuse_settings_of_the_other_kind_and_unsafe_mail() {
        assert!(build_endpoint(&mail("smtp://mail.example.org"), true).is_ok());
        assert!(build_endpoint(&mail("smtps://mail.example.org:2465"), true).is_ok());
        assert_eq!(
            problem(&mail("smtp://mail.example.org"), false),
            "url \"smtp://mail.example.org\": use http or https"
        );
        assert_eq!(
            problem(&mail("https://hooks.example.org/x"), true),
            "from, to only for e-mail (smtp://, smtps://) endpoints"
        );
        let headers = EndpointConfig {
            headers: [("x-a".to_owned(), "b".to_owned())].into(),
            ..mail("smtp://mail.example.org")
        };
        assert_eq!(problem(&headers, true), "headers only for HTTP endpoints");
        let nobody = EndpointConfig {
            to: Vec::new(),
            ..mail("smtp://mail.example.org")
        };
        assert_eq!(problem(&nobody, true), "`to` lists no recipient");
        let bad_from = EndpointConfig {
            from: Some("not an address".into()),
            ..mail("smtp://mail.example.org")
        };
        assert!(problem(&bad_from, true).starts_with("from \"not an address\": "));
        assert!(
            problem(&mail("smtp://user:pw@mail.example.org"), true)
                .starts_with("put the SMTP user in `username`")
        );
        // A variable every test process has stands in for a password.
        let password = std::env::var("PATH").expect("PATH is set");
        let in_clear = |host: &str| EndpointConfig {
            username: Some("scry".into()),
            password_env: Some("PATH".into()),
            starttls: false,
            ..mail(&format!("smtp://{host}"))
        };
        let refused = problem(&in_clear("mail.example.org"), true);
        assert!(
            refused.starts_with("a password is never sent in the clear"),
            "{refused}"
        );
        assert!(!refused.contains(&password));
        if let Err(e) = build_endpoint(&in_clear("127.0.0.1:2525"), true) {
            panic!("{e}");
        }
        let unset = EndpointConfig {
            username: Some("scry".into()),
            password_env: Some("SCRY_TEST_SMTP_UNSET".into()),
            ..mail("smtp://mail.example.org")
        };
        assert_eq!(
            problem(&unset, true),
            "password_env names SCRY_TEST_SMTP_UNSET, which is not set"
        );
    }
}
