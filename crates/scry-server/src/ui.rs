//! The analyst workbench: server-rendered pages (minijinja templates embedded in the binary), a
//! stylesheet and a small script, and the vendored graph library, so it works with no network.
//! Pages call the same handlers' helpers as the REST API (`api::detail`, `api::rule_verdicts`, …)
//! and the engine; forms post to the same queue the API uses.
//!
//! Browsers log in with a token or as a local user and get a session cookie (HttpOnly, SameSite=Strict, Secure unless
//! `[server] secure_cookies = false`); every form carries the session's anti-forgery value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Environment, Value as Jinja, context};
use scry_engine::access::{self, Role};
use scry_engine::input::{InputFormat, InputSource};
use scry_rules::ActionSpec;
use scry_store::{IndicatorOrder, IndicatorQuery};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::{self, HistoryParams, ListParams};
use crate::auth::{Caller, SESSION_COOKIE, caller, cookie, from_another_site, refuse_other_sites};
use crate::error::ApiError;
use crate::throttle::Attempt;

const FLASH_COOKIE: &str = "scry_flash";

/// The assets served under `/assets/`, embedded at build time: (path, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "vendor/cytoscape.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/cytoscape.min.js"),
    ),
    (
        "vendor/cytoscape.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/cytoscape.LICENSE"),
    ),
];

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("queue.html", include_str!("../templates/queue.html")),
    (
        "indicator.html",
        include_str!("../templates/indicator.html"),
    ),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
    ("rules.html", include_str!("../templates/rules.html")),
    ("sources.html", include_str!("../templates/sources.html")),
    (
        "blocklists.html",
        include_str!("../templates/blocklists.html"),
    ),
    ("history.html", include_str!("../templates/history.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// A Unix-ms time as `YYYY-MM-DD HH:MM` UTC.
fn when(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
    };
    let t = scry_core::calendar::UtcTime::from_ms(ms);
    let (y, m, d) = t.date;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", t.hour, t.minute)
}

/// What a path segment may carry as it is (RFC 3986 unreserved); the rest is percent-encoded.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env.add_filter("when", when);
        // A value as one path segment: everything but unreserved characters encoded, `/`
        // included, so a URL indicator's link stays one segment (`urlencode` keeps `/`).
        env.add_filter("segment", |text: String| {
            percent_encoding::utf8_percent_encode(&text, PATH_SEGMENT).to_string()
        });
        env.add_filter("signed", |n: i64| format!("{n:+}"));
        // Bar lengths for the charts: `bar` across 200 units, `col` up to 100.
        env.add_function("bar", |n: u64, max: u64| {
            (n * 200).checked_div(max).unwrap_or(0)
        });
        env.add_function("col", |n: u64, max: u64| {
            (n * 100).checked_div(max).unwrap_or(0)
        });
        env.add_function("pct", |p: Option<f64>| {
            p.map(|p| format!("{p:.1}%")).unwrap_or_default()
        });
        env
    })
}

/// A page: its template, and the values every page has (who, the form token, the flash message).
struct Page<'a> {
    caller: &'a Caller,
    name: &'static str,
    headers: &'a HeaderMap,
}

