//! Rules and playbooks as written in configuration: a name, the triggers it listens to, a
//! condition, ordered actions and an enabled flag. A playbook is a file of rules.
//!
//! ```toml
//! [[rules]]
//! name = "block-high"
//! on = ["enriched"]
//! when = 'indicator.priority >= 80 && indicator.type == "ipv4-addr"'
//! actions = [
//!   { do = "block", list = "firewall", days = 7 },
//!   { do = "notify", channel = "soc" },
//!   { do = "ticket", system = "jira" },
//! ]
//! ```

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, Evaluator, Subject};
use crate::context::{BudgetContext, IndicatorContext};
use crate::file::{Place, RuleSource};
use crate::lists::NamedLists;

/// What makes rules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// An indicator stored for the first time.
    Created,
    /// An indicator read from any input, whether known already or not.
    Ingested,
    /// A stored indicator whose priority, tags or CVEs changed (by a source or an action).
    Updated,
    /// A source answered for an indicator (new answer or cached).
    Enriched,
    /// The scheduled re-enrichment of indicators older than their refresh interval.
    Schedule,
    /// A person asked for it: a direct `scry enrich` or `scry import` of indicators.
    Manual,
    /// A source's credit use crossed its alert share or its limit, or the service refused for
    /// lack of credits. Such a rule sees `budget`, not an indicator, and can only notify.
    BudgetAlert,
}

impl Trigger {
    /// Every trigger, in the order the reference lists them.
    pub const ALL: &[Trigger] = &[
        Trigger::Created,
        Trigger::Ingested,
        Trigger::Updated,
        Trigger::Enriched,
        Trigger::Schedule,
        Trigger::Manual,
        Trigger::BudgetAlert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Created => "created",
            Trigger::Ingested => "ingested",
            Trigger::Updated => "updated",
            Trigger::Enriched => "enriched",
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::BudgetAlert => "budget-alert",
        }
    }
}

fn default_when() -> String {
    "true".to_owned()
}

fn yes() -> bool {
    true
}

fn escalated() -> String {
    "escalated".to_owned()
}

/// The workflow statuses an indicator can have, in the order a case usually moves through
/// them: what `set-status` and `escalate` may set, by hand or by a rule.
pub const WORKFLOW_STATUSES: [&str; 6] = [
    "new",
    "investigating",
    "escalated",
    "blocked",
    "false-positive",
    "closed",
];

/// Whether `status` is one of [`WORKFLOW_STATUSES`]; the refusal names them, and the nearest.
pub fn check_status(status: &str) -> Result<(), String> {
    if WORKFLOW_STATUSES.contains(&status) {
        return Ok(());
    }
    let nearest = WORKFLOW_STATUSES
        .iter()
        .map(|s| (strsim::damerau_levenshtein(s, &status.to_lowercase()), *s))
        .filter(|(distance, s)| *distance <= 2.max(s.len() / 4))
        .min();
    Err(match nearest {
        Some((_, suggestion)) => format!(
            "{status:?} is not a status; did you mean {suggestion:?}? (statuses: {})",
            WORKFLOW_STATUSES.join(", ")
        ),
        None => format!(
            "{status:?} is not a status (statuses: {})",
            WORKFLOW_STATUSES.join(", ")
        ),
    })
}

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub on: Vec<Trigger>,
    /// A CEL condition over `indicator`; `true` when left out.
    #[serde(default = "default_when")]
    pub when: String,
    pub actions: Vec<ActionSpec>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A rule acts once per change of the state it matched (see the engine's automation); with a
    /// cooldown it may act again on an unchanged state once this many hours have passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_hours: Option<f64>,
}

/// One step of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ActionSpec {
    /// Ask a source again (all enriching sources when `source` is left out), bypassing the cache.
    Enrich {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    Tag {
        tag: String,
    },
    Untag {
        tag: String,
    },
    SetStatus {
        status: String,
    },
    /// A manual priority shown instead of the computed one, until `revert-priority`.
    SetPriority {
        priority: u8,
    },
    RevertPriority,
    /// Send a message to a configured channel.
    Notify {
        channel: String,
    },
    /// Add to a named blocklist, for `days` (the list's default when left out).
    Block {
        list: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        days: Option<u32>,
    },
    Unblock {
        list: String,
    },
    /// Open a ticket in a configured system; its id is kept on the indicator.
    Ticket {
        system: String,
    },
    /// Notify a second channel and set a status.
    Escalate {
        channel: String,
        #[serde(default = "escalated")]
        status: String,
    },
}

