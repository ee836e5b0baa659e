//! The pure core of scry: what an indicator is, what kind of address or name it names, whether it
//! may leave the machine, and how its priority is explained.
//!
//! **Architecture invariant:** nothing in this crate performs I/O or reads the clock. Every function
//! takes values and returns values, so parsing, classification, egress decisions and scoring can be
//! tested exhaustively and reused by every front end (CLI, server, workers) unchanged.

pub mod calendar;
pub mod domain;
pub mod egress;
pub mod exposure;
pub mod extract;
pub mod facet;
pub mod ip;
pub mod network;
pub mod observable;
pub mod refang;
pub mod score;
pub mod tlp;
pub mod tolerant;

pub use domain::{DomainClass, DomainName};
pub use egress::{Cleared, Destination, EgressGate, EgressPolicy, SkipReason, Subject};
pub use facet::Facet;
pub use ip::IpClass;
pub use observable::{HashAlgorithm, Observable, ParseError};
pub use score::{Reason, Severity};
pub use tlp::Tlp;