impl Page<'_> {
    fn render(&self, status: StatusCode, values: Jinja) -> Response {
        let flash = cookie(self.headers, FLASH_COOKIE).map(|text| {
            url::form_urlencoded::parse(format!("m={text}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        });
        let common = context! {
            user => self.caller.principal.name,
            role => self.caller.principal.role.as_str(),
            csrf => self.caller.session_csrf.clone().unwrap_or_default(),
            may_act => self.caller.principal.may(Role::Analyst),
            page => self.name,
            flash => flash,
        };
        let html = templates()
            .get_template(&format!("{}.html", self.name))
            .and_then(|t| t.render(context! { ..values, ..common }));
        match html {
            Ok(html) => {
                let mut response = (status, Html(html)).into_response();
                if flash.is_some() {
                    response.headers_mut().append(
                        header::SET_COOKIE,
                        HeaderValue::from_static(
                            "scry_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
                        ),
                    );
                }
                response
            }
            Err(e) => {
                tracing::error!("rendering {}: {e:#}", self.name);
                ApiError::Internal(format!("template {}: {e}", self.name)).into_response()
            }
        }
    }
}

/// A page that failed: the error page with the error table's status and message.
pub struct UiError(ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError(e)
    }
}

impl From<scry_store::StoreError> for UiError {
    fn from(e: scry_store::StoreError) -> UiError {
        UiError(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let html = templates().get_template("error.html").and_then(|t| {
            t.render(context! { status => status.as_u16(), message => self.0.detail().message })
        });
        match html {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => self.0.into_response(),
        }
    }
}

/// Redirects to `to` with a message shown once on the next page.
fn redirect_with(to: &str, message: &str) -> Response {
    let value: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    let mut response = Redirect::to(to).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={value}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Pages need a login: without one the browser goes to the login page; with too small a role
/// it gets the error page.
pub async fn page_guard(
    State((state, needed)): State<(AppState, Role)>,
    mut request: Request,
    next: Next,
) -> Response {
    let who = match caller(&state, request.headers()).await {
        Ok(Some(who)) => who,
        Ok(None) | Err(ApiError::Unauthenticated) => {
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
            return Redirect::to(&format!("/login?next={next}")).into_response();
        }
        Err(other) => return UiError(other).into_response(),
    };
    if !who.principal.may(needed) {
        return UiError(ApiError::Forbidden {
            needed,
            has: who.principal.role,
        })
        .into_response();
    }
    // The form handlers check the form's anti-forgery value; a post that a browser says came
    // from another site's page is refused before it is read.
    if let Err(forged) = refuse_other_sites(request.method(), request.headers()) {
        return UiError(forged).into_response();
    }
    request.extensions_mut().insert(who);
    next.run(request).await
}

/// `GET /assets/{*path}`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return ApiError::NotFound(format!("no asset {path}")).into_response();
    };
    let etag = format!(
        "\"{}\"",
        &scry_sources::secret::digest_hex(&String::from_utf8_lossy(bytes))[..16]
    );
    if crate::ops::none_match(&headers, &etag) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, HeaderValue::from_str(&etag).expect("hex")),
        ],
        *bytes,
    )
        .into_response()
}

fn form_pairs(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The cookie that carries the login form's anti-forgery value (double submit: the form's
/// `csrf` field must equal it). Another site can neither read it nor, with `SameSite=Strict`,
/// have the browser send it, so it cannot log a victim's browser into the attacker's account.
const LOGIN_COOKIE: &str = "scry_login";

/// `GET /login`.
pub async fn login_page(State(state): State<AppState>, request: Request) -> Response {
    if let Ok(Some(_)) = caller(&state, request.headers()).await {
        return Redirect::to("/").into_response();
    }
    let next = request
        .uri()
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "next"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let form = match LoginForm::new(&state, cookie(request.headers(), LOGIN_COOKIE)) {
        Ok(form) => form,
        Err(e) => return UiError(e).into_response(),
    };
    form.render(StatusCode::OK, &next, None)
}

/// The login form and its anti-forgery value.
struct LoginForm {
    csrf: String,
    secure: bool,
}

impl LoginForm {
    /// The form for a browser that holds `kept` (its login cookie), or a new value.
    fn new(state: &AppState, kept: Option<String>) -> Result<LoginForm, ApiError> {
        let csrf =
            match kept.filter(|v| v.len() >= 32 && v.chars().all(|c| c.is_ascii_alphanumeric())) {
                Some(value) => value,
                None => access::random_hex().map_err(|e| ApiError::Internal(e.to_string()))?,
            };
        Ok(LoginForm {
            csrf,
            secure: state.loaded.config.server.secure_cookies,
        })
    }

    fn render(&self, status: StatusCode, next: &str, error: Option<&str>) -> Response {
        let html = templates()
            .get_template("login.html")
            .and_then(|t| t.render(context! { next => next, error => error, csrf => self.csrf }));
        let mut response = match html {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => return ApiError::Internal(e.to_string()).into_response(),
        };
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{LOGIN_COOKIE}={}; Path=/login; Max-Age=3600; HttpOnly; SameSite=Strict{secure}",
            self.csrf
        );
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("the cookie is ASCII"),
        );
        response
    }
}

