//! A read-only TAXII 2.1 server (OASIS TAXII 2.1, sections 4–5): discovery, one API root,
//! collections, objects, one object, its versions, and the manifest, so SIEMs and TIPs can poll
//! scry's intelligence as STIX 2.1.
//!
//! Collections: every enriched indicator, those at or above `[server] high_priority`, and each
//! blocklist (the feed of its entries: each an indicator of its own, revoked once removed). An indicator's objects (the graph `scry export --format stix` writes, with what
//! people and rules added) are added to a collection with each version of the indicator: its
//! `date_added` is the store's commit stamp of that version (`StoredIndicator::version_us`), which
//! increases in commit order whichever process saved, so `added_after` never skips a version that
//! commits after a poll read. Pages are keyset pages in that order; `next` says where the next
//! page starts, down to the object within an indicator, so `limit` is never exceeded.
//!
//! Objects several indicators share (scry's identity, markings, networks, locations) come with
//! every page that refers to them, once per page, so each page is a graph that stands alone; a
//! consumer merges them by id and version.
//!
//! Finding one object by id (`objects/{id}`, `match[id]`) reads the collection through; TAXII
//! clients poll with `added_after`, which is an index range.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scry_engine::access::Role;
use scry_engine::view;
use scry_store::{IndicatorCursor, IndicatorOrder, IndicatorQuery};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::caller;
use crate::error::ApiError;

pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// Where the TAXII server's resources live; what is not found under it is a TAXII error.
pub const ROOT: &str = "/taxii2/";
const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// Objects per page when the client sets no `limit`, and the most it may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;
/// Indicators read at once while filling a page: about what a page of `limit` objects needs
/// (an indicator brings ten or so), so few are mapped to STIX for nothing.
fn read_batch(limit: usize) -> u32 {
    (limit / 8).clamp(4, 200) as u32
}
/// An API root's most accepted content length (scry takes no objects: it is read-only).
const MAX_CONTENT_LENGTH: u64 = 1_048_576;

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/taxii2/api/", get(api_root))
        .route("/taxii2/api/collections/", get(collections))
        .route("/taxii2/api/collections/{collection}/", get(collection))
        .route(
            "/taxii2/api/collections/{collection}/objects/",
            get(objects),
        )
        .route(
            "/taxii2/api/collections/{collection}/objects/{object}/",
            get(object),
        )
        .route(
            "/taxii2/api/collections/{collection}/objects/{object}/versions/",
            get(versions),
        )
        .route(
            "/taxii2/api/collections/{collection}/manifest/",
            get(manifest),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
}

/// A TAXII error message (section 3.6.1), with the TAXII media type.
pub struct TaxiiError {
    status: StatusCode,
    title: String,
    description: String,
}

impl TaxiiError {
    fn new(status: StatusCode, title: &str, description: impl Into<String>) -> TaxiiError {
        TaxiiError {
            status,
            title: title.to_owned(),
            description: description.into(),
        }
    }

    pub(crate) fn not_found(description: impl Into<String>) -> TaxiiError {
        TaxiiError::new(StatusCode::NOT_FOUND, "Not found", description)
    }

    pub(crate) fn method_not_allowed(description: impl Into<String>) -> TaxiiError {
        TaxiiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            description,
        )
    }

    fn bad_request(description: impl Into<String>) -> TaxiiError {
        TaxiiError::new(StatusCode::BAD_REQUEST, "Bad request", description)
    }
}

impl From<ApiError> for TaxiiError {
    fn from(error: ApiError) -> TaxiiError {
        TaxiiError::new(error.status(), error.code(), error.to_string())
    }
}

impl From<scry_store::StoreError> for TaxiiError {
    fn from(error: scry_store::StoreError) -> TaxiiError {
        ApiError::from(error).into()
    }
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let body = json!({"title": self.title, "description": self.description,
            "http_status": self.status.as_u16().to_string()});
        let mut response = (self.status, taxii_json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"scry\", Bearer realm=\"scry\""),
            );
        }
        response
    }
}

fn taxii_json(body: Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(TAXII_MEDIA_TYPE),
        )],
        Json(body),
    )
        .into_response()
}

/// Whether an `Accept` header takes TAXII 2.1 JSON (absent counts as yes).
fn accepts_taxii(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|part| {
        let part = part.trim().to_ascii_lowercase().replace(' ', "");
        part == "*/*"
            || part.starts_with("application/*")
            || part == "application/taxii+json"
            || part.starts_with("application/taxii+json;version=2.1")
    })
}

