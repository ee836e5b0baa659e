//! `scry` under hostile or careless input, end to end: what must never leave the machine does
//! not, checked from the Criminal IP sandbox's request log.

use std::path::Path;

use scry_sandbox::SandboxConfig;
use serde_json::{Value, json};

use super::{asked, run, run_args, runtime, scry, start_sandbox, text};

const RED_1_0: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
const GREEN_1_0: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";

fn indicator(n: u32, ip: &str, extra: Value) -> Value {
    let mut object = json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
        "created": "2026-12-01T00:00:00.000Z", "modified": "2026-12-01T00:00:00.000Z",
        "pattern": format!("[ipv4-addr:value = '{ip}']"), "pattern_type": "stix",
        "valid_from": "2026-12-01T00:00:00.000Z",
    });
    if let (Some(object), Value::Object(extra)) = (object.as_object_mut(), extra) {
        object.extend(extra);
    }
    object
}

fn bundle(objects: Vec<Value>) -> String {
    json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001", "objects": objects})
        .to_string()
}

/// A TLP:RED indicator given in any form STIX or JSON Lines allows, or with a marking scry
/// cannot resolve, is never sent to Criminal IP; a TLP:GREEN one in the same input is (the
/// positive control that the sandbox was reachable and the input read).
#[test]
fn tlp_red_stix_and_jsonl_input_never_reaches_criminal_ip() {
    let red_later = "marking-definition--0a7c3e52-3b0c-4d51-9f3e-6f1f3c5b0001";
    let statement = "marking-definition--0a7c3e52-3b0c-4d51-9f3e-6f1f3c5b0002";
    let inputs: Vec<(&str, String, &[&str], &[&str])> = vec![
        (
            // The marking is defined after the indicator that uses it (legal STIX).
            "defined-later.json",
            bundle(vec![
                indicator(1, "45.10.0.1", json!({"object_marking_refs": [red_later]})),
                indicator(2, "45.10.0.2", json!({"object_marking_refs": [GREEN_1_0]})),
                json!({"type": "marking-definition", "spec_version": "2.1", "id": red_later,
                       "created": "2026-01-01T00:00:00.000Z", "name": "TLP:RED",
                       "definition_type": "tlp", "definition": {"tlp": "red"}}),
            ]),
            &["45.10.0.1"],
            &["45.10.0.2"],
        ),
        (
            // TLP only as a granular marking.
            "granular.json",
            bundle(vec![
                indicator(
                    3,
                    "45.10.0.3",
                    json!({"granular_markings": [{"marking_ref": RED_1_0, "selectors": ["pattern"]}]}),
                ),
                indicator(
                    4,
                    "45.10.0.4",
                    json!({"granular_markings": [{"lang": "en", "selectors": ["name"]}]}),
                ),
            ]),
            &["45.10.0.3"],
            &["45.10.0.4"],
        ),
        (
            // A marking nobody defines; a defined marking that is not TLP restricts nothing.
            "unknown-ref.json",
            bundle(vec![
                indicator(
                    5,
                    "45.10.0.5",
                    json!({"object_marking_refs": ["marking-definition--ffffffff-ffff-4fff-8fff-ffffffffffff"]}),
                ),
                indicator(6, "45.10.0.6", json!({"object_marking_refs": [statement]})),
                json!({"type": "marking-definition", "spec_version": "2.1", "id": statement,
                       "created": "2026-01-01T00:00:00.000Z", "definition_type": "statement",
                       "definition": {"statement": "Copyright 2026 Example SOC"}}),
            ]),
            &["45.10.0.5"],
            &["45.10.0.6"],
        ),
        (
            // The standard TLP:RED id written in upper case.
            "upper-case.json",
            bundle(vec![
                indicator(
                    7,
                    "45.10.0.7",
                    json!({"object_marking_refs": [RED_1_0.to_ascii_uppercase()]}),
                ),
                indicator(
                    8,
                    "45.10.0.8",
                    json!({"object_marking_refs": [GREEN_1_0.to_ascii_uppercase()]}),
                ),
            ]),
            &["45.10.0.7"],
            &["45.10.0.8"],
        ),
        (
            // JSON Lines naming the TLP field otherwise.
            "aliases.jsonl",
            [
                json!({"indicator": "45.10.0.9", "tlp_level": "red"}),
                json!({"indicator": "45.10.0.10", "marking": "TLP:RED"}),
                json!({"indicator": "45.10.0.11", "tlp": "green", "TLP Level": "amber+strict"}),
                json!({"indicator": "45.10.0.12", "tlp_level": "green"}),
            ]
            .iter()
            .map(|line| format!("{line}\n"))
            .collect(),
            &["45.10.0.9", "45.10.0.10", "45.10.0.11"],
            &["45.10.0.12"],
        ),
    ];
    let rt = runtime();
    for (name, content, kept_home, sent) in inputs {
        let sandbox = start_sandbox(&rt, SandboxConfig::default());
        let home = tempfile::tempdir().expect("tempdir");
        let file = home.path().join(name);
        std::fs::write(&file, content).expect("write input");
        let records = enrich(home.path(), &sandbox.url(), &file);
        let asked = asked(&sandbox).join("\n");
        for ip in kept_home {
            assert!(!asked.contains(ip), "{name}: {ip} was sent:\n{asked}");
            let record = &records[*ip];
            assert_eq!(record["skip_reason"], "tlp", "{name}: {record}");
        }
        for ip in sent {
            assert!(asked.contains(ip), "{name}: {ip} was not sent:\n{asked}");
        }
    }
}

