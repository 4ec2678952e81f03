//! tessera: a `no_std` copy-and-patch JIT with an eBPF (RFC 9669) front end.
//!
//! The copy-and-patch core is its own crate, [`tessera_jit`] (re-exported as [`jit`]): it
//! knows nothing of eBPF. Stencils (machine code with holes) are generated at build time per
//! ISA and committed as const tables (`tessera-stencils`); [`ebpf`] lowers validated
//! programs to stencils, and also interprets them.
//!
//! Features: `std` (with `alloc`; the executable code arena), `asm` (assembler and
//! disassembler), one feature per ISA whose stencil table is linked (`x86_64`, `aarch64`,
//! `riscv64`; any of them enables the JIT), `defmt`.
#![no_std]
// No reachable panics in library code: every failure is a typed error, and no index can
// go out of bounds (the lookups that index are the two in `ebpf::tables`, bounded by type).
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

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(all(feature = "jit", not(any(feature = "x86_64", feature = "aarch64", feature = "riscv64"))))]
compile_error!("the `jit` feature needs at least one ISA feature: `x86_64`, `aarch64` or `riscv64`");

pub mod ebpf;

pub use tessera_jit as jit;
pub use tessera_jit::{CodeBuffer, Isa};
