//! Rules of the code base checked mechanically: the pure core stays pure (DESIGN.md invariant 5)
//! and every source file says why it exists.

use std::path::{Path, PathBuf};

use super::workspace;

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    assert!(files.len() > 20, "found the sources");
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .expect("readable")
                .starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc on line 1: {missing:#?}"
    );
}

/// The pure crates may not depend on I/O crates nor reach for the file system, the network, the
/// clock or the environment themselves.
#[test]
fn the_pure_core_does_no_io() {
    const FORBIDDEN_DEPENDENCIES: &[&str] = &[
        "tokio", "reqwest", "sqlx", "axum", "hyper", "figment", "tempfile", "flate2",
    ];
    const FORBIDDEN_CALLS: &[&str] = &[
        "std::fs",
        "std::net::TcpStream",
        "std::net::UdpSocket",
        "SystemTime::now",
        "Instant::now",
        "std::env::var",
        "std::process",
        "File::open",
    ];
    for krate in ["scry-core", "scry-stix", "scry-rules"] {
        let dir = workspace().join("crates").join(krate);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .expect("a [dependencies] table");
        let dependencies = dependencies.split("\n[").next().expect("table body");
        for name in FORBIDDEN_DEPENDENCIES {
            assert!(
                !dependencies
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{name} "))
                        || l.trim_start().starts_with(&format!("{name}."))),
                "{krate} depends on {name}"
            );
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            // Test modules may read their fixtures; only the code above them must stay pure.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for call in FORBIDDEN_CALLS {
                assert!(!code.contains(call), "{} uses {call}", file.display());
            }
        }
    }
}

/// Every source file and test ARCHITECTURE.md names exists: a file by its path (from the
/// workspace, or the end of a path under `crates/`), a test or function by its name.
#[test]
fn architecture_names_only_what_exists() {
    let text =
        std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.display().to_string(),
                std::fs::read_to_string(f).expect("readable"),
            )
        })
        .collect();
    let quoted: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
    let (mut paths, mut names) = (0, 0);
    let mut missing = Vec::new();
    for quote in quoted {
        for token in quote.split_whitespace() {
            let token = token.trim_matches(|c: char| ",.;:()".contains(c));
            let (path, item) = match token.split_once(".rs") {
                Some((stem, rest)) => (Some(format!("{stem}.rs")), rest.strip_prefix("::")),
                None => (None, Some(token)),
            };
            let candidates: Vec<&(String, String)> = match &path {
                Some(path) => {
                    paths += 1;
                    let found: Vec<_> = sources
                        .iter()
                        .filter(|(name, _)| name.ends_with(&format!("/{path}")))
                        .collect();
                    if found.is_empty() {
                        missing.push(format!("file {path}"));
                    }
                    found
                }
                None => sources.iter().collect(),
            };
            // Names of tests and functions: snake_case with at least two underscores, the last
            // segment of a `::` path.
            let Some(item) = item.and_then(|i| i.rsplit("::").next()) else {
                continue;
            };
            let is_name = item.matches('_').count() >= 2
                && item
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !is_name || (path.is_none() && !token.contains("::")) {
                continue;
            }
            names += 1;
            if !candidates
                .iter()
                .any(|(_, code)| code.contains(&format!("fn {item}")))
            {
                missing.push(token.to_owned());
            }
        }
    }
    assert!(
        paths > 30 && names > 20,
        "read the names: {paths} files, {names} tests"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist: {missing:#?}"
    );
}

/// Sources are given what they need from outside (archive, rate ledger, spent credits) when
/// they are built, by the composition root; nothing hands it to them afterwards.
/// `docs/rules.md` is what `scry rules reference` prints, generated from the definitions the
/// rules checker uses, so the document cannot drift from what `scry rules check` accepts.
#[test]
fn the_rules_reference_is_generated_from_the_checker() {
    let path = workspace().join("docs/rules.md");
    let written = std::fs::read_to_string(&path).expect("docs/rules.md");
    let home = tempfile::tempdir().expect("tempdir");
    let printed = super::run_args(home.path(), &["rules", "reference"], b"");
    assert_eq!(printed.status.code(), Some(0));
    let printed = super::text(&printed.stdout);
    assert!(
        printed.contains("`indicator.priority` | int") && printed.contains("`budget-alert`"),
        "the positive control: fields and triggers are listed: {printed}"
    );
    assert!(
        written == printed,
        "docs/rules.md is out of date: regenerate it with `cargo run -- rules reference > docs/rules.md`"
    );
}

#[test]
fn sources_are_wired_at_construction_only() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        checked += 1;
        for setter in [
            "set_archive",
            "set_rate_ledger",
            "seed_usage",
            "seed_budgets",
        ] {
            let defined = format!("fn {setter}");
            assert!(!text.contains(&defined), "{} has {defined}", file.display());
        }
    }
    assert!(checked > 20);
    let setup = std::fs::read_to_string(workspace().join("crates/scry-engine/src/setup.rs"))
        .expect("the composition root");
    assert!(setup.contains("build_sources(&context)"));
}

