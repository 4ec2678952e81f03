//! RISC-V (RV64GC) hole patching.
//!
//! Stencils are built with the medlow code model (`-C code-model=small`, non-PIC): an
//! absolute hole is a `lui` + `addi`/load/store pair (`R_RISCV_HI20` with `LO12_I`/`LO12_S`),
//! which reaches the sign-extended 32-bit addresses. The medany model gives the PC-relative
//! pair `auipc` + `addi`/load/store (`PCREL_HI20` with `PCREL_LO12_I/S`) and `call` gives the
//! `auipc` + `jalr` pair (`R_RISCV_CALL[_PLT]`). Branches to holes give `JAL`/`BRANCH`, and
//! their compressed forms `RVC_JUMP`/`RVC_BRANCH`. `R_RISCV_64` appears in data.
//!
//! Instructions are little-endian: 32-bit, or 16-bit for the compressed ones. A patcher
//! changes only its immediate and checks the opcode of the instruction first.

use crate::{Branch, BranchUse, DirectBranch, Field, HoleBranch, PatchError, RelocKind, patch_field32, read, write};

/// Patches one RISC-V hole; see [`crate::patch`] for the meaning of the arguments.
#[inline(always)]
pub fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError> {
    let delta = value.wrapping_sub(place) as i64;
    match kind {
        RelocKind::Rv64Abs64 => write(code, offset, value.to_le_bytes()),
        RelocKind::RvHi20 => patch_field32(code, offset, is_lui, || {
            // lui sign-extends its 32-bit result, and the paired low part may be `addi` or
            // `addiw`: both rebuild `value` exactly when it is a sign-extended 32-bit number
            // that does not round up past i32::MAX, i.e. in [-2^31, 2^31 - 0x800).
            let v = value as i64;
            if !(-0x8000_0000..0x7fff_f800).contains(&v) {
                return Err(PatchError::OutOfRange);
            }
            Ok(u_imm(hi20(v)))
        }),
        RelocKind::RvLo12I => patch_field32(code, offset, is_i_type, || Ok(i_imm(value as i64))),
        RelocKind::RvLo12S => patch_field32(code, offset, is_s_type, || Ok(s_imm(value as i64))),
        RelocKind::RvPcrelHi20 => patch_field32(code, offset, is_auipc, || Ok(u_imm(pcrel_hi20(delta)?))),
        // `place` is the address of the paired auipc, so `delta` is the value it completes.
        RelocKind::RvPcrelLo12I => patch_field32(code, offset, is_i_type, || Ok(i_imm(delta))),
        RelocKind::RvPcrelLo12S => patch_field32(code, offset, is_s_type, || Ok(s_imm(delta))),
        RelocKind::RvCall | RelocKind::RvCallPlt => patch_call(code, offset, delta),
        RelocKind::RvJal => patch_field32(
            code,
            offset,
            |insn| insn & 0x7f == 0x6f,
            || {
                check_branch(delta, 21)?;
                Ok(Field { bits: j_field(delta), mask: J_MASK })
            },
        ),
        RelocKind::RvBranch => patch_field32(code, offset, is_branch, || {
            check_branch(delta, 13)?;
            Ok(Field { bits: b_field(delta), mask: B_MASK })
        }),
        // c.beqz, c.bnez: quadrant 1, funct3 110 or 111.
        RelocKind::RvcBranch => patch16(
            code,
            offset,
            |insn| insn & 0xc003 == 0xc001,
            || {
                check_branch(delta, 9)?;
                let d = delta as u16;
                // offset[8|4:3] in bits 12|11:10, offset[7:6|2:1|5] in bits 6:5|4:3|2.
                Ok(Field16 {
                    bits: (d & 0x100) << 4 | (d & 0x18) << 7 | (d & 0xc0) >> 1 | (d & 0x6) << 2 | (d & 0x20) >> 3,
                    mask: 0x1c7c,
                })
            },
        ),
        // c.j: quadrant 1, funct3 101 (001 is c.addiw on RV64, not c.jal).
        RelocKind::RvcJump => patch16(
            code,
            offset,
            |insn| insn & 0xe003 == 0xa001,
            || {
                check_branch(delta, 12)?;
                let d = delta as u16;
                // offset[11|4|9:8|10|6|7|3:1|5] in bits 12..2.
                Ok(Field16 {
                    bits: (d & 0x800) << 1
                        | (d & 0x10) << 7
                        | (d & 0x300) << 1
                        | (d & 0x400) >> 2
                        | (d & 0x40) << 1
                        | (d & 0x80) >> 1
                        | (d & 0xe) << 2
                        | (d & 0x20) >> 3,
                    mask: 0x1ffc,
                })
            },
        ),
        _ => Err(PatchError::WrongIsa),
    }
}

/// Bits to place into a 16-bit (compressed) instruction.
struct Field16 {
    bits: u16,
    mask: u16,
}

/// Reads the 32-bit instruction at `offset`, checks it with `expected`, computes the field
/// and writes it, leaving the other bits as they were. Checks run in the order bounds,
/// instruction, value; nothing is written on error.
/// `lui` for a hole whose stencil keeps only the low 32 bits of the `lui`+`addi` result
/// (eBPF immediates are truncated then sign-extended): any 32-bit pattern fits, including
/// those in `[2^31 - 0x800, 2^31)` that a full-value `HI20` cannot express.
#[inline]
pub(crate) fn patch_hi20_low32(code: &mut [u8], offset: usize, v: i32) -> Result<(), PatchError> {
    patch_field32(code, offset, is_lui, || Ok(u_imm(hi20(v as i64))))
}

