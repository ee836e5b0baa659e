//! The network data pack: every public IPv4 and IPv6 range with its country and its autonomous
//! system (number and organization), in one sorted range table per address family.
//!
//! The upstream data comes as two sets of CSV files (`start,end,asn,org` and `start,end,country`,
//! inclusive ranges). [`PackBuilder`] merges them into one table of disjoint ranges, each with an
//! AS entry and a country, and writes it compressed:
//!
//! ```text
//! gzip(
//!   "SCRYNET" 0x01                      magic and format version
//!   u32 len, JSON [`PackMeta`]          where the data comes from, its licences, its date
//!   u32 n, n × (u32 asn, u16 len, org)  AS entries
//!   u32 n, n × 2 bytes                  country codes
//!   IPv4 table, then IPv6 table:
//!     u32 n
//!     n × start  (IPv4: u32 difference from the previous start; IPv6: u128)
//!     n × size   (end − start; u32 or u128)
//!     n × u32    AS entry, 1-based (0: unknown)
//!     n × u8     country, 1-based (0: unknown)
//! )
//! ```
//!
//! All integers are little-endian. Columns rather than rows, and start differences rather than
//! starts, are what let gzip bring the pack down to a size fit for a repository and a binary.
//! Lookups are a binary search over the starts of the address's family.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"SCRYNET\x01";

/// The pack built into the binary (see `data/ATTRIBUTION.md` beside it).
static EMBEDDED: &[u8] = include_bytes!("../data/netpack.bin.gz");

/// The pack built into the binary, decompressed on first use (about 0.2 s) and shared after.
pub fn embedded() -> Result<std::sync::Arc<NetPack>, String> {
    static LOADED: std::sync::OnceLock<Result<std::sync::Arc<NetPack>, String>> =
        std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            NetPack::from_gzip(EMBEDDED)
                .map(std::sync::Arc::new)
                .map_err(|e| format!("the embedded {e}"))
        })
        .clone()
}

/// Why a pack could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{input}, line {line}: {message}")]
    Input {
        input: String,
        line: u64,
        message: String,
    },
    #[error("not a scry network data pack (wrong magic or format version)")]
    NotAPack,
    #[error("network data pack is corrupt: {0}")]
    Corrupt(String),
    #[error("network data pack: {0}")]
    Io(#[from] std::io::Error),
}

/// One upstream data set in the pack: enough to credit it and to judge how fresh it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSource {
    /// What it provides: `asn` or `country`.
    pub provides: String,
    /// The package it came from, with its version (`@ip-location-db/asn@2.3.2026061719`).
    pub package: String,
    pub license: String,
    /// Who to credit, as the licence asks.
    pub attribution: String,
    /// The upstream data's build date (`2026-06-17`).
    pub data_as_of: String,
}

/// What a pack says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackMeta {
    /// When the pack was built (`2026-11-24`).
    pub built: String,
    pub sources: Vec<DataSource>,
}

/// What the pack knows about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo<'a> {
    pub asn: Option<u32>,
    pub as_name: Option<&'a str>,
    /// ISO 3166-1 alpha-2 code, upper case.
    pub country: Option<&'a str>,
}

/// A sorted table of disjoint inclusive ranges.
#[derive(Debug, Default)]
struct Ranges<T> {
    starts: Vec<T>,
    ends: Vec<T>,
    /// 1-based index into the AS entries; 0 = unknown.
    entry: Vec<u32>,
    /// 1-based index into the countries; 0 = unknown.
    country: Vec<u8>,
}

impl<T: Copy + Ord> Ranges<T> {
    fn find(&self, address: T) -> Option<usize> {
        let index = self.starts.partition_point(|start| *start <= address);
        let index = index.checked_sub(1)?;
        (address <= self.ends[index]).then_some(index)
    }
}

/// A loaded pack, ready for lookups.
#[derive(Debug)]
pub struct NetPack {
    meta: PackMeta,
    entries: Vec<(u32, String)>,
    countries: Vec<String>,
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

impl NetPack {
    /// Reads a pack as written by [`PackBuilder::write`] (gzip-compressed).
    pub fn from_gzip(compressed: &[u8]) -> Result<NetPack, PackError> {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(compressed)
            .read_to_end(&mut bytes)
            .map_err(|e| PackError::Corrupt(format!("does not decompress: {e}")))?;
        NetPack::from_bytes(&bytes)
    }

