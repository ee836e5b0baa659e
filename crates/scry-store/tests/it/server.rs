//! What the server needs of every store: the indicator list with its filters, orders and keyset
//! pages; tokens kept as digests; browser sessions that end with their token.

use scry_store::{Facet, IndicatorOrder, IndicatorQuery, IndicatorRecord, Workflow};
use serde_json::json;

use crate::TestStore;

fn record(i: usize) -> IndicatorRecord {
    let value = format!("10.0.{}.{}", i / 250, i % 250);
    IndicatorRecord {
        stix_id: format!("ipv4-addr--{value}"),
        kind: if i.is_multiple_of(5) {
            "domain-name".into()
        } else {
            "ipv4-addr".into()
        },
        value: if i.is_multiple_of(5) {
            format!("host{i}.example.com")
        } else {
            value
        },
        priority: (i * 7 % 101) as u8,
        severity: if i.is_multiple_of(2) {
            "high".into()
        } else {
            "low".into()
        },
        enrichment_status: if i.is_multiple_of(3) {
            "skipped".into()
        } else {
            "enriched".into()
        },
        skip_reason: None,
        tlp: None,
        tags: if i.is_multiple_of(4) {
            vec!["tor".into(), "c2_x%".into()]
        } else {
            vec![]
        },
        reasons: json!([]),
        // A nested key with a source's name must not count as that source answering.
        sources: if i.is_multiple_of(6) {
            json!({"criminalip": {"status": "ok"}})
        } else {
            json!({"geo": {"status": "ok", "data": {"criminalip": 1}}})
        },
        observed_at: 1_700_000_000_000 + i as i64,
        facets: vec![],
    }
}

async fn all_pages(t: &TestStore, mut query: IndicatorQuery) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let page = t.store.search_indicators(&query).await.expect("search");
        out.extend(page.rows.iter().map(|r| r.stored.record.value.clone()));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return out,
        }
    }
    panic!("paging does not end");
}

