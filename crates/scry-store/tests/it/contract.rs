//! The contract every store meets.

use scry_store::{AnswerKey, Facet, IndicatorRecord, SaveReport, VendorAnswer};

/// (inserted, updated, unchanged).
fn counts(report: &SaveReport) -> (u64, u64, u64) {
    (report.inserted, report.updated, report.unchanged)
}
use serde_json::json;

use crate::TestStore;

fn record(value: &str, priority: u8, tags: &[&str]) -> IndicatorRecord {
    IndicatorRecord {
        stix_id: format!("ipv4-addr--{value}"),
        kind: "ipv4-addr".into(),
        value: value.into(),
        priority,
        severity: if priority >= 70 {
            "high".into()
        } else {
            "info".into()
        },
        enrichment_status: "enriched".into(),
        skip_reason: None,
        tlp: Some("amber".into()),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        reasons: json!([{"source": "criminalip", "signal": "outbound-score", "value": "x", "points": priority}]),
        sources: json!({"criminalip": {"status": "ok", "data": {"asn": 9009}}}),
        observed_at: 1_700_000_000_000,
        facets: vec![
            (Facet::Asn, "9009".into()),
            (Facet::Subnet, format!("{value}/32")),
        ],
    }
}

pub(crate) async fn migrations_apply_once_and_reopen(t: &TestStore) {
    assert_eq!(
        t.store.migrate().await.expect("migrate"),
        Vec::<u32>::new(),
        "open already migrated"
    );
    let again = scry_store::open(&t.url).await.expect("reopen");
    assert_eq!(again.migrate().await.expect("migrate"), Vec::<u32>::new());
    assert_eq!(again.count_indicators().await.expect("count"), 0);
}

pub(crate) async fn saving_is_idempotent_and_tracks_changes(t: &TestStore) {
    let store = &t.store;
    let first = vec![
        record("45.155.205.233", 80, &["tor"]),
        record("8.8.8.8", 0, &[]),
    ];
    assert_eq!(
        counts(&store.save_indicators(&first).await.expect("save")),
        (2, 0, 0)
    );
    let mut later = first.clone();
    for r in &mut later {
        r.observed_at += 60_000;
    }
    assert_eq!(
        counts(&store.save_indicators(&later).await.expect("save")),
        (0, 0, 2),
        "re-saving the same data changes nothing"
    );
    let stored = store
        .indicator("ipv4-addr", "45.155.205.233")
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(
        stored.record, first[0],
        "nothing moved, not even the observation time"
    );
    assert_eq!(stored.first_seen, 1_700_000_000_000);

    let mut rescored = first[0].clone();
    rescored.priority = 95;
    rescored.severity = "critical".into();
    rescored.observed_at = 1_700_000_100_000;
    let mut retagged = first[1].clone();
    retagged.tags = vec!["anycast".into()];
    retagged.observed_at = 1_700_000_100_000;
    assert_eq!(
        counts(
            &store
                .save_indicators(&[rescored.clone(), retagged])
                .await
                .expect("save")
        ),
        (0, 2, 0)
    );
    let stored = store
        .indicator("ipv4-addr", "45.155.205.233")
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(stored.record.priority, 95);
    assert_eq!(
        (stored.first_seen, stored.last_changed),
        (1_700_000_000_000, 1_700_000_100_000)
    );
    let history = store
        .score_history(&rescored.stix_id)
        .await
        .expect("history");
    assert_eq!(
        history
            .iter()
            .map(|p| (p.at, p.priority))
            .collect::<Vec<_>>(),
        [(1_700_000_000_000, 80), (1_700_000_100_000, 95)]
    );
    let quiet = store
        .score_history(&first[1].stix_id)
        .await
        .expect("history");
    assert_eq!(quiet.len(), 2, "a tag change is recorded too");
    let change = quiet[1].change.as_ref().expect("the change is kept");
    assert_eq!(change.new_tags, ["anycast"]);
    assert_eq!((change.previous_priority, change.priority), (Some(0), 0));
    assert!(
        store
            .indicator("ipv4-addr", "1.1.1.1")
            .await
            .expect("query")
            .is_none()
    );
    assert_eq!(store.count_indicators().await.expect("count"), 2);
}

