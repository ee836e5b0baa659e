//! Uploads taken on in the background. `POST /api/v1/indicators/upload` checks an upload's size,
//! what it expands to and how many indicators it holds while the client waits, then answers
//! `202` with the upload's id and queues its indicators in the background; `GET
//! /api/v1/uploads/{id}` shows how far it got and, once done, what was queued and rejected.
//!
//! The table lives in this server process: an upload is seen by the server that took it, and the
//! last [`KEPT`] are remembered (running ones are never dropped).

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use scry_engine::Progress;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::SubmitResult;
use crate::error::{ApiError, ErrorDetail};

/// Finished uploads remembered at most.
pub const KEPT: usize = 100;

/// The uploads this server took, newest last.
#[derive(Default)]
pub struct Uploads {
    entries: Mutex<VecDeque<Arc<Upload>>>,
}

/// One upload being queued, or done.
pub struct Upload {
    pub id: String,
    pub name: String,
    /// The account that sent it; only it and admins see the upload.
    pub owner: String,
    /// Distinct indicators counted before it was taken on.
    pub indicators: u64,
    pub progress: Arc<Progress>,
    outcome: Mutex<Option<Result<SubmitResult, ErrorDetail>>>,
}

/// What `GET /api/v1/uploads/{id}` shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadStatus {
    pub id: String,
    pub name: String,
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    /// Distinct indicators in the upload, counted when it was taken on.
    pub indicators: u64,
    /// Indicators and rejected pieces read so far.
    pub read: u64,
    /// Once done: what was queued and what could not be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<SubmitResult>,
    /// Once failed: why (nothing was queued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

impl Uploads {
    /// Registers a new upload as running, under a random id.
    pub fn start(
        &self,
        name: String,
        owner: String,
        indicators: u64,
    ) -> Result<Arc<Upload>, ApiError> {
        let id = scry_engine::access::random_hex()
            .map_err(|e| ApiError::Internal(e.to_string()))?[..32]
            .to_owned();
        let upload = Arc::new(Upload {
            id,
            name,
            owner,
            indicators,
            progress: Arc::default(),
            outcome: Mutex::new(None),
        });
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push_back(Arc::clone(&upload));
        while entries.len() > KEPT {
            let Some(index) = entries.iter().position(|u| u.finished()) else {
                break;
            };
            entries.remove(index);
        }
        Ok(upload)
    }

    /// The upload with this id, if `who` may see it.
    pub fn find(&self, id: &str, who: &str, admin: bool) -> Option<Arc<Upload>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|u| u.id == id && (admin || u.owner == who))
            .cloned()
    }
}

impl Upload {
    fn finished(&self) -> bool {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Records how the background ingest ended.
    pub fn finish(&self, outcome: Result<SubmitResult, ApiError>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(outcome.map_err(|e| e.detail()));
    }

    pub fn status(&self) -> UploadStatus {
        let outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        let (state, result, error) = match &*outcome {
            None => ("running", None, None),
            Some(Ok(result)) => ("done", Some(result.clone()), None),
            Some(Err(error)) => ("failed", None, Some(error.clone())),
        };
        UploadStatus {
            id: self.id.clone(),
            name: self.name.clone(),
            state,
            indicators: self.indicators,
            read: self.progress.items.load(Ordering::Relaxed),
            result,
            error,
        }
    }
}

/// The upload as the readers will see it: a gzip body is expanded here, at most `max_mib` MiB,
/// so that a small file that expands without end is refused before any work; a compressed file
/// inside a compressed file is refused too, since the readers would expand it again unbounded.
pub fn expanded(body: &[u8], max_mib: u32) -> Result<Vec<u8>, ApiError> {
    const GZIP: [u8; 2] = [0x1f, 0x8b];
    let max_bytes = u64::from(max_mib) * 1024 * 1024;
    if !body.starts_with(&GZIP) {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(max_bytes + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::body(None, format!("the gzip upload is damaged: {e}")))?;
    if out.len() as u64 > max_bytes {
        return Err(ApiError::TooMuchWork {
            field: "max_expanded_mib".into(),
            message: format!(
                "the upload expands past {max_mib} MiB ([server] max_expanded_mib); send it in parts or uncompressed"
            ),
        });
    }
    if out.starts_with(&GZIP) {
        return Err(ApiError::TooMuchWork {
            field: "max_expanded_mib".into(),
            message: "the upload is compressed twice; send it compressed once".into(),
        });
    }
    Ok(out)
}
