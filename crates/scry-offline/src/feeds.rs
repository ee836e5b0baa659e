//! Threat feed formats: what each kind of published list looks like, read into indicators with
//! their tags, confidence and the feed's own fields. A malformed line is reported with its line
//! number and skipped; the rest of the feed is kept.
//!
//! | format | what it reads |
//! |---|---|
//! | [`FeedFormat::List`] | one indicator per line (IP, CIDR, domain, URL, hash …); `#` and `;` start comments |
//! | [`FeedFormat::Netset`] | FireHOL-style IP and CIDR sets; anything else on a line is an error |
//! | [`FeedFormat::Csv`] | CSV with a column mapping: which column holds the indicator, tags, confidence |
//! | [`FeedFormat::TorExits`] | the Tor Project's exit lists, bulk (one address per line) or `exit-addresses` |
//! | [`FeedFormat::AbuseCh`] | abuse.ch CSV exports (Feodo Tracker, URLhaus, ThreatFox): columns named in the last comment line |
//! | [`FeedFormat::CriminalIpC2`] | Criminal IP's C2 Daily Feed: `IP,Target C2,OpenPorts,Score(Inbound/Outbound),Country,Scan Time` |

use std::collections::BTreeMap;

use scry_core::Observable;

/// Which columns of a CSV feed mean what. Columns are named by header or by 1-based number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsvMapping {
    pub indicator: String,
    /// Columns whose values become tags (split at `,`, `;` and `|`).
    pub tags: Vec<String>,
    /// A 0–100 confidence column.
    pub confidence: Option<String>,
    /// The first line names the columns.
    pub header: bool,
    pub delimiter: u8,
}

/// The shape of a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedFormat {
    List,
    Netset,
    Csv(CsvMapping),
    TorExits,
    AbuseCh,
    CriminalIpC2,
}

/// One indicator a feed lists.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub observable: Observable,
    /// 1-based line in the feed.
    pub line: u64,
    pub tags: Vec<String>,
    /// What the feed says of its own confidence, 0–100.
    pub confidence: Option<u8>,
    /// The feed's other fields for this entry (ports, malware family, scan time …).
    pub fields: BTreeMap<String, String>,
}

/// A line that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedProblem {
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for FeedProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What reading a feed gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedFeed {
    pub entries: Vec<FeedEntry>,
    pub problems: Vec<FeedProblem>,
}

impl ParsedFeed {
    fn problem(&mut self, line: u64, message: impl Into<String>) {
        self.problems.push(FeedProblem {
            line,
            message: message.into(),
        });
    }
}

/// Reads a whole feed.
pub fn parse(format: &FeedFormat, text: &str) -> ParsedFeed {
    match format {
        FeedFormat::List => lines(text, false),
        FeedFormat::Netset => lines(text, true),
        FeedFormat::Csv(mapping) => csv_feed(text, mapping, Vec::new()),
        FeedFormat::TorExits => tor_exits(text),
        FeedFormat::AbuseCh => abuse_ch(text),
        FeedFormat::CriminalIpC2 => criminalip_c2(text),
    }
}

fn entry(observable: Observable, line: u64) -> FeedEntry {
    FeedEntry {
        observable,
        line,
        tags: Vec::new(),
        confidence: None,
        fields: BTreeMap::new(),
    }
}

/// The text of a line without its comment (`#` or `;` at the start, or after white space).
fn uncommented(line: &str) -> &str {
    let line = line.trim();
    if line.starts_with('#') || line.starts_with(';') {
        return "";
    }
    let cut = line
        .char_indices()
        .find(|(i, c)| matches!(c, '#' | ';') && line[..*i].ends_with(|p: char| p.is_whitespace()))
        .map_or(line.len(), |(i, _)| i);
    line[..cut].trim()
}

