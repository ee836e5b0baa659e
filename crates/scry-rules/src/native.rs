//! Native conditions: the shapes most rules are made of — a field of the indicator compared with
//! a literal, a literal in a list field or a field in a literal list, a named-list or network
//! lookup, a literal pattern, a literal prefix, suffix or substring — joined by `&&`, `||` and `!`,
//! compiled to Rust when the rule loads. Evaluating one reads the indicator as it is, where CEL's
//! interpreter would resolve every name, copy every value and allocate on each evaluation (about
//! half a microsecond a condition). A condition with anything else runs in CEL; both give the same
//! answer on every indicator (a test compares them on generated indicators for every shape here).
//!
//! Only shapes that cannot fail are taken: fields whose type is fixed by the context, compared
//! with literals of the same type. So CEL's rules for errors inside `&&` and `||` never come into
//! play, and plain Boolean logic is CEL's answer.

use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use regex::Regex;

use crate::context::IndicatorContext;
use crate::lists::NamedLists;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntField {
    Priority,
    ComputedPriority,
    Asn,
    InboundLevel,
    OutboundLevel,
    PreviousPriority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextField {
    Type,
    Value,
    StixId,
    Severity,
    Status,
    Tlp,
    Source,
    Enrichment,
    SkipReason,
    AsName,
    Country,
    Inbound,
    Outbound,
    ReportUrl,
    Ticket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListField {
    Tags,
    Cves,
    NewTags,
    NewCves,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Int(IntField),
    Text(TextField),
    List(ListField),
    Bool,
}

impl IntField {
    fn read(self, i: &IndicatorContext) -> i64 {
        match self {
            IntField::Priority => i.priority,
            IntField::ComputedPriority => i.computed_priority,
            IntField::Asn => i.asn,
            IntField::InboundLevel => i.criminalip.inbound_level,
            IntField::OutboundLevel => i.criminalip.outbound_level,
            IntField::PreviousPriority => i.previous.priority,
        }
    }
}

impl TextField {
    fn read(self, i: &IndicatorContext) -> &str {
        match self {
            TextField::Type => &i.kind,
            TextField::Value => &i.value,
            TextField::StixId => &i.stix_id,
            TextField::Severity => &i.severity,
            TextField::Status => &i.status,
            TextField::Tlp => &i.tlp,
            TextField::Source => &i.source,
            TextField::Enrichment => &i.enrichment,
            TextField::SkipReason => &i.skip_reason,
            TextField::AsName => &i.as_name,
            TextField::Country => &i.country,
            TextField::Inbound => &i.criminalip.inbound,
            TextField::Outbound => &i.criminalip.outbound,
            TextField::ReportUrl => &i.criminalip.report_url,
            TextField::Ticket => &i.ticket,
        }
    }
}

impl ListField {
    fn read(self, i: &IndicatorContext) -> &[String] {
        match self {
            ListField::Tags => &i.tags,
            ListField::Cves => &i.cves,
            ListField::NewTags => &i.new_tags,
            ListField::NewCves => &i.new_cves,
        }
    }
}

/// `indicator.NAME`, `indicator.criminalip.NAME` or `indicator.previous.NAME`, with its type.
fn field(node: &IdedExpr) -> Option<Field> {
    let Expr::Select(select) = &node.expr else {
        return None;
    };
    if select.test {
        return None;
    }
    let name = select.field.as_str();
    match &select.operand.expr {
        Expr::Ident(root) if root == "indicator" => Some(match name {
            "priority" => Field::Int(IntField::Priority),
            "computed_priority" => Field::Int(IntField::ComputedPriority),
            "asn" => Field::Int(IntField::Asn),
            "type" => Field::Text(TextField::Type),
            "value" => Field::Text(TextField::Value),
            "stix_id" => Field::Text(TextField::StixId),
            "severity" => Field::Text(TextField::Severity),
            "status" => Field::Text(TextField::Status),
            "tlp" => Field::Text(TextField::Tlp),
            "source" => Field::Text(TextField::Source),
            "enrichment" => Field::Text(TextField::Enrichment),
            "skip_reason" => Field::Text(TextField::SkipReason),
            "as_name" => Field::Text(TextField::AsName),
            "country" => Field::Text(TextField::Country),
            "ticket" => Field::Text(TextField::Ticket),
            "tags" => Field::List(ListField::Tags),
            "cves" => Field::List(ListField::Cves),
            "new_tags" => Field::List(ListField::NewTags),
            "new_cves" => Field::List(ListField::NewCves),
            _ => return None,
        }),
        Expr::Select(parent) if !parent.test => {
            let Expr::Ident(root) = &parent.operand.expr else {
                return None;
            };
            if root != "indicator" {
                return None;
            }
            match (parent.field.as_str(), name) {
                ("criminalip", "inbound") => Some(Field::Text(TextField::Inbound)),
                ("criminalip", "outbound") => Some(Field::Text(TextField::Outbound)),
                ("criminalip", "report_url") => Some(Field::Text(TextField::ReportUrl)),
                ("criminalip", "inbound_level") => Some(Field::Int(IntField::InboundLevel)),
                ("criminalip", "outbound_level") => Some(Field::Int(IntField::OutboundLevel)),
                ("previous", "priority") => Some(Field::Int(IntField::PreviousPriority)),
                ("previous", "exists") => Some(Field::Bool),
                _ => None,
            }
        }
        _ => None,
    }
}

fn int_literal(node: &IdedExpr) -> Option<i64> {
    match &node.expr {
        Expr::Literal(LiteralValue::Int(n)) => Some(*n.inner()),
        _ => None,
    }
}

fn text_literal(node: &IdedExpr) -> Option<&str> {
    match &node.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

fn bool_literal(node: &IdedExpr) -> Option<bool> {
    match &node.expr {
        Expr::Literal(LiteralValue::Boolean(b)) => Some(*b.inner()),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Order {
    fn of(operator: &str) -> Option<Order> {
        Some(match operator {
            "_==_" => Order::Equal,
            "_!=_" => Order::NotEqual,
            "_<_" => Order::Less,
            "_<=_" => Order::LessOrEqual,
            "_>_" => Order::Greater,
            "_>=_" => Order::GreaterOrEqual,
            _ => return None,
        })
    }

    /// The same comparison with its sides swapped (`3 < x` is `x > 3`).
    fn swapped(self) -> Order {
        match self {
            Order::Less => Order::Greater,
            Order::LessOrEqual => Order::GreaterOrEqual,
            Order::Greater => Order::Less,
            Order::GreaterOrEqual => Order::LessOrEqual,
            same => same,
        }
    }

    fn holds<T: Ord + ?Sized>(self, left: &T, right: &T) -> bool {
        match self {
            Order::Equal => left == right,
            Order::NotEqual => left != right,
            Order::Less => left < right,
            Order::LessOrEqual => left <= right,
            Order::Greater => left > right,
            Order::GreaterOrEqual => left >= right,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextTest {
    StartsWith,
    EndsWith,
    Contains,
}

/// A node of a compiled condition.
#[derive(Debug, Clone)]
enum Node {
    Constant(bool),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Int(IntField, Order, i64),
    Text(TextField, Order, String),
    Bool(Order, bool),
    /// A literal in a list field (`"c2" in indicator.tags`).
    Listed(ListField, String),
    /// A field in a literal list (`indicator.tlp in ["amber", "red"]`).
    TextOneOf(TextField, Vec<String>),
    IntOneOf(IntField, Vec<i64>),
    TextTest(TextField, TextTest, String),
    Matches(TextField, Arc<Regex>),
    CidrMatch(TextField, String),
    InList(Field, String),
}

/// A condition compiled to Rust.
#[derive(Debug, Clone)]
pub(crate) struct Native(Node);

/// Compiles what this module covers; `None` leaves the condition to CEL. `pattern` gives the
/// compiled form of a pattern the condition writes out (they are compiled as the rule loads).
pub(crate) fn compile(
    node: &IdedExpr,
    pattern: &dyn Fn(&str) -> Option<Arc<Regex>>,
) -> Option<Native> {
    tree(node, pattern).map(Native)
}

fn tree(node: &IdedExpr, pattern: &dyn Fn(&str) -> Option<Arc<Regex>>) -> Option<Node> {
    if let Some(b) = bool_literal(node) {
        return Some(Node::Constant(b));
    }
    if field(node) == Some(Field::Bool) {
        return Some(Node::Bool(Order::Equal, true));
    }
    let Expr::Call(call) = &node.expr else {
        return None;
    };
    let name = call.func_name.as_str();
    let args = &call.args;
    if call.target.is_none() {
        match (name, args.as_slice()) {
            ("_&&_", [a, b]) => {
                return Some(Node::And(
                    Box::new(tree(a, pattern)?),
                    Box::new(tree(b, pattern)?),
                ));
            }
            ("_||_", [a, b]) => {
                return Some(Node::Or(
                    Box::new(tree(a, pattern)?),
                    Box::new(tree(b, pattern)?),
                ));
            }
            ("!_", [a]) => return Some(Node::Not(Box::new(tree(a, pattern)?))),
            ("@in", [item, list]) => return membership(item, list),
            ("cidr_match", [value, list]) => {
                if let (Some(Field::Text(f)), Some(list)) = (field(value), text_literal(list)) {
                    return Some(Node::CidrMatch(f, list.to_owned()));
                }
                return None;
            }
            ("in_list", [value, list]) => {
                let value = field(value).filter(|f| *f != Field::Bool)?;
                return Some(Node::InList(value, text_literal(list)?.to_owned()));
            }
            ("matches", [value, re]) => {
                let Some(Field::Text(f)) = field(value) else {
                    return None;
                };
                return Some(Node::Matches(f, pattern(text_literal(re)?)?));
            }
            (_, [left, right]) => {
                let order = Order::of(name)?;
                return comparison(order, left, right)
                    .or_else(|| comparison(order.swapped(), right, left));
            }
            _ => return None,
        }
    }
    // Methods on a text field with one literal argument.
    let target = call.target.as_deref()?;
    let Some(Field::Text(f)) = field(target) else {
        return None;
    };
    let [argument] = args.as_slice() else {
        return None;
    };
    let literal = text_literal(argument)?;
    let test = match name {
        "startsWith" => TextTest::StartsWith,
        "endsWith" => TextTest::EndsWith,
        "contains" => TextTest::Contains,
        "matches" => return Some(Node::Matches(f, pattern(literal)?)),
        _ => return None,
    };
    Some(Node::TextTest(f, test, literal.to_owned()))
}

/// `field OP literal`, with the field on the left.
fn comparison(order: Order, left: &IdedExpr, right: &IdedExpr) -> Option<Node> {
    match field(left)? {
        Field::Int(f) => Some(Node::Int(f, order, int_literal(right)?)),
        Field::Text(f) => Some(Node::Text(f, order, text_literal(right)?.to_owned())),
        Field::Bool if matches!(order, Order::Equal | Order::NotEqual) => {
            Some(Node::Bool(order, bool_literal(right)?))
        }
        Field::Bool | Field::List(_) => None,
    }
}

/// `item in list`: a literal in a list field, or a field in a list of literals.
fn membership(item: &IdedExpr, list: &IdedExpr) -> Option<Node> {
    if let (Some(text), Some(Field::List(f))) = (text_literal(item), field(list)) {
        return Some(Node::Listed(f, text.to_owned()));
    }
    let Expr::List(literals) = &list.expr else {
        return None;
    };
    match field(item)? {
        Field::Text(f) => Some(Node::TextOneOf(
            f,
            literals
                .elements
                .iter()
                .map(|e| text_literal(e).map(str::to_owned))
                .collect::<Option<_>>()?,
        )),
        Field::Int(f) => Some(Node::IntOneOf(
            f,
            literals
                .elements
                .iter()
                .map(int_literal)
                .collect::<Option<_>>()?,
        )),
        Field::Bool | Field::List(_) => None,
    }
}

impl Native {
    pub(crate) fn evaluate(&self, i: &IndicatorContext, lists: &NamedLists) -> bool {
        self.0.evaluate(i, lists)
    }
}

impl Node {
    fn evaluate(&self, i: &IndicatorContext, lists: &NamedLists) -> bool {
        match self {
            Node::Constant(b) => *b,
            Node::And(a, b) => a.evaluate(i, lists) && b.evaluate(i, lists),
            Node::Or(a, b) => a.evaluate(i, lists) || b.evaluate(i, lists),
            Node::Not(a) => !a.evaluate(i, lists),
            Node::Int(f, order, n) => order.holds(&f.read(i), n),
            Node::Text(f, order, text) => order.holds(f.read(i), text.as_str()),
            Node::Bool(order, b) => order.holds(&i.previous.exists, b),
            Node::Listed(f, text) => f.read(i).iter().any(|t| t == text),
            Node::TextOneOf(f, texts) => {
                let value = f.read(i);
                texts.iter().any(|t| t == value)
            }
            Node::IntOneOf(f, numbers) => numbers.contains(&f.read(i)),
            Node::TextTest(f, test, text) => {
                let value = f.read(i);
                match test {
                    TextTest::StartsWith => value.starts_with(text.as_str()),
                    TextTest::EndsWith => value.ends_with(text.as_str()),
                    TextTest::Contains => value.contains(text.as_str()),
                }
            }
            Node::Matches(f, regex) => regex.is_match(f.read(i)),
            Node::CidrMatch(f, list) => lists.cidr_match(f.read(i), list),
            Node::InList(field, list) => match field {
                Field::Int(f) => lists.in_list(&f.read(i).to_string(), list),
                Field::Text(f) => lists.in_list(f.read(i), list),
                Field::List(f) => f.read(i).iter().any(|v| lists.in_list(v, list)),
                Field::Bool => false,
            },
        }
    }
}