/// Authentication (token as Bearer or as the Basic password), the viewer role and content
/// negotiation, answered as TAXII errors.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let caller = match caller(&state, request.headers()).await {
        Ok(Some(caller)) => caller,
        Ok(None) => {
            return TaxiiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "send a scry token as Bearer, or as the password of HTTP Basic",
            )
            .into_response();
        }
        Err(error) => return TaxiiError::from(error).into_response(),
    };
    if !caller.principal.may(Role::Viewer) {
        return TaxiiError::new(StatusCode::FORBIDDEN, "Forbidden", "the token may not read")
            .into_response();
    }
    if !accepts_taxii(request.headers()) {
        return TaxiiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Not acceptable",
            format!("this server answers {TAXII_MEDIA_TYPE}"),
        )
        .into_response();
    }
    next.run(request).await
}

async fn discovery(State(state): State<AppState>) -> Response {
    let _ = state;
    taxii_json(json!({
        "title": "scry",
        "description": "Enriched, prioritized threat intelligence from scry",
        "default": "/taxii2/api/",
        "api_roots": ["/taxii2/api/"],
    }))
}

async fn api_root() -> Response {
    taxii_json(json!({
        "title": "scry intelligence",
        "description": "Indicators enriched and scored by scry, with their STIX graph",
        "versions": [TAXII_MEDIA_TYPE],
        "max_content_length": MAX_CONTENT_LENGTH,
    }))
}

/// What a collection holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holding {
    Enriched,
    HighPriority(u8),
    Blocklist(String),
}

#[derive(Debug, Clone)]
struct Collection {
    id: String,
    title: String,
    description: String,
    holding: Holding,
}

/// A collection's id: a UUID derived from its name, stable across restarts and machines.
fn collection_id(name: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5c7e_2a1f_9d4b_4b8e_a6c3_1f0e_7d2c_9b41);
    uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

fn all_collections(state: &AppState) -> Vec<Collection> {
    let high = state.loaded.config.server.high_priority;
    let mut out = vec![
        Collection {
            id: collection_id("indicators"),
            title: "Enriched indicators".into(),
            description: "Every enriched indicator with its graph: infrastructure, observables, vulnerabilities, locations".into(),
            holding: Holding::Enriched,
        },
        Collection {
            id: collection_id("high-priority"),
            title: format!("Priority {high} and above"),
            description: format!("Enriched indicators with priority {high} or more"),
            holding: Holding::HighPriority(high),
        },
    ];
    for name in state.loaded.config.automation.blocklists.keys() {
        out.push(Collection {
            id: collection_id(&format!("blocklist:{name}")),
            title: format!("Blocklist {name}"),
            description: format!(
                "The indicators on blocklist {name}, added when they were blocked"
            ),
            holding: Holding::Blocklist(name.clone()),
        });
    }
    out
}

fn find_collection(state: &AppState, id: &str) -> Result<Collection, TaxiiError> {
    all_collections(state)
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| TaxiiError::not_found(format!("no collection {id}")))
}

fn collection_json(c: &Collection) -> Value {
    json!({"id": c.id, "title": c.title, "description": c.description,
        "can_read": true, "can_write": false, "media_types": [STIX_MEDIA_TYPE]})
}

async fn collections(State(state): State<AppState>) -> Response {
    let list: Vec<Value> = all_collections(&state)
        .iter()
        .map(collection_json)
        .collect();
    taxii_json(json!({ "collections": list }))
}

async fn collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, TaxiiError> {
    Ok(taxii_json(collection_json(&find_collection(&state, &id)?)))
}

/// A TAXII timestamp of a commit stamp: RFC 3339 UTC with microseconds, so every version the
/// store commits has a `date_added` of its own.
fn taxii_time(us: i64) -> String {
    scry_stix::timestamp::stix_time_us(us)
}

/// The filters of an objects or manifest request (section 3.5).
#[derive(Debug, Default)]
struct Filters {
    added_after: Option<i64>,
    limit: usize,
    next: Option<Resume>,
    ids: Vec<String>,
    types: Vec<String>,
    /// `last` (default), `first`, `all`, or timestamps.
    versions: Vec<String>,
    spec_versions: Vec<String>,
}

