//! TAXII as a consumer polls it while scry writes: OpenCTI's TAXII ingester replayed request by
//! request against two writers at once (a CLI enrichment and API submissions worked off by the
//! server), on SQLite and on PostgreSQL; then analyst changes made in the workbench arrive as new
//! versions on the next poll.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::serve::{Served, addresses, scry_with};
use super::{PostgresSchema, text};

/// OpenCTI's TAXII 2.1 ingester, as its source and tests have it: every request sends the saved
/// `added_after` (none at first) and, while a poll pages, the last `next`; a page with `more`
/// keeps `added_after` and saves `next`; the last page clears `next` and, when it held objects,
/// saves its `X-TAXII-Date-Added-Last` as the next `added_after`.
struct OpenCtiPoller {
    collection: String,
    added_after: Option<String>,
    next: Option<String>,
    /// Every object received, with the `date_added` header range of its page.
    received: Vec<Value>,
    requests: usize,
}

impl OpenCtiPoller {
    fn new(served: &Served) -> OpenCtiPoller {
        OpenCtiPoller::of(served, "Enriched indicators")
    }

    /// A poller of the collection titled `title`.
    fn of(served: &Served, title: &str) -> OpenCtiPoller {
        let (status, collections) = served.get("/taxii2/api/collections/", &served.viewer);
        assert_eq!(status, StatusCode::OK, "{collections}");
        let collection = collections["collections"]
            .as_array()
            .expect("collections")
            .iter()
            .find(|c| c["title"] == title)
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("a collection {title:?}: {collections}"))
            .to_owned();
        OpenCtiPoller {
            collection,
            added_after: None,
            next: None,
            received: Vec::new(),
            requests: 0,
        }
    }

    /// One run of the ingester: pages until `more` is false. Returns the objects it got.
    fn poll(&mut self, served: &Served) -> usize {
        let before = self.received.len();
        loop {
            let mut query: Vec<(&str, String)> = vec![("limit", "37".to_owned())];
            if let Some(after) = &self.added_after {
                query.push(("added_after", after.clone()));
            }
            if let Some(next) = &self.next {
                query.push(("next", next.clone()));
            }
            let response = served.raw(
                served
                    .client()
                    .get(format!(
                        "{}/taxii2/api/collections/{}/objects/",
                        served.base, self.collection
                    ))
                    .query(&query)
                    .basic_auth("opencti", Some(&served.viewer))
                    .header("accept", "application/taxii+json;version=2.1"),
            );
            self.requests += 1;
            assert_eq!(response.status(), StatusCode::OK);
            let last = response
                .headers()
                .get("x-taxii-date-added-last")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let page: Value = served.runtime.block_on(response.json()).expect("JSON");
            let objects = page["objects"].as_array().cloned().unwrap_or_default();
            let more = page["more"].as_bool().unwrap_or(false);
            let had_objects = !objects.is_empty();
            self.received.extend(objects);
            if more {
                self.next = Some(page["next"].as_str().expect("next with more").to_owned());
            } else {
                self.next = None;
                if had_objects && let Some(last) = last {
                    self.added_after = Some(last);
                }
                return self.received.len() - before;
            }
        }
    }

    /// How many times each version of each indicator object arrived.
    fn indicator_versions(&self) -> BTreeMap<(String, String), usize> {
        let mut seen = BTreeMap::new();
        for object in self.received.iter().filter(|o| o["type"] == "indicator") {
            let key = (
                object["id"].as_str().expect("id").to_owned(),
                object["modified"].as_str().expect("modified").to_owned(),
            );
            *seen.entry(key).or_insert(0) += 1;
        }
        seen
    }
}

/// Every indicator the store holds enriched, with the `modified` of its current version (from
/// its STIX bundle through the API).
fn current_versions(served: &Served) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/api/v1/indicators?limit=500&enrichment=enriched".to_owned();
        if let Some(after) = &after {
            path.push_str(&format!("&after={}", super::serve::urlencode(after)));
        }
        let (status, page) = served.get(&path, &served.viewer);
        assert_eq!(status, StatusCode::OK, "{page}");
        for row in page["items"].as_array().expect("items") {
            let value = row["indicator"].as_str().expect("value");
            let (status, bundle) =
                served.get(&format!("/api/v1/indicators/{value}/stix"), &served.viewer);
            assert_eq!(status, StatusCode::OK, "{bundle}");
            let indicator = bundle["objects"]
                .as_array()
                .expect("objects")
                .iter()
                .find(|o| o["type"] == "indicator")
                .expect("an indicator object")
                .clone();
            out.insert(
                indicator["id"].as_str().expect("id").to_owned(),
                indicator["modified"].as_str().expect("modified").to_owned(),
            );
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return out,
        }
    }
}

