//! Criminal IP's `.ctidb` offline database: a MaxMind-DB-style binary search tree over IPv4 (or
//! IPv6) prefixes, a data section of MaxMind-typed values, its own metadata marker
//! (`DHC` + `AISpera.com`) and an optional language table (`DHC` + `ALIASNpGera.com` + JSON to the
//! end of the file) that turns a record's small integer keys and ids into named fields.
//!
//! [`CtiDb::lookup`] answers as the vendor's Python reader (`ctidb` 1.1.16, `CCtiReader.get`)
//! does, field names, booleans and tier defaults included; [`CtiDb::raw`] gives the record as
//! stored. The file is memory-mapped and nothing is copied until a record is decoded. Every
//! offset is checked: a truncated or damaged file is an error that says what is wrong, never a
//! panic or an endless loop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{Map, Value};

/// The metadata marker.
pub const METADATA_MARKER: &[u8] = b"\x44\x48\x43AISpera.com";
/// The language-table marker.
pub const LANGUAGE_MARKER: &[u8] = b"\x44\x48\x43ALIASNpGera.com";
/// Zero bytes between the search tree and the data section.
const SEPARATOR: usize = 16;
/// Pointers followed in a row before a value is judged a loop.
const MAX_DEPTH: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum CtiError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("not a CTIDB file: no {0} marker")]
    NoMarker(&'static str),
    #[error("CTIDB file is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} is an IPv6 address and this CTIDB file holds IPv4 only")]
    Ipv6InIpv4File(IpAddr),
}

fn corrupt(message: impl Into<String>) -> CtiError {
    CtiError::Corrupt(message.into())
}

/// What the metadata says.
#[derive(Debug, Clone, PartialEq)]
pub struct CtiMetadata {
    pub node_count: u32,
    /// Bits per search-tree record: 24, 28 or 32.
    pub record_size: u16,
    pub ip_version: u16,
    pub database_type: String,
    pub build_epoch: u64,
    pub build_epoch_limit: Option<u64>,
    /// The description's JSON text (`{"product": …, "license_name": …, "latest_ctidb": …}`).
    pub description: String,
    /// The customer name.
    pub alias: Option<String>,
}

impl CtiMetadata {
    fn node_bytes(&self) -> usize {
        usize::from(self.record_size) / 4
    }

    fn tree_size(&self) -> usize {
        self.node_count as usize * self.node_bytes()
    }

    /// The licence tier the vendor's reader derives from the description: SecOps 5, Full CTI 4,
    /// Fraud Detection 3, TI_C2 2, anything else 1.
    pub fn tier(&self) -> u8 {
        [
            ("SecOps License", 5),
            ("Full CTI License", 4),
            ("Fraud Detection License", 3),
            ("TI_C2 License", 2),
        ]
        .iter()
        .find(|(name, _)| self.description.contains(name))
        .map_or(1, |(_, tier)| *tier)
    }
}

/// An opened `.ctidb` file.
pub struct CtiDb<B> {
    bytes: B,
    metadata: CtiMetadata,
    /// Language table: id → text.
    language: Option<HashMap<u64, String>>,
    /// Where IPv4 lookups start in an IPv6 tree.
    ipv4_start: u32,
}

impl<B> std::fmt::Debug for CtiDb<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtiDb")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl CtiDb<memmap2::Mmap> {
    /// Maps the file at `path` into memory and reads its metadata.
    pub fn open(path: &Path) -> Result<CtiDb<memmap2::Mmap>, CtiError> {
        let io = |error| CtiError::Io {
            path: path.display().to_string(),
            error,
        };
        CtiDb::from_bytes(crate::map_read_only(path).map_err(io)?)
    }
}