impl Filters {
    fn parse(query: Option<&str>) -> Result<Filters, TaxiiError> {
        let mut filters = Filters {
            limit: DEFAULT_LIMIT,
            ..Filters::default()
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| TaxiiError::bad_request(format!("query string: {e}")))?;
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        for (key, value) in pairs {
            match key.as_str() {
                "added_after" => {
                    filters.added_after = Some(
                        scry_core::calendar::us_from_timestamp(&value).ok_or_else(|| {
                            TaxiiError::bad_request(format!(
                                "added_after {value:?} is not a timestamp"
                            ))
                        })?,
                    );
                }
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        TaxiiError::bad_request(format!("limit {value:?} is not a positive number"))
                    })?;
                    if limit == 0 {
                        return Err(TaxiiError::bad_request("limit must be at least 1"));
                    }
                    filters.limit = limit.min(MAX_LIMIT);
                }
                "next" => filters.next = Some(Resume::parse(&value)?),
                "match[id]" => filters.ids.extend(list(&value)),
                "match[type]" => filters.types.extend(list(&value)),
                "match[version]" => filters.versions.extend(list(&value)),
                "match[spec_version]" => filters.spec_versions.extend(list(&value)),
                // TAXII 2.1 (3.5): a filter the server does not support is ignored, not an
                // error; so is any other parameter (a client's cache-buster, a vendor's own).
                _ => {}
            }
        }
        for version in &filters.versions {
            if !matches!(version.as_str(), "first" | "last" | "all")
                && scry_core::calendar::us_from_timestamp(version).is_none()
            {
                return Err(TaxiiError::bad_request(format!(
                    "match[version] {version:?}: expected first, last, all or a timestamp"
                )));
            }
        }
        Ok(filters)
    }

    fn keeps(&self, object: &Value, version: &str) -> bool {
        let id = object["id"].as_str().unwrap_or("");
        let kind = object["type"].as_str().unwrap_or("");
        if !self.ids.is_empty() && !self.ids.iter().any(|i| i == id) {
            return false;
        }
        if !self.types.is_empty() && !self.types.iter().any(|t| t == kind) {
            return false;
        }
        if !self.spec_versions.is_empty()
            && !self
                .spec_versions
                .iter()
                .any(|v| Some(v.as_str()) == object["spec_version"].as_str().or(Some("2.1")))
        {
            return false;
        }
        // Each object has one version here, so first, last and all all keep it.
        let timestamps: Vec<i64> = self
            .versions
            .iter()
            .filter_map(|v| scry_core::calendar::us_from_timestamp(v))
            .collect();
        let keywords = self
            .versions
            .iter()
            .any(|v| matches!(v.as_str(), "first" | "last" | "all"));
        if !timestamps.is_empty() && !keywords {
            let ours = scry_core::calendar::us_from_timestamp(version);
            return ours.is_some_and(|o| timestamps.contains(&o));
        }
        true
    }
}

/// Where a page resumes: after the item with this cursor (from the start when empty), skipping
/// this many of the next item's objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Resume {
    after: String,
    skip: usize,
}

impl Resume {
    fn parse(text: &str) -> Result<Resume, TaxiiError> {
        let invalid =
            || TaxiiError::bad_request(format!("next {text:?} is not one this server gave"));
        let (after, skip) = text.rsplit_once('!').ok_or_else(invalid)?;
        Ok(Resume {
            after: after.to_owned(),
            skip: skip.parse().map_err(|_| invalid())?,
        })
    }

    fn token(&self) -> String {
        format!("{}!{}", self.after, self.skip)
    }
}

/// One indicator of a collection: when its current version was committed (the store's commit
/// stamp, Unix µs), its objects, and its cursor.
struct Item {
    date_added: i64,
    objects: Vec<Value>,
    cursor: String,
}

