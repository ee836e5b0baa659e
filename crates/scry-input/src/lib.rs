//! Reading indicators from messy real-world input: files, stdin, gzip, and five formats.
//!
//! Reading is streaming and push-based: a reader walks its input once, holding one line, row or
//! STIX object at a time, and hands every indicator it finds or every piece it cannot use to a
//! callback, so memory does not grow with the input (see `tests/it/input.rs`). Nothing a reader
//! meets aborts it (DESIGN.md invariant 7): each unusable piece becomes an [`Item::Rejected`] with
//! its position and reason, and reading goes on. Only a file that cannot be opened is an error.

mod csv_rows;
mod detect;
mod json;
mod lines;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;
use scry_core::{Observable, Tlp};
use serde_json::{Map, Value};

pub use detect::detect_format;

/// Size of read buffers, and of the head that format detection looks at.
const BUFFER_SIZE: usize = 64 * 1024;
/// Lines longer than this are rejected rather than held in memory.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The formats scry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Decide per input from its name and its first 64 KiB.
    Auto,
    /// One indicator per line; `#` comments and blank lines allowed; anything after the first
    /// white space on a line is kept as a comment.
    Lines,
    /// Free text (an e-mail, a report): every indicator in it is extracted.
    Text,
    /// CSV (or TSV / semicolon-separated) with a header row.
    Csv,
    /// JSON Lines: a string, an object with an indicator field, or a STIX object per line.
    Jsonl,
    /// A STIX 2.1 bundle: indicators' patterns and cyber-observable objects.
    Stix,
}

impl InputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Auto => "auto",
            InputFormat::Lines => "lines",
            InputFormat::Text => "text",
            InputFormat::Csv => "csv",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Stix => "stix",
        }
    }
}

impl FromStr for InputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<InputFormat, String> {
        match s {
            "auto" => Ok(InputFormat::Auto),
            "lines" | "txt" | "plain" => Ok(InputFormat::Lines),
            "text" | "freetext" => Ok(InputFormat::Text),
            "csv" => Ok(InputFormat::Csv),
            "jsonl" | "ndjson" => Ok(InputFormat::Jsonl),
            "stix" => Ok(InputFormat::Stix),
            other => Err(format!(
                "unknown input format {other:?} (expected auto, lines, text, csv, jsonl or stix)"
            )),
        }
    }
}

/// One input: a file, standard input, or content already in memory (an upload to the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSource {
    /// `None` for standard input or an upload.
    pub path: Option<PathBuf>,
    pub upload: Option<Upload>,
}

/// Content received whole, with the name positions give it (a file name tells its format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub name: String,
    pub bytes: Arc<[u8]>,
}

impl InputSource {
    /// `-` means standard input.
    pub fn from_arg(arg: &str) -> InputSource {
        InputSource {
            path: (arg != "-").then(|| PathBuf::from(arg)),
            upload: None,
        }
    }

    pub fn file(path: impl Into<PathBuf>) -> InputSource {
        InputSource {
            path: Some(path.into()),
            upload: None,
        }
    }

    pub fn upload(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> InputSource {
        InputSource {
            path: None,
            upload: Some(Upload {
                name: name.into(),
                bytes: bytes.into(),
            }),
        }
    }

    /// How positions name this input.
    pub fn display_name(&self) -> String {
        match (&self.path, &self.upload) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(upload)) => upload.name.clone(),
            (None, None) => "<stdin>".to_owned(),
        }
    }

    /// The size on disk or in memory, when known (for progress).
    pub fn size_on_disk(&self) -> Option<u64> {
        if let Some(upload) = &self.upload {
            return Some(upload.bytes.len() as u64);
        }
        self.path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
    }
}

/// Where an item came from: a line (text, CSV, JSON Lines) or an object of a STIX bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: Arc<str>,
    pub line: u64,
    /// Index in the bundle's `objects` array, for STIX bundles.
    pub object: Option<u64>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.object {
            Some(index) => write!(f, "{}: objects[{index}]", self.file),
            None => write!(f, "{}:{}", self.file, self.line),
        }
    }
}

/// An indicator found in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub position: Position,
    /// The text as given.
    pub input: String,
    pub observable: Observable,
    /// TLP stated by the input (a `tlp` column or field, a STIX marking).
    pub tlp: Option<Tlp>,
    /// Other columns or fields that came with it.
    pub context: Option<Map<String, Value>>,
}

/// Something in the input that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub position: Position,
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Candidate(Candidate),
    Rejected(Rejection),
}

/// Counters a reader keeps, shared with whoever shows progress.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Bytes read from disk or stdin (before decompression).
    pub bytes: AtomicU64,
    /// STIX objects that are not indicators (relationships, identities, …), passed over.
    pub ignored_objects: AtomicU64,
}

