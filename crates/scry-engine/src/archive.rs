//! The store as the sources' answer archive and rate ledger: paid answers outlive the process,
//! so a later run, or another worker on the same PostgreSQL store, reuses an answer still within
//! its TTL; and every process calling a vendor with the same key keeps under one rate limit.

use std::sync::Arc;

use scry_sources::{AnswerArchive, ArchiveKey, RateLedger, SourceContext, SourceFuture};
use scry_store::{AnswerKey, Store, StoreError, VendorAnswer};
use serde_json::Value;

/// Adapts a [`Store`] to [`AnswerArchive`] and [`RateLedger`].
pub struct StoreArchive(pub Arc<dyn Store>);

/// What sources built over `store` are given: the store as their answer archive and shared
/// rate window, and the credits the history says were spent today and this month.
pub async fn source_context(store: &Arc<dyn Store>) -> Result<SourceContext, StoreError> {
    let archive = Arc::new(StoreArchive(Arc::clone(store)));
    Ok(SourceContext {
        archive: Some(Arc::clone(&archive) as Arc<dyn AnswerArchive>),
        rate_ledger: Some(archive as Arc<dyn RateLedger>),
        spent: crate::usage::spent_by_account(store.as_ref()).await?,
        clock: scry_sources::clock::system(),
    })
}

impl RateLedger for StoreArchive {
    fn take<'a>(
        &'a self,
        scope: &'a str,
        max: u32,
        window_ms: i64,
    ) -> SourceFuture<'a, Result<Option<i64>, String>> {
        Box::pin(async move {
            self.0
                .take_rate_slot(scope, max, window_ms)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

fn answer_key(key: &ArchiveKey) -> AnswerKey {
    AnswerKey {
        source: key.source.clone(),
        key_fingerprint: key.key_fingerprint.clone(),
        call: key.call.clone(),
        indicator: key.indicator.clone(),
        parameters: key.parameters.clone(),
    }
}

impl AnswerArchive for StoreArchive {
    fn load<'a>(
        &'a self,
        key: &'a ArchiveKey,
        now_ms: i64,
    ) -> SourceFuture<'a, Result<Option<(Value, i64)>, String>> {
        Box::pin(async move {
            let answer = self
                .0
                .latest_answer(&answer_key(key))
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer
                .filter(|a| a.expires_at > now_ms)
                .map(|a| (a.body, a.expires_at)))
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a ArchiveKey,
        body: &'a Value,
        fetched_ms: i64,
        expires_ms: i64,
    ) -> SourceFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let answer = VendorAnswer {
                key: answer_key(key),
                fetched_at: fetched_ms,
                expires_at: expires_ms,
                body: body.clone(),
            };
            self.0
                .save_answers(std::slice::from_ref(&answer))
                .await
                .map_err(|e| e.to_string())
        })
    }
}
