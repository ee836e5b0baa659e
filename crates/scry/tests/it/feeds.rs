//! Threat feeds through the binary: feeds served by a loopback HTTP server that honours
//! `If-None-Match`, and a local file, pulled with `scry feeds pull`, their listings asked by
//! `scry enrich`, and what a feed newly lists queued for enrichment.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::automation::{Loopback, Request};
use super::{run, run_args, scry, text};

/// A request the feed server took.
#[derive(Debug, Clone)]
pub(crate) struct Asked {
    path: String,
    pub(crate) if_none_match: Option<String>,
    auth_key: Option<String>,
}

/// Bodies by path, changeable while the server runs.
pub(crate) type Bodies = Arc<Mutex<Vec<(String, String)>>>;

/// Serves each `(path, body)` of `files` (bodies changeable through the returned handle, each
/// with an ETag of its content and a fixed Last-Modified), answers 304 to a matching
/// `If-None-Match`, and 404 for anything else.
pub(crate) fn file_server(files: Vec<(&str, &str)>) -> (Loopback<Asked>, Bodies) {
    let bodies: Bodies = Arc::new(Mutex::new(
        files
            .into_iter()
            .map(|(path, body)| (path.to_owned(), body.to_owned()))
            .collect(),
    ));
    let served = Arc::clone(&bodies);
    let server = Loopback::start(move |stream, log| {
        let Some(request) = Request::read(stream) else {
            return;
        };
        let path = request.target.split('?').next().unwrap_or("").to_owned();
        let if_none_match = request.header("if-none-match");
        log.lock().expect("not poisoned").push(Asked {
            path: path.clone(),
            if_none_match: if_none_match.clone(),
            auth_key: request.header("auth-key"),
        });
        let body = served
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, b)| b.clone());
        let mut stream = request.stream;
        let _ = match body {
            Some(body) => {
                let etag = {
                    use std::hash::{Hash, Hasher};
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    body.hash(&mut hasher);
                    format!("\"{:x}\"", hasher.finish())
                };
                if if_none_match.as_deref() == Some(etag.as_str()) {
                    write!(
                        stream,
                        "HTTP/1.1 304 Not Modified\r\netag: {etag}\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\netag: {etag}\r\nlast-modified: Tue, 17 Nov 2026 08:00:00 GMT\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
            }
            None => write!(
                stream,
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            ),
        };
    });
    (server, bodies)
}

