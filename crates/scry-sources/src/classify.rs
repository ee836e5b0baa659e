//! The built-in classification source: what scry itself can say about an indicator with no data
//! and no network — its address class, registrable domain, IDN form, URL parts.
//!
//! It adds no priority points (being private is not being malicious) but its details and tags are
//! what an analyst reads first, and what the egress gate's skip reasons refer to.

use scry_core::observable::{UrlHost, UrlObservable};
use scry_core::{Cleared, Destination, DomainName, Observable};
use serde_json::{Map, Value, json};

use crate::{EnrichOptions, Finding, Source, SourceError, SourceFuture};

/// The source named `classify`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Classification;

impl Classification {
    /// The finding for one observable (pure).
    pub fn classify(observable: &Observable) -> Finding {
        let mut tags = Vec::new();
        let details = match observable {
            Observable::Ip(ip) => {
                json!({ "version": if ip.is_ipv4() { 4 } else { 6 }, "class": scry_core::ip::classify(*ip).as_str() })
            }
            Observable::Cidr(net) => json!({
                "version": if net.addr().is_ipv4() { 4 } else { 6 },
                "class": scry_core::ip::classify_net(*net).as_str(),
                "prefix_len": net.prefix_len(),
            }),
            Observable::Domain(domain) => domain_details(domain, &mut tags),
            Observable::Url(url) => url_details(url, &mut tags),
            Observable::Email { domain, .. } => {
                json!({ "domain": domain_details(domain, &mut tags) })
            }
            Observable::Asn(number) => json!({ "number": number }),
            Observable::Cve(id) => json!({ "id": id }),
            Observable::Hash { algorithm, .. } => json!({ "algorithm": algorithm.stix_name() }),
        };
        Finding {
            details,
            tags,
            ..Finding::default()
        }
    }
}

fn domain_details(domain: &DomainName, tags: &mut Vec<String>) -> Value {
    let mut details = Map::new();
    details.insert("class".into(), domain.class().as_str().into());
    if let Some(registrable) = domain.registrable() {
        details.insert("registrable_domain".into(), registrable.into());
    }
    if let Some(suffix) = domain.public_suffix() {
        details.insert("public_suffix".into(), suffix.into());
    }
    if let Some(unicode) = domain.unicode() {
        details.insert("unicode".into(), unicode.into());
        tags.push("idn".into());
    }
    details.insert("labels".into(), domain.as_str().split('.').count().into());
    Value::Object(details)
}

fn url_details(url: &UrlObservable, tags: &mut Vec<String>) -> Value {
    let mut details = Map::new();
    details.insert("scheme".into(), url.scheme().into());
    match url.host() {
        UrlHost::Domain(domain) => {
            details.insert("host".into(), domain.as_str().into());
            details.insert("host_type".into(), "domain".into());
            details.insert("host_details".into(), domain_details(domain, tags));
        }
        UrlHost::Ip(ip) => {
            details.insert("host".into(), ip.to_string().into());
            details.insert("host_type".into(), "ip".into());
            details.insert("class".into(), scry_core::ip::classify(*ip).as_str().into());
            tags.push("ip-literal-url".into());
        }
    }
    if let Some(port) = url.port() {
        details.insert("port".into(), port.into());
        tags.push("non-default-port".into());
    }
    Value::Object(details)
}

impl Source for Classification {
    fn name(&self) -> &str {
        "classify"
    }

    fn destination(&self) -> Destination {
        Destination::Local
    }

    fn supports(&self, _observable: &Observable) -> bool {
        true
    }

    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        _options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        Box::pin(async move { Ok(Classification::classify(indicator.observable())) })
    }

    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        Box::pin(async { Ok("built in; needs no key and sends nothing out".to_owned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(text: &str) -> Finding {
        Classification::classify(&Observable::parse(text).expect("valid"))
    }

    #[test]
    fn details_and_tags_per_kind() {
        assert_eq!(
            classify("10.1.2.3").details,
            json!({"version": 4, "class": "private"})
        );
        let idn = classify("pаypal.com");
        assert_eq!(idn.tags, ["idn"]);
        assert_eq!(idn.details["unicode"], "pаypal.com");
        assert_eq!(idn.details["registrable_domain"], "xn--pypal-4ve.com");
        let url = classify("http://185.220.101.4:8080/gate.php");
        assert_eq!(url.tags, ["ip-literal-url", "non-default-port"]);
        assert_eq!(url.details["class"], "public");
        assert!(url.reasons.is_empty(), "classification adds no points");
    }
}