/// The recommended setting for inputs that may have lost their markings: with `[enrich]
/// default_tlp = "amber+strict"`, an indicator whose input states no TLP stays home, while one
/// marked GREEN in the same input is sent (the positive control).
#[test]
fn the_recommended_default_tlp_keeps_unmarked_input_home() {
    let rt = runtime();
    let sandbox = start_sandbox(&rt, SandboxConfig::default());
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[enrich]\ndefault_tlp = \"amber+strict\"\n",
    )
    .expect("config");
    let file = home.path().join("mixed.jsonl");
    std::fs::write(
        &file,
        "{\"indicator\": \"45.10.0.20\"}\n{\"indicator\": \"45.10.0.21\", \"tlp\": \"green\"}\n",
    )
    .expect("input");
    let records = enrich(home.path(), &sandbox.url(), &file);
    let asked = asked(&sandbox).join("\n");
    assert!(
        !asked.contains("45.10.0.20"),
        "the unmarked one was sent:\n{asked}"
    );
    assert_eq!(
        records["45.10.0.20"]["skip_reason"], "tlp",
        "{}",
        records["45.10.0.20"]
    );
    assert!(
        asked.contains("45.10.0.21"),
        "the green one was not sent:\n{asked}"
    );
}

/// Prints the p50, p99 and maximum of `/healthz` probe times in milliseconds (figures for the
/// closing notes; speed is not asserted in tests).
fn print_latencies(during: &str, mut took: Vec<f64>) {
    took.sort_by(f64::total_cmp);
    let at = |share: usize| took[(took.len() * share / 100).min(took.len() - 1)];
    eprintln!(
        "/healthz during {during}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} probes)",
        at(50),
        at(99),
        took[took.len() - 1],
        took.len()
    );
}

/// `scry enrich --format json FILE` against `sandbox_url`: the records by indicator.
fn enrich(home: &Path, sandbox_url: &str, file: &Path) -> std::collections::HashMap<String, Value> {
    let mut command = scry(home);
    command
        .env("CRIMINALIP_API_KEY", "ck-hardening-0c1d")
        .env("CRIMINALIP_BASE_URL", sandbox_url)
        .args(["enrich", "--format", "json"])
        .arg(file);
    let output = run(command, b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("JSON on stdout ({e}): {}", text(&output.stdout));
    });
    records
        .into_iter()
        .map(|r| (r["indicator"].as_str().unwrap_or("").to_owned(), r))
        .collect()
}

/// Made-up methods and paths do not grow `/metrics` (which needs no login): they are counted
/// under `OTHER` and the `unmatched` route, and the scrape stays small.
#[test]
fn bogus_methods_and_paths_do_not_grow_the_metrics() {
    let served = super::serve::Served::start("");
    let scrape = |served: &super::serve::Served| {
        let (status, body) = served.get("/metrics", "");
        assert_eq!(status, reqwest::StatusCode::OK);
        body.as_str().expect("text").to_owned()
    };
    let before = scrape(&served).len();
    const REQUESTS: usize = 10_000;
    let base = served.base.clone();
    let client = served.client().clone();
    let answered = served.runtime.block_on(async move {
        let mut answered = 0;
        // 100 at a time: under the listener's cap of 128 connections per address.
        for batch in (0..REQUESTS).collect::<Vec<_>>().chunks(100) {
            let mut tasks = tokio::task::JoinSet::new();
            for &i in batch {
                let method = reqwest::Method::from_bytes(format!("BOGUS{i}").as_bytes())
                    .expect("a valid token");
                let request = client.request(method, format!("{base}/nowhere/{i}"));
                tasks.spawn(async move { request.send().await.is_ok() });
            }
            while let Some(ok) = tasks.join_next().await {
                answered += usize::from(ok.expect("the task ran"));
            }
        }
        answered
    });
    assert_eq!(answered, REQUESTS, "every bogus request was answered");
    let after = scrape(&served);
    assert!(
        after.contains("method=\"OTHER\"") && after.contains("route=\"unmatched\""),
        "the bogus requests were counted: {after}"
    );
    assert!(
        !after.contains("BOGUS") && !after.contains("/nowhere/"),
        "no label took a request's own method or path"
    );
    eprintln!(
        "/metrics: {before} bytes before, {} bytes after {REQUESTS} requests with made-up methods and paths",
        after.len()
    );
    assert!(
        after.len() < 100 * 1024,
        "the scrape is {} bytes after {REQUESTS} bogus requests (was {before})",
        after.len()
    );
}

