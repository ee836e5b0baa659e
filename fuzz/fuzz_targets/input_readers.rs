//! Every input reader (lines, text, CSV, JSON Lines, STIX bundle, and format detection) on any
//! bytes, gzip or not: never a panic; problems are rejections with positions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scry_input::{InputFormat, InputSource, Item, ReadCounters, read_input};

const FORMATS: [InputFormat; 6] = [
    InputFormat::Auto,
    InputFormat::Lines,
    InputFormat::Text,
    InputFormat::Csv,
    InputFormat::Jsonl,
    InputFormat::Stix,
];

fuzz_target!(|bytes: &[u8]| {
    // The first byte picks the format, so each reader gets the corpus's mutations.
    let Some((pick, body)) = bytes.split_first() else {
        return;
    };
    let format = FORMATS[usize::from(*pick) % FORMATS.len()];
    let input = InputSource::upload("fuzz", body.to_vec());
    let counters = ReadCounters::default();
    let _ = read_input(&input, format, &counters, &mut |item| {
        if let Item::Rejected(rejection) = item {
            assert!(!rejection.reason.is_empty());
        }
    });
});