/// [`patch_field32`] for a 16-bit instruction.
#[inline]
fn patch16(
    code: &mut [u8],
    offset: usize,
    expected: impl FnOnce(u16) -> bool,
    field: impl FnOnce() -> Result<Field16, PatchError>,
) -> Result<(), PatchError> {
    let insn = u16::from_le_bytes(read(code, offset)?);
    if !expected(insn) {
        return Err(PatchError::UnexpectedInstruction);
    }
    let Field16 { bits, mask } = field()?;
    write(code, offset, ((insn & !mask) | (bits & mask)).to_le_bytes())
}

/// `auipc` + `jalr` at `offset`: both instructions are checked before either is written.
#[inline]
fn patch_call(code: &mut [u8], offset: usize, delta: i64) -> Result<(), PatchError> {
    let jalr_offset = offset.checked_add(4).ok_or(PatchError::OutOfBounds)?;
    let auipc = u32::from_le_bytes(read(code, offset)?);
    let jalr = u32::from_le_bytes(read(code, jalr_offset)?);
    if !is_auipc(auipc) || jalr & 0x707f != 0x0067 {
        return Err(PatchError::UnexpectedInstruction);
    }
    let hi = u_imm(pcrel_hi20(delta)?);
    let lo = i_imm(delta);
    write(code, offset, ((auipc & !hi.mask) | hi.bits).to_le_bytes())?;
    write(code, jalr_offset, ((jalr & !lo.mask) | lo.bits).to_le_bytes())
}

#[inline]
fn is_lui(insn: u32) -> bool {
    insn & 0x7f == 0x37
}

#[inline]
fn is_auipc(insn: u32) -> bool {
    insn & 0x7f == 0x17
}

/// The I-type instructions a low part can complete: loads (integer and FP), `addi`, `addiw`
/// and `jalr`.
#[inline]
fn is_i_type(insn: u32) -> bool {
    matches!(insn & 0x7f, 0x03 | 0x07 | 0x13 | 0x1b | 0x67)
}

/// The S-type instructions: integer and FP stores.
#[inline]
fn is_s_type(insn: u32) -> bool {
    matches!(insn & 0x7f, 0x23 | 0x27)
}

/// Conditional branches (`beq` … `bgeu`; funct3 010 and 011 are reserved).
#[inline]
fn is_branch(insn: u32) -> bool {
    insn & 0x7f == 0x63 && !matches!((insn >> 12) & 7, 2 | 3)
}

/// The upper 20 bits of a `hi20`/`lo12` split: rounds so that the sign-extended low 12 bits
/// added back give `v`.
#[inline]
fn hi20(v: i64) -> u32 {
    (v.wrapping_add(0x800) >> 12) as u32 & 0xf_ffff
}

/// The PC-relative upper part of `delta`, for `auipc`. Address arithmetic is 64-bit here, so
/// the whole ±2GiB reach of `auipc` + a signed 12-bit low part is usable:
/// `delta + 0x800` must be a signed 32-bit number.
#[inline]
fn pcrel_hi20(delta: i64) -> Result<u32, PatchError> {
    let rounded = delta.checked_add(0x800).ok_or(PatchError::OutOfRange)?;
    if i32::try_from(rounded).is_err() {
        return Err(PatchError::OutOfRange);
    }
    Ok(hi20(delta))
}

/// U-type immediate field (bits 12..31) holding `hi20`.
#[inline]
fn u_imm(hi20: u32) -> Field {
    Field { bits: hi20 << 12, mask: 0xffff_f000 }
}

/// I-type immediate field (bits 20..31) holding the low 12 bits of `v`.
#[inline]
fn i_imm(v: i64) -> Field {
    Field { bits: ((v as u32) & 0xfff) << 20, mask: 0xfff0_0000 }
}

/// S-type immediate field: imm[11:5] in bits 25..31, imm[4:0] in bits 7..11.
#[inline]
fn s_imm(v: i64) -> Field {
    let lo = (v as u32) & 0xfff;
    Field { bits: (lo & 0xfe0) << 20 | (lo & 0x1f) << 7, mask: 0xfe00_0f80 }
}

/// Checks a branch offset: even, and within `±2^(bits - 1)` bytes.
#[inline]
fn check_branch(delta: i64, bits: u32) -> Result<(), PatchError> {
    if delta & 1 != 0 {
        return Err(PatchError::Misaligned);
    }
    let half = 1i64 << (bits - 1);
    if !(-half..half).contains(&delta) {
        return Err(PatchError::OutOfRange);
    }
    Ok(())
}

/// The Riscv64 [`crate::Patcher`].
#[derive(Clone, Copy, Debug)]
pub struct Riscv64;

impl crate::Patcher for Riscv64 {
    const ISA: crate::Isa = crate::Isa::Riscv64;

    #[inline(always)]
    fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError> {
        patch(kind, code, offset, value, place)
    }

    #[inline(always)]
    fn patch_imm32(kind: RelocKind, code: &mut [u8], offset: usize, v: i32, place: u64) -> Result<(), PatchError> {
        match kind {
            RelocKind::RvHi20 => patch_hi20_low32(code, offset, v),
            _ => patch(kind, code, offset, kind.imm32_value(v), place),
        }
    }
}

/// ELF relocation types (RISC-V ELF psABI) that stencils may carry. `R_RISCV_RELAX` (51)
/// is a hint the extractor drops; the PC-relative `HI20`/`LO12` pairs are patchable but
/// rejected by the extractor, since pairing them needs the `auipc`'s place.
pub fn reloc_from_elf(r_type: u32) -> Option<RelocKind> {
    use RelocKind::*;
    Some(match r_type {
        2 => Rv64Abs64,  // R_RISCV_64
        16 => RvBranch,  // R_RISCV_BRANCH
        17 => RvJal,     // R_RISCV_JAL
        18 => RvCall,    // R_RISCV_CALL
        19 => RvCallPlt, // R_RISCV_CALL_PLT
        26 => RvHi20,    // R_RISCV_HI20
        27 => RvLo12I,   // R_RISCV_LO12_I
        28 => RvLo12S,   // R_RISCV_LO12_S
        44 => RvcBranch, // R_RISCV_RVC_BRANCH
        45 => RvcJump,   // R_RISCV_RVC_JUMP
        _ => return None,
    })
}