impl ActionSpec {
    /// The action's name as written after `do =`.
    pub fn name(&self) -> &'static str {
        match self {
            ActionSpec::Enrich { .. } => "enrich",
            ActionSpec::Tag { .. } => "tag",
            ActionSpec::Untag { .. } => "untag",
            ActionSpec::SetStatus { .. } => "set-status",
            ActionSpec::SetPriority { .. } => "set-priority",
            ActionSpec::RevertPriority => "revert-priority",
            ActionSpec::Notify { .. } => "notify",
            ActionSpec::Block { .. } => "block",
            ActionSpec::Unblock { .. } => "unblock",
            ActionSpec::Ticket { .. } => "ticket",
            ActionSpec::Escalate { .. } => "escalate",
        }
    }

    /// What the action would do, in words (dry runs and `scry rules test`).
    pub fn describe(&self) -> String {
        match self {
            ActionSpec::Enrich { source: Some(s) } => format!("re-enrich with {s}"),
            ActionSpec::Enrich { source: None } => "re-enrich with every source".into(),
            ActionSpec::Tag { tag } => format!("tag {tag}"),
            ActionSpec::Untag { tag } => format!("remove tag {tag}"),
            ActionSpec::SetStatus { status } => format!("set status {status}"),
            ActionSpec::SetPriority { priority } => format!("set priority {priority}"),
            ActionSpec::RevertPriority => "revert to the computed priority".into(),
            ActionSpec::Notify { channel } => format!("notify {channel}"),
            ActionSpec::Block {
                list,
                days: Some(d),
            } => format!("block on {list} for {d} days"),
            ActionSpec::Block { list, days: None } => format!("block on {list}"),
            ActionSpec::Unblock { list } => format!("remove from {list}"),
            ActionSpec::Ticket { system } => format!("open a {system} ticket"),
            ActionSpec::Escalate { channel, status } => {
                format!("escalate to {channel} and set status {status}")
            }
        }
    }

    /// True for actions that reach outside the machine (messages, tickets).
    pub fn is_outbound(&self) -> bool {
        matches!(
            self,
            ActionSpec::Notify { .. } | ActionSpec::Ticket { .. } | ActionSpec::Escalate { .. }
        )
    }
}

/// The names actions may refer to; anything else is an error when rules load.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub channels: BTreeSet<String>,
    pub ticket_systems: BTreeSet<String>,
    pub blocklists: BTreeSet<String>,
    pub sources: BTreeSet<String>,
}

/// A rule that does not load: where the mistake is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {}{message}", if rule.is_empty() { String::new() } else { format!("rule {rule:?}: ") })]
pub struct RuleError {
    /// The file, line and column (the line is 0 when not known).
    pub place: Place,
    /// The rule's name (`#2` for a second rule without one); empty for the file as a whole.
    pub rule: String,
    pub message: String,
}

impl RuleError {
    pub fn new(place: Place, rule: &str, message: String) -> RuleError {
        RuleError {
            place,
            rule: rule.to_owned(),
            message,
        }
    }
}

/// A loaded rule.
#[derive(Debug)]
pub struct Rule {
    pub spec: RuleSpec,
    pub condition: Condition,
    /// Where it is written.
    pub place: Place,
}

/// What a rule did with one indicator.
#[derive(Debug)]
pub struct Verdict<'a> {
    pub rule: &'a Rule,
    /// Whether the condition held, or why it could not be evaluated.
    pub matched: Result<bool, String>,
}

/// Every loaded rule, ready to evaluate.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    evaluator: Evaluator,
}

