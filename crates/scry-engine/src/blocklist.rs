//! Blocklists as firewalls read them: one entry type per list (PAN-OS and FortiGate both refuse
//! mixed lists), each vendor's form of an entry (PAN-OS wants URLs without `http(s)://`) and a
//! size cap (past it a firewall drops entries on its own, unannounced). The EDL endpoint,
//! `scry export --format edl` and the blocklist pages all serve what [`render`] makes, and the
//! `block` action refuses a value the list cannot hold ([`admits`]).

use scry_core::Observable;
use scry_store::BlockEntry;

use crate::config::{BlocklistConfig, EntryType, FirewallVendor};

/// PAN-OS: IP addresses on most models, and URLs and domains on every model (per the EDL limits
/// of its documentation), so one cap fits each list type.
const PAN_OS_MAX_ENTRIES: usize = 50_000;
/// FortiGate before 7.4.4: each external resource holds 128 K entries or 10 MB.
const FORTIGATE_MAX_ENTRIES: usize = 131_072;
const FORTIGATE_MAX_BYTES: usize = 10 * 1024 * 1024;

/// A blocklist as served: the body and what was left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedList {
    /// One entry per line, sorted, each line ending in a newline.
    pub body: String,
    /// Entries in the body.
    pub served: usize,
    /// Entries of another type than the list's (stored before the list was typed).
    pub other_types: usize,
    /// Entries past the cap (the oldest are left out).
    pub over_cap: usize,
}

impl RenderedList {
    /// The warning for a list that did not fit its cap, `None` when it did.
    pub fn cap_warning(&self, name: &str, config: &BlocklistConfig) -> Option<String> {
        (self.over_cap > 0).then(|| {
            format!(
                "blocklist {name}: {} entries left out, past the cap of {} for {} (max_entries); the newest are served",
                self.over_cap,
                cap_description(config),
                vendor_name(config.vendor)
            )
        })
    }
}

/// The vendor as its users name it.
pub fn vendor_name(vendor: FirewallVendor) -> &'static str {
    match vendor {
        FirewallVendor::Generic => "a generic reader",
        FirewallVendor::PanOs => "PAN-OS",
        FirewallVendor::Fortigate => "FortiGate",
    }
}

/// The entry type of a stored blocklist value, `None` for a value no firewall list holds.
pub fn entry_type_of(value: &str) -> Option<EntryType> {
    match Observable::parse(value).ok()? {
        Observable::Ip(_) | Observable::Cidr(_) => Some(EntryType::Ip),
        Observable::Domain(_) => Some(EntryType::Domain),
        Observable::Url(_) => Some(EntryType::Url),
        _ => None,
    }
}

/// Whether the list may hold `value`; the refusal says why.
pub fn admits(name: &str, config: &BlocklistConfig, value: &str) -> Result<(), String> {
    let found = entry_type_of(value);
    match (config.entry_type, found) {
        (EntryType::Any, Some(_)) => Ok(()),
        (wanted, Some(found)) if wanted == found => Ok(()),
        (wanted, found) => Err(format!(
            "not added: {value} is {} and blocklist {name} holds {} entries",
            found.map_or("no address, domain or URL", |t| match t {
                EntryType::Ip => "an address",
                EntryType::Domain => "a domain",
                EntryType::Url => "a URL",
                EntryType::Any => "an entry",
            }),
            wanted.as_str()
        )),
    }
}

/// The entry, of type `entry_type`, as the list's firewall reads it.
fn entry_form(config: &BlocklistConfig, value: &str, entry_type: Option<EntryType>) -> String {
    match (config.vendor, entry_type) {
        (FirewallVendor::PanOs, Some(EntryType::Url)) => value
            .split_once("://")
            .map_or(value, |(_, rest)| rest)
            .to_owned(),
        _ => value.to_owned(),
    }
}

/// The most entries and bytes the list's firewall takes.
fn caps(config: &BlocklistConfig) -> (Option<usize>, Option<usize>) {
    let (entries, bytes) = match config.vendor {
        FirewallVendor::Generic => (None, None),
        FirewallVendor::PanOs => (Some(PAN_OS_MAX_ENTRIES), None),
        FirewallVendor::Fortigate => (Some(FORTIGATE_MAX_ENTRIES), Some(FORTIGATE_MAX_BYTES)),
    };
    (config.max_entries.or(entries), bytes)
}

fn cap_description(config: &BlocklistConfig) -> String {
    match caps(config) {
        (Some(entries), Some(bytes)) => format!("{entries} entries or {} MB", bytes >> 20),
        (Some(entries), None) => format!("{entries} entries"),
        (None, Some(bytes)) => format!("{} MB", bytes >> 20),
        (None, None) => "no limit".to_owned(),
    }
}

