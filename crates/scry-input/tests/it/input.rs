//! Every input format, read from real files, with malformed pieces mixed in (invariant 7).

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use scry_core::Tlp;
use scry_input::{InputFormat, InputSource, Item, ReadCounters, read_input};

struct Read {
    format: InputFormat,
    /// (position, normalized value, tlp)
    found: Vec<(String, String, Option<Tlp>)>,
    /// (position, reason)
    rejected: Vec<(String, String)>,
    contexts: Vec<Option<serde_json::Map<String, serde_json::Value>>>,
    counters: ReadCounters,
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write fixture");
    path
}

fn read(path: &Path, format: InputFormat) -> Read {
    let counters = ReadCounters::default();
    let mut found = Vec::new();
    let mut rejected = Vec::new();
    let mut contexts = Vec::new();
    let input = InputSource::file(path);
    let used = read_input(&input, format, &counters, &mut |item| match item {
        Item::Candidate(c) => {
            found.push((c.position.to_string(), c.observable.value(), c.tlp));
            contexts.push(c.context);
        }
        Item::Rejected(r) => rejected.push((r.position.to_string(), r.reason)),
    })
    .expect("input opens");
    Read {
        format: used,
        found,
        rejected,
        contexts,
        counters,
    }
}

fn values(r: &Read) -> Vec<&str> {
    r.found.iter().map(|(_, v, _)| v.as_str()).collect()
}

#[test]
fn plain_lists_with_comments_blank_lines_and_junk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "iocs.txt",
        "\u{feff}# header comment\n\n8.8.8.8\r\nhxxp://evil[.]com/a  # from the alert\n   \nnot_an_ioc!\n1.2.3.4 seen twice\n999.1.1.1\n".as_bytes(),
    );
    let r = read(&path, InputFormat::Auto);
    assert_eq!(r.format, InputFormat::Lines);
    assert_eq!(values(&r), ["8.8.8.8", "http://evil.com/a", "1.2.3.4"]);
    let name = path.display().to_string();
    assert_eq!(r.found[1].0, format!("{name}:4"));
    assert_eq!(
        r.contexts[1].as_ref().expect("comment kept")["comment"],
        "from the alert"
    );
    assert_eq!(
        r.contexts[2].as_ref().expect("comment kept")["comment"],
        "seen twice"
    );
    let rejected: Vec<&str> = r.rejected.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(rejected, [format!("{name}:6"), format!("{name}:8")]);
    assert!(
        r.rejected[0].1.contains("not a recognized indicator"),
        "{}",
        r.rejected[0].1
    );
}

#[test]
fn free_text_yields_every_indicator_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mail = "From: soc@example.org\nSubject: phishing\n\nHi all,\nthe kit lives at hxxps://secure-login[.]top/owa and\nresolves to 203.0.113.9 (test) or 45.155.205[.]233.\nRegards\n";
    let path = write(dir.path(), "report.eml", mail.as_bytes());
    let r = read(&path, InputFormat::Auto);
    assert_eq!(r.format, InputFormat::Text);
    assert_eq!(
        values(&r),
        [
            "soc@example.org",
            "https://secure-login.top/owa",
            "203.0.113.9",
            "45.155.205.233"
        ]
    );
    assert!(r.found[3].0.ends_with(":6"), "{}", r.found[3].0);
    assert!(
        r.rejected.is_empty(),
        "prose is not an error: {:?}",
        r.rejected
    );
}

#[test]
fn csv_by_header_name_with_tlp_and_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "first_seen,Indicator,TLP,note\n2026-01-02,8.8.8.8,green,resolver\n2026-01-02,,amber,empty\n2026-01-03,evil[.]com,purple,bad tlp\n\"2026-01-04\",\"hxxp://x[.]org/a,b\",AMBER,\"quoted, comma\"\n2026-01-05,junk value,clear,x\n";
    let path = write(dir.path(), "feed.csv", csv.as_bytes());
    let r = read(&path, InputFormat::Auto);
    assert_eq!(r.format, InputFormat::Csv);
    assert_eq!(values(&r), ["8.8.8.8", "http://x.org/a,b"]);
    assert_eq!(r.found[0].2, Some(Tlp::Green));
    assert_eq!(r.found[1].2, Some(Tlp::Amber));
    let context = r.contexts[0].as_ref().expect("context");
    assert_eq!(context["note"], "resolver");
    assert_eq!(context["first_seen"], "2026-01-02");
    assert!(
        !context.contains_key("TLP"),
        "the TLP column is the TLP, not context"
    );
    let reasons: Vec<(String, String)> = r.rejected.clone();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].0.ends_with(":3") && reasons[0].1.contains("no value in the indicator column"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0.ends_with(":4") && reasons[1].1.contains("unknown TLP level"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].0.ends_with(":6") && reasons[2].1.contains("not a recognized indicator"),
        "{reasons:?}"
    );
}