/// Criminal IP's report (from its API or its offline database) is read through the typed
/// `scry_core::exposure::Exposure`: outside the adapters that write it (the API mapping, the
/// offline readers, the emulator, the benchmark's generator), no code takes its fields out of
/// JSON by key.
#[test]
fn criminal_ip_fields_are_read_through_the_typed_report() {
    const FIELDS: &[&str] = &[
        "inbound",
        "outbound",
        "domain_score",
        "services",
        "vulnerabilities",
        "mapped_ips",
        "connected_ips",
        "certificates",
        "hostnames",
        "phishing_probability",
    ];
    const WRITERS: &[&str] = &[
        "scry-offline/",
        "scry-sandbox/",
        "scry-bench/",
        "scry-core/src/exposure.rs",
    ];
    let reads = |code: &str| -> Vec<String> {
        FIELDS
            .iter()
            .flat_map(|field| {
                [format!(".get(\"{field}\")"), format!("[\"{field}\"]")]
                    .into_iter()
                    .filter(|pattern| code.contains(pattern.as_str()))
            })
            .collect()
    };
    // The matcher sees a read when there is one.
    assert_eq!(reads(r#"data.get("inbound")"#).len(), 1);
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    let mut checked = 0;
    for file in &files {
        let path = file.display().to_string();
        if path.contains("/tests/") || WRITERS.iter().any(|w| path.contains(w)) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        checked += 1;
        let found = reads(code);
        assert!(found.is_empty(), "{path} reads {found:?} by key");
    }
    assert!(checked > 40, "checked {checked} files");
    // Both writers build the typed report and leave its serialization to it.
    for writer in [
        "crates/scry-sources/src/criminalip/map.rs",
        "crates/scry-sources/src/ctidb.rs",
    ] {
        let text = std::fs::read_to_string(workspace().join(writer)).expect("readable");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        assert!(code.contains("Exposure {"), "{writer} builds an Exposure");
        assert!(code.contains(".to_detail()"), "{writer} stores it typed");
        assert!(!code.contains("json!("), "{writer} writes JSON by hand");
    }
}

/// Sources tell the time by the clock they are given (`scry_sources::clock`), so a test can
/// move it across a budget day or an answer's expiry.
#[test]
fn sources_read_the_wall_clock_through_their_clock() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/scry-sources/src"), &mut files);
    let mut checked = 0;
    for file in &files {
        let path = file.display().to_string();
        if path.ends_with("/clock.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        checked += 1;
        assert!(
            !code.contains("SystemTime::now"),
            "{path} reads the system clock"
        );
    }
    assert!(checked > 10, "checked {checked} files");
    let clock = std::fs::read_to_string(workspace().join("crates/scry-sources/src/clock.rs"))
        .expect("the clock");
    assert!(
        clock.contains("SystemTime::now"),
        "the one reader of the system clock"
    );
}

/// The contrast of text on a coloured background in the stylesheet (severity chips, the priority
/// badge) meets WCAG 2.1 AA for normal text, 4.5:1: read from `app.css` itself, colours
/// resolved through its custom properties.
#[test]
fn coloured_chips_keep_their_text_readable() {
    let css = std::fs::read_to_string(workspace().join("crates/scry-server/assets/app.css"))
        .expect("the stylesheet");
    let variable = |name: &str| -> Option<String> {
        let at = css.find(&format!("{name}:"))?;
        let value = css[at + name.len() + 1..].trim_start();
        Some(value.split([';', ' ', '}']).next()?.to_owned())
    };
    let colour = |value: &str| -> String {
        let value = value.trim();
        match value.strip_prefix("var(").and_then(|v| v.strip_suffix(')')) {
            Some(name) => variable(name).unwrap_or_else(|| panic!("{name} is defined")),
            None => value.to_owned(),
        }
    };
    let luminance = |hex: &str| -> f64 {
        let hex = hex.trim_start_matches('#');
        let hex = if hex.len() == 3 {
            hex.chars().flat_map(|c| [c, c]).collect()
        } else {
            hex.to_owned()
        };
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    };
    let mut checked = Vec::new();
    for rule in css.split('}') {
        let Some((selector, body)) = rule.split_once('{') else {
            continue;
        };
        let property = |name: &str| {
            body.split(';').find_map(|d| {
                let (key, value) = d.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        let hex = |value: Option<String>| {
            value
                .map(|v| colour(&v))
                .filter(|c| c.starts_with('#') && matches!(c.len(), 4 | 7))
        };
        if let (Some(background), Some(text)) =
            (hex(property("background")), hex(property("color")))
        {
            let (a, b) = (luminance(&background), luminance(&text));
            let ratio = (a.max(b) + 0.05) / (a.min(b) + 0.05);
            checked.push((selector.trim().to_owned(), ratio));
        }
    }
    let chips = checked
        .iter()
        .filter(|(s, _)| s.contains(".chip.sev-"))
        .count();
    assert!(chips >= 4, "the severity chips were found: {checked:?}");
    let unreadable: Vec<_> = checked.iter().filter(|(_, ratio)| *ratio < 4.5).collect();
    assert!(unreadable.is_empty(), "below 4.5:1: {unreadable:?}");
}
