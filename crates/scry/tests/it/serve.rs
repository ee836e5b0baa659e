//! `scry serve` as a child process, against a sandbox on loopback and a real SQLite file: roles
//! on every route of the OpenAPI document, pagination, the error table, tokens, blocklists,
//! metrics, and TAXII 2.1 through the OASIS client with its objects checked by the OASIS
//! validator.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use scry_sandbox::SandboxConfig;
use serde_json::{Value, json};

use super::{run, runtime, scry, start_sandbox, text};

const KEY: &str = "ck-serve-5b1f0c";

/// A running `scry serve`, its tokens, and what it talks to; stopped on drop.
pub(crate) struct Served {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) sandbox: scry_sandbox::Sandbox,
    pub(crate) home: tempfile::TempDir,
    pub(crate) store: String,
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) admin: String,
    pub(crate) analyst: String,
    pub(crate) viewer: String,
    client: reqwest::Client,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration every served test uses: `server` lines go into `[server]`, `extra` after.
fn config(server: &str, extra: &str) -> String {
    format!(
        "[worker]\npoll_seconds = 0.1\n\n\
         [sources.criminalip]\nmax_requests = 50\nretry_base_ms = 10\nscan_poll_seconds = 0.05\n\n\
         [server]\nmax_body_mib = 1\n{server}\n\n\
         [automation.blocklists.edl]\ndays = 7\n\n{extra}"
    )
}

/// A browser logged in to the workbench: its session cookie and the pages' anti-forgery value.
pub(crate) struct Workbench<'s> {
    served: &'s Served,
    browser: reqwest::Client,
    session: String,
    csrf: String,
}

impl Workbench<'_> {
    /// A page as the browser gets it: the status and the HTML.
    pub(crate) fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self.served.raw(
            self.browser
                .get(format!("{}{path}", self.served.base))
                .header("cookie", &self.session),
        );
        let status = response.status();
        let body = self
            .served
            .runtime
            .block_on(response.text())
            .expect("a page");
        (status, body)
    }

    /// The queue's bulk action form posted with `fields` (the anti-forgery value added).
    pub(crate) fn act(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = fields.to_vec();
        form.push(("csrf", &self.csrf));
        self.served.raw(
            self.browser
                .post(format!("{}/ui/actions", self.served.base))
                .header("cookie", &self.session)
                .form(&form),
        )
    }
}

impl Served {
    pub(crate) fn start(extra: &str) -> Served {
        Served::start_with("", extra)
    }

    pub(crate) fn start_with(server: &str, extra: &str) -> Served {
        Served::start_on(None, server, extra)
    }

    /// A server on `store` (a SQLite file of its own when `None`).
    pub(crate) fn start_on(store: Option<&str>, server: &str, extra: &str) -> Served {
        let runtime = runtime();
        let sandbox = start_sandbox(
            &runtime,
            SandboxConfig {
                api_key: Some(KEY.into()),
                scan_duration: Duration::ZERO,
                ..SandboxConfig::default()
            },
        );
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(home.path().join("scry.toml"), config(server, extra)).expect("write config");
        let store = store.map_or_else(
            || format!("sqlite://{}", home.path().join("scry.db").display()),
            str::to_owned,
        );
        let token = |name: &str, role: &str| {
            let out = run(
                scry_with(
                    home.path(),
                    &sandbox,
                    &store,
                    &["token", "create", name, "--role", role],
                ),
                b"",
            );
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            text(&out.stdout).trim().to_owned()
        };
        let (admin, analyst, viewer) = (
            token("root", "admin"),
            token("ana", "analyst"),
            token("vic", "viewer"),
        );
        let mut child = scry_with(
            home.path(),
            &sandbox,
            &store,
            &["serve", "--listen", "127.0.0.1:0"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scry serve starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        lines.read_line(&mut first).expect("the first line");
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(|a| a.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        // Keep reading the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.lines() {});
        Served {
            runtime,
            sandbox,
            home,
            store,
            child,
            base,
            admin,
            analyst,
            viewer,
            client: reqwest::Client::new(),
        }
    }

    /// A request as `token` (none when empty); the status and the body as JSON (or text).
    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.runtime.block_on(async {
            let response = request.send().await.expect("the server answers");
            let status = response.status();
            let bytes = response.bytes().await.expect("a body");
            let value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            (status, value)
        })
    }

    pub(crate) fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None)
    }

    pub(crate) fn raw(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        self.runtime
            .block_on(request.send())
            .expect("the server answers")
    }

