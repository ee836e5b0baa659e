//! The REST API under `/api/v1`: what the CLI can do, as JSON. Handlers parse and check their
//! input, call the engine and the store, and shape the answer; the work itself (ingest, actions,
//! enrichment) happens in the same engine code the CLI runs, through the durable job queue.
//!
//! Every handler is described for the OpenAPI document ([`ApiDoc`]) by its `#[utoipa::path]`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scry_core::facet::UnknownFacet;
use scry_core::{Facet, Observable, Tlp};
use scry_engine::access::{self, Role};
use scry_engine::input::{InputFormat, InputSource};
use scry_engine::pivot::{Link, NEIGHBOUR_COUNT_CAP, Pivot};
use scry_engine::worker::{IngestRequest, IngestSummary};
use scry_engine::{Progress, view};
use scry_rules::ActionSpec;
use scry_store::{
    EventFilter, IndicatorCursor, IndicatorOrder, IndicatorQuery, PivotCursor, StoredIndicator,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery, ERROR_TABLE, ErrorBody};
use crate::uploads::{self, UploadStatus};

/// Most indicators one action request may name.
pub const MAX_ACTION_INDICATORS: usize = 1_000;

/// A request over one of `[server]`'s work caps.
fn too_much_work(field: &str, message: String) -> ApiError {
    ApiError::TooMuchWork {
        field: field.to_owned(),
        message,
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scry REST API",
        description = "Threat-intelligence enrichment and prioritization. Authenticate with `Authorization: Bearer <token>` (`scry token create`). Roles: viewer reads, analyst also submits and acts, admin also manages tokens. Errors share one shape, `{\"error\": {\"code\", \"message\", \"field\"}}`; the codes are listed under the ErrorBody schema."
    ),
    paths(
        whoami, list_indicators, submit_indicators, upload_indicators, upload_status, indicator_detail,
        indicator_stix, enrich_indicator, act_on_indicators, pivot, rules, rule_test, history,
        sources, queue, blocklists, blocklist, list_tokens, create_token, revoke_token, dashboard,
        graph
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security, &EveryAnswer),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let table: Vec<String> = ERROR_TABLE
            .iter()
            .map(|(code, status, meaning)| format!("`{code}` ({status}): {meaning}"))
            .collect();
        if let Some(utoipa::openapi::RefOr::T(schema)) = components.schemas.get_mut("ErrorBody")
            && let utoipa::openapi::schema::Schema::Object(object) = schema
        {
            object.description = Some(format!("Error codes: {}", table.join("; ")));
        }
    }
}

/// Every answer an operation can give, described: a success without a description gets its
/// status's, and each operation lists the error answers the server gives on every route (401,
/// 403, 408, 500, 503), on routes with parameters (400, 404 for a path's), and on routes with a
/// body (400, 413, 415), each with the codes of the error table it may carry.
struct EveryAnswer;

impl EveryAnswer {
    /// The error answer with `status`: the table's codes for it, and the one error shape.
    fn error(status: u16) -> utoipa::openapi::Response {
        let codes: Vec<String> = ERROR_TABLE
            .iter()
            .filter(|(_, s, _)| *s == status)
            .map(|(code, _, meaning)| format!("`{code}`: {meaning}"))
            .collect();
        utoipa::openapi::ResponseBuilder::new()
            .description(codes.join("; "))
            .content(
                "application/json",
                utoipa::openapi::content::Content::new(Some(
                    utoipa::openapi::Ref::from_schema_name("ErrorBody"),
                )),
            )
            .build()
    }
}

impl utoipa::Modify for EveryAnswer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::path::ParameterIn;
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let parameters = operation.parameters.as_deref().unwrap_or_default();
                let in_path = parameters.iter().any(
                    |p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Path)),
                );
                let mut statuses = vec![401, 403, 408, 500, 503];
                if !parameters.is_empty() {
                    statuses.push(400);
                }
                if in_path {
                    statuses.push(404);
                }
                if operation.request_body.is_some() {
                    statuses.extend([400, 413, 415]);
                }
                let responses = &mut operation.responses.responses;
                for status in statuses {
                    let error = Self::error(status);
                    match responses.entry(status.to_string()) {
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(RefOr::T(error));
                        }
                        std::collections::btree_map::Entry::Occupied(mut slot) => {
                            if let RefOr::T(response) = slot.get_mut()
                                && response.description.is_empty()
                            {
                                response.description = error.description;
                            }
                        }
                    }
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        let known = status
                            .parse::<u16>()
                            .ok()
                            .filter(|s| ERROR_TABLE.iter().any(|(_, t, _)| t == s));
                        response.description = match known {
                            Some(error) => Self::error(error).description,
                            None => status
                                .parse::<axum::http::StatusCode>()
                                .ok()
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("The answer")
                                .to_owned(),
                        };
                    }
                }
            }
        }
    }
}

/// The OpenAPI document, built once.
pub fn openapi_json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serializes")
    })
}

fn parse_observable(field: &str, text: &str) -> Result<Observable, ApiError> {
    Observable::parse(text)
        .map_err(|e| ApiError::parameter(field, format!("{text:?} is not an indicator: {e}")))
}

/// A stored indicator named by value (defanged forms are fine) or by STIX id.
pub(crate) async fn find(state: &AppState, text: &str) -> Result<StoredIndicator, ApiError> {
    let stored = if text.contains("--") && !text.contains('.') && !text.contains(':') {
        state.store.indicator_by_id(text).await?
    } else {
        let observable = parse_observable("indicator", text)?;
        state
            .store
            .indicator(observable.stix_type(), &observable.value())
            .await?
    };
    stored.ok_or_else(|| ApiError::NotFound(format!("{text} is not in the store; submit it first")))
}

/// Who the token is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    pub role: String,
}

#[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(Extension(caller): Extension<Caller>) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        name: caller.principal.name,
        role: caller.principal.role.to_string(),
    })
}