/// 32 concurrent wrong passwords for one account: the password checks run off the async
/// threads, so `/healthz` answers throughout (its latency is printed, not asserted: speed is for
/// the benchmarks); past five failures the account is locked and further guesses get `429`
/// with `Retry-After` unchecked; every failure is counted in `/metrics`; another account from
/// the same address still logs in.
#[test]
fn wrong_passwords_are_throttled_and_do_not_stall_the_server() {
    let served = super::serve::Served::start("");
    for (name, password) in [
        ("bob", "bob's long passphrase"),
        ("amy", "amy's long passphrase"),
    ] {
        let added = served.add_user(name, "viewer", password);
        assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    }
    let browser = super::serve::browser();
    let base = served.base.clone();
    let (cookie, csrf) = served.login_form(&browser);
    let (logins, health) = served.runtime.block_on(async {
        let mut guesses = tokio::task::JoinSet::new();
        for i in 0..32 {
            let request = browser
                .post(format!("{base}/login"))
                .header("cookie", &cookie)
                .form(&[
                    ("user", "bob"),
                    ("password", &format!("guess number {i}")),
                    ("csrf", &csrf),
                ]);
            guesses.spawn(async move {
                let response = request.send().await.expect("the server answers");
                (
                    response.status(),
                    response.headers().contains_key("retry-after"),
                )
            });
        }
        let probe = browser.clone();
        let health_url = format!("{base}/healthz");
        let prober = tokio::spawn(async move {
            let mut took = Vec::new();
            for _ in 0..40 {
                let started = std::time::Instant::now();
                let response = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    probe.get(&health_url).send(),
                )
                .await
                .expect("/healthz answered within 30 s")
                .expect("/healthz answers");
                assert_eq!(response.status(), reqwest::StatusCode::OK);
                took.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            took
        });
        let mut logins = Vec::new();
        while let Some(outcome) = guesses.join_next().await {
            logins.push(outcome.expect("the task ran"));
        }
        (logins, prober.await.expect("the prober ran"))
    });
    let wrong = logins
        .iter()
        .filter(|(status, _)| *status == reqwest::StatusCode::UNAUTHORIZED)
        .count();
    let refused = logins
        .iter()
        .filter(|(status, retry)| *status == reqwest::StatusCode::TOO_MANY_REQUESTS && *retry)
        .count();
    assert!((1..=5).contains(&wrong), "{logins:?}");
    assert_eq!(wrong + refused, 32, "{logins:?}");
    print_latencies("32 concurrent wrong logins", health);
    let log_in = |user: &str, password: &str| {
        served
            .log_in(&browser, &[("user", user), ("password", password)])
            .status()
    };
    assert_eq!(
        log_in("bob", "bob's long passphrase"),
        reqwest::StatusCode::TOO_MANY_REQUESTS,
        "the locked account waits, right password or not"
    );
    assert_eq!(
        log_in("amy", "amy's long passphrase"),
        reqwest::StatusCode::SEE_OTHER,
        "another account from the same address logs in"
    );
    let (_, metrics) = served.get("/metrics", "");
    let metrics = metrics.as_str().expect("text");
    let count = |family: &str| -> Option<u64> {
        metrics
            .lines()
            .find(|l| l.starts_with(family))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
    };
    assert_eq!(
        count("scry_login_failures_total"),
        Some(wrong as u64),
        "{metrics}"
    );
    assert_eq!(
        count("scry_logins_refused_total"),
        Some(refused as u64 + 1),
        "{metrics}"
    );
}

/// A URL's user name and password never reach Criminal IP, and its query only when
/// `send_url_query` says so; the stored indicator keeps the URL as given.
#[test]
fn url_credentials_and_queries_stay_home() {
    let url =
        "http://admin:s3cret@evil-login.net/login.php?email=victim%40corp.example&sid=77f1#top";
    let rt = runtime();
    for send_query in [false, true] {
        let sandbox = start_sandbox(
            &rt,
            SandboxConfig {
                scan_duration: std::time::Duration::ZERO,
                ..SandboxConfig::default()
            },
        );
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            home.path().join("scry.toml"),
            format!(
                "[sources.criminalip]\nscan_poll_seconds = 0.05\nsend_url_query = {send_query}\n"
            ),
        )
        .expect("write config");
        let file = home.path().join("urls.txt");
        std::fs::write(&file, format!("{url}\n")).expect("write input");
        let records = enrich(home.path(), &sandbox.url(), &file);
        assert_eq!(records.len(), 1, "{records:?}");
        let asked = asked(&sandbox);
        let listing: Vec<&String> = asked
            .iter()
            .filter(|a| a.starts_with("/v1/domain/reports?") && a.contains("evil-login.net"))
            .collect();
        assert!(!listing.is_empty(), "the URL was asked about: {asked:?}");
        for secret in ["s3cret", "admin", "top"] {
            assert!(
                asked.iter().all(|a| !a.contains(secret)),
                "{secret} was sent: {asked:?}"
            );
        }
        let query_sent = asked.iter().any(|a| a.contains("victim"));
        assert_eq!(query_sent, send_query, "{asked:?}");
    }
}

/// A store password given as a query parameter is never printed: not by `config check`, and
/// not in the error when the store cannot be reached.
#[test]
fn a_store_password_in_the_query_is_never_printed() {
    let home = tempfile::tempdir().expect("tempdir");
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    let url = "postgres://scry@127.0.0.1:1/scry?sslmode=disable&password=hunter2-in-query";
    for args in [
        vec!["--store", url, "config", "check"],
        vec!["--store", url, "db", "migrate"],
    ] {
        let mut command = scry(home.path());
        command.args(&args);
        let output = run(command, b"");
        let shown = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(
            shown.contains("127.0.0.1:1"),
            "{args:?} names the store: {shown}"
        );
        assert!(
            !shown.contains("hunter2"),
            "{args:?} printed the password: {shown}"
        );
    }
}

/// After a login the browser goes back only to a path on this server: a tab, a line break or a
/// backslash that a browser would drop or read as `//` leads to `/`, while a plain path is kept.
#[test]
fn the_login_redirect_stays_on_this_server() {
    let served = super::serve::Served::start("");
    let added = served.add_user("cat", "viewer", "cat's long passphrase");
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let browser = super::serve::browser();
    for (next, expected) in [
        ("/\t/evil.example/", "/"),
        ("/\n/evil.example/", "/"),
        ("/\r\n/evil.example/", "/"),
        (" //evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/queue?status=new", "/queue?status=new"),
    ] {
        let response = served.log_in(
            &browser,
            &[
                ("user", "cat"),
                ("password", "cat's long passphrase"),
                ("next", next),
            ],
        );
        assert_eq!(
            response.status(),
            reqwest::StatusCode::SEE_OTHER,
            "{next:?}"
        );
        assert_eq!(response.headers()["location"], expected, "{next:?}");
    }
}

