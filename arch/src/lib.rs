//! Per-ISA hole patching and instruction-cache upkeep.
//!
//! Every relocation kind that the stencil code models can emit has a patcher here. Patchers
//! work on byte slices, check range and alignment, and return a typed error instead of
//! writing out of bounds. One file per ISA, all with the same shape:
//! `patch(kind, code, offset, value, place)`.
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

pub mod aarch64;
pub mod icache;
pub mod riscv64;
pub mod x86_64;

use core::fmt;

/// An instruction set the stencil tables are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Isa {
    X86_64 = 0,
    Aarch64 = 1,
    Riscv64 = 2,
}

impl Isa {
    pub const ALL: [Isa; 3] = [Isa::X86_64, Isa::Aarch64, Isa::Riscv64];

    /// The ISA this code is running on, if it is one of ours.
    pub const fn host() -> Option<Isa> {
        if cfg!(target_arch = "x86_64") {
            Some(Isa::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Isa::Aarch64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Isa::Riscv64)
        } else {
            None
        }
    }

    /// Short lower-case name, as used in target triples and table file names.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::X86_64 => "x86_64",
            Isa::Aarch64 => "aarch64",
            Isa::Riscv64 => "riscv64",
        }
    }

    /// Minimum alignment of an instruction, in bytes.
    pub const fn instruction_alignment(self) -> usize {
        match self {
            Isa::X86_64 => 1,
            Isa::Aarch64 => 4,
            // RV64GC: compressed instructions are 2 bytes.
            Isa::Riscv64 => 2,
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A relocation kind a stencil hole can carry. Names follow the ELF psABI of each ISA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum RelocKind {
    // x86-64
    X86Abs64 = 0,
    X86Pc32,
    X86Plt32,
    X86Abs32,
    X86Abs32S,
    /// `R_X86_64_8`: an 8-bit immediate (a shift count).
    X86Abs8,
    // AArch64
    A64Abs64,
    A64Call26,
    A64Jump26,
    A64CondBr19,
    A64TstBr14,
    A64AdrPrelPgHi21,
    A64AddAbsLo12Nc,
    A64Ldst8AbsLo12Nc,
    A64Ldst16AbsLo12Nc,
    A64Ldst32AbsLo12Nc,
    A64Ldst64AbsLo12Nc,
    A64Ldst128AbsLo12Nc,
    A64MovwUabsG0,
    A64MovwUabsG0Nc,
    A64MovwUabsG1,
    A64MovwUabsG1Nc,
    A64MovwUabsG2,
    A64MovwUabsG2Nc,
    A64MovwUabsG3,
    // RISC-V
    Rv64Abs64,
    RvHi20,
    RvLo12I,
    RvLo12S,
    RvPcrelHi20,
    RvPcrelLo12I,
    RvPcrelLo12S,
    RvCall,
    RvCallPlt,
    RvJal,
    RvBranch,
    RvcBranch,
    RvcJump,
}

impl RelocKind {
    /// Every kind, in discriminant order (for table decoding and exhaustive tests).
    pub const ALL: [RelocKind; 38] = [
        RelocKind::X86Abs64,
        RelocKind::X86Pc32,
        RelocKind::X86Plt32,
        RelocKind::X86Abs32,
        RelocKind::X86Abs32S,
        RelocKind::X86Abs8,
        RelocKind::A64Abs64,
        RelocKind::A64Call26,
        RelocKind::A64Jump26,
        RelocKind::A64CondBr19,
        RelocKind::A64TstBr14,
        RelocKind::A64AdrPrelPgHi21,
        RelocKind::A64AddAbsLo12Nc,
        RelocKind::A64Ldst8AbsLo12Nc,
        RelocKind::A64Ldst16AbsLo12Nc,
        RelocKind::A64Ldst32AbsLo12Nc,
        RelocKind::A64Ldst64AbsLo12Nc,
        RelocKind::A64Ldst128AbsLo12Nc,
        RelocKind::A64MovwUabsG0,
        RelocKind::A64MovwUabsG0Nc,
        RelocKind::A64MovwUabsG1,
        RelocKind::A64MovwUabsG1Nc,
        RelocKind::A64MovwUabsG2,
        RelocKind::A64MovwUabsG2Nc,
        RelocKind::A64MovwUabsG3,
        RelocKind::Rv64Abs64,
        RelocKind::RvHi20,
        RelocKind::RvLo12I,
        RelocKind::RvLo12S,
        RelocKind::RvPcrelHi20,
        RelocKind::RvPcrelLo12I,
        RelocKind::RvPcrelLo12S,
        RelocKind::RvCall,
        RelocKind::RvCallPlt,
        RelocKind::RvJal,
        RelocKind::RvBranch,
        RelocKind::RvcBranch,
        RelocKind::RvcJump,
    ];

    /// Decodes a discriminant as stored in the generated tables.
    pub const fn from_u8(v: u8) -> Option<RelocKind> {
        match Self::ALL.split_at_checked(v as usize) {
            Some((_, [kind, ..])) => Some(*kind),
            _ => None,
        }
    }

    /// The ISA whose objects carry this kind.
    pub const fn isa(self) -> Isa {
        match self as u8 {
            0..=5 => Isa::X86_64,
            6..=24 => Isa::Aarch64,
            _ => Isa::Riscv64,
        }
    }

    /// The value to pass to [`patch`] so that the instruction sequence this relocation
    /// belongs to materialises `v` in its low 32 bits (sign-extended where the sequence
    /// extends). Stencils read 32-bit immediates as `hole_address as u32 as i32`, and the
    /// only kind that zero-extends (x86-64 `R_X86_64_32`) must be given the unsigned pattern.
    /// The 8-bit field (`R_X86_64_8`) holds shift counts, which x86-64 masks to their low 5
    /// or 6 bits exactly as eBPF does: it is given the low 8 bits.
    pub const fn imm32_value(self, v: i32) -> u64 {
        match self {
            RelocKind::X86Abs32 => v as u32 as u64,
            RelocKind::X86Abs8 => v as u8 as u64,
            _ => v as i64 as u64,
        }
    }

    /// Whether the relocation only sets bits 32..63 of a value (AArch64 `MOVW_UABS_G2/G3`):
    /// dead for holes whose value the code truncates to 32 bits.
    pub const fn sets_only_high_half(self) -> bool {
        matches!(self, RelocKind::A64MovwUabsG2 | RelocKind::A64MovwUabsG2Nc | RelocKind::A64MovwUabsG3)
    }

    /// Whether the relocation's value is relative to the place it patches.
    pub const fn is_pc_relative(self) -> bool {
        matches!(
            self,
            RelocKind::X86Pc32
                | RelocKind::X86Plt32
                | RelocKind::A64Call26
                | RelocKind::A64Jump26
                | RelocKind::A64CondBr19
                | RelocKind::A64TstBr14
                | RelocKind::A64AdrPrelPgHi21
                | RelocKind::RvPcrelHi20
                | RelocKind::RvPcrelLo12I
                | RelocKind::RvPcrelLo12S
                | RelocKind::RvCall
                | RelocKind::RvCallPlt
                | RelocKind::RvJal
                | RelocKind::RvBranch
                | RelocKind::RvcBranch
                | RelocKind::RvcJump
        )
    }
}

/// How an instruction sequence uses a branch relocation (for stencil extraction: a trailing
/// tail jump to the continuation is removed; a call to it is an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchUse {
    /// An unconditional jump that does not return (`jmp`, `b`, `auipc`+`jr`).
    TailJump,
    /// A call that returns (`call`, `bl`, `auipc`+`jalr ra`).
    Call,
}

/// A branch instruction sequence found at a relocation: its use and its byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch {
    pub branch_use: BranchUse,
    pub start: usize,
    pub end: usize,
}