/// Filters and order of the indicator list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// STIX types, comma-separated (`ipv4-addr,domain-name`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub min_priority: Option<u8>,
    pub max_priority: Option<u8>,
    /// Severities, comma-separated (`critical,high`).
    pub severity: Option<String>,
    pub tag: Option<String>,
    /// Only indicators this source answered for.
    pub source: Option<String>,
    /// Workflow status: `new`, `investigating`, `escalated`, `blocked`, `false-positive` or `closed`.
    pub status: Option<String>,
    /// Enrichment status: `enriched`, `skipped`, `failed`.
    pub enrichment: Option<String>,
    /// Changed at or after this time: RFC 3339, a date (YYYY-MM-DD) or Unix ms.
    pub since: Option<String>,
    /// Changed before this time.
    pub until: Option<String>,
    /// The value contains this text.
    pub q: Option<String>,
    /// `priority` (default), `last_changed`, `first_seen` or `value`; `-` in front for descending.
    pub sort: Option<String>,
    /// At most this many (default 50, at most 1000).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// One row of the indicator list.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorRow {
    pub indicator: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub stix_id: String,
    pub priority: u8,
    pub severity: String,
    /// Enrichment status.
    pub enrichment: String,
    /// Workflow status.
    pub status: String,
    pub tags: Vec<String>,
    pub labels: Vec<String>,
    /// The reason worth most points: its signal, value and points (`inbound-score: Critical
    /// (+90)`).
    pub top_reason: Option<String>,
    /// Why it was not enriched, when it was not (`private-address`, `budget`, …).
    pub skip_reason: Option<String>,
    pub report_url: Option<String>,
    pub first_seen: i64,
    pub last_changed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorList {
    pub items: Vec<IndicatorRow>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// A time parameter: RFC 3339, a date, or Unix milliseconds.
pub(crate) fn time_param(field: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(ms) = scry_core::calendar::ms_from_timestamp(text) {
        return Ok(ms);
    }
    scry_core::calendar::days_from_timestamp(text)
        .map(|days| days * 86_400_000)
        .ok_or_else(|| {
            ApiError::parameter(
                field,
                format!("{text:?}: expected RFC 3339, YYYY-MM-DD or Unix ms"),
            )
        })
}

fn csv_list(text: &Option<String>) -> Vec<String> {
    text.iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ListParams {
    pub(crate) fn query(&self) -> Result<IndicatorQuery, ApiError> {
        let (descending, order) = match self.sort.as_deref() {
            None => (true, IndicatorOrder::Priority),
            Some(text) => {
                let (descending, name) = match text.strip_prefix('-') {
                    Some(name) => (true, name),
                    None => (false, text),
                };
                let order: IndicatorOrder =
                    name.parse().map_err(|e| ApiError::parameter("sort", e))?;
                (descending, order)
            }
        };
        let min_priority = self.min_priority.unwrap_or(0);
        let max_priority = self.max_priority.unwrap_or(100);
        if min_priority > 100 || max_priority > 100 {
            return Err(ApiError::parameter(
                "min_priority",
                "priorities run from 0 to 100",
            ));
        }
        if min_priority > max_priority {
            return Err(ApiError::parameter(
                "max_priority",
                format!("max_priority {max_priority} is below min_priority {min_priority}"),
            ));
        }
        let limit = self.limit.unwrap_or(50);
        if !(1..=scry_store::MAX_PAGE).contains(&limit) {
            return Err(ApiError::parameter(
                "limit",
                format!("{limit}: a page holds 1 to {}", scry_store::MAX_PAGE),
            ));
        }
        let kinds = csv_list(&self.kind);
        for kind in &kinds {
            if !STIX_TYPES.contains(&kind.as_str()) {
                return Err(ApiError::parameter(
                    "type",
                    format!(
                        "unknown type {kind:?} (expected one of {})",
                        STIX_TYPES.join(", ")
                    ),
                ));
            }
        }
        let severities = csv_list(&self.severity);
        for severity in &severities {
            if !SEVERITIES.contains(&severity.as_str()) {
                return Err(ApiError::parameter(
                    "severity",
                    format!(
                        "unknown severity {severity:?} (expected one of {})",
                        SEVERITIES.join(", ")
                    ),
                ));
            }
        }
        let after = self
            .after
            .as_deref()
            .map(|text| {
                text.parse::<IndicatorCursor>()
                    .map_err(|e| ApiError::parameter("after", e))
            })
            .transpose()?;
        Ok(IndicatorQuery {
            kinds,
            min_priority,
            max_priority,
            severities,
            tag: self.tag.clone(),
            source: self.source.clone(),
            status: self.status.clone(),
            enrichment: self.enrichment.clone(),
            changed_since: self
                .since
                .as_deref()
                .map(|t| time_param("since", t))
                .transpose()?,
            changed_before: self
                .until
                .as_deref()
                .map(|t| time_param("until", t))
                .transpose()?,
            version_after: None,
            text: self.q.clone(),
            order,
            descending,
            after,
            limit,
        })
    }
}

/// The STIX types scry stores.
pub const STIX_TYPES: [&str; 7] = [
    "ipv4-addr",
    "ipv6-addr",
    "domain-name",
    "url",
    "email-addr",
    "file",
    "autonomous-system",
];
pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

pub(crate) fn row(listed: &scry_store::ListedIndicator) -> IndicatorRow {
    let r = &listed.stored.record;
    let top_reason = r
        .reasons
        .as_array()
        .and_then(|reasons| {
            reasons
                .iter()
                .max_by_key(|reason| reason["points"].as_i64().unwrap_or(0))
        })
        .map(|reason| {
            let text = |key: &str| reason[key].as_str().unwrap_or_default().to_owned();
            let points = reason["points"].as_i64().unwrap_or(0);
            match (text("signal"), text("value")) {
                (signal, value) if value.is_empty() || value == signal => {
                    format!("{signal} ({points:+})")
                }
                (signal, value) => format!("{signal}: {value} ({points:+})"),
            }
        });
    IndicatorRow {
        indicator: r.value.clone(),
        kind: r.kind.clone(),
        stix_id: r.stix_id.clone(),
        priority: r.priority,
        severity: r.severity.clone(),
        enrichment: r.enrichment_status.clone(),
        status: listed.status.clone(),
        tags: r.tags.clone(),
        labels: listed.labels.clone(),
        top_reason,
        skip_reason: r.skip_reason.clone(),
        report_url: view::report_url(&listed.stored).map(str::to_owned),
        first_seen: listed.stored.first_seen,
        last_changed: listed.stored.last_changed,
    }
}

#[utoipa::path(get, path = "/api/v1/indicators", tag = "indicators", params(ListParams),
    responses((status = 200, body = IndicatorList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_indicators(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<IndicatorList>, ApiError> {
    let page = state.store.search_indicators(&params.query()?).await?;
    Ok(axum::Json(IndicatorList {
        items: page.rows.iter().map(row).collect(),
        next: page.next.map(|c| c.to_string()),
    }))
}

/// Indicators to queue for enrichment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Indicators as text (defanged forms are fine); at most 10,000.
    pub indicators: Vec<String>,
    /// TLP for all of them (clear, green, amber, amber+strict, red).
    pub tlp: Option<String>,
    /// Ask the sources even when a cached answer is fresh.
    #[serde(default)]
    pub force: bool,
}

/// What a submission queued, and what it could not use.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubmitResult {
    pub read: u64,
    pub queued: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub rejections: Vec<Rejected>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rejected {
    /// `indicators[3]`, or `NAME:LINE` in an upload.
    pub position: String,
    pub input: String,
    pub reason: String,
}

/// Rejections listed in a submission's answer at most (all are counted).
const REJECTIONS_LISTED: usize = 100;

pub(crate) async fn ingest(
    state: &AppState,
    caller: &Caller,
    input: InputSource,
    format: InputFormat,
    tlp: Option<&str>,
    force: bool,
    positions: impl Fn(&scry_engine::input::Rejection) -> String + Send + Sync,
) -> Result<SubmitResult, ApiError> {
    let tlp = parse_tlp(state, tlp)?;
    ingest_tracked(
        state,
        caller.origin(),
        input,
        format,
        tlp,
        force,
        positions,
        Arc::default(),
    )
    .await
}

/// The TLP a submission gives, or the configured default.
fn parse_tlp(state: &AppState, tlp: Option<&str>) -> Result<Option<Tlp>, ApiError> {
    match tlp {
        Some(text) => text
            .parse::<Tlp>()
            .map(Some)
            .map_err(|e| ApiError::parameter("tlp", e.to_string())),
        None => state
            .loaded
            .default_tlp()
            .map_err(|e| ApiError::Internal(e.to_string())),
    }
}

/// Queues a submission's indicators, all or none: past `[server] max_indicators_per_request`
/// nothing is queued and the answer is `too_much_work`.
#[allow(clippy::too_many_arguments)]
async fn ingest_tracked(
    state: &AppState,
    origin: String,
    input: InputSource,
    format: InputFormat,
    default_tlp: Option<Tlp>,
    force: bool,
    positions: impl Fn(&scry_engine::input::Rejection) -> String + Send + Sync,
    progress: Arc<Progress>,
) -> Result<SubmitResult, ApiError> {
    let request = IngestRequest {
        inputs: vec![input],
        format,
        default_tlp,
        force,
        max_attempts: state.loaded.config.worker.max_attempts,
        origin,
        max_indicators: Some(u64::from(
            state.loaded.config.server.max_indicators_per_request,
        )),
    };
    let mut rejections = Vec::new();
    let mut on_rejected = |r: &scry_engine::input::Rejection| {
        if rejections.len() < REJECTIONS_LISTED {
            rejections.push(Rejected {
                position: positions(r),
                input: r.input.clone(),
                reason: r.reason.clone(),
            });
        }
    };
    let summary: IngestSummary =
        scry_engine::worker::ingest(state.store.as_ref(), request, progress, &mut on_rejected)
            .await
            .map_err(|e| match e {
                scry_engine::EngineError::TooManyIndicators { .. } => {
                    too_much_work("max_indicators_per_request", e.to_string())
                }
                other => ApiError::Internal(other.to_string()),
            })?;
    state.metrics.ingested(summary.queued);
    Ok(SubmitResult {
        read: summary.read,
        queued: summary.queued,
        duplicates: summary.duplicates,
        rejected: summary.rejected,
        rejections,
    })
}

#[utoipa::path(post, path = "/api/v1/indicators", tag = "indicators", request_body = SubmitRequest,
    responses((status = 202, body = SubmitResult, description = "queued for the workers"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn submit_indicators(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<SubmitRequest>,
) -> Result<(StatusCode, axum::Json<SubmitResult>), ApiError> {
    let max = state.loaded.config.server.max_indicators_per_request;
    if request.indicators.len() as u64 > u64::from(max) {
        return Err(too_much_work(
            "max_indicators_per_request",
            format!(
                "{} indicators: one request may submit at most {max} ([server] max_indicators_per_request)",
                request.indicators.len()
            ),
        ));
    }
    if let Some(at) = request
        .indicators
        .iter()
        .position(|i| i.contains(['\n', '\r']))
    {
        return Err(ApiError::body(
            Some(&format!("indicators[{at}]")),
            "one indicator per entry: no line breaks",
        ));
    }
    let text = request.indicators.join("\n");
    let result = ingest(
        &state,
        &caller,
        InputSource::upload("indicators", text.into_bytes()),
        InputFormat::Lines,
        request.tlp.as_deref(),
        request.force,
        |r| format!("indicators[{}]", r.position.line.saturating_sub(1)),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(result)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// auto (default), lines, text, csv, jsonl or stix.
    pub format: Option<String>,
    /// The file's name, for positions in rejections and format detection.
    pub name: Option<String>,
    pub tlp: Option<String>,
    pub force: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/indicators/upload", tag = "indicators", params(UploadParams),
    request_body(content = String, description = "the file as it is (gzip is expanded, up to [server] max_expanded_mib)", content_type = "application/octet-stream"),
    responses((status = 202, body = UploadStatus, description = "taken on: its indicators are being queued; follow the Location header (`/api/v1/uploads/{id}`)"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "too many indicators, or expands too far")))]
pub async fn upload_indicators(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<UploadParams>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::body(None, e.body_text())
        }
    })?;
    let format: InputFormat = params
        .format
        .as_deref()
        .unwrap_or("auto")
        .parse()
        .map_err(|e: String| ApiError::parameter("format", e))?;
    let tlp = parse_tlp(&state, params.tlp.as_deref())?;
    let name = params.name.clone().unwrap_or_else(|| "upload".to_owned());
    let server = &state.loaded.config.server;
    let (max_mib, max_indicators) = (server.max_expanded_mib, server.max_indicators_per_request);
    // Expanding and counting read the whole upload: off the async threads.
    let input_name = name.clone();
    let (input, counted) = tokio::task::spawn_blocking(move || {
        let bytes = uploads::expanded(&body, max_mib)?;
        let input = InputSource::upload(input_name, bytes);
        let counted = scry_engine::worker::count_indicators(&input, format)
            .map_err(|e| ApiError::body(None, e.to_string()))?;
        Ok::<_, ApiError>((input, counted))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("reading the upload: {e}")))??;
    if counted > u64::from(max_indicators) {
        return Err(too_much_work(
            "max_indicators_per_request",
            format!(
                "{name} holds {counted} distinct indicators: one upload may hold at most {max_indicators} ([server] max_indicators_per_request); split it"
            ),
        ));
    }
    let upload = state
        .uploads
        .start(name, caller.principal.name.clone(), counted)?;
    let status = upload.status();
    let (worker_state, origin, force) = (
        state.clone(),
        caller.origin(),
        params.force.unwrap_or(false),
    );
    let running = Arc::clone(&upload);
    tokio::spawn(async move {
        let outcome = ingest_tracked(
            &worker_state,
            origin,
            input,
            format,
            tlp,
            force,
            |r| r.position.to_string(),
            Arc::clone(&running.progress),
        )
        .await;
        running.finish(outcome);
    });
    let location = format!("/api/v1/uploads/{}", upload.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        axum::Json(status),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/uploads/{id}", tag = "indicators",
    params(("id" = String, Path, description = "the id an upload's answer gave")),
    responses((status = 200, body = UploadStatus, description = "running, done (with what was queued and rejected) or failed"),
        (status = 404, body = ErrorBody, description = "no such upload on this server, or another account's")))]
pub async fn upload_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<UploadStatus>, ApiError> {
    state
        .uploads
        .find(
            &id,
            &caller.principal.name,
            caller.principal.may(Role::Admin),
        )
        .map(|upload| axum::Json(upload.status()))
        .ok_or_else(|| ApiError::NotFound(format!("no upload {id} on this server")))
}

/// Everything known about one indicator.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorDetail {
    /// The stored indicator, as `scry show --format json` writes it too.
    #[schema(value_type = Indicator)]
    pub indicator: Value,
    pub workflow: WorkflowView,
    /// The blocklists it is on now, by name.
    pub blocklists: Vec<String>,
    pub report_url: Option<String>,
    pub neighbours: Vec<NeighbourRow>,
    pub history: Vec<HistoryPoint>,
}

/// Analyst and rule state of an indicator.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowView {
    /// `new` until a person or a rule sets another.
    pub status: String,
    /// Tags added by rules or people, on top of the sources' tags.
    pub labels: Vec<String>,
    /// A priority set by hand or by a rule, shown instead of the computed one.
    pub priority_override: Option<u8>,
    /// The ticket opened for it.
    pub ticket: Option<String>,
    /// When it last changed (Unix ms; 0: never).
    pub updated_at: i64,
    /// Who changed it last (`manual:NAME`, `rule:NAME`).
    pub origin: String,
}

/// A stored indicator as the API and `scry show --format json` give it (`view::stored_json`):
/// the document's description of that JSON, which the contract test holds it to.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// The normalized value.
    indicator: String,
    /// Its STIX type: `ipv4-addr`, `ipv6-addr`, `domain-name`, `url`, …
    #[serde(rename = "type")]
    kind: String,
    stix_id: String,
    /// 0–100, computed from the reasons.
    priority: u8,
    /// `info`, `low`, `medium`, `high` or `critical`.
    severity: String,
    /// How enrichment ended: `enriched`, `cached`, `skipped`, `failed`, …
    status: String,
    /// Why it was not enriched, when it was not.
    skip_reason: Option<String>,
    /// Its TLP marking (`clear`, `green`, `amber`, `amber+strict`, `red`); none when unmarked.
    tlp: Option<String>,
    /// The sources' tags.
    tags: Vec<String>,
    /// What the priority is made of, the most points first.
    reasons: Vec<ReasonView>,
    /// What each source found, by source name (`criminalip`, `geo`, `feeds`, …); each source's
    /// details have a shape of their own.
    #[schema(value_type = std::collections::HashMap<String, Object>)]
    sources: Value,
    /// When it was first stored (Unix ms).
    first_seen: i64,
    /// When its state last changed (Unix ms).
    last_changed: i64,
    /// Its autonomous system and location as the precedence picks them among the sources
    /// (most specific, then freshest, then Criminal IP, its database, scry's data), and what
    /// the other sources said where they disagree.
    network: NetworkPlacement,
}

