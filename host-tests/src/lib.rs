//! Shared test support.

pub mod conformance;
pub mod elf_check;
pub mod program_gen;
