//! Conditions: CEL expressions over the indicator context (see [`crate::context`]).
//!
//! CEL is small, side-effect free and not Turing-complete: a condition cannot loop forever, touch
//! the network or change anything. Conditions are compiled once, when rules load, and checked
//! there ([`crate::check`]): a syntax error, a name other than the one the rule sees
//! (`indicator`, or `budget` for `budget-alert` rules), a field the context does not have, a
//! comparison or function on the wrong type, an unknown function, a list name that is not a
//! literal naming a configured list, or a regular expression that does not compile is an error
//! with its line and column, all of them at once, so a mistake shows at `scry rules check`
//! instead of at 3 a.m. on the first matching indicator.
//!
//! `matches` is scry's own rather than CEL's: CEL's compiles its regular expression on every
//! call, which made a rule set with a handful of patterns spend most of its time compiling them.
//! Here each pattern written in a condition is compiled once, when the rule loads, and a pattern
//! computed at evaluation time is compiled once and kept (up to [`COMPUTED_PATTERNS`] of them).
//! The syntax is the `regex` crate's, as it was under CEL's `matches`.
//!
//! CEL cannot loop forever, but loops over lists nest, and their costs multiply: four lists of
//! 60 numbers nested in `exists` are 13 million steps, seconds per indicator on every save. A
//! condition's cost is estimated when it compiles ([`estimated_cost`], the way cel-go's cost
//! estimator bounds a program before running it): one step per node, a loop's body counted once
//! per element of what it walks (a list written out counts its elements, a list read from the
//! indicator is assumed to hold [`ASSUMED_LIST_LENGTH`]). Past [`MAX_COST`] the condition is
//! refused with its estimate, so a costly condition fails `scry rules check` and never runs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::extractors::This;
use cel::{Context, Env, ExecutionError, Program, Value};
use regex::Regex;

use crate::check::Check;
use crate::context::{BudgetContext, CriminalIpContext, IndicatorContext, PreviousContext};
use crate::lists::NamedLists;
use crate::native::{self, Native};

/// Why a condition does not compile, with its 1-based position in the condition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ConditionError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What a condition is about: the one name it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A stored indicator (`indicator`), for every trigger but `budget-alert`.
    Indicator,
    /// A source's credit use (`budget`), for `budget-alert`.
    Budget,
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Indicator => "indicator",
            Subject::Budget => "budget",
        }
    }
}

/// A compiled condition: CEL's program, and the native form when the condition has one of the
/// shapes [`crate::native`] covers.
#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
    native: Option<Native>,
}

/// The most steps a condition may be estimated to take on one indicator.
pub const MAX_COST: u64 = 100_000;

/// How long a list read from the indicator (its tags, CVEs, ports, services…) is assumed to be
/// when a condition's cost is estimated.
pub const ASSUMED_LIST_LENGTH: u64 = 100;

/// The steps `node` is estimated to take at most: one per node, with a loop's condition and
/// step counted once per element of the range it walks.
pub fn estimated_cost(node: &IdedExpr) -> u64 {
    match &node.expr {
        Expr::Literal(_) | Expr::Ident(_) | Expr::Unspecified | Expr::Struct(_) => 1,
        Expr::Select(select) => estimated_cost(&select.operand).saturating_add(1),
        Expr::Call(call) => call
            .target
            .iter()
            .map(|target| estimated_cost(target))
            .chain(call.args.iter().map(estimated_cost))
            .fold(1, u64::saturating_add),
        Expr::List(list) => list
            .elements
            .iter()
            .map(estimated_cost)
            .fold(1, u64::saturating_add),
        Expr::Map(map) => map
            .entries
            .iter()
            .map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => {
                    estimated_cost(&e.key).saturating_add(estimated_cost(&e.value))
                }
                EntryExpr::StructField(f) => estimated_cost(&f.value),
            })
            .fold(1, u64::saturating_add),
        Expr::Comprehension(c) => {
            let each = estimated_cost(&c.loop_cond).saturating_add(estimated_cost(&c.loop_step));
            estimated_length(&c.iter_range)
                .saturating_mul(each)
                .saturating_add(estimated_cost(&c.iter_range))
                .saturating_add(estimated_cost(&c.accu_init))
                .saturating_add(estimated_cost(&c.result))
        }
    }
}

