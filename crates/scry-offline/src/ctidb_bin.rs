//! Criminal IP's packed `.bin` offline database ("Packed Binary", read by the vendor's
//! `ctidb-bin` package), in both of its layouts:
//!
//! - **v1**: a signed licence blob, a table of IPv4 ranges sorted by start (ranges may nest: a
//!   base geo range with narrower overrides; the narrowest within 1,024 entries back wins), 8-byte
//!   "hot" records (country, AS, outbound and inbound score, eleven flag bits), a name table and a
//!   footer that says where the name table is.
//! - **v2**: a directory of columnar sections — geo ranges with their names (L1), one range list
//!   per flag (L2), score ranges (L3), full-plan details in a zstd frame (L4) and the signed
//!   licence (section 9).
//!
//! The licence blob is signed with RSA-2048 (PKCS#1 v1.5, SHA-256). [`Verification::from_env`]
//! checks it against the public key the vendor publishes in its reader, or skips the check when
//! `CTIDB_SKIP_SIGNATURE_VERIFY` says so, as the vendor's reader does; tests pass their own key.
//! Expiry is not enforced: an expired file keeps answering, as the vendor intends.
//!
//! The file is memory-mapped; lookups are binary searches over the mapped tables and copy
//! nothing but the names they return when those are not valid UTF-8. [`PackedDb::lookup`]
//! answers field for field as the vendor's reader does; [`PackedDb::record`] is the typed form.
//! Every offset is checked: a truncated or damaged file is an error that says what is wrong,
//! never a panic.

use std::borrow::Cow;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde_json::{Map, Value};

/// The first eight bytes of both layouts.
pub const MAGIC: &[u8; 8] = b"CTIDBV2\0";
const FOOTER_MAGIC: &[u8; 8] = b"\0PACKED\0";
/// The environment switch that skips signature checks, shared with the vendor's reader.
pub const SKIP_VERIFY_ENV: &str = "CTIDB_SKIP_SIGNATURE_VERIFY";
/// The vendor's public key (DER SubjectPublicKeyInfo, RSA-2048) from `ctidb-bin` 0.0.7,
/// SHA-256 `89b41921853d1eeea3b49fc1656dcfe4e93dc648f3233a3b510649dae09af4d0`.
pub const PUBLISHED_KEY: &[u8] = include_bytes!("../data/ctidb-bin-public-key.der");

const LICENSE_BLOB: usize = 256;
const SIGNATURE: usize = 256;
const V1_RANGES_AT: usize = 16 + LICENSE_BLOB + SIGNATURE;
const HOT_RECORD: usize = 8;
/// How far back from the binary-search hit a v1 lookup looks for an enclosing range.
const LOOKBACK: usize = 1024;

/// Flag names by id: bit `n` of a v1 hot record, or flag section `n` of a v2 file.
pub const FLAG_NAMES: [&str; 14] = [
    "is_vpn",
    "is_tor",
    "is_cdn",
    "is_proxy",
    "is_hosting",
    "is_cloud",
    "is_c2",
    "is_honeypot",
    "abuse_record",
    "has_cve",
    "is_mobile",
    "score",
    "mobile_botnet",
    "connected_domains",
];
/// The flags a v1 hot record carries.
const V1_FLAGS: u8 = 11;

#[derive(Debug, thiserror::Error)]
pub enum PackedError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("not a packed CTIDB file: it does not start with \"CTIDBV2\"")]
    NotPacked,
    #[error("packed CTIDB layout {0}.{1} is not one scry reads (1.0–1.2 and 2.x are)")]
    UnknownVersion(u16, u16),
    #[error("packed CTIDB file is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the packed CTIDB file's licence signature does not verify ({0}); the file was changed or \
         not signed by Criminal IP"
    )]
    Signature(String),
    #[error("{0} is an IPv6 address and packed CTIDB files hold IPv4 only")]
    Ipv6(IpAddr),
}

fn corrupt(message: impl Into<String>) -> PackedError {
    PackedError::Corrupt(message.into())
}

/// How the licence signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Against [`PUBLISHED_KEY`].
    Published,
    /// Against this public key (DER, SubjectPublicKeyInfo or PKCS#1).
    Key(Vec<u8>),
    /// Not at all.
    Skip,
}

