//! `scry sandbox`: a local server that speaks the Criminal IP API — its endpoints, envelopes and
//! error conventions — with deterministic synthetic data, so that tests, benchmarks, demos and
//! playbook rehearsals never need the real service or spend credits.
//!
//! Every request goes through the same steps, in the order a real service applies them: the API
//! key, the rate limit (counted when the request arrives, as a gateway counts, and refused at
//! once), latency, refusal of concurrent calls, injected faults, the credit allowance, then the
//! endpoint. Each request is recorded in the [`RequestLog`] (arrival time,
//! method, path, query, key fingerprint, outcome, requests in flight) that tests and benchmarks
//! read to check a client's behaviour from the server's side; the key itself is never recorded.
//!
//! Where the real service's behaviour is unknown, the sandbox documents its choice: a rate-limited
//! request is answered HTTP 429 with `Retry-After: 1`; a refused concurrent call is status 400
//! (or 403, `concurrent_status`, as it has also been seen) with the service's message "unable to
//! call api at the same time"; errors carry their status
//! both in HTTP and in the body unless `errors_in_body` asks for HTTP 200 with the status only in
//! the body (clients must handle both).

mod data;

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The only key accepted; `None` accepts any non-empty key.
    pub api_key: Option<String>,
    /// Varies the synthetic data; the same seed gives the same reports.
    pub seed: u64,
    pub latency_median: Duration,
    pub latency_p99: Duration,
    /// At most this many requests per key arriving in any sliding window; the rest are refused
    /// at once, without latency.
    pub rate_limit: Option<(u32, Duration)>,
    /// Credits the account has; data calls cost one each.
    pub credits: Option<u64>,
    /// Refuse a call while another call with the same key is in flight.
    pub refuse_concurrent: bool,
    /// The status of that refusal: 400 by default; 403 as it has also been seen, which a client
    /// that reads statuses before messages mistakes for spent credits.
    pub concurrent_status: u16,
    /// Fractions of requests answered with a fault.
    pub faults: Faults,
    /// Errors as HTTP 200 with the status only in the body.
    pub errors_in_body: bool,
    /// How long a domain scan takes.
    pub scan_duration: Duration,
    /// How long a request that "times out" is held before it is answered.
    pub timeout_hold: Duration,
    /// Append every request to this file as JSON Lines.
    pub log_path: Option<PathBuf>,
}

/// Fault injection rates, each in 0–1.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub rate_limited: f64,
    pub server_error: f64,
    pub timeout: f64,
    pub malformed: f64,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            api_key: None,
            seed: 0,
            latency_median: Duration::ZERO,
            latency_p99: Duration::ZERO,
            rate_limit: None,
            credits: None,
            refuse_concurrent: false,
            concurrent_status: 400,
            faults: Faults::default(),
            errors_in_body: false,
            scan_duration: Duration::from_secs(2),
            timeout_hold: Duration::from_secs(60),
            log_path: None,
        }
    }
}

/// One request as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Milliseconds since the sandbox started, at arrival.
    pub at_ms: f64,
    /// Milliseconds since the Unix epoch, at arrival.
    pub unix_ms: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    /// 12 hex digits of the SHA-256 of the key sent (empty when none was sent).
    pub key_fingerprint: String,
    /// The status in the body (and, unless `errors_in_body`, the HTTP status).
    pub status: u16,
    /// `ok`, `invalid-key`, `rate-limited`, `concurrent-refused`, `limit-exceeded`,
    /// `fault-rate-limited`, `fault-server-error`, `fault-timeout`, `fault-malformed`,
    /// `still-scanning`, `invalid-input` or `not-found`.
    pub outcome: String,
    /// Requests with this key in flight when this one arrived, itself included.
    pub in_flight: u32,
    /// Credits this request spent.
    pub credits: u32,
}

/// Everything the sandbox answered, in arrival order.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<Vec<LogEntry>>,
    file: Option<Mutex<std::fs::File>>,
}

impl RequestLog {
    pub fn entries(&self) -> Vec<LogEntry> {
        let mut entries = self.entries.lock().expect("log lock").clone();
        entries.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        entries
    }