/// Two writers and a poller: every version of every indicator arrives exactly once, and the
/// last version of each arrives. Then a tag and a priority set in the workbench are a new
/// version the next poll receives, with the new labels and score.
fn every_version_reaches_the_poller_once(store: Option<&str>) {
    let served = Served::start_on(store, "", "[enrich]\nconcurrency = 8\n");
    let cli_addresses = addresses(600);
    let api_addresses: Vec<String> = (0..80)
        .map(|i| format!("193.32.{}.{}", 160 + i / 20, 10 + i % 20))
        .collect();
    let mut poller = OpenCtiPoller::new(&served);
    // Writer 1: a CLI enrichment on the same store, saving in batches.
    let mut cli = scry_with(
        served.home.path(),
        &served.sandbox,
        &served.store,
        &["enrich", "-q", "--format", "json", "-"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("scry enrich starts");
    {
        use std::io::Write as _;
        let mut stdin = cli.stdin.take().expect("stdin");
        stdin
            .write_all(cli_addresses.join("\n").as_bytes())
            .expect("addresses written");
    }
    // Writer 2: the server's worker, fed by API submissions while the CLI runs; the poller
    // polls between them, as OpenCTI does on its schedule.
    let mut batches = api_addresses.chunks(4);
    let submit = |batch: &[String]| {
        let (status, body) = served.call(
            Method::POST,
            "/api/v1/indicators",
            &served.analyst,
            Some(json!({"indicators": batch})),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    };
    // A batch each time the vendor has answered 30 more reports, so the server saves its
    // results while the CLI holds enriched records it has yet to save.
    let mut paced = 0;
    let mut polls_while_writing = 0;
    while cli.try_wait().expect("the CLI").is_none() {
        let answered = super::requests_to(&served.sandbox, "/v1/asset/ip/report");
        if answered >= paced {
            if let Some(batch) = batches.next() {
                submit(batch);
            }
            paced = answered + 30;
        }
        poller.poll(&served);
        polls_while_writing += 1;
        assert!(polls_while_writing < 100_000, "the CLI never ended");
    }
    for batch in batches {
        submit(batch);
        poller.poll(&served);
    }
    let cli = cli.wait_with_output().expect("the CLI ends");
    assert_eq!(cli.status.code(), Some(0), "{}", text(&cli.stderr));
    let expected = cli_addresses.len() + api_addresses.len();
    served.wait_for(|s| {
        let (_, page) = s.get(
            "/api/v1/indicators?limit=1000&enrichment=enriched",
            &s.viewer,
        );
        page["items"].as_array().map_or(0, Vec::len) >= expected
    });
    poller.poll(&served);
    let current = current_versions(&served);
    assert_eq!(current.len(), expected);
    let versions = poller.indicator_versions();
    let repeated: Vec<_> = versions.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "versions received more than once: {repeated:?}"
    );
    let missing: Vec<_> = current
        .iter()
        .filter(|(id, modified)| !versions.contains_key(&((*id).clone(), (*modified).clone())))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} current versions never reached the poller (after {} requests): {:?}",
        missing.len(),
        current.len(),
        poller.requests,
        missing.iter().take(5).collect::<Vec<_>>()
    );
    // An object several indicators bring (a location, an AS link, an identity) is one object:
    // the same `created` whichever indicator's page carried it.
    let mut created: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for object in &poller.received {
        if let (Some(id), Some(at)) = (object["id"].as_str(), object["created"].as_str()) {
            created.entry(id).or_default().push(at);
        }
    }
    let repeated = created.values().filter(|c| c.len() > 1).count();
    assert!(repeated > 0, "some objects came with more than one page");
    let several: Vec<_> = created
        .iter()
        .filter(|(_, c)| c.iter().any(|at| *at != c[0]))
        .collect();
    assert!(
        several.is_empty(),
        "{} ids with several `created`, such as {:?}",
        several.len(),
        several
            .iter()
            .take(3)
            .map(|(id, c)| (id, c.len()))
            .collect::<Vec<_>>()
    );
    // Nothing new: the next poll is empty.
    assert_eq!(poller.poll(&served), 0);

    // An analyst tags one indicator and sets another's priority in the workbench.
    let workbench = served.workbench_session("analyst");
    let (tagged, scored) = (&api_addresses[0], &cli_addresses[0]);
    for (indicator, action, value) in [
        (tagged.as_str(), "tag", "campaign-taxii"),
        (scored.as_str(), "priority", "42"),
    ] {
        let response = workbench.act(&[
            ("indicator", indicator),
            ("action", action),
            ("value", value),
        ]);
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{action}");
    }
    served.wait_for(|s| {
        let labels =
            s.get(&format!("/api/v1/indicators/{tagged}"), &s.viewer).1["workflow"]["labels"]
                .clone();
        let priority = s.get(&format!("/api/v1/indicators/{scored}"), &s.viewer).1["workflow"]
            ["priority_override"]
            .clone();
        labels.as_array().is_some_and(|l| !l.is_empty()) && priority == 42
    });
    let before = poller.received.len();
    assert!(
        poller.poll(&served) > 2,
        "the new versions with their graphs"
    );
    let fresh: Vec<&Value> = poller.received[before..]
        .iter()
        .filter(|o| o["type"] == "indicator")
        .collect();
    assert_eq!(fresh.len(), 2, "{fresh:#?}");
    let by_name: HashMap<&str, &Value> = fresh
        .iter()
        .map(|o| (o["name"].as_str().expect("name"), *o))
        .collect();
    assert!(
        by_name[tagged.as_str()]["labels"]
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t == "campaign-taxii")),
        "{:#}",
        by_name[tagged.as_str()]
    );
    assert_eq!(by_name[scored.as_str()]["x_opencti_score"], 42);
    // Each is a new version: the same id, a later `modified`, received once.
    let versions = poller.indicator_versions();
    for object in &fresh {
        let id = object["id"].as_str().expect("id");
        let earlier: Vec<&String> = versions
            .keys()
            .filter(|(i, _)| i == id)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(earlier.len(), 2, "two versions of {id}: {earlier:?}");
        assert!(earlier[0] < earlier[1]);
    }
    assert!(versions.values().all(|n| *n == 1));
}

