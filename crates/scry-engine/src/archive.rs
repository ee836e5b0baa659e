//! The store as the sources' answer archive: paid answers outlive the process, so a later run, or
//! another worker on the same PostgreSQL store, reuses an answer still within its TTL.

use std::sync::Arc;

use scry_sources::{AnswerArchive, ArchiveKey, SourceFuture};
use scry_store::{AnswerKey, Store, VendorAnswer};
use serde_json::Value;

/// Adapts a [`Store`] to [`AnswerArchive`].
pub struct StoreArchive(pub Arc<dyn Store>);

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