    /// What the Criminal IP sandbox behind this server was asked, in order.
    pub(crate) fn sandbox_asked(&self) -> Vec<String> {
        super::asked(&self.sandbox)
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `scry user add NAME --role ROLE` on this server's store, the password on stdin.
    pub(crate) fn add_user(&self, name: &str, role: &str, password: &str) -> std::process::Output {
        let mut command = scry(self.home.path());
        command.args(["--store", &self.store, "user", "add", name, "--role", role]);
        run(command, format!("{password}\n").as_bytes())
    }

    /// The login form's anti-forgery pair, as a browser gets it from `GET /login`: the cookie
    /// (`scry_login=…`) and the form's `csrf` value.
    pub(crate) fn login_form(&self, browser: &reqwest::Client) -> (String, String) {
        let response = self.raw(browser.get(format!("{}/login", self.base)));
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = set_cookie(&response, "scry_login").expect("the login form sets its cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/login"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        let cookie = cookie.split(';').next().expect("name=value").to_owned();
        let page = self.runtime.block_on(response.text()).expect("the page");
        let csrf = attribute_after(&page, "name=\"csrf\" value=\"")
            .expect("the login form carries its anti-forgery value");
        assert_eq!(cookie, format!("scry_login={csrf}"));
        (cookie, csrf)
    }

    /// Posts the login form as a browser would: `form`'s fields with the form's anti-forgery
    /// value and its cookie.
    pub(crate) fn log_in(
        &self,
        browser: &reqwest::Client,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let (cookie, csrf) = self.login_form(browser);
        let mut fields = form.to_vec();
        fields.push(("csrf", &csrf));
        self.raw(
            browser
                .post(format!("{}/login", self.base))
                .header("cookie", cookie)
                .form(&fields),
        )
    }

    /// A workbench login of a new user with `role`, to read pages and post forms as a browser
    /// does.
    pub(crate) fn workbench_session(&self, role: &str) -> Workbench<'_> {
        let name = format!("{role}-person");
        let password = "a long workbench passphrase";
        let added = self.add_user(&name, role, password);
        assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
        let browser = browser();
        let logged_in = self.log_in(&browser, &[("user", &name), ("password", password)]);
        let session = set_cookie(&logged_in, "scry_session")
            .and_then(|cookie| cookie.split(';').next().map(str::to_owned))
            .expect("a session");
        let mut workbench = Workbench {
            served: self,
            browser,
            session,
            csrf: String::new(),
        };
        let (_, page) = workbench.page("/");
        workbench.csrf = attribute_after(&page, "data-csrf=\"").expect("the anti-forgery value");
        workbench
    }

    /// Submits indicators as the analyst and waits until the worker has stored them all.
    pub(crate) fn submit_and_wait(&self, indicators: &[&str]) {
        let (status, body) = self.call(
            Method::POST,
            "/api/v1/indicators",
            &self.analyst,
            Some(json!({"indicators": indicators})),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        self.wait_for(|s| {
            let (_, list) = s.get("/api/v1/indicators?limit=1000", &s.viewer);
            list["items"].as_array().map_or(0, Vec::len) >= indicators.len()
        });
    }

    /// Polls `done` for up to 60 s.
    pub(crate) fn wait_for(&self, done: impl Fn(&Served) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(Instant::now() < deadline, "gave up waiting");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub(crate) fn scry_with(
    home: &Path,
    sandbox: &scry_sandbox::Sandbox,
    store: &str,
    args: &[&str],
) -> Command {
    let mut command = scry(home);
    command
        .env("CRIMINALIP_API_KEY", KEY)
        .env("CRIMINALIP_BASE_URL", sandbox.url())
        .args(["--store", store])
        .args(args);
    command
}

/// Public addresses the sandbox answers for (documentation ranges are not sent out).
pub(crate) fn addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("45.155.{}.{}", 200 + i / 200, 1 + i % 200))
        .collect()
}

/// The role each route of the OpenAPI document needs. A route missing here fails the test, so
/// none can be added without saying who may use it.
const ROUTE_ROLES: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/whoami", "viewer"),
    ("get", "/api/v1/indicators", "viewer"),
    ("post", "/api/v1/indicators", "analyst"),
    ("post", "/api/v1/indicators/upload", "analyst"),
    ("get", "/api/v1/uploads/{id}", "analyst"),
    ("post", "/api/v1/indicators/actions", "analyst"),
    ("get", "/api/v1/indicators/{indicator}", "viewer"),
    ("get", "/api/v1/indicators/{indicator}/stix", "viewer"),
    ("post", "/api/v1/indicators/{indicator}/enrich", "analyst"),
    ("get", "/api/v1/indicators/{indicator}/pivot", "viewer"),
    ("get", "/api/v1/rules", "viewer"),
    ("post", "/api/v1/rules/test", "analyst"),
    ("get", "/api/v1/history", "viewer"),
    ("get", "/api/v1/sources", "viewer"),
    ("get", "/api/v1/queue", "viewer"),
    ("get", "/api/v1/dashboard", "viewer"),
    ("get", "/api/v1/graph", "viewer"),
    ("get", "/api/v1/blocklists", "viewer"),
    ("get", "/api/v1/blocklists/{name}", "viewer"),
    ("get", "/api/v1/tokens", "admin"),
    ("post", "/api/v1/tokens", "admin"),
    ("delete", "/api/v1/tokens/{name}", "admin"),
];

#[test]
fn every_route_checks_the_role_of_its_token() {
    let served = Served::start("");
    served.submit_and_wait(&["45.155.205.233"]);
    let (status, doc) = served.get("/api/v1/openapi.json", "");
    assert_eq!(status, StatusCode::OK);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("methods").keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut listed: Vec<(String, String)> = ROUTE_ROLES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    listed.sort();
    assert_eq!(
        documented, listed,
        "the OpenAPI document and the role table disagree"
    );

    let rank = |role: &str| {
        ["viewer", "analyst", "admin"]
            .iter()
            .position(|r| *r == role)
            .expect("role")
    };
    let tokens = [
        ("viewer", &served.viewer),
        ("analyst", &served.analyst),
        ("admin", &served.admin),
    ];
    for (method, path, needed) in ROUTE_ROLES {
        let concrete = path.replace("{indicator}", "45.155.205.233").replace(
            "{name}",
            if path.contains("tokens") {
                "nobody"
            } else {
                "edl"
            },
        );
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let body = (method == Method::POST).then(|| json!({}));
        let (status, error) = served.call(method.clone(), &concrete, "", body.clone());
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {concrete} without a token: {error}"
        );
        assert_eq!(error["error"]["code"], "unauthenticated");
        let (status, _) = served.call(method.clone(), &concrete, "scry_0000", body.clone());
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {concrete} with a made-up token"
        );
        for (role, token) in tokens {
            let (status, error) = served.call(method.clone(), &concrete, token, body.clone());
            if rank(role) < rank(needed) {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {concrete} as {role}: {error}"
                );
                assert_eq!(error["error"]["code"], "forbidden");
            } else {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{method} {concrete} as {role} got {status}: {error}"
                );
            }
        }
    }
    // Public routes answer without a token; nothing else does.
    for path in [
        "/healthz",
        "/metrics",
        "/api/v1/openapi.json",
        "/edl/edl.txt",
    ] {
        assert_eq!(served.get(path, "").0, StatusCode::OK, "{path}");
    }
}

