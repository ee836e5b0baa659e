//! Integration tests of scry-offline: files written here and read back through the public API,
//! and cross-checked against the vendor's own reader where one exists.

mod ctidb;
mod ctidb_bin;
#[path = "../support/ctidb_bin_writer.rs"]
mod ctidb_bin_writer;
