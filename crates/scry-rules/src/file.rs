//! Rule files: the `[[rules]]` tables of the configuration file and of playbook files, read with
//! the position of everything in them. Each rule, each trigger and each action is read on its
//! own, so one unknown action or trigger does not hide the mistakes after it, and every mistake
//! names its file, line and column.

use std::ops::Range;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml_edit::{ImDocument, Item, Value};

use crate::rule::{ActionSpec, RuleError, RuleSpec, Trigger};

/// Where something is written: a file and a 1-based line and column (0 when not known, as for
/// rules built in code).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Place {
    /// A file without a position.
    pub fn file(file: impl Into<String>) -> Place {
        Place {
            file: file.into(),
            line: 0,
            column: 0,
        }
    }

    fn at(file: &str, text: &str, offset: usize) -> Place {
        let (line, column) = line_and_column(&text[..offset.min(text.len())]);
        Place {
            file: file.to_owned(),
            line,
            column,
        }
    }

    /// The place `line` and `column` (1-based) into a text that starts here.
    pub fn within(&self, line: usize, column: usize) -> Place {
        if self.line == 0 {
            return self.clone();
        }
        Place {
            file: self.file.clone(),
            line: self.line + line.saturating_sub(1),
            column: if line <= 1 {
                self.column + column.saturating_sub(1)
            } else {
                column
            },
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// The 1-based line and column (in characters) just after `before`, the text up to a place.
pub(crate) fn line_and_column(before: &str) -> (usize, usize) {
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A rule as written, with where it and its parts are.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSource {
    pub spec: RuleSpec,
    /// The rule itself (its `[[rules]]` header or its table).
    pub place: Place,
    /// The first character of the condition's text.
    pub when: Place,
    /// Each action, in order.
    pub actions: Vec<Place>,
    /// Parts of the rule had mistakes (reported when it was read) and are missing here: the rest
    /// is still checked, so every mistake shows at once, but the rule never runs.
    pub incomplete: bool,
}

impl RuleSource {
    /// A rule built in code or read without positions: every part is placed at `file`.
    pub fn unplaced(file: impl Into<String>, spec: RuleSpec) -> RuleSource {
        let place = Place::file(file);
        RuleSource {
            actions: vec![place.clone(); spec.actions.len()],
            when: place.clone(),
            place,
            spec,
            incomplete: false,
        }
    }
}

/// The settings a rule has; anything else is a mistake.
const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "on",
    "when",
    "actions",
    "enabled",
    "cooldown_hours",
];

/// Reads every rule of a TOML text (`[[rules]]` tables or a `rules = [...]` array; other keys are
/// not looked at), with every mistake found. A rule with mistakes comes back `incomplete`, for
/// the rest of it to be checked.
pub fn read_rules(file: &str, text: &str) -> (Vec<RuleSource>, Vec<RuleError>) {
    let document = match ImDocument::parse(text) {
        Ok(document) => document,
        Err(error) => {
            let place = Place::at(file, text, error.span().map_or(0, |s| s.start));
            let message = error.message().trim_end().to_owned();
            return (Vec::new(), vec![RuleError::new(place, "", message)]);
        }
    };
    let reader = Reader { file, text };
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let tables: Vec<(Vec<Entry>, usize)> = match document.get("rules") {
        None => Vec::new(),
        Some(Item::ArrayOfTables(array)) => array
            .iter()
            .map(|table| {
                let entries = table
                    .iter()
                    .map(|(key, item)| Entry {
                        key: key.to_owned(),
                        key_at: table.key(key).and_then(|k| k.span()).map_or(0, |s| s.start),
                        value: item.clone().into_value().ok(),
                        value_at: item.span().map_or(0, |s| s.start),
                    })
                    .collect();
                (entries, table.span().map_or(0, |s| s.start))
            })
            .collect(),
        Some(Item::Value(Value::Array(array))) => {
            let mut tables = Vec::new();
            for value in array.iter() {
                match value {
                    Value::InlineTable(table) => tables.push((
                        table
                            .iter()
                            .map(|(key, value)| Entry {
                                key: key.to_owned(),
                                key_at: table
                                    .key(key)
                                    .and_then(|k| k.span())
                                    .map_or(0, |s| s.start),
                                value: Some(value.clone()),
                                value_at: start(value.span()),
                            })
                            .collect(),
                        start(table.span()),
                    )),
                    other => errors.push(RuleError::new(
                        reader.place(start(other.span())),
                        "",
                        "each rule is a table: [[rules]] with name, on, when and actions".into(),
                    )),
                }
            }
            tables
        }
        Some(other) => {
            errors.push(RuleError::new(
                reader.place(start(other.span())),
                "",
                "`rules` is a list of tables: write each rule under [[rules]]".into(),
            ));
            Vec::new()
        }
    };
    for (index, (entries, at)) in tables.into_iter().enumerate() {
        let (rule, mut found) = reader.rule(index, &entries, at);
        rules.push(rule);
        errors.append(&mut found);
    }
    (rules, errors)
}

/// Reads a playbook file: its rules as [`read_rules`] does, and any other top-level key is a
/// mistake (a playbook holds `[[rules]]` only).
pub fn read_playbook(file: &str, text: &str) -> (Vec<RuleSource>, Vec<RuleError>) {
    let (rules, mut errors) = read_rules(file, text);
    if let Ok(document) = ImDocument::parse(text) {
        let reader = Reader { file, text };
        for (key, _) in document.iter().filter(|(key, _)| *key != "rules") {
            let at = document
                .key(key)
                .and_then(|k| k.span())
                .map_or(0, |s| s.start);
            errors.push(RuleError::new(
                reader.place(at),
                "",
                format!("unknown key `{key}`: a playbook file holds [[rules]] only"),
            ));
        }
    }
    (rules, errors)
}

fn start(span: Option<Range<usize>>) -> usize {
    span.map_or(0, |s| s.start)
}

/// One `key = value` of a rule, with the offsets of both.
struct Entry {
    key: String,
    key_at: usize,
    /// `None` for what cannot be a value (a sub-table with arrays of tables in it).
    value: Option<Value>,
    value_at: usize,
}

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
}

impl Reader<'_> {
    fn place(&self, offset: usize) -> Place {
        Place::at(self.file, self.text, offset)
    }

    /// `value` read as a `T`; a mistake is placed where serde says (an unknown variant inside
    /// an action), else at `at`.
    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        value: &Value,
        at: usize,
    ) -> Result<T, (Place, String)> {
        T::deserialize(value.clone().into_deserializer()).map_err(|error| {
            let offset = error.span().map_or(at, |s| s.start);
            (self.place(offset), error.message().trim_end().to_owned())
        })
    }

    /// Where the text of the string written at `at` starts: after its quotes, and after the
    /// line break TOML drops right after `'''` or `"""`.
    fn string_start(&self, at: usize) -> Place {
        let rest = &self.text[at.min(self.text.len())..];
        let quotes = if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
            3
        } else {
            1
        };
        let mut offset = at + quotes;
        let after = &self.text[offset.min(self.text.len())..];
        if quotes == 3 {
            if after.starts_with("\r\n") {
                offset += 2;
            } else if after.starts_with('\n') {
                offset += 1;
            }
        }
        self.place(offset)
    }

    fn rule(&self, index: usize, entries: &[Entry], at: usize) -> (RuleSource, Vec<RuleError>) {
        let place = self.place(at);
        let name = entries
            .iter()
            .find(|e| e.key == "name")
            .and_then(|e| e.value.as_ref()?.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("#{}", index + 1));
        let mut errors = Vec::new();
        let mut fail = |place: Place, message: String| {
            errors.push(RuleError::new(place, &name, message));
        };
        let mut spec = RuleSpec {
            name: String::new(),
            description: String::new(),
            on: Vec::new(),
            when: "true".into(),
            actions: Vec::new(),
            enabled: true,
            cooldown_hours: None,
        };
        let mut when = place.clone();
        let mut actions = Vec::new();
        let mut seen = Vec::new();
        for entry in entries {
            seen.push(entry.key.as_str());
            let Some(value) = &entry.value else {
                fail(
                    self.place(entry.key_at),
                    format!("`{}` must be a value, not a table", entry.key),
                );
                continue;
            };
            let at = entry.value_at;
            let mut set = |result: Result<(), (Place, String)>| {
                if let Err((place, message)) = result {
                    fail(place, format!("`{}`: {message}", entry.key));
                }
            };
            match entry.key.as_str() {
                "name" => set(self.parse(value, at).map(|v| spec.name = v)),
                "description" => set(self.parse(value, at).map(|v| spec.description = v)),
                "when" => set(self.parse(value, at).map(|v| {
                    spec.when = v;
                    when = self.string_start(at);
                })),
                "enabled" => set(self.parse(value, at).map(|v| spec.enabled = v)),
                "cooldown_hours" => {
                    set(self.parse(value, at).map(|v| spec.cooldown_hours = Some(v)))
                }
                "on" => match value {
                    Value::Array(triggers) => {
                        for trigger in triggers.iter() {
                            let at = start(trigger.span());
                            match self.parse::<Trigger>(trigger, at) {
                                Ok(t) => spec.on.push(t),
                                Err(_) => fail(
                                    self.place(at),
                                    format!(
                                        "unknown trigger {} (triggers: {})",
                                        trigger
                                            .span()
                                            .and_then(|s| self.text.get(s))
                                            .unwrap_or("?")
                                            .trim(),
                                        Trigger::ALL
                                            .iter()
                                            .map(|t| t.as_str())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                ),
                            }
                        }
                    }
                    _ => fail(
                        self.place(entry.value_at),
                        "`on` is a list of triggers, e.g. on = [\"enriched\"]".into(),
                    ),
                },
                "actions" => match value {
                    Value::Array(list) => {
                        for (n, action) in list.iter().enumerate() {
                            let at = start(action.span());
                            match self.parse::<ActionSpec>(action, at) {
                                Ok(parsed) => {
                                    spec.actions.push(parsed);
                                    actions.push(self.place(at));
                                }
                                Err((place, message)) => {
                                    fail(place, format!("action {}: {message}", n + 1))
                                }
                            }
                        }
                    }
                    _ => fail(
                        self.place(entry.value_at),
                        "`actions` is a list, e.g. actions = [{ do = \"tag\", tag = \"x\" }]"
                            .into(),
                    ),
                },
                other => fail(
                    self.place(entry.key_at),
                    format!(
                        "unknown setting `{other}` (a rule has {})",
                        RULE_KEYS.join(", ")
                    ),
                ),
            }
        }
        for required in ["name", "on", "actions"] {
            if !seen.contains(&required) {
                fail(place.clone(), format!("the rule has no `{required}`"));
            }
        }
        let incomplete = !errors.is_empty();
        (
            RuleSource {
                spec,
                place,
                when,
                actions,
                incomplete,
            },
            errors,
        )
    }
}