#[test]
fn csv_column_found_by_content_and_tab_separated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tsv = "when\twhat\tcomment\n2026-01-01\t1.1.1.1\tfine\n2026-01-01\tevil.com\tbad\n";
    let path = write(dir.path(), "export.tsv", tsv.as_bytes());
    let r = read(&path, InputFormat::Auto);
    assert_eq!(values(&r), ["1.1.1.1", "evil.com"]);
    let none = write(dir.path(), "nothing.csv", b"a,b\n1,2\n3,4\n");
    let r = read(&none, InputFormat::Csv);
    assert!(r.found.is_empty());
    assert_eq!(r.rejected.len(), 1);
    assert!(
        r.rejected[0].1.contains("no indicator column"),
        "{:?}",
        r.rejected
    );
}

#[test]
fn json_lines_strings_objects_stix_objects_and_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = concat!(
        "\"8.8.8.8\"\n",
        "{\"ioc\": \"evil[.]com\", \"tlp\": \"TLP:RED\", \"campaign\": \"x\"}\n",
        "{\"type\": \"ipv4-addr\", \"id\": \"ipv4-addr--1\", \"value\": \"1.2.3.4\"}\n",
        "{not json\n",
        "[1, 2]\n",
        "{\"other\": \"field\"}\n",
        "{\"url\": \"hxxps://a[.]io/x\", \"tlp\": 3}\n",
        "\n",
    );
    let path = write(dir.path(), "alerts.jsonl", jsonl.as_bytes());
    let r = read(&path, InputFormat::Auto);
    assert_eq!(r.format, InputFormat::Jsonl);
    assert_eq!(values(&r), ["8.8.8.8", "evil.com", "1.2.3.4"]);
    assert_eq!(r.found[1].2, Some(Tlp::Red));
    assert_eq!(r.contexts[1].as_ref().expect("context")["campaign"], "x");
    let reasons: Vec<&str> = r
        .rejected
        .iter()
        .map(|(_, reason)| reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].starts_with("invalid JSON"));
    assert!(reasons[1].contains("found an array"));
    assert!(reasons[2].starts_with("no indicator field"));
    assert!(reasons[3].contains("tlp must be a string"));
}

fn bundle() -> String {
    serde_json::json!({
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [
            {"type": "identity", "id": "identity--1", "name": "ACME CERT"},
            {"type": "indicator", "id": "indicator--1", "name": "C2", "pattern_type": "stix",
             "pattern": "[ipv4-addr:value = '45.155.205.233'] OR [domain-name:value = 'evil.com']",
             "object_marking_refs": ["marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"]},
            {"type": "indicator", "id": "indicator--2", "pattern_type": "sigma", "pattern": "title: x"},
            {"type": "indicator", "id": "indicator--3", "pattern": "[ipv4-addr:value = '1.2.3.4'"},
            {"type": "marking-definition", "id": "marking-definition--custom", "definition_type": "tlp", "definition": {"tlp": "green"}},
            {"type": "url", "id": "url--1", "value": "hxxp://x[.]net/p", "object_marking_refs": ["marking-definition--custom"]},
            {"type": "autonomous-system", "id": "autonomous-system--1", "number": 64496},
            {"type": "file", "id": "file--1", "hashes": {"SHA-256": "AEC070645FE53EE3B3763059376134F058CC337247C978ADD178B6CCDFB0019F"}},
            {"type": "indicator", "id": "indicator--4", "pattern": "[domain-name:value LIKE '%.evil.com']"},
            {"id": "no-type"},
            "a string",
            {"type": "relationship", "id": "relationship--1", "relationship_type": "indicates"}
        ]
    })
    .to_string()
}