/// Where to go after logging in: a path on this server only.
fn local_path(next: &str) -> &str {
    // Browsers drop tabs and line breaks from a URL before reading it, so `/\t/evil` would
    // become `//evil`, another site: a path with any control character or space is refused.
    let plain = !next.chars().any(|c| c.is_control() || c.is_whitespace());
    if plain && next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/"
    }
}

/// `POST /login`: a token, or a local user's name and password, opens a session.
///
/// Password logins are throttled per account and per client address ([`crate::throttle`]): past
/// a few failures a key is locked for a doubling time and refused with `429` and `Retry-After`
/// without a password check. Every failure is logged (name and address, never the password)
/// and counted in `/metrics`.
///
/// The form must carry the anti-forgery value of its login cookie, and a browser post from
/// another site's page is refused: `403` with a fresh form, and nothing is checked or counted.
pub async fn login(
    State(state): State<AppState>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let next = field(&pairs, "next").unwrap_or("/").to_owned();
    // The client's address: behind a trusted proxy, the one its X-Forwarded-For names.
    let address = client.map(|Extension(ConnectInfo(peer))| {
        crate::throttle::client_address(peer.ip(), &headers, &state.trusted_proxies)
    });
    let kept = cookie(&headers, LOGIN_COOKIE);
    let forged =
        from_another_site(&headers) || kept.is_none() || field(&pairs, "csrf") != kept.as_deref();
    let form = match LoginForm::new(&state, kept.filter(|_| !forged)) {
        Ok(form) => form,
        Err(e) => return UiError(e).into_response(),
    };
    if forged {
        tracing::warn!(address = ?address, "login refused: the form's anti-forgery value is missing or wrong");
        return form.render(
            StatusCode::FORBIDDEN,
            &next,
            Some("This login form did not come from this server, or it expired. Log in again."),
        );
    }
    let token = field(&pairs, "token").unwrap_or("").trim().to_owned();
    let user = field(&pairs, "user").unwrap_or("").trim().to_owned();
    let password = field(&pairs, "password").unwrap_or("").to_owned();

    let attempt = Attempt {
        // A wrong token names no account: it counts against the address only, so guessing
        // tokens cannot lock everyone else's token logins.
        account: token.is_empty().then(|| user.clone()),
        address,
    };
    let permit = match state.logins.begin(&attempt, Instant::now()) {
        Ok(permit) => permit,
        Err(wait) => {
            state.metrics.login_refused();
            tracing::warn!(user = ?attempt.account, address = ?address, "login refused: too many failed logins");
            let seconds = wait.as_secs().max(1);
            let mut response = form.render(
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                Some(&format!(
                    "Too many failed logins. Try again in {seconds} s."
                )),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits"),
            );
            return response;
        }
    };
    let (found, refusal) = if !token.is_empty() {
        (
            access::authenticate(state.store.as_ref(), &token).await,
            "That token is unknown, expired or revoked.",
        )
    } else {
        (
            access::log_in(state.store.as_ref(), &user, &password).await,
            "Unknown user or wrong password.",
        )
    };
    let principal = match found {
        Ok(Some(p)) => {
            state.logins.succeeded(permit);
            p
        }
        Ok(None) => {
            state.logins.failed(permit, Instant::now());
            state.metrics.login_failed();
            tracing::warn!(user = ?attempt.account, address = ?address, "failed login");
            return form.render(StatusCode::UNAUTHORIZED, &next, Some(refusal));
        }
        Err(e) => {
            // Not the caller's fault: nothing is counted against them.
            state.logins.succeeded(permit);
            return UiError(e.into()).into_response();
        }
    };
    let hours = state.loaded.config.server.session_hours;
    let opened = match access::open_session(
        state.store.as_ref(),
        &principal,
        (hours * 3_600_000.0) as i64,
    )
    .await
    {
        Ok(opened) => opened,
        Err(e) => return UiError(ApiError::Internal(e.to_string())).into_response(),
    };
    let secure = if state.loaded.config.server.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        opened.cookie,
        (hours * 3600.0) as i64
    );
    let mut response = Redirect::to(local_path(&next)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("the cookie is ASCII"),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("scry_login=; Path=/login; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    response
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    who.check_csrf(field(&form_pairs(&body), "csrf"))?;
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        access::close_session(state.store.as_ref(), &session).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("scry_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    Ok(response)
}

#[derive(Serialize)]
struct Column {
    key: &'static str,
    label: &'static str,
    href: String,
    active: bool,
    descending: bool,
}

fn query_string(pairs: &[(String, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    out.finish()
}

/// A page's query string: its filled-in fields (a form sends empty ones too) and them read as `T`.
fn filled_in<T: serde::de::DeserializeOwned>(
    request: &Request,
) -> Result<(Vec<(String, String)>, T), ApiError> {
    let raw = request.uri().query().unwrap_or("");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let params = serde_urlencoded::from_str(&query_string(&pairs))
        .map_err(|e| ApiError::parameter("query", e.to_string()))?;
    Ok((pairs, params))
}

/// `GET /`: the queue, by priority unless sorted otherwise.
pub async fn queue(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    request: Request,
) -> Result<Response, UiError> {
    let (pairs, params): (_, ListParams) = filled_in(&request)?;
    let query = params.query()?;
    let page = state.store.search_indicators(&query).await?;
    let sort = params.sort.clone().unwrap_or_else(|| "-priority".into());
    let without = |drop: &[&str]| -> Vec<(String, String)> {
        pairs
            .iter()
            .filter(|(k, _)| !drop.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let columns: Vec<Column> = [
        ("priority", "Priority"),
        ("value", "Indicator"),
        ("severity", "Severity"),
        ("last_changed", "Changed"),
    ]
    .into_iter()
    .map(|(key, label)| {
        let active = sort.trim_start_matches('-') == key;
        let descending = sort.starts_with('-');
        // Severity sorts with priority, which it follows.
        let sort_key = if key == "severity" { "priority" } else { key };
        let next_sort = if active && descending {
            sort_key.to_owned()
        } else if active {
            format!("-{sort_key}")
        } else if key == "value" {
            sort_key.to_owned()
        } else {
            format!("-{sort_key}")
        };
        let mut link = without(&["sort", "after"]);
        link.push(("sort".into(), next_sort));
        Column {
            key,
            label,
            href: format!("/?{}", query_string(&link)),
            active: active && key != "severity",
            descending,
        }
    })
    .collect();
    let next = page.next.as_ref().map(|cursor| {
        let mut link = without(&["after"]);
        link.push(("after".into(), cursor.to_string()));
        format!("/?{}", query_string(&link))
    });
    let rows: Vec<api::IndicatorRow> = page.rows.iter().map(api::row).collect();
    let blocklists: Vec<&String> = state.loaded.config.automation.blocklists.keys().collect();
    let shown: BTreeMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(Page {
        caller: &who,
        name: "queue",
        headers: request.headers(),
    }
    .render(
        StatusCode::OK,
        context! {
            rows => rows, columns => columns, next => next, sort => sort, params => shown,
            types => api::STIX_TYPES, severities => api::SEVERITIES, blocklists => blocklists,
            statuses => scry_rules::WORKFLOW_STATUSES,
            here => format!("/?{}", query_string(&pairs)),
        },
    ))
}

/// `POST /ui/submit`: indicators pasted into the queue page.
pub async fn submit(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    body: Bytes,
) -> Result<Response, UiError> {
    let pairs = form_pairs(&body);
    who.check_csrf(field(&pairs, "csrf"))?;
    let text = field(&pairs, "indicators").unwrap_or("").to_owned();
    let tlp = field(&pairs, "tlp").filter(|t| !t.is_empty());
    let force = field(&pairs, "force") == Some("true");
    let result = api::ingest(
        &state,
        &who,
        InputSource::upload("submitted", text.into_bytes()),
        InputFormat::Text,
        tlp,
        force,
        |r| format!("line {}", r.position.line),
    )
    .await?;
    let mut message = format!(
        "{} queued for enrichment ({} duplicates, {} rejected)",
        result.queued, result.duplicates, result.rejected
    );
    if let Some(first) = result.rejections.first() {
        message.push_str(&format!(
            "; {}: {:?} {}",
            first.position, first.input, first.reason
        ));
    }
    Ok(redirect_with("/", &message))
}

/// The action a queue form asks for (`action`, with `value` for those that need one).
fn action_of(action: &str, value: &str) -> Result<ActionSpec, String> {
    let needs_value = |what: &str| -> Result<String, String> {
        if value.is_empty() {
            Err(format!("say which {what} in the box beside the action"))
        } else {
            Ok(value.to_owned())
        }
    };
    Ok(match action.split_once(':') {
        Some(("block", list)) => ActionSpec::Block {
            list: list.to_owned(),
            days: None,
        },
        Some(("unblock", list)) => ActionSpec::Unblock {
            list: list.to_owned(),
        },
        _ => match action {
            "tag" => ActionSpec::Tag {
                tag: needs_value("tag")?,
            },
            "untag" => ActionSpec::Untag {
                tag: needs_value("tag")?,
            },
            "status" => ActionSpec::SetStatus {
                status: needs_value("status")?,
            },
            "priority" => ActionSpec::SetPriority {
                priority: needs_value("priority")?
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| format!("{value:?} is not a priority from 0 to 100"))?,
            },
            "revert-priority" => ActionSpec::RevertPriority,
            other => return Err(format!("unknown action {other:?}")),
        },
    })
}

/// `POST /ui/actions`: the queue's bulk actions on the selected indicators.
pub async fn actions(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    body: Bytes,
) -> Result<Response, UiError> {
    let pairs = form_pairs(&body);
    who.check_csrf(field(&pairs, "csrf"))?;
    // Back to the queue as it was (its filters, order and page), a path of this site only.
    let back = field(&pairs, "back")
        .filter(|b| *b == "/" || b.starts_with("/?"))
        .unwrap_or("/")
        .to_owned();
    let selected: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "indicator")
        .map(|(_, v)| v.clone())
        .collect();
    if selected.is_empty() {
        return Ok(redirect_with(&back, "Select indicators first."));
    }
    api::check_action_work(&state, selected.len(), 1)?;
    let action = field(&pairs, "action").unwrap_or("");
    let value = field(&pairs, "value").unwrap_or("").trim().to_owned();
    if action == "enrich" {
        let result = api::ingest(
            &state,
            &who,
            InputSource::upload("selected", selected.join("\n").into_bytes()),
            InputFormat::Lines,
            None,
            true,
            |r| r.position.to_string(),
        )
        .await?;
        return Ok(redirect_with(
            &back,
            &format!("{} queued to be enriched again", result.queued),
        ));
    }
    // What the form asks for, or why it cannot be done: said on the queue the analyst came
    // from, with the selection's filters kept, rather than on an error page.
    let spec = match action_of(action, &value)
        .and_then(|spec| state.automation.check_manual_action(&spec).map(|()| spec))
    {
        Ok(spec) => spec,
        Err(refusal) => return Ok(redirect_with(&back, &format!("Not done: {refusal}"))),
    };
    let mut records = Vec::new();
    for text in &selected {
        records.push(api::find(&state, text).await?.record);
    }
    let queued = state
        .automation
        .queue_manual_actions(&records, std::slice::from_ref(&spec), &who.principal.name)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(redirect_with(
        &back,
        &format!(
            "{}: {queued} queued; the history shows each as it is done",
            spec.describe()
        ),
    ))
}

/// `POST /ui/enrich/{indicator}`.
pub async fn enrich(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    Path(indicator): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    who.check_csrf(field(&form_pairs(&body), "csrf"))?;
    let stored = api::find(&state, &indicator).await?;
    let value = stored.record.value;
    let result = api::ingest(
        &state,
        &who,
        InputSource::upload("enrich", value.clone().into_bytes()),
        InputFormat::Lines,
        None,
        true,
        |r| r.position.to_string(),
    )
    .await?;
    let path: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    Ok(redirect_with(
        &format!("/indicator/{path}"),
        &format!(
            "{} queued to be asked again; reload in a moment",
            result.queued
        ),
    ))
}

/// `GET /indicator/{indicator}`.
pub async fn indicator(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    Path(indicator): Path<String>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let stored = api::find(&state, &indicator).await?;
    let stix_id = stored.record.stix_id.clone();
    let detail = api::detail(&state, stored).await?;
    let events = api::history_page(
        &state,
        &HistoryParams {
            indicator: Some(stix_id),
            limit: Some(50),
            ..HistoryParams::default()
        },
    )
    .await?;
    let sources = detail.indicator["sources"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // Criminal IP's report, else its offline database's: shown as Criminal IP's card.
    let (cip_source, cip) = scry_core::exposure::Exposure::preferred(|name| {
        sources.get(name).and_then(|s| s.get("data"))
    })
    .unzip();
    let other: serde_json::Map<String, Value> = sources
        .into_iter()
        .filter(|(name, _)| Some(name.as_str()) != cip_source)
        .collect();
    // The priority history as polyline points across a 300 × 60 box.
    let points = &detail.history;
    let spark: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let x = if points.len() > 1 {
                n * 300 / (points.len() - 1)
            } else {
                0
            };
            format!("{x},{}", 58 - u32::from(p.priority) * 56 / 100)
        })
        .collect();
    Ok(Page {
        caller: &who,
        name: "indicator",
        headers: &headers,
    }
    .render(
        StatusCode::OK,
        context! {
            i => detail.indicator, workflow => detail.workflow, report_url => detail.report_url,
            blocklists => detail.blocklists,
            neighbours => detail.neighbours, history => detail.history, events => events.items,
            cip => cip, other_sources => other, spark => spark.join(" "),
        },
    ))
}

/// `GET /dashboard`.
pub async fn dashboard(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let d = scry_engine::dashboard::dashboard(state.store.as_ref(), &state.loaded).await?;
    let severity_max = d.by_severity.iter().map(|c| c.count).max().unwrap_or(0);
    let daily_max = d.days.iter().map(|c| c.new_indicators).max().unwrap_or(0);
    let mut call_sources: Vec<&str> = d
        .days
        .iter()
        .flat_map(|day| day.calls.iter().map(|c| c.name.as_str()))
        .collect();
    call_sources.sort_unstable();
    call_sources.dedup();
    let call_sources: Vec<String> = call_sources.into_iter().map(str::to_owned).collect();
    Ok(Page {
        caller: &who,
        name: "dashboard",
        headers: &headers,
    }
    .render(
        StatusCode::OK,
        context! { d => d, severity_max => severity_max, daily_max => daily_max, call_sources => call_sources },
    ))
}

/// `GET /rules`, with `?indicator=` for a dry run.
pub async fn rules(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    request: Request,
) -> Result<Response, UiError> {
    let indicator = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "indicator")
            .map(|(_, v)| v.trim().to_owned())
    });
    let rules = api::rule_rows(&state).await?;
    let (mut verdicts, mut error) = (None, None);
    if let Some(text) = indicator.as_deref().filter(|t| !t.is_empty()) {
        match api::find(&state, text).await {
            Ok(stored) => verdicts = Some(api::rule_verdicts(&state, &stored).await?),
            Err(e) => error = Some(e.detail().message),
        }
    }
    Ok(Page {
        caller: &who,
        name: "rules",
        headers: request.headers(),
    }
    .render(
        StatusCode::OK,
        context! { rules => rules, verdicts => verdicts, error => error, indicator => indicator },
    ))
}