/// Up to `want` items of a collection after `after`, added after `added_after`; and whether more
/// follow.
async fn read_items(
    state: &AppState,
    collection: &Collection,
    added_after: Option<i64>,
    after: &str,
    want: u32,
) -> Result<(Vec<Item>, bool), TaxiiError> {
    let options = scry_stix::MapOptions::default();
    // Each indicator's objects carry what people and rules added (labels, a priority override).
    let workflows = |stored: &[&scry_store::StoredIndicator]| {
        let ids: Vec<String> = stored.iter().map(|s| s.record.stix_id.clone()).collect();
        async move {
            Ok::<_, TaxiiError>(
                state
                    .store
                    .workflows(&ids)
                    .await?
                    .into_iter()
                    .map(|w| (w.stix_id.clone(), w))
                    .collect::<std::collections::HashMap<_, _>>(),
            )
        }
    };
    let objects_of = |stored: &scry_store::StoredIndicator,
                      workflow: Option<&scry_store::Workflow>|
     -> Result<Vec<Value>, TaxiiError> {
        Ok(
            view::stix_objects(stored, workflow, state.unmarked_tlp(), &options)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .into_iter()
                .map(|o| o.json)
                .collect(),
        )
    };
    match &collection.holding {
        Holding::Enriched | Holding::HighPriority(_) => {
            let min_priority = match collection.holding {
                Holding::HighPriority(p) => p,
                _ => 0,
            };
            let after = (!after.is_empty())
                .then(|| {
                    after
                        .parse::<IndicatorCursor>()
                        .map_err(|_| TaxiiError::bad_request("next is not one this server gave"))
                })
                .transpose()?;
            // In commit order: a version committed after a poll has a later stamp than every
            // version that poll could see, so `added_after` never skips one.
            let page = state
                .store
                .search_indicators(&IndicatorQuery {
                    min_priority,
                    enrichment: Some("enriched".into()),
                    version_after: added_after,
                    order: IndicatorOrder::Version,
                    descending: false,
                    after,
                    limit: want,
                    ..IndicatorQuery::default()
                })
                .await?;
            let stored: Vec<&scry_store::StoredIndicator> =
                page.rows.iter().map(|l| &l.stored).collect();
            let workflows = workflows(&stored).await?;
            let mut items = Vec::with_capacity(page.rows.len());
            for listed in &page.rows {
                let stored = &listed.stored;
                items.push(Item {
                    date_added: stored.version_us,
                    objects: objects_of(stored, workflows.get(&stored.record.stix_id))?,
                    cursor: listed.cursor.to_string(),
                });
            }
            Ok((items, page.next.is_some()))
        }
        Holding::Blocklist(name) => {
            // The list's changes in commit order: each entry as an indicator of its own, and a
            // removed one (unblocked, expired) as that indicator revoked, so a firewall or a TIP
            // polling the feed learns of removals too.
            let config = state.loaded.config.automation.blocklists.get(name.as_str());
            let resume = (!after.is_empty()).then(|| block_key_of(after).0);
            let since = added_after.max(resume).unwrap_or(i64::MIN);
            let mut entries = state
                .store
                .blocklist_changes(name, since, want.saturating_add(1))
                .await?;
            let more = entries.len() > want as usize;
            entries.truncate(want as usize);
            let mut items = Vec::with_capacity(entries.len());
            for entry in &entries {
                if let Some(config) = config
                    && scry_engine::blocklist::admits(name, config, &entry.value).is_err()
                {
                    continue;
                }
                let tlp = match state.store.indicator_by_id(&entry.stix_id).await? {
                    Some(stored) => stored
                        .record
                        .tlp
                        .as_deref()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or_else(|| state.unmarked_tlp()),
                    None => state.unmarked_tlp(),
                };
                let objects = scry_stix::blocklist_entry_objects(&scry_stix::BlockState {
                    list: name,
                    value: &entry.value,
                    reason: &entry.reason,
                    tlp,
                    added_ms: entry.added_at,
                    expires_ms: entry.expires_at,
                    version_us: entry.version_us,
                    removed: entry.removed_at.is_some(),
                })
                .map_err(|e| ApiError::Internal(e.to_string()))?;
                items.push(Item {
                    date_added: entry.version_us,
                    objects: objects.into_iter().map(|o| o.json).collect(),
                    cursor: format!("{}~{}", entry.version_us, entry.value),
                });
            }
            // A page of entries of other types still moves the cursor on.
            if items.is_empty()
                && more
                && let Some(last) = entries.last()
            {
                items.push(Item {
                    date_added: last.version_us,
                    objects: Vec::new(),
                    cursor: format!("{}~{}", last.version_us, last.value),
                });
            }
            Ok((items, more))
        }
    }
}

fn block_key_of(cursor: &str) -> (i64, String) {
    let (at, value) = cursor.split_once('~').unwrap_or(("0", ""));
    (at.parse().unwrap_or(0), value.to_owned())
}

/// The version of an object: `modified`, else `created`, else when it was added.
fn version_of(object: &Value, date_added: i64) -> String {
    object["modified"]
        .as_str()
        .or(object["created"].as_str())
        .map_or_else(|| taxii_time(date_added), str::to_owned)
}

