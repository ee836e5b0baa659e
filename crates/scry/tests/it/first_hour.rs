//! The first hour of a new user, from the README alone: input from Windows tools, help that
//! tells the truth, messages that say what is wrong and where, a store that is not created by a
//! typo, a password prompt that does not echo, tables that fit the terminal, and credits spent
//! against the sandbox kept apart from the real service's budget.

use std::process::Output;

use scry_sandbox::SandboxConfig;
use serde_json::Value;

use super::{run, run_args, runtime, scry, start_sandbox, text, workspace};

fn jsonl(output: &Output) -> Vec<Value> {
    text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// PowerShell's `Out-File` and Excel's "Unicode text" write UTF-16 with a byte-order mark: read
/// like any other list, not "read 0" and exit 0.
#[test]
fn utf16_lists_from_windows_tools_are_enriched() {
    let home = tempfile::tempdir().expect("tempdir");
    for big_endian in [false, true] {
        let file = home.path().join("export.txt");
        std::fs::write(
            &file,
            scry_testkit::utf16_with_bom(
                "45.155.205.233\r\nevil-login.example.com\r\n999.1.1.1\r\n",
                big_endian,
            ),
        )
        .expect("write");
        let output = run_args(
            home.path(),
            &["enrich", "--no-store", "--format", "jsonl", "export.txt"],
            b"",
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let mut found: Vec<String> = jsonl(&output)
            .iter()
            .filter_map(|r| r["indicator"].as_str().map(str::to_owned))
            .collect();
        found.sort();
        assert_eq!(found, ["45.155.205.233", "evil-login.example.com"]);
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("export.txt:3: rejected \"999.1.1.1\""),
            "{stderr}"
        );
        assert!(stderr.contains("read 3, unique 2"), "{stderr}");
    }
}

/// A folder is not a file: exit 2 like a missing file, with what to do instead.
#[test]
fn a_folder_given_as_input_exits_2_and_says_so() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join("iocs")).expect("mkdir");
    let output = run_args(home.path(), &["enrich", "--no-store", "iocs"], b"");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot read iocs") && stderr.contains("is a folder"),
        "{stderr}"
    );
}

/// The help of `enrich --concurrency` states the default the configuration really has.
#[test]
fn enrich_help_states_the_real_concurrency_default() {
    let home = tempfile::tempdir().expect("tempdir");
    let check = run_args(home.path(), &["config", "check"], b"");
    let effective = text(&check.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("enrichment concurrency: "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", text(&check.stdout)));
    let help = text(&run_args(home.path(), &["enrich", "--help"], b"").stdout);
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--concurrency"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        line.contains(&format!("[enrich] concurrency, {effective}]")),
        "{line:?} vs {effective}"
    );
}

/// Every kind of history entry is in the help, and a kind that does not exist is an error that
/// lists them, not an empty answer.
#[test]
fn history_names_its_kinds_and_refuses_unknown_ones() {
    let home = tempfile::tempdir().expect("tempdir");
    let help = text(&run_args(home.path(), &["history", "--help"], b"").stdout);
    for kind in [
        "rule", "action", "skip", "call", "attempt", "kept", "budget",
    ] {
        assert!(help.contains(kind), "{kind} in {help}");
    }
    let unknown = run_args(home.path(), &["history", "--kind", "budgets"], b"");
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = text(&unknown.stderr);
    assert!(
        stderr.contains("budgets") && stderr.contains("budget") && stderr.contains("attempt"),
        "{stderr}"
    );
    let known = run_args(home.path(), &["history", "--kind", "budget"], b"");
    assert_eq!(known.status.code(), Some(0), "{}", text(&known.stderr));
}

/// `config check` says "configuration OK" only when the configuration is OK: a key file that
/// is not there is a configuration error (exit 2) named with its path, and nothing claims OK.
#[test]
fn config_check_reports_a_missing_key_file_without_saying_ok() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.criminalip]\napi_key_file = \"/nonexistent/criminalip.key\"\n",
    )
    .expect("write");
    let output = run_args(home.path(), &["config", "check"], b"");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        !text(&output.stdout).contains("configuration OK"),
        "{}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stderr).contains("/nonexistent/criminalip.key"),
        "{}",
        text(&output.stderr)
    );
}