    /// Reads a pack from its decompressed bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<NetPack, PackError> {
        let mut input = Cursor { bytes, at: 0 };
        if input.take(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
            return Err(PackError::NotAPack);
        }
        let meta_len = input.u32("metadata length")? as usize;
        let meta: PackMeta = serde_json::from_slice(input.take(meta_len, "metadata")?)
            .map_err(|e| PackError::Corrupt(format!("metadata: {e}")))?;
        let count = input.count("AS entries", 6)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let asn = input.u32("AS number")?;
            let len = usize::from(input.u16("organization length")?);
            let name = std::str::from_utf8(input.take(len, "organization")?)
                .map_err(|_| PackError::Corrupt("an organization name is not UTF-8".into()))?;
            entries.push((asn, name.to_owned()));
        }
        let count = input.count("countries", 2)?;
        let mut countries = Vec::with_capacity(count);
        for _ in 0..count {
            let code = input.take(2, "country code")?;
            if !code.iter().all(u8::is_ascii_uppercase) {
                return Err(PackError::Corrupt(format!("country code {code:?}")));
            }
            countries.push(String::from_utf8_lossy(code).into_owned());
        }
        let v4 = input.ranges(4, true, |c| c.u32("IPv4 range"), u32::checked_add)?;
        let v6 = input.ranges(16, false, |c| c.u128("IPv6 range"), u128::checked_add)?;
        for table in [&v4.entry, &v6.entry] {
            if table.iter().any(|e| *e as usize > entries.len()) {
                return Err(PackError::Corrupt(
                    "a range names an AS entry past the end".into(),
                ));
            }
        }
        for table in [&v4.country, &v6.country] {
            if table.iter().any(|c| usize::from(*c) > countries.len()) {
                return Err(PackError::Corrupt(
                    "a range names a country past the end".into(),
                ));
            }
        }
        if input.at != bytes.len() {
            return Err(PackError::Corrupt(format!(
                "{} bytes after the IPv6 table",
                bytes.len() - input.at
            )));
        }
        Ok(NetPack {
            meta,
            entries,
            countries,
            v4,
            v6,
        })
    }

    pub fn meta(&self) -> &PackMeta {
        &self.meta
    }

    /// Ranges held for IPv4 and IPv6.
    pub fn range_counts(&self) -> (usize, usize) {
        (self.v4.starts.len(), self.v6.starts.len())
    }

    /// What the pack knows about `address`; `None` when no range holds it. IPv4-mapped IPv6
    /// addresses are looked up as IPv4.
    pub fn lookup(&self, address: IpAddr) -> Option<NetInfo<'_>> {
        let (entry, country) = match address {
            IpAddr::V4(v4) => self.v4_row(u32::from(v4))?,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.v4_row(u32::from(v4))?,
                None => {
                    let row = self.v6.find(u128::from(v6))?;
                    (self.v6.entry[row], self.v6.country[row])
                }
            },
        };
        let entry = (entry as usize).checked_sub(1).map(|i| &self.entries[i]);
        Some(NetInfo {
            asn: entry.map(|(asn, _)| *asn),
            as_name: entry
                .map(|(_, name)| name.as_str())
                .filter(|n| !n.is_empty()),
            country: usize::from(country)
                .checked_sub(1)
                .map(|i| self.countries[i].as_str()),
        })
    }

    fn v4_row(&self, address: u32) -> Option<(u32, u8)> {
        let row = self.v4.find(address)?;
        Some((self.v4.entry[row], self.v4.country[row]))
    }
}

