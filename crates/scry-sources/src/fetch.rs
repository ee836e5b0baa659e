//! Conditional HTTP downloads for data pulled on a schedule — threat feeds and the network data's
//! upstream files: each request carries the validators of the copy already held
//! (`If-None-Match`, `If-Modified-Since`) so an unchanged file costs one small `304`, server
//! errors and lost connections are retried, and URLs are shown without their query or password,
//! which may hold a key.

use std::time::Duration;

/// Attempts per download when the server errs or the connection fails.
const ATTEMPTS: u32 = 3;

/// What identifies the copy already held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What a download gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// The client for scheduled downloads.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("scry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// `url` without its query and password.
pub fn shown(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Downloads `url` unless it is unchanged since `held`, with extra request `headers`; a body
/// larger than `max_body` bytes is an error.
pub async fn fetch_if_changed(
    http: &reqwest::Client,
    url: &url::Url,
    held: &Validators,
    headers: &[(String, String)],
    max_body: usize,
) -> Result<Fetched, String> {
    let shown = shown(url);
    let too_large = || format!("{shown}: larger than {} MiB", max_body >> 20);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 2))).await;
        }
        let mut request = http.get(url.clone());
        if let Some(etag) = &held.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &held.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
        }
        for (name, value) in headers {
            request = request.header(name.as_str(), value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                last = format!("{shown}: {}", e.without_url());
                continue;
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            last = format!("{shown}: HTTP {status}");
            continue;
        }
        if !status.is_success() {
            return Err(format!("{shown}: HTTP {status}"));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        if response
            .content_length()
            .is_some_and(|l| l > max_body as u64)
        {
            return Err(too_large());
        }
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => {
                last = format!("{shown}: {}", e.without_url());
                continue;
            }
        };
        if bytes.len() > max_body {
            return Err(too_large());
        }
        return Ok(Fetched::Body {
            bytes: bytes.to_vec(),
            validators,
        });
    }
    Err(format!("{last} (after {ATTEMPTS} attempts)"))
}