/// A mistyped folder in `--store` is an error, not a new empty store somewhere unexpected; the
/// default store's folder is still made on first use.
#[test]
fn a_store_url_into_a_missing_folder_is_refused() {
    let home = tempfile::tempdir().expect("tempdir");
    let typo = home.path().join("typo/dir/x.db");
    let url = format!("sqlite://{}", typo.display());
    let output = run_args(home.path(), &["--store", &url, "import", "-"], b"8.8.8.8\n");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("{}", home.path().join("typo/dir").display()))
            && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(!home.path().join("typo").exists(), "nothing was created");
    // The positive control: the default store is made, folders and all.
    let default = run_args(home.path(), &["import", "-"], b"8.8.8.8\n");
    assert_eq!(default.status.code(), Some(0), "{}", text(&default.stderr));
    assert!(home.path().join("data/scry/scry.db").exists());
}

/// A PostgreSQL server that is not there: the real cause (connection refused), said once, not
/// "pool timed out" twice after 30 s. How long it took is printed, not asserted.
#[test]
fn an_unreachable_postgres_is_reported_once_with_its_cause() {
    let home = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://scry:secret-pw@127.0.0.1:{port}/scry");
    let started = std::time::Instant::now();
    let output = run_args(home.path(), &["--store", &url, "import", "-"], b"8.8.8.8\n");
    eprintln!(
        "unreachable PostgreSQL reported after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert!(!stderr.contains("timed out"), "{stderr}");
    assert_eq!(
        stderr.matches("127.0.0.1").count(),
        1,
        "said once: {stderr}"
    );
    assert!(!stderr.contains("secret-pw"), "{stderr}");
}

/// At a terminal, `scry user add` asks for the password twice without echoing it. The terminal
/// is a real pseudo-terminal made by `script` (util-linux).
#[test]
fn user_add_at_a_terminal_prompts_and_does_not_echo() {
    let Some([script]) = scry_testkit::programs(
        ["script"],
        "apt-get install bsdutils (util-linux's `script`)",
    ) else {
        return;
    };
    let home = tempfile::tempdir().expect("tempdir");
    // `script` runs the command in a new pseudo-terminal; the environment is `scry()`'s.
    let isolated = scry(home.path());
    let mut command = std::process::Command::new(script);
    command
        .current_dir(home.path())
        .env_clear()
        .envs(isolated.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("TERM", "dumb")
        .arg("-qefc")
        .arg(format!(
            "{} user add dana --role analyst",
            env!("CARGO_BIN_EXE_scry")
        ))
        .arg("/dev/null");
    let password = "tarantula-mirror-4417";
    let output = {
        use std::io::{Read, Write};
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        // What the terminal shows, read as it comes: a person types after each prompt.
        let (sender, shown) = std::sync::mpsc::channel::<Vec<u8>>();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 || sender.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut screen = String::new();
        let mut answered = 0;
        for prompt in ["password for dana: ", "again: "] {
            let found = loop {
                if let Some(at) = screen[answered..].find(prompt) {
                    break answered + at;
                }
                let chunk = shown
                    .recv_timeout(std::time::Duration::from_secs(30))
                    .unwrap_or_else(|_| panic!("no {prompt:?} prompt: {screen}"));
                screen.push_str(&String::from_utf8_lossy(&chunk));
            };
            answered = found + prompt.len();
            // The prompt is written just before echo is turned off; a person types after that.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !echo_is_off(child.id()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "echo stayed on after {prompt:?}: {screen}"
                );
                std::thread::yield_now();
            }
            stdin
                .write_all(format!("{password}\n").as_bytes())
                .expect("type");
        }
        drop(stdin);
        let status = child.wait().expect("script ends");
        reader.join().expect("reader");
        while let Ok(chunk) = shown.try_recv() {
            screen.push_str(&String::from_utf8_lossy(&chunk));
        }
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr");
        (status, format!("{screen}{stderr}"))
    };
    let (status, shown) = output;
    assert_eq!(status.code(), Some(0), "{shown}");
    assert!(shown.contains("password for dana"), "a prompt: {shown}");
    assert!(shown.contains("user dana (analyst) added"), "{shown}");
    assert!(!shown.contains(password), "not echoed: {shown}");
}

