//! Conditions: CEL expressions over the indicator context (see [`crate::context`]).
//!
//! CEL is small, side-effect free and not Turing-complete: a condition cannot loop forever, touch
//! the network or change anything. Conditions are compiled once, when rules load, and checked
//! there: a syntax error, a name other than the one the rule sees (`indicator`, or `budget` for
//! `budget-alert` rules), an unknown function, or a list name that
//! is not a literal naming a configured list is an error with its line and column, so a mistake
//! shows at `scry rules check` instead of at 3 a.m. on the first matching indicator.

use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::{Context, Env, ExecutionError, Program, Value};

use crate::context::{BudgetContext, IndicatorContext};
use crate::lists::NamedLists;

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

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
}

/// CEL's standard functions and macros, and the ones scry adds.
const KNOWN_FUNCTIONS: &[&str] = &[
    "size",
    "matches",
    "startsWith",
    "endsWith",
    "contains",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "type",
    "dyn",
    "exists",
    "all",
    "exists_one",
    "map",
    "filter",
    "has",
    "max",
    "min",
    "in_list",
    "cidr_match",
];

/// The functions whose second argument names a list.
const LIST_FUNCTIONS: &[&str] = &["in_list", "cidr_match"];

impl Condition {
    /// Compiles and checks `source`, about `subject`, against the configured lists.
    pub fn compile(
        env: &Env,
        source: &str,
        lists: &NamedLists,
        subject: Subject,
    ) -> Result<Condition, ConditionError> {
        let program = env.compile(source).map_err(|errors| {
            let first = errors.errors.first();
            let (line, column) = first.map_or((1, 1), |e| (e.pos.0.max(1), e.pos.1.max(1)));
            ConditionError {
                line: line as usize,
                column: column as usize,
                message: first
                    .map(|e| e.msg.clone())
                    .unwrap_or_else(|| errors.to_string()),
            }
        })?;
        let mut check = Check {
            source,
            lists,
            program: &program,
            subject,
            bound: Vec::new(),
        };
        check.expr(program.expression())?;
        Ok(Condition {
            source: source.to_owned(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Walks a compiled condition looking for names it cannot resolve.
struct Check<'a> {
    source: &'a str,
    lists: &'a NamedLists,
    program: &'a Program,
    subject: Subject,
    /// Variables bound by comprehensions (`tags.exists(t, …)`) around the current node.
    bound: Vec<String>,
}

impl Check<'_> {
    fn error(&self, node: &IdedExpr, message: String) -> ConditionError {
        let offset = self
            .program
            .source_info()
            .offset_for(node.id)
            .map_or(0, |(start, _)| start as usize);
        let before: String = self.source.chars().take(offset).collect();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConditionError {
            line,
            column,
            message,
        }
    }

    fn expr(&mut self, node: &IdedExpr) -> Result<(), ConditionError> {
        match &node.expr {
            Expr::Ident(name) => {
                let subject = self.subject.name();
                if name != subject && !self.bound.iter().any(|b| b == name) {
                    return Err(self.error(
                        node,
                        format!("unknown name `{name}`: this condition sees `{subject}` (its fields are listed in the rules documentation)"),
                    ));
                }
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                let operator = name.starts_with('_') || name.starts_with('@') || name == "!_";
                if !operator && !KNOWN_FUNCTIONS.contains(&name) {
                    return Err(self.error(node, format!("unknown function `{name}`")));
                }
                if LIST_FUNCTIONS.contains(&name) {
                    match call.args.get(1).map(|a| &a.expr) {
                        Some(Expr::Literal(LiteralValue::String(list))) if call.args.len() == 2 => {
                            if !self.lists.contains_list(list.inner()) {
                                let known: Vec<&str> = self.lists.names().collect();
                                return Err(self.error(
                                    &call.args[1],
                                    format!(
                                        "no list named {:?} (configured: {})",
                                        list.inner(),
                                        if known.is_empty() {
                                            "none".to_owned()
                                        } else {
                                            known.join(", ")
                                        }
                                    ),
                                ));
                            }
                        }
                        _ => {
                            return Err(self.error(
                                node,
                                format!("{name}(value, \"list name\") takes a value and a list name written as a string"),
                            ));
                        }
                    }
                }
                if let Some(target) = &call.target {
                    self.expr(target)?;
                }
                for arg in &call.args {
                    self.expr(arg)?;
                }
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range)?;
                self.bound.push(c.iter_var.clone());
                if let Some(second) = &c.iter_var2 {
                    self.bound.push(second.clone());
                }
                self.bound.push(c.accu_var.clone());
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.expr(part)?;
                }
                self.bound
                    .truncate(self.bound.len() - 2 - usize::from(c.iter_var2.is_some()));
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.expr(element)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        self.expr(&e.key)?;
                        self.expr(&e.value)?;
                    }
                }
            }
            Expr::Select(select) => self.expr(&select.operand)?,
            Expr::Struct(_) => {
                return Err(self.error(node, "message construction is not supported".into()));
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
        Ok(())
    }
}

/// Evaluates conditions: CEL's standard environment plus `in_list` and `cidr_match` over the
/// named lists. Cheap to clone; share one per rule set.
#[derive(Clone)]
pub struct Evaluator {
    env: Arc<Env>,
    lists: Arc<NamedLists>,
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

impl Evaluator {
    pub fn new(lists: NamedLists) -> Evaluator {
        Evaluator {
            env: Arc::new(Env::stdlib()),
            lists: Arc::new(lists),
        }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn lists(&self) -> &NamedLists {
        &self.lists
    }

    /// Evaluates each condition against one indicator. A condition that does not yield a boolean,
    /// or fails on this indicator's data, gives an error naming what went wrong.
    pub fn evaluate(
        &self,
        conditions: &[&Condition],
        indicator: &IndicatorContext,
    ) -> Vec<Result<bool, String>> {
        self.evaluate_on(conditions, Subject::Indicator, indicator)
    }

    /// Evaluates each condition of a `budget-alert` rule against one budget event.
    pub fn evaluate_budget(
        &self,
        conditions: &[&Condition],
        budget: &BudgetContext,
    ) -> Vec<Result<bool, String>> {
        self.evaluate_on(conditions, Subject::Budget, budget)
    }

    fn evaluate_on(
        &self,
        conditions: &[&Condition],
        subject: Subject,
        value: &impl serde::Serialize,
    ) -> Vec<Result<bool, String>> {
        let mut context = Context::with_env(Arc::clone(&self.env));
        let lists = Arc::clone(&self.lists);
        // Registering a new name on a fresh context cannot conflict with the standard library.
        let _ = context.add_function(
            "in_list",
            move |value: Value, list: Arc<String>| -> Result<bool, ExecutionError> {
                Ok(match &value {
                    Value::List(items) => items
                        .iter()
                        .filter_map(text_of)
                        .any(|v| lists.in_list(&v, &list)),
                    other => text_of(other).is_some_and(|v| lists.in_list(&v, &list)),
                })
            },
        );
        let lists = Arc::clone(&self.lists);
        let _ = context.add_function(
            "cidr_match",
            move |value: Arc<String>, list: Arc<String>| lists.cidr_match(&value, &list),
        );
        let value = match cel::to_value(value) {
            Ok(value) => value,
            Err(error) => {
                let message = format!("the {} context does not convert: {error}", subject.name());
                return conditions.iter().map(|_| Err(message.clone())).collect();
            }
        };
        let mut scope = context.new_inner_scope();
        scope.add_variable_from_value(subject.name(), value);
        conditions
            .iter()
            .map(|condition| match condition.program.execute(&scope) {
                Ok(Value::Bool(b)) => Ok(b),
                Ok(other) => Err(format!("the condition gave {other:?}, not true or false")),
                Err(error) => Err(error.to_string()),
            })
            .collect()
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
        let condition = Condition::compile(
            evaluator.env(),
            source,
            evaluator.lists(),
            Subject::Indicator,
        )
        .map_err(|e| e.to_string())?;
        evaluator.evaluate(&[&condition], &indicator()).remove(0)
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
        ] {
            assert_eq!(run(source), Ok(expected), "{source}");
        }
    }

