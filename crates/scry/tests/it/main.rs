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