/// How many elements a loop over `node` walks at most.
fn estimated_length(node: &IdedExpr) -> u64 {
    match &node.expr {
        Expr::List(list) => list.elements.len() as u64,
        Expr::Map(map) => map.entries.len() as u64,
        // `map` and `filter` give at most as many elements as they walk.
        Expr::Comprehension(c) => estimated_length(&c.iter_range),
        _ => ASSUMED_LIST_LENGTH,
    }
}

impl Condition {
    /// Compiles and checks `source`, about `subject`, against the evaluator's lists; the regular
    /// expressions it writes out are compiled into the evaluator's patterns.
    pub fn compile(
        evaluator: &Evaluator,
        source: &str,
        subject: Subject,
    ) -> Result<Condition, Vec<ConditionError>> {
        let program = evaluator.env.compile(source).map_err(|errors| {
            let mut found: Vec<ConditionError> = errors
                .errors
                .iter()
                .map(|e| ConditionError {
                    line: e.pos.0.max(1) as usize,
                    column: e.pos.1.max(1) as usize,
                    message: e.msg.clone(),
                })
                .collect();
            if found.is_empty() {
                found.push(ConditionError {
                    line: 1,
                    column: 1,
                    message: errors.to_string(),
                });
            }
            found
        })?;
        let load_pattern = |text: &str| evaluator.patterns.load(text);
        let errors = Check::new(source, &evaluator.lists, &program, subject, &load_pattern).run();
        if !errors.is_empty() {
            return Err(errors);
        }
        let cost = estimated_cost(program.expression());
        if cost > MAX_COST {
            return Err(vec![ConditionError {
                line: 1,
                column: 1,
                message: format!(
                    "this condition may take about {cost} steps on each indicator, more than the {MAX_COST} allowed: loops over lists multiply (a list of 60 inside a list of 60 is 3,600 steps, and a list read from the indicator counts as {ASSUMED_LIST_LENGTH}); nest fewer loops or walk shorter lists"
                ),
            }]);
        }
        let native = match subject {
            Subject::Indicator => {
                native::compile(program.expression(), &|text| evaluator.patterns.get(text))
            }
            Subject::Budget => None,
        };
        Ok(Condition {
            source: source.to_owned(),
            program,
            native,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Evaluates conditions: CEL's standard environment plus `in_list` and `cidr_match` over the
/// named lists. Cheap to clone; share one per rule set.
/// Patterns computed at evaluation time (not written in a condition) kept compiled, at most.
pub const COMPUTED_PATTERNS: usize = 256;

/// Compiled regular expressions by their text: those written in conditions, compiled when they
/// load, and up to [`COMPUTED_PATTERNS`] computed ones.
#[derive(Debug, Default)]
struct Patterns {
    compiled: RwLock<HashMap<String, Arc<Regex>>>,
    computed: std::sync::atomic::AtomicUsize,
}

impl Patterns {
    fn compile(text: &str) -> Result<Regex, String> {
        Regex::new(text).map_err(|e| format!("{text:?} is not a valid regular expression: {e}"))
    }

    /// Compiles a pattern written in a condition and keeps it.
    fn load(&self, text: &str) -> Result<(), String> {
        if self.get(text).is_none() {
            let regex = Arc::new(Patterns::compile(text)?);
            self.compiled
                .write()
                .expect("patterns lock")
                .insert(text.to_owned(), regex);
        }
        Ok(())
    }

    fn get(&self, text: &str) -> Option<Arc<Regex>> {
        self.compiled
            .read()
            .expect("patterns lock")
            .get(text)
            .cloned()
    }

    /// The compiled pattern for `text`, compiling (and keeping, while there is room) one that
    /// no condition wrote out.
    fn matches(&self, value: &str, text: &str) -> Result<bool, ExecutionError> {
        use std::sync::atomic::Ordering;
        if let Some(regex) = self.get(text) {
            return Ok(regex.is_match(value));
        }
        let regex = Patterns::compile(text).map_err(|message| ExecutionError::FunctionError {
            function: "matches".into(),
            message,
        })?;
        let found = regex.is_match(value);
        if self.computed.fetch_add(1, Ordering::Relaxed) < COMPUTED_PATTERNS {
            self.compiled
                .write()
                .expect("patterns lock")
                .insert(text.to_owned(), Arc::new(regex));
        }
        Ok(found)
    }
}

/// Evaluates conditions. The functions scry adds are registered once, in a root context every
/// evaluation shares; each evaluation binds its subject in a scope of its own.
#[derive(Clone)]
pub struct Evaluator {
    env: Arc<Env>,
    lists: Arc<NamedLists>,
    patterns: Arc<Patterns>,
    root: Arc<Context<'static, 'static>>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The context every evaluation starts from: the standard library and scry's functions.
fn root_context(
    env: &Arc<Env>,
    lists: &Arc<NamedLists>,
    patterns: &Arc<Patterns>,
) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(env));
    let in_lists = Arc::clone(lists);
    // None of these names is in the standard library (CEL's own `matches` is not built), so
    // registering them cannot conflict.
    let _ = context.add_function(
        "in_list",
        move |value: Value, list: Arc<String>| -> Result<bool, ExecutionError> {
            Ok(match &value {
                Value::List(items) => items
                    .iter()
                    .filter_map(text_of)
                    .any(|v| in_lists.in_list(&v, &list)),
                other => text_of(other).is_some_and(|v| in_lists.in_list(&v, &list)),
            })
        },
    );
    let cidr_lists = Arc::clone(lists);
    let _ = context.add_function(
        "cidr_match",
        move |value: Arc<String>, list: Arc<String>| cidr_lists.cidr_match(&value, &list),
    );
    let patterns = Arc::clone(patterns);
    let _ = context.add_function(
        "matches",
        move |This(value): This<Arc<String>>, pattern: Arc<String>| {
            patterns.matches(&value, &pattern)
        },
    );
    context
}

/// The indicator as a condition sees it, borrowing its text: the map `cel::to_value` makes of
/// it (a test holds the two equal), without the two copies of every field that path makes on
/// each evaluation. Every field is named, so a field added to the context fails to compile
/// here until it is added.
fn indicator_val(indicator: &IndicatorContext) -> Box<dyn Val + '_> {
    fn text(text: &str) -> Box<dyn Val + '_> {
        Box::new(CelString::from(text))
    }
    fn int(n: i64) -> Box<dyn Val + 'static> {
        Box::new(CelInt::from(n))
    }
    fn texts(items: &[String]) -> Box<dyn Val + '_> {
        Box::new(CelList::from(
            items.iter().map(|item| text(item)).collect::<Vec<_>>(),
        ))
    }
    fn map<'a>(entries: Vec<(&'static str, Box<dyn Val + 'a>)>) -> Box<dyn Val + 'a> {
        Box::new(CelMap::from(
            entries
                .into_iter()
                .map(|(name, value)| (CelMapKey::from(name), value))
                .collect::<HashMap<_, _>>(),
        ))
    }
    let IndicatorContext {
        kind,
        value,
        stix_id,
        priority,
        computed_priority,
        severity,
        tags,
        status,
        tlp,
        source,
        enrichment,
        skip_reason,
        asn,
        as_name,
        country,
        cves,
        phishing_probability,
        criminalip,
        previous,
        new_tags,
        new_cves,
        ticket,
    } = indicator;
    let CriminalIpContext {
        inbound,
        outbound,
        inbound_level,
        outbound_level,
        report_url,
    } = criminalip;
    let PreviousContext {
        exists,
        priority: previous_priority,
    } = previous;
    map(vec![
        ("type", text(kind)),
        ("value", text(value)),
        ("stix_id", text(stix_id)),
        ("priority", int(*priority)),
        ("computed_priority", int(*computed_priority)),
        ("severity", text(severity)),
        ("tags", texts(tags)),
        ("status", text(status)),
        ("tlp", text(tlp)),
        ("source", text(source)),
        ("enrichment", text(enrichment)),
        ("skip_reason", text(skip_reason)),
        ("asn", int(*asn)),
        ("as_name", text(as_name)),
        ("country", text(country)),
        ("cves", texts(cves)),
        (
            "phishing_probability",
            Box::new(CelDouble::from(*phishing_probability)),
        ),
        (
            "criminalip",
            map(vec![
                ("inbound", text(inbound)),
                ("outbound", text(outbound)),
                ("inbound_level", int(*inbound_level)),
                ("outbound_level", int(*outbound_level)),
                ("report_url", text(report_url)),
            ]),
        ),
        (
            "previous",
            map(vec![
                ("exists", Box::new(CelBool::from(*exists))),
                ("priority", int(*previous_priority)),
            ]),
        ),
        ("new_tags", texts(new_tags)),
        ("new_cves", texts(new_cves)),
        ("ticket", text(ticket)),
    ])
}