/// One page of a collection's objects: (object, date added, version) and the resume token.
async fn page(
    state: &AppState,
    collection: &Collection,
    filters: &Filters,
) -> Result<(Vec<(Value, i64, String)>, Option<Resume>), TaxiiError> {
    let mut resume = filters.next.clone().unwrap_or_default();
    let mut out: Vec<(Value, i64, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let (items, more) = read_items(
            state,
            collection,
            filters.added_after,
            &resume.after,
            read_batch(filters.limit),
        )
        .await?;
        let mut before = resume.after.clone();
        for item in items {
            for (index, object) in item.objects.iter().enumerate().skip(resume.skip) {
                if out.len() == filters.limit {
                    return Ok((
                        out,
                        Some(Resume {
                            after: before,
                            skip: index,
                        }),
                    ));
                }
                let version = version_of(object, item.date_added);
                let id = object["id"].as_str().unwrap_or("").to_owned();
                if filters.keeps(object, &version) && seen.insert((id, version.clone())) {
                    out.push((object.clone(), item.date_added, version));
                }
            }
            resume.skip = 0;
            before = item.cursor.clone();
        }
        resume = Resume {
            after: before,
            skip: 0,
        };
        if !more {
            return Ok((out, None));
        }
    }
}

fn with_date_headers(mut response: Response, rows: &[(Value, i64, String)]) -> Response {
    let first = rows.iter().map(|r| r.1).min();
    let last = rows.iter().map(|r| r.1).max();
    for (name, at) in [
        ("x-taxii-date-added-first", first),
        ("x-taxii-date-added-last", last),
    ] {
        if let Some(at) = at
            && let Ok(value) = HeaderValue::from_str(&taxii_time(at))
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A page of a TAXII resource: `more`, `next` when there is more, and the items under `key`
/// (left out when there are none), with the date-added headers of the rows.
fn paged(
    rows: &[(Value, i64, String)],
    resume: Option<Resume>,
    key: &str,
    items: Vec<Value>,
) -> Response {
    let mut body = json!({"more": resume.is_some()});
    if let Some(resume) = resume {
        body["next"] = resume.token().into();
    }
    if !items.is_empty() {
        body[key] = Value::Array(items);
    }
    with_date_headers(taxii_json(body), rows)
}

fn envelope(rows: &[(Value, i64, String)], resume: Option<Resume>) -> Response {
    let objects = rows.iter().map(|r| r.0.clone()).collect();
    paged(rows, resume, "objects", objects)
}

async fn objects(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, TaxiiError> {
    let collection = find_collection(&state, &id)?;
    let filters = Filters::parse(request.uri().query())?;
    let (rows, resume) = page(&state, &collection, &filters).await?;
    Ok(envelope(&rows, resume))
}

/// The versions of one object in a collection (`match[version]` applies unless `all_versions`);
/// not found when the collection does not hold it.
async fn one_object(
    state: &AppState,
    id: &str,
    object_id: &str,
    query: Option<&str>,
    all_versions: bool,
) -> Result<(Vec<(Value, i64, String)>, Option<Resume>), TaxiiError> {
    let collection = find_collection(state, id)?;
    let mut filters = Filters::parse(query)?;
    filters.ids = vec![object_id.to_owned()];
    if all_versions {
        filters.versions.clear();
    }
    let (rows, resume) = page(state, &collection, &filters).await?;
    if rows.is_empty() && resume.is_none() {
        return Err(TaxiiError::not_found(format!(
            "no object {object_id} in this collection"
        )));
    }
    Ok((rows, resume))
}

async fn object(
    State(state): State<AppState>,
    Path((id, object_id)): Path<(String, String)>,
    request: Request,
) -> Result<Response, TaxiiError> {
    let (rows, resume) = one_object(&state, &id, &object_id, request.uri().query(), false).await?;
    Ok(envelope(&rows, resume))
}

async fn versions(
    State(state): State<AppState>,
    Path((id, object_id)): Path<(String, String)>,
    request: Request,
) -> Result<Response, TaxiiError> {
    let (rows, resume) = one_object(&state, &id, &object_id, request.uri().query(), true).await?;
    let versions = rows.iter().map(|r| Value::String(r.2.clone())).collect();
    Ok(paged(&rows, resume, "versions", versions))
}

async fn manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, TaxiiError> {
    let collection = find_collection(&state, &id)?;
    let filters = Filters::parse(request.uri().query())?;
    let (rows, resume) = page(&state, &collection, &filters).await?;
    let entries = rows
        .iter()
        .map(|(object, added, version)| {
            json!({"id": object["id"], "date_added": taxii_time(*added),
                "version": version, "media_type": STIX_MEDIA_TYPE})
        })
        .collect();
    Ok(paged(&rows, resume, "objects", entries))
}