pub(crate) async fn bulk_saves_in_batches(t: &TestStore) {
    let batch: Vec<IndicatorRecord> = (0..3_000)
        .map(|i| {
            record(
                &format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256),
                (i % 101) as u8,
                &["bulk"],
            )
        })
        .collect();
    let report = t.store.save_indicators(&batch).await.expect("bulk save");
    assert_eq!(counts(&report), (3_000, 0, 0));
    assert_eq!(t.store.count_indicators().await.expect("count"), 3_000);
    let again = t.store.save_indicators(&batch).await.expect("bulk save");
    assert_eq!(again.unchanged, 3_000);
    let mut repeated = vec![record("1.2.3.4", 10, &[]), record("1.2.3.4", 20, &[])];
    repeated[1].observed_at += 1;
    let report = t.store.save_indicators(&repeated).await.expect("save");
    assert_eq!(
        counts(&report),
        (1, 1, 0),
        "a record repeated in one batch is stored once"
    );
    assert_eq!(
        t.store
            .indicator("ipv4-addr", "1.2.3.4")
            .await
            .expect("query")
            .expect("stored")
            .record
            .priority,
        20,
        "its last state wins"
    );
}

pub(crate) async fn top_indicators_by_priority(t: &TestStore) {
    let batch: Vec<IndicatorRecord> = [
        ("1.1.1.1", 10),
        ("2.2.2.2", 90),
        ("3.3.3.3", 85),
        ("4.4.4.4", 90),
        ("5.5.5.5", 50),
    ]
    .iter()
    .map(|(v, p)| record(v, *p, &[]))
    .collect();
    t.store.save_indicators(&batch).await.expect("save");
    let top: Vec<(String, u8)> = t
        .store
        .top_indicators(80, 10)
        .await
        .expect("query")
        .into_iter()
        .map(|s| (s.record.value, s.record.priority))
        .collect();
    assert_eq!(
        top,
        [
            ("2.2.2.2".to_owned(), 90),
            ("4.4.4.4".to_owned(), 90),
            ("3.3.3.3".to_owned(), 85)
        ]
    );
    assert_eq!(t.store.top_indicators(0, 2).await.expect("query").len(), 2);
}

pub(crate) async fn vendor_answers_keep_history(t: &TestStore) {
    let key = AnswerKey {
        source: "criminalip".into(),
        key_fingerprint: "625faa3fbbc3".into(),
        call: "ip-report".into(),
        indicator: "8.8.8.8".into(),
        parameters: "full=true".into(),
    };
    assert!(t.store.latest_answer(&key).await.expect("query").is_none());
    let answers = [
        VendorAnswer {
            key: key.clone(),
            fetched_at: 1_000,
            expires_at: 2_000,
            body: json!({"score": {"inbound": "Low"}}),
        },
        VendorAnswer {
            key: key.clone(),
            fetched_at: 5_000,
            expires_at: 9_000,
            body: json!({"score": {"inbound": "Critical"}, "unknown": [1, 2]}),
        },
    ];
    t.store.save_answers(&answers).await.expect("save");
    let latest = t
        .store
        .latest_answer(&key)
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(
        latest, answers[1],
        "the newest answer, whole, unknown fields included"
    );
    let other = AnswerKey {
        parameters: "full=false".into(),
        ..key
    };
    assert!(
        t.store
            .latest_answer(&other)
            .await
            .expect("query")
            .is_none()
    );
}