/// `auipc`+`jalr` (CALL/CALL_PLT at `offset`): a tail jump when `jalr` links to x0.
pub fn branch_at(kind: RelocKind, code: &[u8], offset: usize) -> Option<Branch> {
    if !matches!(kind, RelocKind::RvCall | RelocKind::RvCallPlt) {
        return None;
    }
    let jalr = u32::from_le_bytes(read::<4>(code, offset.checked_add(4)?).ok()?);
    let branch_use = if (jalr >> 7) & 0x1f == 0 { BranchUse::TailJump } else { BranchUse::Call };
    Some(Branch { branch_use, start: offset, end: offset + 8 })
}

/// The offset field of a `jal`: imm[20|10:1|11|19:12] in bits 31..12.
const J_MASK: u32 = 0xffff_f000;
/// The offset field of a conditional branch: imm[12|10:5] in bits 31..25, imm[4:1|11] in
/// bits 11..7.
const B_MASK: u32 = 0xfe00_0f80;

const fn j_field(delta: i64) -> u32 {
    let d = delta as u32;
    (d & 0x10_0000) << 11 | (d & 0x7fe) << 20 | (d & 0x800) << 9 | (d & 0xf_f000)
}

const fn b_field(delta: i64) -> u32 {
    let d = delta as u32;
    (d & 0x1000) << 19 | (d & 0x7e0) << 20 | (d & 0x1e) << 7 | (d & 0x800) >> 4
}

/// The low `bits` bits of `v` sign-extended.
const fn sign_extend(v: u32, bits: u32) -> i64 {
    ((v << (32 - bits)) as i32 >> (32 - bits)) as i64
}

fn j_offset(insn: u32) -> i64 {
    let v = (insn >> 11) & 0x10_0000 | (insn >> 20) & 0x7fe | (insn >> 9) & 0x800 | insn & 0xf_f000;
    sign_extend(v, 21)
}

fn b_offset(insn: u32) -> i64 {
    let v = (insn >> 19) & 0x1000 | (insn >> 20) & 0x7e0 | (insn >> 7) & 0x1e | (insn << 4) & 0x800;
    sign_extend(v, 13)
}

/// `auipc t1, 0; jalr x0, 0(t1)`: the tail jump LLVM emits to a symbol (`CALL_PLT`).
const TAIL: [u32; 2] = [0x0000_0317, 0x0003_0067];

/// The length of the instruction at `at` (2 for the compressed forms), if there is one.
pub fn insn_len(code: &[u8], at: usize) -> Option<usize> {
    let low = *code.get(at)?;
    let len = if low & 3 == 3 { 4 } else { 2 };
    (at + len <= code.len()).then_some(len)
}

fn word_at(code: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(read::<4>(code, at).ok()?))
}

fn half_at(code: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(read::<2>(code, at).ok()?))
}

/// The direct jump or conditional branch at `at`: `jal x0` and `c.j` (unconditional),
/// `beq` … `bgeu`, `c.beqz`/`c.bnez` (the condition is the 4-byte branch with its offset
/// cleared; compressed ones widened to `beq`/`bne rs, x0`), and `auipc rd; jalr x0, rd` (an
/// 8-byte jump, the form tail calls to holes take).
pub fn direct_branch_at(code: &[u8], at: usize) -> Option<DirectBranch> {
    if insn_len(code, at)? == 2 {
        let h = half_at(code, at)? as u32;
        let bit = |from: u32, to: u32| ((h >> from) & 1) << to;
        return match h & 0xe003 {
            // c.j: imm[11|4|9:8|10|6|7|3:1|5] in bits 12..2.
            0xa001 => {
                let v = bit(12, 11)
                    | bit(11, 4)
                    | bit(10, 9)
                    | bit(9, 8)
                    | bit(8, 10)
                    | bit(7, 6)
                    | bit(6, 7)
                    | bit(5, 3)
                    | bit(4, 2)
                    | bit(3, 1)
                    | bit(2, 5);
                Some(DirectBranch { cond: None, offset: sign_extend(v, 12), len: 2 })
            }
            // c.beqz / c.bnez rs1': imm[8|4:3] in bits 12..10, imm[7:6|2:1|5] in bits 6..2.
            0xc001 | 0xe001 => {
                let v =
                    bit(12, 8) | bit(11, 4) | bit(10, 3) | bit(6, 7) | bit(5, 6) | bit(4, 2) | bit(3, 1) | bit(2, 5);
                let funct3 = (h >> 13) & 1;
                let rs1 = 8 + ((h >> 7) & 7);
                Some(DirectBranch { cond: Some(0x63 | funct3 << 12 | rs1 << 15), offset: sign_extend(v, 9), len: 2 })
            }
            _ => None,
        };
    }
    let insn = word_at(code, at)?;
    if is_branch(insn) {
        return Some(DirectBranch { cond: Some(insn & !B_MASK), offset: b_offset(insn), len: 4 });
    }
    if insn & 0xfff == 0x06f {
        return Some(DirectBranch { cond: None, offset: j_offset(insn), len: 4 });
    }
    // auipc rd; jalr x0, imm(rd)
    let jalr = word_at(code, at + 4).filter(|_| is_auipc(insn))?;
    let rd = (insn >> 7) & 0x1f;
    if jalr & 0x7fff == 0x67 && (jalr >> 15) & 0x1f == rd && rd != 0 {
        let offset = (insn & 0xffff_f000) as i32 as i64 + sign_extend(jalr >> 20, 12);
        return Some(DirectBranch { cond: None, offset, len: 8 });
    }
    None
}

/// A conditional branch's opposite: funct3 0/1, 4/5 and 6/7 are each other's inverse.
pub fn invert_condition(cond: u32) -> Option<u32> {
    is_branch(cond).then_some(cond ^ (1 << 12))
}