    fn push(&self, entry: LogEntry) {
        if let Some(file) = &self.file {
            let mut line = serde_json::to_vec(&entry).expect("log entries serialize");
            line.push(b'\n');
            let mut file = file.lock().expect("log file lock");
            if let Err(e) = file.write_all(&line) {
                tracing::error!(error = %e, "cannot write the sandbox request log");
            }
        }
        self.entries.lock().expect("log lock").push(entry);
    }
}

/// True when the sandbox (with `seed`) lists a recent earlier scan for `query`, so a client can
/// reuse it instead of scanning.
pub fn has_earlier_scan(seed: u64, query: &str) -> bool {
    data::earlier_scan(seed, query, 0).is_some()
}

/// The fingerprint the sandbox logs for a key: 12 hex digits of its SHA-256 (the same as scry's).
pub fn key_fingerprint(key: &str) -> String {
    Sha256::digest(key.trim().as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Scan {
    query: String,
    key: String,
    started: Instant,
    lite: bool,
}

struct Shared {
    config: SandboxConfig,
    log: Arc<RequestLog>,
    started: Instant,
    requests: AtomicU64,
    in_flight: Mutex<HashMap<String, u32>>,
    /// Arrival times per key inside the rate window.
    arrived: Mutex<HashMap<String, VecDeque<Instant>>>,
    credits_left: Mutex<Option<u64>>,
    scans: Mutex<HashMap<u64, Scan>>,
    next_scan: AtomicU64,
}

/// A running sandbox.
pub struct Sandbox {
    addr: SocketAddr,
    log: Arc<RequestLog>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the request log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Sandbox {
    /// Starts serving on `listen` (port 0 picks a free port).
    pub async fn start(config: SandboxConfig, listen: SocketAddr) -> Result<Sandbox, SandboxError> {
        let file = match &config.log_path {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| SandboxError::Log {
                        path: path.clone(),
                        source,
                    })?,
            )),
            None => None,
        };
        let log = Arc::new(RequestLog {
            entries: Mutex::new(Vec::new()),
            file,
        });
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SandboxError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Listen {
                addr: listen,
                source,
            })?;
        let shared = Arc::new(Shared {
            credits_left: Mutex::new(config.credits),
            next_scan: AtomicU64::new(20_000_000 + config.seed % 1_000_000),
            config,
            log: Arc::clone(&log),
            started: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            arrived: Mutex::new(HashMap::new()),
            scans: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Sandbox {
            addr,
            log,
            shutdown: Some(tx),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to point a client at.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Serves until the process is stopped.
    pub async fn run_forever(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// What a request turned into.
struct Answer {
    status: u16,
    body: Value,
    outcome: &'static str,
    credits: u32,
    retry_after: bool,
    raw: Option<String>,
}

impl Answer {
    fn ok(body: Value, credits: u32) -> Answer {
        Answer {
            status: 200,
            body,
            outcome: "ok",
            credits,
            retry_after: false,
            raw: None,
        }
    }

    fn error(status: u16, message: &str, outcome: &'static str) -> Answer {
        Answer {
            status,
            body: json!({"status": status, "message": message}),
            outcome,
            credits: 0,
            retry_after: false,
            raw: None,
        }
    }
}

/// Releases the in-flight count of a key when a request ends, however it ends.
struct InFlight<'a> {
    shared: &'a Shared,
    key: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.shared.in_flight.lock().expect("in-flight lock");
        if let Some(n) = in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrival = Instant::now();
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let number = shared.requests.fetch_add(1, Ordering::SeqCst);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_owned();
    let in_flight = {
        let mut map = shared.in_flight.lock().expect("in-flight lock");
        let n = map.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let guard = InFlight {
        shared: &shared,
        key: key.clone(),
    };
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let answer = answer(
        &shared,
        number,
        arrival,
        &method,
        uri.path(),
        &key,
        in_flight,
        &query,
        &form,
    )
    .await;
    drop(guard);
    shared.log.push(LogEntry {
        at_ms: arrival.duration_since(shared.started).as_secs_f64() * 1000.0,
        unix_ms,
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        key_fingerprint: if key.is_empty() {
            String::new()
        } else {
            key_fingerprint(&key)
        },
        status: answer.status,
        outcome: answer.outcome.to_owned(),
        in_flight,
        credits: answer.credits,
    });
    let http_status =
        if answer.status == 200 || (shared.config.errors_in_body && answer.status != 429) {
            200
        } else {
            answer.status
        };
    let mut response = match answer.raw {
        Some(raw) => (
            StatusCode::from_u16(http_status).unwrap_or(StatusCode::OK),
            [("content-type", "application/json")],
            raw,
        )
            .into_response(),
        None => (
            StatusCode::from_u16(http_status).unwrap_or(StatusCode::OK),
            axum::Json(answer.body),
        )
            .into_response(),
    };
    if answer.retry_after {
        response
            .headers_mut()
            .insert("retry-after", "1".parse().expect("valid header"));
    }
    response
}

/// Samples a latency from a log-normal distribution with the configured median and 99th percentile.
fn latency(config: &SandboxConfig, number: u64) -> Duration {
    if config.latency_median.is_zero() {
        return Duration::ZERO;
    }
    let mut dice = data::Dice::from_state(config.seed ^ number.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let median = config.latency_median.as_secs_f64();
    let p99 = config.latency_p99.as_secs_f64().max(median);
    let sigma = (p99 / median).ln() / 2.326_347_874;
    let (u1, u2) = (dice.unit().max(1e-12), dice.unit());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    Duration::from_secs_f64((median.ln() + sigma * z).exp().min(p99 * 3.0))
}

/// Credits an endpoint costs when it answers with data: status polls and the account call are free.
fn cost(path: &str) -> u32 {
    let free = path.starts_with("/v1/domain/status/")
        || path == "/v1/domain/lite/progress"
        || path == "/v1/user/me";
    u32::from(!free)
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    shared: &Shared,
    number: u64,
    arrival: Instant,
    method: &Method,
    path: &str,
    key: &str,
    in_flight: u32,
    query: &HashMap<String, String>,
    form: &HashMap<String, String>,
) -> Answer {
    let config = &shared.config;
    let key_ok = !key.is_empty() && config.api_key.as_deref().is_none_or(|k| k == key);
    if !key_ok {
        return Answer::error(401, "invalid api key", "invalid-key");
    }
    if let Some((max, window)) = config.rate_limit {
        let mut arrived = shared.arrived.lock().expect("rate lock");
        let times = arrived.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| arrival.duration_since(*t) >= window)
        {
            times.pop_front();
        }
        if times.len() >= max as usize {
            let mut answer = Answer::error(429, "too many requests", "rate-limited");
            answer.retry_after = true;
            return answer;
        }
        times.push_back(arrival);
    }
    tokio::time::sleep(latency(config, number)).await;
    if config.refuse_concurrent && in_flight > 1 {
        return Answer::error(
            config.concurrent_status,
            "unable to call api at the same time",
            "concurrent-refused",
        );
    }
    let faults = config.faults;
    let roll =
        data::Dice::from_state(config.seed.wrapping_add(number.wrapping_mul(0x9e37_79b9))).unit();
    if roll < faults.rate_limited {
        let mut answer = Answer::error(429, "too many requests", "fault-rate-limited");
        answer.retry_after = true;
        return answer;
    }
    if roll < faults.rate_limited + faults.server_error {
        return Answer::error(500, "An unexpected error occurred", "fault-server-error");
    }
    if roll < faults.rate_limited + faults.server_error + faults.timeout {
        tokio::time::sleep(config.timeout_hold).await;
        return Answer::error(504, "gateway timeout", "fault-timeout");
    }
    if roll < faults.rate_limited + faults.server_error + faults.timeout + faults.malformed {
        let mut answer = Answer::ok(Value::Null, 0);
        answer.outcome = "fault-malformed";
        answer.raw = Some(r#"{"status": 200, "message": "api success", "ip": "#.to_owned());
        return answer;
    }
    let credits = cost(path);
    if credits > 0 {
        let left = shared.credits_left.lock().expect("credits lock");
        if *left == Some(0) {
            return Answer::error(403, "limit exceeded", "limit-exceeded");
        }
    }
    let mut answer = route(shared, method, path, key, query, form);
    if answer.status == 200 && credits > 0 {
        let mut left = shared.credits_left.lock().expect("credits lock");
        if let Some(n) = left.as_mut() {
            *n = n.saturating_sub(u64::from(credits));
        }
        answer.credits = credits;
    } else {
        answer.credits = 0;
    }
    answer
}

fn data_envelope(data: Value) -> Value {
    json!({"status": 200, "message": "api success", "data": data})
}

fn flat_envelope(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.insert("status".into(), Value::from(200));
        map.insert("message".into(), Value::from("api success"));
    }
    body
}

fn today_days() -> i64 {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        / 86_400) as i64
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    key: &str,
    query: &HashMap<String, String>,
    form: &HashMap<String, String>,
) -> Answer {
    let seed = shared.config.seed;
    let param = |name: &str| {
        query
            .get(name)
            .or_else(|| form.get(name))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let ip_param = || -> Result<String, Answer> {
        let ip = param("ip")
            .ok_or_else(|| Answer::error(400, "No required input values", "invalid-input"))?;
        ip.parse::<std::net::IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| Answer::error(400, "Invalid IP Address.", "invalid-input"))
    };
    let get = method == Method::GET;
    let post = method == Method::POST;
    let result = match path {
        "/v1/asset/ip/report" if get => ip_param().map(|ip| {
            Answer::ok(
                flat_envelope(data::ip_report(
                    seed,
                    &ip,
                    param("full").as_deref() == Some("true"),
                )),
                0,
            )
        }),
        "/v1/ip/data" if get => {
            ip_param().map(|ip| Answer::ok(flat_envelope(data::legacy_ip_data(seed, &ip)), 0))
        }
        "/v1/feature/ip/malicious-info" | "/v2/feature/ip/malicious-info" if get => {
            ip_param().map(|ip| Answer::ok(flat_envelope(data::malicious_info(seed, &ip)), 0))
        }
        "/v1/feature/ip/suspicious-info" | "/v2/feature/ip/suspicious-info" if get => {
            ip_param().map(|ip| Answer::ok(flat_envelope(data::suspicious_info(seed, &ip)), 0))
        }
        "/v1/feature/ip/privacy-threat" if get => ip_param().map(|ip| {
            Answer::ok(
                flat_envelope(json!({"ip": ip, "webcam": {"count": 0, "data": []}})),
                0,
            )
        }),
        "/v1/user/me" if post => Ok(Answer::ok(
            data_envelope(json!({
                "account_type": "Sandbox",
                "api_key": key,
                "email": "analyst@sandbox.invalid",
                "name": "scry sandbox",
                "max_search": shared.credits_left.lock().expect("credits lock").map_or(Value::from("unlimited"), Value::from),
                "membership_date": "2026-01-01",
                "last_access_date": "2026-11-01 00:00:00",
            })),
            0,
        )),
        "/v1/domain/reports" if get => match param("query") {
            None => Err(Answer::error(400, "Invalid URL", "invalid-input")),
            Some(q) => {
                let reports: Vec<Value> = data::earlier_scan(seed, &q, today_days())
                    .map(|(id, when)| {
                        shared
                            .scans
                            .lock()
                            .expect("scans lock")
                            .entry(id)
                            .or_insert(Scan {
                                query: q.clone(),
                                key: String::new(),
                                started: Instant::now() - Duration::from_secs(3600),
                                lite: false,
                            });
                        vec![json!({"scan_id": id, "reg_dtime": when, "countries": []})]
                    })
                    .unwrap_or_default();
                Ok(Answer::ok(
                    data_envelope(json!({"count": reports.len(), "reports": reports})),
                    0,
                ))
            }
        },
        "/v1/domain/scan" | "/v1/domain/scan/private" if post => {
            start_scan(shared, key, param("query"), false)
        }
        "/v1/domain/lite/scan" if get || post => start_scan(shared, key, param("query"), true),
        "/v1/domain/lite/progress" if get => {
            progress(shared, param("scan_id").and_then(|s| s.parse().ok()))
        }
        "/v1/domain/quick/hash/view"
        | "/v1/domain/quick/malicious/view"
        | "/v1/domain/quick/trusted/view"
            if get =>
        {
            match param("domain") {
                Some(d) => Ok(Answer::ok(data_envelope(data::quick_check(seed, &d)), 0)),
                None => Err(Answer::error(400, "Invalid URL", "invalid-input")),
            }
        }
        p if get && p.starts_with("/v1/domain/status/") => {
            progress(shared, p.rsplit('/').next().and_then(|s| s.parse().ok()))
        }
        p if get
            && (p.starts_with("/v2/domain/report/")
                || p.starts_with("/v1/domain/report/")
                || p.starts_with("/v1/domain/lite/report/")) =>
        {
            let id: Option<u64> = p.rsplit('/').next().and_then(|s| s.parse().ok());
            let scans = shared.scans.lock().expect("scans lock");
            match id.and_then(|id| scans.get(&id).map(|s| (id, s))) {
                Some((id, scan)) if scan_done(&shared.config, scan) => {
                    if p.starts_with("/v1/domain/lite/") {
                        Ok(Answer::ok(
                            data_envelope(data::lite_report(seed, &scan.query)),
                            0,
                        ))
                    } else {
                        Ok(Answer::ok(
                            data_envelope(data::domain_report(seed, &scan.query, id)),
                            0,
                        ))
                    }
                }
                Some(_) => Err(Answer::error(
                    400,
                    "The scan is not finished yet",
                    "invalid-input",
                )),
                None => Err(Answer::error(404, "Report not found", "not-found")),
            }
        }
        _ => Err(Answer::error(404, "Not Found", "not-found")),
    };
    result.unwrap_or_else(|error| error)
}

/// A scan is done when its time is up, or at once when it ends in "does not exist" or "failed".
fn scan_done(config: &SandboxConfig, scan: &Scan) -> bool {
    if data::nonexistent(&scan.query) || data::scan_fails(&scan.query) {
        return true;
    }
    let duration = if scan.lite {
        config.scan_duration / 3
    } else {
        config.scan_duration
    };
    scan.started.elapsed() >= duration
}

fn start_scan(
    shared: &Shared,
    key: &str,
    query: Option<String>,
    lite: bool,
) -> Result<Answer, Answer> {
    let query = query.ok_or_else(|| Answer::error(400, "Invalid URL", "invalid-input"))?;
    let mut scans = shared.scans.lock().expect("scans lock");
    let running = scans
        .values()
        .any(|s| s.key == key && !scan_done(&shared.config, s));
    if running {
        return Err(Answer::error(
            400,
            "We are still scanning for your previous request. Please wait.",
            "still-scanning",
        ));
    }
    let id = shared.next_scan.fetch_add(1, Ordering::SeqCst);
    let echo = if query.contains("://") {
        query.clone()
    } else {
        format!("http://{query}")
    };
    scans.insert(
        id,
        Scan {
            query,
            key: key.to_owned(),
            started: Instant::now(),
            lite,
        },
    );
    Ok(Answer::ok(
        data_envelope(json!({"query": echo, "scan_id": id})),
        0,
    ))
}

fn progress(shared: &Shared, id: Option<u64>) -> Result<Answer, Answer> {
    let scans = shared.scans.lock().expect("scans lock");
    let scan = id
        .and_then(|id| scans.get(&id))
        .ok_or_else(|| Answer::error(404, "Report not found", "not-found"))?;
    let percentage: i64 = if data::nonexistent(&scan.query) {
        -2
    } else if data::scan_fails(&scan.query) {
        -1
    } else {
        let duration = if scan.lite {
            shared.config.scan_duration / 3
        } else {
            shared.config.scan_duration
        };
        if duration.is_zero() {
            100
        } else {
            ((scan.started.elapsed().as_secs_f64() / duration.as_secs_f64()) * 100.0).min(100.0)
                as i64
        }
    };
    Ok(Answer::ok(
        data_envelope(json!({"scan_percentage": percentage})),
        0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_deterministic_per_seed() {
        assert_eq!(
            data::ip_report(1, "45.155.205.233", true),
            data::ip_report(1, "45.155.205.233", true)
        );
        assert_ne!(
            data::ip_report(1, "45.155.205.233", true),
            data::ip_report(2, "45.155.205.233", true)
        );
        let (domain, url) = (
            data::domain_report(0, "evil.example.net", 5),
            data::domain_report(0, "http://evil.example.net/x", 5),
        );
        assert_eq!(
            (&domain["summary"], &domain["mapped_ip"]),
            (&url["summary"], &url["mapped_ip"]),
            "a URL is judged by its host"
        );
        assert_eq!(
            url["main_domain_info"]["inserted_url"], "http://evil.example.net/x",
            "the query is echoed"
        );
    }

    /// Sends one GET on loopback with `key`; the answer is read by [`finish`].
    async fn send(addr: SocketAddr, key: &str, ip: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET /v1/asset/ip/report?ip={ip} HTTP/1.1\r\nHost: sandbox\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        stream
    }

    async fn finish(mut stream: tokio::net::TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer");
    }

    #[tokio::test]
    async fn the_rate_limit_counts_arrivals_not_answers() {
        // One request per key in any 300 ms, two requests per key 600 ms apart, and latencies
        // spread wide enough that the second is often answered less than 300 ms after the
        // first: counting answers would refuse some of them, counting arrivals refuses none.
        let config = SandboxConfig {
            latency_median: Duration::from_millis(400),
            latency_p99: Duration::from_millis(1200),
            rate_limit: Some((1, Duration::from_millis(300))),
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().expect("address"))
            .await
            .expect("sandbox");
        let addr = sandbox.addr();
        let pairs: Vec<_> = (0..32)
            .map(|n| {
                tokio::spawn(async move {
                    let key = format!("key-{n}");
                    let first = send(addr, &key, "45.1.2.3").await;
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    let second = send(addr, &key, "45.1.2.4").await;
                    finish(first).await;
                    finish(second).await;
                })
            })
            .collect();
        // A second request inside the window of the first is refused.
        let first = send(addr, "burst", "45.1.2.5").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = send(addr, "burst", "45.1.2.6").await;
        finish(first).await;
        finish(second).await;
        for pair in pairs {
            pair.await.expect("pair");
        }
        let log = sandbox.log().entries();
        assert_eq!(log.len(), 66);
        let refused: Vec<_> = log.iter().filter(|e| e.outcome == "rate-limited").collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].query.ends_with("45.1.2.6"), "{refused:?}");
        assert_eq!(refused[0].status, 429);
    }

    #[test]
    fn latency_follows_the_configured_median_and_tail() {
        let config = SandboxConfig {
            latency_median: Duration::from_millis(150),
            latency_p99: Duration::from_millis(1000),
            ..SandboxConfig::default()
        };
        let mut samples: Vec<f64> = (0..20_000)
            .map(|n| latency(&config, n).as_secs_f64() * 1000.0)
            .collect();
        samples.sort_by(f64::total_cmp);
        let (median, p99) = (samples[10_000], samples[19_800]);
        assert!((135.0..165.0).contains(&median), "median {median} ms");
        assert!((850.0..1150.0).contains(&p99), "p99 {p99} ms");
    }

    #[test]
    fn the_legacy_report_has_integer_scores_and_tags() {
        let legacy = data::legacy_ip_data(0, "1.2.3.4");
        assert!(legacy["score"]["inbound"].is_u64() && legacy["score"]["outbound"].is_u64());
        assert!(legacy.get("issues").is_none());
        assert!(
            legacy["tags"].get("is_vpn").is_some()
                && legacy["tags"].get("is_anonymous_vpn").is_none()
        );
    }

    #[test]
    fn a_population_shows_every_level() {
        let mut levels = std::collections::BTreeSet::new();
        for i in 0..300 {
            let report = data::ip_report(0, &format!("45.1.{}.{}", i / 250, i % 250), true);
            levels.insert(
                report["score"]["outbound"]
                    .as_str()
                    .expect("level")
                    .to_owned(),
            );
        }
        assert_eq!(levels.len(), 5, "{levels:?}");
    }
}