impl Evaluator {
    pub fn new(lists: NamedLists) -> Evaluator {
        let env = Arc::new(Env::stdlib());
        let lists = Arc::new(lists);
        let patterns = Arc::default();
        Evaluator {
            root: Arc::new(root_context(&env, &lists, &patterns)),
            env,
            lists,
            patterns,
        }
    }

    /// Evaluates each condition against one indicator. A condition that does not yield a boolean,
    /// or fails on this indicator's data, gives an error naming what went wrong. Native
    /// conditions read the indicator directly; CEL's scope is built only if another needs it.
    pub fn evaluate(
        &self,
        conditions: &[&Condition],
        indicator: &IndicatorContext,
    ) -> Vec<Result<bool, String>> {
        let scope = std::cell::OnceCell::new();
        conditions
            .iter()
            .map(|condition| match &condition.native {
                Some(native) => Ok(native.evaluate(indicator, &self.lists)),
                None => interpret(
                    condition,
                    scope.get_or_init(|| self.scope(Subject::Indicator, indicator_val(indicator))),
                ),
            })
            .collect()
    }

    /// Evaluates each condition of a `budget-alert` rule against one budget event.
    pub fn evaluate_budget(
        &self,
        conditions: &[&Condition],
        budget: &BudgetContext,
    ) -> Vec<Result<bool, String>> {
        let value = cel::to_value(budget)
            .map_err(|e| e.to_string())
            .and_then(|value| Box::<dyn Val>::try_from(value).map_err(|e| e.to_string()));
        match value {
            Ok(value) => {
                let scope = self.scope(Subject::Budget, value);
                conditions
                    .iter()
                    .map(|condition| interpret(condition, &scope))
                    .collect()
            }
            Err(error) => {
                let message = format!("the budget context does not convert: {error}");
                conditions.iter().map(|_| Err(message.clone())).collect()
            }
        }
    }