/// Internal branches: `bxx` (±4 KiB) and `jal x0` (±1 MiB), 4 bytes each.
pub fn branch_len(cond: Option<u32>, offset: i64) -> Option<usize> {
    let bits = match cond {
        Some(c) if is_branch(c) => 13,
        Some(_) => return None,
        None => 21,
    };
    (offset & 1 == 0 && check_branch(offset, bits).is_ok()).then_some(4)
}

pub fn encode_branch(cond: Option<u32>, offset: i64, len: usize, out: &mut [u8]) -> Option<()> {
    if len != 4 || branch_len(cond, offset)? != 4 {
        return None;
    }
    let insn = match cond {
        Some(c) => c & !B_MASK | b_field(offset),
        None => 0x06f | j_field(offset),
    };
    out.get_mut(..4)?.copy_from_slice(&insn.to_le_bytes());
    Some(())
}

/// A branch to a hole: the tail jump `auipc t1; jalr x0, t1` (`CALL`/`CALL_PLT`, ±2 GiB;
/// t1 is no argument register, so free at a jump), `jal x0` (`JAL`), or a conditional
/// branch (`BRANCH`, ±4 KiB).
pub fn encode_hole_branch(cond: Option<u32>, like: (RelocKind, i32), out: &mut [u8]) -> Option<HoleBranch> {
    let (kind, insn): (RelocKind, &[u32]) = match (cond, like.0) {
        (Some(c), RelocKind::RvCall | RelocKind::RvCallPlt | RelocKind::RvJal | RelocKind::RvBranch) => {
            (RelocKind::RvBranch, &[c & !B_MASK])
        }
        (None, RelocKind::RvCall | RelocKind::RvCallPlt) => (like.0, &TAIL),
        (None, RelocKind::RvJal) => (RelocKind::RvJal, &[0x06f]),
        _ => return None,
    };
    let bytes = out.get_mut(..4 * insn.len())?;
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(insn) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Some(HoleBranch { len: 4 * insn.len(), reloc_at: 0, kind, addend: like.1 })
}

/// Whether control never falls through the instruction at `at`: `jal x0`, `c.j`, `jalr x0`
/// (`jr`, `ret`) and `c.jr`.
pub fn ends_flow(code: &[u8], at: usize) -> bool {
    match insn_len(code, at) {
        Some(2) => half_at(code, at).is_some_and(|h| h & 0xe003 == 0xa001 || (h & 0xf07f == 0x8002 && h & 0x0f80 != 0)),
        Some(4) => word_at(code, at).is_some_and(|w| w & 0xfff == 0x06f || w & 0x7fff == 0x67),
        _ => false,
    }
}

/// Whether the instruction at `at` reads or branches PC-relative (`auipc`, `jal`, the
/// conditional branches, `c.j`, `c.beqz`/`c.bnez`): moving it changes its meaning unless a
/// relocation recomputes it.
pub fn is_pc_relative(code: &[u8], at: usize) -> bool {
    match insn_len(code, at) {
        Some(2) => half_at(code, at).is_some_and(|h| matches!(h & 0xe003, 0xa001 | 0xc001 | 0xe001)),
        Some(4) => word_at(code, at).is_some_and(|w| is_auipc(w) || w & 0x7f == 0x6f || is_branch(w)),
        _ => false,
    }
}

/// `nop` (`addi x0, x0, 0`).
pub const NOP: [u8; 4] = 0x0000_0013_u32.to_le_bytes();

/// Linux `riscv_flush_icache(start, end, flags)` (`__NR_riscv_flush_icache`).
#[cfg(all(target_arch = "riscv64", target_os = "linux"))]
const SYS_RISCV_FLUSH_ICACHE: usize = 259;

/// # Safety
///
/// `start..start + len` must be mapped memory.
#[cfg(all(target_arch = "riscv64", target_os = "linux"))]
pub(crate) unsafe fn sync_icache(start: usize, len: usize) {
    let end = start.saturating_add(len);
    // flags = 0: make the range coherent for every thread of the process, not only the
    // calling one (SYS_RISCV_FLUSH_ICACHE_LOCAL).
    let flags = 0usize;
    // SAFETY: the system call only performs cache maintenance (it does not access the
    // range and checks its arguments in the kernel); it clobbers nothing but a0, and the
    // `memory` clobber (no `nomem`) orders the code writes before it. The result is
    // ignored: it only fails for invalid flags, and ours are valid.
    unsafe {
        core::arch::asm!(
            "ecall",
            in("a7") SYS_RISCV_FLUSH_ICACHE,
            inlateout("a0") start => _,
            in("a1") end,
            in("a2") flags,
            options(nostack, preserves_flags),
        )
    };
}

/// # Safety
///
/// None beyond the signature's; kept `unsafe` to match the Linux variant.
#[cfg(all(target_arch = "riscv64", not(target_os = "linux")))]
pub(crate) unsafe fn sync_icache(_start: usize, _len: usize) {
    // SAFETY: `fence.i` orders earlier stores before later instruction fetches on this
    // hart; it accesses no memory.
    unsafe { core::arch::asm!("fence.i", options(nostack, preserves_flags)) };
}

#[cfg(test)]
mod tests {
    //! Expected encodings come from `llvm-mc -triple=riscv64 -mattr=+c,-relax -filetype=obj`
    //! (LLVM 14) and `llvm-objdump -d -r -M no-aliases`, as quoted in each test. Zero-field
    //! templates are the same lines assembled against an undefined `sym`.
    use super::*;
    use crate::Isa;

    /// Where the test code is placed: high enough that backward targets do not wrap.
    const BASE: u64 = 0x7f00_0000_0000;

    fn patched<const N: usize>(kind: RelocKind, template: [u8; N], value: u64, place: u64) -> [u8; N] {
        let mut code = template;
        patch(kind, &mut code, 0, value, place).unwrap();
        code
    }