fn lines(text: &str, addresses_only: bool) -> ParsedFeed {
    let mut feed = ParsedFeed::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let value = uncommented(raw);
        if value.is_empty() {
            continue;
        }
        // Some lists add a second column (a count, a date); the first is the indicator.
        let value = value.split_whitespace().next().unwrap_or(value);
        match Observable::parse(value) {
            Ok(o @ (Observable::Ip(_) | Observable::Cidr(_))) => feed.entries.push(entry(o, line)),
            Ok(_) if addresses_only => feed.problem(
                line,
                format!("{value:?} is not an IP address or CIDR block"),
            ),
            Ok(o) => feed.entries.push(entry(o, line)),
            Err(e) => feed.problem(line, format!("{value:?}: {e}")),
        }
    }
    feed
}

/// The index of a column named by header or by 1-based number.
fn column(name: &str, headers: &[String]) -> Option<usize> {
    if let Ok(number) = name.parse::<usize>() {
        return number.checked_sub(1);
    }
    headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
}

fn split_tags(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split([',', ';', '|'])
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "none" && t != "n/a")
}

fn confidence(text: &str) -> Option<u8> {
    text.trim()
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|c| (0.0..=100.0).contains(c))
        .map(|c| c.round() as u8)
}

/// Reads a CSV feed; `named` gives the column names when the data has no header row of its own.
fn csv_feed(text: &str, mapping: &CsvMapping, named: Vec<String>) -> ParsedFeed {
    let mut feed = ParsedFeed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .delimiter(if mapping.delimiter == 0 {
            b','
        } else {
            mapping.delimiter
        })
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers: Vec<String> = if mapping.header {
        match records.next() {
            Some(Ok(header)) => header.iter().map(str::to_owned).collect(),
            Some(Err(e)) => {
                feed.problem(1, format!("the header does not read: {e}"));
                return feed;
            }
            None => return feed,
        }
    } else {
        named
    };
    let Some(indicator) = column(&mapping.indicator, &headers) else {
        feed.problem(
            1,
            format!("no column {:?} in the header", mapping.indicator),
        );
        return feed;
    };
    let tags: Vec<(String, Option<usize>)> = mapping
        .tags
        .iter()
        .map(|t| (t.clone(), column(t, &headers)))
        .collect();
    for (name, index) in &tags {
        if index.is_none() {
            feed.problem(1, format!("no column {name:?} in the header"));
        }
    }
    let confidence_column = mapping
        .confidence
        .as_ref()
        .map(|c| (c, column(c, &headers)));
    if let Some((name, None)) = &confidence_column {
        feed.problem(1, format!("no column {name:?} in the header"));
    }
    for record in records {
        let (line, record) = match record {
            Ok(r) => (r.position().map_or(0, |p| p.line()), r),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                feed.problem(line, e.to_string());
                continue;
            }
        };
        let Some(value) = record
            .get(indicator)
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            feed.problem(line, format!("no value in column {:?}", mapping.indicator));
            continue;
        };
        match Observable::parse(value) {
            Ok(observable) => {
                let mut found = entry(observable, line);
                for index in tags.iter().filter_map(|(_, i)| *i) {
                    found
                        .tags
                        .extend(record.get(index).into_iter().flat_map(split_tags));
                }
                if let Some((_, Some(index))) = confidence_column {
                    found.confidence = record.get(index).and_then(confidence);
                }
                for (index, value) in record.iter().enumerate() {
                    if index != indicator && !value.trim().is_empty() {
                        let name = headers
                            .get(index)
                            .cloned()
                            .unwrap_or_else(|| format!("column{}", index + 1));
                        found.fields.insert(name, value.trim().to_owned());
                    }
                }
                feed.entries.push(found);
            }
            Err(e) => feed.problem(line, format!("{value:?}: {e}")),
        }
    }
    feed
}