#[test]
fn feeds_are_pulled_with_etags_corroborate_and_queue_what_is_new() {
    let (server, bodies) = file_server(vec![
        (
            "/feodo.csv",
            "# Feodo Tracker\n\
             # \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
             \"2026-11-20 10:00:00\",\"45.155.205.233\",\"443\",\"online\",\"2026-11-23\",\"QakBot\"\n\
             \"2026-11-21 11:00:00\",\"91.92.241.10\",\"8080\",\"online\",\"2026-11-23\",\"Emotet\"\n\
             \"2026-11-22 12:00:00\",\"not-an-ip\",\"80\",\"online\",\"2026-11-23\",\"Emotet\"\n",
        ),
        (
            "/list.txt",
            "# blocklist\n45.155.205.0/24\n185.220.101.0/24 ; Tor\n",
        ),
    ]);
    let home = tempfile::tempdir().expect("tempdir");
    let base = format!("http://127.0.0.1:{}", server.port);
    std::fs::write(
        home.path().join("local.txt"),
        "# our own sightings\n45.155.205.233\nphish.example.net\nbad line here\n",
    )
    .expect("write");
    std::fs::write(
        home.path().join("scry.toml"),
        format!(
            "[feeds]\ndir = \"feeds\"\n\n\
             [feeds.feodo]\nurl = \"{base}/feodo.csv\"\nformat = \"abuse-ch\"\nconfidence = 90\n\
             tags = [\"botnet-c2\"]\ningest = true\ntlp = \"clear\"\n\n\
             [feeds.blocklist]\nurl = \"{base}/list.txt?key=s3cret-query\"\nformat = \"netset\"\n\
             header_env = {{ \"Auth-Key\" = \"TEST_FEED_KEY\" }}\n\n\
             [feeds.local]\npath = \"local.txt\"\nformat = \"list\"\nconfidence = 100\n"
        ),
    )
    .expect("write config");
    let pull = |args: &[&str]| {
        let mut command = scry(home.path());
        command
            .env("TEST_FEED_KEY", "k-123")
            .arg("feeds")
            .arg("pull")
            .args(args);
        run(command, b"")
    };

    // Before any pull the feeds list nothing, and say so.
    let before = run_args(
        home.path(),
        &["enrich", "--no-store", "-"],
        b"45.155.205.233\n",
    );
    assert_eq!(before.status.code(), Some(0), "{}", text(&before.stderr));
    assert!(
        text(&before.stderr)
            .contains("feeds never pulled, so they list nothing yet: blocklist, feodo, local"),
        "{}",
        text(&before.stderr)
    );

    let first = pull(&[]);
    let stderr = text(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    for expected in [
        "feodo: line 5: ",
        "feodo: updated: 2 entries, 2 newly listed, 1 lines not read",
        "blocklist: updated: 2 entries, 2 newly listed, 0 lines not read",
        "local: line 4: ",
        "local: updated: 2 entries, 2 newly listed, 1 lines not read",
        "2 newly listed indicators queued for enrichment",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    let asked = server.log();
    assert!(
        asked
            .iter()
            .any(|a| a.path == "/list.txt" && a.auth_key.as_deref() == Some("k-123")),
        "{asked:?}"
    );

    // Not due yet; forced, the server is asked with the ETag and answers 304.
    assert!(text(&pull(&[]).stderr).contains("feodo: not due"));
    let again = text(&pull(&["--force"]).stderr);
    assert!(
        again.contains("feodo: not modified")
            && again.contains("blocklist: not modified")
            && again.contains("local: not modified"),
        "{again}"
    );
    let conditional = server.log();
    let last = conditional.last().expect("asked");
    assert!(last.if_none_match.is_some(), "{conditional:?}");

    // An address three feeds list: a reason per feed, and their agreement.
    let output = run_args(
        home.path(),
        &["enrich", "--no-store", "--format", "json", "-"],
        b"45.155.205.233\nhttps://phish.example.net/login\n198.51.100.7\n",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let reasons = |record: &Value| -> Vec<(String, String, i64)> {
        record["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .filter(|r| r["source"] == "feeds")
            .map(|r| {
                (
                    r["signal"].as_str().expect("signal").to_owned(),
                    r["value"].as_str().expect("value").to_owned(),
                    r["points"].as_i64().expect("points"),
                )
            })
            .collect()
    };
    // Feeds in name order; the record lists reasons by points.
    let expected = [
        ("listed", "local (confidence 100)", 20),
        (
            "corroborated",
            "3 of 3 feeds agree: blocklist, feodo, local",
            20,
        ),
        ("listed", "feodo (confidence 90; botnet-c2, qakbot)", 18),
        ("listed", "blocklist (confidence 50)", 10),
    ];
    assert_eq!(
        reasons(&records[0]),
        expected
            .iter()
            .map(|(s, v, p)| ((*s).to_owned(), (*v).to_owned(), *p))
            .collect::<Vec<_>>(),
        "{:#?}",
        records[0]
    );
    let listed = &records[0]["sources"]["feeds"]["data"]["listed_by"];
    assert_eq!(listed[0]["listed"], "45.155.205.0/24");
    assert_eq!(listed[1]["fields"]["malware"], "QakBot");
    assert_eq!(
        reasons(&records[1]),
        [("listed".to_owned(), "local (confidence 100)".to_owned(), 20)],
        "a URL's host is listed"
    );
    assert!(reasons(&records[2]).is_empty());

    // A changed feed: what it newly lists is queued.
    bodies.lock().expect("not poisoned")[0].1.push_str(
        "\"2026-11-23 09:00:00\",\"80.94.95.115\",\"443\",\"online\",\"2026-11-23\",\"Pikabot\"\n",
    );
    let changed = text(&pull(&["--force", "feodo"]).stderr);
    assert!(
        changed.contains("feodo: updated: 3 entries, 1 newly listed, 1 lines not read")
            && changed.contains("1 newly listed indicators queued")
            && !changed.contains("blocklist"),
        "{changed}"
    );
    let jobs = run_args(home.path(), &["jobs", "status"], b"");
    assert!(
        text(&jobs.stdout).starts_with("ready 3\n"),
        "two from the first pull, one from this: {}",
        text(&jobs.stdout)
    );

    // A feed that cannot be pulled: exit 1, the reason kept, the old copy still used, and the
    // query string (which may hold a key) never shown or stored.
    bodies.lock().expect("not poisoned").remove(1);
    let failed = pull(&["--force", "blocklist"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stderr).contains(&format!("blocklist: failed: {base}/list.txt: HTTP 404")),
        "{}",
        text(&failed.stderr)
    );
    let status = run_args(home.path(), &["feeds", "status", "--format", "json"], b"");
    let report: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let blocklist = &report["feeds"][0];
    assert_eq!(blocklist["name"], "blocklist");
    assert_eq!(blocklist["entries"], 2);
    assert!(
        blocklist["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("404"))
    );
    let still = run_args(
        home.path(),
        &["enrich", "--no-store", "--format", "json", "-"],
        b"185.220.101.9\n",
    );
    let records: Vec<Value> = serde_json::from_slice(&still.stdout).expect("JSON");
    assert_eq!(reasons(&records[0]).len(), 1, "{:#?}", records[0]);
    for output in [&first, &failed, &status] {
        assert!(
            !text(&output.stdout).contains("s3cret") && !text(&output.stderr).contains("s3cret")
        );
    }
    for entry in std::fs::read_dir(home.path().join("feeds")).expect("feed dir") {
        let path = entry.expect("entry").path();
        let content = std::fs::read_to_string(&path).expect("read");
        assert!(
            !content.contains("s3cret") && !content.contains("k-123"),
            "{path:?}"
        );
    }
}