/// The live-notification stream ends once the token that opened it is revoked, instead of
/// streaming on to whoever held it.
#[test]
fn the_live_stream_ends_when_its_token_is_revoked() {
    let served = super::serve::Served::start("");
    let (status, created) = served.call(
        reqwest::Method::POST,
        "/api/v1/tokens",
        &served.admin,
        Some(json!({"name": "wall", "role": "viewer"})),
    );
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let mut stream = served.raw(
        served
            .client()
            .get(format!("{}/ui/events", served.base))
            .bearer_auth(&secret),
    );
    assert_eq!(stream.status(), reqwest::StatusCode::OK);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        stream.headers()
    );
    let (status, _) = served.call(
        reqwest::Method::DELETE,
        "/api/v1/tokens/wall",
        &served.admin,
        None,
    );
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    assert!(
        stream_ends(&served, &mut stream),
        "the stream went on after its token was revoked"
    );
}

/// Whether a live stream ends: keep-alive comments may still arrive, then it must stop
/// (bounded: 30 s).
fn stream_ends(served: &super::serve::Served, stream: &mut reqwest::Response) -> bool {
    served.runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await
        .is_ok()
    })
}

/// The live stream of a browser session ends once that session logs out.
#[test]
fn the_live_stream_ends_at_logout() {
    let served = super::serve::Served::start("");
    let added = served.add_user("liv", "viewer", "liv's long passphrase");
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let browser = super::serve::browser();
    let logged_in = served.log_in(
        &browser,
        &[("user", "liv"), ("password", "liv's long passphrase")],
    );
    let session = super::serve::set_cookie(&logged_in, "scry_session")
        .and_then(|cookie| cookie.split(';').next().map(str::to_owned))
        .expect("a session");
    let page = served.runtime.block_on(
        served
            .raw(
                browser
                    .get(format!("{}/", served.base))
                    .header("cookie", &session),
            )
            .text(),
    );
    let csrf = super::serve::attribute_after(&page.expect("the page"), "data-csrf=\"")
        .expect("the page carries its anti-forgery value");
    let mut stream = served.raw(
        browser
            .get(format!("{}/ui/events", served.base))
            .header("cookie", &session),
    );
    assert_eq!(stream.status(), reqwest::StatusCode::OK);
    let logout = served.raw(
        browser
            .post(format!("{}/logout", served.base))
            .header("cookie", &session)
            .form(&[("csrf", csrf.as_str())]),
    );
    assert_eq!(logout.status(), reqwest::StatusCode::SEE_OTHER);
    assert!(
        stream_ends(&served, &mut stream),
        "the stream went on after its session logged out"
    );
}

/// Forged requests from a logged-in analyst's browser are refused with `403` whatever their
/// content type, and spend nothing: the API's anti-forgery check goes by how the caller
/// authenticated (a session needs its value in the header; forms, text and multipart bodies get
/// no exemption), a request a browser marks as coming from another site (another port of this
/// host is `same-site`) is refused even with the value, and the login form carries its own
/// value, so another site cannot log a victim into its account either. Positive controls: the
/// same requests with the value are taken, and a login with the form's value opens a session.
#[test]
fn forged_browser_requests_are_refused() {
    let served = super::serve::Served::start("");
    let added = served.add_user("ann", "analyst", "ann's long passphrase");
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let browser = super::serve::browser();
    let base = served.base.clone();
    let status = |request: reqwest::RequestBuilder| served.raw(request).status();
    let body = |request: reqwest::RequestBuilder| {
        let response = served.raw(request);
        (
            response.status(),
            served.runtime.block_on(response.text()).expect("body"),
        )
    };

    // Login CSRF: no value, a value without its cookie, a value that is not the cookie's, and
    // the right pair from another site's page. None opens a session.
    let (cookie, csrf) = served.login_form(&browser);
    let (_, other_csrf) = served.login_form(&browser);
    let credentials = [("user", "ann"), ("password", "ann's long passphrase")];
    let forged_logins: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "no value",
            browser
                .post(format!("{base}/login"))
                .header("cookie", &cookie)
                .form(&credentials),
        ),
        (
            "no cookie",
            browser.post(format!("{base}/login")).form(&[
                credentials[0],
                credentials[1],
                ("csrf", &csrf),
            ]),
        ),
        (
            "another form's value",
            browser
                .post(format!("{base}/login"))
                .header("cookie", &cookie)
                .form(&[credentials[0], credentials[1], ("csrf", &other_csrf)]),
        ),
        (
            "another site's page",
            browser
                .post(format!("{base}/login"))
                .header("cookie", &cookie)
                .header("sec-fetch-site", "cross-site")
                .form(&[credentials[0], credentials[1], ("csrf", &csrf)]),
        ),
    ];
    for (case, request) in forged_logins {
        let response = served.raw(request);
        assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN, "{case}");
        assert!(
            super::serve::set_cookie(&response, "scry_session").is_none(),
            "{case}: a session was opened"
        );
    }
    let logged_in = served.log_in(&browser, &credentials);
    assert_eq!(logged_in.status(), reqwest::StatusCode::SEE_OTHER);
    let session = super::serve::set_cookie(&logged_in, "scry_session")
        .and_then(|cookie| cookie.split(';').next().map(str::to_owned))
        .expect("a session");
    let page = body(browser.get(format!("{base}/")).header("cookie", &session)).1;
    let session_csrf = super::serve::attribute_after(&page, "data-csrf=\"")
        .expect("the page carries its anti-forgery value");

    // The API with the session cookie and no header value: every body type is refused.
    let upload = format!("{base}/api/v1/indicators/upload");
    let enrich = format!("{base}/api/v1/indicators/45.155.205.233/enrich");
    for (content_type, target) in [
        ("application/x-www-form-urlencoded", &upload),
        ("multipart/form-data; boundary=x", &upload),
        ("text/plain", &upload),
        ("application/x-www-form-urlencoded", &enrich),
        ("text/plain", &enrich),
    ] {
        let (code, answer) = body(
            browser
                .post(target)
                .header("cookie", &session)
                .header("content-type", content_type)
                .body("45.155.205.233\n"),
        );
        assert_eq!(
            code,
            reqwest::StatusCode::FORBIDDEN,
            "{content_type} {target}: {answer}"
        );
        assert!(answer.contains("\"csrf\""), "{answer}");
    }
    // The page's own enrich request, with its value, as a browser marks it coming from `site`.
    let enrich_from = |site: &str| {
        status(
            browser
                .post(&enrich)
                .header("cookie", &session)
                .header("x-csrf-token", &session_csrf)
                .header("sec-fetch-site", site),
        )
    };
    // With the value but from another port of this host (`same-site`): refused too.
    assert_eq!(enrich_from("same-site"), reqwest::StatusCode::FORBIDDEN);
    // A workbench form with its value, but posted from another site.
    assert_eq!(
        status(
            browser
                .post(format!("{base}/ui/submit"))
                .header("cookie", &session)
                .header("sec-fetch-site", "cross-site")
                .form(&[
                    ("csrf", session_csrf.as_str()),
                    ("indicators", "45.155.205.233")
                ]),
        ),
        reqwest::StatusCode::FORBIDDEN
    );
    let (_, listed) = served.get("/api/v1/indicators", &served.viewer);
    assert_eq!(listed["items"], json!([]), "a forged request queued work");
    assert!(
        served.sandbox_asked().is_empty(),
        "{:?}",
        served.sandbox_asked()
    );

    // Positive control: the page's own request, with its value and from its own origin.
    assert_eq!(enrich_from("same-origin"), reqwest::StatusCode::ACCEPTED);
    served.wait_for(|s| !s.sandbox_asked().is_empty());
}