pub(crate) async fn a_newer_schema_is_refused(t: &TestStore) {
    let direct = scry_store::SqlStore::connect(&t.url)
        .await
        .expect("connect");
    direct.execute_raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)").await.expect("insert");
    let error = scry_store::open(&t.url).await.err().expect("refused");
    assert!(
        error.to_string().contains("schema is version 999"),
        "{error}"
    );
}

pub(crate) async fn pivots_find_what_is_shared_through_the_index(t: &TestStore) {
    let mut x = record("45.155.205.233", 60, &[]);
    x.facets = vec![
        (Facet::Asn, "9009".into()),
        (Facet::Cve, "CVE-2023-38408".into()),
    ];
    let mut same_asn_high = record("45.155.205.10", 90, &[]);
    same_asn_high.facets = vec![(Facet::Asn, "9009".into())];
    let mut same_asn_low = record("45.155.205.11", 20, &[]);
    same_asn_low.facets = vec![(Facet::Asn, "9009".into())];
    let mut same_cve = record("8.8.4.4", 85, &[]);
    same_cve.facets = vec![
        (Facet::Asn, "15169".into()),
        (Facet::Cve, "CVE-2021-23017".into()),
        (Facet::Cve, "CVE-2023-38408".into()),
    ];
    t.store
        .save_indicators(&[x.clone(), same_asn_high, same_asn_low, same_cve])
        .await
        .expect("save");
    let values = |rows: Vec<(scry_store::StoredIndicator, String)>| {
        rows.into_iter()
            .map(|(s, v)| (s.record.value, v))
            .collect::<Vec<_>>()
    };
    let asn = t
        .store
        .sharing(Facet::Asn, &["9009".to_owned()], &x.stix_id, 80, None, 100)
        .await
        .expect("pivot");
    assert_eq!(
        values(asn),
        [("45.155.205.10".to_owned(), "9009".to_owned())],
        "same ASN with priority >= 80, itself excluded"
    );
    let all = t
        .store
        .sharing(
            Facet::Asn,
            &["9009".to_owned(), "15169".to_owned()],
            &x.stix_id,
            0,
            None,
            100,
        )
        .await
        .expect("pivot");
    assert_eq!(values(all).len(), 3);
    let cve = t
        .store
        .sharing(
            Facet::Cve,
            &["CVE-2023-38408".to_owned()],
            "nobody",
            0,
            None,
            100,
        )
        .await
        .expect("pivot");
    assert_eq!(
        values(cve).into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
        ["8.8.4.4", "45.155.205.233"]
    );
    let both = t
        .store
        .sharing(
            Facet::Cve,
            &["CVE-2021-23017".to_owned(), "CVE-2023-38408".to_owned()],
            "nobody",
            0,
            None,
            100,
        )
        .await
        .expect("pivot");
    assert_eq!(
        values(both).into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
        ["8.8.4.4", "45.155.205.233"],
        "sharing two values is listed once"
    );
    // Several values page by the same cursor, one indicator a page, each with the least value
    // it shares.
    let mut after: Option<scry_store::PivotCursor> = None;
    let mut pages = Vec::new();
    loop {
        let page = t
            .store
            .sharing(
                Facet::Cve,
                &["CVE-2023-38408".to_owned(), "CVE-2021-23017".to_owned()],
                "nobody",
                0,
                after.as_ref(),
                1,
            )
            .await
            .expect("pivot page");
        let Some((last, _)) = page.last() else { break };
        after = Some(scry_store::PivotCursor {
            priority: last.record.priority,
            stix_id: last.record.stix_id.clone(),
        });
        pages.push(values(page));
        assert!(pages.len() <= 3, "paging ends: {pages:?}");
    }
    assert_eq!(
        pages,
        [
            vec![("8.8.4.4".to_owned(), "CVE-2021-23017".to_owned())],
            vec![("45.155.205.233".to_owned(), "CVE-2023-38408".to_owned())],
        ]
    );
    let stored = t
        .store
        .indicator("ipv4-addr", "45.155.205.233")
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(stored.record.facets, x.facets);

    // Facets follow the indicator: when they change, the old ones go.
    let mut moved = x.clone();
    moved.facets = vec![(Facet::Asn, "16509".into())];
    assert_eq!(
        t.store
            .save_indicators(&[moved])
            .await
            .expect("save")
            .updated,
        1,
        "a facet change is a change"
    );
    let cve = t
        .store
        .sharing(
            Facet::Cve,
            &["CVE-2023-38408".to_owned()],
            "nobody",
            0,
            None,
            100,
        )
        .await
        .expect("pivot");
    assert_eq!(values(cve).len(), 1);

    let direct = scry_store::SqlStore::connect(&t.url)
        .await
        .expect("connect");
    let plan = direct.sharing_plan().await.expect("plan");
    if t.store.backend() == "sqlite" {
        assert!(
            !plan.contains("TEMP B-TREE"),
            "one value's pivot walks the index in order, no sort:\n{plan}"
        );
    }
    assert!(
        plan.contains("facets_by_value"),
        "the pivot query uses the facets index:\n{plan}"
    );
    assert!(
        !plan.to_ascii_lowercase().contains("seq scan on facets"),
        "never a full scan of the facets:\n{plan}"
    );
}

