//! The eBPF (RFC 9669) front end: program model, validation, text syntax, interpreter and
//! JIT lowering.

pub mod asm;
#[cfg(feature = "elf")]
pub mod btf;
pub mod disasm;
#[cfg(feature = "elf")]
pub mod elf;
pub mod error;
pub mod helpers;
pub mod insn;
pub mod interp;
pub mod jit;
pub mod lower;
pub mod maps;
pub mod memory;
pub mod program;
pub mod vm;

pub use error::Error;
pub use helpers::{Helper, HelperFn, HelperRegistry, Helpers};
pub use insn::Insn;
pub use memory::{Memory, Region};
pub use program::Program;
pub use vm::{Mode, Vm};