impl Verification {
    /// [`Verification::Skip`] when `CTIDB_SKIP_SIGNATURE_VERIFY` is `1`, `true` or `yes` (any
    /// case), otherwise [`Verification::Published`].
    pub fn from_env() -> Verification {
        let skip = std::env::var(SKIP_VERIFY_ENV).is_ok_and(|value| {
            ["1", "true", "yes"]
                .iter()
                .any(|yes| value.eq_ignore_ascii_case(yes))
        });
        if skip {
            Verification::Skip
        } else {
            Verification::Published
        }
    }

    fn check(&self, blob: &[u8], signature: &[u8]) -> Result<(), PackedError> {
        use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        let key = match self {
            Verification::Skip => return Ok(()),
            Verification::Published => PUBLISHED_KEY,
            Verification::Key(key) => key.as_slice(),
        };
        if blob.len() != LICENSE_BLOB || signature.len() != SIGNATURE {
            return Err(PackedError::Signature(format!(
                "licence section of {} + {} bytes instead of 256 + 256",
                blob.len(),
                signature.len()
            )));
        }
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
            .verify(blob, signature)
            .map_err(|_| PackedError::Signature("RSA PKCS#1 v1.5 with SHA-256".into()))
    }
}

/// The signed licence a file carries. The licence key itself is a secret and is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub customer_id: String,
    /// 1 Geolocation, 2 TI/C2, 3 Fraud Detection, 4 Full, 5 Privacy.
    pub plan: u8,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; not enforced.
    pub expire_at: u64,
    pub permissions: u32,
}

impl License {
    fn read(blob: &[u8]) -> License {
        let text = |bytes: &[u8]| {
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            String::from_utf8_lossy(&bytes[..end]).into_owned()
        };
        License {
            customer_id: text(&blob[32..48]),
            plan: blob[48],
            issued_at: u64_at(blob, 49).unwrap_or(0),
            expire_at: u64_at(blob, 57).unwrap_or(0),
            permissions: u32_at(blob, 65).unwrap_or(0),
        }
    }

    pub fn plan_name(&self) -> &'static str {
        match self.plan {
            1 => "Geolocation",
            2 => "TI/C2",
            3 => "Fraud Detection",
            4 => "Full",
            5 => "Privacy",
            _ => "unknown",
        }
    }
}

/// What the header and licence say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedMetadata {
    /// Layout major and minor version.
    pub version: (u16, u16),
    /// v2 only; its meaning is not published.
    pub product_id: Option<u16>,
    /// Ranges in the range table (v1) or geo section (v2).
    pub range_count: usize,
    /// Absent from v2 files without a licence section.
    pub license: Option<License>,
}

/// A flag id's name: [`FLAG_NAMES`], or `flag_<id>` beyond them.
pub fn flag_name(id: u8) -> Cow<'static, str> {
    FLAG_NAMES.get(usize::from(id)).map_or_else(
        || Cow::Owned(format!("flag_{id}")),
        |name| Cow::Borrowed(*name),
    )
}

/// Which flags a file carries and which of them are set for one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    present: [u64; 4],
    set: [u64; 4],
}

impl Flags {
    fn put(&mut self, id: u8, value: bool) {
        let (word, bit) = (usize::from(id / 64), id % 64);
        self.present[word] |= 1 << bit;
        if value {
            self.set[word] |= 1 << bit;
        } else {
            self.set[word] &= !(1 << bit);
        }
    }

    /// `None` when the file carries no such flag.
    pub fn get(&self, id: u8) -> Option<bool> {
        let (word, bit) = (usize::from(id / 64), id % 64);
        (self.present[word] >> bit & 1 == 1).then_some(self.set[word] >> bit & 1 == 1)
    }

    /// The flags the file carries, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u8, bool)> + '_ {
        (0..=u8::MAX).filter_map(|id| self.get(id).map(|value| (id, value)))
    }
}

/// Full-plan details (v2, section 4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details<'a> {
    pub hostname: Cow<'a, str>,
    pub representative_domain: Cow<'a, str>,
    pub ssl_certificate: Cow<'a, str>,
    pub products: Vec<Cow<'a, str>>,
    pub cve: Vec<Cow<'a, str>>,
    pub open_ports: Vec<u16>,
    pub tags: Vec<Cow<'a, str>>,
}

