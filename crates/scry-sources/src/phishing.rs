//! The offline `phishing` source: look-alike and phishing heuristics for domains, URLs and the
//! domains of e-mail addresses, against the protected brands (an organization's own first, then a
//! shipped list of widely phished ones). Each signal is a reason with its points, so a look-alike
//! rises in priority with no key and no network; nothing leaves the machine.

use scry_core::{Cleared, Destination, Observable, Reason};
use scry_offline::phishing::{Heuristics, Signal};
use serde_json::json;

use crate::{EnrichOptions, Finding, Source, SourceError, SourceFuture};

/// The source named `phishing`.
#[derive(Debug, Clone)]
pub struct Phishing {
    heuristics: Heuristics,
}

impl Phishing {
    pub fn new(brands: Vec<scry_offline::phishing::Brand>) -> Phishing {
        Phishing {
            heuristics: Heuristics::new(brands),
        }
    }

    /// The finding for one observable (pure).
    pub fn assess(&self, observable: &Observable) -> Finding {
        let signals = match observable {
            Observable::Domain(domain) => self.heuristics.domain(domain),
            Observable::Url(url) => self.heuristics.url(url),
            Observable::Email { domain, .. } => self.heuristics.domain(domain),
            _ => Vec::new(),
        };
        let mut tags = Vec::new();
        if signals.iter().any(|s| s.signal == "lookalike") {
            tags.push("lookalike".to_owned());
        }
        if signals.iter().any(|s| s.signal.starts_with("brand-")) {
            tags.push("brand-impersonation".to_owned());
        }
        let details = json!({
            "signals": signals.iter().map(|s| json!({"signal": s.signal, "value": s.value, "points": s.points})).collect::<Vec<_>>(),
        });
        Finding {
            reasons: signals.into_iter().map(reason).collect(),
            tags,
            details,
            ..Finding::default()
        }
    }
}

fn reason(signal: Signal) -> Reason {
    Reason {
        source: "phishing".into(),
        signal: signal.signal.into(),
        value: signal.value,
        points: signal.points,
    }
}

impl Source for Phishing {
    fn name(&self) -> &str {
        "phishing"
    }

    fn destination(&self) -> Destination {
        Destination::Local
    }

    fn supports(&self, observable: &Observable) -> bool {
        matches!(
            observable,
            Observable::Domain(_) | Observable::Url(_) | Observable::Email { .. }
        )
    }

    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        _options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        let finding = self.assess(indicator.observable());
        Box::pin(async move { Ok(finding) })
    }

    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        let text = format!(
            "offline phishing heuristics, {} protected brands",
            self.heuristics.brand_count()
        );
        Box::pin(async move { Ok(text) })
    }
}