/// Opens `count` connections from `source` to `target` in a Python process (each process has
/// its own descriptor limit, so two of them hold 20,000 between them) and keeps them open, sending
/// nothing, until its stdin closes. Python 3 is on every machine `.ci/run` prepares.
fn idle_connections(source: &str, target: &str, count: u32) -> std::process::Child {
    let script = r#"
import socket, sys
source, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
held, failed = [], 0
for _ in range(count):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.bind((source, 0))
        s.connect((host, port))
        held.append(s)
    except OSError:
        failed += 1
        s.close()
print(f"{len(held)} {failed}", flush=True)
sys.stdin.read()
"#;
    let (host, port) = target.rsplit_once(':').expect("host:port");
    std::process::Command::new("python3")
        .args(["-c", script, source, host, port, &count.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (install Python 3 to run this test)")
}

fn metric(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
}

/// 20,000 idle connections from one host (127.0.0.2) while a monitor on another (127.0.0.1)
/// polls `/healthz` on fresh connections: the listener keeps `max_connections_per_address` of
/// them (closed again after the header timeout) and closes the rest on arrival, so every probe
/// is answered. The probe latencies are printed, not asserted; `/metrics` shows the refusals,
/// the positive control that the attack took place.
#[test]
fn twenty_thousand_idle_connections_do_not_stop_healthz() {
    // The attackers are Python processes: 20,000 sockets in two processes of their own.
    if !scry_testkit::python_modules(&[], "") {
        return;
    }
    let served = super::serve::Served::start("");
    let target = served.base.trim_start_matches("http://").to_owned();
    let mut attackers: Vec<_> = (0..2)
        .map(|_| idle_connections("127.0.0.2", &target, 10_000))
        .collect();
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut took = Vec::new();
    let mut held = 0;
    for attacker in &mut attackers {
        // Probe while the attacker is still opening its connections, then once it holds them.
        let mut line = String::new();
        let stdout = attacker.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                .expect("the attacker reports");
            line
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !reader.is_finished() || took.len() % 20 != 0 {
            let started = std::time::Instant::now();
            let response = served.runtime.block_on(async {
                tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    probe.get(format!("{}/healthz", served.base)).send(),
                )
                .await
            });
            let response = response
                .expect("/healthz answered within 30 s")
                .expect("/healthz answers");
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            took.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(
                std::time::Instant::now() < deadline,
                "the attacker did not finish in 300 s"
            );
            // Paced, so the probes leave the attacker the CPU to attack with.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let report = reader.join().expect("the reader ran");
        let opened: u32 = report
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the attacker said {report:?}"));
        held += opened;
    }
    let (_, metrics) = served.get("/metrics", "");
    let metrics = metrics.as_str().expect("text").to_owned();
    for mut attacker in attackers {
        drop(attacker.stdin.take());
        let _ = attacker.wait();
    }
    print_latencies(&format!("{held} idle connections"), took);
    assert!(held >= 19_000, "only {held} connections were opened");
    let refused = metric(
        &metrics,
        "scry_connections_refused_total{reason=\"per-address\"}",
    )
    .unwrap_or_else(|| panic!("no refusals counted: {metrics}"));
    assert!(
        refused >= 19_000.0,
        "{refused} refused of {held}: {metrics}"
    );
    let open = metric(&metrics, "scry_connections_open").expect("the gauge");
    assert!(open <= 130.0, "{open} connections open: {metrics}");
}

/// A connection that sends nothing, or sends headers and then too little of its body, is
/// closed by the server after the configured time; at the overall cap the oldest silent
/// connection makes room for a client that speaks.
#[test]
fn silent_and_slow_clients_are_cut_off() {
    use std::io::{Read, Write};
    let served = super::serve::Served::start_with(
        "header_timeout_seconds = 1\nrequest_timeout_seconds = 1\nmax_connections = 40\nmax_connections_per_address = 1000",
        "",
    );
    let target = served.base.trim_start_matches("http://").to_owned();
    let bounded = |stream: &std::net::TcpStream| {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("a read timeout");
    };
    // Silent: the server closes it (end of stream) after the header timeout.
    let mut silent = std::net::TcpStream::connect(&target).expect("connects");
    bounded(&silent);
    let mut rest = Vec::new();
    let read = silent.read_to_end(&mut rest);
    assert!(
        read.is_ok() || rest.is_empty(),
        "the server closes a silent connection: {read:?}"
    );
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // Slow body: the headers promise 100 bytes, 5 come; the request times out with 408.
    let mut slow = std::net::TcpStream::connect(&target).expect("connects");
    bounded(&slow);
    write!(
        slow,
        "POST /api/v1/indicators HTTP/1.1\r\nHost: {target}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ind",
        served.analyst
    )
    .expect("writes");
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    // At the cap of 40: 40 silent connections, then a client that speaks is still served.
    let held: Vec<_> = (0..40)
        .map(|_| std::net::TcpStream::connect(&target).expect("connects"))
        .collect();
    let (status, _) = served.get("/healthz", "");
    assert_eq!(status, reqwest::StatusCode::OK);
    let (_, metrics) = served.get("/metrics", "");
    let evicted = metric(
        metrics.as_str().expect("text"),
        "scry_connections_evicted_total",
    );
    assert!(evicted >= Some(1.0), "{metrics}");
    drop(held);
}

/// With `tls_cert` and `tls_key`, `scry serve` speaks HTTPS (TAXII 2.1 requires it): a client
/// that trusts the certificate reaches the API and TAXII, plain HTTP gets no answer, and a
/// certificate that cannot be read, or a key without its certificate, stops the server before it
/// listens with a message that names the setting.
#[test]
fn serve_speaks_https_with_a_certificate() {
    let tls = tempfile::tempdir().expect("tempdir");
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    let (cert_path, key_path) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("write the key");
    let served = super::serve::Served::start_with(
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            cert_path.display().to_string(),
            key_path.display().to_string()
        ),
        "",
    );
    assert!(
        served.base.starts_with("https://127.0.0.1:"),
        "{}",
        served.base
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.pem().as_bytes()).expect("the certificate"),
        )
        .https_only(true)
        .build()
        .expect("client");
    let health = served.raw(client.get(format!("{}/healthz", served.base)));
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let discovery = served.raw(
        client
            .get(format!("{}/taxii2/", served.base))
            .bearer_auth(&served.viewer)
            .header("accept", "application/taxii+json;version=2.1"),
    );
    assert_eq!(discovery.status(), reqwest::StatusCode::OK);
    // The same port over plain HTTP: no HTTP answer comes back.
    let plain = served.runtime.block_on(async {
        reqwest::Client::new()
            .get(served.base.replacen("https://", "http://", 1) + "/healthz")
            .timeout(std::time::Duration::from_secs(20))
            .send()
            .await
    });
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "{plain:?}"
    );

    // Broken settings are refused before listening, naming the key and the file.
    let home = tempfile::tempdir().expect("tempdir");
    for (settings, expected) in [
        (
            format!(
                "[server]\ntls_cert = \"{}/missing.pem\"\ntls_key = {:?}\n",
                tls.path().display(),
                key_path.display().to_string()
            ),
            "tls_cert",
        ),
        (
            format!(
                "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
                key_path.display().to_string(),
                key_path.display().to_string()
            ),
            "tls_cert",
        ),
        (
            format!("[server]\ntls_key = {:?}\n", key_path.display().to_string()),
            "tls_cert and tls_key go together",
        ),
    ] {
        std::fs::write(home.path().join("scry.toml"), settings).expect("config");
        let out = run(
            {
                let mut command = scry(home.path());
                command.args(["serve", "--listen", "127.0.0.1:0"]);
                command
            },
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(expected),
            "{}",
            text(&out.stderr)
        );
    }
}