/// What a file says about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRecord<'a> {
    pub country_code: Cow<'a, str>,
    pub as_name: Cow<'a, str>,
    /// v2 only: the capital city of the country, as an approximation.
    pub city: Option<Cow<'a, str>>,
    pub flags: Flags,
    /// Outbound and inbound score, 0–5; v1 always, v2 when it has a score section.
    pub scores: Option<(u8, u8)>,
    /// v2 files with a details section.
    pub details: Option<Details<'a>>,
}

impl PackedRecord<'_> {
    /// The record as the vendor's reader gives it.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        let text = |s: &Cow<'_, str>| Value::String(s.to_string());
        out.insert("country_code".into(), text(&self.country_code));
        out.insert("as_name".into(), text(&self.as_name));
        if let Some(city) = &self.city {
            out.insert("city".into(), text(city));
        }
        for (id, value) in self.flags.iter() {
            out.insert(flag_name(id).into_owned(), Value::Bool(value));
        }
        if let Some((outbound, inbound)) = self.scores {
            out.insert("outbound_score".into(), outbound.into());
            out.insert("inbound_score".into(), inbound.into());
        }
        if let Some(d) = &self.details {
            let list = |items: &[Cow<'_, str>]| Value::Array(items.iter().map(text).collect());
            out.insert("hostname".into(), text(&d.hostname));
            out.insert(
                "representative_domain".into(),
                text(&d.representative_domain),
            );
            let certificates = if d.ssl_certificate.is_empty() {
                Vec::new()
            } else {
                vec![text(&d.ssl_certificate)]
            };
            out.insert("ssl_certificate".into(), Value::Array(certificates));
            out.insert("products".into(), list(&d.products));
            out.insert("cve".into(), list(&d.cve));
            out.insert(
                "open_ports".into(),
                Value::Array(d.open_ports.iter().map(|p| (*p).into()).collect()),
            );
            out.insert("tags".into(), list(&d.tags));
        }
        Value::Object(out)
    }
}

/// An opened packed file.
pub struct PackedDb<B> {
    bytes: B,
    metadata: PackedMetadata,
    layout: Layout,
}

impl<B> std::fmt::Debug for PackedDb<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedDb")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

enum Layout {
    V1 {
        entry_size: usize,
        count: usize,
        hot_at: usize,
        names: NameTable,
    },
    V2 {
        geo: Option<Geo>,
        /// By flag id, ascending.
        flags: Vec<(u8, Ranges)>,
        scores: Option<Ranges>,
        details: Option<DetailSection>,
    },
}

/// Fixed-size entries sorted by their first field, a `u32` start, with a `u32` end after it.
#[derive(Debug, Clone, Copy)]
struct Ranges {
    at: usize,
    count: usize,
    stride: usize,
}

impl Ranges {
    /// Checks that `count` entries of `stride` bytes from `at` lie inside `buffer`.
    fn new(
        buffer: &[u8],
        at: usize,
        count: usize,
        stride: usize,
        what: &str,
    ) -> Result<Ranges, PackedError> {
        let end = count
            .checked_mul(stride)
            .and_then(|len| len.checked_add(at))
            .filter(|end| *end <= buffer.len())
            .ok_or_else(|| corrupt(format!("{what}: {count} entries do not fit in the file")))?;
        debug_assert!(end <= buffer.len());
        Ok(Ranges { at, count, stride })
    }

    fn entry<'b>(&self, buffer: &'b [u8], index: usize) -> &'b [u8] {
        let at = self.at + index * self.stride;
        &buffer[at..at + self.stride]
    }

    fn start(&self, buffer: &[u8], index: usize) -> u32 {
        le32(self.entry(buffer, index))
    }

    fn end(&self, buffer: &[u8], index: usize) -> u32 {
        le32(&self.entry(buffer, index)[4..])
    }

    /// The last entry whose start is at or below `ip`.
    fn last_starting_by(&self, buffer: &[u8], ip: u32) -> Option<usize> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = (low + high) / 2;
            if self.start(buffer, middle) <= ip {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low.checked_sub(1)
    }

    /// The entry at or before `ip` if it also ends at or after it.
    fn containing(&self, buffer: &[u8], ip: u32) -> Option<usize> {
        self.last_starting_by(buffer, ip)
            .filter(|index| ip <= self.end(buffer, *index))
    }
}