    #[test]
    fn mistakes_are_found_when_loading_with_their_position() {
        let evaluator = Evaluator::new(lists());
        let error = |source: &str| {
            Condition::compile(
                evaluator.env(),
                source,
                evaluator.lists(),
                Subject::Indicator,
            )
            .expect_err(source)
            .to_string()
        };
        assert_eq!(
            error("indicator.priority >= 80 &&\n  in_list(indicator.asn, 'isps')"),
            "line 2, column 26: no list named \"isps\" (configured: bad_isps, corp)"
        );
        assert!(error("indicator.priority >= && 3").starts_with("line 1, column 23: "));
        assert_eq!(
            error("priority > 3"),
            "line 1, column 1: unknown name `priority`: this condition sees `indicator` (its fields are listed in the rules documentation)"
        );
        assert_eq!(
            error("indicator.priority > 3 || launch(1)"),
            "line 1, column 33: unknown function `launch`"
        );
        assert!(error("in_list(indicator.asn, indicator.value)").contains("written as a string"));
    }

    #[test]
    fn a_condition_that_is_not_boolean_or_fails_says_so() {
        assert!(
            run("indicator.priority")
                .unwrap_err()
                .contains("not true or false")
        );
        assert!(run("indicator.nope == 1").is_err());
    }
}
