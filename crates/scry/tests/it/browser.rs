//! The workbench in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver), against `scry serve` with a sandbox behind it. An analyst logs in, submits
//! indicators, sees them enriched, sorts the queue, opens an indicator, expands its graph, dry-runs
//! the rules, tags from the queue, watches a live notification arrive and reads the dashboard.
//! Screenshots of the main pages go to `target/screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::serve::Served;
use super::workspace;

const PASSWORD: &str = "correct horse battery staple";

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver and Chromium from `PATH`, or `None` (the test skipped; failed under `CI=true`).
fn start_driver() -> Option<Driver> {
    let [chromium, chromedriver] = scry_testkit::programs(
        ["chromium", "chromedriver"],
        "apt-get install chromium chromium-driver (.ci/run does)",
    )?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(chromedriver)
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver {
        child,
        port,
        chromium,
    })
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": driver.chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--window-size=1400,2400", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

fn screenshots() -> PathBuf {
    let dir = workspace().join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write the screenshot");
}

/// The text of the element `css` selects, waiting up to 20 s for it (a form's page may still be
/// loading).
async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Runs `script` (a function body returning a value) until `done` holds of its result, for up
/// to 60 s, reloading the page between tries when `reload` is set.
async fn wait_until(
    client: &Client,
    script: &str,
    reload: bool,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = client
            .execute(script, vec![])
            .await
            .expect("the script runs");
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting on {script}: last {value}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        if reload {
            client.refresh().await.expect("reload");
        }
    }
}

/// Clicks what `locator` finds and waits until the page it leads to has loaded.
async fn click_through(client: &Client, locator: Locator<'_>) {
    client
        .execute("window.scryPageBefore = true;", vec![])
        .await
        .expect("mark the page");
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(locator)
        .await
        .expect("the element")
        .click()
        .await
        .expect("click");
    wait_until(
        client,
        "return !window.scryPageBefore && document.readyState === 'complete'",
        false,
        |loaded| loaded == &Value::Bool(true),
    )
    .await;
}

const ROWS: &str = "return Array.from(document.querySelectorAll('#queue tbody tr[data-indicator]')).map(r => ({indicator: r.dataset.indicator, priority: Number(r.dataset.priority), report: !!r.querySelector('a[href*=criminalip]')}))";