struct Geo {
    ranges: Ranges,
    names: NameTable,
}

struct DetailSection {
    entries: Ranges,
    blob: Vec<u8>,
    names: NameTable,
}

/// Length-prefixed strings: `count u32`, then `count × (len u16, UTF-8)`.
struct NameTable {
    /// Where each string starts in the file, and its length.
    spans: Vec<(usize, u16)>,
}

impl NameTable {
    fn read(buffer: &[u8], at: usize, what: &str) -> Result<(NameTable, usize), PackedError> {
        let short = || corrupt(format!("{what} name table runs past the end of the file"));
        let count = u32_at(buffer, at).ok_or_else(short)? as usize;
        if count > buffer.len() / 2 {
            return Err(corrupt(format!("{what} name table claims {count} names")));
        }
        let mut spans = Vec::with_capacity(count);
        let mut cursor = at + 4;
        for _ in 0..count {
            let len = u16_at(buffer, cursor).ok_or_else(short)?;
            cursor += 2;
            if cursor + usize::from(len) > buffer.len() {
                return Err(short());
            }
            spans.push((cursor, len));
            cursor += usize::from(len);
        }
        Ok((NameTable { spans }, cursor))
    }

    /// The name with this id; ids past the table give `""`, as in the vendor's reader.
    fn get<'b>(&self, buffer: &'b [u8], id: u32) -> Cow<'b, str> {
        match self.spans.get(id as usize) {
            Some((at, len)) => String::from_utf8_lossy(&buffer[*at..*at + usize::from(*len)]),
            None => Cow::Borrowed(""),
        }
    }
}

impl PackedDb<memmap2::Mmap> {
    /// Maps the file at `path` into memory, reads its layout and checks its licence signature.
    pub fn open(
        path: &Path,
        verification: &Verification,
    ) -> Result<PackedDb<memmap2::Mmap>, PackedError> {
        let io = |error| PackedError::Io {
            path: path.display().to_string(),
            error,
        };
        PackedDb::from_bytes(crate::map_read_only(path).map_err(io)?, verification)
    }
}

impl<B: AsRef<[u8]>> PackedDb<B> {
    /// Reads the layout of a file already in memory and checks its licence signature.
    pub fn from_bytes(bytes: B, verification: &Verification) -> Result<PackedDb<B>, PackedError> {
        let buffer = bytes.as_ref();
        if buffer.len() < 16 || &buffer[..8] != MAGIC {
            return Err(PackedError::NotPacked);
        }
        let major = u16_at(buffer, 8).unwrap_or(0);
        let minor = u16_at(buffer, 10).unwrap_or(0);
        let (metadata, layout) = match major {
            1 if minor <= 2 => read_v1(buffer, minor, verification)?,
            2 => read_v2(buffer, minor, verification)?,
            _ => return Err(PackedError::UnknownVersion(major, minor)),
        };
        Ok(PackedDb {
            bytes,
            metadata,
            layout,
        })
    }

    pub fn metadata(&self) -> &PackedMetadata {
        &self.metadata
    }

    /// The record for `address` as the vendor's reader gives it, or `None`.
    pub fn lookup(&self, address: IpAddr) -> Result<Option<Value>, PackedError> {
        let IpAddr::V4(v4) = address else {
            return Err(PackedError::Ipv6(address));
        };
        Ok(self.record(v4)?.map(|record| record.to_json()))
    }

