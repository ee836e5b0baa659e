//! Rendering records for people (an aligned, coloured table) and for programs (JSON, JSON Lines,
//! CSV). Records arrive already in priority order.

use std::io::{self, Write};

use anstyle::{AnsiColor, Effects, Style};
use scry_core::exposure::Exposure;
use scry_core::{Severity, SkipReason, Tlp};
use scry_engine::record::ReasonRecord;
use scry_engine::{Record, Status};

use crate::cli::OutputFormat;

/// Longest indicator shown in full in a table; longer ones are cut with an ellipsis.
const MAX_INDICATOR_COLUMN: usize = 60;

pub(crate) struct TableStyle {
    pub(crate) color: bool,
    pub(crate) widest_indicator: usize,
    /// The terminal's width: a row's details wrap between words to keep within it. `None`
    /// (output to a file or a pipe) keeps each row on one line.
    pub(crate) width: Option<usize>,
}

/// The least room the details get beside the other columns; with less, they go on lines of
/// their own under the row.
const MIN_DETAILS_COLUMN: usize = 40;

/// How far details on lines of their own are indented.
const DETAILS_INDENT: usize = 6;

/// The details of a row laid out for `width`: `(indent, lines)` — beside the other columns
/// (indented to the DETAILS column) when there is room for them and their longest word, else on
/// lines of their own. Words are never cut (a URL stays whole, even past the width).
fn wrapped_details(details: &str, column: usize, width: usize) -> (usize, Vec<String>) {
    let longest = details
        .split(' ')
        .map(textwrap::core::display_width)
        .max()
        .unwrap_or(0);
    let beside = width.saturating_sub(column);
    let (indent, room) = if beside >= MIN_DETAILS_COLUMN && longest <= beside {
        (column, beside)
    } else {
        (DETAILS_INDENT, width.saturating_sub(DETAILS_INDENT).max(20))
    };
    let options = textwrap::Options::new(room)
        .break_words(false)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    let lines = textwrap::wrap(details, options)
        .into_iter()
        .map(|line| line.into_owned())
        .collect();
    (indent, lines)
}

/// Writes every record in `format`. Rejected records are left out of tables (they were reported
/// on stderr as they were found) and kept in the machine-readable formats.
pub(crate) fn write_records(
    format: OutputFormat,
    records: impl Iterator<Item = io::Result<Record>>,
    out: &mut dyn Write,
    style: &TableStyle,
) -> io::Result<()> {
    match format {
        OutputFormat::Table => write_table(records, out, style),
        OutputFormat::Json => write_json(records, out),
        OutputFormat::Jsonl => {
            for record in records {
                serde_json::to_writer(&mut *out, &scry_engine::view::record_json(&record?))?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        OutputFormat::Csv => write_csv(records, out),
    }
}

fn write_json(
    records: impl Iterator<Item = io::Result<Record>>,
    out: &mut dyn Write,
) -> io::Result<()> {
    out.write_all(b"[")?;
    let mut first = true;
    for record in records {
        let pretty = serde_json::to_string_pretty(&scry_engine::view::record_json(&record?))?;
        out.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        for (i, line) in pretty.lines().enumerate() {
            if i > 0 {
                out.write_all(b"\n")?;
            }
            write!(out, "  {line}")?;
        }
    }
    out.write_all(if first { b"]\n" } else { b"\n]\n" })
}

const CSV_HEADER: [&str; 15] = [
    "position",
    "input",
    "indicator",
    "type",
    "status",
    "skip_reason",
    "error",
    "priority",
    "severity",
    "reasons",
    "tags",
    "tlp",
    "stix_id",
    "report_url",
    "sources",
];

fn write_csv(
    records: impl Iterator<Item = io::Result<Record>>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_HEADER)?;
    for record in records {
        let r = record?;
        let reasons = reasons_text(&r.reasons);
        let sources = serde_json::to_string(&r.sources)?;
        writer.write_record([
            r.position.as_str(),
            r.input.as_str(),
            r.indicator.as_deref().unwrap_or(""),
            r.kind.as_deref().unwrap_or(""),
            r.status.as_str(),
            r.skip_reason.map_or("", SkipReason::as_str),
            r.error.as_deref().unwrap_or(""),
            &r.priority.to_string(),
            r.severity.as_str(),
            &reasons,
            &r.tags.join(";"),
            r.tlp.map_or("", Tlp::as_str),
            r.stix_id.as_deref().unwrap_or(""),
            r.report_url().unwrap_or(""),
            &sources,
        ])?;
    }
    writer.flush()
}

/// Reasons as one CSV cell: `source:signal=value(+points); …`.
pub(crate) fn reasons_text(reasons: &[ReasonRecord]) -> String {
    reasons
        .iter()
        .map(|x| format!("{}:{}={}({:+})", x.source, x.signal, x.value, x.points))
        .collect::<Vec<_>>()
        .join("; ")
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Critical => Style::new()
            .fg_color(Some(AnsiColor::BrightRed.into()))
            .effects(Effects::BOLD),
        Severity::High => Style::new().fg_color(Some(AnsiColor::Red.into())),
        Severity::Medium => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        Severity::Low => Style::new().fg_color(Some(AnsiColor::Cyan.into())),
        Severity::Info => Style::new().effects(Effects::DIMMED),
    }
}