/// Why an input could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {name}: {source}")]
pub struct InputError {
    pub name: String,
    #[source]
    pub source: io::Error,
}

/// Reads one input in `format`, calling `emit` for every item. Returns the format actually used.
/// Errors only when the input cannot be opened; problems inside it become rejections.
pub fn read_input(
    input: &InputSource,
    format: InputFormat,
    counters: &ReadCounters,
    emit: &mut dyn FnMut(Item),
) -> Result<InputFormat, InputError> {
    let name = input.display_name();
    let fail = |source| InputError {
        name: name.clone(),
        source,
    };
    let raw: Box<dyn Read + Send> = match (&input.path, &input.upload) {
        (Some(path), _) if path.is_dir() => {
            return Err(fail(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a folder; name the files in it instead",
            )));
        }
        (Some(path), _) => Box::new(File::open(path).map_err(fail)?),
        (None, Some(upload)) => Box::new(io::Cursor::new(Arc::clone(&upload.bytes))),
        (None, None) => Box::new(io::stdin()),
    };
    let mut reader = decoded(
        open_decompressed(CountingReader {
            inner: raw,
            counters,
        })
        .map_err(fail)?,
    )
    .map_err(fail)?;
    let format = match format {
        InputFormat::Auto => {
            let head = reader.fill_buf().map_err(fail)?;
            let named = input
                .path
                .clone()
                .or_else(|| input.upload.as_ref().map(|u| PathBuf::from(&u.name)));
            detect_format(named.as_deref(), head)
        }
        chosen => chosen,
    };
    let head = reader.fill_buf().map_err(fail)?;
    if let Some(problem) = not_text(head) {
        return Err(fail(io::Error::new(io::ErrorKind::InvalidData, problem)));
    }
    let file: Arc<str> = Arc::from(name.as_str());
    match format {
        InputFormat::Lines | InputFormat::Auto => lines::read(&mut reader, &file, false, emit),
        InputFormat::Text => lines::read(&mut reader, &file, true, emit),
        InputFormat::Csv => csv_rows::read(reader, &file, emit),
        InputFormat::Jsonl => json::read_lines(&mut reader, &file, emit),
        InputFormat::Stix => json::read_bundle(reader, &file, counters, emit),
    }
    Ok(format)
}

/// UTF-16 text with a byte-order mark (what Windows tools write: PowerShell's `Out-File`, Excel's
/// "Unicode text") decoded to UTF-8 as it streams; anything else as it is.
fn decoded<'a>(mut reader: Box<dyn BufRead + 'a>) -> io::Result<Box<dyn BufRead + 'a>> {
    let head = reader.fill_buf()?;
    if head.starts_with(b"\xff\xfe") || head.starts_with(b"\xfe\xff") {
        let decoder = encoding_rs_io::DecodeReaderBytesBuilder::new()
            .bom_sniffing(true)
            .build(reader);
        return Ok(Box::new(BufReader::with_capacity(BUFFER_SIZE, decoder)));
    }
    Ok(reader)
}

/// Why an input's first bytes (after decompression and decoding) are not text to read
/// indicators from: a NUL byte means binary data (an executable, an archive, an image), whose
/// printable runs would otherwise parse as made-up URLs and domains, or UTF-16 text without a
/// byte-order mark, whose encoding cannot be told for sure.
fn not_text(head: &[u8]) -> Option<String> {
    let offset = head.iter().position(|b| *b == 0)?;
    if looks_like_bomless_utf16(head) {
        return Some(
            "UTF-16 text without a byte-order mark, which cannot be told from binary data: save it as UTF-8, or as UTF-16 with a byte-order mark (\"Unicode\" in Windows tools)".into(),
        );
    }
    Some(format!(
        "binary data (a NUL byte at offset {offset}), not text: nothing is read from it"
    ))
}

/// Mostly ASCII characters with a NUL byte beside each (UTF-16 of Latin text, either byte order).
fn looks_like_bomless_utf16(head: &[u8]) -> bool {
    let pairs: Vec<&[u8]> = head.chunks_exact(2).take(512).collect();
    if pairs.len() < 4 {
        return false;
    }
    let ascii_beside_nul = |pair: &&[u8]| {
        (pair[0] == 0 && pair[1].is_ascii() && pair[1] != 0)
            || (pair[1] == 0 && pair[0].is_ascii() && pair[0] != 0)
    };
    pairs.iter().filter(|p| ascii_beside_nul(p)).count() * 10 >= pairs.len() * 9
}