fn tor_exits(text: &str) -> ParsedFeed {
    let mut feed = ParsedFeed::default();
    let mut node: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let value = uncommented(raw);
        if value.is_empty() {
            continue;
        }
        let mut words = value.split_whitespace();
        let first = words.next().unwrap_or("");
        let address = match first {
            "ExitNode" => {
                node = words.next().map(str::to_owned);
                continue;
            }
            "Published" | "LastStatus" => continue,
            "ExitAddress" => match words.next() {
                Some(address) => address,
                None => {
                    feed.problem(line, "ExitAddress without an address");
                    continue;
                }
            },
            bulk => bulk,
        };
        match Observable::parse(address) {
            Ok(o @ Observable::Ip(_)) => {
                let mut found = entry(o, line);
                found.tags = vec!["tor".into(), "tor-exit".into()];
                if first == "ExitAddress" {
                    if let Some(fingerprint) = &node {
                        found.fields.insert("exit_node".into(), fingerprint.clone());
                    }
                    let seen: Vec<&str> = words.collect();
                    if !seen.is_empty() {
                        found.fields.insert("seen".into(), seen.join(" "));
                    }
                }
                feed.entries.push(found);
            }
            _ => feed.problem(line, format!("{address:?} is not an IP address")),
        }
    }
    feed
}

/// The columns abuse.ch exports carry, by what they mean.
const ABUSE_CH_INDICATOR: &[&str] = &[
    "ioc_value",
    "dst_ip",
    "ip_address",
    "url",
    "ioc",
    "sha256_hash",
];
const ABUSE_CH_TAGS: &[&str] = &[
    "malware",
    "malware_printable",
    "threat",
    "threat_type",
    "tags",
];

