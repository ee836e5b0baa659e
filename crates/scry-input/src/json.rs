//! JSON input: JSON Lines, and STIX 2.1 bundles read one object at a time.
//!
//! A bundle is streamed: its `objects` array is visited element by element with a serde visitor,
//! so a multi-gigabyte bundle needs memory for one object, not for the bundle.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use scry_core::Tlp;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    INDICATOR_FIELDS, Item, Position, ReadCounters, Rejection, TLP_FIELDS, candidate_or_rejection,
    for_each_line, normalize_field_name,
};

/// JSON Lines: each line is a string (the indicator), an object with an indicator field, or a
/// STIX object.
pub(super) fn read_lines(reader: &mut dyn BufRead, file: &Arc<str>, emit: &mut dyn FnMut(Item)) {
    let mut markings = Markings::default();
    for_each_line(reader, file, emit, |position, text, emit| {
        let line = text.trim();
        if line.is_empty() {
            return;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::String(s)) => emit(candidate_or_rejection(position, &s, None, None)),
            Ok(Value::Object(object))
                if object.contains_key("type") && object.contains_key("id") =>
            {
                stix_object(object, position, &mut markings, None, emit);
            }
            Ok(Value::Object(object)) => plain_object(object, position, emit),
            Ok(other) => emit(Item::Rejected(Rejection {
                position,
                input: truncate(line),
                reason: format!(
                    "expected a string or an object, found {}",
                    json_kind(&other)
                ),
            })),
            Err(e) => emit(Item::Rejected(Rejection {
                position,
                input: truncate(line),
                reason: format!("invalid JSON: {e}"),
            })),
        }
    });
    markings.finish(None, emit);
}

fn plain_object(mut object: Map<String, Value>, position: Position, emit: &mut dyn FnMut(Item)) {
    let key = INDICATOR_FIELDS.iter().find_map(|field| {
        object
            .keys()
            .find(|k| normalize_field_name(k) == *field && object[*k].is_string())
            .cloned()
    });
    let Some(key) = key else {
        let reason = format!(
            "no indicator field (expected one of: {})",
            INDICATOR_FIELDS.join(", ")
        );
        emit(Item::Rejected(Rejection {
            position,
            input: truncate(&Value::Object(object).to_string()),
            reason,
        }));
        return;
    };
    let value = match object.remove(&key) {
        Some(Value::String(s)) => s,
        _ => unreachable!("the key was chosen because it holds a string"),
    };
    let tlp_keys: Vec<String> = object
        .keys()
        .filter(|k| TLP_FIELDS.contains(&normalize_field_name(k).as_str()))
        .cloned()
        .collect();
    let mut tlp = None;
    for raw in tlp_keys.into_iter().filter_map(|k| object.remove(&k)) {
        match raw.as_str().map(str::parse::<Tlp>) {
            // Several TLP fields: the most restrictive holds.
            Some(Ok(level)) => tlp = tlp.max(Some(level)),
            Some(Err(e)) => {
                return emit(Item::Rejected(Rejection {
                    position,
                    input: value,
                    reason: e.to_string(),
                }));
            }
            None => {
                return emit(Item::Rejected(Rejection {
                    position,
                    input: value,
                    reason: format!("tlp must be a string, found {}", json_kind(&raw)),
                }));
            }
        }
    }
    emit(candidate_or_rejection(
        position,
        &value,
        tlp,
        (!object.is_empty()).then_some(object),
    ));
}

/// Reads a STIX bundle, visiting `objects` one element at a time.
pub(super) fn read_bundle(
    reader: Box<dyn BufRead + '_>,
    file: &Arc<str>,
    counters: &ReadCounters,
    emit: &mut dyn FnMut(Item),
) {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut visitor = BundleVisitor {
        file,
        counters,
        emit,
        markings: Markings::default(),
        bundle_type: None,
    };
    let position = Position {
        file: Arc::clone(file),
        line: 0,
        object: None,
    };
    let read = serde::Deserializer::deserialize_map(&mut deserializer, &mut visitor);
    // Objects whose markings were defined later in the bundle (or never) are resolved now.
    visitor.markings.finish(Some(counters), visitor.emit);
    match read {
        Ok(()) => {
            let problem = match visitor.bundle_type.as_deref() {
                Some("bundle") => None,
                Some(other) => Some(format!(
                    "expected a STIX bundle, found an object of type {other:?}"
                )),
                None => Some("expected a STIX bundle: the object has no \"type\"".to_owned()),
            };
            if let Some(reason) = problem {
                (visitor.emit)(Item::Rejected(Rejection {
                    position,
                    input: String::new(),
                    reason,
                }));
            }
        }
        Err(e) => {
            let reason = format!(
                "invalid STIX bundle at line {} column {}, rest of input skipped: {e}",
                e.line(),
                e.column()
            );
            (visitor.emit)(Item::Rejected(Rejection {
                position: Position {
                    line: e.line() as u64,
                    ..position
                },
                input: String::new(),
                reason,
            }));
        }
    }
}