#[derive(Serialize)]
struct Check {
    source: String,
    ok: bool,
    message: String,
}

async fn sources_page(
    state: &AppState,
    who: &Caller,
    headers: &HeaderMap,
    checks: Vec<Check>,
) -> Result<Response, UiError> {
    let sources = api::source_rows(state).await?;
    let depth = state
        .store
        .queue_depth(scry_engine::automation::now_ms())
        .await?;
    Ok(Page {
        caller: who,
        name: "sources",
        headers,
    }
    .render(
        StatusCode::OK,
        context! {
            sources => sources, checks => checks,
            queue => json!({"ready": depth.ready, "waiting": depth.waiting, "done": depth.done, "failed": depth.failed}),
        },
    ))
}

/// `GET /sources`.
pub async fn sources(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    sources_page(&state, &who, &headers, Vec::new()).await
}

/// `POST /ui/sources/test`: each source's connection check (key accepted, service reachable).
pub async fn test_sources(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    who.check_csrf(field(&form_pairs(&body), "csrf"))?;
    let mut checks = Vec::new();
    for source in state.engine.sources() {
        let (ok, message) =
            match tokio::time::timeout(Duration::from_secs(20), source.check()).await {
                Ok(Ok(message)) => (true, message),
                Ok(Err(error)) => (false, error.to_string()),
                Err(_) => (false, "no answer within 20 s".to_owned()),
            };
        checks.push(Check {
            source: source.name().to_owned(),
            ok,
            message,
        });
    }
    sources_page(&state, &who, &headers, checks).await
}