    /// The record for `address`, or `None`.
    pub fn record(&self, address: Ipv4Addr) -> Result<Option<PackedRecord<'_>>, PackedError> {
        let buffer = self.bytes.as_ref();
        let ip = u32::from(address);
        match &self.layout {
            Layout::V1 {
                entry_size,
                count,
                hot_at,
                names,
            } => {
                let ranges = Ranges {
                    at: V1_RANGES_AT,
                    count: *count,
                    stride: *entry_size,
                };
                let Some(hot) = narrowest_v1(&ranges, buffer, ip) else {
                    return Ok(None);
                };
                let at = hot_at
                    .checked_add(hot as usize)
                    .filter(|at| at + HOT_RECORD <= buffer.len())
                    .ok_or_else(|| corrupt(format!("hot record at {hot} is past the end")))?;
                let record = &buffer[at..at + HOT_RECORD];
                let asn =
                    u32::from(record[1]) | u32::from(record[2]) << 8 | u32::from(record[3]) << 16;
                let bits = u16::from_le_bytes([record[6], record[7]]);
                let mut flags = Flags::default();
                for id in 0..V1_FLAGS {
                    flags.put(id, bits >> id & 1 == 1);
                }
                let name = |id: u32| {
                    if id == 0 {
                        Cow::Borrowed("")
                    } else {
                        names.get(buffer, id)
                    }
                };
                Ok(Some(PackedRecord {
                    country_code: name(u32::from(record[0])),
                    as_name: name(asn),
                    city: None,
                    flags,
                    scores: Some((record[4], record[5])),
                    details: None,
                }))
            }
            Layout::V2 {
                geo,
                flags,
                scores,
                details,
            } => {
                let Some(geo) = geo else {
                    return Ok(None);
                };
                let Some(index) = geo.ranges.containing(buffer, ip) else {
                    return Ok(None);
                };
                let entry = geo.ranges.entry(buffer, index);
                let mut found = Flags::default();
                for (id, ranges) in flags {
                    found.put(*id, ranges.containing(buffer, ip).is_some());
                }
                let scores = scores.map(|ranges| {
                    ranges.containing(buffer, ip).map_or((0, 0), |index| {
                        let entry = ranges.entry(buffer, index);
                        (entry[8], entry[9])
                    })
                });
                let details = match details {
                    Some(section) => Some(section.details(buffer, ip)?),
                    None => None,
                };
                Ok(Some(PackedRecord {
                    country_code: geo.names.get(buffer, le32(&entry[8..])),
                    as_name: geo.names.get(buffer, le32(&entry[12..])),
                    city: Some(geo.names.get(buffer, le32(&entry[16..]))),
                    flags: found,
                    scores,
                    details,
                }))
            }
        }
    }
}

/// The hot-record offset of the narrowest v1 range holding `ip`, looking back at most
/// [`LOOKBACK`] entries from the last range starting at or before it.
fn narrowest_v1(ranges: &Ranges, buffer: &[u8], ip: u32) -> Option<u32> {
    let last = ranges.last_starting_by(buffer, ip)?;
    let mut best: Option<(u32, u32)> = None;
    for index in (0..=last).rev().take(LOOKBACK) {
        let entry = ranges.entry(buffer, index);
        let (start, end) = (le32(entry), le32(&entry[4..]));
        if start <= ip && ip <= end {
            let width = end - start;
            if best.is_none_or(|(narrowest, _)| width < narrowest) {
                best = Some((width, le32(&entry[8..])));
                if width == 0 {
                    break;
                }
            }
        }
    }
    best.map(|(_, hot)| hot)
}

fn read_v1(
    buffer: &[u8],
    minor: u16,
    verification: &Verification,
) -> Result<(PackedMetadata, Layout), PackedError> {
    let count = u32_at(buffer, 12).unwrap_or(0) as usize;
    let license = buffer
        .get(16..V1_RANGES_AT)
        .ok_or_else(|| corrupt("the file ends inside the licence section"))?;
    let (blob, signature) = license.split_at(LICENSE_BLOB);
    verification.check(blob, signature)?;
    let entry_size = if minor >= 2 { 20 } else { 16 };
    let ranges = Ranges::new(buffer, V1_RANGES_AT, count, entry_size, "range table")?;
    let hot_at = V1_RANGES_AT + count * entry_size;
    let footer = |len: usize| {
        buffer
            .len()
            .checked_sub(len)
            .filter(|at| buffer.get(*at..*at + 8) == Some(FOOTER_MAGIC))
    };
    let names_at = if let Some(at) = footer(24) {
        within(buffer, u64_at(buffer, at + 16).unwrap_or(u64::MAX))
    } else if footer(16).is_some() {
        // The legacy footer has no name-table offset: the table follows the hot records.
        let last = (0..count)
            .map(|index| le32(&ranges.entry(buffer, index)[8..]))
            .max();
        last.map_or(hot_at, |last| hot_at + last as usize + HOT_RECORD)
    } else {
        return Err(corrupt("no \"PACKED\" footer at the end"));
    };
    let (names, _) = NameTable::read(buffer, names_at, "v1")?;
    Ok((
        PackedMetadata {
            version: (1, minor),
            product_id: None,
            range_count: count,
            license: Some(License::read(blob)),
        },
        Layout::V1 {
            entry_size,
            count,
            hot_at,
            names,
        },
    ))
}