/// Reads the pack's sections, each short read an error that names the section.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], PackError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| PackError::Corrupt(format!("truncated in the {what}")))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], PackError> {
        Ok(self.take(N, what)?.try_into().expect("took N bytes"))
    }

    fn u16(&mut self, what: &str) -> Result<u16, PackError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, PackError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u128(&mut self, what: &str) -> Result<u128, PackError> {
        Ok(u128::from_le_bytes(self.array(what)?))
    }

    /// A count of items at least `min_size` bytes each, checked against what is left.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize, PackError> {
        let count = self.u32(what)? as usize;
        if count.saturating_mul(min_size) > self.bytes.len() - self.at {
            return Err(PackError::Corrupt(format!(
                "{count} {what} cannot fit in what is left"
            )));
        }
        Ok(count)
    }

    /// One address family's table of `width`-byte addresses; starts are stored as differences
    /// from the previous start when `deltas`.
    fn ranges<T: Copy + Ord + Default>(
        &mut self,
        width: usize,
        deltas: bool,
        mut read: impl FnMut(&mut Self) -> Result<T, PackError>,
        checked_add: impl Fn(T, T) -> Option<T>,
    ) -> Result<Ranges<T>, PackError> {
        let count = self.count("ranges", width * 2 + 5)?;
        let mut starts = Vec::with_capacity(count);
        let mut previous = T::default();
        for _ in 0..count {
            let stored = read(self)?;
            let start = if deltas {
                checked_add(previous, stored)
            } else {
                Some(stored)
            }
            .ok_or_else(|| PackError::Corrupt("a range starts past the last address".into()))?;
            if !starts.is_empty() && start <= previous {
                return Err(PackError::Corrupt("ranges are not in order".into()));
            }
            starts.push(start);
            previous = start;
        }
        let mut ends = Vec::with_capacity(count);
        for (index, start) in starts.iter().enumerate() {
            let size = read(self)?;
            let end = checked_add(*start, size)
                .ok_or_else(|| PackError::Corrupt("a range ends past the last address".into()))?;
            if starts.get(index + 1).is_some_and(|next| end >= *next) {
                return Err(PackError::Corrupt("ranges overlap".into()));
            }
            ends.push(end);
        }
        let mut entry = Vec::with_capacity(count);
        for _ in 0..count {
            entry.push(self.u32("AS entry index")?);
        }
        let country = self.take(count, "country indexes")?.to_vec();
        Ok(Ranges {
            starts,
            ends,
            entry,
            country,
        })
    }
}

/// One inclusive range of the upstream data, widened to u128 for both families.
#[derive(Debug, Clone)]
struct Row<T> {
    start: u128,
    end: u128,
    value: T,
}

/// Makes a pack from the upstream CSV files.
#[derive(Debug, Default)]
pub struct PackBuilder {
    asn: [Vec<Row<(u32, String)>>; 2],
    country: [Vec<Row<String>>; 2],
}

/// The family index of an address: 0 for IPv4, 1 for IPv6.
fn family(address: IpAddr) -> usize {
    usize::from(address.is_ipv6())
}

