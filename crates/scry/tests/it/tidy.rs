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