pub(crate) async fn exports_page_through_everything_once(t: &TestStore) {
    let mut batch: Vec<IndicatorRecord> = (0..250)
        .map(|i| {
            record(
                &format!("45.1.{}.{}", i / 250, i % 250),
                (i % 100) as u8,
                &[],
            )
        })
        .collect();
    for (i, r) in batch.iter_mut().enumerate() {
        r.observed_at = 1_000 + i as i64;
    }
    t.store.save_indicators(&batch).await.expect("save");
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = t.store.export_page(50, 0, after, 40).await.expect("page");
        let Some((last, _)) = page.last() else { break };
        after = *last;
        seen.extend(page.into_iter().map(|(_, s)| s.record.value));
    }
    let mut expected: Vec<String> = batch
        .iter()
        .filter(|r| r.priority >= 50)
        .map(|r| r.value.clone())
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every matching indicator exactly once");
    let recent = t.store.export_page(0, 1_200, 0, 1_000).await.expect("page");
    assert_eq!(recent.len(), 50, "changed since 1,200 ms: the last 50");
}

/// A save reports what moved (priority, tags, CVEs) for new and changed indicators, nothing for
/// unchanged ones, and keeps it in the history: the diff rules trigger on.
pub(crate) async fn re_enrichment_records_what_changed(t: &TestStore) {
    let store = &t.store;
    let mut first = record("45.155.205.233", 50, &["scanner"]);
    first.facets.push((Facet::Cve, "CVE-2023-38408".into()));
    let report = store.save_indicators(&[first.clone()]).await.expect("save");
    assert_eq!(report.changes.len(), 1);
    let created = &report.changes[0];
    assert_eq!(created.previous_priority, None, "new: nothing before");
    assert_eq!(created.new_cves, ["CVE-2023-38408"]);
    assert_eq!(created.priority_delta(), 50);

    let same = store.save_indicators(&[first.clone()]).await.expect("save");
    assert!(same.changes.is_empty(), "{:?}", same.changes);

    let mut later = first.clone();
    later.priority = 85;
    later.severity = "high".into();
    later.tags = vec!["c2".into(), "scanner".into()];
    later.facets = vec![
        (Facet::Asn, "9009".into()),
        (Facet::Cve, "CVE-2024-6387".into()),
    ];
    later.observed_at += 3_600_000;
    let report = store.save_indicators(&[later.clone()]).await.expect("save");
    let change = &report.changes[..];
    assert_eq!(change.len(), 1);
    let change = &change[0];
    assert_eq!(
        (
            change.previous_priority,
            change.priority,
            change.priority_delta()
        ),
        (Some(50), 85, 35)
    );
    assert_eq!(change.new_tags, ["c2"]);
    assert!(change.removed_tags.is_empty());
    assert_eq!(change.new_cves, ["CVE-2024-6387"]);
    assert_eq!(change.removed_cves, ["CVE-2023-38408"]);
    assert_eq!(
        (change.kind.as_str(), change.value.as_str()),
        ("ipv4-addr", "45.155.205.233")
    );

    let history = store.score_history(&first.stix_id).await.expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].change.as_ref(), Some(change));
    assert_eq!(history[1].at, later.observed_at);
}