pub(crate) async fn the_indicator_list_filters_orders_and_pages(t: &TestStore) {
    let records: Vec<IndicatorRecord> = (0..60).map(record).collect();
    t.store.save_indicators(&records).await.expect("save");
    t.store
        .save_workflow(&Workflow {
            status: "investigating".into(),
            labels: vec!["campaign-x".into()],
            ..Workflow::untouched(&records[7].stix_id)
        })
        .await
        .expect("workflow");
    for (order, descending) in [
        (IndicatorOrder::Priority, true),
        (IndicatorOrder::Priority, false),
        (IndicatorOrder::Value, false),
        (IndicatorOrder::Value, true),
        (IndicatorOrder::FirstSeen, true),
        (IndicatorOrder::LastChanged, false),
    ] {
        let got = all_pages(
            t,
            IndicatorQuery {
                order,
                descending,
                limit: 7,
                ..IndicatorQuery::default()
            },
        )
        .await;
        let mut expected: Vec<&IndicatorRecord> = records.iter().collect();
        match order {
            IndicatorOrder::Priority => expected.sort_by_key(|r| r.priority),
            IndicatorOrder::Value => expected.sort_by(|a, b| a.value.cmp(&b.value)),
            _ => {}
        }
        assert_eq!(got.len(), 60, "{order:?}: each row once");
        let unique: std::collections::BTreeSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), 60, "{order:?}: no repeats");
        if order == IndicatorOrder::Value {
            let mut sorted = got.clone();
            sorted.sort();
            if descending {
                sorted.reverse();
            }
            assert_eq!(got, sorted, "{order:?} descending {descending}");
        }
        if order == IndicatorOrder::Priority {
            let by_value = |v: &String| {
                records
                    .iter()
                    .find(|r| &r.value == v)
                    .expect("row")
                    .priority
            };
            let priorities: Vec<u8> = got.iter().map(by_value).collect();
            let ok = priorities.windows(2).all(|w| {
                if descending {
                    w[0] >= w[1]
                } else {
                    w[0] <= w[1]
                }
            });
            assert!(ok, "{priorities:?}");
        }
    }
    let count = |query: IndicatorQuery| async move {
        all_pages(t, IndicatorQuery { limit: 9, ..query }).await
    };
    let expect = |f: &dyn Fn(&IndicatorRecord) -> bool| records.iter().filter(|r| f(r)).count();
    assert_eq!(
        count(IndicatorQuery {
            min_priority: 30,
            max_priority: 60,
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        expect(&|r| (30..=60).contains(&r.priority))
    );
    assert_eq!(
        count(IndicatorQuery {
            kinds: vec!["domain-name".into()],
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        12
    );
    assert_eq!(
        count(IndicatorQuery {
            severities: vec!["high".into()],
            enrichment: Some("enriched".into()),
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        expect(&|r| r.severity == "high" && r.enrichment_status == "enriched")
    );
    // Tags are matched exactly, with LIKE's wildcards taken literally; labels count as tags.
    assert_eq!(
        count(IndicatorQuery {
            tag: Some("c2_x%".into()),
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        15
    );
    assert_eq!(
        count(IndicatorQuery {
            tag: Some("c2".into()),
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        count(IndicatorQuery {
            tag: Some("campaign-x".into()),
            ..IndicatorQuery::default()
        })
        .await,
        vec![records[7].value.clone()]
    );
    assert_eq!(
        count(IndicatorQuery {
            source: Some("criminalip".into()),
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        count(IndicatorQuery {
            status: Some("investigating".into()),
            ..IndicatorQuery::default()
        })
        .await,
        vec![records[7].value.clone()]
    );
    assert_eq!(
        count(IndicatorQuery {
            status: Some("new".into()),
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        59
    );
    assert_eq!(
        count(IndicatorQuery {
            text: Some("HOST1".into()),
            ..IndicatorQuery::default()
        })
        .await
        .len(),
        expect(&|r| r.value.contains("host1"))
    );
    let page = t
        .store
        .search_indicators(&IndicatorQuery {
            status: Some("investigating".into()),
            ..IndicatorQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(page.rows[0].labels, vec!["campaign-x".to_owned()]);
    // A cursor of one order is refused for another.
    let first = t
        .store
        .search_indicators(&IndicatorQuery {
            limit: 3,
            ..IndicatorQuery::default()
        })
        .await
        .expect("search");
    let wrong = t
        .store
        .search_indicators(&IndicatorQuery {
            order: IndicatorOrder::Value,
            after: first.next.clone(),
            ..IndicatorQuery::default()
        })
        .await;
    assert!(
        matches!(wrong, Err(scry_store::StoreError::Invalid(_))),
        "{wrong:?}"
    );
    let cursor = first.next.expect("a next page");
    assert_eq!(
        cursor.to_string().parse::<scry_store::IndicatorCursor>(),
        Ok(cursor)
    );
    let found = t
        .store
        .indicator_by_id(&records[3].stix_id)
        .await
        .expect("by id");
    assert_eq!(
        found.map(|s| s.record.value),
        Some(records[3].value.clone())
    );
}

pub(crate) async fn tokens_and_sessions_keep_digests_and_end_together(t: &TestStore) {
    let store = &t.store;
    let token = store
        .create_token("alice", "admin", "digest-a", 1_000, Some(5_000))
        .await
        .expect("create");
    assert_eq!(
        (token.name.as_str(), token.role.as_str(), token.expires_at),
        ("alice", "admin", Some(5_000))
    );
    let again = store
        .create_token("alice", "viewer", "digest-b", 1_000, None)
        .await;
    assert!(
        matches!(again, Err(scry_store::StoreError::Conflict(_))),
        "{again:?}"
    );
    assert_eq!(
        store
            .token_by_hash("digest-a")
            .await
            .expect("find")
            .map(|t| t.id),
        Some(token.id)
    );
    assert_eq!(store.token_by_hash("digest-x").await.expect("find"), None);
    store.touch_account(token.id, 2_000).await.expect("touch");
    assert_eq!(
        store.accounts().await.expect("list")[0].last_used_at,
        Some(2_000)
    );
    store
        .create_session("cookie-1", token.id, "csrf-1", 2_000, 10_000)
        .await
        .expect("session");
    store
        .create_session("cookie-old", token.id, "csrf-0", 100, 1_500)
        .await
        .expect("session");
    let session = store
        .session("cookie-1", 3_000)
        .await
        .expect("session")
        .expect("live");
    assert_eq!(
        (session.account.name.as_str(), session.csrf.as_str()),
        ("alice", "csrf-1")
    );
    assert_eq!(
        store.session("cookie-1", 10_000).await.expect("session"),
        None,
        "expired"
    );
    assert_eq!(
        store
            .session("cookie-old", 1_000)
            .await
            .expect("session")
            .map(|s| s.csrf),
        Some("csrf-0".into())
    );
    store
        .create_session("cookie-2", token.id, "csrf-2", 2_000, 10_000)
        .await
        .expect("session");
    assert_eq!(
        store.session("cookie-old", 1_000).await.expect("session"),
        None,
        "expired sessions are removed as new ones open"
    );
    store.end_session("cookie-2").await.expect("end");
    assert_eq!(
        store.session("cookie-2", 3_000).await.expect("session"),
        None
    );
    assert!(store.revoke_account("alice", 4_000).await.expect("revoke"));
    assert!(
        !store.revoke_account("alice", 4_500).await.expect("revoke"),
        "revoked once"
    );
    assert_eq!(
        store.session("cookie-1", 3_000).await.expect("session"),
        None,
        "a revoked token's sessions end"
    );
    assert_eq!(
        store
            .token_by_hash("digest-a")
            .await
            .expect("find")
            .and_then(|t| t.revoked_at),
        Some(4_000)
    );
    store.ping().await.expect("ping");
    // Local users: found by name with their hash, never by a token digest; one name per account.
    let user = store
        .create_user("bob", "analyst", "pbkdf2-sha256$1$00$00", 5_000)
        .await
        .expect("user");
    assert_eq!(
        (user.kind.as_str(), user.role.as_str()),
        ("user", "analyst")
    );
    let clash = store.create_user("alice", "viewer", "x", 5_000).await;
    assert!(
        matches!(clash, Err(scry_store::StoreError::Conflict(_))),
        "{clash:?}"
    );
    let (found, hash) = store.user("bob").await.expect("user").expect("bob");
    assert_eq!(
        (found.id, hash.as_str()),
        (user.id, "pbkdf2-sha256$1$00$00")
    );
    assert_eq!(
        store.user("alice").await.expect("user"),
        None,
        "a token is not a user"
    );
    let kinds: Vec<(String, String)> = store
        .accounts()
        .await
        .expect("list")
        .into_iter()
        .map(|a| (a.name, a.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("alice".into(), "token".into()),
            ("bob".into(), "user".into())
        ]
    );
    store
        .create_session("cookie-bob", user.id, "csrf-b", 5_000, 9_000)
        .await
        .expect("session");
    assert!(store.revoke_account("bob", 6_000).await.expect("revoke"));
    assert_eq!(
        store.session("cookie-bob", 5_500).await.expect("session"),
        None
    );
}

pub(crate) async fn the_overview_counts_severities_shared_values_and_days(t: &TestStore) {
    let day = 86_400_000_i64;
    let mut records: Vec<IndicatorRecord> = (0..9).map(record).collect();
    for (i, r) in records.iter_mut().enumerate() {
        r.facets = vec![(
            Facet::Asn,
            if i < 6 { "9009".into() } else { "13335".into() },
        )];
        if i < 3 {
            r.facets.push((Facet::Cve, "CVE-2023-38408".into()));
        }
    }
    t.store.save_indicators(&records).await.expect("save");
    t.store
        .record_events(&[
            scry_store::Event::about(
                "call",
                &records[0].stix_id,
                &records[0].value,
                "ok",
                "source:criminalip",
                3 * day + 5,
                json!({}),
            ),
            scry_store::Event::about(
                "call",
                &records[1].stix_id,
                &records[1].value,
                "ok",
                "source:criminalip",
                3 * day + 9,
                json!({}),
            ),
            scry_store::Event::about(
                "call",
                &records[1].stix_id,
                &records[1].value,
                "failed",
                "source:criminalip",
                4 * day,
                json!({}),
            ),
        ])
        .await
        .expect("events");
    let overview = t.store.overview(0, 10).await.expect("overview");
    assert_eq!(overview.indicators, 9);
    let high = overview
        .by_severity
        .iter()
        .find(|(s, _)| s == "high")
        .map(|(_, n)| *n);
    assert_eq!(high, Some(5));
    assert_eq!(overview.top[0], ("asn".to_owned(), "9009".to_owned(), 6));
    // Among priority >= 30 only: 13335's three (42, 49, 56) beat 9009's one (35).
    assert_eq!(
        t.store
            .top_facet_values(Facet::Asn, 30, 10)
            .await
            .expect("top ASNs"),
        vec![("13335".to_owned(), 3), ("9009".to_owned(), 1)]
    );
    assert!(
        t.store
            .top_facet_values(Facet::Asn, 57, 10)
            .await
            .expect("top ASNs")
            .is_empty()
    );
    assert!(
        overview
            .top
            .contains(&("cve".to_owned(), "CVE-2023-38408".to_owned(), 3))
    );
    assert!(
        overview
            .top
            .contains(&("tag".to_owned(), "tor".to_owned(), 3)),
        "{:?}",
        overview.top
    );
    assert_eq!(
        overview.calls_per_day,
        vec![
            (3, "criminalip".to_owned(), "ok".to_owned(), 2),
            (4, "criminalip".to_owned(), "failed".to_owned(), 1),
        ]
    );
    let total_new: u64 = overview.new_per_day.iter().map(|(_, n)| n).sum();
    assert_eq!(total_new, 9);
    assert!(
        t.store
            .overview(i64::MAX / 2, 10)
            .await
            .expect("overview")
            .new_per_day
            .is_empty()
    );
}
