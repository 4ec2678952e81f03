//! The eBPF (RFC 9669) front end: program model, validation, text syntax, interpreter and
//! JIT lowering.

#[cfg(feature = "asm")]
pub mod asm;
mod bits;
#[cfg(feature = "elf")]
pub mod btf;
#[cfg(feature = "asm")]
pub mod disasm;
#[cfg(feature = "elf")]
pub mod elf;
pub mod error;
pub mod fast_interp;
pub mod fuel;
pub mod helpers;
pub mod insn;
pub mod interp;
#[cfg(feature = "jit")]
pub mod jit;
mod kept;
#[cfg(feature = "jit")]
mod lower;
pub mod maps;
pub mod memory;
pub mod program;
#[cfg(feature = "jit")]
mod provenance;
mod tables;
pub mod vm;

pub use error::{CompileError, Error, LoadError, RunError};
pub use fast_interp::FastProgram;
pub use helpers::{Helper, HelperFn, HelperRegistry, Helpers};
pub use insn::Insn;
pub use interp::STACK_SIZE;
#[cfg(feature = "jit")]
pub use jit::{JitProgram, ScratchSize};
#[cfg(feature = "jit")]
pub use lower::Observer;
pub use memory::{Memory, Region};
pub use program::Program;
pub use vm::{Mode, Vm};