/// A value shared by many indicators (a hub: one country, one cloud ASN) is stored whole and
/// paged through by cursor: every page in priority order, each indicator exactly once.
pub(crate) async fn pivots_page_through_a_hub(t: &TestStore) {
    let hub: Vec<IndicatorRecord> = (0..250)
        .map(|i| {
            let mut r = record(
                &format!("45.2.{}.{}", i / 250, i % 250),
                (i * 7 % 101) as u8,
                &[],
            );
            r.facets.push((Facet::Country, "RO".into()));
            r
        })
        .collect();
    t.store.save_indicators(&hub).await.expect("save");
    let mut seen = Vec::new();
    let mut after: Option<scry_store::PivotCursor> = None;
    for _ in 0..20 {
        let page = t
            .store
            .sharing(
                Facet::Country,
                &["RO".to_owned()],
                "nobody",
                0,
                after.as_ref(),
                40,
            )
            .await
            .expect("pivot");
        let Some((last, _)) = page.last() else { break };
        after = Some(scry_store::PivotCursor {
            priority: last.record.priority,
            stix_id: last.record.stix_id.clone(),
        });
        seen.extend(
            page.into_iter()
                .map(|(s, _)| (s.record.priority, s.record.stix_id)),
        );
    }
    let mut want: Vec<(u8, String)> = hub
        .iter()
        .map(|r| (r.priority, r.stix_id.clone()))
        .collect();
    want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(seen, want, "all 250, each once, by priority then id");
    let others = |cap| {
        t.store
            .count_sharing(Facet::Country, "RO", &hub[0].stix_id, cap)
    };
    assert_eq!(
        others(1000).await.expect("count"),
        249,
        "the others, itself excluded"
    );
    assert_eq!(
        others(100).await.expect("count"),
        100,
        "counting stops at the cap"
    );
    let cursor: scry_store::PivotCursor = "80:ipv4-addr--x".parse().expect("cursor");
    assert_eq!(cursor.to_string(), "80:ipv4-addr--x");
    assert!("eighty:x".parse::<scry_store::PivotCursor>().is_err());
}

/// Saves from several tasks at once (the enrichment's batches while the sources archive answers,
/// or several workers) all succeed: none fails with "database is locked".
pub(crate) async fn concurrent_saves_all_succeed(t: &TestStore) {
    let mut tasks = Vec::new();
    for worker in 0..6_u32 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..15_u32 {
                // Overlapping values across workers, so saves compare with rows others wrote.
                let batch: Vec<IndicatorRecord> = (0..40_u32)
                    .map(|i| {
                        record(
                            &format!("10.9.{}.{}", round % 3, i),
                            ((worker + round + i) % 101) as u8,
                            &[],
                        )
                    })
                    .collect();
                store.save_indicators(&batch).await?;
                let answer = VendorAnswer {
                    key: AnswerKey {
                        source: "criminalip".into(),
                        key_fingerprint: "625faa3fbbc3".into(),
                        call: "ip-report".into(),
                        indicator: format!("10.9.{worker}.{round}"),
                        parameters: String::new(),
                    },
                    fetched_at: i64::from(round),
                    expires_at: i64::from(round) + 1_000,
                    body: json!({"round": round}),
                };
                store.save_answers(&[answer]).await?;
            }
            Ok::<_, scry_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await
            .expect("task ran")
            .expect("every concurrent save succeeds");
    }
    assert_eq!(t.store.count_indicators().await.expect("count"), 120);
}