/// `GET /blocklists`.
pub async fn blocklists(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let now = scry_engine::automation::now_ms();
    let mut lists = Vec::new();
    for (name, config) in &state.loaded.config.automation.blocklists {
        let stored = state.store.blocklist(name, now).await?;
        let entries: Vec<Value> = stored
            .iter()
            .map(|e| {
                json!({"value": e.value, "added_at": e.added_at, "expires_at": e.expires_at,
                    "reason": e.reason, "origin": e.origin})
            })
            .collect();
        let rendered = scry_engine::blocklist::render(config, stored);
        lists.push(
            json!({"name": name, "days": config.days, "entries": entries,
            "entry_type": config.entry_type.as_str(),
            "vendor": scry_engine::blocklist::vendor_name(config.vendor),
            "served": rendered.served, "other_types": rendered.other_types,
            "warning": rendered.cap_warning(name, config)}),
        );
    }
    Ok(Page {
        caller: &who,
        name: "blocklists",
        headers: &headers,
    }
    .render(StatusCode::OK, context! { lists => lists }))
}

/// `GET /history`.
pub async fn history(
    State(state): State<AppState>,
    Extension(who): Extension<Caller>,
    request: Request,
) -> Result<Response, UiError> {
    let (pairs, params): (_, HistoryParams) = filled_in(&request)?;
    let page = api::history_page(&state, &params).await?;
    let next = page.next.map(|before| {
        let mut link: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "before")
            .cloned()
            .collect();
        link.push(("before".into(), before.to_string()));
        format!("/history?{}", query_string(&link))
    });
    let shown: BTreeMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(Page {
        caller: &who,
        name: "history",
        headers: request.headers(),
    }
    .render(
        StatusCode::OK,
        context! { page => page, next => next, params => shown },
    ))
}

