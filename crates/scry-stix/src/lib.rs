//! STIX 2.1 wire formats for scry: deterministic identifiers, patterns, TLP markings, and
//! the knowledge graph of an indicator as STIX objects written as bundles.
//!
//! **Architecture invariant (DESIGN.md invariant 4):** the id of a cyber-observable is derived
//! from its ID-contributing properties exactly as STIX 2.1 §2.9 prescribes (UUIDv5 in the STIX
//! namespace over the canonical JSON of those properties), so the same indicator always gets the
//! same id and re-ingesting data changes nothing. This crate is the only one that knows STIX JSON.

pub mod bundle;
pub mod graph;
pub mod id;
pub mod marking;
pub mod pattern;
pub mod timestamp;

pub use bundle::BundleWriter;
pub use graph::{
    BlockState, IndicatorState, MapError, MapOptions, StixObject, blocklist_entry_objects,
    indicator_objects,
};
pub use id::{observable_id, sco_id};
pub use marking::tlp_from_marking_ref;
pub use pattern::{Comparison, PatternError, comparisons};