/// An offset read from the file, as an index: one past the end stays past the end (reading there
/// is an error that says so) without overflowing the arithmetic done on it.
fn within(buffer: &[u8], offset: u64) -> usize {
    usize::try_from(offset).map_or(buffer.len() + 1, |at| at.min(buffer.len() + 1))
}

fn read_v2(
    buffer: &[u8],
    minor: u16,
    verification: &Verification,
) -> Result<(PackedMetadata, Layout), PackedError> {
    let product_id = u16_at(buffer, 12).unwrap_or(0);
    let section_count = usize::from(u16_at(buffer, 14).unwrap_or(0));
    // By type; a type listed twice keeps its last offset, as in the vendor's reader.
    let mut sections: [Option<usize>; 256] = [None; 256];
    for index in 0..section_count {
        let at = 16 + index * 20;
        let entry = buffer
            .get(at..at + 20)
            .ok_or_else(|| corrupt(format!("section directory entry {index} is cut off")))?;
        sections[usize::from(entry[0])] = Some(within(buffer, u64_at(entry, 4).unwrap_or(0)));
    }
    let count_at = |at: usize, what: &str| {
        u32_at(buffer, at)
            .map(|count| count as usize)
            .ok_or_else(|| corrupt(format!("{what} section starts past the end of the file")))
    };
    let geo = match sections[1] {
        Some(at) => {
            let count = count_at(at, "geo")?;
            let ranges = Ranges::new(buffer, at + 4, count, 20, "geo section")?;
            let (names, _) = NameTable::read(buffer, at + 4 + count * 20, "geo")?;
            Some(Geo { ranges, names })
        }
        None => None,
    };
    let mut flags: Vec<(u8, Ranges)> = Vec::new();
    if let Some(at) = sections[2] {
        let count = count_at(at, "flag")?;
        let directory = Ranges::new(buffer, at + 4, count, 9, "flag directory")?;
        let blob_at = at + 4 + count * 9;
        for index in 0..count {
            let entry = directory.entry(buffer, index);
            let (id, offset, ranges) = (entry[0], le32(&entry[1..]), le32(&entry[5..]));
            let what = format!("flag {} ranges", flag_name(id));
            let ranges = Ranges::new(buffer, blob_at + offset as usize, ranges as usize, 8, &what)?;
            flags.retain(|(other, _)| *other != id);
            flags.push((id, ranges));
        }
        flags.sort_by_key(|(id, _)| *id);
    }
    let scores = match sections[3] {
        Some(at) => Some(Ranges::new(
            buffer,
            at + 4,
            count_at(at, "score")?,
            10,
            "score section",
        )?)
        .filter(|ranges| ranges.count > 0),
        None => None,
    };
    let details = match sections[4] {
        Some(at) => DetailSection::read(buffer, at, count_at(at, "detail")?)?,
        None => None,
    };
    let license = match sections[9] {
        // An offset of 0 means no licence, as in the vendor's reader.
        Some(at) if at != 0 => {
            let section = at
                .checked_add(LICENSE_BLOB + SIGNATURE)
                .and_then(|end| buffer.get(at..end))
                .ok_or_else(|| corrupt("the licence section runs past the end of the file"))?;
            let (blob, signature) = section.split_at(LICENSE_BLOB);
            verification.check(blob, signature)?;
            Some(License::read(blob))
        }
        _ => None,
    };
    let range_count = geo.as_ref().map_or(0, |geo| geo.ranges.count);
    Ok((
        PackedMetadata {
            version: (2, minor),
            product_id: Some(product_id),
            range_count,
            license,
        },
        Layout::V2 {
            geo,
            flags,
            scores,
            details,
        },
    ))
}

