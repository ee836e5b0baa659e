//! The egress gate: the one function that decides whether an indicator may be sent to a source.
//!
//! **Architecture invariant (DESIGN.md invariant 1):** no indicator leaves the machine if it is a
//! special-use address, an internal or reserved name, on the allowlist, or marked with a TLP above
//! the source's maximum. Sources only accept a [`Cleared`] value, and [`EgressGate::clear`] is the
//! only way to make one, so a call that skipped the gate does not compile.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixSet;

use crate::domain::{DomainClass, DomainName};
use crate::ip::IpClass;
use crate::observable::Observable;
use crate::tlp::Tlp;

/// Why an indicator was not sent to a source. The names are stable: they appear as `skip_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A special-use address or block (private, loopback, documentation, …).
    Address(IpClass),
    InternalDomain,
    ReservedDomain,
    Allowlisted,
    Tlp,
    /// The source's credit budget is spent for the period.
    Budget,
    /// No configured source enriches this kind of indicator (e-mail, ASN, CVE, hash).
    UnsupportedType,
    /// The source's targeting (`types`, `enrich_when`) keeps the indicator from it.
    Condition,
}

impl SkipReason {
    /// True for what is the organization's own or known good — a special-use address, an
    /// internal or reserved name, an allowlisted entry — rather than a threat: such entries are
    /// kept out of exports and feeds unless asked for.
    pub fn is_own(self) -> bool {
        matches!(
            self,
            SkipReason::Address(_)
                | SkipReason::InternalDomain
                | SkipReason::ReservedDomain
                | SkipReason::Allowlisted
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Address(class) => class.as_str(),
            SkipReason::InternalDomain => "internal-domain",
            SkipReason::ReservedDomain => "reserved-domain",
            SkipReason::Allowlisted => "allowlisted",
            SkipReason::Tlp => "tlp",
            SkipReason::Budget => "budget",
            SkipReason::UnsupportedType => "unsupported-type",
            SkipReason::Condition => "condition",
        }
    }
}

/// A skip reason not known to this version of scry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown skip reason {0:?}")]
pub struct UnknownSkipReason(pub String);

impl std::str::FromStr for SkipReason {
    type Err = UnknownSkipReason;

    /// Reads the word [`SkipReason::as_str`] writes.
    fn from_str(s: &str) -> Result<SkipReason, UnknownSkipReason> {
        const FIXED: [SkipReason; 7] = [
            SkipReason::InternalDomain,
            SkipReason::ReservedDomain,
            SkipReason::Allowlisted,
            SkipReason::Tlp,
            SkipReason::Budget,
            SkipReason::UnsupportedType,
            SkipReason::Condition,
        ];
        const CLASSES: [IpClass; 9] = [
            IpClass::Public,
            IpClass::Private,
            IpClass::Shared,
            IpClass::Loopback,
            IpClass::LinkLocal,
            IpClass::Multicast,
            IpClass::Documentation,
            IpClass::Benchmarking,
            IpClass::Reserved,
        ];
        FIXED
            .into_iter()
            .chain(CLASSES.into_iter().map(SkipReason::Address))
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| UnknownSkipReason(s.to_owned()))
    }
}

impl serde::Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SkipReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SkipReason, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a call would send the indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A source that runs on this machine (offline data, heuristics): nothing leaves.
    Local,
    /// A source outside the machine, with the highest TLP it may receive.
    External { max_tlp: Tlp },
}

/// What the gate knows about one indicator.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub observable: &'a Observable,
    pub tlp: Option<Tlp>,
    /// The indicator's autonomous system, when already known (offline data, earlier enrichment).
    pub asn: Option<u32>,
}

/// Proof that an indicator passed the gate for one destination.
#[derive(Debug, Clone, Copy)]
pub struct Cleared<'a> {
    observable: &'a Observable,
    destination: Destination,
}

impl<'a> Cleared<'a> {
    pub fn observable(&self) -> &'a Observable {
        self.observable
    }
    pub fn destination(&self) -> Destination {
        self.destination
    }
}

/// An allowlist entry that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowlist entry {entry:?}: {reason}")]
pub struct AllowlistError {
    pub entry: String,
    pub reason: String,
}

/// Addresses, blocks, ASNs and names that are never sent out: the organization's own and known
/// good infrastructure. Address lookups are longest-prefix matches in a trie.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    v4: PrefixSet<Ipv4Net>,
    v6: PrefixSet<Ipv6Net>,
    asns: HashSet<u32>,
    exact_names: HashSet<String>,
    /// `*.example.com` entries, stored without the `*.`: they match names strictly below.
    wildcard_names: HashSet<String>,
}

