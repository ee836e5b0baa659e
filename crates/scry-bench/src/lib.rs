//! The data scry's benchmarks run on, shared by the harness binary (`src/main.rs`, every workload
//! beside its floor) and the Criterion micro-benchmarks (`benches/micro.rs`, single operations
//! with confidence intervals), so both measure the same rules, lists and files from the same seed.

pub mod data;
pub mod fixtures;