#[test]
fn an_analyst_works_the_queue_in_the_browser() {
    let Some(driver) = start_driver() else {
        return;
    };
    let served = Served::start_with(
        "high_priority = 1",
        "[[rules]]\nname = \"tag-exposed\"\non = [\"created\", \"updated\"]\nwhen = \"indicator.priority >= 1\"\nactions = [{do = \"tag\", tag = \"exposed\"}]\n",
    );
    let mut add_user = super::scry(served.home.path());
    add_user.args([
        "--store",
        &served.store,
        "user",
        "add",
        "dana",
        "--role",
        "analyst",
    ]);
    let added = super::run(add_user, format!("{PASSWORD}\n").as_bytes());
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        super::text(&added.stderr)
    );
    let profile = tempfile::tempdir().expect("a browser profile");
    let base = served.base.clone();
    let analyst = served.analyst.clone();
    let started = Instant::now();
    let step = |name: &str| eprintln!("{:>6.1}s {name}", started.elapsed().as_secs_f64());
    served.runtime.block_on(async {
        let client = browser(&driver, profile.path()).await;
        step("browser");
        // Logging in: the queue sends the browser to the login page and back.
        client.goto(&format!("{base}/")).await.expect("goto");
        let url = client.current_url().await.expect("url");
        assert_eq!(url.path(), "/login", "{url}");
        client.find(Locator::Id("token")).await.expect("token field").send_keys("scry_wrong").await.expect("type");
        click_through(&client, Locator::Id("login")).await;
        assert!(text_of(&client, "#login-error").await.contains("unknown"));
        // The analyst logs in as a local user, with a password.
        client.find(Locator::Id("user")).await.expect("user field").send_keys("dana").await.expect("type");
        client.find(Locator::Id("password")).await.expect("password field").send_keys(PASSWORD).await.expect("type");
        click_through(&client, Locator::Id("login")).await;
        assert_eq!(client.current_url().await.expect("url").path(), "/");
        assert!(text_of(&client, "header .who").await.contains("dana"));

        step("logged in");
        // Submitting: indicators pasted as text, defanged forms included.
        let pasted = "45.155.205.233\n45.155.205.99, 45.155.206.7 and 91.240.118[.]172\nhxxp://paypa1-login[.]com/signin\nsee 8.8.8.8";
        client.find(Locator::Id("indicators")).await.expect("textarea").send_keys(pasted).await.expect("type");
        click_through(&client, Locator::Id("submit")).await;
        assert!(text_of(&client, "#flash").await.contains("6 queued"), "{}", text_of(&client, "#flash").await);

        step("submitted");
        // Enriched from the sandbox: every row is there and the addresses carry a report link.
        let rows = wait_until(&client, ROWS, true, |rows| {
            rows.as_array().is_some_and(|r| r.len() == 6 && r.iter().filter(|x| x["report"] == true).count() >= 4)
        })
        .await;
        let priorities: Vec<i64> = rows.as_array().expect("rows").iter().map(|r| r["priority"].as_i64().expect("priority")).collect();
        assert!(priorities.windows(2).all(|w| w[0] >= w[1]), "by priority first: {priorities:?}");
        assert!(priorities[0] > 0, "{priorities:?}");
        screenshot(&client, "queue").await;

        step("enriched");
        // Sorting: by indicator, then back to priority.
        click_through(&client, Locator::Css("a.sort[data-sort=value]")).await;
        let rows = client.execute(ROWS, vec![]).await.expect("rows");
        let values: Vec<&str> = rows.as_array().expect("rows").iter().map(|r| r["indicator"].as_str().expect("value")).collect();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(values, sorted);
        click_through(&client, Locator::Css("a.sort[data-sort=priority]")).await;
        let rows = client.execute(ROWS, vec![]).await.expect("rows");
        let priorities: Vec<i64> = rows.as_array().expect("rows").iter().map(|r| r["priority"].as_i64().expect("priority")).collect();
        assert!(priorities.windows(2).all(|w| w[0] >= w[1]), "by priority again: {priorities:?}");
        // One that shares its /24 with another submitted address, for the graph below.
        let top = "45.155.205.233";

        step("sorted");
        // The indicator page: verdict, reasons, Criminal IP context, report link, graph.
        click_through(&client, Locator::Css("#queue tbody tr[data-indicator='45.155.205.233'] a.indicator")).await;
        assert_eq!(text_of(&client, "#indicator-value").await, top);
        assert!(client.find(Locator::Css("#reasons tbody tr")).await.is_ok());
        let report = client.find(Locator::Id("report-link")).await.expect("the report link").attr("href").await.expect("href").expect("an href");
        assert!(report.starts_with("https://www.criminalip.io/asset/report/"), "{report}");
        assert!(text_of(&client, "#criminalip").await.contains("Inbound"));
        let graph = "return window.scryGraph ? window.scryGraph.nodes().length : 0";
        let before = wait_until(&client, graph, false, |n| n.as_u64() > Some(1)).await.as_u64().expect("count");
        // Expanding a value other indicators share pivots to them.
        let expanded = client
            .execute(
                "const n = window.scryGraph.nodes(\"[kind = 'shared']\").filter(x => x.data('others') > 0)[0]; if (!n) return null; n.emit('tap'); return n.id();",
                vec![],
            )
            .await
            .expect("tap");
        assert!(expanded.is_string(), "a shared value with other indicators: {expanded}");
        wait_until(&client, graph, false, |n| n.as_u64() > Some(before)).await;
        screenshot(&client, "indicator").await;

        step("indicator page and graph");
        // Rules: a dry run says what would fire, and does nothing.
        click_through(&client, Locator::Id("dry-run-link")).await;
        let verdicts = text_of(&client, "#verdicts").await;
        assert!(verdicts.contains("tag-exposed") && verdicts.contains("would-fire"), "{verdicts}");
        screenshot(&client, "rules").await;

        step("rules dry run");
        // Bulk action from the queue: tag the two top rows; the workers do it.
        client.goto(&format!("{base}/")).await.expect("goto");
        client
            .execute("document.querySelectorAll('#queue tbody input[type=checkbox]').forEach((b, i) => { b.checked = i < 2; }); document.querySelector('select[name=action]').value = 'tag'; document.querySelector('input[name=value]').value = 'triage';", vec![])
            .await
            .expect("select");
        click_through(&client, Locator::Id("bulk-apply")).await;
        assert!(text_of(&client, "#flash").await.contains("queued"));
        wait_until(&client, "return document.querySelectorAll('#queue .chip.label').length", true, |n| {
            n.as_u64().is_some_and(|n| n >= 2)
        })
        .await;

        step("bulk tagging");
        // Live: a new high-priority indicator shows up on an open page.
        client.goto(&format!("{base}/dashboard")).await.expect("goto");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let submitted = served_submit(&base, &analyst, "45.155.207.11").await;
        assert_eq!(submitted, 1);
        wait_until(&client, "return document.querySelectorAll('#live li').length", false, |n| n.as_u64() >= Some(1)).await;
        assert!(text_of(&client, "#live").await.contains("45.155.207.11"));

        step("live notification");
        // The dashboard.
        client.refresh().await.expect("reload");
        assert_eq!(text_of(&client, "#total").await, "7");
        step("dashboard loaded");
        let bars = client.execute("return document.querySelectorAll('#severity-chart rect').length", vec![]).await.expect("bars");
        assert_eq!(bars, json!(5));
        assert!(text_of(&client, "#source-health").await.contains("criminalip"));
        // The high-priority indicators just submitted have ASNs from the sandbox.
        let high_asns = text_of(&client, "#top-high-asns").await;
        assert!(!high_asns.contains("None yet"), "{high_asns}");
        screenshot(&client, "dashboard").await;

        step("dashboard checked");
        // Sources: today's calls, and a connection test that reaches the sandbox.
        client.goto(&format!("{base}/sources")).await.expect("goto");
        assert!(text_of(&client, "#sources").await.contains("criminalip"));
        click_through(&client, Locator::Id("test-sources")).await;
        let checks = text_of(&client, "#checks").await;
        assert!(checks.contains("criminalip"), "{checks}");
        assert!(client.find(Locator::Css("#checks li.ok")).await.is_ok(), "{checks}");
        screenshot(&client, "sources").await;
        // History: what the rules and the analyst did, newest first.
        client.goto(&format!("{base}/history?kind=action")).await.expect("goto");
        let history = text_of(&client, "#history").await;
        assert!(history.contains("manual:dana") && history.contains("tag-exposed"), "{history}");
        // Blocklists: the configured list and where firewalls poll it.
        client.goto(&format!("{base}/blocklists")).await.expect("goto");
        assert!(client.find(Locator::Css("a[href='/edl/edl.txt']")).await.is_ok());
        step("sources, history and blocklists");
        // Logging out ends the session.
        click_through(&client, Locator::Css("header form button")).await;
        client.goto(&format!("{base}/dashboard")).await.expect("goto");
        assert_eq!(client.current_url().await.expect("url").path(), "/login");
        client.close().await.expect("close");
    });
    for page in ["queue", "indicator", "rules", "dashboard", "sources"] {
        assert!(screenshots().join(format!("{page}.png")).exists());
    }
}

/// Submits one indicator through the API; returns how many were queued.
async fn served_submit(base: &str, token: &str, indicator: &str) -> u64 {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/indicators"))
        .bearer_auth(token)
        .json(&json!({"indicators": [indicator]}))
        .send()
        .await
        .expect("the server answers");
    let body: Value = response.json().await.expect("JSON");
    body["queued"].as_u64().unwrap_or(0)
}