#[test]
fn tokens_are_stored_hashed_shown_once_and_revocable() {
    let served = Served::start("");
    let (status, me) = served.get("/api/v1/whoami", &served.analyst);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me, json!({"name": "ana", "role": "analyst"}));
    let (status, created) = served.call(
        Method::POST,
        "/api/v1/tokens",
        &served.admin,
        Some(json!({"name": "siem", "role": "viewer", "days": 30})),
    );
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(
        secret.starts_with("scry_") && secret.len() == 69,
        "{secret}"
    );
    assert_eq!(served.get("/api/v1/whoami", &secret).1["name"], "siem");
    let (_, list) = served.get("/api/v1/tokens", &served.admin);
    assert!(
        !list.to_string().contains(&secret[5..]),
        "a listing never shows a secret"
    );
    let siem = list
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "siem")
        .expect("listed");
    assert_eq!(siem["role"], "viewer");
    assert!(siem["expires_at"].as_i64().is_some());
    // The same name again is a conflict; a bad role or name is a field error.
    let again = served.call(
        Method::POST,
        "/api/v1/tokens",
        &served.admin,
        Some(json!({"name": "siem", "role": "viewer"})),
    );
    assert_eq!(
        (again.0, again.1["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("conflict"))
    );
    let bad = served.call(
        Method::POST,
        "/api/v1/tokens",
        &served.admin,
        Some(json!({"name": "x", "role": "root"})),
    );
    assert_eq!(
        (bad.0, bad.1["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("role"))
    );
    let bad = served.call(
        Method::POST,
        "/api/v1/tokens",
        &served.admin,
        Some(json!({"name": "a b", "role": "viewer"})),
    );
    assert_eq!(bad.1["error"]["field"], "name");
    // Revoked: refused at once.
    assert_eq!(
        served
            .call(Method::DELETE, "/api/v1/tokens/siem", &served.admin, None)
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        served.get("/api/v1/whoami", &secret).0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        served
            .call(Method::DELETE, "/api/v1/tokens/siem", &served.admin, None)
            .0,
        StatusCode::NOT_FOUND
    );
    // The database holds digests, never a secret.
    let db = std::fs::read(served.home.path().join("scry.db")).expect("the store file");
    for token in [&secret, &served.admin, &served.analyst, &served.viewer] {
        let secret_part = &token.as_bytes()[5..];
        assert!(
            !db.windows(secret_part.len()).any(|w| w == secret_part),
            "a secret is in the database"
        );
    }
    // `scry token list` shows the revocation, never a secret.
    let mut list = scry(served.home.path());
    list.args(["--store", &served.store, "token", "list"]);
    let out = run(list, b"");
    let shown = text(&out.stdout);
    assert!(
        shown.contains("siem") && shown.contains("revoked"),
        "{shown}"
    );
    assert!(!shown.contains(&secret[5..]));
}

#[test]
fn pages_follow_each_order_without_gaps_or_repeats() {
    let served = Served::start("");
    let ips = addresses(23);
    let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    served.submit_and_wait(&refs);
    for sort in [
        "priority",
        "-priority",
        "value",
        "-value",
        "last_changed",
        "-first_seen",
    ] {
        let mut seen: Vec<Value> = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/api/v1/indicators?limit=10&sort={sort}");
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", urlencode(a)));
            }
            let (status, page) = served.get(&path, &served.viewer);
            assert_eq!(status, StatusCode::OK, "{page}");
            pages += 1;
            seen.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
            assert!(pages < 10, "paging does not end");
        }
        assert_eq!(seen.len(), 23, "{sort}: every indicator once");
        let values: std::collections::BTreeSet<&str> = seen
            .iter()
            .map(|r| r["indicator"].as_str().expect("value"))
            .collect();
        assert_eq!(values.len(), 23, "{sort}: no repeats");
        let key = sort.trim_start_matches('-');
        let field = if key == "value" { "indicator" } else { key };
        let keys: Vec<&Value> = seen.iter().map(|r| &r[field]).collect();
        let ordered = keys.windows(2).all(|w| {
            let cmp = match (w[0].as_i64(), w[1].as_i64()) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => w[0].as_str().cmp(&w[1].as_str()),
            };
            if sort.starts_with('-') {
                cmp.is_ge()
            } else {
                cmp.is_le()
            }
        });
        assert!(ordered, "{sort}: {keys:?}");
    }
    // Filters narrow the rows; a cursor of one order is refused for another.
    let (_, high) = served.get(
        "/api/v1/indicators?min_priority=50&type=ipv4-addr",
        &served.viewer,
    );
    assert!(
        high["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| r["priority"].as_u64() >= Some(50))
    );
    let (_, first) = served.get("/api/v1/indicators?limit=5", &served.viewer);
    let next = first["next"].as_str().expect("a next page");
    let (status, error) = served.get(
        &format!("/api/v1/indicators?sort=value&after={}", urlencode(next)),
        &served.viewer,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["field"], "after");
    let (_, found) = served.get("/api/v1/indicators?q=155.200.1", &served.viewer);
    assert!(
        found["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| r["indicator"].as_str().expect("v").contains("155.200.1"))
    );
    assert!(!found["items"].as_array().expect("items").is_empty());
}

pub(crate) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[test]
fn bad_requests_get_one_error_shape_naming_what_is_wrong() {
    let served = Served::start("");
    let v = &served.viewer;
    let cases: &[(&str, StatusCode, &str, Option<&str>)] = &[
        (
            "/api/v1/indicators?limit=abc",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("limit"),
        ),
        (
            "/api/v1/indicators?limit=0",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("limit"),
        ),
        (
            "/api/v1/indicators?min_priority=90&max_priority=10",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("max_priority"),
        ),
        (
            "/api/v1/indicators?colour=red",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("colour"),
        ),
        (
            "/api/v1/indicators?type=ipv5",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("type"),
        ),
        (
            "/api/v1/indicators?sort=size",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("sort"),
        ),
        (
            "/api/v1/indicators?since=yesterday",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("since"),
        ),
        (
            "/api/v1/indicators?after=garbage",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("after"),
        ),
        (
            "/api/v1/indicators/not%20an%20indicator",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("indicator"),
        ),
        (
            "/api/v1/indicators/203.0.113.9",
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "/api/v1/history?kind=everything",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("kind"),
        ),
        (
            "/api/v1/blocklists/nope",
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "/api/v1/nothing-here",
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
    ];
    for (path, status, code, field) in cases {
        let (got, body) = served.get(path, v);
        assert_eq!(got, *status, "{path}: {body}");
        assert_eq!(body["error"]["code"], *code, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}"
        );
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], *field, "{path}: {body}");
        }
    }
    let a = &served.analyst;
    let post = |body: Value| served.call(Method::POST, "/api/v1/indicators", a, Some(body));
    let (status, body) = post(json!({"indicators": "8.8.8.8"}));
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_body")),
        "{body}"
    );
    assert_eq!(body["error"]["field"], "indicators", "{body}");
    let (_, body) = post(json!({"indicators": ["8.8.8.8"], "colour": 1}));
    assert_eq!(body["error"]["code"], "invalid_body", "{body}");
    let (_, body) = post(json!({"indicators": ["8.8.8.8\n1.1.1.1"]}));
    assert_eq!(body["error"]["field"], "indicators[0]", "{body}");
    let (_, body) = post(json!({"indicators": ["8.8.8.8"], "tlp": "purple"}));
    assert_eq!(body["error"]["field"], "tlp", "{body}");
    // Rejected entries are reported with their position, the rest still queued.
    let (status, body) =
        post(json!({"indicators": ["45.155.205.1", "no such thing", "45.155.205.2"]}));
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["queued"], 2, "{body}");
    assert_eq!(body["rejections"][0]["position"], "indicators[1]", "{body}");
    // Not JSON, or too large.
    let response = served.raw(
        served
            .client()
            .post(format!("{}/api/v1/indicators", served.base))
            .bearer_auth(a)
            .body("indicators=1"),
    );
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = served.raw(
        served
            .client()
            .post(format!("{}/api/v1/indicators", served.base))
            .bearer_auth(a)
            .header("content-type", "application/json")
            .body("{\"indicators\": ["),
    );
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let big = "45.155.205.233\n".repeat(80_000);
    let response = served.raw(
        served
            .client()
            .post(format!(
                "{}/api/v1/indicators/upload?name=big.txt",
                served.base
            ))
            .bearer_auth(a)
            .body(big),
    );
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = served.runtime.block_on(response.json()).expect("JSON");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (status, body) = served.call(Method::PUT, "/api/v1/indicators", a, None);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed"))
    );
    // Actions must name what is configured.
    let (status, body) = served.call(Method::POST, "/api/v1/indicators/actions", a,
        Some(json!({"indicators": ["45.155.205.233"], "actions": [{"do": "block", "list": "nowhere"}]})));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "actions[0]", "{body}");
    // Every response carries the security headers.
    let response = served.raw(served.client().get(format!("{}/healthz", served.base)));
    for header in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
    ] {
        assert!(response.headers().contains_key(header), "{header}");
    }
}

