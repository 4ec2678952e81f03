//! The eBPF front end's stencil tables for x86-64, AArch64 and RISC-V, and the semantics
//! and JIT ABI they share with the interpreter.
//!
//! The tables under `generated/` are produced by `tessera-stencil-gen` (`cargo xtask
//! stencils`) from the sources in `stencils/ops` with a pinned nightly, and committed, so
//! this crate builds with stable Rust and no LLVM. `cargo xtask stencils --check` fails
//! when sources and tables disagree. Each ISA's table is linked only with its feature
//! (`x86_64`, `aarch64`, `riscv64`): a firmware image carries one.
#![no_std]
// No reachable panics in library code: every failure is a typed error.
#![cfg_attr(
    not(test),
    deny(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing
    )
)]

#[path = "../ops/abi.rs"]
pub mod abi;
#[path = "../ops/semantics.rs"]
pub mod semantics;

// Generated files keep the generator's layout.
#[rustfmt::skip]
mod generated {
    #[cfg(feature = "aarch64")]
    pub mod aarch64;
    pub mod ids;
    #[cfg(feature = "riscv64")]
    pub mod riscv64;
    #[cfg(feature = "x86_64")]
    pub mod x86_64;
}

pub use generated::ids;
pub use tessera_jit::table::StencilTable;
pub use tessera_jit::{Isa, RelocKind};

/// The stencil table for `isa`, if its feature links it.
pub fn table(isa: Isa) -> Option<&'static StencilTable> {
    match isa {
        #[cfg(feature = "x86_64")]
        Isa::X86_64 => Some(&generated::x86_64::TABLE),
        #[cfg(feature = "aarch64")]
        Isa::Aarch64 => Some(&generated::aarch64::TABLE),
        #[cfg(feature = "riscv64")]
        Isa::Riscv64 => Some(&generated::riscv64::TABLE),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The ISAs whose tables are linked.
pub const LINKED: &[Isa] = &[
    #[cfg(feature = "x86_64")]
    Isa::X86_64,
    #[cfg(feature = "aarch64")]
    Isa::Aarch64,
    #[cfg(feature = "riscv64")]
    Isa::Riscv64,
];
