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

pub use netpack::{DataSource, NetInfo, NetPack, PackBuilder, PackError, PackMeta, embedded};