#[test]
fn stix_bundles_stream_objects_with_markings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bundle.json", bundle().as_bytes());
    let r = read(&path, InputFormat::Auto);
    assert_eq!(r.format, InputFormat::Stix);
    assert_eq!(
        values(&r),
        [
            "45.155.205.233",
            "evil.com",
            "http://x.net/p",
            "AS64496",
            "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"
        ]
    );
    assert_eq!(
        r.found[0].2,
        Some(Tlp::Red),
        "TLP:RED from the standard marking"
    );
    assert_eq!(
        r.found[2].2,
        Some(Tlp::Green),
        "TLP from a marking defined in the bundle"
    );
    assert!(r.found[0].0.ends_with("objects[1]"), "{}", r.found[0].0);
    assert_eq!(
        r.contexts[0].as_ref().expect("context")["stix_id"],
        "indicator--1"
    );
    let rejected: Vec<(&str, &str)> = r
        .rejected
        .iter()
        .map(|(p, reason)| (p.rsplit(' ').next().unwrap_or(""), reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 5, "{rejected:?}");
    assert_eq!(rejected[0].0, "objects[2]");
    assert!(rejected[0].1.contains("sigma"));
    assert!(rejected[1].1.contains("unbalanced"), "{rejected:?}");
    assert!(rejected[2].1.contains("compares no"));
    assert!(rejected[3].1.contains("no \"type\""));
    assert!(rejected[4].1.contains("found a string"));
    assert_eq!(
        r.counters
            .ignored_objects
            .load(std::sync::atomic::Ordering::Relaxed),
        3,
        "identity, marking, relationship"
    );
}

#[test]
fn truncated_bundles_keep_what_came_before_and_say_where_it_broke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = bundle();
    let cut = &full[..full.find("autonomous-system--1").expect("marker")];
    let path = write(dir.path(), "cut.json", cut.as_bytes());
    let r = read(&path, InputFormat::Stix);
    assert_eq!(values(&r), ["45.155.205.233", "evil.com", "http://x.net/p"]);
    let last = r.rejected.last().expect("the break is reported");
    assert!(
        last.1.starts_with("invalid STIX bundle at line 1 column"),
        "{last:?}"
    );
    let not_bundle = write(
        dir.path(),
        "obj.json",
        br#"{"type": "indicator", "id": "x"}"#,
    );
    let r = read(&not_bundle, InputFormat::Stix);
    assert!(
        r.rejected[0].1.contains("expected a STIX bundle"),
        "{:?}",
        r.rejected
    );
}

#[test]
fn gzip_is_read_transparently_whatever_the_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(b"indicator,tlp\n8.8.8.8,amber\nbad,clear\n")
        .expect("compress");
    let compressed = encoder.finish().expect("compress");
    for name in ["feed.csv.gz", "feed.bin"] {
        let path = write(dir.path(), name, &compressed);
        let r = read(&path, InputFormat::Auto);
        assert_eq!(r.format, InputFormat::Csv, "{name}");
        assert_eq!(values(&r), ["8.8.8.8"], "{name}");
        assert_eq!(r.rejected.len(), 1, "{name}");
        assert_eq!(
            r.counters.bytes.load(std::sync::atomic::Ordering::Relaxed),
            compressed.len() as u64
        );
    }
}

#[test]
fn overlong_and_non_utf8_lines_are_rejected_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut content = b"8.8.8.8\n".to_vec();
    content.extend(std::iter::repeat_n(b'a', scry_input::MAX_LINE_BYTES + 10));
    content.extend(b"\n\xff\xfe1.1.1.1\n9.9.9.9\n");
    let path = write(dir.path(), "big.txt", &content);
    let r = read(&path, InputFormat::Lines);
    assert_eq!(values(&r), ["8.8.8.8", "9.9.9.9"]);
    assert_eq!(r.rejected.len(), 2);
    assert!(
        r.rejected[0].0.ends_with(":2") && r.rejected[0].1.contains("longer than"),
        "{:?}",
        r.rejected
    );
    assert!(r.rejected[1].0.ends_with(":3"), "{:?}", r.rejected);
}

#[test]
fn unreadable_files_are_errors_that_name_the_file() {
    let input = InputSource::file("/nonexistent/iocs.txt");
    let err = read_input(
        &input,
        InputFormat::Auto,
        &ReadCounters::default(),
        &mut |_| {},
    )
    .expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/iocs.txt"), "{err}");
}

#[test]
fn binary_and_bomless_utf16_inputs_are_errors_that_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut binary = b"MZ\x90\x00\x03".to_vec();
    binary.extend(b"45.155.205.233/evil.example.com/x\n");
    let bomless: Vec<u8> = "45.155.205.233\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    for (name, content, expected) in [
        ("tool.exe", binary, "binary data (a NUL byte at offset 3)"),
        (
            "export.txt",
            bomless,
            "UTF-16 text without a byte-order mark",
        ),
    ] {
        let path = write(dir.path(), name, &content);
        for format in [InputFormat::Auto, InputFormat::Text, InputFormat::Csv] {
            let err = read_input(
                &InputSource::file(&path),
                format,
                &ReadCounters::default(),
                &mut |item| panic!("{name}: nothing is read, got {item:?}"),
            )
            .expect_err("not text");
            assert!(
                err.to_string().contains(name) && err.to_string().contains(expected),
                "{err}"
            );
        }
    }
}

