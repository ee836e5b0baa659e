//! HTTP calls to the Criminal IP API: the envelope, the error conventions, and retries.
//!
//! A call succeeds only when the HTTP status is 2xx *and* the body's own `status` is 200; the
//! service reports some errors one way and some the other. Every attempt waits for the shared
//! [`Limiter`] and reserves its credits from the [`Budget`] first; credits are given back when the
//! service did not answer with data. Retries use exponential backoff with jitter and honour
//! `Retry-After`.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clock::Clock;
use crate::guard::{AttemptOutcome, Budget, CallMetrics, Limiter};
use crate::secret::Secret;

/// Why a Criminal IP call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CipError {
    #[error(
        "the API key was rejected ({0}); check [sources.criminalip] api_key or CRIMINALIP_API_KEY"
    )]
    InvalidKey(String),
    #[error("the account's credits are used up ({0}); calls resume in the next period")]
    LimitExceeded(String),
    #[error("the local credit budget is spent")]
    BudgetSpent,
    #[error(
        "the service refused a concurrent call ({0}); non-Enterprise keys allow one call at a time"
    )]
    Concurrent(String),
    #[error("the account already has a domain scan running ({0})")]
    StillScanning(String),
    #[error("rate limited by the service ({0})")]
    RateLimited(String),
    #[error("invalid indicator: {0}")]
    InvalidIndicator(String),
    #[error("server error {status}: {message}")]
    Server { status: u16, message: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the service: {0}")]
    Unreachable(String),
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("the domain scan failed on the service's side")]
    ScanFailed,
    #[error("the domain scan did not finish within {0:?}")]
    ScanTimeout(Duration),
}

impl CipError {
    /// True for failures that may go away if the same call is made again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CipError::Concurrent(_)
                | CipError::RateLimited(_)
                | CipError::Server { .. }
                | CipError::Timeout(_)
                | CipError::Unreachable(_)
                | CipError::Malformed(_)
        )
    }
}

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub post: bool,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub form: Vec<(&'static str, String)>,
    /// Credits the call costs when it returns data.
    pub credits: u64,
}

