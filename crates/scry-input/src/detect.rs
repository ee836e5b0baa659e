//! Choosing a reader when the user did not: by file name first, then by the first 64 KiB.

use std::path::Path;

use super::InputFormat;

/// Decides the format of an input from its name (ignoring a `.gz` suffix) and its decompressed head.
pub fn detect_format(path: Option<&Path>, head: &[u8]) -> InputFormat {
    if let Some(format) = path.and_then(format_from_name) {
        return format;
    }
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}');
    // A truncated last line would mislead the sniffing below.
    let complete = match text.rfind('\n') {
        Some(end) if head.len() >= super::BUFFER_SIZE => &text[..end],
        _ => text,
    };
    let trimmed = complete.trim_start();
    if trimmed.starts_with('{') {
        let first_line = trimmed.lines().next().unwrap_or("");
        return match serde_json::from_str::<serde_json::Value>(first_line) {
            Ok(value) if value.get("type").and_then(|t| t.as_str()) != Some("bundle") => {
                InputFormat::Jsonl
            }
            _ => InputFormat::Stix,
        };
    }
    let lines: Vec<&str> = complete
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(200)
        .collect();
    if lines.is_empty() {
        return InputFormat::Lines;
    }
    if lines
        .iter()
        .all(|l| l.starts_with('"') || l.starts_with('{'))
        && lines[0].starts_with('"')
    {
        return InputFormat::Jsonl;
    }
    if looks_like_csv(&lines) {
        return InputFormat::Csv;
    }
    let single_tokens = lines.iter().filter(|l| is_single_token(l)).count();
    if single_tokens * 10 >= lines.len() * 8 {
        InputFormat::Lines
    } else {
        InputFormat::Text
    }
}

fn format_from_name(path: &Path) -> Option<InputFormat> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let extension = name.rsplit_once('.').map(|(_, e)| e)?;
    match extension {
        "csv" | "tsv" => Some(InputFormat::Csv),
        "jsonl" | "ndjson" => Some(InputFormat::Jsonl),
        "eml" | "md" | "html" | "htm" => Some(InputFormat::Text),
        // `.json` may be a bundle or JSON Lines; `.txt` may be a list or prose: look inside.
        _ => None,
    }
}

/// A line is a single token when nothing but an inline comment follows its first word.
fn is_single_token(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next();
    words.next().is_none_or(|w| w.starts_with('#'))
}

/// CSV when the first line has a separator and the lines agree on how many fields they have.
fn looks_like_csv(lines: &[&str]) -> bool {
    let Some(separator) = [',', '\t', ';']
        .into_iter()
        .max_by_key(|s| lines[0].matches(*s).count())
    else {
        return false;
    };
    let fields = lines[0].matches(separator).count();
    if fields == 0 || lines.len() < 2 {
        return false;
    }
    let agreeing = lines
        .iter()
        .filter(|l| l.matches(separator).count() == fields)
        .count();
    agreeing * 10 >= lines.len() * 9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(text: &str) -> InputFormat {
        detect_format(None, text.as_bytes())
    }

    #[test]
    fn sniffs_each_format() {
        assert_eq!(
            detect("8.8.8.8\n# comment\nevil.com\nhxxp://x[.]com/a  # seen\n"),
            InputFormat::Lines
        );
        assert_eq!(
            detect("Hello team,\nplease block 1.2.3.4 and evil.com today.\nThanks, Bob\n"),
            InputFormat::Text
        );
        assert_eq!(
            detect("indicator,type,tlp\n1.2.3.4,ip,green\nevil.com,domain,amber\n"),
            InputFormat::Csv
        );
        assert_eq!(
            detect("{\"indicator\":\"1.2.3.4\"}\n{\"indicator\":\"evil.com\"}\n"),
            InputFormat::Jsonl
        );
        assert_eq!(detect("\"1.2.3.4\"\n\"evil.com\"\n"), InputFormat::Jsonl);
        assert_eq!(
            detect("{\n  \"type\": \"bundle\",\n  \"objects\": []\n}\n"),
            InputFormat::Stix
        );
        assert_eq!(
            detect("{\"type\":\"bundle\",\"id\":\"bundle--1\",\"objects\":[]}"),
            InputFormat::Stix
        );
        assert_eq!(detect(""), InputFormat::Lines);
    }

    #[test]
    fn names_win_over_content() {
        assert_eq!(
            detect_format(Some(Path::new("feed.csv.gz")), b"1.2.3.4\n"),
            InputFormat::Csv
        );
        assert_eq!(
            detect_format(Some(Path::new("x.ndjson")), b""),
            InputFormat::Jsonl
        );
        assert_eq!(
            detect_format(Some(Path::new("bundle.json")), b"{\"type\":\"bundle\"}"),
            InputFormat::Stix
        );
    }
}