fn widen(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl PackBuilder {
    /// Adds `start,end,asn,organization` rows (addresses as text, IPv4 or IPv6). `input` names
    /// the file in errors. Returns the rows read.
    pub fn add_asn_csv(&mut self, input: &str, reader: impl Read) -> Result<usize, PackError> {
        let mut added = 0;
        for_rows(input, reader, 4, |start, end, fields, line| {
            let asn = fields[2]
                .trim()
                .parse::<u32>()
                .map_err(|_| PackError::Input {
                    input: input.to_owned(),
                    line,
                    message: format!("AS number {:?} is not a number", &fields[2]),
                })?;
            self.asn[family(start)].push(Row {
                start: widen(start),
                end: widen(end),
                value: (asn, fields[3].trim().to_owned()),
            });
            added += 1;
            Ok(())
        })?;
        Ok(added)
    }

    /// Adds `start,end,country` rows (ISO 3166-1 alpha-2 codes).
    pub fn add_country_csv(&mut self, input: &str, reader: impl Read) -> Result<usize, PackError> {
        let mut added = 0;
        for_rows(input, reader, 3, |start, end, fields, line| {
            let code = fields[2].trim().to_ascii_uppercase();
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(PackError::Input {
                    input: input.to_owned(),
                    line,
                    message: format!("{:?} is not a two-letter country code", &fields[2]),
                });
            }
            self.country[family(start)].push(Row {
                start: widen(start),
                end: widen(end),
                value: code,
            });
            added += 1;
            Ok(())
        })?;
        Ok(added)
    }

    /// Merges what was added and writes the compressed pack.
    pub fn write(self, meta: &PackMeta, out: impl Write) -> Result<(), PackError> {
        let mut entry_ids: HashMap<(u32, String), u32> = HashMap::new();
        let mut entries: Vec<(u32, String)> = Vec::new();
        let mut country_ids: HashMap<String, u8> = HashMap::new();
        let mut countries: Vec<String> = Vec::new();
        let mut tables = Vec::new();
        for (asn, country) in self.asn.into_iter().zip(self.country) {
            let merged = merge(asn, country);
            let mut table = Ranges::<u128>::default();
            for (start, end, asn, country) in merged {
                table.starts.push(start);
                table.ends.push(end);
                table.entry.push(match asn {
                    Some(key) => *entry_ids.entry(key.clone()).or_insert_with(|| {
                        entries.push(key);
                        entries.len() as u32
                    }),
                    None => 0,
                });
                table.country.push(match country {
                    Some(code) => {
                        if let Some(id) = country_ids.get(&code) {
                            *id
                        } else {
                            countries.push(code.clone());
                            let id = u8::try_from(countries.len()).map_err(|_| {
                                PackError::Corrupt("more than 255 countries".into())
                            })?;
                            country_ids.insert(code, id);
                            id
                        }
                    }
                    None => 0,
                });
            }
            tables.push(table);
        }
        let mut body = Vec::new();
        body.extend_from_slice(MAGIC);
        let meta = serde_json::to_vec(meta).expect("metadata serializes");
        body.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        body.extend_from_slice(&meta);
        body.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (asn, name) in &entries {
            let name = truncate_utf8(name, usize::from(u16::MAX));
            body.extend_from_slice(&asn.to_le_bytes());
            body.extend_from_slice(&(name.len() as u16).to_le_bytes());
            body.extend_from_slice(name.as_bytes());
        }
        body.extend_from_slice(&(countries.len() as u32).to_le_bytes());
        for code in &countries {
            body.extend_from_slice(code.as_bytes());
        }
        for (index, table) in tables.iter().enumerate() {
            let v4 = index == 0;
            body.extend_from_slice(&(table.starts.len() as u32).to_le_bytes());
            let mut previous = 0;
            for start in &table.starts {
                if v4 {
                    body.extend_from_slice(&((start - previous) as u32).to_le_bytes());
                } else {
                    body.extend_from_slice(&start.to_le_bytes());
                }
                previous = *start;
            }
            for (start, end) in table.starts.iter().zip(&table.ends) {
                if v4 {
                    body.extend_from_slice(&((end - start) as u32).to_le_bytes());
                } else {
                    body.extend_from_slice(&(end - start).to_le_bytes());
                }
            }
            for entry in &table.entry {
                body.extend_from_slice(&entry.to_le_bytes());
            }
            body.extend_from_slice(&table.country);
        }
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::best());
        encoder.write_all(&body)?;
        encoder.finish()?;
        Ok(())
    }
}

fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Calls `row(start, end, fields, line)` for each CSV record of at least `fields` fields whose
/// first two are addresses of one family, start ≤ end.
fn for_rows(
    input: &str,
    reader: impl Read,
    fields: usize,
    mut row: impl FnMut(IpAddr, IpAddr, &csv::StringRecord, u64) -> Result<(), PackError>,
) -> Result<(), PackError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line();
        let fail = |message: String| PackError::Input {
            input: input.to_owned(),
            line,
            message,
        };
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        if record.len() < fields {
            return Err(fail(format!(
                "{} fields where {fields} are expected",
                record.len()
            )));
        }
        let address = |text: &str| {
            text.trim()
                .parse::<IpAddr>()
                .map_err(|_| fail(format!("{text:?} is not an IP address")))
        };
        let (start, end) = (address(&record[0])?, address(&record[1])?);
        if start.is_ipv4() != end.is_ipv4() || widen(start) > widen(end) {
            return Err(fail(format!("{start}–{end} is not a range")));
        }
        row(start, end, &record, line)?;
    }
}

/// Makes a set of rows disjoint: where ranges overlap (the upstream data has a few hundred such
/// places), the most specific one — the smallest — holds, as in a longest-prefix match.
fn flatten<T: Clone + PartialEq>(mut rows: Vec<Row<T>>) -> Vec<Row<T>> {
    rows.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    if rows.windows(2).all(|w| w[1].start > w[0].end) {
        return rows;
    }
    let mut cuts: Vec<u128> = rows
        .iter()
        .flat_map(|r| [Some(r.start), r.end.checked_add(1)])
        .flatten()
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut active = std::collections::BinaryHeap::new();
    let mut next = 0;
    let mut out: Vec<Row<T>> = Vec::new();
    for (index, start) in cuts.iter().enumerate() {
        while next < rows.len() && rows[next].start <= *start {
            active.push((std::cmp::Reverse(rows[next].end - rows[next].start), next));
            next += 1;
        }
        while active.peek().is_some_and(|(_, i)| rows[*i].end < *start) {
            active.pop();
        }
        let Some((_, holder)) = active.peek() else {
            continue;
        };
        let end = cuts.get(index + 1).map_or(u128::MAX, |n| n - 1);
        let value = &rows[*holder].value;
        match out.last_mut() {
            Some(last) if last.end.checked_add(1) == Some(*start) && last.value == *value => {
                last.end = end;
            }
            _ => out.push(Row {
                start: *start,
                end,
                value: value.clone(),
            }),
        }
    }
    out
}

