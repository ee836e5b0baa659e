//! Line-oriented input: one indicator per line, or free text to extract indicators from.

use std::io::BufRead;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    Candidate, Item, Position, Rejection, candidate_or_rejection, line_text, read_line_bounded,
};

/// Reads `reader` line by line. In list mode each line holds one indicator (what follows the first
/// word is its comment); in free-text mode every indicator in every line is taken and prose is not
/// an error.
pub(super) fn read(
    reader: &mut dyn BufRead,
    file: &Arc<str>,
    free_text: bool,
    emit: &mut dyn FnMut(Item),
) {
    let mut buf = Vec::with_capacity(256);
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
                emit(Item::Rejected(Rejection {
                    position: position(line_number + 1),
                    input: String::new(),
                    reason: format!("read error, rest of input skipped: {e}"),
                }));
                return;
            }
        };
        if consumed == 0 {
            return;
        }
        line_number += 1;
        if overlong {
            let reason = format!("line longer than {} bytes", super::MAX_LINE_BYTES);
            emit(Item::Rejected(Rejection {
                position: position(line_number),
                input: String::new(),
                reason,
            }));
            continue;
        }
        let text = line_text(&buf);
        if free_text {
            for found in scry_core::extract::extract(&text) {
                emit(Item::Candidate(Candidate {
                    position: position(line_number),
                    input: found.token,
                    observable: found.observable,
                    tlp: None,
                    context: None,
                }));
            }
            continue;
        }
        let line = text.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (value, comment) = match line.split_once(char::is_whitespace) {
            Some((value, rest)) => (value, rest.trim().trim_start_matches('#').trim()),
            None => (line, ""),
        };
        let context = (!comment.is_empty()).then(|| {
            let mut map = Map::new();
            map.insert("comment".into(), Value::String(comment.to_owned()));
            map
        });
        emit(candidate_or_rejection(
            position(line_number),
            value,
            None,
            context,
        ));
    }
}