/// A gzip file of `members` concatenated gzip members, each 1 MiB of zeros (about 1 KiB
/// compressed): a small body that expands a thousandfold.
fn gzip_bomb(members: usize) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(&vec![0u8; 1024 * 1024])
        .expect("compress");
    let member = encoder.finish().expect("compress");
    member.repeat(members)
}

/// The work one request may cause is capped, and a request over a cap is answered `422
/// too_much_work` naming the limit, with nothing queued: a submission or an upload with more
/// distinct indicators than `max_indicators_per_request`, action requests whose indicators ×
/// actions would queue more jobs than that (the attack was 1,000 × 100 = 100,000 jobs from
/// 18 KB), a 1 MB gzip that expands to about 1 GiB, and gzip inside gzip. An upload within the
/// caps is taken on in the background: `202` with a `Location` whose status shows it done.
#[test]
fn work_per_request_is_capped() {
    let served = super::serve::Served::start_with("max_indicators_per_request = 1000", "");
    served.submit_and_wait(&["45.155.205.233"]);
    let analyst = served.analyst.clone();
    let post =
        |path: &str, body: Value| served.call(reqwest::Method::POST, path, &analyst, Some(body));
    let queued = || {
        let (_, queue) = served.get("/api/v1/queue", &served.viewer);
        queue.to_string()
    };
    let before = queued();
    let refused = |status: reqwest::StatusCode, body: &Value, field: &str| {
        assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "too_much_work", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    };

    let many: Vec<String> = (0..1001)
        .map(|i| format!("45.156.{}.{}", i / 200, 1 + i % 200))
        .collect();
    let (status, body) = post("/api/v1/indicators", json!({ "indicators": many }));
    refused(status, &body, "max_indicators_per_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1001") && m.contains("1000")),
        "{body}"
    );
    let action = json!({"do": "tag", "tag": "x"});
    let (status, body) = post(
        "/api/v1/indicators/actions",
        json!({"indicators": vec!["45.155.205.233"; 1000], "actions": vec![action.clone(); 100]}),
    );
    refused(status, &body, "max_actions_per_request");
    let (status, body) = post(
        "/api/v1/indicators/actions",
        json!({"indicators": vec!["45.155.205.233"; 1000], "actions": vec![action.clone(); 2]}),
    );
    refused(status, &body, "max_indicators_per_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2000 action jobs")),
        "{body}"
    );

    let upload = |bytes: Vec<u8>, name: &str| {
        let response = served.raw(
            served
                .client()
                .post(format!(
                    "{}/api/v1/indicators/upload?name={name}",
                    served.base
                ))
                .bearer_auth(&analyst)
                .body(bytes),
        );
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().expect("ASCII").to_owned());
        let body: Value = served.runtime.block_on(response.json()).expect("JSON");
        (status, location, body)
    };
    let (status, _, body) = upload(many.join("\n").into_bytes(), "many.txt");
    refused(status, &body, "max_indicators_per_request");
    let bomb = gzip_bomb(950);
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    let (status, _, body) = upload(bomb.clone(), "bomb.txt.gz");
    refused(status, &body, "max_expanded_mib");
    let twice = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&gzip_bomb(100)).expect("compress");
        encoder.finish().expect("compress")
    };
    let (status, _, body) = upload(twice, "twice.gz");
    refused(status, &body, "max_expanded_mib");
    assert_eq!(queued(), before, "a refused request queued work");

    // Within the caps: taken on in the background, its status says what was queued.
    let (status, location, body) = upload(
        b"45.155.205.233\n91.92.241.10\n999.1.1.1\n".to_vec(),
        "small.txt",
    );
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let location = location.expect("a Location header");
    assert_eq!(
        location,
        format!("/api/v1/uploads/{}", body["id"].as_str().expect("id"))
    );
    assert_eq!(body["indicators"], 2, "{body}");
    served.wait_for(|s| s.get(&location, &s.analyst).1["state"] != "running");
    let (_, done) = served.get(&location, &served.analyst);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["result"]["queued"], 2, "{done}");
    assert_eq!(done["result"]["rejected"], 1, "{done}");
    // Another account's upload is not shown to a viewer, nor to another analyst's token.
    let (status, _) = served.get(&location, &served.viewer);
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    let (status, _) = served.get(&location, &served.admin);
    assert_eq!(status, reqwest::StatusCode::OK);
}