impl DetailSection {
    /// `None` for a section without entries, which the vendor's reader ignores.
    fn read(buffer: &[u8], at: usize, count: usize) -> Result<Option<DetailSection>, PackedError> {
        let entries = Ranges::new(buffer, at + 4, count, 16, "detail section")?;
        if count == 0 {
            return Ok(None);
        }
        let frame_at = at + 4 + count * 16;
        let (compressed, raw) = (u32_at(buffer, frame_at), u32_at(buffer, frame_at + 4));
        let (Some(compressed), Some(raw)) = (compressed, raw) else {
            return Err(corrupt(
                "detail section: sizes run past the end of the file",
            ));
        };
        let frame = buffer
            .get(frame_at + 8..frame_at + 8 + compressed as usize)
            .ok_or_else(|| corrupt("detail section: the zstd frame runs past the end"))?;
        let mut blob = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(frame)
            .map_err(|e| corrupt(format!("detail section: {e}")))?
            .take(u64::from(raw) + 1)
            .read_to_end(&mut blob)
            .map_err(|e| corrupt(format!("detail section: {e}")))?;
        if blob.len() > raw as usize {
            return Err(corrupt(format!(
                "detail section: more than the {raw} bytes it declares"
            )));
        }
        let (names, _) =
            NameTable::read(buffer, frame_at + 8 + compressed as usize, "detail section")?;
        Ok(Some(DetailSection {
            entries,
            blob,
            names,
        }))
    }

    /// Empty details when no entry holds `ip`.
    fn details<'b>(&self, buffer: &'b [u8], ip: u32) -> Result<Details<'b>, PackedError> {
        let Some(index) = self.entries.containing(buffer, ip) else {
            return Ok(Details::default());
        };
        let at = u64_at(self.entries.entry(buffer, index), 8).unwrap_or(u64::MAX);
        let short = || corrupt(format!("detail record at {at} runs past the details"));
        let blob = &self.blob;
        let mut cursor = usize::try_from(at).map_err(|_| short())?;
        let head = cursor
            .checked_add(12)
            .and_then(|end| blob.get(cursor..end))
            .ok_or_else(short)?;
        let (host, representative, certificate) = (le32(head), le32(&head[4..]), le32(&head[8..]));
        cursor += 12;
        let name = |id: u32| self.names.get(buffer, id);
        let mut ids = |width: usize| -> Result<Vec<u32>, PackedError> {
            let count = usize::from(*blob.get(cursor).ok_or_else(short)?);
            let items = blob
                .get(cursor + 1..cursor + 1 + count * width)
                .ok_or_else(short)?;
            cursor += 1 + count * width;
            Ok(items
                .chunks_exact(width)
                .map(|item| match width {
                    2 => u32::from(u16::from_le_bytes([item[0], item[1]])),
                    _ => le32(item),
                })
                .collect())
        };
        let products = ids(4)?;
        let cve = ids(4)?;
        let ports = ids(2)?;
        let tags = ids(4)?;
        Ok(Details {
            hostname: name(host),
            representative_domain: name(representative),
            ssl_certificate: name(certificate),
            products: products.into_iter().map(name).collect(),
            cve: cve.into_iter().map(name).collect(),
            open_ports: ports.into_iter().map(|port| port as u16).collect(),
            tags: tags.into_iter().map(name).collect(),
        })
    }
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn u16_at(buffer: &[u8], at: usize) -> Option<u16> {
    let bytes = buffer.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn u32_at(buffer: &[u8], at: usize) -> Option<u32> {
    buffer.get(at..at.checked_add(4)?).map(le32)
}

fn u64_at(buffer: &[u8], at: usize) -> Option<u64> {
    let bytes = buffer.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_key_is_the_one_the_vendor_documents() {
        use aws_lc_rs::digest::{SHA256, digest};
        let hash: String = digest(&SHA256, PUBLISHED_KEY)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hash,
            "89b41921853d1eeea3b49fc1656dcfe4e93dc648f3233a3b510649dae09af4d0"
        );
    }

    #[test]
    fn flags_remember_which_ids_the_file_carries() {
        let mut flags = Flags::default();
        flags.put(1, true);
        flags.put(70, false);
        flags.put(200, true);
        assert_eq!(flags.get(1), Some(true));
        assert_eq!(flags.get(70), Some(false));
        assert_eq!(flags.get(2), None);
        assert_eq!(
            flags.iter().collect::<Vec<_>>(),
            [(1, true), (70, false), (200, true)]
        );
        assert_eq!(flag_name(13), "connected_domains");
        assert_eq!(flag_name(40), "flag_40");
    }
}