fn list_names(targets: &BTreeSet<String>) -> String {
    if targets.is_empty() {
        "none is configured".to_owned()
    } else {
        format!(
            "configured: {}",
            targets.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

impl RuleSet {
    /// Compiles rules as read ([`crate::file::read_rules`], or [`RuleSource::unplaced`] for rules
    /// built in code). Every problem in every rule is reported, not just the first, each where it
    /// is written.
    pub fn compile(
        sources: Vec<RuleSource>,
        lists: NamedLists,
        targets: &Targets,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let evaluator = Evaluator::new(lists);
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut names = HashSet::new();
        for source in sources {
            let RuleSource {
                spec,
                place,
                when,
                actions: action_places,
                incomplete,
            } = source;
            let mut fail = |at: &Place, message: String| {
                errors.push(RuleError::new(at.clone(), &spec.name, message));
            };
            if !incomplete {
                if spec.name.trim().is_empty() {
                    fail(&place, "a rule needs a name".into());
                    continue;
                }
                if spec.on.is_empty() {
                    fail(&place, "`on` lists no trigger".into());
                }
                if spec.actions.is_empty() {
                    fail(&place, "`actions` is empty".into());
                }
            }
            if !spec.name.is_empty() && !names.insert(spec.name.clone()) {
                fail(&place, "another rule has the same name".into());
            }
            let action_place = |index: usize| action_places.get(index).unwrap_or(&place).clone();
            let subject = if spec.on.contains(&Trigger::BudgetAlert) {
                if spec.on.len() > 1 {
                    fail(
                        &place,
                        "`budget-alert` sees a budget, not an indicator: list it alone in `on` and write the indicator triggers in another rule".into(),
                    );
                }
                for (index, action) in spec.actions.iter().enumerate() {
                    if !matches!(action, ActionSpec::Notify { .. }) {
                        fail(
                            &action_place(index),
                            format!(
                                "action {} ({}): a budget-alert rule has no indicator to act on; it can only notify",
                                index + 1,
                                action.name()
                            ),
                        );
                    }
                }
                Subject::Budget
            } else {
                Subject::Indicator
            };
            if let Some(hours) = spec.cooldown_hours
                && !(hours.is_finite() && hours > 0.0)
            {
                fail(
                    &place,
                    format!("`cooldown_hours` is {hours}; it must be a positive number of hours"),
                );
            }
            for (index, action) in spec.actions.iter().enumerate() {
                let step = index + 1;
                let missing = |kind: &str, name: &str, known: &BTreeSet<String>| {
                    (!known.contains(name)).then(|| {
                        format!(
                            "action {step} ({}): no {kind} named {name:?} ({})",
                            action.name(),
                            list_names(known)
                        )
                    })
                };
                let problem = match action {
                    ActionSpec::Notify { channel } | ActionSpec::Escalate { channel, .. } => {
                        missing("channel", channel, &targets.channels)
                    }
                    ActionSpec::Ticket { system } => {
                        missing("ticket system", system, &targets.ticket_systems)
                    }
                    ActionSpec::Block { list, .. } | ActionSpec::Unblock { list } => {
                        missing("blocklist", list, &targets.blocklists)
                    }
                    ActionSpec::Enrich {
                        source: Some(source),
                    } => missing("source", source, &targets.sources),
                    ActionSpec::SetPriority { priority } if *priority > 100 => Some(format!(
                        "action {step} (set-priority): {priority} is above 100"
                    )),
                    ActionSpec::Tag { tag } | ActionSpec::Untag { tag }
                        if tag.trim().is_empty() =>
                    {
                        Some(format!("action {step}: the tag is empty"))
                    }
                    _ => None,
                };
                let problem = problem.or_else(|| match action {
                    ActionSpec::SetStatus { status } | ActionSpec::Escalate { status, .. } => {
                        check_status(status)
                            .err()
                            .map(|e| format!("action {step} ({}): {e}", action.name()))
                    }
                    _ => None,
                });
                if let Some(message) = problem {
                    fail(&action_place(index), message);
                }
            }
            match Condition::compile(&evaluator, &spec.when, subject) {
                Ok(condition) if !incomplete => rules.push(Rule {
                    spec,
                    condition,
                    place,
                }),
                Ok(_) => {}
                Err(found) => {
                    for e in found {
                        if when.line == 0 {
                            fail(&when, format!("condition {e}"));
                        } else {
                            fail(
                                &when.within(e.line, e.column),
                                format!("condition: {}", e.message),
                            );
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(RuleSet { rules, evaluator })
        } else {
            Err(errors)
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when some enabled rule listens to `trigger`.
    pub fn listens(&self, trigger: Trigger) -> bool {
        self.rules
            .iter()
            .any(|r| r.spec.enabled && r.spec.on.contains(&trigger))
    }

    /// Evaluates every enabled rule that listens to `trigger` against one indicator. A rule does
    /// not see changes it caused itself (`origin` = `rule:NAME`), so it cannot loop on itself.
    pub fn evaluate(
        &self,
        trigger: Trigger,
        indicator: &IndicatorContext,
        origin: &str,
    ) -> Vec<Verdict<'_>> {
        let listening = self.listening(trigger, |rule| {
            origin.strip_prefix("rule:") != Some(rule.spec.name.as_str())
        });
        judge(listening, |conditions| {
            self.evaluator.evaluate(conditions, indicator)
        })
    }

    /// Evaluates every enabled rule that listens to any of `triggers` once, with the first of
    /// them it listens to; otherwise as [`RuleSet::evaluate`].
    pub fn evaluate_any(
        &self,
        triggers: &[Trigger],
        indicator: &IndicatorContext,
        origin: &str,
    ) -> Vec<(Trigger, Verdict<'_>)> {
        let listening: Vec<(Trigger, &Rule)> = self
            .rules
            .iter()
            .filter(|r| {
                r.spec.enabled && origin.strip_prefix("rule:") != Some(r.spec.name.as_str())
            })
            .filter_map(|r| {
                triggers
                    .iter()
                    .find(|t| r.spec.on.contains(t))
                    .map(|t| (*t, r))
            })
            .collect();
        let (on, rules): (Vec<Trigger>, Vec<&Rule>) = listening.into_iter().unzip();
        on.into_iter()
            .zip(judge(rules, |conditions| {
                self.evaluator.evaluate(conditions, indicator)
            }))
            .collect()
    }

    /// Evaluates every enabled `budget-alert` rule against one budget event.
    pub fn evaluate_budget(&self, budget: &BudgetContext) -> Vec<Verdict<'_>> {
        let listening = self.listening(Trigger::BudgetAlert, |_| true);
        judge(listening, |conditions| {
            self.evaluator.evaluate_budget(conditions, budget)
        })
    }

    /// The enabled rules on `trigger` that `keep` keeps.
    fn listening(&self, trigger: Trigger, keep: impl Fn(&Rule) -> bool) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.spec.enabled && r.spec.on.contains(&trigger) && keep(r))
            .collect()
    }
}

/// Pairs each rule with what `evaluate` says of its condition (all conditions at once).
fn judge<'a>(
    rules: Vec<&'a Rule>,
    evaluate: impl FnOnce(&[&Condition]) -> Vec<Result<bool, String>>,
) -> Vec<Verdict<'a>> {
    if rules.is_empty() {
        return Vec::new();
    }
    let conditions: Vec<&Condition> = rules.iter().map(|r| &r.condition).collect();
    rules
        .into_iter()
        .zip(evaluate(&conditions))
        .map(|(rule, matched)| Verdict { rule, matched })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        rules: Vec<RuleSpec>,
    }

    fn targets() -> Targets {
        Targets {
            channels: ["soc".to_owned()].into(),
            ticket_systems: ["jira".to_owned()].into(),
            blocklists: ["firewall".to_owned()].into(),
            sources: ["criminalip".to_owned()].into(),
        }
    }

    fn load(text: &str) -> Result<RuleSet, Vec<RuleError>> {
        let file: File = toml_from_str(text);
        let mut lists = NamedLists::default();
        lists.add("bad_isps", ["AS9009"]).expect("list");
        RuleSet::compile(
            file.rules
                .into_iter()
                .map(|r| RuleSource::unplaced("playbooks/high.toml", r))
                .collect(),
            lists,
            &targets(),
        )
    }

    /// Rules are TOML in configuration; the tests write the same shape as JSON to stay free of a
    /// TOML parser here.
    fn toml_from_str(text: &str) -> File {
        serde_json::from_str(text).expect("test rules parse")
    }

    #[test]
    fn rules_fire_on_their_triggers_and_not_on_their_own_changes() {
        let set = load(
            r#"{"rules": [
                {"name": "block-high", "on": ["enriched"], "when": "indicator.priority >= 80",
                 "actions": [{"do": "block", "list": "firewall", "days": 7}, {"do": "notify", "channel": "soc"}]},
                {"name": "tag-isp", "on": ["enriched", "updated"], "when": "in_list(indicator.asn, 'bad_isps')",
                 "actions": [{"do": "tag", "tag": "bad-isp"}]},
                {"name": "off", "on": ["enriched"], "enabled": false, "actions": [{"do": "ticket", "system": "jira"}]}
            ]}"#,
        )
        .expect("loads");
        let indicator = IndicatorContext {
            priority: 85,
            asn: 9009,
            ..IndicatorContext::default()
        };
        let fired = |trigger, origin| -> Vec<(String, bool)> {
            set.evaluate(trigger, &indicator, origin)
                .into_iter()
                .map(|v| (v.rule.spec.name.clone(), v.matched.expect("evaluates")))
                .collect()
        };
        assert_eq!(
            fired(Trigger::Enriched, "source:criminalip"),
            [("block-high".into(), true), ("tag-isp".into(), true)]
        );
        assert_eq!(fired(Trigger::Updated, "rule:tag-isp"), []);
        assert_eq!(
            fired(Trigger::Updated, "rule:block-high"),
            [("tag-isp".into(), true)]
        );
        assert!(set.listens(Trigger::Updated));
        assert!(!set.listens(Trigger::Created));
    }

    #[test]
    fn every_mistake_is_reported_with_file_rule_and_place() {
        let errors = load(
            r#"{"rules": [
                {"name": "a", "on": ["enriched"], "when": "indicator.priority >= ",
                 "actions": [{"do": "notify", "channel": "chat"}, {"do": "block", "list": "edl"}]},
                {"name": "a", "on": [], "actions": []}
            ]}"#,
        )
        .expect_err("does not load");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 6, "{text:#?}");
        assert_eq!(
            text[0],
            "playbooks/high.toml: rule \"a\": action 1 (notify): no channel named \"chat\" (configured: soc)"
        );
        assert!(text[1].contains("action 2 (block): no blocklist named \"edl\""));
        assert!(text[2].starts_with("playbooks/high.toml: rule \"a\": condition line 1, column "));
        assert!(
            text[3..]
                .iter()
                .any(|t| t.ends_with("another rule has the same name"))
        );
        assert!(
            text[3..]
                .iter()
                .any(|t| t.ends_with("`on` lists no trigger"))
        );
        assert!(text[3..].iter().any(|t| t.ends_with("`actions` is empty")));
    }

    #[test]
    fn budget_rules_see_the_budget_and_can_only_notify() {
        let set = load(
            r#"{"rules": [
                {"name": "credits-low", "on": ["budget-alert"],
                 "when": "budget.event == 'alert' && budget.percent >= 80",
                 "actions": [{"do": "notify", "channel": "soc"}]},
                {"name": "high", "on": ["enriched"], "when": "indicator.priority >= 80",
                 "actions": [{"do": "tag", "tag": "high"}]}
            ]}"#,
        )
        .expect("loads");
        let budget = BudgetContext {
            source: "criminalip".into(),
            event: "alert".into(),
            period: "daily".into(),
            used: 80,
            limit: 100,
            percent: 80,
            message: String::new(),
        };
        let verdicts = set.evaluate_budget(&budget);
        assert_eq!(verdicts.len(), 1, "only the budget rule listens");
        assert_eq!(verdicts[0].rule.spec.name, "credits-low");
        assert_eq!(verdicts[0].matched, Ok(true));
        let exhausted = BudgetContext {
            event: "exhausted".into(),
            ..budget
        };
        assert_eq!(set.evaluate_budget(&exhausted)[0].matched, Ok(false));

        let errors = load(
            r#"{"rules": [
                {"name": "mixed", "on": ["budget-alert", "enriched"], "when": "indicator.priority > 1",
                 "actions": [{"do": "block", "list": "firewall"}, {"do": "notify", "channel": "soc"}]}
            ]}"#,
        )
        .expect_err("does not load");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(text[0].contains("list it alone in `on`"), "{}", text[0]);
        assert!(
            text[1].ends_with("action 1 (block): a budget-alert rule has no indicator to act on; it can only notify"),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("unknown name `indicator`: this condition sees `budget`"),
            "{}",
            text[2]
        );
    }

    #[test]
    fn unknown_keys_in_actions_are_refused() {
        let result: Result<ActionSpec, _> =
            serde_json::from_str(r#"{"do": "block", "list": "firewall", "dayz": 3}"#);
        assert!(result.unwrap_err().to_string().contains("dayz"));
        let result: Result<ActionSpec, _> = serde_json::from_str(r#"{"do": "launch"}"#);
        assert!(result.unwrap_err().to_string().contains("launch"));
    }
}
