//! What scry's tests need from the machine beyond the Rust toolchain — a PostgreSQL server,
//! Chromium with chromedriver, Python with the vendors' and OASIS tools — found in at most two
//! seconds each.
//!
//! A test asks for what it needs first ([`postgres`], [`programs`], [`python_modules`]). When
//! something is missing, the test is skipped: one line on the terminal names the test, what is
//! missing and how to get it, and the test returns early (it shows as passed; the line is how the
//! skip is seen). Under `CI=true` nothing may be skipped: a missing prerequisite fails the test
//! with the same line. `.ci/run` installs and starts everything.
//!
//! Inputs more than one crate's tests write ([`utf16_with_bom`]) live here too.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// How long a server may take to accept a connection before it counts as absent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The PostgreSQL server the tests use unless `SCRY_TEST_POSTGRES_URL` names another.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// True when this run must not skip anything (`CI=true`, as CI services set it).
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("this test")
        .to_owned()
}

/// Skips the running test for want of `what` (fails it under `CI=true`). Returns `None`, for
/// `let Some(x) = … else { return }`.
pub fn skip<T>(what: &str, how: &str) -> Option<T> {
    let line = format!("{}: needs {what}; {how}", test_name());
    if required() {
        panic!("{line} (CI=true: nothing may be skipped)");
    }
    // Straight to the terminal: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {line}");
    None
}

/// The URL of the test PostgreSQL server (`SCRY_TEST_POSTGRES_URL`, or [`DEFAULT_POSTGRES_URL`]),
/// or `None` (and the test skipped) when nothing accepts a connection there within
/// [`CONNECT_TIMEOUT`].
pub fn postgres() -> Option<String> {
    let url =
        std::env::var("SCRY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    match reachable(&url) {
        Ok(()) => Some(url),
        Err(why) => skip(
            &format!("a PostgreSQL server at {} ({why})", without_password(&url)),
            "start one (.ci/run does: apt-get install postgresql, trust auth on 127.0.0.1, database `test`) or point SCRY_TEST_POSTGRES_URL at one",
        ),
    }
}

/// Whether the server named in `url` accepts a TCP connection; remembered per address, so a
/// suite of database tests waits at most once.
fn reachable(url: &str) -> Result<(), String> {
    static SEEN: Mutex<Vec<(String, Result<(), String>)>> = Mutex::new(Vec::new());
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let port = parsed.port().unwrap_or(5432);
    let key = format!("{host}:{port}");
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, answer)) = seen.iter().find(|(k, _)| *k == key) {
        return answer.clone();
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let answer = match (host, port).to_socket_addrs() {
        Err(e) => Err(format!("{key} does not resolve: {e}")),
        Ok(addresses) => {
            let mut last = format!("{key} has no address");
            let mut connected = false;
            for address in addresses {
                match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                    Ok(_) => {
                        connected = true;
                        break;
                    }
                    Err(e) => last = format!("{address}: {e}"),
                }
            }
            if connected { Ok(()) } else { Err(last) }
        }
    };
    seen.push((key, answer.clone()));
    answer
}

fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The programs named, each an absolute path or a name looked up on `PATH`, or `None` (and the
/// test skipped, with `install` as the way to get them) when one is missing.
pub fn programs<const N: usize>(names: [&str; N], install: &str) -> Option<[PathBuf; N]> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|name| find_program(name)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return skip(&missing.join(" and "), install);
    }
    Some(std::array::from_fn(|i| {
        found[i].clone().expect("every program was found")
    }))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.is_file().then(|| path.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// True when `python3` runs and imports every module named; otherwise the test is skipped with
/// `pip install {packages}` as the way to get them. No modules: Python 3 alone.
pub fn python_modules(modules: &[&str], packages: &str) -> bool {
    let how = if packages.is_empty() {
        "install Python 3 (.ci/run's machine has it)".to_owned()
    } else {
        format!("pip install {packages} (.ci/run does)")
    };
    if find_program("python3").is_none() {
        return skip::<()>("python3", &how).is_some();
    }
    let imports = if modules.is_empty() {
        "pass".to_owned()
    } else {
        format!("import {}", modules.join(", "))
    };
    let ok = Command::new("python3")
        .args(["-c", &imports])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    skip::<()>(
        &format!(
            "the Python module{} {}",
            plural(modules.len()),
            modules.join(", ")
        ),
        &how,
    )
    .is_some()
}

/// `text` as UTF-16 with its byte-order mark, as Windows tools write it (PowerShell's
/// `Out-File`, Excel's "Unicode text"): little-endian, or big-endian.
pub fn utf16_with_bom(text: &str, big_endian: bool) -> Vec<u8> {
    let units = text.encode_utf16();
    if big_endian {
        [0xfe, 0xff]
            .into_iter()
            .chain(units.flat_map(u16::to_be_bytes))
            .collect()
    } else {
        [0xff, 0xfe]
            .into_iter()
            .chain(units.flat_map(u16::to_le_bytes))
            .collect()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_server_is_found_and_a_closed_port_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = listener.local_addr().expect("address").port();
        assert_eq!(
            reachable(&format!("postgres://u@127.0.0.1:{open}/db")),
            Ok(())
        );
        let closed = {
            let spare = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            spare.local_addr().expect("address").port()
        };
        let refused = reachable(&format!("postgres://u@127.0.0.1:{closed}/db"));
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn programs_are_found_on_the_path_or_by_absolute_path() {
        assert!(find_program("sh").is_some(), "the positive control");
        assert!(find_program("/bin/sh").is_some());
        assert!(find_program("scry-testkit-no-such-program").is_none());
        assert_eq!(
            without_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
