//! The automation part of the contract: the durable job queue, history, workflow, blocklists.

use std::collections::HashSet;

use scry_store::{BlockEntry, Event, EventFilter, JobOutcome, NewJob, QueueDepth, Workflow};
use serde_json::json;

use crate::TestStore;

fn job(n: u32, key: Option<&str>) -> NewJob {
    NewJob {
        kind: "action".into(),
        dedupe_key: key.map(str::to_owned),
        payload: json!({"n": n}),
        run_after: 1_000,
        max_attempts: 3,
    }
}

pub(crate) async fn jobs_are_leased_retried_and_finished(t: &TestStore) {
    let store = &t.store;
    let added = store
        .enqueue_jobs(&[job(1, Some("a")), job(2, Some("b")), job(3, None)])
        .await
        .expect("enqueue");
    assert_eq!(added, 3);
    // The same key again, in another call and twice in one call: never enqueued twice.
    let again = store
        .enqueue_jobs(&[job(9, Some("a")), job(4, Some("c")), job(5, Some("c"))])
        .await
        .expect("enqueue again");
    assert_eq!(again, 1, "only the new key `c` is added");

    assert!(
        store
            .claim_jobs("w1", &[], 999, 60_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is due before run_after"
    );
    let claimed = store
        .claim_jobs("w1", &[], 1_000, 60_000, 2)
        .await
        .expect("claim");
    assert_eq!(
        claimed
            .iter()
            .map(|j| j.payload["n"].clone())
            .collect::<Vec<_>>(),
        [json!(1), json!(2)],
        "oldest first, at most the limit"
    );
    assert!(
        claimed
            .iter()
            .all(|j| j.attempts == 1 && j.max_attempts == 3)
    );
    let others = store
        .claim_jobs("w2", &[], 1_001, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(others.len(), 2, "leased jobs are not handed out twice");

    let first = &claimed[0];
    assert!(
        !store
            .finish_job(first.id, "w2", &JobOutcome::Done, 1_002)
            .await
            .expect("finish"),
        "only the lease holder finishes a job"
    );
    assert!(
        store
            .finish_job(first.id, "w1", &JobOutcome::Done, 1_002)
            .await
            .expect("finish")
    );
    assert!(
        !store
            .finish_job(first.id, "w1", &JobOutcome::Done, 1_003)
            .await
            .expect("finish"),
        "a finished job stays finished"
    );

    let second = &claimed[1];
    let retry = JobOutcome::Retry {
        at: 5_000,
        error: "HTTP 503".into(),
    };
    assert!(
        store
            .finish_job(second.id, "w1", &retry, 1_002)
            .await
            .expect("retry")
    );
    assert!(
        store
            .claim_jobs("w1", &[], 4_999, 60_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "a retry waits for its time"
    );
    let retried = store
        .claim_jobs("w1", &[], 5_000, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id, retried[0].attempts), (second.id, 2));
    store
        .finish_job(
            second.id,
            "w1",
            &JobOutcome::Retry {
                at: 6_000,
                error: "HTTP 503".into(),
            },
            5_001,
        )
        .await
        .expect("retry");
    let last = store
        .claim_jobs("w1", &[], 6_000, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(last[0].attempts, 3);
    store
        .finish_job(
            second.id,
            "w1",
            &JobOutcome::Retry {
                at: 7_000,
                error: "HTTP 503".into(),
            },
            6_001,
        )
        .await
        .expect("retry");
    assert!(
        store
            .claim_jobs("w1", &[], 100_000, 60_000, 10)
            .await
            .expect("claim")
            .iter()
            .all(|j| j.id != second.id),
        "after its last attempt a retry is a failure"
    );
    let depth = store.queue_depth(100_000).await.expect("depth");
    assert_eq!(
        depth,
        QueueDepth {
            ready: 0,
            waiting: 2,
            done: 1,
            failed: 1
        },
        "w2 still holds two leases until 61,001"
    );
}

pub(crate) async fn a_dead_workers_jobs_come_back(t: &TestStore) {
    let store = &t.store;
    store
        .enqueue_jobs(&[NewJob {
            max_attempts: 2,
            ..job(1, Some("x"))
        }])
        .await
        .expect("enqueue");
    let held = store
        .claim_jobs("dead", &[], 1_000, 10_000, 5)
        .await
        .expect("claim");
    assert_eq!(held.len(), 1);
    // A worker still busy with it keeps it by renewing its lease; another cannot renew it.
    assert_eq!(
        store
            .renew_leases("dead", &[held[0].id], 11_500)
            .await
            .expect("renew"),
        1
    );
    assert_eq!(
        store
            .renew_leases("alive", &[held[0].id], 99_000)
            .await
            .expect("renew"),
        0,
        "only the holder renews"
    );
    assert!(
        store
            .claim_jobs("alive", &[], 11_499, 10_000, 5)
            .await
            .expect("claim")
            .is_empty()
    );
    // The lease ran out: the job is due again, for another worker.
    let again = store
        .claim_jobs("alive", &[], 11_500, 10_000, 5)
        .await
        .expect("claim");
    assert_eq!((again[0].id, again[0].attempts), (held[0].id, 2));
    assert!(
        !store
            .finish_job(held[0].id, "dead", &JobOutcome::Done, 11_501)
            .await
            .expect("finish"),
        "the dead worker's late answer is refused"
    );
    // The second worker dies too, on the last attempt: the job fails instead of looping.
    assert!(
        store
            .claim_jobs("third", &[], 30_000, 10_000, 5)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(store.queue_depth(30_000).await.expect("depth").failed, 1);
}

pub(crate) async fn concurrent_workers_claim_each_job_once(t: &TestStore) {
    let jobs: Vec<NewJob> = (0..300).map(|n| job(n, None)).collect();
    t.store.enqueue_jobs(&jobs).await.expect("enqueue");
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{worker}");
            let mut seen = Vec::new();
            for _ in 0..200 {
                let batch = store.claim_jobs(&owner, &[], 2_000, 60_000, 7).await?;
                if batch.is_empty() {
                    break;
                }
                for job in batch {
                    assert!(
                        store
                            .finish_job(job.id, &owner, &JobOutcome::Done, 2_001)
                            .await?
                    );
                    seen.push(job.id);
                }
            }
            Ok::<_, scry_store::StoreError>(seen)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task ran").expect("claims succeed"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (300, 300),
        "every job ran exactly once"
    );
}

pub(crate) async fn history_filters_and_pages(t: &TestStore) {
    let event = |at: i64, kind: &str, stix_id: &str, rule: Option<&str>| Event {
        id: 0,
        at,
        kind: kind.into(),
        stix_id: Some(stix_id.into()),
        indicator: Some("203.0.113.9".into()),
        rule: rule.map(str::to_owned),
        action: None,
        outcome: "ok".into(),
        origin: "source:criminalip".into(),
        account: None,
        duration_ms: Some(12),
        credits: 1,
        detail: json!({"n": at}),
    };
    let events: Vec<Event> = (0..250)
        .map(|n| {
            event(
                n,
                if n % 2 == 0 { "call" } else { "rule" },
                if n % 5 == 0 {
                    "ipv4-addr--a"
                } else {
                    "ipv4-addr--b"
                },
                (n % 2 == 1).then_some("block-high"),
            )
        })
        .collect();
    t.store.record_events(&events).await.expect("record");
    let all = t
        .store
        .events(&EventFilter {
            limit: 1_000,
            ..EventFilter::default()
        })
        .await
        .expect("events");
    assert_eq!(all.len(), 250);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].detail, json!({"n": 249}));
    assert_eq!(all[0].duration_ms, Some(12));

    let for_a = t
        .store
        .events(&EventFilter {
            stix_id: Some("ipv4-addr--a".into()),
            limit: 1_000,
            ..EventFilter::default()
        })
        .await
        .expect("events");
    assert_eq!(for_a.len(), 50);
    let rule_since = t
        .store
        .events(&EventFilter {
            rule: Some("block-high".into()),
            since: Some(200),
            limit: 1_000,
            ..EventFilter::default()
        })
        .await
        .expect("events");
    assert_eq!(rule_since.len(), 25);
    assert!(rule_since.iter().all(|e| e.at >= 200 && e.kind == "rule"));

    let mut pages = 0;
    let mut seen = 0;
    let mut before = None;
    loop {
        let page = t
            .store
            .events(&EventFilter {
                kind: Some("call".into()),
                before_id: before,
                limit: 40,
                ..EventFilter::default()
            })
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        pages += 1;
        seen += page.len();
        before = page.last().map(|e| e.id);
    }
    assert_eq!((pages, seen), (4, 125));
}

pub(crate) async fn workflow_and_blocklists_round_trip(t: &TestStore) {
    let store = &t.store;
    assert_eq!(store.workflow("ipv4-addr--a").await.expect("read"), None);
    let mut workflow = Workflow {
        status: "investigating".into(),
        labels: vec!["c2".into()],
        priority_override: Some(95),
        ticket: Some("SOC-12".into()),
        updated_at: 5,
        origin: "rule:block-high".into(),
        ..Workflow::untouched("ipv4-addr--a")
    };
    store.save_workflow(&workflow).await.expect("save");
    assert_eq!(
        store.workflow("ipv4-addr--a").await.expect("read"),
        Some(workflow.clone())
    );
    workflow.status = "blocked".into();
    workflow.priority_override = None;
    store.save_workflow(&workflow).await.expect("save");
    assert_eq!(
        store.workflow("ipv4-addr--a").await.expect("read"),
        Some(workflow)
    );

    let entry = |list: &str, value: &str, expires_at: i64| BlockEntry {
        list: list.into(),
        value: value.into(),
        stix_id: format!("ipv4-addr--{value}"),
        added_at: 100,
        expires_at,
        reason: "priority 92".into(),
        origin: "rule:block-high".into(),
        version_us: 0,
        removed_at: None,
    };
    store
        .block(&entry("fw", "203.0.113.9", 1_000))
        .await
        .expect("block");
    store
        .block(&entry("fw", "198.51.100.7", 500))
        .await
        .expect("block");
    store
        .block(&entry("other", "203.0.113.9", 2_000))
        .await
        .expect("block");
    // Blocking again moves the expiry later, never earlier.
    store
        .block(&entry("fw", "203.0.113.9", 3_000))
        .await
        .expect("block");
    store
        .block(&entry("fw", "203.0.113.9", 800))
        .await
        .expect("block");
    let list = store.blocklist("fw", 400).await.expect("list");
    assert_eq!(
        list.iter()
            .map(|e| (e.value.as_str(), e.expires_at))
            .collect::<Vec<_>>(),
        [("198.51.100.7", 500), ("203.0.113.9", 3_000)]
    );
    // The store stamps each write from its commit clock: the entry written last is the newest.
    assert!(
        list[0].version_us > 0 && list[1].version_us > list[0].version_us,
        "{list:?}"
    );
    assert_eq!(
        store.blocklist("fw", 600).await.expect("list").len(),
        1,
        "expired entries are not served"
    );
    let expired = store.expire_blocks(2_500).await.expect("expire");
    assert_eq!(
        expired
            .iter()
            .map(|e| (e.list.as_str(), e.value.as_str()))
            .collect::<Vec<_>>(),
        [("fw", "198.51.100.7"), ("other", "203.0.113.9")]
    );
    assert!(store.unblock("fw", "203.0.113.9").await.expect("unblock"));
    assert!(!store.unblock("fw", "203.0.113.9").await.expect("unblock"));
    assert!(store.blocklist("fw", 0).await.expect("list").is_empty());
    // Removed entries stay as tombstones for feeds, each a newer version than before.
    let changes = store.blocklist_changes("fw", 0, 10).await.expect("changes");
    assert_eq!(
        changes
            .iter()
            .map(|e| (e.value.as_str(), e.removed_at.is_some()))
            .collect::<Vec<_>>(),
        [("198.51.100.7", true), ("203.0.113.9", true)],
        "{changes:?}"
    );
    assert!(changes[1].version_us > list[1].version_us);
    let after = changes[0].version_us;
    assert_eq!(
        store
            .blocklist_changes("fw", after, 10)
            .await
            .expect("changes")
            .len(),
        1,
        "a feed reads on after what it has"
    );
    // Blocked again, a tombstone is an entry again with a new expiry.
    store
        .block(&entry("fw", "203.0.113.9", 9_000))
        .await
        .expect("block");
    let back = store.blocklist("fw", 0).await.expect("list");
    assert_eq!(
        back.iter()
            .map(|e| (e.value.as_str(), e.expires_at, e.removed_at))
            .collect::<Vec<_>>(),
        [("203.0.113.9", 9_000, None)]
    );
}

pub(crate) async fn claims_take_only_the_kinds_asked_for(t: &TestStore) {
    let store = &t.store;
    let enrich = NewJob {
        kind: "enrich".into(),
        ..job(2, None)
    };
    store
        .enqueue_jobs(&[job(1, None), enrich])
        .await
        .expect("enqueue");
    let actions = store
        .claim_jobs("w1", &["action"], 1_000, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].kind, "action");
    let rest = store
        .claim_jobs("w2", &["enrich", "other"], 1_000, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].kind, "enrich");
    assert!(
        store
            .claim_jobs("w3", &[], 1_000, 60_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
}

pub(crate) async fn call_history_counts_credits_and_times(t: &TestStore) {
    let store = &t.store;
    let call = |at: i64, outcome: &str, credits: i64, ms: Option<i64>| Event {
        credits,
        duration_ms: ms,
        ..Event::about(
            "call",
            "ipv4-addr--x",
            "198.51.100.7",
            outcome,
            "source:criminalip",
            at,
            json!({}),
        )
    };
    let mut skip = Event::about(
        "skip",
        "ipv4-addr--y",
        "10.0.0.1",
        "private",
        "egress",
        2_000,
        json!({}),
    );
    skip.credits = 0;
    store
        .record_events(&[
            call(500, "ok", 1, Some(900)),
            call(1_000, "ok", 1, Some(100)),
            call(1_500, "ok", 3, Some(300)),
            call(1_600, "cached", 0, Some(1)),
            call(1_700, "failed", 0, Some(30_000)),
            skip,
        ])
        .await
        .expect("record");
    let counts = store.call_counts(1_000).await.expect("counts");
    let summary: Vec<(String, String, u64, u64)> = counts
        .into_iter()
        .map(|c| (c.source, c.outcome, c.calls, c.credits))
        .collect();
    assert_eq!(
        summary,
        [
            ("criminalip".into(), "cached".into(), 1, 0),
            ("criminalip".into(), "failed".into(), 1, 0),
            ("criminalip".into(), "ok".into(), 2, 4),
        ],
        "from `since` on, calls only"
    );
    let mut times = store
        .call_durations("criminalip", "ok", 1_000, 10)
        .await
        .expect("durations");
    times.sort_unstable();
    assert_eq!(times, [100, 300]);
    assert_eq!(
        store
            .call_durations("criminalip", "ok", 0, 1)
            .await
            .expect("durations"),
        [300],
        "the newest first when capped"
    );
}