/// A rule whose condition nests loops over lists (four lists of 60 numbers: 13 million steps,
/// seconds on every indicator) is refused by `scry rules check` with its estimated cost and the
/// rule's name, while the same condition with two lists (3,600 steps) loads.
#[test]
fn a_costly_rule_condition_is_refused_when_rules_load() {
    let home = tempfile::tempdir().expect("tempdir");
    let list = (0..60)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let nested = |depth: usize| {
        let names = ["a", "b", "c", "d"];
        let mut condition = format!("{} < 0", names[..depth].join(" + "));
        for name in names[..depth].iter().rev() {
            condition = format!("[{list}].exists({name}, {condition})");
        }
        condition
    };
    std::fs::create_dir(home.path().join("playbooks")).expect("mkdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[automation]\nplaybooks = \"playbooks\"\n",
    )
    .expect("config");
    let check = |condition: String| {
        std::fs::write(
            home.path().join("playbooks/costly.toml"),
            format!(
                "[[rules]]\nname = \"costly\"\non = [\"enriched\"]\nwhen = '{condition}'\nactions = [{{ do = \"tag\", tag = \"x\" }}]\n"
            ),
        )
        .expect("rules");
        run_args(home.path(), &["rules", "check"], b"")
    };
    let refused = check(nested(4));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("costly") && stderr.contains("steps") && stderr.contains("100000"),
        "{stderr}"
    );
    let loaded = check(nested(2));
    assert_eq!(loaded.status.code(), Some(0), "{}", text(&loaded.stderr));
}

/// `scry enrich --format json --input-format FORMAT FILE` with the offline sources only: the
/// records that name an indicator (rejected pieces are listed too, without one), and stderr.
fn enrich_offline(home: &Path, format: &str, file: &Path) -> (Vec<Value>, String) {
    let file = file.display().to_string();
    let args = [
        "enrich",
        "--format",
        "json",
        "--input-format",
        format,
        &file,
    ];
    let output = run_args(home, &args, b"");
    let stderr = text(&output.stderr);
    let records: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {stderr}"));
    let named = records
        .into_iter()
        .filter(|r| r["indicator"].is_string())
        .collect();
    (named, stderr)
}