/// An address's place on the network among the sources' claims.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPlacement {
    /// The claim whose autonomous system is shown and exported.
    autonomous_system: Option<NetworkClaim>,
    /// The claim whose location is shown and exported.
    location: Option<NetworkClaim>,
    /// Claims whose autonomous system or country differ from those (absent when none do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    alternatives: Vec<NetworkClaim>,
}

/// What one source says of an address's place on the network.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkClaim {
    source: String,
    asn: Option<u64>,
    as_name: Option<String>,
    /// ISO 3166 alpha-2, upper case.
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    /// The date of the source's data; absent for a live answer.
    data_as_of: Option<String>,
}

/// One reason of a priority: a signal a source gave and the points it is worth.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonView {
    source: String,
    signal: String,
    value: String,
    points: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NeighbourRow {
    pub facet: String,
    pub value: String,
    /// Other stored indicators sharing it, counted up to 1000.
    pub others: u64,
    /// More than 1000 share it.
    pub more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPoint {
    pub at: i64,
    pub priority: u8,
    pub severity: String,
    /// What changed, in words.
    pub change: Option<String>,
}

pub(crate) async fn detail(
    state: &AppState,
    stored: StoredIndicator,
) -> Result<IndicatorDetail, ApiError> {
    let store = state.store.as_ref();
    let stix_id = stored.record.stix_id.clone();
    let neighbours = scry_engine::pivot::neighbours(store, &stored).await?;
    let history = store.score_history(&stix_id).await?;
    let workflow = store.workflow(&stix_id).await?;
    let workflow = workflow.unwrap_or_else(|| scry_store::Workflow::untouched(&stix_id));
    let blocklists = store
        .blocked_on(&stored.record.value, scry_engine::automation::now_ms())
        .await?;
    Ok(IndicatorDetail {
        blocklists,
        report_url: view::report_url(&stored).map(str::to_owned),
        indicator: view::stored_json(&stored),
        workflow: WorkflowView {
            status: workflow.status,
            labels: workflow.labels,
            priority_override: workflow.priority_override,
            ticket: workflow.ticket,
            updated_at: workflow.updated_at,
            origin: workflow.origin,
        },
        neighbours: neighbours
            .into_iter()
            .map(|n| NeighbourRow {
                more: n.others > NEIGHBOUR_COUNT_CAP,
                others: n.others.min(NEIGHBOUR_COUNT_CAP),
                facet: n.link.to_string(),
                value: n.value,
            })
            .collect(),
        history: history
            .iter()
            .map(|p| HistoryPoint {
                at: p.at,
                priority: p.priority,
                severity: p.severity.clone(),
                change: p.change.as_ref().map(view::change_text),
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/indicators/{indicator}", tag = "indicators",
    params(("indicator" = String, Path, description = "value (URL-encoded, defanged is fine) or STIX id")),
    responses((status = 200, body = IndicatorDetail), (status = 404, body = ErrorBody)))]
pub async fn indicator_detail(
    State(state): State<AppState>,
    Path(indicator): Path<String>,
) -> Result<axum::Json<IndicatorDetail>, ApiError> {
    let stored = find(&state, &indicator).await?;
    Ok(axum::Json(detail(&state, stored).await?))
}

#[utoipa::path(get, path = "/api/v1/indicators/{indicator}/stix", tag = "indicators",
    params(("indicator" = String, Path, description = "value or STIX id")),
    responses((status = 200, description = "a STIX 2.1 bundle of the indicator's graph", content_type = "application/stix+json;version=2.1"),
        (status = 404, body = ErrorBody)))]
pub async fn indicator_stix(
    State(state): State<AppState>,
    Path(indicator): Path<String>,
) -> Result<Response, ApiError> {
    let stored = find(&state, &indicator).await?;
    let workflow = state.store.workflow(&stored.record.stix_id).await?;
    let objects = view::stix_objects(
        &stored,
        workflow.as_ref(),
        state.unmarked_tlp(),
        &Default::default(),
    )
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut out = Vec::new();
    let mut bundle =
        scry_stix::BundleWriter::start(&mut out).map_err(|e| ApiError::Internal(e.to_string()))?;
    bundle
        .write(&mut out, &objects)
        .and_then(|()| bundle.finish(&mut out).map(drop))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/stix+json;version=2.1",
        )],
        out,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/indicators/{indicator}/enrich", tag = "indicators",
    params(("indicator" = String, Path, description = "value or STIX id; need not be stored yet")),
    responses((status = 202, body = SubmitResult, description = "queued, asking every source again"),
        (status = 400, body = ErrorBody)))]
