//! Integration tests of the engine: real files on disk, every input format, and whole runs
//! against sources defined here that record what reaches them.

mod enrich;
mod input;
