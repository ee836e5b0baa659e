//! Pre-call targeting: which indicators a paid source is asked about at all.
//!
//! A source may be scoped to STIX types (`types`) and to a condition (`enrich_when`, CEL over the
//! indicator as the local sources see it in this run: class, geo, feeds, heuristics, the
//! priority they give, and the priority stored before). The rule language and its lists are the
//! automation rules' own. A "no" is a skip with reason `condition`, so the history and the
//! budgets see it, and what the source said before is kept (see [`crate::merge`]). A condition
//! that cannot be evaluated for an indicator keeps the indicator home as well: a paid call is
//! made only when the condition says yes.

use scry_core::Observable;
use scry_rules::condition::{Evaluator, Subject};
use scry_rules::{Condition, IndicatorContext, NamedLists};

/// When one source is asked.
pub struct Targeting {
    /// STIX types asked about; every type the source supports when empty.
    types: Vec<String>,
    when: Option<(Condition, Evaluator)>,
}

impl std::fmt::Debug for Targeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targeting")
            .field("types", &self.types)
            .field("when", &self.when.as_ref().map(|(c, _)| c.source()))
            .finish()
    }
}

/// STIX types a source may be scoped to.
const TYPES: &[&str] = &["ipv4-addr", "ipv6-addr", "domain-name", "url"];

impl Targeting {
    /// Checks `types` and compiles `when` against `lists`; the error says what is wrong and where
    /// in the condition.
    pub fn compile(
        types: &[String],
        when: Option<&str>,
        lists: NamedLists,
    ) -> Result<Targeting, String> {
        for kind in types {
            if !TYPES.contains(&kind.as_str()) {
                return Err(format!(
                    "types: {kind:?} is not one of {}",
                    TYPES.join(", ")
                ));
            }
        }
        let when = match when.map(str::trim).filter(|w| !w.is_empty()) {
            None => None,
            Some(text) => {
                let evaluator = Evaluator::new(lists);
                let condition =
                    Condition::compile(&evaluator, text, Subject::Indicator).map_err(|errors| {
                        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                        format!("enrich_when: {}", all.join("; "))
                    })?;
                Some((condition, evaluator))
            }
        };
        Ok(Targeting {
            types: types.to_vec(),
            when,
        })
    }

    /// True when the source is scoped to types and `observable` is not one of them.
    pub fn excludes_type(&self, observable: &Observable) -> bool {
        !self.types.is_empty() && !self.types.iter().any(|t| t == observable.stix_type())
    }

    /// Whether a condition has to be evaluated (and so a context built).
    pub fn has_condition(&self) -> bool {
        self.when.is_some()
    }

    /// Whether the condition admits the indicator; an error is a "no" with its reason.
    pub fn admits(&self, indicator: &IndicatorContext) -> Result<bool, String> {
        match &self.when {
            None => Ok(true),
            Some((condition, evaluator)) => evaluator
                .evaluate(&[condition], indicator)
                .pop()
                .unwrap_or(Ok(false)),
        }
    }
}

/// The targeting of every configured source that has some, by source name; a problem names the
/// setting it is in.
pub fn from_config(
    loaded: &crate::config::LoadedConfig,
) -> Result<std::collections::HashMap<String, Targeting>, crate::config::ConfigError> {
    let mut out = std::collections::HashMap::new();
    let Some(config) = &loaded.config.sources.criminalip else {
        return Ok(out);
    };
    if config.types.is_empty() && config.enrich_when.is_none() {
        return Ok(out);
    }
    let (lists, errors) = crate::automation::named_lists(loaded);
    if let Some(first) = errors.into_iter().next() {
        return Err(loaded.invalid(first));
    }
    let targeting = Targeting::compile(&config.types, config.enrich_when.as_deref(), lists)
        .map_err(|e| loaded.invalid(format!("[sources.criminalip] {e}")))?;
    out.insert("criminalip".to_owned(), targeting);
    Ok(out)
}