#[test]
fn the_openapi_document_describes_the_api() {
    let served = Served::start("");
    let (status, doc) = served.get("/api/v1/openapi.json", "");
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let errors = doc["components"]["schemas"]["ErrorBody"]["description"]
        .as_str()
        .expect("the error table");
    for code in [
        "unauthenticated",
        "forbidden",
        "invalid_parameter",
        "payload_too_large",
        "not_found",
    ] {
        assert!(errors.contains(code), "{code} in {errors}");
    }
    let list = &doc["paths"]["/api/v1/indicators"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    for name in [
        "type",
        "min_priority",
        "severity",
        "tag",
        "source",
        "status",
        "since",
        "q",
        "sort",
        "limit",
        "after",
    ] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    assert!(doc["paths"]["/api/v1/indicators"]["post"]["requestBody"].is_object());
    assert!(doc["components"]["schemas"]["IndicatorList"].is_object());
    // The indicator itself is typed, not a bare object.
    assert_eq!(
        doc["components"]["schemas"]["Indicator"]["properties"]["priority"]["type"],
        "integer"
    );
    if !scry_testkit::python_modules(
        &["openapi_spec_validator", "jsonschema"],
        "openapi-spec-validator==0.9.0",
    ) {
        return;
    }
    // Real answers, successes and errors, to be held to the document.
    served.submit_and_wait(&["45.155.205.233", "45.155.205.99"]);
    let (status, _) = served.call(
        Method::POST,
        "/api/v1/indicators/actions",
        &served.analyst,
        Some(json!({"indicators": ["45.155.205.233"], "actions": [{"do": "block", "list": "edl"}, {"do": "tag", "tag": "contract"}]})),
    );
    assert_eq!(status, StatusCode::ACCEPTED);
    served.wait_for(|s| {
        s.get("/api/v1/indicators/45.155.205.233", &s.viewer).1["workflow"]["labels"]
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t == "contract"))
    });
    let (viewer, analyst, admin) = (&served.viewer, &served.analyst, &served.admin);
    let cases: Vec<(Method, &str, String, &str, Option<Value>)> = vec![
        (
            Method::GET,
            "/api/v1/whoami",
            "/api/v1/whoami".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/whoami",
            "/api/v1/whoami".into(),
            "",
            None,
        ),
        (
            Method::GET,
            "/api/v1/indicators",
            "/api/v1/indicators?limit=5".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/indicators",
            "/api/v1/indicators?limit=nine".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/indicators/{indicator}",
            "/api/v1/indicators/45.155.205.233".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/indicators/{indicator}",
            "/api/v1/indicators/203.0.113.250".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/indicators/{indicator}/pivot",
            "/api/v1/indicators/45.155.205.233/pivot?by=subnet".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/rules",
            "/api/v1/rules".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/history",
            "/api/v1/history?limit=20".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/sources",
            "/api/v1/sources".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/queue",
            "/api/v1/queue".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/dashboard",
            "/api/v1/dashboard".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/graph",
            "/api/v1/graph?indicator=45.155.205.233".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/blocklists",
            "/api/v1/blocklists".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/blocklists/{name}",
            "/api/v1/blocklists/edl".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/blocklists/{name}",
            "/api/v1/blocklists/none".into(),
            viewer,
            None,
        ),
        (
            Method::GET,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            admin,
            None,
        ),
        (
            Method::GET,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            viewer,
            None,
        ),
        (
            Method::POST,
            "/api/v1/indicators",
            "/api/v1/indicators".into(),
            analyst,
            Some(json!({"indicators": ["45.155.205.100"]})),
        ),
        (
            Method::POST,
            "/api/v1/indicators",
            "/api/v1/indicators".into(),
            viewer,
            Some(json!({"indicators": ["45.155.205.100"]})),
        ),
        (
            Method::POST,
            "/api/v1/indicators",
            "/api/v1/indicators".into(),
            analyst,
            Some(json!({"indicator": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/rules/test",
            "/api/v1/rules/test".into(),
            analyst,
            Some(json!({"indicator": "45.155.205.233"})),
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            admin,
            Some(json!({"name": "contract", "role": "viewer"})),
        ),
        (
            Method::DELETE,
            "/api/v1/tokens/{name}",
            "/api/v1/tokens/contract".into(),
            admin,
            None,
        ),
        (
            Method::DELETE,
            "/api/v1/tokens/{name}",
            "/api/v1/tokens/contract".into(),
            admin,
            None,
        ),
    ];
    let mut answers = Vec::new();
    for (method, template, path, token, body) in cases {
        let (status, value) = served.call(method.clone(), &path, token, body);
        answers.push(
            json!({"method": method.as_str().to_lowercase(), "template": template,
            "path": path, "status": status.as_u16(), "body": value}),
        );
    }
    // A body of another media type: 415.
    let response = served.raw(
        served
            .client()
            .post(format!("{}/api/v1/indicators", served.base))
            .bearer_auth(&served.analyst)
            .header("content-type", "application/xml")
            .body("<indicators/>"),
    );
    let status = response.status().as_u16();
    let body: Value = served.runtime.block_on(response.json()).expect("json");
    answers.push(json!({"method": "post", "template": "/api/v1/indicators",
        "path": "/api/v1/indicators", "status": status, "body": body}));
    let statuses: std::collections::BTreeSet<u64> = answers
        .iter()
        .filter_map(|a| a["status"].as_u64())
        .collect();
    for expected in [200, 201, 202, 204, 400, 401, 403, 404, 415] {
        assert!(
            statuses.contains(&expected),
            "{expected} among {statuses:?}"
        );
    }
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

doc, answers = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
validate(doc)
problems, checked = [], 0
for a in answers:
    operation = doc["paths"].get(a["template"], {}).get(a["method"])
    if operation is None:
        problems.append(f"{a['method']} {a['template']}: not in the document")
        continue
    response = operation["responses"].get(str(a["status"]))
    if response is None:
        problems.append(f"{a['method']} {a['path']}: {a['status']} is not documented")
        continue
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if a["status"] == 204:
        continue
    if schema is None:
        problems.append(f"{a['method']} {a['path']}: {a['status']} has no JSON schema")
        continue
    validator = Draft202012Validator({**doc, **schema})
    for error in validator.iter_errors(a["body"]):
        problems.append(f"{a['method']} {a['path']} {a['status']}: {error.json_path}: {error.message}")
    checked += 1
print(json.dumps({"checked": checked, "problems": problems}))
"#;
    let dir = tempfile::tempdir().expect("dir");
    let doc_path = dir.path().join("openapi.json");
    let answers_path = dir.path().join("answers.json");
    std::fs::write(&doc_path, doc.to_string()).expect("doc");
    std::fs::write(&answers_path, Value::Array(answers.clone()).to_string()).expect("answers");
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&doc_path)
        .arg(&answers_path)
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("a report");
    assert_eq!(report["problems"], json!([]), "{report:#}");
    // Every answer but the 204s was checked against a schema.
    let with_body = answers.iter().filter(|a| a["status"] != 204).count();
    assert_eq!(report["checked"], with_body, "{report}");
}

#[test]
fn analysts_act_through_the_queue_and_firewalls_poll_the_blocklist() {
    let served = Served::start("");
    served.submit_and_wait(&["45.155.205.233", "45.155.205.99"]);
    let (status, body) = served.call(Method::POST, "/api/v1/indicators/actions", &served.analyst,
        Some(json!({"indicators": ["45.155.205.233"], "actions": [{"do": "block", "list": "edl"}, {"do": "set-status", "status": "investigating"}, {"do": "tag", "tag": "campaign-x"}]})));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["queued"], 3);
    served.wait_for(|s| {
        s.get("/edl/edl.txt", "")
            .1
            .as_str()
            .is_some_and(|t| t.contains("45.155.205.233"))
    });
    let response = served.raw(served.client().get(format!("{}/edl/edl", served.base)));
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    assert_eq!(
        served.runtime.block_on(response.text()).expect("text"),
        "45.155.205.233\n"
    );
    // If-None-Match as RFC 9110 has it: the tag itself, its weak form (as proxies and firewalls
    // send it), `*`, or a list holding it; any other tag gets the list again.
    for (sent, expected) in [
        (etag.clone(), StatusCode::NOT_MODIFIED),
        (format!("W/{etag}"), StatusCode::NOT_MODIFIED),
        ("*".to_owned(), StatusCode::NOT_MODIFIED),
        (format!("\"other\", W/{etag}"), StatusCode::NOT_MODIFIED),
        ("\"other\"".to_owned(), StatusCode::OK),
    ] {
        let again = served.raw(
            served
                .client()
                .get(format!("{}/edl/edl.txt", served.base))
                .header("if-none-match", &sent),
        );
        assert_eq!(again.status(), expected, "If-None-Match: {sent}");
    }
    // The indicator's page and detail say which blocklists it is on.
    let (_, detail) = served.get("/api/v1/indicators/45.155.205.233", &served.viewer);
    assert_eq!(detail["blocklists"], json!(["edl"]), "{detail}");
    let (_, page) = served
        .workbench_session("viewer")
        .page("/indicator/45.155.205.233");
    assert!(
        page.contains("id=\"blocked-on\">On blocklist <a href=\"/blocklists#edl\">edl</a>"),
        "the page says it is blocked"
    );
    // The queue's top reason names its signal and points.
    let (_, list) = served.get("/api/v1/indicators?limit=10", &served.viewer);
    let top = list["items"][0]["top_reason"]
        .as_str()
        .expect("a top reason");
    assert!(
        top.contains(": ") && top.ends_with(')') && top.contains("(+"),
        "{top}"
    );
    // The workflow state shows in the list and the detail, and filters the list (once the last
    // of the three actions, the tag, has run).
    served.wait_for(|s| {
        ["status=investigating", "tag=campaign-x"]
            .iter()
            .all(|filter| {
                s.get(&format!("/api/v1/indicators?{filter}"), &s.viewer).1["items"]
                    .as_array()
                    .is_some_and(|a| a.len() == 1)
            })
    });
    let (_, tagged) = served.get("/api/v1/indicators?tag=campaign-x", &served.viewer);
    assert_eq!(
        tagged["items"][0]["indicator"], "45.155.205.233",
        "{tagged}"
    );
    let (_, detail) = served.get("/api/v1/indicators/45.155.205[.]233", &served.viewer);
    assert_eq!(detail["workflow"]["status"], "investigating", "{detail}");
    assert!(
        detail["report_url"]
            .as_str()
            .is_some_and(|u| u.contains("criminalip")),
        "{detail}"
    );
    // The history names who asked.
    let (_, history) = served.get(
        "/api/v1/history?indicator=45.155.205.233&kind=action",
        &served.viewer,
    );
    let rules: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["rule"].as_str())
        .collect();
    assert!(
        rules.iter().all(|r| *r == "manual:ana") && rules.len() == 3,
        "{history}"
    );
    // A dry run of the rules changes nothing; the STIX bundle and pivots answer.
    let (status, verdicts) = served.call(
        Method::POST,
        "/api/v1/rules/test",
        &served.analyst,
        Some(json!({"indicator": "45.155.205.233"})),
    );
    assert_eq!(status, StatusCode::OK, "{verdicts}");
    let response = served.raw(
        served
            .client()
            .get(format!(
                "{}/api/v1/indicators/45.155.205.233/stix",
                served.base
            ))
            .bearer_auth(&served.viewer),
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/stix+json;version=2.1"
    );
    let bundle: Value = served.runtime.block_on(response.json()).expect("bundle");
    assert_eq!(bundle["type"], "bundle");
    let (status, pivot) = served.get(
        "/api/v1/indicators/45.155.205.233/pivot?by=subnet",
        &served.viewer,
    );
    assert_eq!(status, StatusCode::OK, "{pivot}");
    assert_eq!(pivot["items"][0]["indicator"], "45.155.205.99", "{pivot}");
    // Metrics count requests and read the queue and the sources' calls from the store: the text
    // format 0.0.4 unless OpenMetrics is preferred, as Prometheus asks for it.
    let scrape = |accept: Option<&str>| {
        let mut request = served.client().get(format!("{}/metrics", served.base));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = served.raw(request);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body = served.runtime.block_on(response.text()).expect("text");
        (content_type, body)
    };
    let (content_type, metrics) = scrape(None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (plain_type, _) = scrape(Some("text/plain"));
    assert_eq!(plain_type, content_type);
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (open_type, openmetrics) = scrape(Some(prometheus_accept));
    assert_eq!(
        open_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(!metrics.contains("# EOF"), "{metrics}");
    for line in [
        "scry_http_requests_total{method=\"POST\",route=\"/api/v1/indicators/actions\",status=\"202\"} 1",
        "scry_jobs{state=\"done\"}",
        "scry_source_calls_total{source=\"criminalip\",outcome=\"paid\"}",
        "scry_vendor_requests_total{source=\"criminalip\",outcome=\"ok\"}",
        "scry_vendor_retries_total{source=\"criminalip\"} 0",
        "scry_vendor_request_duration_seconds_bucket{le=\"0.005\",source=\"criminalip\"}",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
        assert!(openmetrics.contains(line), "{line} in\n{openmetrics}");
    }
    // In the text format a counter's HELP and TYPE name its samples; in OpenMetrics, its family.
    assert!(
        metrics.contains("# TYPE scry_credits_spent_total counter"),
        "{metrics}"
    );
    assert!(
        openmetrics.contains("# TYPE scry_credits_spent counter"),
        "{openmetrics}"
    );
    // One latency sample per request the vendor answered, and as many as requests counted.
    let number = |text: &str, prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{prefix} in\n{text}"))
    };
    let count = number(
        &metrics,
        "scry_vendor_request_duration_seconds_count{source=\"criminalip\"} ",
    );
    let requests = number(
        &metrics,
        "scry_vendor_requests_total{source=\"criminalip\",outcome=\"ok\"} ",
    );
    assert!(count > 0 && count == requests, "{metrics}");
    // Prometheus's own checker reads it without a complaint (HELP on every family, counters
    // ending in `_total`, base units).
    if let Some([promtool]) = scry_testkit::programs(
        ["promtool"],
        "Prometheus's promtool: `apt-get download prometheus && dpkg -x prometheus_*.deb root` puts it in root/usr/bin",
    ) {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool starts");
        use std::io::Write as _;
        check
            .stdin
            .take()
            .expect("stdin")
            .write_all(metrics.as_bytes())
            .expect("metrics written");
        let checked = check.wait_with_output().expect("promtool ends");
        assert!(
            checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
            "promtool check metrics: {}\n{}{}\n{metrics}",
            checked.status,
            text(&checked.stdout),
            text(&checked.stderr)
        );
    }
}

