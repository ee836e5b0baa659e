//! Integration tests of the `scry` binary, run as a child process the way a person or a script
//! runs it: real files, real pipes, real exit codes.

mod automation;
mod browser;
mod cli;
mod criminalip;
#[path = "../../../scry-offline/tests/support/ctidb_bin_writer.rs"]
mod ctidb_bin_writer;
mod feeds;
mod first_hour;
mod hardening;
mod memory;
mod offline;
mod pipeline;
mod queue;
mod serve;
mod store;
mod taxii;
mod tidy;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root, where `examples/` lives.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A `scry` command isolated from the caller's configuration and environment.
pub(crate) fn scry(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scry"));
    command
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"));
    command
}

/// Runs `command`, writing `stdin` to it.
pub(crate) fn run(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scry starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().expect("scry finishes");
    writer.join().expect("stdin writer");
    output
}

/// Runs `scry ARGS` in `home` with `stdin`.
pub(crate) fn run_args(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut command = scry(home);
    command.args(args);
    run(command, stdin)
}

/// What the OASIS validator (stix2-validator 3.3.2) says of the STIX objects in `path` (a bundle,
/// or a JSON array of objects), in strict mode with no check disabled: with any check disabled,
/// that version turns check 103 (UUID versions) off too. Two findings are allowed and counted,
/// each for a reason: 302, an external reference without a hash (a source's report page is live,
/// so it has none), and 103 on an `x509-certificate` with neither `hashes` nor `serial_number`
/// and a UUIDv4 id, which STIX 2.1 (and the OASIS `stix2` library) prescribe when an
/// observable has none of its id-contributing properties, while the validator wants UUIDv5 for
/// every observable. Returns `None` (the test skipped) without the validator; else the number of
/// objects, the findings that are problems, and the allowed ones by check.
pub(crate) fn oasis_strict(path: &Path) -> Option<(u64, Vec<String>, (u64, u64))> {
    if !scry_testkit::python_modules(&["stix2validator"], "stix2-validator==3.3.2") {
        return None;
    }
    let script = r#"
import json, sys, uuid
from stix2validator import validate_instance, ValidationOptions
options = ValidationOptions(version="2.1", strict=True)
data = json.load(open(sys.argv[1]))
objects = data["objects"] if isinstance(data, dict) else data
problems, allowed = [], {"302": 0, "103": 0}
for obj in objects:
    result = validate_instance(obj, options)
    for finding in list(result.errors) + list(result.warnings):
        said = str(finding)
        if "{302}" in said:
            allowed["302"] += 1
        elif ("{103}" in said and obj["type"] == "x509-certificate"
              and not ({"hashes", "serial_number"} & obj.keys())
              and uuid.UUID(obj["id"].split("--")[1]).version == 4):
            allowed["103"] += 1
        else:
            problems.append(said)
print(json.dumps({"objects": len(objects), "problems": problems, "allowed": allowed}))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a report");
    let problems = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p.as_str().unwrap_or_default().to_owned())
        .collect();
    let count = |check: &str| report["allowed"][check].as_u64().expect("a count");
    Some((
        report["objects"].as_u64().expect("objects"),
        problems,
        (count("302"), count("103")),
    ))
}

/// A schema of its own on the test PostgreSQL server, dropped when this goes; `None` (the test
/// skipped, or failed under `CI=true`) without a server.
pub(crate) struct PostgresSchema {
    base: String,
    name: String,
    /// The store URL that works in the schema.
    pub(crate) url: String,
}

impl PostgresSchema {
    pub(crate) fn create(prefix: &str) -> Option<PostgresSchema> {
        let base = scry_testkit::postgres()?;
        let name = format!("{prefix}_{}", std::process::id());
        PostgresSchema::admin(&base, &format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        PostgresSchema::admin(&base, &format!("CREATE SCHEMA {name}"));
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
        Some(PostgresSchema { base, name, url })
    }

    fn admin(base: &str, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store = scry_store::SqlStore::connect(base)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"));
            store.execute_raw(sql).await.expect("admin statement");
        });
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        PostgresSchema::admin(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name));
    }
}

/// `scry export --format stix` of the store in `home`, written to a file: its path and the
/// bundle read back.
pub(crate) fn export_stix(home: &Path) -> (PathBuf, serde_json::Value) {
    let path = home.join("export.stix.json");
    let export = run_args(
        home,
        &[
            "export",
            "--format",
            "stix",
            "--output",
            &path.display().to_string(),
        ],
        b"",
    );
    assert_eq!(export.status.code(), Some(0), "{}", text(&export.stderr));
    let bundle = serde_json::from_str(&std::fs::read_to_string(&path).expect("the export"))
        .expect("the export is JSON");
    (path, bundle)
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A Criminal IP sandbox on a free loopback port, served by `runtime`.
pub(crate) fn start_sandbox(
    runtime: &tokio::runtime::Runtime,
    config: scry_sandbox::SandboxConfig,
) -> scry_sandbox::Sandbox {
    runtime
        .block_on(scry_sandbox::Sandbox::start(
            config,
            "127.0.0.1:0".parse().expect("address"),
        ))
        .expect("sandbox starts")
}

/// How many requests the sandbox got for `path` (`/v1/asset/ip/report`: paid IP reports).
pub(crate) fn requests_to(sandbox: &scry_sandbox::Sandbox, path: &str) -> usize {
    sandbox
        .log()
        .entries()
        .iter()
        .filter(|e| e.path == path)
        .count()
}

/// Every request the sandbox got, as `path?query`: what left the machine.
pub(crate) fn asked(sandbox: &scry_sandbox::Sandbox) -> Vec<String> {
    sandbox
        .log()
        .entries()
        .iter()
        .map(|e| format!("{}?{}", e.path, e.query))
        .collect()
}
