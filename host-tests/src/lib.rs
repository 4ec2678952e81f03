//! Shared test support.

pub mod asm_fuzz;
pub mod conformance;
pub mod program_gen;
pub mod validator_fuzz;
