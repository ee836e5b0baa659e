//! What a condition may say, checked when it loads: the one name it sees (`indicator`, or
//! `budget` for `budget-alert` rules) and the fields of the documented context
//! ([`crate::context`]), with their types. Every mistake is reported, each with its line and
//! column, so `scry rules check` finds `indicator.priorty > 80`, `indicator.asn == "13335"` or
//! `indicator.tags.startsWith("x")` instead of the first matching indicator finding them at run
//! time.
//!
//! Types are inferred bottom-up over CEL's parsed form. Where a type cannot be known (a map
//! written in the condition, the result of `dyn()`), the checker accepts what CEL would accept
//! at run time, so a condition that runs is never refused.

use cel::Program;
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use crate::condition::{ConditionError, Subject};
use crate::context::{BUDGET_FIELDS, Field, FieldType, INDICATOR_FIELDS};
use crate::lists::NamedLists;

/// CEL's standard functions and macros, and the ones scry adds.
pub(crate) const KNOWN_FUNCTIONS: &[&str] = &[
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

/// The type of an expression, as far as it can be known before running.
#[derive(Debug, Clone, PartialEq)]
enum Type {
    Bool,
    Int,
    UInt,
    Double,
    Text,
    Bytes,
    Null,
    List(Box<Type>),
    /// The subject or a part of it whose fields are known: its path (`indicator.criminalip`).
    Record(String),
    /// A map written in the condition.
    Map,
    /// Not known before running.
    Dyn,
}

impl Type {
    fn of_field(kind: FieldType) -> Type {
        match kind {
            FieldType::Bool => Type::Bool,
            FieldType::Int => Type::Int,
            FieldType::Double => Type::Double,
            FieldType::String => Type::Text,
            FieldType::StringList => Type::List(Box::new(Type::Text)),
        }
    }

    fn name(&self) -> String {
        match self {
            Type::Bool => "bool".into(),
            Type::Int => "int".into(),
            Type::UInt => "uint".into(),
            Type::Double => "double".into(),
            Type::Text => "string".into(),
            Type::Bytes => "bytes".into(),
            Type::Null => "null".into(),
            Type::List(of) if **of == Type::Dyn => "list".into(),
            Type::List(of) => format!("list of {}", of.name()),
            Type::Record(path) => format!("`{path}`"),
            Type::Map => "map".into(),
            Type::Dyn => "value".into(),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::UInt | Type::Double)
    }

    fn is(&self, wanted: &Type) -> bool {
        self == wanted || *self == Type::Dyn
    }
}

/// Whether `==` between values of these types can ever hold (CEL compares numbers across int,
/// uint and double; anything else only with its own kind).
fn comparable(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Dyn, _) | (_, Type::Dyn) | (Type::Null, _) | (_, Type::Null) => true,
        (Type::List(x), Type::List(y)) => comparable(x, y),
        (Type::Record(_) | Type::Map, Type::Record(_) | Type::Map) => true,
        _ if a.is_numeric() && b.is_numeric() => true,
        _ => a == b,
    }
}

/// CEL does arithmetic on two numbers of one kind only.
fn mixed_numbers(a: &Type, b: &Type) -> String {
    format!(
        "arithmetic on a {} and a {}: CEL does not mix them; convert one with int() or double()",
        a.name(),
        b.name()
    )
}

/// Whether `<`, `<=`, `>`, `>=` are defined between these types.
fn orderable(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Dyn, _) | (_, Type::Dyn) => true,
        _ if a.is_numeric() && b.is_numeric() => true,
        (Type::Text, Type::Text) | (Type::Bool, Type::Bool) | (Type::Bytes, Type::Bytes) => true,
        _ => false,
    }
}