impl<B: AsRef<[u8]>> CtiDb<B> {
    /// Reads the metadata and language table of a file already in memory.
    pub fn from_bytes(bytes: B) -> Result<CtiDb<B>, CtiError> {
        let buffer = bytes.as_ref();
        let marker = rfind(buffer, METADATA_MARKER).ok_or(CtiError::NoMarker("metadata"))?;
        let base = marker + METADATA_MARKER.len();
        let (metadata, _) = Decoder { buffer, base }.decode(base, 0)?;
        let metadata = read_metadata(&metadata)?;
        let language = match rfind(buffer, LANGUAGE_MARKER) {
            Some(at) if at > marker => {
                let table: HashMap<String, u64> =
                    serde_json::from_slice(&buffer[at + LANGUAGE_MARKER.len()..])
                        .map_err(|e| corrupt(format!("language table: {e}")))?;
                Some(table.into_iter().map(|(text, id)| (id, text)).collect())
            }
            Some(_) => return Err(corrupt("the language table is not after the metadata")),
            None => None,
        };
        if metadata.tree_size() + SEPARATOR > marker {
            return Err(corrupt(format!(
                "{} nodes of {} bytes do not fit before the metadata",
                metadata.node_count,
                metadata.node_bytes()
            )));
        }
        let mut db = CtiDb {
            bytes,
            metadata,
            language,
            ipv4_start: 0,
        };
        if db.metadata.ip_version == 6 {
            let mut node = 0;
            for _ in 0..96 {
                if node >= db.metadata.node_count {
                    break;
                }
                node = db.read_node(node, 0)?;
            }
            db.ipv4_start = node;
        }
        Ok(db)
    }

    pub fn metadata(&self) -> &CtiMetadata {
        &self.metadata
    }

    fn read_node(&self, node: u32, side: usize) -> Result<u32, CtiError> {
        let size = self.metadata.node_bytes();
        let at = node as usize * size;
        let b = self
            .bytes
            .as_ref()
            .get(at..at + size)
            .ok_or_else(|| corrupt(format!("node {node} is past the end of the file")))?;
        let be = |s: &[u8]| s.iter().fold(0u32, |v, byte| (v << 8) | u32::from(*byte));
        Ok(match (self.metadata.record_size, side) {
            (24, 0) => be(&b[0..3]),
            (24, _) => be(&b[3..6]),
            (28, 0) => (u32::from(b[3] & 0xF0) << 20) | be(&b[0..3]),
            (28, _) => (u32::from(b[3] & 0x0F) << 24) | be(&b[4..7]),
            (_, 0) => be(&b[0..4]),
            (_, _) => be(&b[4..8]),
        })
    }

    /// The data pointer for `address`, if the tree holds it.
    fn find(&self, address: IpAddr) -> Result<Option<usize>, CtiError> {
        let (bits, start): (Vec<u8>, u32) = match address {
            IpAddr::V4(v4) => (v4.octets().to_vec(), self.ipv4_start),
            IpAddr::V6(_) if self.metadata.ip_version != 6 => {
                return Err(CtiError::Ipv6InIpv4File(address));
            }
            IpAddr::V6(v6) => (v6.octets().to_vec(), 0),
        };
        let count = self.metadata.node_count;
        let mut node = start;
        for i in 0..bits.len() * 8 {
            if node >= count {
                break;
            }
            let bit = (bits[i / 8] >> (7 - i % 8)) & 1;
            node = self.read_node(node, usize::from(bit))?;
        }
        if node == count {
            return Ok(None);
        }
        if node < count {
            return Err(corrupt("the search tree is deeper than the address"));
        }
        let resolved = (node - count) as usize + self.metadata.tree_size();
        if resolved >= self.bytes.as_ref().len() {
            return Err(corrupt(
                "a search-tree record points past the end of the file",
            ));
        }
        Ok(Some(resolved))
    }

    /// The record for `address` as stored (keys as text), or `None`.
    pub fn raw(&self, address: IpAddr) -> Result<Option<Value>, CtiError> {
        Ok(self.record(address)?.map(|data| data.to_json()))
    }

    /// The record for `address` as the vendor's reader gives it.
    pub fn lookup(&self, address: IpAddr) -> Result<Option<Value>, CtiError> {
        let Some(data) = self.record(address)? else {
            return Ok(None);
        };
        let Some(language) = &self.language else {
            return Ok(Some(data.to_json()));
        };
        let Data::Map(pairs) = &data else {
            return Err(corrupt("a record is not a map"));
        };
        Ok(Some(named(pairs, language, self.metadata.tier())))
    }