impl Request {
    pub(crate) fn get(
        path: impl Into<String>,
        query: Vec<(&'static str, String)>,
        credits: u64,
    ) -> Request {
        Request {
            post: false,
            path: path.into(),
            query,
            form: Vec::new(),
            credits,
        }
    }

    pub(crate) fn post(
        path: impl Into<String>,
        form: Vec<(&'static str, String)>,
        credits: u64,
    ) -> Request {
        Request {
            post: true,
            path: path.into(),
            query: Vec::new(),
            form,
            credits,
        }
    }
}

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further one, with jitter.
    pub base: Duration,
    /// Longest delay between attempts.
    pub cap: Duration,
}

pub(crate) struct Client {
    http: reqwest::Client,
    base_url: String,
    key: Secret,
    timeout: Duration,
    retry: RetryPolicy,
    limiter: Arc<Limiter>,
    budget: Arc<Budget>,
    metrics: Arc<CallMetrics>,
    clock: Arc<dyn Clock>,
}

/// What every call of a client goes through: the rate limiter, the credit budget, the call
/// figures, and the clock that says which budget day it is.
pub(crate) struct Guards {
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) budget: Arc<Budget>,
    pub(crate) metrics: Arc<CallMetrics>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Client {
    pub(crate) fn new(
        base_url: &str,
        key: Secret,
        timeout: Duration,
        retry: RetryPolicy,
        guards: Guards,
    ) -> Result<Client, String> {
        let Guards {
            limiter,
            budget,
            metrics,
            clock,
        } = guards;
        let http = reqwest::Client::builder()
            .user_agent(concat!("scry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            key,
            timeout,
            retry,
            limiter,
            budget,
            metrics,
            clock,
        })
    }

    pub(crate) fn key_fingerprint(&self) -> String {
        self.key.fingerprint()
    }

    /// Makes the call, retrying what can be retried. Returns the whole JSON body.
    pub(crate) async fn call(&self, request: &Request) -> Result<Value, CipError> {
        let mut attempt = 0;
        loop {
            match self.attempt(request, attempt > 0).await {
                Ok(body) => return Ok(body),
                Err((error, retry_after))
                    if error.is_retryable() && attempt < self.retry.retries =>
                {
                    let delay = backoff(self.retry, attempt, retry_after);
                    tracing::debug!(path = %request.path, attempt, ?delay, %error, "retrying");
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    async fn attempt(
        &self,
        request: &Request,
        retry: bool,
    ) -> Result<Value, (CipError, Option<Duration>)> {
        if request.credits > 0
            && self
                .budget
                .try_spend(request.credits, self.clock.today())
                .is_err()
        {
            return Err((CipError::BudgetSpent, None));
        }
        let result = self.send(request, retry).await;
        match &result {
            Ok(_) => {
                self.metrics.ok.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .credits
                    .fetch_add(request.credits, Ordering::Relaxed);
            }
            Err((CipError::BudgetSpent, _)) => self.budget.refund(request.credits),
            Err((error, _)) => {
                self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                self.budget.refund(request.credits);
                if let CipError::LimitExceeded(message) = error {
                    self.budget.refused_by_service(self.clock.today(), message);
                }
            }
        }
        result
    }

    async fn send(
        &self,
        request: &Request,
        retry: bool,
    ) -> Result<Value, (CipError, Option<Duration>)> {
        let url = format!("{}{}", self.base_url, request.path);
        let builder = if request.post {
            self.http.post(&url).form(&request.form)
        } else {
            self.http.get(&url)
        };
        let builder = builder
            .query(&request.query)
            .header("x-api-key", self.key.expose())
            .header("accept", "application/json")
            .timeout(self.timeout);
        let _slot = self.limiter.admit().await;
        // The service may have said the credits are gone while this call waited for its turn.
        if request.credits > 0 && self.budget.refused_on(self.clock.today()) {
            return Err((CipError::BudgetSpent, None));
        }
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let response = builder.send().await;
        let outcome = match response {
            Err(e) if e.is_timeout() => Err((CipError::Timeout(self.timeout), None)),
            Err(e) => Err((CipError::Unreachable(describe(e)), None)),
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                match response.text().await {
                    Err(e) if e.is_timeout() => Err((CipError::Timeout(self.timeout), None)),
                    Err(e) => Err((CipError::Unreachable(describe(e)), None)),
                    Ok(text) => interpret(status, &text).map_err(|e| (e, retry_after)),
                }
            }
        };
        self.metrics
            .record_attempt(started.elapsed(), attempt_outcome(&outcome), retry);
        outcome
    }
}

/// How an answered (or unanswered) request counts in the operations figures.
fn attempt_outcome(outcome: &Result<Value, (CipError, Option<Duration>)>) -> AttemptOutcome {
    match outcome {
        Ok(_) => AttemptOutcome::Ok,
        Err((error, _)) => match error {
            CipError::RateLimited(_) | CipError::Concurrent(_) => AttemptOutcome::RateLimited,
            CipError::Server { .. } => AttemptOutcome::ServerError,
            CipError::Timeout(_) => AttemptOutcome::Timeout,
            CipError::Unreachable(_) => AttemptOutcome::Refused,
            CipError::LimitExceeded(_) => AttemptOutcome::LimitExceeded,
            _ => AttemptOutcome::Other,
        },
    }
}

/// A transport error without the URL (which would carry the queried indicator into logs twice).
fn describe(error: reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        causes.push(inner.to_string());
        source = inner.source();
    }
    let mut text = error.without_url().to_string();
    for cause in causes {
        text.push_str(": ");
        text.push_str(&cause);
    }
    text
}

/// Turns an HTTP status and body into the body or a typed error.
pub fn interpret(http_status: u16, text: &str) -> Result<Value, CipError> {
    let parsed: Result<Value, _> = serde_json::from_str(text);
    let body = match parsed {
        Ok(body @ Value::Object(_)) => body,
        Ok(_) | Err(_) if (200..300).contains(&http_status) => {
            let excerpt: String = text.chars().take(120).collect();
            return Err(CipError::Malformed(format!(
                "not a JSON object: {excerpt:?}"
            )));
        }
        _ => Value::Null,
    };
    let body_status = body
        .get("status")
        .and_then(Value::as_i64)
        .map_or(http_status, |s| u16::try_from(s).unwrap_or(0));
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if (200..300).contains(&http_status) && body_status == 200 {
        return Ok(body);
    }
    let lower = message.to_ascii_lowercase();
    let status = if body_status != 200 {
        body_status
    } else {
        http_status
    };
    let message_or = |fallback: &str| {
        if message.is_empty() {
            fallback.to_owned()
        } else {
            message.clone()
        }
    };
    // The message first: the service's statuses for its errors are not documented (a refused
    // concurrent call has been seen as 400 and as 403), its messages are. A status decides only
    // when the message says nothing known.
    Err(if lower.contains("invalid api key") {
        CipError::InvalidKey(message)
    } else if lower.contains("at the same time") {
        CipError::Concurrent(message)
    } else if lower.contains("still scanning") {
        CipError::StillScanning(message)
    } else if lower.contains("limit exceeded") {
        CipError::LimitExceeded(message)
    } else if status == 401 {
        CipError::InvalidKey(message_or("401"))
    } else if status == 403 {
        CipError::LimitExceeded(message_or("403"))
    } else if status == 429 || http_status == 429 {
        CipError::RateLimited(message_or("429"))
    } else if status >= 500 || http_status >= 500 {
        CipError::Server {
            status,
            message: message_or("no message"),
        }
    } else if status == 400 {
        CipError::InvalidIndicator(message_or("400"))
    } else {
        CipError::Http {
            status,
            message: message_or("no message"),
        }
    })
}

/// Exponential backoff with jitter (between half and all of the exponential delay), at least as
/// long as `Retry-After` asks.
fn backoff(policy: RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = policy
        .base
        .saturating_mul(1 << attempt.min(16))
        .min(policy.cap);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let jittered = exponential / 2 + exponential.mul_f64((random % 1000) as f64 / 2000.0);
    retry_after.map_or(jittered, |after| {
        jittered.max(after.min(policy.cap.max(after)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_decides_success() {
        assert!(
            interpret(
                200,
                r#"{"status":200,"message":"api success","ip":"1.2.3.4"}"#
            )
            .is_ok()
        );
        assert!(interpret(200, r#"{"ip":"1.2.3.4","status":200}"#).is_ok());
        assert_eq!(
            interpret(200, r#"{"status":401,"message":"invalid api key"}"#),
            Err(CipError::InvalidKey("invalid api key".into()))
        );
        assert_eq!(
            interpret(401, r#"{"status":401,"message":"invalid api key"}"#),
            Err(CipError::InvalidKey("invalid api key".into()))
        );
        assert_eq!(
            interpret(200, r#"{"status":403,"message":"limit exceeded"}"#),
            Err(CipError::LimitExceeded("limit exceeded".into()))
        );
        // A refused concurrent call is a concurrency error whatever its status: it is retried,
        // and it never stops calls for the day as spent credits do.
        for (http, body) in [
            (
                200,
                r#"{"status":400,"message":"unable to call api at the same time"}"#,
            ),
            (
                403,
                r#"{"status":403,"message":"unable to call api at the same time"}"#,
            ),
            (
                200,
                r#"{"status":403,"message":"Unable to call API at the same time."}"#,
            ),
        ] {
            assert!(
                matches!(interpret(http, body), Err(CipError::Concurrent(_))),
                "{body}"
            );
        }
        assert_eq!(
            interpret(403, r#"{"status":403}"#),
            Err(CipError::LimitExceeded("403".into())),
            "403 without a message keeps its documented meaning"
        );
        assert!(matches!(
            interpret(
                400,
                r#"{"status":400,"message":"We are still scanning for your previous request. Please wait."}"#
            ),
            Err(CipError::StillScanning(_))
        ));
        assert_eq!(
            interpret(200, r#"{"status":400,"message":"Invalid IP Address."}"#),
            Err(CipError::InvalidIndicator("Invalid IP Address.".into()))
        );
        assert!(matches!(
            interpret(500, "<html>oops</html>"),
            Err(CipError::Server { status: 500, .. })
        ));
        assert!(matches!(
            interpret(
                200,
                r#"{"status":500,"message":"An unexpected error occurred"}"#
            ),
            Err(CipError::Server { .. })
        ));
        assert!(matches!(interpret(429, ""), Err(CipError::RateLimited(_))));
        assert!(matches!(
            interpret(200, r#"{"status":200,"ip""#),
            Err(CipError::Malformed(_))
        ));
        assert!(matches!(
            interpret(404, ""),
            Err(CipError::Http { status: 404, .. })
        ));
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            retries: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        for attempt in 0..8 {
            let d = backoff(policy, attempt, None);
            let full = Duration::from_millis(100)
                .saturating_mul(1 << attempt)
                .min(policy.cap);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(backoff(policy, 0, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
    }
}
