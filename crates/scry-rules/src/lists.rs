//! Named lists that conditions refer to: `in_list(indicator.as_name, "bad_isps")`,
//! `cidr_match(indicator.value, "corp_nets")`.
//!
//! Every entry is kept as a case-folded string; entries that are IP addresses or networks are
//! also kept in a longest-prefix trie for `cidr_match`. `AS9009` and `9009` are the same entry, so
//! a list of ASNs matches `indicator.asn` whichever way it was written.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixSet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("list {list:?}: {reason}")]
pub struct ListError {
    pub list: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct List {
    values: HashSet<String>,
    v4: PrefixSet<Ipv4Net>,
    v6: PrefixSet<Ipv6Net>,
    networks: usize,
}

/// Every named list, by name.
#[derive(Debug, Clone, Default)]
pub struct NamedLists {
    lists: BTreeMap<String, List>,
}

/// The form entries and values are compared in: trimmed, lower case, `as9009` → `9009`.
pub fn fold(value: &str) -> String {
    let lower = value.trim().to_lowercase();
    match lower.strip_prefix("as") {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.to_owned()
        }
        _ => lower,
    }
}

impl NamedLists {
    /// Adds entries to the list `name` (creating it). Blank lines and `#` comments are skipped,
    /// so a file's text can be passed line by line.
    pub fn add<'a>(
        &mut self,
        name: &str,
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ListError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ListError {
                list: name.to_owned(),
                reason: "a list name is letters, digits, `_` and `-`".into(),
            });
        }
        let list = self.lists.entry(name.to_owned()).or_default();
        for entry in entries {
            let entry = entry.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let network = entry
                .parse::<IpNet>()
                .ok()
                .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from));
            match network.map(|n| n.trunc()) {
                Some(IpNet::V4(net)) => {
                    list.v4.insert(net);
                    list.networks += 1;
                }
                Some(IpNet::V6(net)) => {
                    list.v6.insert(net);
                    list.networks += 1;
                }
                None => {}
            }
            list.values.insert(fold(entry));
        }
        Ok(())
    }

    pub fn contains_list(&self, name: &str) -> bool {
        self.lists.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.lists.keys().map(String::as_str)
    }

    /// Number of entries in a list.
    pub fn len(&self, name: &str) -> Option<usize> {
        self.lists.get(name).map(|l| l.values.len())
    }

    /// True when `value` (case-folded) is an entry of the list.
    pub fn in_list(&self, value: &str, name: &str) -> bool {
        self.lists
            .get(name)
            .is_some_and(|l| l.values.contains(&fold(value)))
    }

    /// True when `value` is an address (or network) inside one of the list's networks.
    pub fn cidr_match(&self, value: &str, name: &str) -> bool {
        let Some(list) = self.lists.get(name) else {
            return false;
        };
        let network = value
            .trim()
            .parse::<IpAddr>()
            .map(IpNet::from)
            .or_else(|_| value.trim().parse::<IpNet>());
        match network {
            Ok(IpNet::V4(net)) => list.v4.get_lpm(&net).is_some(),
            Ok(IpNet::V6(net)) => list.v6.get_lpm(&net).is_some(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_match_values_asns_and_networks() {
        let mut lists = NamedLists::default();
        lists
            .add(
                "bad",
                [
                    "AS9009",
                    "M247 Europe SRL",
                    "# a comment",
                    "",
                    "10.0.0.0/8 # corp",
                    "2001:db8::/32",
                    "192.0.2.7",
                ],
            )
            .expect("valid");
        assert!(lists.in_list("9009", "bad"));
        assert!(lists.in_list("as9009", "bad"));
        assert!(lists.in_list("m247 europe srl", "bad"));
        assert!(!lists.in_list("M247", "bad"));
        assert!(!lists.in_list("9009", "other"));
        assert!(lists.cidr_match("10.200.3.4", "bad"));
        assert!(lists.cidr_match("10.1.0.0/16", "bad"));
        assert!(lists.cidr_match("2001:db8:1::9", "bad"));
        assert!(lists.cidr_match("192.0.2.7", "bad"));
        assert!(!lists.cidr_match("192.0.2.8", "bad"));
        assert!(!lists.cidr_match("11.0.0.1", "bad"));
        assert!(!lists.cidr_match("not an ip", "bad"));
        assert_eq!(lists.len("bad"), Some(5));
        assert!(lists.add("bad name", ["x"]).is_err());
    }
}