    fn record(&self, address: IpAddr) -> Result<Option<Data>, CtiError> {
        let Some(at) = self.find(address)? else {
            return Ok(None);
        };
        let decoder = Decoder {
            buffer: self.bytes.as_ref(),
            base: self.metadata.tree_size() + SEPARATOR,
        };
        Ok(Some(decoder.decode(at, 0)?.0))
    }
}

/// The field names of the language-table keys.
fn field_name(key: u64) -> Option<&'static str> {
    Some(match key {
        1 => "country",
        2 => "country_code",
        3 => "as_name",
        4 => "score",
        5 => "hostname",
        6 => "representative_domain",
        7 => "ssl_certificate",
        8 => "products",
        9 => "cve",
        10 => "open_ports",
        11 => "tags",
        12 => "abuse_record",
        13 => "botnet",
        14 => "connected_domains",
        15 => "etcs",
        16 => "C2",
        _ => return None,
    })
}

/// A record of ids turned into named fields, with the vendor reader's post-processing.
fn named(stored: &[(Data, Data)], language: &HashMap<u64, String>, tier: u8) -> Value {
    // As a map: a key written twice keeps its first place and its last value.
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for (key, id) in stored {
        let (Some(key), Some(id)) = (key.as_u64(), id.as_u64()) else {
            continue;
        };
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = id,
            None => pairs.push((key, id)),
        }
    }
    let mut out = Map::new();
    for (key, id) in pairs.iter().copied() {
        let name = field_name(key).map_or_else(|| key.to_string(), str::to_owned);
        match key {
            4 | 9 | 12 | 13 | 14 | 16 => {
                out.insert(name, Value::Bool(id != 0));
            }
            5 | 6 => {}
            _ if id == 0 => {}
            _ => {
                // An id the table lacks leaves the field out, as the vendor's reader does.
                if let Some(text) = language.get(&id) {
                    let value = if text.starts_with(['[', '{']) {
                        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
                    } else {
                        Value::String(text.clone())
                    };
                    out.insert(name, value);
                }
            }
        }
    }
    let truthy = |out: &Map<String, Value>, key: &str| out.get(key) == Some(&Value::Bool(true));
    if out.contains_key("abuse_record") {
        let certificates = out.get("ssl_certificate").map_or(0, |v| {
            v.as_array()
                .map_or(v.as_str().map_or(0, str::len), Vec::len)
        });
        if certificates != 0 {
            out.insert("connected_domains".into(), Value::Bool(true));
        }
        if truthy(&out, "botnet") {
            out.insert("abuse_record".into(), Value::Bool(true));
        }
    }
    if let Some(etcs) = out.get("etcs") {
        let mobile = etcs.get("is_mobile") == Some(&Value::Bool(true));
        let value = truthy(&out, "abuse_record") && mobile;
        out.insert("mobile_botnet".into(), Value::Bool(value));
    }
    if pairs.len() == 1 {
        let mut set = |key: &str, value: Value| {
            out.insert(key.to_owned(), value);
        };
        if tier >= 1 {
            set("as_name", Value::String(String::new()));
            set("ssl_certificate", Value::Array(Vec::new()));
        }
        if tier >= 2 {
            for key in ["score", "abuse_record", "botnet", "connected_domains", "C2"] {
                set(key, Value::Bool(false));
            }
        }
        if tier >= 3 {
            set("mobile_botnet", Value::Bool(false));
            let flags = [
                "is_tor",
                "is_cdn",
                "is_vpn",
                "is_proxy",
                "is_hosting",
                "is_cloud",
                "is_mobile",
            ];
            set(
                "etcs",
                Value::Object(
                    flags
                        .iter()
                        .map(|f| ((*f).to_owned(), Value::Bool(false)))
                        .collect(),
                ),
            );
        }
        if tier >= 4 {
            set("products", Value::Array(Vec::new()));
            set("cve", Value::Bool(false));
            set("open_ports", Value::Array(Vec::new()));
            set("tags", Value::Array(Vec::new()));
        }
        if tier == 5 {
            for key in ["ssl_certificate", "products", "open_ports"] {
                out.remove(key);
            }
            if out.contains_key("tags") {
                out.insert("tags".into(), Value::Bool(false));
            }
        }
    } else if tier == 5 {
        let any = out
            .get("tags")
            .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()) && !t.is_null());
        out.insert("tags".into(), Value::Bool(any));
    }
    Value::Object(out)
}

