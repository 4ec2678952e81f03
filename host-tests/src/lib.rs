//! Shared test support.

pub mod conformance;
pub mod program_gen;
