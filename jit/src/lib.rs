//! tessera-jit: the copy-and-patch core, independent of any bytecode.
//!
//! A front end (eBPF is the first) writes its operations once as Rust *stencils*; the
//! generator (`tessera-stencil-gen`) compiles them per ISA into a [`table::StencilTable`] of
//! machine code with holes. At run time the front end drives an [`emitter::Emitter`]: each
//! placed stencil is one small copy plus a few stores into a [`code_buffer::CodeBuffer`]
//! (caller memory, or with `std` a long-lived executable [`exec::CodeArena`]). Nothing here
//! knows what the stencils compute.
//!
//! `unsafe` lives in two files: [`code_buffer`] (memory the caller vouches is executable,
//! and cache upkeep on it) and [`exec`] (mapping executable memory).
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

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod code_buffer;
pub mod emitter;
pub mod error;
#[cfg(all(feature = "std", unix))]
pub mod exec;
pub mod table;

pub use code_buffer::{Allocation, CodeBuffer};
pub use emitter::{Emitter, Fixup, Holes, Label, Scratch};
pub use error::Error;
pub use table::{Family, Hole, HoleValue, PairFamily, Stencil, StencilEntry, StencilId, StencilTable};
pub use tessera_arch::{Isa, Patcher, RelocKind, WithPatcher};