/// Whether a process under `script` (pid `root`) reads from a terminal with echo off, asked of
/// the terminal itself with `stty`.
fn echo_is_off(root: u32) -> bool {
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let mut pending = children(root);
    while let Some(pid) = pending.pop() {
        pending.extend(children(pid));
        let Ok(terminal) = std::fs::read_link(format!("/proc/{pid}/fd/0")) else {
            continue;
        };
        if !terminal.starts_with("/dev/pts") {
            continue;
        }
        let settings = std::process::Command::new("stty")
            .arg("-F")
            .arg(&terminal)
            .arg("-a")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if settings.split_whitespace().any(|flag| flag == "-echo") {
            return true;
        }
    }
    false
}

/// In a 120-column terminal each row keeps to 120 columns: the details wrap between words onto
/// lines of their own, under the DETAILS column, instead of the terminal cutting words in two.
#[test]
fn tables_fit_a_120_column_terminal() {
    let home = tempfile::tempdir().expect("tempdir");
    let example = workspace().join("examples/iocs.txt");
    let wide = {
        let mut c = scry(home.path());
        c.args(["enrich", "--no-store"]).arg(&example);
        run(c, b"")
    };
    let narrow = {
        let mut c = scry(home.path());
        c.env("COLUMNS", "120")
            .args(["enrich", "--no-store"])
            .arg(&example);
        run(c, b"")
    };
    let (wide, narrow) = (text(&wide.stdout), text(&narrow.stdout));
    assert!(
        wide.lines().any(|l| l.chars().count() > 120),
        "the positive control: some row is wider than 120 columns: {wide}"
    );
    for line in narrow.lines() {
        assert!(line.chars().count() <= 120, "{line:?}");
    }
    // The same words in the same order: a continuation line (indented six spaces or more, where
    // a row starts with at most two) joined back to its row gives the wide row.
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut joined: Vec<String> = Vec::new();
    let mut continued = 0;
    for line in narrow.lines() {
        if line.starts_with("      ") && !joined.is_empty() {
            continued += 1;
            let last = joined.last_mut().expect("a row");
            last.push(' ');
            last.push_str(line.trim());
        } else {
            joined.push(line.to_owned());
        }
    }
    assert!(continued > 0, "some details wrapped: {narrow}");
    let joined: Vec<String> = joined.iter().map(|l| words(l)).collect();
    let wide: Vec<String> = wide.lines().map(words).collect();
    assert_eq!(joined, wide);
}