pub(crate) async fn refreshes_find_what_was_enriched_longest_ago(t: &TestStore) {
    let store = &t.store;
    let mut old = record("198.51.100.1", 10, &[]);
    old.observed_at = 1_000;
    let mut older = record("198.51.100.2", 10, &[]);
    older.observed_at = 500;
    let mut recent = record("198.51.100.3", 10, &[]);
    recent.observed_at = 9_000;
    for r in [&old, &older, &recent] {
        store
            .save_indicators(std::slice::from_ref(r))
            .await
            .expect("save");
    }
    let stale = store.stale_indicators(5_000, 10).await.expect("stale");
    assert_eq!(
        stale.iter().map(|s| s.value.as_str()).collect::<Vec<_>>(),
        ["198.51.100.2", "198.51.100.1"],
        "longest ago first, recent ones left out"
    );
    assert_eq!(stale[0].checked_at, 500);
    assert_eq!(stale[0].tlp.as_deref(), Some("amber"));
    assert_eq!(
        store.stale_indicators(5_000, 1).await.expect("stale").len(),
        1
    );

    // Enriching again with an identical result writes no new state, but counts as a check.
    let mut rechecked = older.clone();
    rechecked.observed_at = 7_000;
    let report = store
        .save_indicators(std::slice::from_ref(&rechecked))
        .await
        .expect("save");
    assert_eq!(report.unchanged, 1);
    let stale = store.stale_indicators(5_000, 10).await.expect("stale");
    assert_eq!(
        stale.iter().map(|s| s.value.as_str()).collect::<Vec<_>>(),
        ["198.51.100.1"]
    );
    let kept = store
        .indicator("ipv4-addr", "198.51.100.2")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(kept.last_changed, 500, "an unchanged state keeps its time");
}

pub(crate) async fn the_rate_ledger_holds_one_window_for_every_process(t: &TestStore) {
    // Two opens of one store stand for two processes.
    let other = scry_store::open(&t.url).await.expect("second open");
    let stores = [t.store.clone(), other];
    let scope = "criminalip:625faa3fbbc3";
    for (n, store) in stores.iter().cycle().take(3).enumerate() {
        assert_eq!(
            store.take_rate_slot(scope, 3, 60_000).await.expect("take"),
            None,
            "call {n} is within the limit"
        );
    }
    let wait = stores[1]
        .take_rate_slot(scope, 3, 60_000)
        .await
        .expect("take")
        .expect("the fourth call in the window waits, whichever process asks");
    assert!((1..=60_000).contains(&wait), "wait {wait} ms");
    assert_eq!(
        stores[0]
            .take_rate_slot("criminalip:0f1e2d3c4b5a", 3, 60_000)
            .await
            .expect("take"),
        None,
        "another key has a window of its own"
    );

    // A place frees up when the window has moved past the oldest call.
    assert_eq!(
        stores[0]
            .take_rate_slot("short", 1, 200)
            .await
            .expect("take"),
        None
    );
    let wait = stores[1]
        .take_rate_slot("short", 1, 200)
        .await
        .expect("take")
        .expect("full");
    assert!((1..=200).contains(&wait), "wait {wait} ms");
    tokio::time::sleep(std::time::Duration::from_millis(wait as u64 + 20)).await;
    assert_eq!(
        stores[1]
            .take_rate_slot("short", 1, 200)
            .await
            .expect("take"),
        None
    );

    // Processes asking at the same moment are served one at a time: never more than the limit.
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = stores[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            store.take_rate_slot("contended", 5, 60_000).await
        }));
    }
    let mut taken = 0;
    for task in tasks {
        if task.await.expect("task ran").expect("take").is_none() {
            taken += 1;
        }
    }
    assert_eq!(taken, 5, "exactly the limit is granted");
}
