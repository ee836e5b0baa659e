//! The store contract, run against a real SQLite file and a real PostgreSQL server.
//!
//! PostgreSQL: `SCRY_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`, the
//! machine's trust-auth server that `.ci/run` starts); without a server there the PostgreSQL
//! half is skipped, one line per test, except under `CI=true`. Each test works in a schema of its own,
//! dropped at the end, so tests run in parallel and leave nothing behind.

mod automation;
mod contract;
mod server;

use std::sync::Arc;

use scry_store::{SqlStore, Store};

/// A store under test, and what to clean up afterwards.
pub(crate) struct TestStore {
    pub store: Arc<dyn Store>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

pub(crate) async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("nested/dir");
    // The store makes its file, not its folder: a mistyped folder is an error.
    let missing = scry_store::open(&format!("sqlite://{}/scry.db", folder.display())).await;
    assert!(
        matches!(missing, Err(scry_store::StoreError::MissingFolder(ref f)) if f.ends_with("nested/dir")),
        "{:?}",
        missing.err()
    );
    std::fs::create_dir_all(&folder).expect("mkdir");
    let url = format!("sqlite://{}", folder.join("scry.db").display());
    let store = scry_store::open(&url)
        .await
        .expect("the SQLite store opens");
    TestStore {
        store,
        url,
        _dir: Some(dir),
        schema: None,
    }
}

/// A store in a schema of its own on the test server, or `None` when no server is reachable
/// (the test is skipped, or fails under `CI=true`: see `scry-testkit`).
pub(crate) async fn postgres() -> Option<TestStore> {
    let base = scry_testkit::postgres()?;
    let schema = format!("scry_test_{}_{}", std::process::id(), unique());
    let admin = SqlStore::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {base} ({e}); start it, or point SCRY_TEST_POSTGRES_URL at a server"));
    admin
        .execute_raw(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create the test schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let store = scry_store::open(&url)
        .await
        .expect("the PostgreSQL store opens");
    Some(TestStore {
        store,
        url,
        _dir: None,
        schema: Some((base, schema)),
    })
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

impl TestStore {
    pub(crate) async fn cleanup(self) {
        if let Some((base, schema)) = &self.schema {
            let admin = SqlStore::connect(base).await.expect("connect");
            admin
                .execute_raw(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .expect("drop the test schema");
        }
    }
}

/// Runs a contract test against both backends.
macro_rules! both_backends {
    ($($module:ident::$name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let t = crate::sqlite().await;
                crate::$module::$name(&t).await;
                t.cleanup().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(t) = crate::postgres().await else { return };
                crate::$module::$name(&t).await;
                t.cleanup().await;
            })*
        }
    };
}

both_backends!(
    contract::migrations_apply_once_and_reopen,
    contract::saving_is_idempotent_and_tracks_changes,
    contract::bulk_saves_in_batches,
    contract::top_indicators_by_priority,
    contract::vendor_answers_keep_history,
    contract::a_newer_schema_is_refused,
    contract::pivots_find_what_is_shared_through_the_index,
    contract::exports_page_through_everything_once,
    contract::re_enrichment_records_what_changed,
    contract::pivots_page_through_a_hub,
    contract::concurrent_saves_all_succeed,
    contract::refreshes_find_what_was_enriched_longest_ago,
    contract::the_rate_ledger_holds_one_window_for_every_process,
    automation::claims_take_only_the_kinds_asked_for,
    automation::call_history_counts_credits_and_times,
    automation::jobs_are_leased_retried_and_finished,
    automation::a_dead_workers_jobs_come_back,
    automation::concurrent_workers_claim_each_job_once,
    automation::history_filters_and_pages,
    automation::workflow_and_blocklists_round_trip,
    server::the_indicator_list_filters_orders_and_pages,
    server::tokens_and_sessions_keep_digests_and_end_together,
    server::the_overview_counts_severities_shared_values_and_days,
);