/// How often the live feed looks for new high-priority indicators.
const LIVE_POLL: Duration = Duration::from_secs(2);

/// `GET /ui/events`: server-sent events, one `high-priority` event per indicator that reaches
/// `[server] high_priority` while the page is open. The store is polled, so indicators stored by
/// workers in other processes are seen too.
///
/// The stream ends as soon as the session or token that opened it no longer lets anyone in
/// (logged out, revoked, expired): it is checked again before every poll.
pub async fn events(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let since = scry_engine::automation::now_ms();
    let stream = futures_util::stream::unfold(
        (state, since, Vec::<Event>::new()),
        move |(state, mut since, mut pending)| {
            let headers = headers.clone();
            async move {
                loop {
                    if let Some(event) = pending.pop() {
                        return Some((
                            Ok::<Event, std::convert::Infallible>(event),
                            (state, since, pending),
                        ));
                    }
                    tokio::time::sleep(LIVE_POLL).await;
                    if !matches!(caller(&state, &headers).await, Ok(Some(_))) {
                        return None;
                    }
                    let query = IndicatorQuery {
                        min_priority: state.loaded.config.server.high_priority,
                        changed_since: Some(since),
                        order: IndicatorOrder::LastChanged,
                        descending: false,
                        limit: 50,
                        ..IndicatorQuery::default()
                    };
                    match state.store.search_indicators(&query).await {
                        Ok(page) => {
                            for row in page.rows.iter().rev() {
                                let r = &row.stored.record;
                                since = since.max(row.stored.last_changed + 1);
                                let data = json!({"indicator": r.value, "type": r.kind, "priority": r.priority,
                            "severity": r.severity, "stix_id": r.stix_id});
                                pending.push(
                                    Event::default()
                                        .event("high-priority")
                                        .data(data.to_string()),
                                );
                            }
                        }
                        Err(error) => {
                            tracing::warn!("live updates: the store did not answer: {error}")
                        }
                    }
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