/// UTF-16 with a byte-order mark, as Windows tools write it (PowerShell's `Out-File`, Excel's
/// "Unicode text"), little- and big-endian, plain or gzip-compressed, in every format.
#[test]
fn utf16_with_a_byte_order_mark_is_read_like_utf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "list.txt",
            "45.155.205.233\r\nevil.example.com # note\r\n999.1.1.1\r\n",
            InputFormat::Auto,
            vec!["45.155.205.233", "evil.example.com"],
            1,
        ),
        (
            "export.csv",
            "ip,comment\r\n45.155.205.233,café\r\n",
            InputFormat::Auto,
            vec!["45.155.205.233"],
            0,
        ),
        (
            "mail.txt",
            "Blocked hxxp://evil[.]com/a — see 45.155.205[.]233 ✓\n",
            InputFormat::Text,
            vec!["45.155.205.233", "http://evil.com/a"],
            0,
        ),
    ];
    for big_endian in [false, true] {
        for (name, text, format, expected, rejected) in &cases {
            let bytes = scry_testkit::utf16_with_bom(text, big_endian);
            let mut gzipped = Vec::new();
            {
                use std::io::Write;
                let mut encoder = GzEncoder::new(&mut gzipped, Compression::fast());
                encoder.write_all(&bytes).expect("gzip");
                encoder.finish().expect("gzip");
            }
            for (file, content) in [(name.to_string(), bytes), (format!("{name}.gz"), gzipped)] {
                let path = write(dir.path(), &file, &content);
                let r = read(&path, *format);
                let mut found = values(&r);
                found.sort();
                assert_eq!(
                    &found, expected,
                    "{file} big-endian {big_endian}: {:?}",
                    r.rejected
                );
                assert_eq!(r.rejected.len(), *rejected, "{file}: {:?}", r.rejected);
            }
        }
    }
}

/// A STIX object's value must be of the object's type: an `ipv4-addr` whose value is a number
/// was read as `AS12345`, a `domain-name` holding an address as that address. Each is now a
/// rejection that says so; values of the right type, and an ASN's number, still read.
#[test]
fn stix_values_must_be_of_their_objects_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = serde_json::json!({
        "type": "bundle",
        "id": "bundle--3f0b1f7e-3f7c-4c4e-9d7e-4f1b6b1a2c3d",
        "objects": [
            {"type": "ipv4-addr", "id": "ipv4-addr--1", "value": 12345},
            {"type": "ipv4-addr", "id": "ipv4-addr--2", "value": "12345"},
            {"type": "domain-name", "id": "domain-name--3", "value": "45.155.205.233"},
            {"type": "indicator", "id": "indicator--4", "pattern_type": "stix",
             "pattern": "[domain-name:value = '45.155.205.234']"},
            {"type": "ipv4-addr", "id": "ipv4-addr--5", "value": "45.155.205.235"},
            {"type": "autonomous-system", "id": "autonomous-system--6", "number": 12345},
            {"type": "url", "id": "url--7", "value": "http://evil.example.com/a"},
            {"type": "indicator", "id": "indicator--8", "pattern_type": "stix",
             "pattern": "[ipv4-addr:value = '45.155.205.236']"}
        ]
    });
    let path = write(dir.path(), "bundle.json", bundle.to_string().as_bytes());
    let r = read(&path, InputFormat::Stix);
    assert_eq!(
        values(&r),
        [
            "45.155.205.235",
            "AS12345",
            "http://evil.example.com/a",
            "45.155.205.236"
        ]
    );
    let reasons: Vec<&str> = r
        .rejected
        .iter()
        .map(|(_, reason)| reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    assert!(
        reasons[0].contains("ipv4-addr object has no \"value\""),
        "{reasons:#?}"
    );
    assert!(
        reasons[1].contains("not a recognized indicator"),
        "{reasons:#?}"
    );
    assert!(
        reasons[2]
            .contains("\"45.155.205.233\" is not a domain-name value (it reads as ipv4-addr)"),
        "{reasons:#?}"
    );
    assert!(reasons[3].contains("45.155.205.234"), "{reasons:#?}");
}
