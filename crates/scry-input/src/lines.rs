//! Line-oriented input: one indicator per line, or free text to extract indicators from.

use std::io::BufRead;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Candidate, Item, candidate_or_rejection, for_each_line};

/// Reads `reader` line by line. In list mode each line holds one indicator (what follows the first
/// word is its comment); in free-text mode every indicator in every line is taken and prose is not
/// an error.
pub(super) fn read(
    reader: &mut dyn BufRead,
    file: &Arc<str>,
    free_text: bool,
    emit: &mut dyn FnMut(Item),
) {
    for_each_line(reader, file, emit, |position, text, emit| {
        if free_text {
            for found in scry_core::extract::extract(text) {
                let candidate = Candidate {
                    position: position.clone(),
                    input: found.token,
                    observable: found.observable,
                    tlp: None,
                    context: None,
                };
                emit(Item::Candidate(candidate));
            }
            return;
        }
        let line = text.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let (value, comment) = match line.split_once(char::is_whitespace) {
            Some((value, rest)) => (value, rest.trim().trim_start_matches('#').trim()),
            None => (line, ""),
        };
        let context = (!comment.is_empty())
            .then(|| Map::from_iter([("comment".to_owned(), Value::String(comment.to_owned()))]));
        emit(candidate_or_rejection(position, value, None, context));
    });
}
