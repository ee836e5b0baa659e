//! Offline intelligence: what scry knows without an API key or a network.
//!
//! - [`netpack`]: the network data pack — IP → country and IP → autonomous system and
//!   organization, from the Internet registries' openly licensed data — its compact format,
//!   the builder that makes it from the upstream CSV files, and the copy embedded in the binary.
//! - [`ctidb`]: Criminal IP's `.ctidb` offline database, read as the vendor's reader reads it.
//! - [`ctidb_bin`]: Criminal IP's packed `.bin` offline database, layouts v1 and v2, with its
//!   licence signature checked.
//! - [`feeds`]: the formats threat feeds are published in (plain lists, netsets, CSV, Tor exit
//!   lists, abuse.ch exports, Criminal IP's C2 Daily Feed), read into indicators.
//! - [`phishing`]: look-alike and phishing heuristics for domains and URLs, against a list of
//!   protected brands.

pub mod ctidb;
pub mod ctidb_bin;
pub mod feeds;
pub mod netpack;
pub mod phishing;

/// Maps the file at `path` into memory, read-only, for the database readers.
pub(crate) fn map_read_only(path: &std::path::Path) -> std::io::Result<memmap2::Mmap> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the map is read-only; a file changed underneath it can give wrong answers, which
    // every read of the readers checks for, but not undefined behaviour in this process's own
    // memory.
    unsafe { memmap2::Mmap::map(&file) }
}

pub use netpack::{DataSource, NetInfo, NetPack, PackBuilder, PackError, PackMeta, embedded};
