//! Integration tests of scry-offline: files written here and read back through the public API,
//! and cross-checked against the vendor's own reader where one exists.

mod ctidb;