/// Wraps the raw input in a gzip decoder when it starts with the gzip magic number.
fn open_decompressed<'a>(raw: CountingReader<'a>) -> io::Result<Box<dyn BufRead + 'a>> {
    let mut buffered = BufReader::with_capacity(BUFFER_SIZE, raw);
    let head = buffered.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            BUFFER_SIZE,
            MultiGzDecoder::new(buffered),
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

struct CountingReader<'a> {
    inner: Box<dyn Read + Send>,
    counters: &'a ReadCounters,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Calls `each` with the position and text of every line of `reader`. Lines longer than
/// [`MAX_LINE_BYTES`] and read errors become rejections; a read error ends the input.
pub(crate) fn for_each_line(
    reader: &mut dyn BufRead,
    file: &Arc<str>,
    emit: &mut dyn FnMut(Item),
    mut each: impl FnMut(Position, &str, &mut dyn FnMut(Item)),
) {
    let mut buf = Vec::with_capacity(512);
    let mut line_number = 0u64;
    loop {
        let position = |line| Position {
            file: Arc::clone(file),
            line,
            object: None,
        };
        let (consumed, overlong) = match read_line_bounded(reader, &mut buf) {
            Ok(read) => read,
            Err(e) => {
                let reason = format!("read error, rest of input skipped: {e}");
                emit(Item::Rejected(Rejection {
                    position: position(line_number + 1),
                    input: String::new(),
                    reason,
                }));
                return;
            }
        };
        if consumed == 0 {
            return;
        }
        line_number += 1;
        if overlong {
            let reason = format!("line longer than {MAX_LINE_BYTES} bytes");
            emit(Item::Rejected(Rejection {
                position: position(line_number),
                input: String::new(),
                reason,
            }));
            continue;
        }
        if buf.contains(&0) {
            // Text that turns binary (a log with an attachment, a file cut off mid-write): what
            // came before stays, the binary part is not read as text.
            emit(Item::Rejected(Rejection {
                position: position(line_number),
                input: String::new(),
                reason: "binary data (a NUL byte) from here on: the rest of this input is not read"
                    .into(),
            }));
            return;
        }
        if buf.iter().any(|b| is_binary_control(*b)) {
            emit(Item::Rejected(Rejection {
                position: position(line_number),
                input: String::new(),
                reason: "binary data (control bytes), not text".into(),
            }));
            continue;
        }
        each(position(line_number), &line_text(&buf), emit);
    }
}

/// Control bytes that text does not hold: C0 controls but tab, line and page breaks, and the
/// escape of terminal colours.
fn is_binary_control(byte: u8) -> bool {
    matches!(byte, 0x01..=0x08 | 0x0e..=0x1a | 0x1c..=0x1f)
}

/// Reads one line (up to `\n`) into `buf`, at most [`MAX_LINE_BYTES`]. Returns the number of
/// bytes consumed (0 at end of input) and whether the line was cut (the rest is skipped).
fn read_line_bounded(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    buf.clear();
    let mut consumed = 0;
    let mut overlong = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok((consumed, overlong));
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let take = chunk.len();
        if buf.len() + take <= MAX_LINE_BYTES {
            buf.extend_from_slice(chunk);
        } else {
            overlong = true;
        }
        reader.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, overlong));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

/// Turns a raw line into text: strips the line ending and a leading byte-order mark.
fn line_text(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
    String::from_utf8_lossy(raw)
}

/// Field names (compared lower-case, without `_`, `-` or spaces) that hold the indicator in CSV
/// headers and JSON objects, most specific first.
pub(crate) const INDICATOR_FIELDS: &[&str] = &[
    "indicator",
    "ioc",
    "observable",
    "value",
    "ip",
    "ipaddress",
    "ipaddr",
    "ipv4",
    "ipv6",
    "address",
    "srcip",
    "dstip",
    "domain",
    "domainname",
    "hostname",
    "host",
    "fqdn",
    "url",
    "uri",
    "link",
    "email",
];

/// Field and column names (normalized) that state an indicator's TLP; with several, the most
/// restrictive holds.
pub(crate) const TLP_FIELDS: &[&str] = &["tlp", "tlplevel", "marking", "tlpmarking"];

pub(crate) fn normalize_field_name(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Parses one value into a candidate or a rejection.
pub(crate) fn candidate_or_rejection(
    position: Position,
    input: &str,
    tlp: Option<Tlp>,
    context: Option<Map<String, Value>>,
) -> Item {
    match Observable::parse(input) {
        Ok(observable) => Item::Candidate(Candidate {
            position,
            input: input.to_owned(),
            observable,
            tlp,
            context,
        }),
        Err(e) => Item::Rejected(Rejection {
            position,
            input: input.to_owned(),
            reason: e.to_string(),
        }),
    }
}