pub async fn enrich_indicator(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(indicator): Path<String>,
) -> Result<(StatusCode, axum::Json<SubmitResult>), ApiError> {
    let value = match find(&state, &indicator).await {
        Ok(stored) => stored.record.value,
        Err(ApiError::NotFound(_)) => parse_observable("indicator", &indicator)?.value(),
        Err(other) => return Err(other),
    };
    let result = ingest(
        &state,
        &caller,
        InputSource::upload("enrich", value.into_bytes()),
        InputFormat::Lines,
        None,
        true,
        |r| r.position.to_string(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(result)))
}

/// The work caps of an action request: at most [`MAX_ACTION_INDICATORS`] indicators, `[server]
/// max_actions_per_request` actions, and one action job per indicator and action, at most
/// `max_indicators_per_request` in all.
pub(crate) fn check_action_work(
    state: &AppState,
    indicators: usize,
    actions: usize,
) -> Result<(), ApiError> {
    let server = &state.loaded.config.server;
    if indicators > MAX_ACTION_INDICATORS {
        return Err(too_much_work(
            "indicators",
            format!(
                "{indicators} indicators: one request may act on at most {MAX_ACTION_INDICATORS}"
            ),
        ));
    }
    if actions as u64 > u64::from(server.max_actions_per_request) {
        return Err(too_much_work(
            "max_actions_per_request",
            format!(
                "{actions} actions: one request may ask for at most {} ([server] max_actions_per_request)",
                server.max_actions_per_request
            ),
        ));
    }
    let jobs = (indicators * actions) as u64;
    if jobs > u64::from(server.max_indicators_per_request) {
        return Err(too_much_work(
            "max_indicators_per_request",
            format!(
                "{indicators} indicators × {actions} actions would queue {jobs} action jobs; one request may queue at most {} ([server] max_indicators_per_request)",
                server.max_indicators_per_request
            ),
        ));
    }
    Ok(())
}