/// The list as its firewall reads it: entries of its type in its vendor's form, the newest first
/// up to its cap, then sorted, so the body (and its ETag) changes only when the entries do.
pub fn render(config: &BlocklistConfig, mut entries: Vec<BlockEntry>) -> RenderedList {
    let stored = entries.len();
    // Each value's type, read once: it decides both whether the entry belongs and its form.
    let mut typed: Vec<(BlockEntry, Option<EntryType>)> = entries
        .drain(..)
        .map(|e| {
            let entry_type = entry_type_of(&e.value);
            (e, entry_type)
        })
        .filter(|(_, t)| config.entry_type == EntryType::Any || *t == Some(config.entry_type))
        .collect();
    let other_types = stored - typed.len();
    typed.sort_by(|(a, _), (b, _)| b.added_at.cmp(&a.added_at).then(a.value.cmp(&b.value)));
    let (max_entries, max_bytes) = caps(config);
    let mut seen = std::collections::HashSet::new();
    let mut lines = Vec::with_capacity(typed.len());
    let mut bytes = 0;
    let mut over_cap = 0;
    for (entry, entry_type) in &typed {
        let line = entry_form(config, &entry.value, *entry_type);
        if !seen.insert(line.clone()) {
            // `http://x/p` and `https://x/p` are one PAN-OS entry.
            continue;
        }
        let fits = max_entries.is_none_or(|max| lines.len() < max)
            && max_bytes.is_none_or(|max| bytes + line.len() < max);
        if fits {
            bytes += line.len() + 1;
            lines.push(line);
        } else {
            over_cap += 1;
        }
    }
    lines.sort();
    let mut body = String::with_capacity(bytes);
    for line in &lines {
        body.push_str(line);
        body.push('\n');
    }
    RenderedList {
        body,
        served: lines.len(),
        other_types,
        over_cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str, added_at: i64) -> BlockEntry {
        BlockEntry {
            list: "fw".into(),
            value: value.into(),
            stix_id: format!("indicator--{value}"),
            added_at,
            expires_at: i64::MAX,
            reason: String::new(),
            origin: String::new(),
            version_us: added_at * 1000,
            removed_at: None,
        }
    }

    fn list(entry_type: EntryType, vendor: FirewallVendor, max: Option<usize>) -> BlocklistConfig {
        BlocklistConfig {
            entry_type,
            vendor,
            max_entries: max,
            ..BlocklistConfig::default()
        }
    }

    #[test]
    fn a_typed_list_serves_its_type_only() {
        let entries = vec![
            entry("192.0.2.7", 1),
            entry("2001:db8::1", 2),
            entry("198.51.100.0/24", 3),
            entry("evil.example", 4),
            entry("http://evil.example/p", 5),
        ];
        let ips = render(
            &list(EntryType::Ip, FirewallVendor::PanOs, None),
            entries.clone(),
        );
        assert_eq!(ips.body, "192.0.2.7\n198.51.100.0/24\n2001:db8::1\n");
        assert_eq!((ips.served, ips.other_types, ips.over_cap), (3, 2, 0));
        let domains = render(
            &list(EntryType::Domain, FirewallVendor::Generic, None),
            entries.clone(),
        );
        assert_eq!(domains.body, "evil.example\n");
        let any = render(
            &list(EntryType::Any, FirewallVendor::Generic, None),
            entries,
        );
        assert_eq!(any.served, 5);
    }

    #[test]
    fn pan_os_urls_lose_their_scheme_and_fortigate_urls_keep_it() {
        let entries = vec![
            entry("http://evil.example/a", 1),
            entry("https://evil.example/a", 2),
            entry("https://evil.example:8443/b?q=1", 3),
        ];
        let pan = render(
            &list(EntryType::Url, FirewallVendor::PanOs, None),
            entries.clone(),
        );
        assert_eq!(pan.body, "evil.example/a\nevil.example:8443/b?q=1\n");
        let forti = render(
            &list(EntryType::Url, FirewallVendor::Fortigate, None),
            entries,
        );
        assert_eq!(forti.served, 3);
        assert!(
            forti.body.starts_with("http://evil.example/a\n"),
            "{}",
            forti.body
        );
    }

    #[test]
    fn past_the_cap_the_newest_entries_are_served_and_the_rest_counted() {
        let entries: Vec<BlockEntry> = (0..10)
            .map(|i| entry(&format!("192.0.2.{i}"), i64::from(i)))
            .collect();
        let config = list(EntryType::Ip, FirewallVendor::PanOs, Some(4));
        let capped = render(&config, entries.clone());
        assert_eq!(capped.body, "192.0.2.6\n192.0.2.7\n192.0.2.8\n192.0.2.9\n");
        assert_eq!(capped.over_cap, 6);
        let warning = capped.cap_warning("fw", &config).expect("a warning");
        assert!(
            warning.contains("6 entries left out") && warning.contains("PAN-OS"),
            "{warning}"
        );
        // PAN-OS's own limit applies without max_entries.
        let pan = list(EntryType::Ip, FirewallVendor::PanOs, None);
        let many: Vec<BlockEntry> = (0..50_010u32)
            .map(|i| {
                entry(
                    &std::net::Ipv4Addr::from(0x0A00_0000 + i).to_string(),
                    i64::from(i),
                )
            })
            .collect();
        let served = render(&pan, many);
        assert_eq!((served.served, served.over_cap), (50_000, 10));
        assert!(render(&pan, entries).cap_warning("fw", &pan).is_none());
    }

    #[test]
    fn the_block_action_refuses_what_the_list_cannot_hold() {
        let ips = list(EntryType::Ip, FirewallVendor::PanOs, None);
        assert!(admits("fw", &ips, "192.0.2.7").is_ok());
        let refused = admits("fw", &ips, "evil.example").expect_err("a domain");
        assert_eq!(
            refused,
            "not added: evil.example is a domain and blocklist fw holds ip entries"
        );
        let any = BlocklistConfig::default();
        assert!(admits("fw", &any, "http://evil.example/").is_ok());
        assert!(admits("fw", &any, "CVE-2024-1234").is_err());
    }
}