/// Bytes from a fixed-seed xorshift generator: the same "random binary file" on every run.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// A random binary file (an executable or archive dropped on the reader by mistake) yields no
/// indicator, in any input format, and says why; a text file whose tail turns binary keeps the
/// indicators of its text (the positive control) and says where the binary part starts.
#[test]
fn binary_noise_yields_no_indicators() {
    let home = tempfile::tempdir().expect("tempdir");
    for seed in [1u64, 7, 42] {
        let file = home.path().join(format!("noise-{seed}.bin"));
        std::fs::write(&file, noise(256 * 1024, seed)).expect("write");
        for format in ["auto", "text", "lines", "csv", "jsonl"] {
            let (records, stderr) = enrich_offline(home.path(), format, &file);
            assert!(
                records.is_empty(),
                "seed {seed}, {format}: {} indicators from noise, e.g. {:?}",
                records.len(),
                records
                    .iter()
                    .take(5)
                    .map(|r| &r["indicator"])
                    .collect::<Vec<_>>()
            );
            assert!(
                stderr.contains("binary data"),
                "seed {seed}, {format}: {stderr}"
            );
        }
    }
    let mut mixed = "45.155.205.233\nsecure-update.xyz\n"
        .repeat(4000)
        .into_bytes();
    let text_lines = 8000;
    mixed.extend(noise(4096, 9));
    let file = home.path().join("mixed.txt");
    std::fs::write(&file, &mixed).expect("write");
    let (records, stderr) = enrich_offline(home.path(), "text", &file);
    let found: std::collections::BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r["indicator"].as_str())
        .collect();
    assert_eq!(
        found,
        ["45.155.205.233", "secure-update.xyz"]
            .into_iter()
            .collect(),
        "{stderr}"
    );
    let binary_lines: Vec<u64> = stderr
        .lines()
        .filter(|l| l.contains("binary data"))
        .filter_map(|l| {
            l.split("mixed.txt:")
                .nth(1)?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        !binary_lines.is_empty() && binary_lines.iter().all(|n| *n > text_lines),
        "the binary tail is reported, and only it: {stderr}"
    );
}

/// 32 concurrent wrong logins, each for another made-up user, each with `forwarded` as its
/// `X-Forwarded-For` (`{i}` is replaced by the attempt's number): how many got `401` and `429`.
fn login_burst(served: &super::serve::Served, forwarded: &str) -> (usize, usize) {
    let browser = super::serve::browser();
    let (cookie, csrf) = served.login_form(&browser);
    let base = served.base.clone();
    let statuses = served.runtime.block_on(async {
        let mut attempts = tokio::task::JoinSet::new();
        for i in 0..32 {
            let request = browser
                .post(format!("{base}/login"))
                .header("cookie", &cookie)
                .header("x-forwarded-for", forwarded.replace("{i}", &i.to_string()))
                .form(&[
                    ("user", format!("nobody{i}")),
                    ("password", "a wrong passphrase".to_owned()),
                    ("csrf", csrf.clone()),
                ]);
            attempts.spawn(async move { request.send().await.expect("answers").status() });
        }
        let mut statuses = Vec::new();
        while let Some(status) = attempts.join_next().await {
            statuses.push(status.expect("the task ran"));
        }
        statuses
    });
    let count = |wanted: reqwest::StatusCode| statuses.iter().filter(|s| **s == wanted).count();
    (
        count(reqwest::StatusCode::UNAUTHORIZED),
        count(reqwest::StatusCode::TOO_MANY_REQUESTS),
    )
}

/// Login throttling goes by the client's address. Without `[server] trusted_proxies` a client's
/// own `X-Forwarded-For` is ignored: 32 guesses that each claim another address still share
/// the peer's allowance (20) and the rest are refused. Behind a trusted proxy the header names
/// the client: one client's 32 guesses are throttled while 32 clients' single guesses are not,
/// and another client behind the same proxy still logs in.
#[test]
fn login_throttling_goes_by_the_client_behind_a_trusted_proxy() {
    let direct = super::serve::Served::start("");
    let (wrong, refused) = login_burst(&direct, "198.51.100.{i}");
    assert!(
        wrong <= 20 && refused >= 12 && wrong + refused == 32,
        "spoofed addresses escaped the throttle: {wrong} checked, {refused} refused"
    );

    let proxied = super::serve::Served::start_with("trusted_proxies = [\"127.0.0.1\"]", "");
    let added = proxied.add_user("dan", "viewer", "dan's long passphrase");
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let (wrong, refused) = login_burst(&proxied, "192.0.2.1, 203.0.113.5");
    assert!(
        wrong <= 20 && refused >= 12 && wrong + refused == 32,
        "one client behind the proxy: {wrong} checked, {refused} refused"
    );
    let (wrong, refused) = login_burst(&proxied, "198.51.100.{i}");
    assert_eq!(
        (wrong, refused),
        (32, 0),
        "32 clients behind the proxy, one guess each"
    );
    let browser = super::serve::browser();
    let (cookie, csrf) = proxied.login_form(&browser);
    let response = proxied.raw(
        browser
            .post(format!("{}/login", proxied.base))
            .header("cookie", cookie)
            .header("x-forwarded-for", "198.51.100.77")
            .form(&[
                ("user", "dan"),
                ("password", "dan's long passphrase"),
                ("csrf", csrf.as_str()),
            ]),
    );
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
}
