//! Integration tests of scry-offline: files written here and read back through the public API,
//! and cross-checked against the vendor's own reader where one exists.

mod ctidb;
mod ctidb_bin;
#[path = "../support/ctidb_bin_writer.rs"]
mod ctidb_bin_writer;

/// True when Python and the vendor's reader `module` (pip `package`) are there; otherwise the test
/// is skipped (or fails under `CI=true`) with how to install it.
pub(crate) fn vendor_reader(module: &str, package: &str) -> bool {
    scry_testkit::python_modules(&[module], package)
}

/// What a Python script printed, from the vendor's reader `package` (named in the message when
/// the script fails, with how to install it).
pub(crate) fn vendor_python(script: &str, package: &str) -> String {
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the vendor's reader failed (install it with `pip install {package}`; .ci/run does): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