struct BundleVisitor<'a, 'e> {
    file: &'a Arc<str>,
    counters: &'a ReadCounters,
    emit: &'e mut dyn FnMut(Item),
    markings: Markings,
    bundle_type: Option<String>,
}

impl<'de> Visitor<'de> for &mut BundleVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a STIX bundle object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => self.bundle_type = Some(map.next_value::<String>()?),
                "objects" => {
                    map.next_value_seed(ObjectsSeed(self))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct ObjectsSeed<'v, 'a, 'e>(&'v mut BundleVisitor<'a, 'e>);

impl<'de> DeserializeSeed<'de> for ObjectsSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ObjectsSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of STIX objects")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        let visitor = self.0;
        let mut index = 0u64;
        while let Some(value) = seq.next_element::<Value>()? {
            let position = Position {
                file: Arc::clone(visitor.file),
                line: 0,
                object: Some(index),
            };
            match value {
                Value::Object(object) => stix_object(
                    object,
                    position,
                    &mut visitor.markings,
                    Some(visitor.counters),
                    visitor.emit,
                ),
                other => (visitor.emit)(Item::Rejected(Rejection {
                    position,
                    input: truncate(&other.to_string()),
                    reason: format!("expected a STIX object, found {}", json_kind(&other)),
                })),
            }
            index += 1;
        }
        Ok(())
    }
}

/// Cyber-observable types and the property that holds their value.
const SCO_VALUE: &[(&str, &str)] = &[
    ("ipv4-addr", "value"),
    ("ipv6-addr", "value"),
    ("domain-name", "value"),
    ("url", "value"),
    ("email-addr", "value"),
    ("autonomous-system", "number"),
];

/// Handles one STIX object: marking definitions are remembered; an object whose markings are
/// not all known yet waits for the end of the input; the others go on to [`stix_value`].
fn stix_object(
    object: Map<String, Value>,
    position: Position,
    markings: &mut Markings,
    counters: Option<&ReadCounters>,
    emit: &mut dyn FnMut(Item),
) {
    if object.get("type").and_then(Value::as_str) == Some("marking-definition") {
        markings.learn(&object);
        ignore(counters);
        return;
    }
    if !yields_values(&object) {
        ignore(counters);
        return;
    }
    match markings.resolve(&object) {
        Resolution::Known(tlp) => stix_value(&object, position, tlp, counters, emit),
        Resolution::Unresolved => markings.defer(object, position, counters, emit),
    }
}

/// Whether an object can yield indicators (so its TLP matters).
fn yields_values(object: &Map<String, Value>) -> bool {
    match object.get("type").and_then(Value::as_str) {
        Some("indicator" | "file") => true,
        Some(kind) => SCO_VALUE.iter().any(|(t, _)| *t == kind),
        // Rejected as such by `stix_value`.
        None => true,
    }
}