/// Walks a compiled condition, inferring types and collecting every mistake.
pub(crate) struct Check<'a> {
    pub(crate) source: &'a str,
    pub(crate) lists: &'a NamedLists,
    pub(crate) program: &'a Program,
    pub(crate) subject: Subject,
    /// Regular expressions written in the condition, compiled (and kept) by the evaluator.
    pub(crate) load_pattern: &'a dyn Fn(&str) -> Result<(), String>,
    /// Variables bound by comprehensions (`tags.exists(t, …)`) around the current node.
    bound: Vec<(String, Type)>,
    errors: Vec<ConditionError>,
}

impl<'a> Check<'a> {
    pub(crate) fn new(
        source: &'a str,
        lists: &'a NamedLists,
        program: &'a Program,
        subject: Subject,
        load_pattern: &'a dyn Fn(&str) -> Result<(), String>,
    ) -> Check<'a> {
        Check {
            source,
            lists,
            program,
            subject,
            load_pattern,
            bound: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Checks the whole condition; every mistake found, in the order they appear.
    pub(crate) fn run(mut self) -> Vec<ConditionError> {
        let root = self.program.expression();
        let result = self.infer(root);
        if !result.is(&Type::Bool) {
            self.error(
                root,
                format!(
                    "the condition gives a {}, not true or false: compare it with something",
                    result.name()
                ),
            );
        }
        self.errors
            .sort_by_key(|e| (e.line, e.column, e.message.clone()));
        self.errors.dedup();
        self.errors
    }

    fn fields(&self) -> &'static [Field] {
        match self.subject {
            Subject::Indicator => INDICATOR_FIELDS,
            Subject::Budget => BUDGET_FIELDS,
        }
    }

    fn error(&mut self, node: &IdedExpr, message: String) {
        let offset = self
            .program
            .source_info()
            .offset_for(node.id)
            .map_or(0, |(start, _)| start as usize);
        // CEL counts offsets in characters.
        let before: String = self.source.chars().take(offset).collect();
        let (line, column) = crate::file::line_and_column(&before);
        self.errors.push(ConditionError {
            line,
            column,
            message,
        });
    }

