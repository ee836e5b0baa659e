//! Every threat-feed format on any text: entries with 1-based lines, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scry_offline::feeds::{CsvMapping, FeedFormat, parse};

fuzz_target!(|bytes: &[u8]| {
    let Some((pick, body)) = bytes.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    let format = match pick % 7 {
        0 => FeedFormat::List,
        1 => FeedFormat::Netset,
        2 => FeedFormat::TorExits,
        3 => FeedFormat::AbuseCh,
        4 => FeedFormat::CriminalIpC2,
        5 => FeedFormat::Csv(CsvMapping {
            indicator: "ioc".into(),
            tags: vec!["family".into()],
            confidence: Some("confidence".into()),
            header: true,
            delimiter: b',',
        }),
        _ => FeedFormat::Csv(CsvMapping {
            indicator: "2".into(),
            tags: Vec::new(),
            confidence: None,
            header: false,
            delimiter: b';',
        }),
    };
    let parsed = parse(&format, &text);
    for entry in &parsed.entries {
        assert!(entry.line >= 1, "line 0 in {format:?}");
    }
});