fn abuse_ch(text: &str) -> ParsedFeed {
    // The column names are the last comment line before the data, quoted and comma-separated.
    let header = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .filter(|l| l.contains(','))
        .last()
        .map(|l| {
            l.trim_start()
                .trim_start_matches('#')
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let Some(indicator) = ABUSE_CH_INDICATOR
        .iter()
        .find(|name| header.iter().any(|h| h == *name))
    else {
        let mut feed = ParsedFeed::default();
        feed.problem(
            1,
            format!(
                "no abuse.ch column names found (expected one of {} in the last comment line)",
                ABUSE_CH_INDICATOR.join(", ")
            ),
        );
        return feed;
    };
    let mapping = CsvMapping {
        indicator: (*indicator).to_owned(),
        tags: ABUSE_CH_TAGS
            .iter()
            .filter(|t| header.iter().any(|h| h == *t))
            .map(|t| (*t).to_owned())
            .collect(),
        confidence: header
            .iter()
            .any(|h| h == "confidence_level")
            .then(|| "confidence_level".to_owned()),
        header: false,
        delimiter: b',',
    };
    let mut feed = csv_feed(text, &mapping, header);
    for found in &mut feed.entries {
        found.tags.sort();
        found.tags.dedup();
    }
    feed
}

fn criminalip_c2(text: &str) -> ParsedFeed {
    let mut feed = ParsedFeed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                feed.problem(e.position().map_or(0, |p| p.line()), e.to_string());
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record
            .get(0)
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("ip"))
        {
            continue;
        }
        if record.len() < 6 {
            feed.problem(
                line,
                format!("{} fields where 6 are expected", record.len()),
            );
            continue;
        }
        let address = record[0].trim();
        let observable = match Observable::parse(address) {
            Ok(o @ Observable::Ip(_)) => o,
            _ => {
                feed.problem(line, format!("{address:?} is not an IP address"));
                continue;
            }
        };
        let mut found = entry(observable, line);
        // `c2_mythic` → `mythic`.
        let target = record[1].trim();
        let family = target
            .split_once('_')
            .map_or(target, |(_, f)| f)
            .to_ascii_lowercase();
        found.tags.push("c2".into());
        if !family.is_empty() && family != "c2" {
            found.tags.push(family.clone());
            found.fields.insert("c2".into(), family);
        }
        found
            .fields
            .insert("ports".into(), record[2].trim().to_owned());
        if let Some((inbound, outbound)) = record[3].split_once('/') {
            found
                .fields
                .insert("inbound".into(), inbound.trim().to_ascii_lowercase());
            found
                .fields
                .insert("outbound".into(), outbound.trim().to_ascii_lowercase());
        }
        found
            .fields
            .insert("country".into(), record[4].trim().to_ascii_uppercase());
        found
            .fields
            .insert("scan_time".into(), record[5].trim().to_owned());
        feed.entries.push(found);
    }
    feed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(feed: &ParsedFeed) -> Vec<String> {
        feed.entries
            .iter()
            .map(|e| e.observable.to_string())
            .collect()
    }

    fn problem_lines(feed: &ParsedFeed) -> Vec<u64> {
        feed.problems.iter().map(|p| p.line).collect()
    }

    #[test]
    fn plain_lists_keep_good_lines_and_report_bad_ones() {
        let feed = parse(
            &FeedFormat::List,
            "# a list\n185.220.101.47\nevil.example.com  # seen twice\n\nnot an indicator!\n; old comment\n\
             http://bad.example.net/x 2026-11-01\n999.1.1.1\n",
        );
        assert_eq!(
            values(&feed),
            [
                "185.220.101.47",
                "evil.example.com",
                "http://bad.example.net/x"
            ]
        );
        assert_eq!(problem_lines(&feed), [5, 8]);
        assert_eq!(feed.entries[1].line, 3);
    }

    #[test]
    fn netsets_take_addresses_and_networks_only() {
        let feed = parse(
            &FeedFormat::Netset,
            "#\n# FireHOL level1\n# Maintainer: x\n1.10.16.0/20\n5.188.10.0/23 ; spamhaus\n203.0.113.9\n\
             evil.example.com\n10.0.0.0/33\n",
        );
        assert_eq!(
            values(&feed),
            ["1.10.16.0/20", "5.188.10.0/23", "203.0.113.9"]
        );
        assert_eq!(problem_lines(&feed), [7, 8]);
        assert!(
            feed.problems[0]
                .message
                .contains("not an IP address or CIDR block")
        );
    }

    #[test]
    fn csv_feeds_follow_their_column_mapping() {
        let mapping = CsvMapping {
            indicator: "host".into(),
            tags: vec!["family".into()],
            confidence: Some("score".into()),
            header: true,
            delimiter: b',',
        };
        let feed = parse(
            &FeedFormat::Csv(mapping.clone()),
            "host,family,score,first_seen\nevil.example.com,\"qakbot; loader\",85,2026-11-01\n\
             ,emotet,10,x\nnot a host,x,1,y\n45.155.205.233,,150,\n\"unclosed,a,1,2\n",
        );
        assert_eq!(values(&feed), ["evil.example.com", "45.155.205.233"]);
        assert_eq!(feed.entries[0].tags, ["qakbot", "loader"]);
        assert_eq!(feed.entries[0].confidence, Some(85));
        assert_eq!(feed.entries[0].fields["first_seen"], "2026-11-01");
        assert_eq!(feed.entries[1].confidence, None, "150 is not a confidence");
        assert_eq!(problem_lines(&feed), [3, 4, 6], "{:?}", feed.problems);
        let missing = parse(
            &FeedFormat::Csv(CsvMapping {
                indicator: "ioc".into(),
                ..mapping
            }),
            "host,family\nevil.example.com,x\n",
        );
        assert!(missing.entries.is_empty());
        assert_eq!(
            missing.problems[0].message,
            "no column \"ioc\" in the header"
        );
        let numbered = parse(
            &FeedFormat::Csv(CsvMapping {
                indicator: "2".into(),
                ..CsvMapping::default()
            }),
            "2026-11-01;x,198.51.100.7\n",
        );
        assert_eq!(values(&numbered), ["198.51.100.7"]);
    }

    #[test]
    fn tor_exit_lists_in_both_forms() {
        let bulk = parse(
            &FeedFormat::TorExits,
            "185.220.101.47\n2001:67c:e60:c0c:192:42:116:16\nnope\n",
        );
        assert_eq!(bulk.entries.len(), 2);
        assert_eq!(bulk.entries[0].tags, ["tor", "tor-exit"]);
        assert_eq!(problem_lines(&bulk), [3]);
        let detailed = parse(
            &FeedFormat::TorExits,
            "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-11-23 10:00:00\n\
             LastStatus 2026-11-23 11:00:00\nExitAddress 162.247.74.201 2026-11-23 11:10:12\n\
             ExitNode FFFF\nExitAddress\nExitAddress 300.1.1.1 2026-11-23 11:00:00\n",
        );
        assert_eq!(values(&detailed), ["162.247.74.201"]);
        assert_eq!(
            detailed.entries[0].fields["exit_node"],
            "0011BD2485AD45D984EC4159C88FC066E5E3300E"
        );
        assert_eq!(detailed.entries[0].fields["seen"], "2026-11-23 11:10:12");
        assert_eq!(problem_lines(&detailed), [6, 7]);
    }

    #[test]
    fn abuse_ch_exports_name_their_columns_in_comments() {
        let feodo = parse(
            &FeedFormat::AbuseCh,
            "################\n# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)\n#\n\
             # \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
             \"2021-01-17 07:44:46\",\"51.178.161.32\",\"4643\",\"online\",\"2026-11-22\",\"Dridex\"\n\
             \"2021-01-17 07:44:46\",\"not-an-ip\",\"4643\",\"online\",\"2026-11-22\",\"QakBot\"\n\
             # Number of entries: 2\n",
        );
        assert_eq!(values(&feodo), ["51.178.161.32"]);
        assert_eq!(feodo.entries[0].tags, ["dridex"]);
        assert_eq!(feodo.entries[0].fields["dst_port"], "4643");
        assert_eq!(problem_lines(&feodo), [6]);
        let threatfox = parse(
            &FeedFormat::AbuseCh,
            "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"malware_printable\",\"confidence_level\",\"tags\"\n\
             \"2026-11-23 08:00:00\",\"1\",\"evil-c2.example.com\",\"domain\",\"botnet_cc\",\"Cobalt Strike\",\"75\",\"cs,beacon\"\n",
        );
        assert_eq!(values(&threatfox), ["evil-c2.example.com"]);
        assert_eq!(threatfox.entries[0].confidence, Some(75));
        assert_eq!(
            threatfox.entries[0].tags,
            ["beacon", "botnet_cc", "cobalt strike", "cs"]
        );
        let unknown = parse(&FeedFormat::AbuseCh, "# \"a\",\"b\"\n1,2\n");
        assert!(
            unknown.problems[0]
                .message
                .starts_with("no abuse.ch column names found")
        );
    }

    #[test]
    fn criminal_ip_c2_feed_in_both_country_cases() {
        let feed = parse(
            &FeedFormat::CriminalIpC2,
            "IP,Target C2,OpenPorts,Score(Inbound/Outbound),Country,Scan Time\n\
             34.207.225.10,c2_mythic,443,Critical/Critical,us,2025-06-26 17:45:19\n\
             45.155.205.233,c2_cobaltstrike,\"80,443\",Dangerous/Critical,RU,2024-03-01 01:02:03\n\
             34.207.225.11,c2_sliver\n\
             example.com,c2_x,1,a/b,US,2025-01-01 00:00:00\n",
        );
        assert_eq!(values(&feed), ["34.207.225.10", "45.155.205.233"]);
        let mythic = &feed.entries[0];
        assert_eq!(mythic.tags, ["c2", "mythic"]);
        assert_eq!(mythic.fields["country"], "US");
        assert_eq!(mythic.fields["inbound"], "critical");
        assert_eq!(feed.entries[1].fields["ports"], "80,443");
        assert_eq!(feed.entries[1].fields["country"], "RU");
        assert_eq!(problem_lines(&feed), [4, 5]);
    }
}