    /// The names directly under `path` (`indicator` → `type`, `value`, …, `criminalip`).
    fn children(&self, path: &str) -> Vec<&'static str> {
        let prefix = format!("{path}.");
        let mut names: Vec<&'static str> = self
            .fields()
            .iter()
            .filter_map(|f| f.path.strip_prefix(prefix.as_str()))
            .map(|rest| rest.split('.').next().unwrap_or(rest))
            .collect();
        names.dedup();
        names
    }

    /// The type of `path.field`, or why there is none.
    fn field(&self, path: &str, name: &str) -> Result<Type, String> {
        let full = format!("{path}.{name}");
        if let Some(field) = self.fields().iter().find(|f| f.path == full) {
            return Ok(Type::of_field(field.kind));
        }
        let children = self.children(path);
        if children.contains(&name) {
            return Ok(Type::Record(full));
        }
        let closest = children
            .iter()
            .map(|c| (strsim::damerau_levenshtein(c, name), *c))
            .filter(|(distance, c)| *distance <= 2.max(c.len() / 4))
            .min();
        Err(match closest {
            Some((_, suggestion)) => format!(
                "`{path}` has no field `{name}`; did you mean `{path}.{suggestion}`? (every field is in docs/rules.md)"
            ),
            None => format!(
                "`{path}` has no field `{name}` (its fields: {}; every field is in docs/rules.md)",
                children.join(", ")
            ),
        })
    }

    fn infer(&mut self, node: &IdedExpr) -> Type {
        match &node.expr {
            Expr::Literal(literal) => match literal {
                LiteralValue::Boolean(_) => Type::Bool,
                LiteralValue::Bytes(_) => Type::Bytes,
                LiteralValue::Double(_) => Type::Double,
                LiteralValue::Int(_) => Type::Int,
                LiteralValue::Null => Type::Null,
                LiteralValue::String(_) => Type::Text,
                LiteralValue::UInt(_) => Type::UInt,
            },
            Expr::Ident(name) => self.ident(node, name),
            Expr::Select(select) => {
                let operand = self.infer(&select.operand);
                let found = self.select(node, &operand, &select.field);
                if select.test { Type::Bool } else { found }
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                let target = call.target.as_ref().map(|t| self.infer(t));
                let args: Vec<Type> = call.args.iter().map(|a| self.infer(a)).collect();
                self.call(node, name, target, &args, &call.args)
            }
            Expr::Comprehension(c) => {
                let range = self.infer(&c.iter_range);
                let element = match &range {
                    Type::List(of) => (**of).clone(),
                    Type::Map | Type::Dyn | Type::Record(_) => Type::Dyn,
                    other => {
                        self.error(
                            &c.iter_range,
                            format!("a loop walks a list, not a {}", other.name()),
                        );
                        Type::Dyn
                    }
                };
                let depth = self.bound.len();
                match &c.iter_var2 {
                    // Two variables: index (or key) and value.
                    Some(second) => {
                        self.bound.push((c.iter_var.clone(), Type::Dyn));
                        self.bound.push((second.clone(), element));
                    }
                    None => self.bound.push((c.iter_var.clone(), element)),
                }
                let accumulator = self.infer(&c.accu_init);
                self.bound.push((c.accu_var.clone(), accumulator));
                self.infer(&c.loop_cond);
                self.infer(&c.loop_step);
                let result = self.infer(&c.result);
                self.bound.truncate(depth);
                result
            }
            Expr::List(list) => {
                let elements: Vec<Type> = list.elements.iter().map(|e| self.infer(e)).collect();
                match elements.split_first() {
                    Some((first, rest)) if rest.iter().all(|t| t == first) => {
                        Type::List(Box::new(first.clone()))
                    }
                    _ => Type::List(Box::new(Type::Dyn)),
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        self.infer(&e.key);
                        self.infer(&e.value);
                    }
                }
                Type::Map
            }
            Expr::Struct(_) => {
                self.error(node, "message construction is not supported".into());
                Type::Dyn
            }
            Expr::Unspecified => Type::Dyn,
        }
    }

    fn ident(&mut self, node: &IdedExpr, name: &str) -> Type {
        if let Some((_, kind)) = self.bound.iter().rev().find(|(b, _)| b == name) {
            return kind.clone();
        }
        let subject = self.subject.name();
        if name == subject {
            return Type::Record(subject.to_owned());
        }
        let hint = if self.children(subject).contains(&name) {
            format!("; did you mean `{subject}.{name}`?")
        } else {
            String::new()
        };
        self.error(
            node,
            format!("unknown name `{name}`: this condition sees `{subject}`{hint} (its fields are in docs/rules.md)"),
        );
        Type::Dyn
    }

    fn select(&mut self, node: &IdedExpr, operand: &Type, name: &str) -> Type {
        match operand {
            Type::Record(path) => match self.field(path, name) {
                Ok(kind) => kind,
                Err(message) => {
                    self.error(node, message);
                    Type::Dyn
                }
            },
            Type::Map | Type::Dyn => Type::Dyn,
            other => {
                self.error(
                    node,
                    format!(
                        "`.{name}` on a {}: only `{}` and its parts have fields",
                        other.name(),
                        self.subject.name()
                    ),
                );
                Type::Dyn
            }
        }
    }

    fn call(
        &mut self,
        node: &IdedExpr,
        name: &str,
        target: Option<Type>,
        args: &[Type],
        arg_nodes: &[IdedExpr],
    ) -> Type {
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Type::Dyn);
        match name {
            "_&&_" | "_||_" | "!_" => {
                for (i, kind) in args.iter().enumerate() {
                    if !kind.is(&Type::Bool) {
                        let operator = match name {
                            "_&&_" => "&&",
                            "_||_" => "||",
                            _ => "!",
                        };
                        self.error(
                            &arg_nodes[i],
                            format!("`{operator}` takes true or false, not a {}", kind.name()),
                        );
                    }
                }
                Type::Bool
            }
            "@not_strictly_false" => Type::Bool,
            "_==_" | "_!=_" => {
                let (a, b) = (arg(0), arg(1));
                if !comparable(&a, &b) {
                    self.error(
                        node,
                        format!(
                            "compares a {} with a {}: they are never equal (write both sides as the same type, e.g. a number without quotes)",
                            a.name(),
                            b.name()
                        ),
                    );
                }
                Type::Bool
            }
            "_<_" | "_<=_" | "_>_" | "_>=_" => {
                let (a, b) = (arg(0), arg(1));
                if !orderable(&a, &b) {
                    self.error(
                        node,
                        format!(
                            "cannot order a {} against a {} (numbers compare with numbers, text with text)",
                            a.name(),
                            b.name()
                        ),
                    );
                }
                Type::Bool
            }
            "-_" => {
                let a = arg(0);
                if !(a.is_numeric() || a == Type::Dyn) {
                    self.error(node, format!("cannot negate a {}", a.name()));
                }
                a
            }
            "_+_" => {
                let (a, b) = (arg(0), arg(1));
                match (&a, &b) {
                    (Type::Dyn, other) | (other, Type::Dyn) => other.clone(),
                    (Type::Text, Type::Text) => Type::Text,
                    (Type::List(_), Type::List(_)) => {
                        if a == b {
                            a
                        } else {
                            Type::List(Box::new(Type::Dyn))
                        }
                    }
                    _ if a.is_numeric() && a == b => a,
                    _ if a.is_numeric() && b.is_numeric() => {
                        self.error(node, mixed_numbers(&a, &b));
                        Type::Dyn
                    }
                    _ => {
                        self.error(
                            node,
                            format!("cannot add a {} and a {}", a.name(), b.name()),
                        );
                        Type::Dyn
                    }
                }
            }
            "_-_" | "_*_" | "_/_" | "_%_" => {
                let (a, b) = (arg(0), arg(1));
                let numeric = |t: &Type| t.is_numeric() || *t == Type::Dyn;
                if !(numeric(&a) && numeric(&b)) {
                    self.error(
                        node,
                        format!(
                            "arithmetic on a {} and a {}: both must be numbers",
                            a.name(),
                            b.name()
                        ),
                    );
                    return Type::Dyn;
                }
                match (&a, &b) {
                    (Type::Dyn, other) | (other, Type::Dyn) => other.clone(),
                    _ if a == b => a,
                    _ => {
                        self.error(node, mixed_numbers(&a, &b));
                        Type::Dyn
                    }
                }
            }
            "_?_:_" => {
                if !arg(0).is(&Type::Bool) {
                    self.error(
                        &arg_nodes[0],
                        format!(
                            "`? :` needs true or false before `?`, not a {}",
                            arg(0).name()
                        ),
                    );
                }
                if arg(1) == arg(2) { arg(1) } else { Type::Dyn }
            }
            "_[_]" => match (arg(0), arg(1)) {
                (Type::List(of), index) => {
                    if !(index.is(&Type::Int) || index == Type::UInt) {
                        self.error(
                            node,
                            format!("a list is indexed by a number, not a {}", index.name()),
                        );
                    }
                    *of
                }
                (Type::Record(path), _) => match arg_nodes.get(1).map(|n| &n.expr) {
                    Some(Expr::Literal(LiteralValue::String(key))) => {
                        self.select(node, &Type::Record(path), key.inner())
                    }
                    _ => Type::Dyn,
                },
                (Type::Map | Type::Dyn, _) => Type::Dyn,
                (other, _) => {
                    self.error(node, format!("cannot index a {}", other.name()));
                    Type::Dyn
                }
            },
            "@in" => {
                let (element, container) = (arg(0), arg(1));
                match &container {
                    Type::List(of) => {
                        if !comparable(&element, of) {
                            self.error(
                                node,
                                format!(
                                    "looks for a {} in a {}: never found",
                                    element.name(),
                                    container.name()
                                ),
                            );
                        }
                    }
                    Type::Map | Type::Dyn | Type::Record(_) => {}
                    other => self.error(
                        node,
                        format!(
                            "`in` looks in a list, not a {} (for text, use `.contains(…)`)",
                            other.name()
                        ),
                    ),
                }
                Type::Bool
            }
            _ => self.function(node, name, target, args, arg_nodes),
        }
    }

    fn function(
        &mut self,
        node: &IdedExpr,
        name: &str,
        target: Option<Type>,
        args: &[Type],
        arg_nodes: &[IdedExpr],
    ) -> Type {
        if name.starts_with('_') || name.starts_with('@') {
            // Another operator of CEL's: nothing to check.
            return Type::Dyn;
        }
        if !KNOWN_FUNCTIONS.contains(&name) {
            self.error(node, format!("unknown function `{name}`"));
            return Type::Dyn;
        }
        // `value.f(x)` and `f(value, x)` both: the value, then the rest.
        let (value, rest, rest_nodes) = match target {
            Some(t) => (t, args, arg_nodes),
            None => (
                args.first().cloned().unwrap_or(Type::Dyn),
                args.get(1..).unwrap_or_default(),
                arg_nodes.get(1..).unwrap_or_default(),
            ),
        };
        if LIST_FUNCTIONS.contains(&name) {
            self.list_function(node, name, &value, args.len(), arg_nodes);
            return Type::Bool;
        }
        match name {
            "size" => {
                if !matches!(
                    value,
                    Type::Text
                        | Type::Bytes
                        | Type::List(_)
                        | Type::Map
                        | Type::Record(_)
                        | Type::Dyn
                ) {
                    self.error(
                        node,
                        format!("size() measures text or a list, not a {}", value.name()),
                    );
                }
                Type::Int
            }
            "matches" | "startsWith" | "endsWith" | "contains" => {
                if !value.is(&Type::Text) {
                    let hint = if matches!(value, Type::List(_)) {
                        " (for a list, use `.exists(x, x.…)` or `in`)"
                    } else {
                        ""
                    };
                    self.error(
                        node,
                        format!("{name}() works on text, not on a {}{hint}", value.name()),
                    );
                }
                for (kind, at) in rest.iter().zip(rest_nodes) {
                    if !kind.is(&Type::Text) {
                        self.error(at, format!("{name}() takes text, not a {}", kind.name()));
                    }
                }
                if name == "matches"
                    && let Some(pattern) = rest_nodes.first()
                    && let Expr::Literal(LiteralValue::String(text)) = &pattern.expr
                    && let Err(message) = (self.load_pattern)(text.inner())
                {
                    self.error(pattern, message);
                }
                Type::Bool
            }
            "int" => Type::Int,
            "uint" => Type::UInt,
            "double" => Type::Double,
            "string" => Type::Text,
            "bool" => Type::Bool,
            "bytes" => Type::Bytes,
            _ => Type::Dyn,
        }
    }

    /// `in_list(value, "list")` and `cidr_match(value, "list")`: a value and a configured list
    /// named by a string written out.
    fn list_function(
        &mut self,
        node: &IdedExpr,
        name: &str,
        value: &Type,
        count: usize,
        arg_nodes: &[IdedExpr],
    ) {
        match arg_nodes.get(1).map(|a| &a.expr) {
            Some(Expr::Literal(LiteralValue::String(list))) if count == 2 => {
                if !self.lists.contains_list(list.inner()) {
                    let known: Vec<&str> = self.lists.names().collect();
                    let message = format!(
                        "no list named {:?} (configured: {})",
                        list.inner(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    );
                    self.error(&arg_nodes[1], message);
                }
            }
            _ => {
                self.error(
                    node,
                    format!("{name}(value, \"list name\") takes a value and a list name written as a string"),
                );
                return;
            }
        }
        let fits = match name {
            "cidr_match" => value.is(&Type::Text),
            _ => matches!(
                value,
                Type::Text | Type::Int | Type::UInt | Type::Dyn | Type::List(_)
            ),
        };
        if !fits {
            self.error(node, format!("{name}() cannot look up a {}", value.name()));
        }
    }
}