/// Indicators yield their pattern's values, observables their value, under `tlp`.
fn stix_value(
    object: &Map<String, Value>,
    position: Position,
    tlp: Option<Tlp>,
    counters: Option<&ReadCounters>,
    emit: &mut dyn FnMut(Item),
) {
    let id = object.get("id").and_then(Value::as_str).unwrap_or("");
    let Some(kind) = object.get("type").and_then(Value::as_str) else {
        emit(Item::Rejected(Rejection {
            position,
            input: id.to_owned(),
            reason: "STIX object has no \"type\"".into(),
        }));
        return;
    };
    let mut context = Map::new();
    context.insert("stix_id".into(), Value::String(id.to_owned()));
    if let Some(name) = object.get("name").and_then(Value::as_str) {
        context.insert("name".into(), Value::String(name.to_owned()));
    }
    if let Some(labels) = object.get("labels").filter(|l| l.is_array()) {
        context.insert("labels".into(), labels.clone());
    }
    // What the producer judged, kept for the `stix-import` source: its score (OpenCTI's
    // property), its confidence, who made it and its markings.
    for key in [
        "x_opencti_score",
        "confidence",
        "created_by_ref",
        "object_marking_refs",
    ] {
        if let Some(value) = object.get(key).filter(|v| !v.is_null()) {
            context.insert(key.into(), value.clone());
        }
    }
    match kind {
        "indicator" => {
            let pattern_type = object
                .get("pattern_type")
                .and_then(Value::as_str)
                .unwrap_or("stix");
            if pattern_type != "stix" {
                emit(Item::Rejected(Rejection {
                    position,
                    input: id.to_owned(),
                    reason: format!(
                        "pattern_type {pattern_type:?} is not supported (only \"stix\")"
                    ),
                }));
                return;
            }
            let Some(pattern) = object.get("pattern").and_then(Value::as_str) else {
                emit(Item::Rejected(Rejection {
                    position,
                    input: id.to_owned(),
                    reason: "indicator has no pattern".into(),
                }));
                return;
            };
            let comparisons = match scry_stix::comparisons(pattern) {
                Ok(c) => c,
                Err(e) => {
                    emit(Item::Rejected(Rejection {
                        position,
                        input: pattern.to_owned(),
                        reason: format!("invalid pattern: {e}"),
                    }));
                    return;
                }
            };
            let mut usable = 0;
            for comparison in comparisons {
                let value = match (comparison.object_type.as_str(), comparison.path.as_str()) {
                    ("autonomous-system", "number") => format!("AS{}", comparison.value),
                    ("file", path) if path.starts_with("hashes.") => comparison.value,
                    (object_type, "value") if SCO_VALUE.iter().any(|(t, _)| *t == object_type) => {
                        comparison.value
                    }
                    _ => continue,
                };
                usable += 1;
                emit(typed_candidate(
                    position.clone(),
                    &value,
                    &comparison.object_type,
                    tlp,
                    Some(context.clone()),
                ));
            }
            if usable == 0 {
                emit(Item::Rejected(Rejection { position, input: pattern.to_owned(), reason: "pattern compares no address, domain, URL, e-mail, ASN or file hash with \"=\" or IN".into() }));
            }
        }
        "file" => {
            let hashes = object.get("hashes").and_then(Value::as_object);
            let hash = hashes.and_then(|h| {
                ["SHA-256", "SHA-1", "MD5", "SHA-512"]
                    .iter()
                    .find_map(|k| h.get(*k)?.as_str())
            });
            match hash {
                Some(value) => emit(typed_candidate(position, value, "file", tlp, Some(context))),
                None => ignore(counters),
            }
        }
        sco => {
            match SCO_VALUE.iter().find(|(t, _)| *t == sco) {
                Some((_, property)) => match object.get(*property) {
                    Some(Value::String(value)) => {
                        emit(typed_candidate(position, value, sco, tlp, Some(context)))
                    }
                    Some(Value::Number(number)) if sco == "autonomous-system" => emit(
                        typed_candidate(position, &format!("AS{number}"), sco, tlp, Some(context)),
                    ),
                    _ => emit(Item::Rejected(Rejection {
                        position,
                        input: id.to_owned(),
                        reason: format!("{sco} object has no {property:?}"),
                    })),
                },
                None => ignore(counters),
            }
        }
    }
}

/// The indicator a STIX object of `object_type` holds, or a rejection when its value is not
/// of that type (an `ipv4-addr` whose value is a number, a `domain-name` holding an address):
/// the object's type is what its producer meant, and a value read as something else is a
/// mistake to report, not an indicator to guess.
fn typed_candidate(
    position: Position,
    value: &str,
    object_type: &str,
    tlp: Option<Tlp>,
    context: Option<Map<String, Value>>,
) -> Item {
    match candidate_or_rejection(position, value, tlp, context) {
        Item::Candidate(candidate) if candidate.observable.stix_type() != object_type => {
            Item::Rejected(Rejection {
                reason: format!(
                    "{value:?} is not a {object_type} value (it reads as {}): the object's type and value disagree",
                    candidate.observable.stix_type()
                ),
                position: candidate.position,
                input: candidate.input,
            })
        }
        other => other,
    }
}