    fn patch_err<const N: usize>(kind: RelocKind, template: [u8; N], value: u64, place: u64) -> PatchError {
        let mut code = template;
        let err = patch(kind, &mut code, 0, value, place).unwrap_err();
        assert_eq!(code, template, "a failed patch leaves the code untouched");
        err
    }

    /// Sign-extends the low `bits` bits of `v`.
    fn sext(v: u32, bits: u32) -> i64 {
        ((v as i64) << (64 - bits)) >> (64 - bits)
    }

    // lui a0, %hi(sym)                 -> 37 05 00 00 (R_RISCV_HI20)
    const LUI: [u8; 4] = [0x37, 0x05, 0x00, 0x00];
    // addi a0, a0, %lo(sym)            -> 13 05 05 00 (R_RISCV_LO12_I)
    const ADDI: [u8; 4] = [0x13, 0x05, 0x05, 0x00];
    // sd a1, %lo(sym)(a0)              -> 23 30 b5 00 (R_RISCV_LO12_S)
    const SD: [u8; 4] = [0x23, 0x30, 0xb5, 0x00];
    // 1: auipc a0, %pcrel_hi(sym)      -> 17 05 00 00 (R_RISCV_PCREL_HI20)
    const AUIPC: [u8; 4] = [0x17, 0x05, 0x00, 0x00];
    // call sym -> auipc ra, 0; jalr ra, 0(ra) -> 97 00 00 00 e7 80 00 00 (R_RISCV_CALL)
    const CALL: [u8; 8] = [0x97, 0x00, 0x00, 0x00, 0xe7, 0x80, 0x00, 0x00];