/// Each blocklist holds one type of entry in its firewall's form (PAN-OS URLs without their
/// scheme), a block the list cannot hold is refused and recorded, and a list past its cap
/// serves the newest entries and says how many it left out.
#[test]
fn typed_blocklists_serve_one_type_in_the_vendors_form_within_a_cap() {
    let served = Served::start(
        "[automation.blocklists.pan_ip]\ntype = \"ip\"\nvendor = \"pan-os\"\nmax_entries = 2\n\n\
         [automation.blocklists.pan_url]\ntype = \"url\"\nvendor = \"pan-os\"\n\n\
         [automation.blocklists.forti_url]\ntype = \"url\"\nvendor = \"fortigate\"\n",
    );
    let ips = ["45.155.205.233", "45.155.205.99", "193.32.162.159"];
    let urls = [
        "https://login-micros0ft-365.com/owa/auth/logon.aspx",
        "http://paypal-account-verify.info/signin?session=8f3a",
    ];
    let domain = "secure-update.xyz";
    let all: Vec<&str> = ips.iter().chain(&urls).chain([&domain]).copied().collect();
    served.submit_and_wait(&all);
    // Blocked one after the other, so "newest" is well defined: the last IP is the newest.
    for indicator in &all {
        let (status, body) = served.call(
            Method::POST,
            "/api/v1/indicators/actions",
            &served.analyst,
            Some(json!({"indicators": [indicator], "actions": [
                {"do": "block", "list": "pan_ip"}, {"do": "block", "list": "pan_url"},
                {"do": "block", "list": "forti_url"}, {"do": "block", "list": "edl"}]})),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        served.wait_for(|s| {
            let (_, history) = s.get(
                &format!(
                    "/api/v1/history?indicator={}&kind=action",
                    urlencode(indicator)
                ),
                &s.viewer,
            );
            history["items"].as_array().map_or(0, Vec::len) >= 4
        });
    }
    let edl = |name: &str| {
        let (status, body) = served.get(&format!("/edl/{name}.txt"), "");
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_str().expect("text").to_owned()
    };
    // The cap of 2 keeps the two newest IPs; no domain or URL in an IP list.
    assert_eq!(edl("pan_ip"), "193.32.162.159\n45.155.205.99\n");
    assert_eq!(
        edl("pan_url"),
        "login-micros0ft-365.com/owa/auth/logon.aspx\npaypal-account-verify.info/signin?session=8f3a\n"
    );
    assert_eq!(edl("forti_url"), format!("{}\n{}\n", urls[1], urls[0]));
    // The untyped list holds everything, as before.
    assert_eq!(edl("edl").lines().count(), all.len());
    // The summary says what each list left out and why.
    let (_, lists) = served.get("/api/v1/blocklists", &served.viewer);
    let pan_ip = lists
        .as_array()
        .expect("lists")
        .iter()
        .find(|l| l["name"] == "pan_ip")
        .expect("pan_ip")
        .clone();
    assert_eq!(pan_ip["entries"], 3, "{pan_ip}");
    assert_eq!(pan_ip["served"], 2, "{pan_ip}");
    assert_eq!(pan_ip["left_out_over_cap"], 1, "{pan_ip}");
    assert_eq!(pan_ip["entry_type"], "ip", "{pan_ip}");
    assert!(
        pan_ip["warning"]
            .as_str()
            .is_some_and(|w| w.contains("1 entries left out") && w.contains("PAN-OS")),
        "{pan_ip}"
    );
    // The refused blocks are in the history, saying why.
    let (_, history) = served.get(
        &format!("/api/v1/history?indicator={domain}&kind=action"),
        &served.viewer,
    );
    let refusals: Vec<String> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["detail"].to_string())
        .filter(|d| d.contains("not added"))
        .collect();
    assert_eq!(refusals.len(), 3, "{history}");
    assert!(
        refusals
            .iter()
            .any(|d| d
                .contains("secure-update.xyz is a domain and blocklist pan_ip holds ip entries")),
        "{refusals:?}"
    );
    // A list for a firewall that reads one type must say which.
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join("scry.toml"),
        "[automation.blocklists.fw]\nvendor = \"pan-os\"\n",
    )
    .expect("config");
    let mut check = scry(home.path());
    check.current_dir(home.path()).args(["config", "check"]);
    let output = run(check, b"");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr)
            .contains("[automation.blocklists.fw] a PAN-OS list holds one type of entry"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn taxii_clients_page_through_collections_of_valid_stix() {
    if !scry_testkit::python_modules(
        &["taxii2client", "stix2validator"],
        "taxii2-client==2.3.0 stix2-validator==3.3.2",
    ) {
        return;
    }
    let served = Served::start("");
    let ips = addresses(12);
    let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    served.submit_and_wait(&refs);
    let script = r#"
import json, sys
from taxii2client.v21 import Server, as_pages

base, token, dump = sys.argv[1], sys.argv[2], sys.argv[3]
server = Server(base + "/taxii2/", user="taxii", password=token)
root = server.api_roots[0]
out = {"title": server.title, "root": root.title, "versions": root.versions, "collections": {}}
served = []
for collection in root.collections:
    objects, pages = [], 0
    for page in as_pages(collection.get_objects, per_request=7):
        pages += 1
        objects.extend(page.get("objects", []))
    served.extend(objects)
    manifest = collection.get_manifest()
    first = objects[0]["id"] if objects else None
    one = collection.get_object(first)["objects"] if first else []
    versions = collection.object_versions(first)["versions"] if first else []
    indicators = collection.get_objects(**{"type": "indicator"}).get("objects", [])
    out["collections"][collection.title] = {
        "id": collection.id, "objects": len(objects),
        "paged_indicators": [o["id"] for o in objects if o["type"] == "indicator"],
        "pages": pages, "manifest": len(manifest.get("objects", [])),
        "one": [o["id"] for o in one], "first": first, "versions": versions,
        "indicators": len(indicators), "can_write": collection.can_write,
    }
json.dump(served, open(dump, "w"))
print(json.dumps(out))
"#;
    let dump = served.home.path().join("taxii-objects.json");
    let output = Command::new("python3")
        .args(["-c", script, &served.base, &served.viewer])
        .arg(&dump)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the OASIS TAXII client failed (install taxii2-client and stix2-validator; .ci/run does): {}",
        text(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        report["versions"],
        json!(["application/taxii+json;version=2.1"])
    );
    let all = &report["collections"]["Enriched indicators"];
    let (checked, problems, _) = super::oasis_strict(&dump).expect("checked above");
    assert!(checked > 12, "{checked} objects served");
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(all["indicators"], 12, "{all}");
    assert!(
        all["objects"].as_u64() > Some(12) && all["pages"].as_u64() > Some(2),
        "{all}"
    );
    // Each indicator comes once across the pages; the objects indicators share (identities,
    // markings, networks) come with each page that refers to them, so every page stands alone.
    let paged = all["paged_indicators"].as_array().expect("ids");
    let unique: std::collections::BTreeSet<&str> = paged.iter().filter_map(Value::as_str).collect();
    assert_eq!((paged.len(), unique.len()), (12, 12), "{all}");
    assert_eq!(all["one"], json!([all["first"].clone()]), "{all}");
    assert_eq!(all["versions"].as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all["can_write"], false);
    assert!(
        report["collections"]["Blocklist edl"].is_object(),
        "{report}"
    );
    // Without a token, or asking for another media type: TAXII errors.
    let response = served.raw(served.client().get(format!("{}/taxii2/", served.base)));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["content-type"],
        "application/taxii+json;version=2.1"
    );
    let response = served.raw(
        served
            .client()
            .get(format!("{}/taxii2/", served.base))
            .bearer_auth(&served.viewer)
            .header("accept", "text/html"),
    );
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    let collection = all["id"].as_str().expect("id");
    let (status, page) = served.get(
        &format!("/taxii2/api/collections/{collection}/objects/?added_after=2999-01-01T00:00:00Z"),
        &served.viewer,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, json!({"more": false}));
    let (status, _) = served.get(
        &format!("/taxii2/api/collections/{collection}/objects/?limit=x"),
        &served.viewer,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A filter or parameter the server does not know is ignored (TAXII 2.1, 3.5), not answered
/// 400: the same page comes back as without it. A known parameter with a bad value is still an
/// error, as a TAXII error object.
#[test]
fn taxii_ignores_parameters_it_does_not_know_and_errs_in_its_own_shape() {
    let served = Served::start("");
    served.submit_and_wait(&["45.155.205.233", "193.32.162.159"]);
    let (status, collections) = served.get("/taxii2/api/collections/", &served.viewer);
    assert_eq!(status, StatusCode::OK, "{collections}");
    let id = collections["collections"][0]["id"]
        .as_str()
        .expect("a collection")
        .to_owned();
    let objects = format!("/taxii2/api/collections/{id}/objects/");
    let (status, plain) = served.get(&objects, &served.viewer);
    assert_eq!(status, StatusCode::OK);
    assert!(
        plain["objects"].as_array().is_some_and(|o| !o.is_empty()),
        "the positive control: {plain}"
    );
    for extra in [
        "?_=1733390000",
        "?match[relationship_type]=indicates",
        "?foo=bar&limit=1000",
    ] {
        let (status, page) = served.get(&format!("{objects}{extra}"), &served.viewer);
        assert_eq!(status, StatusCode::OK, "{extra}: {page}");
        assert_eq!(page["objects"], plain["objects"], "{extra}");
    }
    let (status, error) = served.get(&format!("{objects}?limit=x"), &served.viewer);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["title"].is_string() && error["http_status"] == "400",
        "{error}"
    );
    // Under /taxii2/ every error is a TAXII error object with the TAXII media type: an unknown
    // resource, and a method the resource does not serve.
    for (method, path, expected) in [
        (
            Method::GET,
            "/taxii2/nothing/".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            objects.clone(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::DELETE,
            "/taxii2/api/collections/".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let response = served.raw(
            served
                .client()
                .request(method.clone(), format!("{}{path}", served.base))
                .bearer_auth(&served.viewer),
        );
        assert_eq!(response.status(), expected, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/taxii+json;version=2.1",
            "{method} {path}"
        );
        let error: Value = served.runtime.block_on(response.json()).expect("JSON");
        assert_eq!(
            error["http_status"],
            expected.as_u16().to_string(),
            "{method} {path}: {error}"
        );
        assert!(
            error["title"].is_string() && error.get("error").is_none(),
            "{error}"
        );
    }
}

/// A client that behaves as a browser does with redirects here: it shows them instead of
/// following them, so a test sees where a form leads.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The text between `before` and the next `"` in `page`: a value written into an attribute.
pub(crate) fn attribute_after(page: &str, before: &str) -> Option<String> {
    page.split(before)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

/// The value of `name` in a response's `Set-Cookie` headers, with the attributes.
pub(crate) fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

#[test]
fn pages_need_a_login_and_forms_their_anti_forgery_value() {
    let served = Served::start("");
    let browser = browser();
    let base = served.base.clone();
    let send = |request: reqwest::RequestBuilder| served.raw(request);
    let body =
        |response: reqwest::Response| served.runtime.block_on(response.text()).expect("body");

    // Without a session every page leads to the login page, and back after it.
    let response = send(browser.get(format!("{base}/dashboard")));
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login?next=%2Fdashboard");

    // Local users: added with a password read from stdin, too short refused.
    let add = |name: &str, role: &str, password: &str| served.add_user(name, role, password);
    let short = add("eve", "viewer", "short");
    assert_eq!(short.status.code(), Some(2), "{}", text(&short.stderr));
    assert!(text(&short.stderr).contains("at least 12 characters"));
    let added = add("bob", "viewer", "a long enough passphrase");
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let db = std::fs::read(served.home.path().join("scry.db")).expect("the store file");
    assert!(
        !db.windows(10).any(|w| w == b"a long eno"),
        "a password is in the database"
    );

    let log_in = |form: &[(&str, &str)]| served.log_in(&browser, form);
    let wrong = log_in(&[
        ("user", "bob"),
        ("password", "not the passphrase"),
        ("next", "/"),
    ]);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(body(wrong).contains("Unknown user or wrong password"));
    let nobody = log_in(&[
        ("user", "mallory"),
        ("password", "a long enough passphrase"),
    ]);
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    let ok = log_in(&[
        ("user", "bob"),
        ("password", "a long enough passphrase"),
        ("next", "//evil.example/"),
    ]);
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/", "never off this server");
    let cookie = set_cookie(&ok, "scry_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let bob = cookie.split(';').next().expect("name=value").to_owned();
    let page = body(send(browser.get(format!("{base}/")).header("cookie", &bob)));
    assert!(page.contains("bob") && page.contains("(viewer)"), "{page}");
    let csrf =
        attribute_after(&page, "data-csrf=\"").expect("the page carries its anti-forgery value");
    // A viewer may look but not submit.
    let submit = send(
        browser
            .post(format!("{base}/ui/submit"))
            .header("cookie", &bob)
            .form(&[("csrf", csrf.as_str()), ("indicators", "45.155.205.233")]),
    );
    assert_eq!(submit.status(), StatusCode::FORBIDDEN);

    // An analyst's session: forms and API calls need the anti-forgery value.
    let ok = log_in(&[("token", served.analyst.as_str())]);
    let ana = set_cookie(&ok, "scry_session")
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let page = body(send(browser.get(format!("{base}/")).header("cookie", &ana)));
    let csrf = attribute_after(&page, "data-csrf=\"").expect("csrf");
    let forged = send(
        browser
            .post(format!("{base}/ui/submit"))
            .header("cookie", &ana)
            .form(&[("indicators", "45.155.205.233")]),
    );
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(body(forged).contains("anti-forgery"));
    let submitted = send(
        browser
            .post(format!("{base}/ui/submit"))
            .header("cookie", &ana)
            .form(&[
                ("csrf", csrf.as_str()),
                ("indicators", "45.155.205.233 and 45.155.205.99"),
            ]),
    );
    assert_eq!(submitted.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie(&submitted, "scry_flash")
            .is_some_and(|c| c.contains("2%20queued") || c.contains("2+queued"))
    );
    let api = |csrf: Option<&str>| {
        let mut request = browser
            .post(format!("{base}/api/v1/indicators"))
            .header("cookie", &ana)
            .json(&json!({"indicators": ["45.155.205.7"]}));
        if let Some(value) = csrf {
            request = request.header("x-csrf-token", value);
        }
        send(request)
    };
    let refused = api(None);
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused: Value = served.runtime.block_on(refused.json()).expect("JSON");
    assert_eq!(refused["error"]["code"], "csrf");
    assert_eq!(api(Some(&csrf)).status(), StatusCode::ACCEPTED);

    // Logging out ends the session on the server, not only in the browser.
    let out = send(
        browser
            .post(format!("{base}/logout"))
            .header("cookie", &ana)
            .form(&[("csrf", csrf.as_str())]),
    );
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = send(browser.get(format!("{base}/")).header("cookie", &ana));
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    // Revoking a user ends their sessions too.
    let mut revoke = scry(served.home.path());
    revoke.args(["--store", &served.store, "user", "revoke", "bob"]);
    assert_eq!(run(revoke, b"").status.code(), Some(0));
    let after = send(browser.get(format!("{base}/")).header("cookie", &bob));
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
}

/// The workbench's links to an indicator lead to its page for every kind, URLs (with their `/`,
/// `?` and `&`) included, and the page's own forms post to where they are served.
#[test]
fn links_to_every_kind_of_indicator_lead_to_its_page() {
    let served = Served::start("");
    let url = "http://paypal-account-verify.info/signin?session=8f3a&next=/a";
    served.submit_and_wait(&["45.155.205.233", "secure-update.xyz", url, "10.0.0.1"]);
    let workbench = served.workbench_session("viewer");
    let page = |path: &str| workbench.page(path);
    let (status, queue) = page("/");
    assert_eq!(status, StatusCode::OK);
    // A skipped row says why it was skipped.
    let (_, private) = served.get("/api/v1/indicators?q=10.0.0.1", &served.viewer);
    let reason = private["items"][0]["skip_reason"]
        .as_str()
        .expect("a skip reason")
        .to_owned();
    assert!(
        queue.contains(&format!("(skipped: {reason})")),
        "the queue says why 10.0.0.1 was skipped"
    );
    let links: Vec<String> = queue
        .split("href=\"/indicator/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        // As a browser reads the attribute: HTML character references decoded.
        .map(|path| {
            format!(
                "/indicator/{}",
                path.replace("&#x2f;", "/").replace("&amp;", "&")
            )
        })
        .collect();
    assert_eq!(links.len(), 4, "{links:?}");
    for link in &links {
        let (status, body) = page(link);
        assert_eq!(status, StatusCode::OK, "{link}");
        assert!(body.contains("id=\"indicator-value\""), "{link}");
    }
    let (_, url_page) = page(
        links
            .iter()
            .find(|l| l.contains("paypal"))
            .expect("the URL's link"),
    );
    assert!(
        url_page
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
            .contains(&format!("<h1 id=\"indicator-value\">{url}</h1>")),
        "the URL's page shows it"
    );
}

/// A status is one of a fixed, documented set, wherever it is set: the API refuses another
/// (naming the nearest), the workbench says why on the queue the analyst came from (its filters
/// kept) instead of a bare error page, and `scry rules check` points at a rule that sets one.
#[test]
fn statuses_come_from_a_fixed_set_and_refusals_return_to_the_queue() {
    let served = Served::start("");
    served.submit_and_wait(&["45.155.205.233"]);
    let (status, body) = served.call(
        Method::POST,
        "/api/v1/indicators/actions",
        &served.analyst,
        Some(json!({"indicators": ["45.155.205.233"], "actions": [{"do": "set-status", "status": "investigatin"}]})),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("did you mean \"investigating\"") && message.contains("false-positive"),
        "{message}"
    );
    let workbench = served.workbench_session("analyst");
    let back = "/?severity=critical&sort=-last_changed";
    let post = |action: &str, value: &str| {
        let response = workbench.act(&[
            ("indicator", "45.155.205.233"),
            ("action", action),
            ("value", value),
            ("back", back),
        ]);
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{action} {value:?}"
        );
        let location = response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let flash = set_cookie(&response, "scry_flash").unwrap_or_default();
        (
            location,
            url::form_urlencoded::parse(flash.split(';').next().unwrap_or("").as_bytes())
                .map(|(k, v)| format!("{k}{v}"))
                .collect::<String>(),
        )
    };
    for (action, value, said) in [
        ("status", "bogus status!!", "is not a status"),
        ("tag", "", "say which tag"),
        ("priority", "300", "is not a priority from 0 to 100"),
    ] {
        let (location, flash) = post(action, value);
        assert_eq!(location, back, "{action}: back to the queue as it was");
        assert!(
            flash.contains("Not done") && flash.contains(said),
            "{action}: {flash}"
        );
    }
    // Nothing was queued by the refusals; a good status is, and the queue keeps its filters.
    let (location, flash) = post("status", "false-positive");
    assert_eq!(location, back);
    assert!(flash.contains("1 queued"), "{flash}");
    served.wait_for(|s| {
        s.get("/api/v1/indicators/45.155.205.233", &s.viewer).1["workflow"]["status"]
            == "false-positive"
    });
    let (_, history) = served.get(
        "/api/v1/history?indicator=45.155.205.233&kind=action",
        &served.viewer,
    );
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );

    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[[rules]]\nname = \"triage\"\non = [\"created\"]\nactions = [{ do = \"set-status\", status = \"triaged\" }]\n",
    )
    .expect("config");
    let check = super::run_args(home.path(), &["rules", "check"], b"");
    assert_eq!(check.status.code(), Some(2), "{}", text(&check.stderr));
    assert!(
        text(&check.stderr)
            .contains("rule \"triage\": action 1 (set-status): \"triaged\" is not a status"),
        "{}",
        text(&check.stderr)
    );
}

/// The dashboard's counts are exact however many indicators there are: at 15,500 (above every
/// list size and the old 10,000 cap) each figure equals what the stored records say, and each
/// widget links to the queue it counts.
#[test]
fn dashboard_counts_are_exact_above_every_cap() {
    const STORED: u32 = 15_500;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("dashboard.db").display());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    const HOUR: i64 = 3_600_000;
    let records: Vec<scry_store::IndicatorRecord> = (0..STORED)
        .map(|i| {
            let value = format!("45.{}.{}.{}", 10 + i / 65_536, (i / 256) % 256, i % 256);
            let observable = scry_core::Observable::parse(&value).expect("an address");
            // Most at or above 80 (more than the old cap of 10,000), the rest spread below.
            let priority = if i % 10 == 0 {
                (i / 10 % 60) as u8
            } else {
                (75 + i * 7 % 26) as u8
            };
            scry_store::IndicatorRecord {
                stix_id: scry_stix::observable_id(&observable),
                kind: "ipv4-addr".into(),
                value,
                priority,
                severity: scry_core::Severity::from_priority(priority).as_str().into(),
                enrichment_status: "enriched".into(),
                skip_reason: None,
                tlp: None,
                tags: Vec::new(),
                reasons: json!([]),
                sources: json!({}),
                // Whole hours and a half back, so the 24-hour line falls between two of them.
                observed_at: now - i64::from(i % 48) * HOUR - HOUR / 2,
                facets: Vec::new(),
            }
        })
        .collect();
    let high = 80_u8;
    let expected_high = records.iter().filter(|r| r.priority >= high).count() as u64;
    let expected_new = records
        .iter()
        .filter(|r| r.priority >= high && r.observed_at >= now - 24 * HOUR)
        .count() as u64;
    assert!(
        expected_high > 1_000 && expected_new > 100,
        "a test of counts, not lists"
    );
    runtime().block_on(async {
        let store = scry_store::open(&url).await.expect("the store");
        store.save_indicators(&records).await.expect("saved");
    });
    let served = Served::start_on(Some(&url), "", "");
    let (status, dashboard) = served.get("/api/v1/dashboard", &served.viewer);
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    assert_eq!(dashboard["indicators"], u64::from(STORED));
    assert_eq!(dashboard["high_priority"], high);
    assert_eq!(dashboard["high_priority_count"], expected_high);
    assert_eq!(dashboard["new_high_priority_count"], expected_new);
    for severity in ["critical", "high", "medium", "low", "info"] {
        let expected = records.iter().filter(|r| r.severity == severity).count() as u64;
        let shown = dashboard["by_severity"]
            .as_array()
            .expect("severities")
            .iter()
            .find(|c| c["name"] == severity)
            .map(|c| c["count"].clone());
        assert_eq!(shown, Some(json!(expected)), "{severity}");
    }
    let (_, page) = served.workbench_session("viewer").page("/dashboard");
    assert!(
        page.contains(&format!(
            "href=\"/?min_priority={high}\" id=\"high-tile\"><span class=\"n\">{expected_high}</span>"
        )),
        "the high-priority tile counts and links"
    );
    assert!(
        page.contains(&format!("id=\"new-high\">{expected_new}</span>")),
        "the new high-priority tile counts"
    );
}