fn ignore(counters: Option<&ReadCounters>) {
    if let Some(c) = counters {
        c.ignored_objects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Most objects waiting for their markings to be defined; beyond it an object is resolved at
/// once, an unknown marking counting as TLP:RED.
const MAX_DEFERRED: usize = 100_000;

/// What an object's markings say of its TLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    /// Every marking is known: the most restrictive TLP among them, `None` for no TLP marking.
    Known(Option<Tlp>),
    /// A marking is neither a standard TLP marking nor defined so far.
    Unresolved,
}

/// The marking definitions an input defines, and the objects waiting for one defined later.
///
/// STIX lets a bundle define a marking after the objects that use it, so an object with an
/// unknown marking waits for the end of the input; a marking still unknown then, a marking
/// reference of the wrong shape, and a TLP marking of an unknown level all count as TLP:RED:
/// what is unknown about TLP keeps the indicator home. Markings count whether they apply to the
/// whole object (`object_marking_refs`) or to part of it (`granular_markings`): the most
/// restrictive wins.
#[derive(Default)]
struct Markings {
    /// Marking-definition id (lower case) → its TLP level, `None` for a marking that is not TLP.
    defined: HashMap<String, Option<Tlp>>,
    deferred: Vec<(Map<String, Value>, Position)>,
}

impl Markings {
    /// Remembers a marking-definition object.
    fn learn(&mut self, object: &Map<String, Value>) {
        if let Some(id) = object.get("id").and_then(Value::as_str) {
            self.defined
                .insert(id.trim().to_ascii_lowercase(), marking_level(object));
        }
    }

    fn resolve(&self, object: &Map<String, Value>) -> Resolution {
        let Some(refs) = marking_refs(object) else {
            return Resolution::Known(Some(Tlp::Red));
        };
        let mut level = None;
        for marking in refs {
            let known = scry_stix::tlp_from_marking_ref(marking)
                .map(Some)
                .or_else(|| {
                    self.defined
                        .get(&marking.trim().to_ascii_lowercase())
                        .copied()
                });
            match known {
                Some(tlp) => level = level.max(tlp),
                None => return Resolution::Unresolved,
            }
        }
        Resolution::Known(level)
    }

    /// Keeps `object` until the end of the input, or resolves it now when too many wait.
    fn defer(
        &mut self,
        object: Map<String, Value>,
        position: Position,
        counters: Option<&ReadCounters>,
        emit: &mut dyn FnMut(Item),
    ) {
        if self.deferred.len() < MAX_DEFERRED {
            self.deferred.push((object, position));
        } else {
            stix_value(&object, position, Some(Tlp::Red), counters, emit);
        }
    }

    /// The end of the input: every waiting object is read with the markings now known, an
    /// unknown one counting as TLP:RED.
    fn finish(&mut self, counters: Option<&ReadCounters>, emit: &mut dyn FnMut(Item)) {
        for (object, position) in std::mem::take(&mut self.deferred) {
            let tlp = match self.resolve(&object) {
                Resolution::Known(tlp) => tlp,
                Resolution::Unresolved => Some(Tlp::Red),
            };
            stix_value(&object, position, tlp, counters, emit);
        }
    }
}

/// Every marking reference of an object, whole-object and granular; `None` when a reference is
/// not where or what STIX says it is (a string where a list belongs, a number as a reference).
fn marking_refs(object: &Map<String, Value>) -> Option<Vec<&str>> {
    let mut refs = Vec::new();
    match object.get("object_marking_refs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                refs.push(item.as_str()?);
            }
        }
        Some(_) => return None,
    }
    match object.get("granular_markings") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let item = item.as_object()?;
                match item.get("marking_ref") {
                    Some(Value::String(marking)) => refs.push(marking),
                    // A language marking says nothing of TLP.
                    None if item.contains_key("lang") => {}
                    _ => return None,
                }
            }
        }
        Some(_) => return None,
    }
    Some(refs)
}

/// The TLP level a marking-definition object defines (TLP 1.0 `definition.tlp`, the TLP 2.0
/// extension's `tlp_2_0`, or a TLP name), `None` when it is not a TLP marking; a TLP marking of
/// a level scry does not know counts as TLP:RED.
fn marking_level(object: &Map<String, Value>) -> Option<Tlp> {
    let parse = |level: &str| level.parse::<Tlp>().unwrap_or(Tlp::Red);
    if let Some(level) = object.get("definition").and_then(|d| d.get("tlp")) {
        return Some(level.as_str().map_or(Tlp::Red, parse));
    }
    if let Some(level) = object
        .get("extensions")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|extensions| extensions.values())
        .find_map(|extension| extension.get("tlp_2_0"))
    {
        return Some(level.as_str().map_or(Tlp::Red, parse));
    }
    let definition_type = object.get("definition_type").and_then(Value::as_str);
    let name = object.get("name").and_then(Value::as_str).unwrap_or("");
    let named_tlp = name.trim().to_ascii_lowercase().starts_with("tlp");
    if definition_type.is_some_and(|t| t.eq_ignore_ascii_case("tlp")) || named_tlp {
        return Some(if named_tlp { parse(name) } else { Tlp::Red });
    }
    None
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Keeps echoed input short in rejections.
fn truncate(text: &str) -> String {
    const LIMIT: usize = 200;
    if text.len() <= LIMIT {
        return text.to_owned();
    }
    let cut = (0..=LIMIT)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &text[..cut])
}