fn status_style(status: Status) -> Style {
    match status {
        Status::Enriched | Status::Cached => Style::new().fg_color(Some(AnsiColor::Green.into())),
        Status::Skipped => Style::new().effects(Effects::DIMMED),
        Status::Rejected | Status::Failed => Style::new().fg_color(Some(AnsiColor::Red.into())),
    }
}

/// `text` fit for a terminal: control characters (escape sequences from a vendor's answer or a
/// feed, a carriage return, a bell) are written as escapes (`\u{1b}`), so they cannot move the
/// cursor, retitle the window or hide what is printed. Line breaks and tabs stay.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Pads (or cuts) `text` to `width` characters, then colours it.
fn cell(text: &str, width: usize, style: Style, color: bool) -> String {
    let text = printable(text);
    let count = text.chars().count();
    let fitted = if count > width {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        format!("{text}{}", " ".repeat(width - count))
    };
    if color {
        format!("{}{fitted}{}", style.render(), style.render_reset())
    } else {
        fitted
    }
}

fn write_table(
    records: impl Iterator<Item = io::Result<Record>>,
    out: &mut dyn Write,
    style: &TableStyle,
) -> io::Result<()> {
    let indicator_width = style
        .widest_indicator
        .clamp("INDICATOR".len(), MAX_INDICATOR_COLUMN);
    let header_style = Style::new().effects(Effects::BOLD);
    let plain = Style::new();
    writeln!(
        out,
        "{} {} {} {} {} {}",
        cell("PRI", 3, header_style, style.color),
        cell("SEVERITY", 8, header_style, style.color),
        cell("TYPE", 17, header_style, style.color),
        cell("INDICATOR", indicator_width, header_style, style.color),
        cell("STATUS", 8, header_style, style.color),
        if style.color {
            format!(
                "{}DETAILS{}",
                header_style.render(),
                header_style.render_reset()
            )
        } else {
            "DETAILS".into()
        },
    )?;
    for record in records {
        let r = record?;
        if r.status == Status::Rejected && r.indicator.is_none() {
            continue;
        }
        let head = format!(
            "{:>3} {} {} {} {} ",
            r.priority,
            cell(
                r.severity.as_str(),
                8,
                severity_style(r.severity),
                style.color
            ),
            cell(r.kind.as_deref().unwrap_or("-"), 17, plain, false),
            cell(
                r.indicator.as_deref().unwrap_or(&r.input),
                indicator_width,
                plain,
                false
            ),
            cell(r.status.as_str(), 8, status_style(r.status), style.color),
        );
        let details = printable(&details(&r)).into_owned();
        let line = format!("{head}{details}");
        let line = line.trim_end();
        match style.width {
            Some(width) if textwrap::core::display_width(line) > width && !details.is_empty() => {
                // Where DETAILS starts: the five columns before it and their separators.
                let column = 3 + 1 + 8 + 1 + 17 + 1 + indicator_width + 1 + 8 + 1;
                let (indent, lines) = wrapped_details(&details, column, width);
                let mut lines = lines.into_iter();
                if indent == column {
                    writeln!(out, "{head}{}", lines.next().unwrap_or_default())?;
                } else {
                    writeln!(out, "{}", head.trim_end())?;
                }
                for rest in lines {
                    writeln!(out, "{}{rest}", " ".repeat(indent))?;
                }
            }
            _ => writeln!(out, "{line}")?,
        }
    }
    Ok(())
}