/// Cuts both sets of rows into disjoint ranges, each with the AS entry and the country that hold
/// for all of it; neighbours that say the same are joined.
#[allow(clippy::type_complexity)]
fn merge(
    asn: Vec<Row<(u32, String)>>,
    country: Vec<Row<String>>,
) -> Vec<(u128, u128, Option<(u32, String)>, Option<String>)> {
    let asn = flatten(asn);
    let country = flatten(country);
    // Every place a range starts or stops holding.
    let mut cuts: Vec<u128> = asn
        .iter()
        .map(|r| (r.start, r.end))
        .chain(country.iter().map(|r| (r.start, r.end)))
        .flat_map(|(start, end)| [Some(start), end.checked_add(1)])
        .flatten()
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<(u128, u128, Option<(u32, String)>, Option<String>)> = Vec::new();
    let (mut a, mut c) = (0, 0);
    for (index, start) in cuts.iter().enumerate() {
        let end = cuts.get(index + 1).map_or(u128::MAX, |next| next - 1);
        while a < asn.len() && asn[a].end < *start {
            a += 1;
        }
        while c < country.len() && country[c].end < *start {
            c += 1;
        }
        let as_here = asn
            .get(a)
            .filter(|r| r.start <= *start)
            .map(|r| r.value.clone());
        let country_here = country
            .get(c)
            .filter(|r| r.start <= *start)
            .map(|r| r.value.clone());
        if as_here.is_none() && country_here.is_none() {
            continue;
        }
        match out.last_mut() {
            Some(last)
                if last.1.checked_add(1) == Some(*start)
                    && last.2 == as_here
                    && last.3 == country_here =>
            {
                last.1 = end;
            }
            _ => out.push((*start, end, as_here, country_here)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> PackMeta {
        PackMeta {
            built: "2026-11-24".into(),
            sources: vec![DataSource {
                provides: "asn".into(),
                package: "test".into(),
                license: "CC BY 4.0".into(),
                attribution: "tests".into(),
                data_as_of: "2026-06-17".into(),
            }],
        }
    }

    fn pack(asn: &str, country: &str) -> Vec<u8> {
        let mut builder = PackBuilder::default();
        builder
            .add_asn_csv("asn.csv", asn.as_bytes())
            .expect("asn rows");
        builder
            .add_country_csv("country.csv", country.as_bytes())
            .expect("country rows");
        let mut out = Vec::new();
        builder.write(&meta(), &mut out).expect("writes");
        out
    }

    #[test]
    fn lookups_merge_both_data_sets_across_families() {
        let bytes = pack(
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
             1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd\n\
             2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,2500,WIDE Project\n",
            "1.0.0.0,1.0.0.127,AU\n1.0.0.128,1.0.1.255,us\n2001:200::,2001:201::,JP\n",
        );
        let pack = NetPack::from_gzip(&bytes).expect("reads");
        assert_eq!(pack.meta(), &meta());
        let at = |ip: &str| pack.lookup(ip.parse().expect("ip"));
        assert_eq!(
            at("1.0.0.1"),
            Some(NetInfo {
                asn: Some(13335),
                as_name: Some("Cloudflare, Inc."),
                country: Some("AU")
            })
        );
        assert_eq!(at("1.0.0.200").and_then(|i| i.country), Some("US"));
        assert_eq!(
            at("1.0.1.7"),
            Some(NetInfo {
                asn: None,
                as_name: None,
                country: Some("US")
            }),
            "country data alone"
        );
        assert_eq!(at("1.0.2.0"), None, "between ranges");
        assert_eq!(at("1.0.7.255").and_then(|i| i.asn), Some(38803));
        assert_eq!(at("0.255.255.255"), None);
        assert_eq!(at("::ffff:1.0.0.1").and_then(|i| i.asn), Some(13335));
        let wide = at("2001:200:1::9").expect("IPv6");
        assert_eq!((wide.asn, wide.country), (Some(2500), Some("JP")));
        assert_eq!(at("2001:201::").and_then(|i| i.asn), None);
        assert_eq!(pack.range_counts().1, 2, "2001:200::/32 and the JP tail");
    }

    #[test]
    fn where_ranges_overlap_the_most_specific_holds() {
        let bytes = pack(
            "214.95.0.0,215.0.255.255,749,DoD\n215.0.0.0,215.1.3.255,721,DoD NIC\n",
            "5.61.192.0,5.61.193.255,SK\n5.61.192.0,5.61.199.255,FR\n2.58.196.0,2.58.197.255,DE\n2.58.197.15,2.58.197.15,BE\n",
        );
        let pack = NetPack::from_gzip(&bytes).expect("reads");
        let at = |ip: &str| pack.lookup(ip.parse().expect("ip")).expect("known");
        assert_eq!(at("214.96.0.1").asn, Some(749));
        assert_eq!(
            at("215.0.0.1").asn,
            Some(721),
            "the smaller of two overlapping ranges"
        );
        assert_eq!(at("215.1.0.1").asn, Some(721));
        assert_eq!(at("5.61.193.1").country, Some("SK"));
        assert_eq!(at("5.61.194.1").country, Some("FR"));
        assert_eq!(at("2.58.197.15").country, Some("BE"));
        assert_eq!(at("2.58.197.16").country, Some("DE"));
        assert_eq!(at("2.58.197.14").country, Some("DE"));
    }

    #[test]
    fn the_embedded_pack_knows_well_known_networks() {
        let pack = embedded().expect("the embedded pack reads");
        let (v4, v6) = pack.range_counts();
        assert!(
            v4 > 100_000 && v6 > 50_000,
            "{v4} IPv4 and {v6} IPv6 ranges"
        );
        let at = |ip: &str| pack.lookup(ip.parse().expect("ip")).expect("known");
        assert_eq!(at("1.1.1.1").asn, Some(13335));
        assert_eq!(at("8.8.8.8").as_name, Some("Google LLC"));
        assert_eq!(at("2001:4860:4860::8888").asn, Some(15169));
        assert!(pack.lookup("10.1.2.3".parse().expect("ip")).is_none());
        assert_eq!(pack.meta().sources.len(), 2);
    }

    #[test]
    fn bad_input_says_which_file_and_line() {
        let mut builder = PackBuilder::default();
        let error = builder
            .add_asn_csv(
                "asn-ipv4.csv",
                "1.0.0.0,1.0.0.255,13335,A\n1.0.1.0,1.0.0.0,7,B\n".as_bytes(),
            )
            .expect_err("a backwards range");
        assert_eq!(
            error.to_string(),
            "asn-ipv4.csv, line 2: 1.0.1.0–1.0.0.0 is not a range"
        );
        let error = builder
            .add_country_csv("geo.csv", "1.0.0.0,1.0.0.255,Australia\n".as_bytes())
            .expect_err("not a code");
        assert_eq!(
            error.to_string(),
            "geo.csv, line 1: \"Australia\" is not a two-letter country code"
        );
        let error = builder
            .add_asn_csv("asn.csv", "1.0.0.0,nowhere,1,A\n".as_bytes())
            .expect_err("not an address");
        assert!(
            error
                .to_string()
                .starts_with("asn.csv, line 1: \"nowhere\"")
        );
    }

    #[test]
    fn corrupt_and_truncated_packs_are_errors_not_panics() {
        let bytes = pack("1.0.0.0,1.0.0.255,13335,A\n", "1.0.0.0,1.0.0.255,AU\n");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut raw)
            .expect("decompresses");
        assert!(NetPack::from_bytes(&raw).is_ok());
        for cut in 0..raw.len() {
            assert!(NetPack::from_bytes(&raw[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = raw.clone();
        flipped[0] ^= 1;
        assert!(matches!(
            NetPack::from_bytes(&flipped),
            Err(PackError::NotAPack)
        ));
        for index in MAGIC.len()..raw.len() {
            let mut changed = raw.clone();
            changed[index] = changed[index].wrapping_add(0x80);
            // Any answer but a panic will do; most changes are caught.
            let _ = NetPack::from_bytes(&changed);
        }
        assert!(matches!(
            NetPack::from_gzip(&bytes[..bytes.len() / 2]),
            Err(PackError::Corrupt(_))
        ));
    }
}