impl Isa {
    /// The relocation kind of an ELF `r_type` on this ISA, if tessera patches it.
    pub fn reloc_from_elf(self, r_type: u32) -> Option<RelocKind> {
        match self {
            Isa::X86_64 => x86_64::reloc_from_elf(r_type),
            Isa::Aarch64 => aarch64::reloc_from_elf(r_type),
            Isa::Riscv64 => riscv64::reloc_from_elf(r_type),
        }
    }

    /// The unconditional jump or call that a relocation of `kind` at `offset` belongs to,
    /// if it is one.
    pub fn branch_at(self, kind: RelocKind, code: &[u8], offset: usize) -> Option<Branch> {
        match self {
            Isa::X86_64 => x86_64::branch_at(kind, code, offset),
            Isa::Aarch64 => aarch64::branch_at(kind, code, offset),
            Isa::Riscv64 => riscv64::branch_at(kind, code, offset),
        }
    }

    /// A no-op instruction, as many bytes as the ISA's minimal patchable instruction.
    pub const fn nop(self) -> &'static [u8] {
        match self {
            Isa::X86_64 => &x86_64::NOP,
            Isa::Aarch64 => &aarch64::NOP,
            Isa::Riscv64 => &riscv64::NOP,
        }
    }
}

/// A direct jump or conditional branch (target given as an immediate offset), as the stencil
/// generator's branch peephole reads and writes it. Only the forms the peephole can rewrite
/// exactly are recognised; anything else stays as LLVM emitted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectBranch {
    /// `None` for an unconditional jump; else the condition in the ISA's own form, which
    /// [`Isa::invert_condition`] and [`Isa::encode_branch`] take back: the `cc` nibble on
    /// x86-64; on AArch64 the instruction with its offset field cleared (`b.cond`, `cbz`,
    /// `cbnz`, `tbz`, `tbnz`).
    pub cond: Option<u32>,
    /// The target's address minus the instruction's address.
    pub offset: i64,
    /// Length of the instruction in bytes.
    pub len: usize,
}