/// Credits spent against `scry sandbox` are not the real service's: with the same key and the
/// same store, a rehearsal that spends the day's credits leaves the budget of the real address
/// untouched (budgets are per source, key and service address).
#[test]
fn sandbox_credits_do_not_count_against_the_real_budget() {
    let rt = runtime();
    let rehearsal = start_sandbox(&rt, SandboxConfig::default());
    let real = start_sandbox(&rt, SandboxConfig::default());
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[sources.criminalip]\nmax_requests = 50\nretry_base_ms = 10\nconcurrency = 1\ndaily_credits = 3\n",
    )
    .expect("config");
    let enrich = |base_url: &str, ips: &str| {
        let mut c = scry(home.path());
        c.env("CRIMINALIP_API_KEY", "ck-same-key-for-both")
            .env("CRIMINALIP_BASE_URL", base_url)
            .args(["enrich", "--format", "jsonl", "-"]);
        run(c, ips.as_bytes())
    };
    let reports = |sandbox| super::requests_to(sandbox, "/v1/asset/ip/report");
    let spent = enrich(&rehearsal.url(), "45.1.1.1\n45.2.2.2\n45.3.3.3\n45.4.4.4\n");
    assert_eq!(spent.status.code(), Some(0), "{}", text(&spent.stderr));
    assert_eq!(reports(&rehearsal), 3, "the rehearsal spends its 3 credits");
    let after = enrich(&real.url(), "45.5.5.5\n45.6.6.6\n");
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stderr));
    assert_eq!(reports(&real), 2, "{}", text(&after.stderr));
    assert!(
        jsonl(&after).iter().all(|r| r["skip_reason"].is_null()),
        "{}",
        text(&after.stdout)
    );
    // And the rehearsal's own budget still holds across runs.
    let again = enrich(&rehearsal.url(), "45.7.7.7\n");
    assert_eq!(reports(&rehearsal), 3, "{}", text(&again.stderr));
    assert_eq!(jsonl(&again)[0]["skip_reason"], "budget");
    // The history names the account each paid call was charged to.
    let calls = run_args(
        home.path(),
        &["history", "--kind", "call", "--format", "jsonl"],
        b"",
    );
    let accounts: std::collections::BTreeSet<String> = jsonl(&calls)
        .iter()
        .filter_map(|e| e["account"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(accounts.len(), 2, "{}", text(&calls.stdout));
    // `sources status` shows each account's credits beside the total.
    let status = run_args(home.path(), &["sources", "status"], b"");
    let status = text(&status.stdout);
    let address =
        |sandbox: &scry_sandbox::Sandbox| sandbox.url().trim_start_matches("http://").to_owned();
    for (sandbox, credits) in [(&rehearsal, 3), (&real, 2)] {
        assert!(
            status.lines().any(|l| l
                .trim_start()
                .starts_with(&format!("{credits} credits with "))
                && l.ends_with(&format!("@{}", address(sandbox)))),
            "{status}"
        );
    }
}

/// `scry rules check` reports every mistake of every file at once, each with its file, line,
/// column and rule: a misspelled field, a comparison of a number with text, a list method on a
/// list, an unknown trigger, action or setting — none of them hiding the others.
#[test]
fn rules_check_reports_every_mistake_where_it_is() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join("playbooks")).expect("mkdir");
    std::fs::write(
        home.path().join("scry.toml"),
        "[automation]\nplaybooks = \"playbooks\"\n\n[[rules]]\nname = \"typo\"\non = [\"enriched\"]\n\
         when = 'indicator.priorty > 80'\nactions = [{ do = \"tag\", tag = \"hot\" }]\n",
    )
    .expect("config");
    std::fs::write(
        home.path().join("playbooks/high.toml"),
        "[[rules]]\nname = \"bad-action\"\non = [\"created\", \"enrichd\"]\n\
         when = 'indicator.asn == \"13335\"'\nactions = [\n  { do = \"tag\", tag = \"x\" },\n  { do = \"blok\", list = \"firewall\" },\n]\n\
         \n[[rules]]\nname = \"lists\"\non = [\"created\"]\nwhen = \"\"\"\nindicator.priority > 50 &&\n  indicator.tags.startsWith(\"c2\")\"\"\"\n\
         actions = [{ do = \"tag\", tag = \"c2\" }]\ncolour = \"red\"\n",
    )
    .expect("playbook");
    let output = run_args(home.path(), &["rules", "check"], b"");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    let expected = [
        "scry.toml:7:18: rule \"typo\": condition: `indicator` has no field `priorty`; did you mean `indicator.priority`? (every field is in docs/rules.md)",
        "playbooks/high.toml:3:18: rule \"bad-action\": unknown trigger \"enrichd\"",
        "playbooks/high.toml:7:10: rule \"bad-action\": action 2: unknown variant `blok`",
        "playbooks/high.toml:4:23: rule \"bad-action\": condition: compares a int with a string",
        "playbooks/high.toml:17:1: rule \"lists\": unknown setting `colour`",
        "playbooks/high.toml:15:28: rule \"lists\": condition: startsWith() works on text, not on a list of string",
    ];
    assert_eq!(problems.len(), expected.len(), "{stderr}");
    for wanted in expected {
        assert!(
            problems.iter().any(|p| p.starts_with(wanted)),
            "{wanted}\nnot in:\n{}",
            problems.join("\n")
        );
    }
    assert!(
        stderr.contains("the rules do not load (6 problems)"),
        "{stderr}"
    );
    // The positive control: the same files, mended, load.
    std::fs::write(
        home.path().join("scry.toml"),
        "[automation]\nplaybooks = \"playbooks\"\n\n[[rules]]\nname = \"typo\"\non = [\"enriched\"]\n\
         when = 'indicator.priority > 80'\nactions = [{ do = \"tag\", tag = \"hot\" }]\n",
    )
    .expect("config");
    std::fs::write(
        home.path().join("playbooks/high.toml"),
        "[[rules]]\nname = \"lists\"\non = [\"created\"]\nwhen = 'indicator.tags.exists(t, t.startsWith(\"c2\"))'\n\
         actions = [{ do = \"tag\", tag = \"c2\" }]\n",
    )
    .expect("playbook");
    let mended = run_args(home.path(), &["rules", "check"], b"");
    assert_eq!(mended.status.code(), Some(0), "{}", text(&mended.stderr));
    assert!(
        text(&mended.stderr).contains("2 rules loaded, no problems"),
        "{}",
        text(&mended.stderr)
    );
}
