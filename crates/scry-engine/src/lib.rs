//! scry's service layer: what every front end (CLI, server, workers) calls to get work done.
//!
//! It owns the flow of an enrichment run — read, normalize, de-duplicate, pass the egress gate,
//! ask the sources, score, produce records — and the configuration that shapes it. Front ends only
//! parse their own arguments and render what the engine returns.

pub mod access;
pub mod archive;
pub mod automation;
pub mod blocklist;
pub mod config;
pub mod dashboard;
pub mod enrich;
pub mod imported;
pub mod merge;
pub mod pivot;
pub mod record;
pub mod setup;
pub mod sort;
pub mod targeting;
pub mod usage;
pub mod view;
pub mod worker;

/// The input readers, in a crate of their own (`scry-input`) so they can be fuzzed alone.
pub use scry_input as input;

pub use enrich::{Engine, EngineError, EnrichRequest, Progress, Summary};
pub use record::{Record, Status};