#[test]
fn every_version_reaches_an_opencti_poller_once_on_sqlite() {
    every_version_reaches_the_poller_once(None);
}

#[test]
fn every_version_reaches_an_opencti_poller_once_on_postgres() {
    let Some(schema) = PostgresSchema::create("scry_taxii") else {
        return;
    };
    every_version_reaches_the_poller_once(Some(&schema.url));
}

/// A blocklist's TAXII collection is a feed of its changes: each entry an indicator of its own,
/// and an entry removed from the list (unblocked, or expired) a revoked version of it, which a
/// poller receives on its next poll; blocked again, a newer version that is not revoked.
#[test]
fn a_blocklist_feed_revokes_what_is_unblocked() {
    let served = Served::start("");
    let (kept, removed) = ("45.155.205.233", "45.155.205.99");
    served.submit_and_wait(&[kept, removed]);
    let act = |indicator: &str, action: &str| {
        let (status, body) = served.call(
            Method::POST,
            "/api/v1/indicators/actions",
            &served.analyst,
            Some(json!({"indicators": [indicator], "actions": [{"do": action, "list": "edl"}]})),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    };
    let edl_has = |value: &str| {
        served
            .get("/edl/edl.txt", "")
            .1
            .as_str()
            .is_some_and(|t| t.lines().any(|l| l == value))
    };
    act(kept, "block");
    act(removed, "block");
    served.wait_for(|_| edl_has(kept) && edl_has(removed));
    let mut poller = OpenCtiPoller::of(&served, "Blocklist edl");
    poller.poll(&served);
    let first: Vec<Value> = poller.received.clone();
    let indicators: Vec<&Value> = first.iter().filter(|o| o["type"] == "indicator").collect();
    assert_eq!(indicators.len(), 2, "{first:#?}");
    assert!(
        indicators
            .iter()
            .all(|o| o["revoked"].is_null() && o["x_scry_blocklist"] == "edl")
    );
    let removed_id = indicators
        .iter()
        .find(|o| o["name"] == removed)
        .and_then(|o| o["id"].as_str())
        .expect("the entry's indicator")
        .to_owned();

    act(removed, "unblock");
    served.wait_for(|_| !edl_has(removed));
    assert!(edl_has(kept));
    let before = poller.received.len();
    poller.poll(&served);
    let revoked: Vec<&Value> = poller.received[before..]
        .iter()
        .filter(|o| o["type"] == "indicator")
        .collect();
    assert_eq!(revoked.len(), 1, "only the removal is new: {revoked:#?}");
    assert_eq!(revoked[0]["id"], removed_id.as_str());
    assert_eq!(revoked[0]["revoked"], true);
    let modified = |o: &Value| o["modified"].as_str().expect("modified").to_owned();
    let earlier = indicators
        .iter()
        .find(|o| o["id"] == removed_id.as_str())
        .expect("earlier");
    assert!(modified(revoked[0]) > modified(earlier), "a newer version");
    let revoked_version = modified(revoked[0]);

    // Blocked again: a newer version, standing.
    act(removed, "block");
    served.wait_for(|_| edl_has(removed));
    let before = poller.received.len();
    poller.poll(&served);
    let back: Vec<&Value> = poller.received[before..]
        .iter()
        .filter(|o| o["type"] == "indicator")
        .collect();
    assert_eq!(back.len(), 1, "{back:#?}");
    assert!(back[0]["revoked"].is_null());
    assert!(modified(back[0]) > revoked_version);
    // And strict STIX throughout.
    let dump = served.home.path().join("blocklist-feed.json");
    std::fs::write(&dump, Value::Array(poller.received.clone()).to_string()).expect("dump");
    if let Some((checked, problems, _)) = super::oasis_strict(&dump) {
        assert!(checked > 0);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