    /// A scope of the root context with `value` bound as the subject's name.
    fn scope<'a>(&'a self, subject: Subject, value: Box<dyn Val + 'a>) -> Context<'a, 'a> {
        let root: &'a Context<'a, 'a> = &self.root;
        let mut scope = root.new_inner_scope();
        scope.add_variable_as_val(subject.name(), value);
        scope
    }
}

/// Runs a condition in CEL's interpreter.
fn interpret(condition: &Condition, scope: &Context<'_, '_>) -> Result<bool, String> {
    match condition.program.execute(scope) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("the condition gave {other:?}, not true or false")),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::CriminalIpContext;

    fn lists() -> NamedLists {
        let mut lists = NamedLists::default();
        lists
            .add("bad_isps", ["AS9009", "Evil Hosting"])
            .expect("list");
        lists.add("corp", ["10.0.0.0/8"]).expect("list");
        lists
    }

    fn indicator() -> IndicatorContext {
        IndicatorContext {
            kind: "ipv4-addr".into(),
            value: "203.0.113.9".into(),
            priority: 85,
            tags: vec!["c2".into(), "scanner".into()],
            asn: 9009,
            as_name: "M247".into(),
            cves: vec!["CVE-2023-38408".into()],
            criminalip: CriminalIpContext {
                inbound: "critical".into(),
                inbound_level: 5,
                ..CriminalIpContext::default()
            },
            ..IndicatorContext::default()
        }
    }

    fn run(source: &str) -> Result<bool, String> {
        let evaluator = Evaluator::new(lists());
        let condition =
            Condition::compile(&evaluator, source, Subject::Indicator).map_err(|e| joined(&e))?;
        evaluator.evaluate(&[&condition], &indicator()).remove(0)
    }

    fn joined(errors: &[ConditionError]) -> String {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn conditions_see_the_indicator_and_the_lists() {
        for (source, expected) in [
            (
                "indicator.priority >= 80 && indicator.type == 'ipv4-addr'",
                true,
            ),
            ("indicator.priority >= 90", false),
            ("in_list(indicator.asn, 'bad_isps')", true),
            ("in_list(indicator.as_name, 'bad_isps')", false),
            ("cidr_match(indicator.value, 'corp')", false),
            ("!cidr_match('10.1.2.3', 'corp')", false),
            ("'c2' in indicator.tags", true),
            ("indicator.tags.exists(t, t.startsWith('scan'))", true),
            ("indicator.cves.exists(c, c.matches('^CVE-2023-'))", true),
            (
                "indicator.criminalip.inbound == 'critical' && indicator.criminalip.inbound_level >= 4",
                true,
            ),
            (
                "indicator.priority - indicator.previous.priority >= 20 && !indicator.previous.exists",
                true,
            ),
            ("in_list(indicator.tags, 'bad_isps')", false),
            (r"matches(indicator.value, r'^203\.0\.')", true),
            (r"indicator.value.matches(r'^10\.')", false),
            (r"indicator.as_name.matches(r'\p{Lu}\d+')", true),
            // A pattern computed at evaluation time, compiled then.
            ("indicator.as_name.matches(indicator.as_name)", true),
        ] {
            assert_eq!(run(source), Ok(expected), "{source}");
        }
    }

    #[test]
    fn mistakes_are_found_when_loading_with_their_position() {
        let evaluator = Evaluator::new(lists());
        let error = |source: &str| {
            joined(&Condition::compile(&evaluator, source, Subject::Indicator).expect_err(source))
        };
        assert_eq!(
            error("indicator.priority >= 80 &&\n  in_list(indicator.asn, 'isps')"),
            "line 2, column 26: no list named \"isps\" (configured: bad_isps, corp)"
        );
        assert!(error("indicator.priority >= && 3").starts_with("line 1, column 23: "));
        assert_eq!(
            error("priority > 3"),
            "line 1, column 1: unknown name `priority`: this condition sees `indicator`; did you mean `indicator.priority`? (its fields are in docs/rules.md)"
        );
        assert_eq!(
            error("indicator.priority > 3 || launch(1)"),
            "line 1, column 33: unknown function `launch`"
        );
        assert!(error("in_list(indicator.asn, indicator.value)").contains("written as a string"));
        assert!(
            error("indicator.value.matches('(foo')")
                .starts_with("line 1, column 25: \"(foo\" is not a valid regular expression: "),
            "{}",
            error("indicator.value.matches('(foo')")
        );
        assert!(
            error("indicator.priority > 1 &&\n matches(indicator.value, 'a{2')")
                .starts_with("line 2, column 27: ")
        );
    }

    #[test]
    fn a_pattern_computed_at_evaluation_that_does_not_compile_is_an_error_there() {
        let failure = run("indicator.value.matches(indicator.value + '(')").unwrap_err();
        assert!(
            failure.contains("is not a valid regular expression"),
            "{failure}"
        );
    }

    #[test]
    fn the_indicator_reaches_conditions_as_serde_would_convert_it() {
        let indicator = IndicatorContext {
            kind: "ipv4-addr".into(),
            value: "203.0.113.9".into(),
            stix_id: "ipv4-addr--0a6c0b28-4e53-5b19-8d5e-94e4b4f0e6a1".into(),
            priority: 85,
            computed_priority: 70,
            severity: "high".into(),
            tags: vec!["c2".into(), "scanner".into()],
            status: "investigating".into(),
            tlp: "amber".into(),
            source: "feed:abuse".into(),
            enrichment: "enriched".into(),
            skip_reason: "none".into(),
            asn: 9009,
            as_name: "M247".into(),
            country: "RO".into(),
            cves: vec!["CVE-2023-38408".into()],
            phishing_probability: 12.5,
            criminalip: CriminalIpContext {
                inbound: "critical".into(),
                outbound: "low".into(),
                inbound_level: 5,
                outbound_level: 2,
                report_url: "https://www.criminalip.io/asset/report/203.0.113.9".into(),
            },
            previous: PreviousContext {
                exists: true,
                priority: 40,
            },
            new_tags: vec!["scanner".into()],
            new_cves: vec!["CVE-2024-3400".into()],
            ticket: "SOC-42".into(),
        };
        let evaluator = Evaluator::new(lists());
        let same = |other: &IndicatorContext| {
            let serde_form =
                Box::<dyn Val>::try_from(cel::to_value(other).expect("converts")).expect("a value");
            let root: &Context = &evaluator.root;
            let mut scope = root.new_inner_scope();
            scope.add_variable_as_val("indicator", indicator_val(&indicator));
            scope.add_variable_as_val("expected", serde_form);
            Program::compile(
                "indicator == expected && size(indicator) == size(expected) \
                 && indicator.criminalip == expected.criminalip && indicator.previous == expected.previous",
            )
            .expect("compiles")
            .execute(&scope)
        };
        assert_eq!(same(&indicator), Ok(Value::Bool(true)));
        let mut other = indicator.clone();
        other.previous.priority = 41;
        assert_eq!(same(&other), Ok(Value::Bool(false)), "a difference shows");
    }

    /// Indicators drawn from small pools, so that equalities and list lookups hit as often as
    /// they miss.
    fn generated(count: usize) -> Vec<IndicatorContext> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let pick = |pool: &[&str], n: usize| pool[n].to_owned();
        (0..count)
            .map(|_| {
                let kinds = ["ipv4-addr", "domain-name", "url", "ipv6-addr"];
                let values = [
                    "10.1.2.3",
                    "203.0.113.9",
                    "45.155.205.233",
                    "login-paypal.com",
                    "evil.example.net",
                    "https://x.example.com/a",
                ];
                let tags = ["c2", "tor", "scanner", "AS9009"];
                let texts = ["", "amber", "red", "green", "NL", "RO", "critical", "low"];
                IndicatorContext {
                    kind: pick(&kinds, next(kinds.len())),
                    value: pick(&values, next(values.len())),
                    priority: next(101) as i64,
                    computed_priority: next(101) as i64,
                    tags: (0..next(3))
                        .map(|_| pick(&tags, next(tags.len())))
                        .collect(),
                    tlp: pick(&texts, next(4)),
                    asn: [0, 9009, 13335, 64500][next(4)],
                    as_name: pick(&["", "M247", "Evil Hosting", "Cloudflare"], next(4)),
                    country: pick(&texts, next(texts.len())),
                    cves: (0..next(2)).map(|_| "CVE-2023-38408".to_owned()).collect(),
                    criminalip: CriminalIpContext {
                        inbound: pick(&texts, 5 + next(3)),
                        inbound_level: next(6) as i64,
                        ..CriminalIpContext::default()
                    },
                    previous: PreviousContext {
                        exists: next(2) == 1,
                        priority: next(101) as i64,
                    },
                    new_tags: (0..next(2)).map(|_| "tor".to_owned()).collect(),
                    ..IndicatorContext::default()
                }
            })
            .collect()
    }

    #[test]
    fn native_conditions_answer_as_cel_does() {
        let native = [
            "true",
            "false",
            "indicator.priority > 50",
            "indicator.priority >= 50",
            "indicator.priority < 50",
            "indicator.priority <= 50",
            "indicator.priority == 50",
            "indicator.priority != 50",
            "50 < indicator.priority",
            "70 >= indicator.computed_priority",
            "indicator.type == 'ipv4-addr'",
            "indicator.type != 'url'",
            "'amber' == indicator.tlp",
            "indicator.tlp < 'b'",
            "indicator.country >= 'NL'",
            "'c2' in indicator.tags",
            "'CVE-2023-38408' in indicator.cves",
            "'tor' in indicator.new_tags",
            "indicator.tlp in ['amber', 'red']",
            "indicator.asn in [9009, 13335]",
            "indicator.value.startsWith('203.')",
            "indicator.value.endsWith('.com')",
            "indicator.as_name.contains('24')",
            r"indicator.value.matches(r'^10\.')",
            r"matches(indicator.value, r'\.(com|net)$')",
            "cidr_match(indicator.value, 'corp')",
            "in_list(indicator.asn, 'bad_isps')",
            "in_list(indicator.as_name, 'bad_isps')",
            "in_list(indicator.tags, 'bad_isps')",
            "indicator.previous.exists",
            "!indicator.previous.exists",
            "indicator.previous.exists == false",
            "indicator.criminalip.inbound == 'critical' && indicator.criminalip.inbound_level >= 4",
            "indicator.priority > 80 || ('tor' in indicator.tags && !(indicator.tlp == 'red'))",
        ];
        let interpreted = [
            "indicator.previous.priority < indicator.priority",
            "indicator.priority - indicator.previous.priority >= 20",
            "size(indicator.tags) > 1",
            "indicator.tags.exists(t, t.startsWith('sc'))",
            "indicator.priority > 50.5",
            "indicator.priority > 50 && size(indicator.cves) == 1",
        ];
        let evaluator = Evaluator::new(lists());
        let indicators = generated(3_000);
        for (source, expect_native) in native
            .iter()
            .map(|s| (*s, true))
            .chain(interpreted.iter().map(|s| (*s, false)))
        {
            let condition =
                Condition::compile(&evaluator, source, Subject::Indicator).expect(source);
            assert_eq!(condition.native.is_some(), expect_native, "{source}");
            let (mut yes, mut no) = (0, 0);
            for indicator in &indicators {
                let cel = interpret(
                    &condition,
                    &evaluator.scope(Subject::Indicator, indicator_val(indicator)),
                );
                let answer = evaluator.evaluate(&[&condition], indicator).remove(0);
                assert_eq!(answer, cel, "{source} on {indicator:?}");
                match cel {
                    Ok(true) => yes += 1,
                    Ok(false) => no += 1,
                    Err(e) => panic!("{source}: {e}"),
                }
            }
            let always = ["true", "false"].contains(&source);
            assert!(
                always || (yes > 0 && no > 0),
                "{source}: {yes} true, {no} false"
            );
        }
    }

    #[test]
    fn a_condition_that_is_not_boolean_or_fails_says_so() {
        assert!(
            run("indicator.priority")
                .unwrap_err()
                .contains("not true or false")
        );
        assert!(run("indicator.nope == 1").is_err());
        // Known only when it runs: a value made dynamic on purpose.
        assert!(
            run("dyn(indicator.priority)")
                .unwrap_err()
                .contains("not true or false")
        );
    }

    /// Fields and types are checked against the documented context, every mistake at once, each
    /// where it is.
    #[test]
    fn fields_and_types_are_checked_when_loading() {
        let evaluator = Evaluator::new(lists());
        let errors = |source: &str| -> Vec<String> {
            Condition::compile(&evaluator, source, Subject::Indicator)
                .expect_err(source)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            errors("indicator.priorty > 80"),
            [
                "line 1, column 10: `indicator` has no field `priorty`; did you mean `indicator.priority`? (every field is in docs/rules.md)"
            ]
        );
        assert_eq!(
            errors(
                "indicator.criminalip.inbond == 'critical' ||\n  indicator.asn == \"13335\" ||\n  indicator.tags.startsWith('c2')"
            ),
            [
                "line 1, column 21: `indicator.criminalip` has no field `inbond`; did you mean `indicator.criminalip.inbound`? (every field is in docs/rules.md)",
                "line 2, column 17: compares a int with a string: they are never equal (write both sides as the same type, e.g. a number without quotes)",
                "line 3, column 28: startsWith() works on text, not on a list of string (for a list, use `.exists(x, x.…)` or `in`)",
            ]
        );
        for (source, expected) in [
            (
                "indicator.priority > '80'",
                "cannot order a int against a string",
            ),
            ("indicator.value.size > 3", "`.size` on a string"),
            (
                "indicator.value in 'abc'",
                "`in` looks in a list, not a string",
            ),
            (
                "80 in indicator.tags",
                "looks for a int in a list of string",
            ),
            (
                "indicator.tags && true",
                "`&&` takes true or false, not a list of string",
            ),
            (
                "indicator.tags.exists(t, t > 3)",
                "cannot order a string against a int",
            ),
            (
                "size(indicator.priority) > 1",
                "size() measures text or a list, not a int",
            ),
            (
                "indicator.country + 1 == 'x'",
                "cannot add a string and a int",
            ),
            ("indicator.priority + 0.5 > 50.0", "CEL does not mix them"),
            (
                "indicator.phishing_probability - indicator.priority > 1.0",
                "CEL does not mix them",
            ),
            (
                "indicator.zzz",
                "`indicator` has no field `zzz` (its fields: type, value",
            ),
            ("indicator", "gives a `indicator`, not true or false"),
        ] {
            let found = errors(source).join("\n");
            assert!(found.contains(expected), "{source}: {found}");
        }
        // What CEL accepts is accepted: numbers across kinds, loops, maps, `has`, ternaries.
        for source in [
            "indicator.phishing_probability > 80",
            "indicator.priority > 50.5",
            "indicator.tags.exists(t, t.startsWith('c'))",
            "indicator.tags.map(t, t.size()).exists(n, n > 3)",
            "has(indicator.criminalip.inbound)",
            "(indicator.priority > 50 ? 'hot' : 'cold') == 'hot'",
            "{'a': 1}['a'] == 1",
            "indicator['priority'] > 3",
            "indicator.tags[0] == 'c2'",
            "indicator.cves.filter(c, c.startsWith('CVE-2023')).size() > 0",
            "indicator.priority - indicator.previous.priority >= 20",
            "indicator.tlp in ['amber', 'red']",
            "size(indicator) > 3",
            "double(indicator.priority) + 0.5 > indicator.phishing_probability",
        ] {
            assert!(
                Condition::compile(&evaluator, source, Subject::Indicator).is_ok(),
                "{source}: {:?}",
                Condition::compile(&evaluator, source, Subject::Indicator).err()
            );
        }
        // A budget rule sees `budget`, with its own fields.
        let budget = Condition::compile(&evaluator, "budget.percnt > 80", Subject::Budget)
            .expect_err("typo");
        assert!(
            budget[0].message.contains("did you mean `budget.percent`"),
            "{budget:?}"
        );
        assert!(
            Condition::compile(
                &evaluator,
                "budget.percent > 80 && budget.event == 'alert'",
                Subject::Budget
            )
            .is_ok()
        );
    }
}
