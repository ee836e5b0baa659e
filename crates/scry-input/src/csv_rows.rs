//! CSV input with a header row. The indicator column is found by its name, or failing that by
//! which column's first rows parse as indicators; the other columns travel along as context, and a
//! `tlp` column sets the row's TLP.

use std::io::BufRead;
use std::sync::Arc;

use scry_core::{Observable, Tlp};
use serde_json::{Map, Value};

use super::{
    INDICATOR_FIELDS, Item, Position, Rejection, candidate_or_rejection, normalize_field_name,
};

/// Rows examined to find the indicator column by content.
const SNIFF_ROWS: usize = 50;

pub(super) fn read(mut reader: Box<dyn BufRead + '_>, file: &Arc<str>, emit: &mut dyn FnMut(Item)) {
    let position = |line| Position {
        file: Arc::clone(file),
        line,
        object: None,
    };
    let delimiter = match reader.fill_buf() {
        Ok(head) => sniff_delimiter(head),
        Err(_) => b',',
    };
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .comment(Some(b'#'))
        .from_reader(reader);
    let headers = match csv.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            emit(Item::Rejected(Rejection {
                position: position(1),
                input: String::new(),
                reason: format!("unreadable CSV header: {e}"),
            }));
            return;
        }
    };
    let names: Vec<String> = headers.iter().map(normalize_field_name).collect();
    let tlp_column = names
        .iter()
        .position(|n| super::TLP_FIELDS.contains(&n.as_str()));
    let by_name = INDICATOR_FIELDS
        .iter()
        .find_map(|field| names.iter().position(|n| n == field));

    let mut records = csv.records();
    let mut pending = Vec::new();
    let column = match by_name {
        Some(column) => column,
        None => {
            // Look at the first rows and take the column where most values are indicators.
            for record in records.by_ref().take(SNIFF_ROWS) {
                pending.push(record);
            }
            let mut hits = vec![0usize; headers.len()];
            for record in pending.iter().flatten() {
                for (i, field) in record.iter().enumerate().take(hits.len()) {
                    if Observable::parse(field).is_ok() {
                        hits[i] += 1;
                    }
                }
            }
            match hits
                .iter()
                .enumerate()
                .max_by_key(|(i, h)| (**h, std::cmp::Reverse(*i)))
            {
                Some((column, count)) if *count > 0 => column,
                _ => {
                    let reason = format!(
                        "no indicator column: no header is one of {} and no column holds indicators",
                        INDICATOR_FIELDS.join(", ")
                    );
                    emit(Item::Rejected(Rejection {
                        position: position(1),
                        input: headers.iter().collect::<Vec<_>>().join(","),
                        reason,
                    }));
                    return;
                }
            }
        }
    };

    for record in pending.into_iter().chain(records) {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                emit(Item::Rejected(Rejection {
                    position: position(line),
                    input: String::new(),
                    reason: format!("malformed CSV row: {e}"),
                }));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return;
                }
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let Some(value) = record.get(column).map(str::trim).filter(|v| !v.is_empty()) else {
            let reason = format!("no value in the indicator column {:?}", &headers[column]);
            emit(Item::Rejected(Rejection {
                position: position(line),
                input: record.iter().collect::<Vec<_>>().join(","),
                reason,
            }));
            continue;
        };
        let mut tlp = None;
        if let Some(raw) = tlp_column
            .and_then(|c| record.get(c))
            .filter(|t| !t.trim().is_empty())
        {
            match raw.parse::<Tlp>() {
                Ok(level) => tlp = Some(level),
                Err(e) => {
                    emit(Item::Rejected(Rejection {
                        position: position(line),
                        input: value.to_owned(),
                        reason: e.to_string(),
                    }));
                    continue;
                }
            }
        }
        let mut context = Map::new();
        for (i, field) in record.iter().enumerate() {
            if i != column && Some(i) != tlp_column && !field.is_empty() {
                let key = headers
                    .get(i)
                    .map_or_else(|| format!("column{}", i + 1), str::to_owned);
                context.insert(key, Value::String(field.to_owned()));
            }
        }
        emit(candidate_or_rejection(
            position(line),
            value,
            tlp,
            (!context.is_empty()).then_some(context),
        ));
    }
}

/// The separator the header line uses most: comma, tab or semicolon.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let first_line = head
        .split(|b| *b == b'\n')
        .find(|l| !l.starts_with(b"#"))
        .unwrap_or(head);
    let count = |d: u8| first_line.iter().filter(|b| **b == d).count();
    // On a tie (one column: no separator at all) the comma wins.
    [b';', b'\t', b',']
        .into_iter()
        .max_by_key(|d| count(*d))
        .unwrap_or(b',')
}