/// Where a branch to a hole keeps its relocation (see [`Isa::encode_hole_branch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoleBranch {
    pub len: usize,
    /// Offset of the relocated field in the instruction.
    pub reloc_at: usize,
    pub kind: RelocKind,
    pub addend: i32,
}

impl RelocKind {
    /// How far a branch of this kind reaches (the largest `|target - place|` it encodes,
    /// roughly), or `None` for a kind that is not a direct branch.
    pub const fn branch_reach(self) -> Option<u64> {
        Some(match self {
            RelocKind::X86Pc32 | RelocKind::X86Plt32 => 1 << 31,
            RelocKind::A64Call26 | RelocKind::A64Jump26 => 1 << 27,
            RelocKind::A64CondBr19 => 1 << 20,
            RelocKind::A64TstBr14 => 1 << 15,
            RelocKind::RvCall | RelocKind::RvCallPlt => 1 << 31,
            RelocKind::RvJal => 1 << 20,
            RelocKind::RvBranch => 1 << 12,
            RelocKind::RvcJump => 1 << 11,
            RelocKind::RvcBranch => 1 << 8,
            _ => return None,
        })
    }
}

impl Isa {
    /// The direct jump or conditional branch at `at`, if it is one the peephole rewrites.
    pub fn direct_branch_at(self, code: &[u8], at: usize) -> Option<DirectBranch> {
        match self {
            Isa::X86_64 => x86_64::direct_branch_at(code, at),
            Isa::Aarch64 => aarch64::direct_branch_at(code, at),
            Isa::Riscv64 => riscv64::direct_branch_at(code, at),
        }
    }

    /// The condition that holds exactly when `cond` does not.
    pub fn invert_condition(self, cond: u32) -> Option<u32> {
        match self {
            Isa::X86_64 => x86_64::invert_condition(cond),
            Isa::Aarch64 => aarch64::invert_condition(cond),
            Isa::Riscv64 => riscv64::invert_condition(cond),
        }
    }

    /// The length of the shortest encoding of a direct branch on `cond` that reaches
    /// `offset` (target minus the instruction's address), if any reaches it.
    pub fn branch_len(self, cond: Option<u32>, offset: i64) -> Option<usize> {
        match self {
            Isa::X86_64 => x86_64::branch_len(cond, offset),
            Isa::Aarch64 => aarch64::branch_len(cond, offset),
            Isa::Riscv64 => riscv64::branch_len(cond, offset),
        }
    }

    /// Encodes a direct branch on `cond` to `offset` in exactly `len` bytes (a length
    /// [`Isa::branch_len`] allowed for this offset or a longer one); `None` if it cannot.
    pub fn encode_branch(self, cond: Option<u32>, offset: i64, len: usize, out: &mut [u8]) -> Option<()> {
        match self {
            Isa::X86_64 => x86_64::encode_branch(cond, offset, len, out),
            Isa::Aarch64 => aarch64::encode_branch(cond, offset, len, out),
            Isa::Riscv64 => riscv64::encode_branch(cond, offset, len, out),
        }
    }

    /// Encodes a direct branch on `cond` whose target is a hole, into `out`, with its
    /// field zero; `like` is the relocation of the unconditional jump to that hole it
    /// replaces (its kind and addend).
    pub fn encode_hole_branch(self, cond: Option<u32>, like: (RelocKind, i32), out: &mut [u8]) -> Option<HoleBranch> {
        match self {
            Isa::X86_64 => x86_64::encode_hole_branch(cond, like, out),
            Isa::Aarch64 => aarch64::encode_hole_branch(cond, like, out),
            Isa::Riscv64 => riscv64::encode_hole_branch(cond, like, out),
        }
    }
}

/// One ISA's hole patching as a type, so that an emitter generic over it has the patch
/// logic monomorphised into its loop: no run-time ISA dispatch per hole.
pub trait Patcher {
    const ISA: Isa;

    /// Patches one hole of this ISA; see [`patch`] for the arguments.
    fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError>;

    /// Patches a hole whose stencil reads only the low 32 bits of its value; see
    /// [`patch_imm32`].
    #[inline(always)]
    fn patch_imm32(kind: RelocKind, code: &mut [u8], offset: usize, v: i32, place: u64) -> Result<(), PatchError> {
        Self::patch(kind, code, offset, kind.imm32_value(v), place)
    }
}

/// Something to run with the [`Patcher`] of an ISA chosen at run time (see
/// [`Isa::with_patcher`]): the one place where an ISA value becomes a type.
pub trait WithPatcher {
    type Output;
    fn call<P: Patcher>(self) -> Self::Output;
}

