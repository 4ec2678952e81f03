//! Stencil tables for x86-64, AArch64 and RISC-V, and the semantics they share with the
//! interpreter.
//!
//! The tables under `generated/` are produced by `tessera-stencil-gen` (`cargo xtask
//! stencils`) from the sources in `stencils/ops` with a pinned nightly, and committed, so
//! this crate builds with stable Rust and no LLVM. `cargo xtask stencils --check` fails
//! when sources and tables disagree.
#![no_std]

pub mod abi;
pub mod semantics;

// Generated files keep the generator's layout.
#[rustfmt::skip]
mod generated {
    pub mod aarch64;
    pub mod ids;
    pub mod riscv64;
    pub mod x86_64;
}

pub use generated::ids;
pub use tessera_arch::{Isa, RelocKind};

/// Which value a hole takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum HoleValue {
    /// The address of the next stencil (a non-trailing branch to the continuation).
    Continue = 0,
    /// A branch or call target chosen by the emitter.
    Jump = 1,
    /// A sign-extended 32-bit immediate or offset.
    Imm = 2,
    /// The upper 32 bits of a 64-bit immediate.
    ImmHi = 3,
    /// The index of the eBPF instruction the stencil implements (named in trap reports).
    Insn = 4,
}

/// One hole: where it is, how it is encoded, and what goes in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hole {
    /// Byte offset in the stencil's code.
    pub offset: u16,
    pub kind: RelocKind,
    pub value: HoleValue,
    /// The relocation addend (`A` in `S + A`).
    pub addend: i32,
}

/// Where one stencil's code and holes are in its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StencilEntry {
    pub code_start: u32,
    pub code_len: u16,
    pub holes_start: u16,
    pub holes_len: u16,
}

/// A stencil: machine code with holes.
#[derive(Clone, Copy, Debug)]
pub struct Stencil {
    pub code: &'static [u8],
    pub holes: &'static [Hole],
}

/// Every stencil of one ISA, as compact const data.
#[derive(Debug)]
pub struct StencilTable {
    pub isa: Isa,
    /// Digest of the generator inputs (sources, flags, toolchain) the table was built from.
    pub digest: u64,
    pub code: &'static [u8],
    pub holes: &'static [Hole],
    pub entries: &'static [StencilEntry],
}

impl StencilTable {
    /// The stencil with id `id` (ids come from [`ids`] and are the same for every ISA).
    #[inline]
    pub fn get(&self, id: ids::StencilId) -> Stencil {
        let e = self.entries[id.0 as usize];
        let code_start = e.code_start as usize;
        let holes_start = e.holes_start as usize;
        Stencil {
            code: &self.code[code_start..code_start + e.code_len as usize],
            holes: &self.holes[holes_start..holes_start + e.holes_len as usize],
        }
    }

    /// Bytes of const data this table occupies (code, hole records and index).
    pub fn size_bytes(&self) -> usize {
        self.code.len() + core::mem::size_of_val(self.holes) + core::mem::size_of_val(self.entries)
    }
}

/// The stencil table for `isa`.
pub fn table(isa: Isa) -> &'static StencilTable {
    match isa {
        Isa::X86_64 => &generated::x86_64::TABLE,
        Isa::Aarch64 => &generated::aarch64::TABLE,
        Isa::Riscv64 => &generated::riscv64::TABLE,
    }
}