/// Actions on stored indicators, as rules write them (`{"do": "tag", "tag": "c2"}`,
/// `{"do": "set-status", "status": "investigating"}`, `{"do": "block", "list": "edl"}`, …).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Values or STIX ids of stored indicators; at most 1000.
    pub indicators: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<ActionSpec>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResult {
    /// Action jobs queued; the workers do them and record each in the history.
    pub queued: u64,
}

#[utoipa::path(post, path = "/api/v1/indicators/actions", tag = "indicators", request_body = ActionRequest,
    responses((status = 202, body = ActionResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn act_on_indicators(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<ActionRequest>,
) -> Result<(StatusCode, axum::Json<ActionResult>), ApiError> {
    if request.indicators.is_empty() {
        return Err(ApiError::body(
            Some("indicators"),
            "name at least one stored indicator",
        ));
    }
    if request.actions.is_empty() {
        return Err(ApiError::body(Some("actions"), "name at least one action"));
    }
    check_action_work(&state, request.indicators.len(), request.actions.len())?;
    for (index, action) in request.actions.iter().enumerate() {
        state
            .automation
            .check_manual_action(action)
            .map_err(|e| ApiError::body(Some(&format!("actions[{index}]")), e))?;
    }
    let mut records = Vec::with_capacity(request.indicators.len());
    for (index, text) in request.indicators.iter().enumerate() {
        match find(&state, text).await {
            Ok(stored) => records.push(stored.record),
            Err(ApiError::NotFound(message)) => {
                return Err(ApiError::body(
                    Some(&format!("indicators[{index}]")),
                    message,
                ));
            }
            Err(ApiError::InvalidParameter { message, .. }) => {
                return Err(ApiError::body(
                    Some(&format!("indicators[{index}]")),
                    message,
                ));
            }
            Err(other) => return Err(other),
        }
    }
    let queued = state
        .automation
        .queue_manual_actions(&records, &request.actions, &caller.principal.name)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::ACCEPTED, axum::Json(ActionResult { queued })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PivotParams {
    /// asn, cve, country, subnet, certificate, service or domain.
    pub by: String,
    pub min_priority: Option<u8>,
    /// Default 50, at most 1000.
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PivotPage {
    /// The values pivoted on (the indicator's ASN, CVEs, …).
    pub values: Vec<String>,
    pub items: Vec<PivotRow>,
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PivotRow {
    pub indicator: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub stix_id: String,
    pub priority: u8,
    pub severity: String,
    pub facet: String,
    pub shared: String,
}

#[utoipa::path(get, path = "/api/v1/indicators/{indicator}/pivot", tag = "indicators",
    params(("indicator" = String, Path, description = "value or STIX id"), PivotParams),
    responses((status = 200, body = PivotPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pivot(
    State(state): State<AppState>,
    Path(indicator): Path<String>,
    ApiQuery(params): ApiQuery<PivotParams>,
) -> Result<axum::Json<PivotPage>, ApiError> {
    let by: Pivot = params
        .by
        .parse()
        .map_err(|e| ApiError::parameter("by", e))?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::parameter(
            "limit",
            format!("{limit}: a page holds 1 to 1000"),
        ));
    }
    let after = params
        .after
        .as_deref()
        .map(|t| {
            t.parse::<PivotCursor>()
                .map_err(|e| ApiError::parameter("after", e))
        })
        .transpose()?;
    let stored = find(&state, &indicator).await?;
    Ok(axum::Json(
        pivot_page(
            &state,
            &stored,
            by,
            params.min_priority.unwrap_or(0),
            after.as_ref(),
            limit,
        )
        .await?,
    ))
}

/// One page of what shares `by` with a stored indicator.
pub(crate) async fn pivot_page(
    state: &AppState,
    stored: &StoredIndicator,
    by: Pivot,
    min_priority: u8,
    after: Option<&PivotCursor>,
    limit: u32,
) -> Result<PivotPage, ApiError> {
    let page =
        scry_engine::pivot::page(state.store.as_ref(), stored, by, min_priority, after, limit)
            .await?;
    let matched = page.matched;
    Ok(PivotPage {
        values: page.values,
        items: page
            .rows
            .into_iter()
            .map(|(s, shared)| PivotRow {
                indicator: s.record.value,
                kind: s.record.kind,
                stix_id: s.record.stix_id,
                priority: s.record.priority,
                severity: s.record.severity,
                facet: matched.to_string(),
                shared,
            })
            .collect(),
        next: page.next.map(|c| c.to_string()),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleRow {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub on: Vec<String>,
    pub when: String,
    pub actions: Vec<String>,
    /// Where it was written.
    pub origin: String,
    /// When it last matched (Unix ms).
    pub last_fired: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/rules", tag = "automation",
    responses((status = 200, body = Vec<RuleRow>)))]
pub async fn rules(State(state): State<AppState>) -> Result<axum::Json<Vec<RuleRow>>, ApiError> {
    Ok(axum::Json(rule_rows(&state).await?))
}

pub(crate) async fn rule_rows(state: &AppState) -> Result<Vec<RuleRow>, ApiError> {
    let mut out = Vec::new();
    for rule in state.automation.rules().rules() {
        let spec = &rule.spec;
        let last = state
            .store
            .events(&EventFilter {
                rule: Some(spec.name.clone()),
                kind: Some("rule".into()),
                limit: 1,
                ..EventFilter::default()
            })
            .await?;
        out.push(RuleRow {
            name: spec.name.clone(),
            description: spec.description.clone(),
            enabled: spec.enabled,
            on: spec.on.iter().map(|t| t.as_str().to_owned()).collect(),
            when: spec.when.clone(),
            actions: spec.actions.iter().map(ActionSpec::describe).collect(),
            origin: rule.place.to_string(),
            last_fired: last.first().map(|e| e.at),
        });
    }
    Ok(out)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTestRequest {
    /// A stored indicator: value or STIX id.
    pub indicator: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleVerdict {
    pub rule: String,
    pub trigger: String,
    /// `would-fire`, `no-match` or `error`.
    pub outcome: String,
    pub error: Option<String>,
    /// What it would do, in words.
    pub actions: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/rules/test", tag = "automation", request_body = RuleTestRequest,
    responses((status = 200, body = Vec<RuleVerdict>, description = "which rules would fire; nothing is done"),
        (status = 404, body = ErrorBody)))]
pub async fn rule_test(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RuleTestRequest>,
) -> Result<axum::Json<Vec<RuleVerdict>>, ApiError> {
    let stored = find(&state, &request.indicator).await?;
    Ok(axum::Json(rule_verdicts(&state, &stored).await?))
}

pub(crate) async fn rule_verdicts(
    state: &AppState,
    stored: &StoredIndicator,
) -> Result<Vec<RuleVerdict>, ApiError> {
    let workflow = state.store.workflow(&stored.record.stix_id).await?;
    Ok(state
        .automation
        .test(&stored.record, workflow.as_ref())
        .into_iter()
        .map(|v| {
            let (outcome, error) = match v.matched {
                Ok(true) => ("would-fire", None),
                Ok(false) => ("no-match", None),
                Err(e) => ("error", Some(e)),
            };
            RuleVerdict {
                rule: v.rule,
                trigger: v.trigger.as_str().to_owned(),
                outcome: outcome.to_owned(),
                error,
                actions: v.actions,
            }
        })
        .collect())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only this indicator (value or STIX id).
    pub indicator: Option<String>,
    pub rule: Option<String>,
    /// rule, action, skip, call, change, budget.
    pub kind: Option<String>,
    /// At or after: RFC 3339, YYYY-MM-DD or Unix ms.
    pub since: Option<String>,
    /// Default 100, at most 1000.
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryEvent>,
    pub next: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEvent {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub indicator: Option<String>,
    pub stix_id: Option<String>,
    pub rule: Option<String>,
    pub action: Option<String>,
    pub outcome: String,
    pub origin: String,
    pub duration_ms: Option<i64>,
    pub credits: i64,
    /// What the event says, by kind (a skip's reason, an action's outcome, …); null when nothing more.
    #[schema(value_type = Option<Object>)]
    pub detail: Value,
}

#[utoipa::path(get, path = "/api/v1/history", tag = "automation", params(HistoryParams),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<axum::Json<HistoryPage>, ApiError> {
    Ok(axum::Json(history_page(&state, &params).await?))
}

pub(crate) async fn history_page(
    state: &AppState,
    params: &HistoryParams,
) -> Result<HistoryPage, ApiError> {
    const KINDS: [&str; 6] = ["rule", "action", "skip", "call", "change", "budget"];
    let limit = params.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::parameter(
            "limit",
            format!("{limit}: a page holds 1 to 1000"),
        ));
    }
    if let Some(kind) = &params.kind
        && !KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::parameter(
            "kind",
            format!(
                "unknown kind {kind:?} (expected one of {})",
                KINDS.join(", ")
            ),
        ));
    }
    let stix_id = match &params.indicator {
        Some(text) if text.contains("--") && !text.contains('.') => Some(text.clone()),
        Some(text) => Some(scry_stix::observable_id(&parse_observable(
            "indicator",
            text,
        )?)),
        None => None,
    };
    let events = state
        .store
        .events(&EventFilter {
            stix_id,
            rule: params.rule.clone(),
            kind: params.kind.clone(),
            since: params
                .since
                .as_deref()
                .map(|t| time_param("since", t))
                .transpose()?,
            before_id: params.before,
            limit,
        })
        .await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(HistoryPage {
        items: events
            .into_iter()
            .map(|e| HistoryEvent {
                id: e.id,
                at: e.at,
                kind: e.kind,
                indicator: e.indicator,
                stix_id: e.stix_id,
                rule: e.rule,
                action: e.action,
                outcome: e.outcome,
                origin: e.origin,
                duration_ms: e.duration_ms,
                credits: e.credits,
                detail: e.detail,
            })
            .collect(),
        next,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceRow {
    pub name: String,
    /// Whether it sends indicators off the machine.
    pub external: bool,
    #[schema(value_type = PeriodSummary)]
    pub today: Value,
    #[schema(value_type = PeriodSummary)]
    pub month: Value,
    /// p50, p95, p99 of today's HTTP requests to the vendor, ms.
    pub latency_ms: Option<[i64; 3]>,
}

/// One source's calls and credits in a period (UTC day or month), as `scry sources status
/// --format json` gives them too (`PeriodUsage::summary`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodSummary {
    /// Paid, cached and failed calls.
    calls: u64,
    /// Answers bought.
    paid: u64,
    /// Answers reused from the cache or the answer archive.
    cached: u64,
    failed: u64,
    cache_hit_percent: Option<f64>,
    /// HTTP requests sent, retries and key checks included.
    requests: u64,
    retries: u64,
    /// Requests that did not succeed, by kind: `429`, `5xx`, `timeout`, `refused`, `limit`, `other`.
    errors: std::collections::BTreeMap<String, u64>,
    error_percent: Option<f64>,
    credits: u64,
    /// The budget of the period, when one is set.
    credit_limit: Option<u64>,
    /// Credits by account (a key at a service address).
    credits_by_account: std::collections::BTreeMap<String, u64>,
}

#[utoipa::path(get, path = "/api/v1/sources", tag = "operations",
    responses((status = 200, body = Vec<SourceRow>)))]
pub async fn sources(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<SourceRow>>, ApiError> {
    Ok(axum::Json(source_rows(&state).await?))
}

pub(crate) async fn source_rows(state: &AppState) -> Result<Vec<SourceRow>, ApiError> {
    let usage = scry_engine::usage::source_usage(state.store.as_ref()).await?;
    let period = |p: &scry_engine::usage::PeriodUsage| p.summary(None);
    Ok(state
        .engine
        .sources()
        .iter()
        .map(|source| {
            let name = source.name().to_owned();
            let used = usage
                .iter()
                .find(|u| u.source == name)
                .cloned()
                .unwrap_or_default();
            SourceRow {
                external: !matches!(source.destination(), scry_core::Destination::Local),
                today: period(&used.today),
                month: period(&used.month),
                latency_ms: used.latency_ms.map(|(a, b, c)| [a, b, c]),
                name,
            }
        })
        .collect())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueState {
    pub ready: u64,
    pub waiting: u64,
    pub done: u64,
    pub failed: u64,
}

#[utoipa::path(get, path = "/api/v1/queue", tag = "operations",
    responses((status = 200, body = QueueState)))]
pub async fn queue(State(state): State<AppState>) -> Result<axum::Json<QueueState>, ApiError> {
    let depth = state
        .store
        .queue_depth(scry_engine::automation::now_ms())
        .await?;
    Ok(axum::Json(QueueState {
        ready: depth.ready,
        waiting: depth.waiting,
        done: depth.done,
        failed: depth.failed,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlocklistSummary {
    pub name: String,
    /// Entries stored (not expired).
    pub entries: usize,
    /// Entries the EDL serves: those of the list's type, up to its cap.
    pub served: usize,
    /// Stored entries of another type than the list's, which the EDL leaves out.
    pub left_out_other_types: usize,
    /// Entries past the list's cap, which the EDL leaves out (the oldest).
    pub left_out_over_cap: usize,
    /// What to do about entries past the cap, when there are any.
    pub warning: Option<String>,
    /// `ip`, `domain`, `url` or `any`.
    pub entry_type: &'static str,
    /// The firewall the list is written for.
    pub vendor: &'static str,
    /// Default days an entry stays.
    pub days: u32,
    /// The plain-text list firewalls poll.
    pub edl_path: String,
}

#[utoipa::path(get, path = "/api/v1/blocklists", tag = "blocklists",
    responses((status = 200, body = Vec<BlocklistSummary>)))]
pub async fn blocklists(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<BlocklistSummary>>, ApiError> {
    let now = scry_engine::automation::now_ms();
    let mut out = Vec::new();
    for (name, config) in &state.loaded.config.automation.blocklists {
        let entries = state.store.blocklist(name, now).await?;
        let stored = entries.len();
        let rendered = scry_engine::blocklist::render(config, entries);
        out.push(BlocklistSummary {
            entries: stored,
            served: rendered.served,
            left_out_other_types: rendered.other_types,
            left_out_over_cap: rendered.over_cap,
            warning: rendered.cap_warning(name, config),
            entry_type: config.entry_type.as_str(),
            vendor: scry_engine::blocklist::vendor_name(config.vendor),
            days: config.days,
            edl_path: format!("/edl/{name}.txt"),
            name: name.clone(),
        });
    }
    Ok(axum::Json(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockRow {
    pub value: String,
    pub stix_id: String,
    pub added_at: i64,
    pub expires_at: i64,
    pub reason: String,
    pub origin: String,
}

/// The configuration of the blocklist `name`, or 404.
pub(crate) fn known_blocklist<'s>(
    state: &'s AppState,
    name: &str,
) -> Result<&'s scry_engine::config::BlocklistConfig, ApiError> {
    state
        .loaded
        .config
        .automation
        .blocklists
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("no blocklist named {name:?}")))
}

#[utoipa::path(get, path = "/api/v1/blocklists/{name}", tag = "blocklists",
    params(("name" = String, Path)),
    responses((status = 200, body = Vec<BlockRow>), (status = 404, body = ErrorBody)))]
pub async fn blocklist(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Vec<BlockRow>>, ApiError> {
    known_blocklist(&state, &name)?;
    let entries = state
        .store
        .blocklist(&name, scry_engine::automation::now_ms())
        .await?;
    Ok(axum::Json(
        entries
            .into_iter()
            .map(|e| BlockRow {
                value: e.value,
                stix_id: e.stix_id,
                added_at: e.added_at,
                expires_at: e.expires_at,
                reason: e.reason,
                origin: e.origin,
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRow {
    pub name: String,
    /// `token`, or `user` for a local user of the workbench.
    pub kind: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<scry_store::Account> for TokenRow {
    fn from(t: scry_store::Account) -> TokenRow {
        TokenRow {
            name: t.name,
            kind: t.kind,
            role: t.role,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, body = Vec<TokenRow>), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<TokenRow>>, ApiError> {
    Ok(axum::Json(
        state
            .store
            .accounts()
            .await?
            .into_iter()
            .map(TokenRow::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    /// viewer, analyst or admin.
    pub role: String,
    /// Valid for this many days (forever when left out).
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Shown this once; only its digest is kept.
    pub secret: String,
    pub token: TokenRow,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = TokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), ApiError> {
    let role: Role = request
        .role
        .parse()
        .map_err(|e: access::AccessError| ApiError::body(Some("role"), e.to_string()))?;
    let (secret, token) = access::create_token(
        state.store.as_ref(),
        &request.name,
        role,
        request.days.map(|d| i64::from(d) * 86_400_000),
    )
    .await
    .map_err(|e| match e {
        access::AccessError::InvalidName(_) => ApiError::body(Some("name"), e.to_string()),
        access::AccessError::Store(s) => ApiError::from(s),
        other => ApiError::Internal(other.to_string()),
    })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            secret,
            token: token.into(),
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "access",
    params(("name" = String, Path)),
    responses((status = 204, description = "revoked, with its sessions"), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .revoke_account(&name, scry_engine::automation::now_ms())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no live token named {name:?}")))
    }
}

#[utoipa::path(get, path = "/api/v1/dashboard", tag = "operations",
    responses((status = 200, description = "severity counts, high-priority indicators, top ASNs, countries, CVEs and tags, indicators and calls per day, per-source credits against budget with a forecast, success rate, latency and cache hit rate", body = Object)))]
pub async fn dashboard(State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let dashboard = scry_engine::dashboard::dashboard(state.store.as_ref(), &state.loaded).await?;
    Ok(axum::Json(
        serde_json::to_value(dashboard).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GraphParams {
    /// Start from this stored indicator (value or STIX id): it and what it links to.
    pub indicator: Option<String>,
    /// Or from a shared value: `facet` (asn, cve, country, subnet, service, certificate,
    /// hostname, registrable, resolves-to) and `value`, and the indicators sharing it.
    pub facet: Option<String>,
    pub value: Option<String>,
    /// Indicators listed per shared value at most (default 25, at most 200).
    pub limit: Option<u32>,
}

/// A neighbourhood of the knowledge graph, to draw and expand.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphNode {
    /// A STIX id for indicators, `facet:VALUE` for shared values.
    pub id: String,
    pub label: String,
    /// `indicator` or `shared`.
    pub kind: String,
    pub priority: Option<u8>,
    pub severity: Option<String>,
    /// For shared values: what they are, and how many other indicators share them.
    pub facet: Option<String>,
    pub value: Option<String>,
    pub others: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphEdge {
    pub source: String,
    pub target: String,
    pub label: String,
}

fn indicator_node(stored: &StoredIndicator) -> GraphNode {
    let r = &stored.record;
    GraphNode {
        id: r.stix_id.clone(),
        label: r.value.clone(),
        kind: "indicator".into(),
        priority: Some(r.priority),
        severity: Some(r.severity.clone()),
        facet: None,
        value: None,
        others: None,
    }
}

fn shared_node(facet: Facet, value: &str, others: Option<u64>) -> GraphNode {
    GraphNode {
        id: format!("{facet}:{value}"),
        label: format!("{facet} {value}"),
        kind: "shared".into(),
        priority: None,
        severity: None,
        facet: Some(facet.to_string()),
        value: Some(value.to_owned()),
        others,
    }
}

#[utoipa::path(get, path = "/api/v1/graph", tag = "indicators", params(GraphParams),
    responses((status = 200, body = Graph), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn graph(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<GraphParams>,
) -> Result<axum::Json<Graph>, ApiError> {
    let limit = params.limit.unwrap_or(25);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::parameter("limit", format!("{limit}: 1 to 200")));
    }
    let mut graph = Graph::default();
    match (&params.indicator, &params.facet, &params.value) {
        (Some(text), None, None) => {
            let stored = find(&state, text).await?;
            let from = indicator_node(&stored);
            for n in scry_engine::pivot::neighbours(state.store.as_ref(), &stored).await? {
                // Counted remainders and reverse links have no value to expand.
                let (facet, value) = match n.link {
                    Link::ResolvedBy => (Facet::ResolvesTo, stored.record.value.clone()),
                    Link::Shares(_) if n.value.starts_with('…') => continue,
                    Link::Shares(facet) => (facet, n.value.clone()),
                };
                let node = shared_node(facet, &value, Some(n.others.min(NEIGHBOUR_COUNT_CAP)));
                graph.edges.push(GraphEdge {
                    source: from.id.clone(),
                    target: node.id.clone(),
                    label: facet.to_string(),
                });
                graph.nodes.push(node);
            }
            graph.nodes.insert(0, from);
        }
        (None, Some(facet), Some(value)) => {
            let facet: Facet = facet
                .parse()
                .map_err(|e: UnknownFacet| ApiError::parameter("facet", e.to_string()))?;
            let hub = shared_node(facet, value, None);
            let rows = state
                .store
                .sharing(facet, std::slice::from_ref(value), "", 0, None, limit)
                .await?;
            for (stored, _) in &rows {
                let node = indicator_node(stored);
                graph.edges.push(GraphEdge {
                    source: node.id.clone(),
                    target: hub.id.clone(),
                    label: facet.to_string(),
                });
                graph.nodes.push(node);
            }
            graph.nodes.insert(0, hub);
        }
        _ => {
            return Err(ApiError::parameter(
                "indicator",
                "give either `indicator`, or `facet` and `value`",
            ));
        }
    }
    Ok(axum::Json(graph))
}