/// `AS13335 Cloudflare, Inc. AU` from a source's `asn`, `as_name` and `country`; empty when it
/// says none of them.
fn network(exposure: &Exposure) -> String {
    [
        exposure.asn.map(|a| format!("AS{a}")),
        exposure.as_name.clone(),
        exposure.country.clone(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

/// The one-line explanation shown in a table: why it was skipped or failed, else its strongest
/// reasons, where it lives and what it exposes, tags and report link, else what classification says.
fn details(r: &Record) -> String {
    match r.status {
        Status::Skipped => {
            return r
                .skip_reason
                .map_or_else(String::new, |reason| reason.as_str().to_owned());
        }
        Status::Failed | Status::Rejected => return r.error.clone().unwrap_or_default(),
        Status::Enriched | Status::Cached => {}
    }
    let mut parts: Vec<String> = r
        .reasons
        .iter()
        .filter(|x| x.points > 0)
        .take(3)
        .map(|x| format!("{} {} ({:+})", x.signal, x.value, x.points))
        .collect();
    // Criminal IP's own answer, else what its offline database says.
    let criminalip = Exposure::preferred(|name| r.sources.get(name).map(|s| &s.data))
        .map(|(_, exposure)| exposure);
    if let Some(exposure) = &criminalip
        && parts.is_empty()
        && let (Some(inbound), Some(outbound)) = (&exposure.inbound, &exposure.outbound)
    {
        parts.push(format!("inbound {inbound}, outbound {outbound}"));
    }
    // Where it lives: what Criminal IP says, else the offline network data.
    let geo = r.sources.get("geo").map(|s| Exposure::read(&s.data));
    if let Some(network) = [criminalip.as_ref(), geo.as_ref()]
        .into_iter()
        .flatten()
        .map(network)
        .find(|n| !n.is_empty())
    {
        parts.push(network);
    }
    if let Some(exposure) = &criminalip {
        let ports: Vec<String> = exposure
            .services
            .iter()
            .filter_map(|s| {
                let port = s.port?;
                Some(match &s.protocol {
                    Some(protocol) => format!("{port}/{}", protocol.to_ascii_lowercase()),
                    None => port.to_string(),
                })
            })
            .take(6)
            .collect();
        if !ports.is_empty() {
            parts.push(format!("ports {}", ports.join(" ")));
        }
    }
    if parts.is_empty()
        && let Some(classify) = r.sources.get("classify")
    {
        let data = &classify.data;
        let host = data.get("host_details").unwrap_or(data);
        if let Some(registrable) = host.get("registrable_domain").and_then(|v| v.as_str()) {
            parts.push(format!("registrable {registrable}"));
        }
        if let Some(unicode) = host.get("unicode").and_then(|v| v.as_str()) {
            parts.push(format!("unicode {unicode}"));
        }
        if parts.is_empty()
            && let Some(class) = data.get("class").and_then(|v| v.as_str())
        {
            parts.push(format!("{class} address"));
        }
    }
    if !r.tags.is_empty() {
        parts.push(format!("[{}]", r.tags.join(", ")));
    }
    if let Some(url) = r.report_url() {
        parts.push(url.to_owned());
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vendor's answer with terminal escape sequences in it is shown, not obeyed.
    #[test]
    fn escape_sequences_in_answers_are_shown_not_obeyed() {
        let record: Record = serde_json::from_value(serde_json::json!({
            "input": "45.155.205.233", "indicator": "45.155.205.233", "type": "ipv4-addr",
            "status": "enriched", "skip_reason": null, "error": null, "priority": 90,
            "severity": "critical", "tags": [], "stix_id": "ipv4-addr--x", "tlp": null,
            "position": "-:1", "context": null,
            "reasons": [{"source": "feeds", "signal": "listed", "value": "\u{1b}[2J\u{1b}]0;owned\u{7}", "points": 50}],
            "sources": {"criminalip": {"status": "ok", "data": {
                "asn": 9009, "as_name": "Evil\u{1b}[8mHidden\r", "country": "RO"}}},
        }))
        .expect("record");
        let mut out = Vec::new();
        let style = TableStyle {
            color: true,
            widest_indicator: 14,
            width: None,
        };
        write_table(std::iter::once(Ok(record)), &mut out, &style).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        let row = text.lines().nth(1).expect("a row");
        assert!(row.contains("AS9009"), "{row:?}");
        assert!(
            row.contains("\\u{1b}[8mHidden\\r"),
            "shown escaped: {row:?}"
        );
        for injected in ["\u{1b}[2J", "\u{1b}]0;", "\u{1b}[8m", "\u{7}", "\r"] {
            assert!(!row.contains(injected), "{injected:?} obeyed in {row:?}");
        }
    }
}