fn read_metadata(data: &Data) -> Result<CtiMetadata, CtiError> {
    let Data::Map(pairs) = data else {
        return Err(corrupt("the metadata is not a map"));
    };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| matches!(k, Data::Text(t) if t == name))
            .map(|(_, v)| v)
    };
    let number = |name: &'static str| -> Result<u64, CtiError> {
        get(name)
            .and_then(Data::as_u64)
            .ok_or_else(|| corrupt(format!("metadata has no number {name}")))
    };
    let text = |name: &str| match get(name) {
        Some(Data::Text(t)) => Some(t.clone()),
        _ => None,
    };
    for required in [
        "languages",
        "binary_format_major_version",
        "binary_format_minor_version",
        "database_type",
        "build_epoch",
        "description",
    ] {
        if get(required).is_none() {
            return Err(corrupt(format!("metadata lacks {required}")));
        }
    }
    let record_size = number("record_size")?;
    if !matches!(record_size, 24 | 28 | 32) {
        return Err(corrupt(format!(
            "record size {record_size} (expected 24, 28 or 32)"
        )));
    }
    let description = match get("description") {
        Some(Data::Map(d)) => d
            .iter()
            .find(|(k, _)| matches!(k, Data::Text(t) if t == "description"))
            .and_then(|(_, v)| match v {
                Data::Text(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let ip_version = get("ip_version").and_then(Data::as_u64).unwrap_or(4);
    if !matches!(ip_version, 4 | 6) {
        return Err(corrupt(format!("ip_version {ip_version}")));
    }
    Ok(CtiMetadata {
        node_count: u32::try_from(number("node_count")?)
            .map_err(|_| corrupt("node_count is too large"))?,
        record_size: record_size as u16,
        ip_version: ip_version as u16,
        database_type: text("database_type").unwrap_or_default(),
        build_epoch: number("build_epoch")?,
        build_epoch_limit: get("build_epoch_limit").and_then(Data::as_u64),
        description,
        alias: text("alias"),
    })
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    Text(String),
    Double(f64),
    Bytes(Vec<u8>),
    Unsigned(u128),
    Signed(i32),
    Map(Vec<(Data, Data)>),
    Array(Vec<Data>),
    Bool(bool),
    Float(f32),
}

impl Data {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Data::Unsigned(n) => u64::try_from(*n).ok(),
            Data::Signed(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Data::Text(t) => Value::String(t.clone()),
            Data::Double(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
            Data::Float(f) => {
                serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
            }
            Data::Bytes(b) => Value::Array(b.iter().map(|x| Value::from(*x)).collect()),
            Data::Unsigned(n) => {
                u64::try_from(*n).map_or_else(|_| Value::String(n.to_string()), Value::from)
            }
            Data::Signed(n) => Value::from(*n),
            Data::Bool(b) => Value::Bool(*b),
            Data::Array(items) => Value::Array(items.iter().map(Data::to_json).collect()),
            Data::Map(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Data::Text(t) => t.clone(),
                            other => other.to_json().to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }
}

/// Decodes MaxMind DB values; pointers are relative to `base`.
struct Decoder<'a> {
    buffer: &'a [u8],
    base: usize,
}

impl Decoder<'_> {
    fn bytes(&self, at: usize, len: usize) -> Result<&[u8], CtiError> {
        at.checked_add(len)
            .and_then(|end| self.buffer.get(at..end))
            .ok_or_else(|| corrupt(format!("a value at {at} runs past the end of the file")))
    }

    fn be(&self, at: usize, len: usize) -> Result<u128, CtiError> {
        Ok(self
            .bytes(at, len)?
            .iter()
            .fold(0u128, |v, b| (v << 8) | u128::from(*b)))
    }

    /// The value at `at` and the offset after it.
    fn decode(&self, at: usize, depth: u32) -> Result<(Data, usize), CtiError> {
        if depth > MAX_DEPTH {
            return Err(corrupt("values nest or point too deep (a loop?)"));
        }
        let control = *self.bytes(at, 1)?.first().expect("one byte");
        let mut next = at + 1;
        let mut kind = control >> 5;
        if kind == 1 {
            let ss = usize::from((control >> 3) & 3);
            let vvv = u128::from(control & 7);
            let raw = self.be(next, ss + 1)?;
            let pointer = match ss {
                0 => (vvv << 8) | raw,
                1 => ((vvv << 16) | raw) + 2048,
                2 => ((vvv << 24) | raw) + 526_336,
                _ => raw,
            };
            next += ss + 1;
            let target = usize::try_from(pointer)
                .ok()
                .and_then(|p| p.checked_add(self.base))
                .ok_or_else(|| corrupt("a pointer past the end of the file"))?;
            let (value, _) = self.decode(target, depth + 1)?;
            return Ok((value, next));
        }
        if kind == 0 {
            kind = self.bytes(next, 1)?[0]
                .checked_add(7)
                .ok_or_else(|| corrupt("an extended type past 255"))?;
            next += 1;
        }
        let mut size = usize::from(control & 0x1F);
        if kind != 14 {
            size = match size {
                29 => 29 + self.be(next, 1)? as usize,
                30 => 285 + self.be(next, 2)? as usize,
                31 => 65_821 + self.be(next, 3)? as usize,
                literal => literal,
            };
            next += match control & 0x1F {
                29 => 1,
                30 => 2,
                31 => 3,
                _ => 0,
            };
        }
        let value = match kind {
            2 => {
                let text = std::str::from_utf8(self.bytes(next, size)?)
                    .map_err(|_| corrupt(format!("text at {at} is not UTF-8")))?;
                next += size;
                Data::Text(text.to_owned())
            }
            3 => {
                if size != 8 {
                    return Err(corrupt(format!("a double of {size} bytes")));
                }
                let bits = self.be(next, 8)? as u64;
                next += 8;
                Data::Double(f64::from_bits(bits))
            }
            4 => {
                let bytes = self.bytes(next, size)?.to_vec();
                next += size;
                Data::Bytes(bytes)
            }
            5 | 6 | 9 | 10 => {
                let max = match kind {
                    5 => 2,
                    6 => 4,
                    9 => 8,
                    _ => 16,
                };
                if size > max {
                    return Err(corrupt(format!(
                        "an integer of {size} bytes where {max} is the most"
                    )));
                }
                let value = self.be(next, size)?;
                next += size;
                Data::Unsigned(value)
            }
            8 => {
                if size > 4 {
                    return Err(corrupt(format!("an int32 of {size} bytes")));
                }
                let value = self.be(next, size)? as u32 as i32;
                next += size;
                Data::Signed(value)
            }
            7 => {
                let mut pairs = Vec::with_capacity(size.min(1024));
                for _ in 0..size {
                    let (key, after) = self.decode(next, depth + 1)?;
                    let (value, after) = self.decode(after, depth + 1)?;
                    pairs.push((key, value));
                    next = after;
                }
                Data::Map(pairs)
            }
            11 => {
                let mut items = Vec::with_capacity(size.min(1024));
                for _ in 0..size {
                    let (item, after) = self.decode(next, depth + 1)?;
                    items.push(item);
                    next = after;
                }
                Data::Array(items)
            }
            14 => Data::Bool(size != 0),
            15 => {
                if size != 4 {
                    return Err(corrupt(format!("a float of {size} bytes")));
                }
                let bits = self.be(next, 4)? as u32;
                next += 4;
                Data::Float(f32::from_bits(bits))
            }
            other => return Err(corrupt(format!("unsupported data type {other} at {at}"))),
        };
        Ok((value, next))
    }
}