    #[test]
    fn abs64() {
        // .dword sym -> 8 zero bytes, R_RISCV_64
        assert_eq!(
            patched(RelocKind::Rv64Abs64, [0u8; 8], 0x1122_3344_5566_7788, 0),
            [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
    }

    #[test]
    fn hi20_lo12() {
        // lui a0, 0x12345 -> 37 55 34 12; addi a0, a0, 0x678 -> 13 05 85 67;
        // sd a1, 0x678(a0) -> 23 3c b5 66
        assert_eq!(patched(RelocKind::RvHi20, LUI, 0x1234_5678, 0), [0x37, 0x55, 0x34, 0x12]);
        assert_eq!(patched(RelocKind::RvLo12I, ADDI, 0x1234_5678, 0), [0x13, 0x05, 0x85, 0x67]);
        assert_eq!(patched(RelocKind::RvLo12S, SD, 0x1234_5678, 0), [0x23, 0x3c, 0xb5, 0x66]);
        // 0x12345800 = (0x12346 << 12) - 0x800:
        // lui a0, 0x12346 -> 37 65 34 12; addi a0, a0, -0x800 -> 13 05 05 80;
        // sd a1, -0x800(a0) -> 23 30 b5 80
        assert_eq!(patched(RelocKind::RvHi20, LUI, 0x1234_5800, 0), [0x37, 0x65, 0x34, 0x12]);
        assert_eq!(patched(RelocKind::RvLo12I, ADDI, 0x1234_5800, 0), [0x13, 0x05, 0x05, 0x80]);
        assert_eq!(patched(RelocKind::RvLo12S, SD, 0x1234_5800, 0), [0x23, 0x30, 0xb5, 0x80]);
        // lui a0, 0x7ffff -> 37 f5 ff 7f; addi a0, a0, 0x7ff -> 13 05 f5 7f: the largest value.
        assert_eq!(patched(RelocKind::RvHi20, LUI, 0x7fff_f7ff, 0), [0x37, 0xf5, 0xff, 0x7f]);
        assert_eq!(patched(RelocKind::RvLo12I, ADDI, 0x7fff_f7ff, 0), [0x13, 0x05, 0xf5, 0x7f]);
        // lui a0, 0x80000 -> 37 05 00 80: the smallest value, -2^31.
        let min = RelocKind::RvHi20.imm32_value(i32::MIN);
        assert_eq!(patched(RelocKind::RvHi20, LUI, min, 0), [0x37, 0x05, 0x00, 0x80]);
        assert_eq!(patch_err(RelocKind::RvHi20, LUI, 0x7fff_f800, 0), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvHi20, LUI, 0x8000_0000, 0), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvHi20, LUI, min - 1, 0), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvHi20, AUIPC, 0, 0), PatchError::UnexpectedInstruction);
        assert_eq!(patch_err(RelocKind::RvLo12I, SD, 0, 0), PatchError::UnexpectedInstruction);
        assert_eq!(patch_err(RelocKind::RvLo12S, ADDI, 0, 0), PatchError::UnexpectedInstruction);
    }

    /// Every accepted HI20 value is rebuilt exactly by `lui` + `addi` and by `lui` + `addiw`.
    #[test]
    fn hi20_lo12_reconstruct() {
        let edges = [i32::MIN as i64, -0x8000_0000 + 0x7ff, -0x800, -1, 0, 1, 0x7ff, 0x800, 0x7fff_f7ff];
        let samples = edges.into_iter().chain((0..4096).map(|i| (i as i64 * 0x10_0001) - 0x8000_0000 + i as i64));
        for v in samples.filter(|v| (-0x8000_0000..0x7fff_f800).contains(v)) {
            let hi = u32::from_le_bytes(patched(RelocKind::RvHi20, LUI, v as u64, 0));
            let lo = u32::from_le_bytes(patched(RelocKind::RvLo12I, ADDI, v as u64, 0));
            let lui = sext(hi & 0xffff_f000, 32);
            let lo12 = sext(lo >> 20, 12);
            assert_eq!(lui + lo12, v, "addi rebuilds {v:#x}");
            assert_eq!(((lui + lo12) as i32) as i64, v, "addiw rebuilds {v:#x}");
        }
    }

    #[test]
    fn pcrel_hi20_lo12() {
        let p = BASE + 0x8000_1000;
        // auipc a0, 0x12345 -> 17 55 34 12
        assert_eq!(patched(RelocKind::RvPcrelHi20, AUIPC, p + 0x1234_5678, p), [0x17, 0x55, 0x34, 0x12]);
        // addi a0, a0, %pcrel_lo(1b) -> 13 05 05 00 (R_RISCV_PCREL_LO12_I); with 0x678 -> 13 05 85 67
        assert_eq!(patched(RelocKind::RvPcrelLo12I, ADDI, p + 0x1234_5678, p), [0x13, 0x05, 0x85, 0x67]);
        // auipc a0, 0xfffff -> 17 f5 ff ff; lw a0, -1(a0) -> 03 25 f5 ff; sw a1, -1(a0) -> a3 2f b5 fe
        // lw a0, %pcrel_lo(1b)(a0) has the same zero template as lw a0, 0(a0) -> 03 25 05 00;
        // sw a1, %pcrel_lo(1b)(a0) -> 23 20 b5 00 (R_RISCV_PCREL_LO12_S)
        assert_eq!(patched(RelocKind::RvPcrelHi20, AUIPC, p - 0x1001, p), [0x17, 0xf5, 0xff, 0xff]);
        assert_eq!(patched(RelocKind::RvPcrelLo12I, [0x03, 0x25, 0x05, 0x00], p - 0x1001, p), [0x03, 0x25, 0xf5, 0xff]);
        assert_eq!(patched(RelocKind::RvPcrelLo12S, [0x23, 0x20, 0xb5, 0x00], p - 0x1001, p), [0xa3, 0x2f, 0xb5, 0xfe]);
        // Reach: delta + 0x800 must be a signed 32-bit number.
        assert_eq!(patched(RelocKind::RvPcrelHi20, AUIPC, p + 0x7fff_f7ff, p), [0x17, 0xf5, 0xff, 0x7f]);
        assert_eq!(patched(RelocKind::RvPcrelHi20, AUIPC, p - 0x8000_0800, p), [0x17, 0x05, 0x00, 0x80]);
        assert_eq!(patch_err(RelocKind::RvPcrelHi20, AUIPC, p + 0x7fff_f800, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvPcrelHi20, AUIPC, p - 0x8000_0801, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvPcrelHi20, AUIPC, 0, 1 << 63), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvPcrelHi20, LUI, p, p), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn call() {
        let p = BASE + 0x4000_0000;
        for kind in [RelocKind::RvCall, RelocKind::RvCallPlt] {
            // auipc ra, 0x80000 -> 97 00 00 80; jalr ra, -0x800(ra) -> e7 80 00 80: the lowest reach.
            assert_eq!(patched(kind, CALL, p - 0x8000_0800, p), [0x97, 0x00, 0x00, 0x80, 0xe7, 0x80, 0x00, 0x80]);
            // auipc ra, 0x7ffff -> 97 f0 ff 7f; jalr ra, 0x7ff(ra) -> e7 80 f0 7f: the highest.
            assert_eq!(patched(kind, CALL, p + 0x7fff_f7ff, p), [0x97, 0xf0, 0xff, 0x7f, 0xe7, 0x80, 0xf0, 0x7f]);
            assert_eq!(patch_err(kind, CALL, p + 0x7fff_f800, p), PatchError::OutOfRange);
            assert_eq!(patch_err(kind, CALL, p - 0x8000_0801, p), PatchError::OutOfRange);
            // Both words must be there, and be auipc + jalr.
            let mut short = [0u8; 7];
            short.copy_from_slice(&CALL[..7]);
            assert_eq!(patch_err(kind, short, p, p), PatchError::OutOfBounds);
            let mut swapped = [0u8; 8];
            swapped[..4].copy_from_slice(&CALL[4..]);
            swapped[4..].copy_from_slice(&CALL[..4]);
            assert_eq!(patch_err(kind, swapped, p, p), PatchError::UnexpectedInstruction);
        }
        let mut code = [0u8; 4];
        assert_eq!(patch(RelocKind::RvCall, &mut code, usize::MAX - 3, 0, 0), Err(PatchError::OutOfBounds));
    }

    #[test]
    fn jal() {
        // jal ra, sym -> ef 00 00 00 (R_RISCV_JAL)
        let jal = [0xef, 0x00, 0x00, 0x00];
        let p = BASE + 0x2c;
        // jal ra, 0xffffe (at 0x2c) -> ef f0 ff 7f
        assert_eq!(patched(RelocKind::RvJal, jal, p + 0xf_fffe, p), [0xef, 0xf0, 0xff, 0x7f]);
        // jal ra, -0x100000 (at 0x30) -> ef 00 00 80
        assert_eq!(patched(RelocKind::RvJal, jal, p.wrapping_sub(0x10_0000), p), [0xef, 0x00, 0x00, 0x80]);
        // jal ra, 0x876 (at 0x34) -> ef 00 70 07
        assert_eq!(patched(RelocKind::RvJal, jal, p + 0x876, p), [0xef, 0x00, 0x70, 0x07]);
        assert_eq!(patch_err(RelocKind::RvJal, jal, p + 0x10_0000, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvJal, jal, p.wrapping_sub(0x10_0002), p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvJal, jal, p + 3, p), PatchError::Misaligned);
        assert_eq!(patch_err(RelocKind::RvJal, LUI, p, p), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn branch() {
        // bne a0, a1, sym -> 63 10 b5 00 (R_RISCV_BRANCH)
        let bne = [0x63, 0x10, 0xb5, 0x00];
        let p = BASE + 0x1000;
        // bne a0, a1, 0xffe -> e3 1f b5 7e
        assert_eq!(patched(RelocKind::RvBranch, bne, p + 0xffe, p), [0xe3, 0x1f, 0xb5, 0x7e]);
        // bne a0, a1, -0x1000 -> 63 10 b5 80
        assert_eq!(patched(RelocKind::RvBranch, bne, p - 0x1000, p), [0x63, 0x10, 0xb5, 0x80]);
        // bne a0, a1, 0x2a -> 63 15 b5 02
        assert_eq!(patched(RelocKind::RvBranch, bne, p + 0x2a, p), [0x63, 0x15, 0xb5, 0x02]);
        assert_eq!(patch_err(RelocKind::RvBranch, bne, p + 0x1000, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvBranch, bne, p - 0x1002, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvBranch, bne, p + 1, p), PatchError::Misaligned);
        assert_eq!(patch_err(RelocKind::RvBranch, [0xef, 0x00, 0x00, 0x00], p, p), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn rvc_branch() {
        // c.beqz a0, 0 -> 01 c1; c.bnez s1, 0 -> 81 e0 (the R_RISCV_RVC_BRANCH templates)
        let beqz = [0x01, 0xc1];
        let bnez = [0x81, 0xe0];
        let p = BASE + 0x44;
        // c.beqz a0, 0xfe -> 7d cd
        assert_eq!(patched(RelocKind::RvcBranch, beqz, p + 0xfe, p), [0x7d, 0xcd]);
        // c.beqz a0, -0x100 -> 01 d1
        assert_eq!(patched(RelocKind::RvcBranch, beqz, p - 0x100, p), [0x01, 0xd1]);
        // c.bnez s1, 0x36 -> 9d e8
        assert_eq!(patched(RelocKind::RvcBranch, bnez, p + 0x36, p), [0x9d, 0xe8]);
        assert_eq!(patch_err(RelocKind::RvcBranch, beqz, p + 0x100, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvcBranch, beqz, p - 0x102, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvcBranch, beqz, p + 1, p), PatchError::Misaligned);
        assert_eq!(patch_err(RelocKind::RvcBranch, [0x01, 0xa0], p, p), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn rvc_jump() {
        // c.j 0 -> 01 a0 (the R_RISCV_RVC_JUMP template)
        let cj = [0x01, 0xa0];
        let p = BASE + 0x4a;
        // c.j 0x7fe -> fd af
        assert_eq!(patched(RelocKind::RvcJump, cj, p + 0x7fe, p), [0xfd, 0xaf]);
        // c.j -0x800 -> 01 b0
        assert_eq!(patched(RelocKind::RvcJump, cj, p.wrapping_sub(0x800), p), [0x01, 0xb0]);
        // c.j 0x2aa -> 6d a4
        assert_eq!(patched(RelocKind::RvcJump, cj, p + 0x2aa, p), [0x6d, 0xa4]);
        assert_eq!(patch_err(RelocKind::RvcJump, cj, p + 0x800, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvcJump, cj, p.wrapping_sub(0x802), p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::RvcJump, cj, p + 5, p), PatchError::Misaligned);
        // c.addiw a0, 0 (funct3 001) is not c.j.
        assert_eq!(patch_err(RelocKind::RvcJump, [0x01, 0x25], p, p), PatchError::UnexpectedInstruction);
    }

    /// Each compressed immediate bit lands in exactly one field bit, and round-trips.
    #[test]
    fn rvc_fields_round_trip() {
        for delta in (-0x800i64..0x800).step_by(2) {
            let code = patched(RelocKind::RvcJump, [0x01, 0xa0], delta as u64, 0);
            let i = u16::from_le_bytes(code) as u32;
            let bit = |n: u32| (i >> n) & 1;
            let imm = bit(12) << 11
                | bit(11) << 4
                | bit(10) << 9
                | bit(9) << 8
                | bit(8) << 10
                | bit(7) << 6
                | bit(6) << 7
                | bit(5) << 3
                | bit(4) << 2
                | bit(3) << 1
                | bit(2) << 5;
            assert_eq!(sext(imm, 12), delta);
            assert_eq!(i & 0xe003, 0xa001);
        }
        for delta in (-0x100i64..0x100).step_by(2) {
            let code = patched(RelocKind::RvcBranch, [0x81, 0xe0], delta as u64, 0);
            let i = u16::from_le_bytes(code) as u32;
            let bit = |n: u32| (i >> n) & 1;
            let imm = bit(12) << 8
                | bit(11) << 4
                | bit(10) << 3
                | bit(6) << 7
                | bit(5) << 6
                | bit(4) << 2
                | bit(3) << 1
                | bit(2) << 5;
            assert_eq!(sext(imm, 9), delta);
            assert_eq!(i & 0xe383, 0xe081, "opcode and rs1' kept");
        }
    }

    #[test]
    fn out_of_bounds() {
        for kind in RelocKind::ALL.into_iter().filter(|k| k.isa() == Isa::Riscv64) {
            let template = [0x01u8, 0xa0, 0x13, 0x05, 0x05];
            let mut code = template;
            let size = if matches!(kind, RelocKind::RvcBranch | RelocKind::RvcJump) { 2 } else { 4 };
            assert_eq!(patch(kind, &mut code, 5 - size + 1, 0, 0), Err(PatchError::OutOfBounds), "{kind:?}");
            assert_eq!(patch(kind, &mut code, usize::MAX, 0, 0), Err(PatchError::OutOfBounds), "{kind:?}");
            assert_eq!(patch(kind, &mut code, usize::MAX - 1, 0, 0), Err(PatchError::OutOfBounds), "{kind:?}");
            assert_eq!(code, template);
        }
        let mut code = [0x01u8, 0xa0, 0x01];
        assert_eq!(patch(RelocKind::RvcJump, &mut code, 0, 2, 0), Ok(()));
        assert_eq!(patch(RelocKind::Rv64Abs64, &mut [0u8; 7], 0, 0, 0), Err(PatchError::OutOfBounds));
    }

    #[test]
    fn wrong_isa() {
        let mut code = [0u8; 16];
        for kind in RelocKind::ALL.into_iter().filter(|k| k.isa() != Isa::Riscv64) {
            assert_eq!(patch(kind, &mut code, 0, 0, 0), Err(PatchError::WrongIsa), "{kind:?}");
        }
        assert_eq!(code, [0; 16]);
        assert_eq!(crate::patch(RelocKind::RvHi20, &mut code, 0, 0, 0), Err(PatchError::UnexpectedInstruction));
    }

    #[test]
    fn branches_and_relocation_types() {
        // tail sym -> auipc t1, 0 (17 03 00 00); jr t1 (67 00 03 00)
        // call sym -> auipc ra, 0 (97 00 00 00); jalr ra (e7 80 00 00)
        let tail = [0x17, 0x03, 0x00, 0x00, 0x67, 0x00, 0x03, 0x00];
        let call = [0x97, 0x00, 0x00, 0x00, 0xe7, 0x80, 0x00, 0x00];
        assert_eq!(
            branch_at(RelocKind::RvCallPlt, &tail, 0),
            Some(Branch { branch_use: BranchUse::TailJump, start: 0, end: 8 })
        );
        assert_eq!(branch_at(RelocKind::RvCall, &call, 0).map(|b| b.branch_use), Some(BranchUse::Call));
        assert_eq!(branch_at(RelocKind::RvCallPlt, &tail[..6], 0), None);
        assert_eq!(reloc_from_elf(19), Some(RelocKind::RvCallPlt));
        assert_eq!(reloc_from_elf(23), None); // PCREL_HI20: the extractor cannot pair it
        // nop -> 13 00 00 00
        assert_eq!(NOP, [0x13, 0, 0, 0]);
    }

    /// The branch peephole's forms (`llvm-mc -mattr=+c,-relax`, `.option norvc` for the
    /// 4-byte `jal`):
    /// ```text
    ///  0: 63 77 73 00  bgeu t1, t2, 0xe      e: e3 69 73 fe  bltu t1, t2, 0x0
    ///  4: 6f 00 a0 00  jal zero, 0xe        12: 6f f0 ff fe  jal zero, 0x0
    ///  8: 19 a0        c.j 0xe              16: 17 53 34 12  auipc t1, 74565
    ///  a: 11 e1        c.bnez a0, 0xe       1a: 67 00 03 ff  jalr zero, -16(t1)
    ///  c: 89 c0        c.beqz s1, 0xe       1e: 82 80        c.jr ra
    /// ```
    #[test]
    fn branch_forms_decode_and_encode() {
        let code = [
            0x63, 0x77, 0x73, 0x00, 0x6f, 0x00, 0xa0, 0x00, 0x19, 0xa0, 0x11, 0xe1, 0x89, 0xc0, 0xe3, 0x69, 0x73, 0xfe,
            0x6f, 0xf0, 0xff, 0xfe, 0x17, 0x53, 0x34, 0x12, 0x67, 0x00, 0x03, 0xff, 0x82, 0x80,
        ];
        let at = |i: usize| direct_branch_at(&code, i).map(|b| (b.cond, b.offset, b.len));
        let bgeu = 0x0073_7063; // bgeu t1, t2 with its offset cleared
        assert_eq!(at(0), Some((Some(bgeu), 14, 4)));
        assert_eq!(at(4), Some((None, 10, 4)));
        assert_eq!(at(8), Some((None, 6, 2)));
        // c.bnez a0 / c.beqz s1 widen to bne a0, x0 / beq s1, x0.
        assert_eq!(at(10), Some((Some(0x0005_1063), 4, 2)));
        assert_eq!(at(12), Some((Some(0x0004_8063), 2, 2)));
        assert_eq!(at(14), Some((Some(0x0073_6063), -14, 4)));
        assert_eq!(at(18), Some((None, -18, 4)));
        assert_eq!(at(22), Some((None, 0x1234_5000 - 16, 8)));
        assert_eq!(at(30), None);
        assert!(ends_flow(&code, 30) && ends_flow(&code, 4) && ends_flow(&code, 26) && !ends_flow(&code, 0));
        assert!(is_pc_relative(&code, 22) && is_pc_relative(&code, 0) && !is_pc_relative(&code, 30));
        // Re-encoding gives the bytes back (4-byte forms only).
        let mut out = [0u8; 8];
        encode_branch(Some(bgeu), 14, 4, &mut out).unwrap();
        assert_eq!(out[..4], code[..4]);
        encode_branch(invert_condition(bgeu), -14, 4, &mut out).unwrap();
        assert_eq!(out[..4], code[14..18]);
        encode_branch(None, -18, 4, &mut out).unwrap();
        assert_eq!(out[..4], code[18..22]);
        // Reach: bxx ±4 KiB, jal ±1 MiB, even offsets only.
        assert_eq!(branch_len(Some(bgeu), 4094), Some(4));
        assert_eq!(branch_len(Some(bgeu), 4096), None);
        assert_eq!(branch_len(None, -(1 << 20)), Some(4));
        assert_eq!(branch_len(None, 1 << 20), None);
        assert_eq!(branch_len(None, 3), None);
        // To a hole: the tail jump, jal, or bxx with BRANCH.
        let tail = encode_hole_branch(None, (RelocKind::RvCallPlt, 0), &mut out).unwrap();
        assert_eq!((tail.len, tail.kind, out), (8, RelocKind::RvCallPlt, [0x17, 0x03, 0, 0, 0x67, 0x00, 0x03, 0x00]));
        let cond = encode_hole_branch(Some(bgeu), (RelocKind::RvCallPlt, 0), &mut out).unwrap();
        assert_eq!((cond.len, cond.kind), (4, RelocKind::RvBranch));
        assert!(encode_hole_branch(None, (RelocKind::RvcJump, 0), &mut out).is_none());
        assert_eq!(Isa::Riscv64.direct_branch_at(&code, 0).map(|b| b.len), Some(4));
    }
}
