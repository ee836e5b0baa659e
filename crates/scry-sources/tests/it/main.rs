//! Integration tests of the sources: the Criminal IP client against a real `scry sandbox` server
//! on loopback, checked from the sandbox's request log, decoding of recorded answer shapes,
//! and the STIX bundles those answers map to (golden files).

mod criminalip;
mod decode;
mod golden;
