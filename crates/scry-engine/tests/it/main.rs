//! Integration tests of the engine: whole runs against sources defined here that record what
//! reaches them.

mod enrich;