impl EgressPolicy {
    /// Adds one entry: an IP, a CIDR block, a range `a.b.c.d-e.f.g.h`, an ASN (`AS64512`), a domain
    /// (exact) or `*.domain` (every name below it, not the domain itself).
    pub fn allow(&mut self, entry: &str) -> Result<(), AllowlistError> {
        let text = entry.trim();
        let fail = |reason: &str| AllowlistError {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(fail("empty entry"));
        }
        if let Some((start, end)) = text.split_once('-')
            && let (Ok(start), Ok(end)) =
                (start.trim().parse::<IpAddr>(), end.trim().parse::<IpAddr>())
        {
            let nets = match (start, end) {
                (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => ipnet::Ipv4Subnets::new(s, e, 0)
                    .map(IpNet::V4)
                    .collect::<Vec<_>>(),
                (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => {
                    ipnet::Ipv6Subnets::new(s, e, 0).map(IpNet::V6).collect()
                }
                _ => {
                    return Err(fail(
                        "a range needs two addresses of one family, the lower first",
                    ));
                }
            };
            nets.into_iter().for_each(|n| self.insert_net(n));
            return Ok(());
        }
        if let Some(rest) = text.strip_prefix("*.") {
            let name = DomainName::parse(rest).map_err(|e| fail(&e.to_string()))?;
            self.wildcard_names.insert(name.as_str().to_owned());
            return Ok(());
        }
        match Observable::parse(text) {
            Ok(Observable::Ip(ip)) => self.insert_net(IpNet::from(ip)),
            Ok(Observable::Cidr(net)) => self.insert_net(net),
            Ok(Observable::Asn(n)) => {
                self.asns.insert(n);
            }
            Ok(Observable::Domain(d)) => {
                self.exact_names.insert(d.as_str().to_owned());
            }
            Ok(_) => {
                return Err(fail(
                    "expected an IP, CIDR block, range, ASN, domain or *.domain",
                ));
            }
            Err(e) => return Err(fail(&e.to_string())),
        }
        Ok(())
    }

    fn insert_net(&mut self, net: IpNet) {
        match net.trunc() {
            IpNet::V4(n) => {
                self.v4.insert(n);
            }
            IpNet::V6(n) => {
                self.v6.insert(n);
            }
        }
    }

    fn contains_net(&self, net: IpNet) -> bool {
        match net {
            IpNet::V4(n) => self.v4.get_lpm(&n).is_some(),
            IpNet::V6(n) => self.v6.get_lpm(&n).is_some(),
        }
    }

    fn contains_name(&self, name: &DomainName) -> bool {
        if self.exact_names.contains(name.as_str()) {
            return true;
        }
        // Walk the parents of the name: `a.b.example.com` checks `b.example.com`, `example.com`, `com`.
        let ascii = name.as_str();
        ascii
            .match_indices('.')
            .any(|(i, _)| self.wildcard_names.contains(&ascii[i + 1..]))
    }

    /// True if the subject matches an allowlist entry.
    pub fn is_allowlisted(&self, subject: &Subject<'_>) -> bool {
        if subject.asn.is_some_and(|asn| self.asns.contains(&asn)) {
            return true;
        }
        match subject.observable {
            Observable::Ip(ip) => self.contains_net(IpNet::from(*ip)),
            Observable::Cidr(net) => self.contains_net(*net),
            Observable::Asn(n) => self.asns.contains(n),
            Observable::Url(url) => match url.host() {
                crate::observable::UrlHost::Ip(ip) => self.contains_net(IpNet::from(*ip)),
                crate::observable::UrlHost::Domain(d) => self.contains_name(d),
            },
            other => other.domain().is_some_and(|d| self.contains_name(d)),
        }
    }

    /// Number of entries, for reporting.
    pub fn len(&self) -> usize {
        self.v4.iter().count()
            + self.v6.iter().count()
            + self.asns.len()
            + self.exact_names.len()
            + self.wildcard_names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The gate itself: the policy plus the one decision function.
#[derive(Debug, Clone, Default)]
pub struct EgressGate {
    policy: EgressPolicy,
}

impl EgressGate {
    pub fn new(policy: EgressPolicy) -> EgressGate {
        EgressGate { policy }
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Decides whether `subject` may go to `destination`. Local destinations always pass: nothing
    /// leaves the machine. External ones are refused, in this order, for special-use addresses,
    /// internal and reserved names, allowlist matches, and a TLP above the destination's maximum.
    pub fn clear<'a>(
        &self,
        subject: Subject<'a>,
        destination: Destination,
    ) -> Result<Cleared<'a>, SkipReason> {
        let cleared = Cleared {
            observable: subject.observable,
            destination,
        };
        let Destination::External { max_tlp } = destination else {
            return Ok(cleared);
        };
        if let Some(class) = subject.observable.ip_class()
            && !class.is_public()
        {
            return Err(SkipReason::Address(class));
        }
        match subject.observable.domain_class() {
            Some(DomainClass::Internal) => return Err(SkipReason::InternalDomain),
            Some(DomainClass::Reserved) => return Err(SkipReason::ReservedDomain),
            Some(DomainClass::Public) | None => {}
        }
        if self.policy.is_allowlisted(&subject) {
            return Err(SkipReason::Allowlisted);
        }
        if subject.tlp.is_some_and(|tlp| tlp > max_tlp) {
            return Err(SkipReason::Tlp);
        }
        Ok(cleared)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_skip_reason_reads_back_from_its_word() {
        use std::str::FromStr;
        for word in [
            "private",
            "link-local",
            "reserved",
            "internal-domain",
            "reserved-domain",
            "allowlisted",
            "tlp",
            "budget",
            "unsupported-type",
            "condition",
        ] {
            let reason = super::SkipReason::from_str(word).expect(word);
            assert_eq!(reason.as_str(), word);
        }
        assert!(super::SkipReason::from_str("sunny").is_err());
    }

    use super::*;

    fn gate(entries: &[&str]) -> EgressGate {
        let mut policy = EgressPolicy::default();
        for e in entries {
            policy.allow(e).expect("valid entry");
        }
        EgressGate::new(policy)
    }

    fn decide(gate: &EgressGate, text: &str, tlp: Option<Tlp>) -> Result<(), &'static str> {
        let observable = Observable::parse(text).expect("valid indicator");
        let subject = Subject {
            observable: &observable,
            tlp,
            asn: None,
        };
        gate.clear(
            subject,
            Destination::External {
                max_tlp: Tlp::Amber,
            },
        )
        .map(|_| ())
        .map_err(SkipReason::as_str)
    }

    #[test]
    fn special_use_never_leaves() {
        let g = gate(&[]);
        assert_eq!(decide(&g, "10.0.0.1", None), Err("private"));
        assert_eq!(decide(&g, "100.64.1.1", None), Err("shared"));
        assert_eq!(decide(&g, "127.0.0.1", None), Err("loopback"));
        assert_eq!(decide(&g, "http://192.168.1.1/admin", None), Err("private"));
        assert_eq!(decide(&g, "fileserver.corp", None), Err("internal-domain"));
        assert_eq!(
            decide(&g, "https://intranet.local/x", None),
            Err("internal-domain")
        );
        assert_eq!(decide(&g, "www.example.com", None), Err("reserved-domain"));
        assert_eq!(decide(&g, "8.8.8.8", None), Ok(()));
    }

    #[test]
    fn allowlist_matches_blocks_ranges_names_and_wildcards() {
        let g = gate(&[
            "8.8.8.0/24",
            "1.1.1.1",
            "9.9.9.0-9.9.9.15",
            "2606:4700::/32",
            "trusted.com",
            "*.partner.org",
            "AS13335",
        ]);
        assert_eq!(decide(&g, "8.8.8.200", None), Err("allowlisted"));
        assert_eq!(decide(&g, "8.8.9.1", None), Ok(()));
        assert_eq!(decide(&g, "9.9.9.15", None), Err("allowlisted"));
        assert_eq!(decide(&g, "9.9.9.16", None), Ok(()));
        assert_eq!(decide(&g, "2606:4700:10::1", None), Err("allowlisted"));
        assert_eq!(decide(&g, "trusted.com", None), Err("allowlisted"));
        assert_eq!(decide(&g, "sub.trusted.com", None), Ok(()));
        assert_eq!(decide(&g, "a.b.partner.org", None), Err("allowlisted"));
        assert_eq!(decide(&g, "partner.org", None), Ok(()));
        assert_eq!(
            decide(&g, "https://x.partner.org/login", None),
            Err("allowlisted")
        );
        assert_eq!(decide(&g, "8.8.8.0/25", None), Err("allowlisted"));
        assert_eq!(decide(&g, "AS13335", None), Err("allowlisted"));
        let observable = Observable::parse("104.16.1.1").expect("ip");
        let with_asn = Subject {
            observable: &observable,
            tlp: None,
            asn: Some(13335),
        };
        assert_eq!(
            g.clear(with_asn, Destination::External { max_tlp: Tlp::Red })
                .err(),
            Some(SkipReason::Allowlisted)
        );
    }

    #[test]
    fn tlp_above_the_destination_maximum_stays_home() {
        let g = gate(&[]);
        assert_eq!(decide(&g, "8.8.8.8", Some(Tlp::Red)), Err("tlp"));
        assert_eq!(decide(&g, "8.8.8.8", Some(Tlp::AmberStrict)), Err("tlp"));
        assert_eq!(decide(&g, "8.8.8.8", Some(Tlp::Amber)), Ok(()));
        let observable = Observable::parse("10.0.0.1").expect("ip");
        let red_private = Subject {
            observable: &observable,
            tlp: Some(Tlp::Red),
            asn: None,
        };
        assert!(
            g.clear(red_private, Destination::Local).is_ok(),
            "local sources see everything"
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let mut policy = EgressPolicy::default();
        let err = policy
            .allow("10.0.0.9-10.0.0.1")
            .expect_err("reversed range");
        assert!(err.to_string().contains("10.0.0.9-10.0.0.1"), "{err}");
        assert!(policy.allow("user@example.com").is_err());
        assert!(policy.allow("not a thing").is_err());
    }
}
