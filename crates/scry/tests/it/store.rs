//! `scry` with its store: enrich saves by default and idempotently, `show` reads it back, `import`
//! stores without printing, on SQLite and on a real PostgreSQL server.

use serde_json::Value;

use super::{run, run_args, scry, text, workspace};

fn example() -> String {
    workspace().join("examples/iocs.txt").display().to_string()
}

#[test]
fn enrich_stores_by_default_and_re_running_changes_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let first = run_args(
        home.path(),
        &["enrich", "--format", "jsonl", &example()],
        b"",
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let db = home.path().join("data/scry/scry.db");
    assert!(
        db.exists(),
        "the default store is an SQLite file in the XDG data directory"
    );
    assert!(
        text(&first.stderr).contains(": 19 new, 0 changed, 0 unchanged"),
        "{}",
        text(&first.stderr)
    );
    let second = run_args(
        home.path(),
        &["enrich", "--format", "jsonl", &example()],
        b"",
    );
    assert!(
        text(&second.stderr).contains(": 0 new, 0 changed, 19 unchanged"),
        "{}",
        text(&second.stderr)
    );

    let shown = run_args(
        home.path(),
        &[
            "show",
            "hxxp://paypal-account-verify[.]info/signin?session=8f3a",
            "--format",
            "json",
        ],
        b"",
    );
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let json: Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(
        json["indicator"],
        "http://paypal-account-verify.info/signin?session=8f3a"
    );
    assert_eq!(json["type"], "url");
    assert_eq!(
        json["history"].as_array().map(Vec::len),
        Some(1),
        "re-running added no history"
    );
    let printed: Vec<Value> = text(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let same = printed
        .iter()
        .find(|r| r["indicator"] == json["indicator"])
        .expect("printed too");
    assert_eq!(
        same["stix_id"], json["stix_id"],
        "the store keeps the deterministic id"
    );
    let text_view = run_args(home.path(), &["show", "10.20.4.17"], b"");
    assert!(
        text(&text_view.stdout).contains("status      skipped (private)"),
        "{}",
        text(&text_view.stdout)
    );
    let missing = run_args(home.path(), &["show", "9.9.9.9"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("is not in the store"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn no_store_leaves_no_trace_and_import_prints_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let output = run_args(home.path(), &["enrich", "--no-store", &example()], b"");
    assert_eq!(output.status.code(), Some(0));
    assert!(
        !home.path().join("data").exists(),
        "--no-store creates no store"
    );
    let custom = home.path().join("elsewhere/team.db");
    std::fs::create_dir(home.path().join("elsewhere")).expect("the store's folder");
    let url = format!("sqlite://{}", custom.display());
    let import = run_args(home.path(), &["--store", &url, "import", &example()], b"");
    assert_eq!(import.status.code(), Some(0), "{}", text(&import.stderr));
    assert!(import.stdout.is_empty(), "import prints no records");
    assert!(custom.exists());
    let migrate = run_args(home.path(), &["--store", &url, "db", "migrate"], b"");
    assert!(
        text(&migrate.stdout).contains("(sqlite) is at schema version 11; 19 indicators"),
        "{}",
        text(&migrate.stdout)
    );
    let bad = run_args(
        home.path(),
        &["--store", "mysql://db/scry", "db", "migrate"],
        b"",
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("use sqlite:///path/to/scry.db or postgres://"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn postgres_stores_the_same_way_and_never_prints_its_password() {
    let Some(base) = scry_testkit::postgres() else {
        return;
    };
    let schema = format!("scry_cli_{}", std::process::id());
    let admin = |sql: String| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store = scry_store::SqlStore::connect(&base)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"));
            store.execute_raw(&sql).await.expect("admin statement");
        });
    };
    admin(format!("CREATE SCHEMA {schema}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    // Trust authentication ignores the password; it is there to prove it is never printed.
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}").replacen(
        "://postgres@",
        "://postgres:hunter2@",
        1,
    );
    let home = tempfile::tempdir().expect("tempdir");
    let mut command = scry(home.path());
    command.args(["--store", &url, "import", "-"]);
    let first = run(
        command,
        b"45.155.205.233\nevil.example-store.com\n10.0.0.1\n",
    );
    let mut again = scry(home.path());
    again.env("SCRY_STORE", &url).args(["import", "-"]);
    let second = run(again, b"45.155.205.233\nevil.example-store.com\n10.0.0.1\n");
    let shown = run_args(
        home.path(),
        &[
            "--store",
            &url,
            "show",
            "45.155.205.233",
            "--format",
            "json",
        ],
        b"",
    );
    admin(format!("DROP SCHEMA {schema} CASCADE"));
    assert!(
        text(&first.stderr).contains(": 3 new, 0 changed, 0 unchanged"),
        "{}",
        text(&first.stderr)
    );
    assert!(
        text(&second.stderr).contains(": 0 new, 0 changed, 3 unchanged"),
        "{}",
        text(&second.stderr)
    );
    let json: Value = serde_json::from_slice(&shown.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&shown.stderr)));
    assert_eq!(
        (json["indicator"].as_str(), json["status"].as_str()),
        (Some("45.155.205.233"), Some("enriched"))
    );
    if url.contains(":hunter2@") {
        for output in [&first, &second] {
            assert!(
                !text(&output.stderr).contains("hunter2"),
                "the store password is never printed: {}",
                text(&output.stderr)
            );
            assert!(
                text(&output.stderr).contains("postgres:***@"),
                "{}",
                text(&output.stderr)
            );
        }
    }
}

#[test]
fn export_writes_what_is_stored_filtered_and_paged() {
    let home = tempfile::tempdir().expect("tempdir");
    run_args(home.path(), &["import", &example()], b"");
    let jsonl = run_args(home.path(), &["export"], b"");
    assert_eq!(jsonl.status.code(), Some(0), "{}", text(&jsonl.stderr));
    let rows: Vec<Value> = text(&jsonl.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one object per line"))
        .collect();
    assert_eq!(
        rows.len(),
        13,
        "every stored indicator but the organization's own, none of the rejected lines"
    );
    assert!(
        rows.iter()
            .all(|r| r["stix_id"].is_string() && r["reasons"].is_array())
    );
    // Private and documentation addresses, internal and reserved names are the organization's
    // own, not threats to share: left out unless asked for, and said so.
    let own = [
        "private",
        "documentation",
        "internal-domain",
        "reserved-domain",
    ];
    assert!(
        rows.iter()
            .all(|r| !own.contains(&r["skip_reason"].as_str().unwrap_or(""))),
        "{rows:#?}"
    );
    assert!(
        text(&jsonl.stderr).contains("exported 13 indicators from sqlite://")
            && text(&jsonl.stderr).contains(
                "; 6 of your own (private, internal, allowlisted) left out: --include-own adds them"
            ),
        "{}",
        text(&jsonl.stderr)
    );
    let everything = run_args(home.path(), &["export", "--include-own"], b"");
    assert_eq!(
        text(&everything.stdout).lines().count(),
        19,
        "every stored indicator: {}",
        text(&everything.stderr)
    );

    let file = home.path().join("out/high.csv");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
    let csv_out = run_args(
        home.path(),
        &[
            "export",
            "--format",
            "csv",
            "--output",
            &file.display().to_string(),
        ],
        b"",
    );
    assert_eq!(csv_out.status.code(), Some(0), "{}", text(&csv_out.stderr));
    let mut reader = csv::Reader::from_path(&file).expect("csv file");
    assert_eq!(&reader.headers().expect("header")[0], "indicator");
    assert_eq!(reader.records().count(), 13);

    // Without an external source, only the phishing heuristics give points.
    let scored = run_args(
        home.path(),
        &["export", "--format", "jsonl", "--min-priority", "40"],
        b"",
    );
    let mut high: Vec<String> = text(&scored.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON line")["indicator"]
                .as_str()
                .expect("indicator")
                .to_owned()
        })
        .collect();
    high.sort();
    assert_eq!(
        high,
        [
            "http://paypal-account-verify.info/signin?session=8f3a",
            "https://login-micros0ft-365.com/owa/auth/logon.aspx",
            "www.xn--pypal-4ve.com"
        ]
    );
    let future = run_args(home.path(), &["export", "--since", "2999-01-01"], b"");
    assert!(future.stdout.is_empty());
    let bad = run_args(home.path(), &["export", "--since", "yesterday"], b"");
    assert_eq!(bad.status.code(), Some(2));
}

/// After any command the SQLite store is one self-contained file: copying `scry.db` alone (no
/// `-wal`, no `-shm`) gives the whole database, and `scry db backup` copies it consistently.
#[test]
fn the_database_file_alone_holds_everything_after_a_command() {
    let home = tempfile::tempdir().expect("tempdir");
    let enrich = run_args(home.path(), &["import", &example()], b"");
    assert_eq!(enrich.status.code(), Some(0), "{}", text(&enrich.stderr));
    let db = home.path().join("data/scry/scry.db");
    let wal = home.path().join("data/scry/scry.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the write-ahead log is checkpointed into the file when the command ends"
    );

    // Only the database file, as a naive backup copies it.
    let copy_dir = tempfile::tempdir().expect("tempdir");
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&db, &copy).expect("copy");
    let counted = |store: &std::path::Path| {
        let url = format!("sqlite://{}", store.display());
        let output = run_args(home.path(), &["--store", &url, "db", "migrate"], b"");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    assert!(
        counted(&copy).contains("; 19 indicators"),
        "the copied file holds every indicator: {}",
        counted(&copy)
    );

    // `scry db backup` while the store exists; it never overwrites.
    let backup = copy_dir.path().join("backup.db");
    let made = run_args(
        home.path(),
        &["db", "backup", backup.to_str().expect("utf-8")],
        b"",
    );
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    assert!(counted(&backup).contains("; 19 indicators"));
    let again = run_args(
        home.path(),
        &["db", "backup", backup.to_str().expect("utf-8")],
        b"",
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("exists already"));
}

/// URLs as analysts paste them — a stray `%`, brackets in the path or query, `|` and `^` — are
/// stored percent-encoded (the input kept as written), so a STIX export of them passes the OASIS
/// validator in strict mode. Stored as written, the export was refused.
#[test]
fn odd_urls_export_as_valid_stix() {
    if !scry_testkit::python_modules(&["stix2validator"], "stix2-validator==3.3.2") {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let list = "http://odd-urls-phish.xyz/p[1]\nhttp://odd-urls-phish.xyz/a%zz\n\
                http://odd-urls-phish.xyz/x?q=a|b^c&r=[2]\n";
    let prose = "see http://odd-urls-phish.xyz/doc[3] now\n";
    for (format, input) in [("lines", list), ("text", prose)] {
        let import = run_args(
            home.path(),
            &["import", "--input-format", format, "-"],
            input.as_bytes(),
        );
        assert_eq!(import.status.code(), Some(0), "{}", text(&import.stderr));
    }
    let (bundle, _) = super::export_stix(home.path());
    let exported = std::fs::read_to_string(&bundle).expect("bundle");
    for stored in [
        "http://odd-urls-phish.xyz/p%5B1%5D",
        "http://odd-urls-phish.xyz/a%25zz",
        "http://odd-urls-phish.xyz/x?q=a%7Cb%5Ec&r=%5B2%5D",
        "http://odd-urls-phish.xyz/doc%5B3%5D",
    ] {
        assert!(exported.contains(stored), "{stored} in the export");
    }
    let (checked, problems, _) = super::oasis_strict(&bundle).expect("checked above");
    assert!(checked > 0);
    assert!(
        problems.is_empty(),
        "the OASIS validator refused the export: {problems:#?}"
    );
}

/// A STIX bundle from another platform keeps what its producer judged: the score, the
/// confidence, the labels, the author and the markings are the `stix-import` source's answer,
/// which counts in the priority like any source's and stays when the indicator is enriched again
/// without the file.
#[test]
fn an_imported_bundle_keeps_its_score_confidence_labels_and_markings() {
    let home = tempfile::tempdir().expect("tempdir");
    let amber = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
    let bundle = serde_json::json!({
        "type": "bundle", "id": "bundle--8a5e0f5a-3b55-4c8e-9f2e-6a4c1f0b2d11",
        "objects": [{
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--0b7c6f1e-2f4c-4c8d-9e1a-3a2b1c0d9e8f",
            "created": "2026-11-01T00:00:00.000Z", "modified": "2026-11-01T00:00:00.000Z",
            "name": "C2 from a partner", "pattern": "[ipv4-addr:value = '45.155.205.233']",
            "pattern_type": "stix", "valid_from": "2026-11-01T00:00:00.000Z",
            "labels": ["Botnet", "c2"], "confidence": 90, "x_opencti_score": 80,
            "created_by_ref": "identity--5a3b2c1d-0e9f-4a8b-8c7d-6e5f4a3b2c1d",
            "object_marking_refs": [amber]
        }]
    });
    let file = home.path().join("partner.json");
    std::fs::write(&file, bundle.to_string()).expect("bundle");
    let import = run_args(home.path(), &["import", &file.display().to_string()], b"");
    assert_eq!(import.status.code(), Some(0), "{}", text(&import.stderr));
    let show = |home: &std::path::Path| -> serde_json::Value {
        let shown = run_args(home, &["show", "45.155.205.233", "--format", "json"], b"");
        assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
        serde_json::from_slice(&shown.stdout).expect("JSON")
    };
    let stored = show(home.path());
    let imported = &stored["sources"]["stix-import"];
    assert_eq!(imported["status"], "ok", "{stored:#}");
    assert_eq!(imported["data"]["score"], 80);
    assert_eq!(imported["data"]["confidence"], 90);
    assert_eq!(
        imported["data"]["object_marking_refs"],
        serde_json::json!([amber])
    );
    assert_eq!(stored["tlp"], "amber");
    let tags = stored["tags"].as_array().expect("tags");
    assert!(
        tags.contains(&"botnet".into()) && tags.contains(&"c2".into()),
        "{tags:?}"
    );
    let reason = stored["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .find(|r| r["source"] == "stix-import")
        .expect("the imported score counts");
    assert_eq!(reason["points"], 36, "80 × 90 / 200");
    assert!(stored["priority"].as_u64() >= Some(36), "{stored:#}");
    // Enriched again from a plain list, the imported judgement stays (stale, not erased).
    let again = run_args(
        home.path(),
        &["enrich", "-q", "--force", "-"],
        b"45.155.205.233\n",
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let refreshed = show(home.path());
    assert_eq!(
        refreshed["sources"]["stix-import"]["data"]["score"], 80,
        "{refreshed:#}"
    );
    assert!(
        refreshed["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r["source"] == "stix-import"),
        "{refreshed:#}"
    );
}