impl Isa {
    /// Runs `f` with this ISA's [`Patcher`].
    #[inline]
    pub fn with_patcher<F: WithPatcher>(self, f: F) -> F::Output {
        match self {
            Isa::X86_64 => f.call::<x86_64::X86_64>(),
            Isa::Aarch64 => f.call::<aarch64::Aarch64>(),
            Isa::Riscv64 => f.call::<riscv64::Riscv64>(),
        }
    }
}

/// Why a hole could not be patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PatchError {
    /// The patched bytes would lie outside the code slice.
    OutOfBounds,
    /// The value does not fit the relocation's field.
    OutOfRange,
    /// The value (or the place) breaks the relocation's alignment requirement.
    Misaligned,
    /// The kind belongs to another ISA than the patcher it was given to.
    WrongIsa,
    /// The bytes at the place are not the instruction the relocation expects.
    UnexpectedInstruction,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchError::OutOfBounds => "patch location outside the code buffer",
            PatchError::OutOfRange => "value out of range for the relocation",
            PatchError::Misaligned => "value or place misaligned for the relocation",
            PatchError::WrongIsa => "relocation kind belongs to another ISA",
            PatchError::UnexpectedInstruction => "instruction at the place does not match the relocation",
        })
    }
}

impl core::error::Error for PatchError {}

/// Patches one hole.
///
/// * `code` is the code being emitted; `offset` is where the relocation applies in it.
/// * `value` is `S + A`: the symbol's value plus the addend, as a 64-bit address or number.
/// * `place` is `P`: the address `code[offset]` will execute at. For `RvPcrelLo12I/S`,
///   `place` is the address of the paired `auipc` (the one carrying `RvPcrelHi20`), so
///   that the low part completes the same PC-relative value.
pub fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError> {
    struct Patch<'c>(RelocKind, &'c mut [u8], usize, u64, u64);
    impl WithPatcher for Patch<'_> {
        type Output = Result<(), PatchError>;
        fn call<P: Patcher>(self) -> Self::Output {
            P::patch(self.0, self.1, self.2, self.3, self.4)
        }
    }
    kind.isa().with_patcher(Patch(kind, code, offset, value, place))
}

/// Patches a hole whose stencil uses only the low 32 bits of the value, as eBPF immediates
/// are read (`hole_address as u32 as i32`): `v` may be any 32-bit pattern.
pub fn patch_imm32(kind: RelocKind, code: &mut [u8], offset: usize, v: i32, place: u64) -> Result<(), PatchError> {
    struct PatchImm32<'c>(RelocKind, &'c mut [u8], usize, i32, u64);
    impl WithPatcher for PatchImm32<'_> {
        type Output = Result<(), PatchError>;
        fn call<P: Patcher>(self) -> Self::Output {
            P::patch_imm32(self.0, self.1, self.2, self.3, self.4)
        }
    }
    kind.isa().with_patcher(PatchImm32(kind, code, offset, v, place))
}

/// Bits to place into a 32-bit instruction: `bits` already in position, `mask` covering them.
pub(crate) struct Field {
    pub bits: u32,
    pub mask: u32,
}

/// Reads the 32-bit instruction at `offset`, checks it with `expected`, computes the field
/// and writes it, leaving the other bits as they were. Checks run in the order bounds,
/// instruction, value, so the error names the first thing wrong; nothing is written on error.
#[inline]
pub(crate) fn patch_field32(
    code: &mut [u8],
    offset: usize,
    expected: impl FnOnce(u32) -> bool,
    field: impl FnOnce() -> Result<Field, PatchError>,
) -> Result<(), PatchError> {
    let insn = u32::from_le_bytes(read(code, offset)?);
    if !expected(insn) {
        return Err(PatchError::UnexpectedInstruction);
    }
    let Field { bits, mask } = field()?;
    write(code, offset, ((insn & !mask) | (bits & mask)).to_le_bytes())
}

/// Reads `N` bytes at `offset`, or reports that they lie outside `code`.
#[inline]
pub(crate) fn read<const N: usize>(code: &[u8], offset: usize) -> Result<[u8; N], PatchError> {
    let end = offset.checked_add(N).ok_or(PatchError::OutOfBounds)?;
    let bytes = code.get(offset..end).ok_or(PatchError::OutOfBounds)?;
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    Ok(out)
}

/// Writes `N` bytes at `offset`, or reports that they lie outside `code`.
#[inline]
pub(crate) fn write<const N: usize>(code: &mut [u8], offset: usize, bytes: [u8; N]) -> Result<(), PatchError> {
    let end = offset.checked_add(N).ok_or(PatchError::OutOfBounds)?;
    code.get_mut(offset..end).ok_or(PatchError::OutOfBounds)?.copy_from_slice(&bytes);
    Ok(())
}
