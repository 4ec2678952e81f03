//! AArch64 hole patching.
//!
//! Absolute holes come from the large code model (`-C code-model=large`): a `movz` + `movk`
//! chain carrying `R_AARCH64_MOVW_UABS_G0..G3` (the small-immediate stencils only keep the
//! low groups). The small code model gives `adrp` + `add`/`ldr` pairs
//! (`ADR_PREL_PG_HI21` with `ADD_ABS_LO12_NC`/`LDSTn_ABS_LO12_NC`); branches to
//! continuations and calls give `JUMP26`/`CALL26`, and conditional branches inside a stencil
//! that target a hole give `CONDBR19`/`TSTBR14`. `ABS64` appears in literal pools.
//!
//! Instructions are little-endian 32-bit words; a patcher changes only its field and checks
//! the fixed opcode bits of the instruction first.

use crate::{Branch, BranchUse, DirectBranch, Field, HoleBranch, PatchError, RelocKind, patch_field32, write};

/// Patches one AArch64 hole; see [`crate::patch`] for the meaning of the arguments.
#[inline(always)]
pub fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError> {
    let delta = value.wrapping_sub(place) as i64;
    match kind {
        RelocKind::A64Abs64 => write(code, offset, value.to_le_bytes()),
        // B and BL; the psABI pairs CALL26 with BL and JUMP26 with B, but both resolve alike
        // and a tail call may be either.
        RelocKind::A64Call26 | RelocKind::A64Jump26 => patch_field32(
            code,
            offset,
            |insn| insn & 0x7c00_0000 == 0x1400_0000,
            || Ok(Field::new(branch_field(delta, 28)?, 0, 26)),
        ),
        // B.cond (and BC.cond), CBZ, CBNZ.
        RelocKind::A64CondBr19 => patch_field32(
            code,
            offset,
            |insn| insn & 0xff00_0000 == 0x5400_0000 || insn & 0x7e00_0000 == 0x3400_0000,
            || Ok(Field::new(branch_field(delta, 21)?, 5, 19)),
        ),
        // TBZ, TBNZ.
        RelocKind::A64TstBr14 => patch_field32(
            code,
            offset,
            |insn| insn & 0x7e00_0000 == 0x3600_0000,
            || Ok(Field::new(branch_field(delta, 16)?, 5, 14)),
        ),
        RelocKind::A64AdrPrelPgHi21 => patch_field32(
            code,
            offset,
            |insn| insn & 0x9f00_0000 == 0x9000_0000,
            || {
                let pages = ((value & !0xfff).wrapping_sub(place & !0xfff) as i64) >> 12;
                if !fits_signed(pages, 21) {
                    return Err(PatchError::OutOfRange);
                }
                let pages = pages as u32;
                // immlo in bits 29..30, immhi in bits 5..23.
                Ok(Field::split((pages & 0x3) << 29 | ((pages >> 2) & 0x7_ffff) << 5, 0x6000_0000 | 0x00ff_ffe0))
            },
        ),
        // ADD (immediate), 32 or 64 bit, unshifted.
        RelocKind::A64AddAbsLo12Nc => patch_field32(
            code,
            offset,
            |insn| insn & 0x7fc0_0000 == 0x1100_0000,
            || Ok(Field::new((value & 0xfff) as u32, 10, 12)),
        ),
        RelocKind::A64Ldst8AbsLo12Nc => patch_ldst(code, offset, value, 0),
        RelocKind::A64Ldst16AbsLo12Nc => patch_ldst(code, offset, value, 1),
        RelocKind::A64Ldst32AbsLo12Nc => patch_ldst(code, offset, value, 2),
        RelocKind::A64Ldst64AbsLo12Nc => patch_ldst(code, offset, value, 3),
        RelocKind::A64Ldst128AbsLo12Nc => patch_ldst(code, offset, value, 4),
        RelocKind::A64MovwUabsG0 => patch_movw(code, offset, value, 0, true),
        RelocKind::A64MovwUabsG0Nc => patch_movw(code, offset, value, 0, false),
        RelocKind::A64MovwUabsG1 => patch_movw(code, offset, value, 1, true),
        RelocKind::A64MovwUabsG1Nc => patch_movw(code, offset, value, 1, false),
        RelocKind::A64MovwUabsG2 => patch_movw(code, offset, value, 2, true),
        RelocKind::A64MovwUabsG2Nc => patch_movw(code, offset, value, 2, false),
        // The top group covers every 64-bit value: nothing to check.
        RelocKind::A64MovwUabsG3 => patch_movw(code, offset, value, 3, false),
        _ => Err(PatchError::WrongIsa),
    }
}

impl Field {
    /// A contiguous field: the low `width` bits of `value`, moved to bit `shift`.
    #[inline]
    fn new(value: u32, shift: u32, width: u32) -> Field {
        let mask = ((1u32 << width) - 1) << shift;
        Field { bits: (value << shift) & mask, mask }
    }

    /// A field in several pieces, with its bits already in position.
    #[inline]
    fn split(bits: u32, mask: u32) -> Field {
        Field { bits: bits & mask, mask }
    }
}

/// The word offset of a branch to `delta` bytes away, as an unsigned field of
/// `range_bits - 2` bits, for a branch reaching `±2^(range_bits - 1)` bytes.
#[inline]
fn branch_field(delta: i64, range_bits: u32) -> Result<u32, PatchError> {
    if delta & 3 != 0 {
        return Err(PatchError::Misaligned);
    }
    if !fits_signed(delta, range_bits) {
        return Err(PatchError::OutOfRange);
    }
    Ok(((delta >> 2) as u32) & ((1u32 << (range_bits - 2)) - 1))
}

/// Whether `v` is representable as a signed `bits`-bit number.
#[inline]
fn fits_signed(v: i64, bits: u32) -> bool {
    let half = 1i64 << (bits - 1);
    (-half..half).contains(&v)
}

/// LDR/STR (immediate, unsigned offset), including the SIMD&FP registers and PRFM: the
/// 12-bit field at bits 10..21 holds the offset scaled by the access size `1 << log2_size`.
#[inline]
fn patch_ldst(code: &mut [u8], offset: usize, value: u64, log2_size: u32) -> Result<(), PatchError> {
    let expected = |insn: u32| insn & 0x3b00_0000 == 0x3900_0000 && ldst_log2_size(insn) == log2_size;
    patch_field32(code, offset, expected, || {
        let lo12 = (value & 0xfff) as u32;
        if lo12 & ((1 << log2_size) - 1) != 0 {
            return Err(PatchError::Misaligned);
        }
        Ok(Field::new(lo12 >> log2_size, 10, 12))
    })
}

/// The access size (log2 of bytes) of a load/store with unsigned offset: `size` (bits
/// 30..31) except for 128-bit SIMD&FP accesses (V = 1, size = 0, opc = 1x).
#[inline]
fn ldst_log2_size(insn: u32) -> u32 {
    let size = insn >> 30;
    let simd = insn & (1 << 26) != 0;
    let opc_high = insn & (1 << 23) != 0;
    if simd && size == 0 && opc_high { 4 } else { size }
}

/// MOVZ/MOVK with `hw` = `group`: the 16-bit field at bits 5..20 takes bits
/// `16 * group..16 * group + 16` of `value`. `checked` forms require the value to fit in the
/// groups up to this one, so that the sequence builds it entirely.
#[inline]
fn patch_movw(code: &mut [u8], offset: usize, value: u64, group: u32, checked: bool) -> Result<(), PatchError> {
    let expected = |insn: u32| {
        let is_movz_or_movk = insn & 0x1f80_0000 == 0x1280_0000 && insn & 0x4000_0000 != 0;
        let hw = (insn >> 21) & 3;
        let sf = insn >> 31;
        // A 32-bit MOVZ/MOVK only has groups 0 and 1.
        is_movz_or_movk && hw == group && (sf == 1 || group < 2)
    };
    patch_field32(code, offset, expected, || {
        let limit_bits = 16 * (group + 1);
        if checked && limit_bits < 64 && value >> limit_bits != 0 {
            return Err(PatchError::OutOfRange);
        }
        Ok(Field::new(((value >> (16 * group)) & 0xffff) as u32, 5, 16))
    })
}

/// The Aarch64 [`crate::Patcher`].
#[derive(Clone, Copy, Debug)]
pub struct Aarch64;

impl crate::Patcher for Aarch64 {
    const ISA: crate::Isa = crate::Isa::Aarch64;

    #[inline(always)]
    fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError> {
        patch(kind, code, offset, value, place)
    }
}

/// ELF relocation types (AArch64 ELF ABI) that stencils may carry.
pub fn reloc_from_elf(r_type: u32) -> Option<RelocKind> {
    use RelocKind::*;
    Some(match r_type {
        257 => A64Abs64,            // R_AARCH64_ABS64
        263 => A64MovwUabsG0,       // R_AARCH64_MOVW_UABS_G0
        264 => A64MovwUabsG0Nc,     // R_AARCH64_MOVW_UABS_G0_NC
        265 => A64MovwUabsG1,       // R_AARCH64_MOVW_UABS_G1
        266 => A64MovwUabsG1Nc,     // R_AARCH64_MOVW_UABS_G1_NC
        267 => A64MovwUabsG2,       // R_AARCH64_MOVW_UABS_G2
        268 => A64MovwUabsG2Nc,     // R_AARCH64_MOVW_UABS_G2_NC
        269 => A64MovwUabsG3,       // R_AARCH64_MOVW_UABS_G3
        275 => A64AdrPrelPgHi21,    // R_AARCH64_ADR_PREL_PG_HI21
        277 => A64AddAbsLo12Nc,     // R_AARCH64_ADD_ABS_LO12_NC
        278 => A64Ldst8AbsLo12Nc,   // R_AARCH64_LDST8_ABS_LO12_NC
        279 => A64TstBr14,          // R_AARCH64_TSTBR14
        280 => A64CondBr19,         // R_AARCH64_CONDBR19
        282 => A64Jump26,           // R_AARCH64_JUMP26
        283 => A64Call26,           // R_AARCH64_CALL26
        284 => A64Ldst16AbsLo12Nc,  // R_AARCH64_LDST16_ABS_LO12_NC
        285 => A64Ldst32AbsLo12Nc,  // R_AARCH64_LDST32_ABS_LO12_NC
        286 => A64Ldst64AbsLo12Nc,  // R_AARCH64_LDST64_ABS_LO12_NC
        299 => A64Ldst128AbsLo12Nc, // R_AARCH64_LDST128_ABS_LO12_NC
        _ => return None,
    })
}

/// `b` (JUMP26) or `bl` (CALL26) at `offset`.
pub fn branch_at(kind: RelocKind, _code: &[u8], offset: usize) -> Option<Branch> {
    let branch_use = match kind {
        RelocKind::A64Jump26 => BranchUse::TailJump,
        RelocKind::A64Call26 => BranchUse::Call,
        _ => return None,
    };
    Some(Branch { branch_use, start: offset, end: offset + 4 })
}

/// The forms of direct branch: opcode mask and bits, and the bit position and width of
/// the word offset (`b`, `b.cond`, `cbz`/`cbnz`, `tbz`/`tbnz`).
const B: (u32, u32, u32, u32) = (0xfc00_0000, 0x1400_0000, 0, 26);
const B_COND: (u32, u32, u32, u32) = (0xff00_0010, 0x5400_0000, 5, 19);
const CBZ: (u32, u32, u32, u32) = (0x7e00_0000, 0x3400_0000, 5, 19);
const TBZ: (u32, u32, u32, u32) = (0x7e00_0000, 0x3600_0000, 5, 14);

/// The form of a direct branch word, if it is one the peephole rewrites (`b.cond` with
/// `al`/`nv` is not).
fn branch_form(insn: u32) -> Option<(u32, u32, u32, u32)> {
    [B, B_COND, CBZ, TBZ]
        .into_iter()
        .find(|&(mask, bits, _, _)| insn & mask == bits)
        .filter(|&form| form != B_COND || insn & 0xf < 14)
}

fn word(code: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(code.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// `b`, `b.cond`, `cbz`, `cbnz`, `tbz`, `tbnz` at `at`; the condition is the word with its
/// offset field cleared.
pub fn direct_branch_at(code: &[u8], at: usize) -> Option<DirectBranch> {
    let insn = word(code, at)?;
    let (_, bits, shift, width) = branch_form(insn)?;
    let field = (insn >> shift) & ((1 << width) - 1);
    let offset = (((field << (32 - width)) as i32) >> (32 - width)) as i64 * 4;
    let cond = (bits != B.1).then_some(insn & !(((1 << width) - 1) << shift));
    Some(DirectBranch { cond, offset, len: 4 })
}

/// `b.cond`: the low bit of the condition; `cbz`/`cbnz` and `tbz`/`tbnz`: bit 24.
pub fn invert_condition(cond: u32) -> Option<u32> {
    match branch_form(cond)? {
        B => None,
        B_COND => Some(cond ^ 1),
        _ => Some(cond ^ (1 << 24)),
    }
}

pub fn branch_len(cond: Option<u32>, offset: i64) -> Option<usize> {
    let (_, _, _, width) = branch_form(cond.unwrap_or(B.1))?;
    (offset & 3 == 0 && fits_signed(offset, width + 2)).then_some(4)
}

pub fn encode_branch(cond: Option<u32>, offset: i64, len: usize, out: &mut [u8]) -> Option<()> {
    let template = cond.unwrap_or(B.1);
    let (_, _, shift, width) = branch_form(template)?;
    if len != 4 || branch_len(cond, offset)? != 4 {
        return None;
    }
    let field = ((offset >> 2) as u32) & ((1 << width) - 1);
    out.get_mut(..4)?.copy_from_slice(&(template | field << shift).to_le_bytes());
    Some(())
}

/// `b` (JUMP26), `b.cond`/`cbz`/`cbnz` (CONDBR19) or `tbz`/`tbnz` (TSTBR14) to a hole; the
/// kind follows the form, `like` gives the addend.
pub fn encode_hole_branch(cond: Option<u32>, like: (RelocKind, i32), out: &mut [u8]) -> Option<HoleBranch> {
    if !matches!(like.0, RelocKind::A64Jump26 | RelocKind::A64CondBr19 | RelocKind::A64TstBr14) {
        return None;
    }
    let template = cond.unwrap_or(B.1);
    let kind = match branch_form(template)? {
        B => RelocKind::A64Jump26,
        TBZ => RelocKind::A64TstBr14,
        _ => RelocKind::A64CondBr19,
    };
    out.get_mut(..4)?.copy_from_slice(&template.to_le_bytes());
    Some(HoleBranch { len: 4, reloc_at: 0, kind, addend: like.1 })
}

/// Whether the word reads or branches PC-relative (`b`, `bl`, `b.cond`, `bc.cond`, `cbz`,
/// `tbz`, `adr`, `adrp`, literal loads and prefetches): moving it changes its meaning
/// unless a relocation recomputes it.
pub fn is_pc_relative(insn: u32) -> bool {
    insn & 0x7c00_0000 == 0x1400_0000 // b, bl
        || insn & 0xff00_0000 == 0x5400_0000 // b.cond, bc.cond
        || insn & 0x7c00_0000 == 0x3400_0000 // cbz, cbnz, tbz, tbnz
        || insn & 0x1f00_0000 == 0x1000_0000 // adr, adrp
        || insn & 0x3b00_0000 == 0x1800_0000 // ldr/ldrsw/prfm (literal), SIMD&FP included
}

/// Whether control never falls through the word: `b`, `br`, `ret` (other instructions,
/// `blr` and traps included, are taken to fall through).
pub fn ends_flow(insn: u32) -> bool {
    insn & 0xfc00_0000 == 0x1400_0000 || insn & 0xffff_fc1f == 0xd61f_0000 || insn & 0xffff_fc1f == 0xd65f_0000
}

/// `nop` (`hint #0`).
pub const NOP: [u8; 4] = 0xd503_201f_u32.to_le_bytes();

#[cfg(target_arch = "aarch64")]
/// `CTR_EL0.IDC`: cleaning the data cache is not required for coherence.
const CTR_IDC: u64 = 1 << 28;
#[cfg(target_arch = "aarch64")]
/// `CTR_EL0.DIC`: invalidating the instruction cache is not required for coherence.
const CTR_DIC: u64 = 1 << 29;

#[cfg(target_arch = "aarch64")]
/// Cleans and invalidates by line, as in the Arm ARM's "Instruction cache coherency"
/// sequence (and LLVM's `__clear_cache`).
///
/// # Safety
///
/// `start..start + len` must be mapped memory.
pub(crate) unsafe fn sync_icache(start: usize, len: usize) {
    let end = start.saturating_add(len);
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects; EL0 access is enabled by Linux
    // (SCTLR_EL1.UCT) and always allowed at EL1.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };

    if ctr & CTR_IDC == 0 {
        // DminLine, bits 16..19: log2 of the smallest data line in words.
        let line = 4usize << ((ctr >> 16) & 0xf);
        let mut addr = start & !(line - 1);
        while addr < end {
            // SAFETY: `addr` lies in a line overlapping the caller's mapped range
            // (`sync`'s contract); `dc cvau` only writes back cached data.
            unsafe { core::arch::asm!("dc cvau, {}", in(reg) addr, options(nostack, preserves_flags)) };
            addr = addr.wrapping_add(line);
            if addr == 0 {
                break;
            }
        }
    }
    // SAFETY: a barrier; no memory is accessed.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };

    if ctr & CTR_DIC == 0 {
        // IminLine, bits 0..3: log2 of the smallest instruction line in words.
        let line = 4usize << (ctr & 0xf);
        let mut addr = start & !(line - 1);
        while addr < end {
            // SAFETY: as for `dc cvau` above; `ic ivau` only drops instruction lines.
            unsafe { core::arch::asm!("ic ivau, {}", in(reg) addr, options(nostack, preserves_flags)) };
            addr = addr.wrapping_add(line);
            if addr == 0 {
                break;
            }
        }
        // SAFETY: a barrier; no memory is accessed.
        unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
    }
    // SAFETY: a context synchronisation barrier; no memory is accessed.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

#[cfg(test)]
mod tests {
    //! Expected encodings come from `llvm-mc -triple=aarch64 -filetype=obj` (LLVM 14) and
    //! `llvm-objdump -d -r`, as quoted in each test. Zero-field templates are the same lines
    //! assembled against an undefined `sym`.
    use super::*;

    /// Where the test code is placed: high enough that backward targets do not wrap.
    const BASE: u64 = 0x7f00_0000_0000;

    /// A little-endian instruction word as bytes, in objdump's byte order.
    fn le(insn: u32) -> [u8; 4] {
        insn.to_le_bytes()
    }

    /// Patches the word `template` (bytes as objdump prints them) and returns the new bytes.
    fn patched(kind: RelocKind, template: [u8; 4], value: u64, place: u64) -> [u8; 4] {
        let mut code = template;
        patch(kind, &mut code, 0, value, place).unwrap();
        code
    }

    fn patch_err(kind: RelocKind, template: [u8; 4], value: u64, place: u64) -> PatchError {
        let mut code = template;
        let err = patch(kind, &mut code, 0, value, place).unwrap_err();
        assert_eq!(code, template, "a failed patch leaves the code untouched");
        err
    }

    // b sym -> 00 00 00 14 (R_AARCH64_JUMP26); bl sym -> 00 00 00 94 (R_AARCH64_CALL26)
    const B_ZERO: [u8; 4] = [0x00, 0x00, 0x00, 0x14];
    const BL_ZERO: [u8; 4] = [0x00, 0x00, 0x00, 0x94];

    #[test]
    fn direct_branches_decode_encode_and_invert() {
        // b .-8 -> 17fffffe; b.ne .+8 -> 54000041; cbz x0, .+8 -> b4000040; tbnz w1, #3, .+12 -> 37180061
        let cases = [
            (0x17ff_fffe_u32, None, -8),
            (0x5400_0041, Some(0x5400_0001), 8),
            (0xb400_0040, Some(0xb400_0000), 8),
            (0x3718_0061, Some(0x3718_0001), 12),
        ];
        for (insn, cond, offset) in cases {
            let b = direct_branch_at(&insn.to_le_bytes(), 0).unwrap();
            assert_eq!((b.cond, b.offset, b.len), (cond, offset, 4));
            let mut out = [0u8; 4];
            encode_branch(cond, offset, 4, &mut out).unwrap();
            assert_eq!(u32::from_le_bytes(out), insn);
        }
        assert_eq!(invert_condition(0x5400_0001), Some(0x5400_0000)); // b.ne -> b.eq
        assert_eq!(invert_condition(0xb400_0000), Some(0xb500_0000)); // cbz -> cbnz
        assert_eq!(invert_condition(0x3718_0001), Some(0x3618_0001)); // tbnz -> tbz
        assert_eq!(direct_branch_at(&0x5400_000e_u32.to_le_bytes(), 0), None); // b.al
        assert_eq!(branch_len(Some(0x5400_0001), 1 << 20), None);
        assert_eq!(branch_len(Some(0x5400_0001), (1 << 20) - 4), Some(4));
        assert_eq!(branch_len(None, 6), None);
        let mut out = [0u8; 4];
        let h = encode_hole_branch(Some(0x5400_0003), (RelocKind::A64Jump26, 0), &mut out).unwrap();
        assert_eq!((u32::from_le_bytes(out), h.kind), (0x5400_0003, RelocKind::A64CondBr19));
        assert!(is_pc_relative(0x1000_0000) && is_pc_relative(0x9000_0000) && is_pc_relative(0x5800_0040));
        assert!(!is_pc_relative(0xd503_201f));
        assert!(ends_flow(0xd65f_03c0) && ends_flow(0xd61f_0200) && !ends_flow(0xd63f_0200));
    }

    #[test]
    fn abs64() {
        // .xword sym -> 8 zero bytes, R_AARCH64_ABS64
        let mut code = [0u8; 8];
        patch(RelocKind::A64Abs64, &mut code, 0, 0x1122_3344_5566_7788, 0).unwrap();
        assert_eq!(code, [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    }

    #[test]
    fn call26_jump26() {
        let p = BASE + 0x4000_0000;
        // b #0x1000 (at 0x0) -> 00 04 00 14
        assert_eq!(patched(RelocKind::A64Jump26, B_ZERO, p + 0x1000, p), [0x00, 0x04, 0x00, 0x14]);
        // bl #-0x1000 (at 0x4) -> 00 fc ff 97
        assert_eq!(patched(RelocKind::A64Call26, BL_ZERO, p - 0x1000, p), [0x00, 0xfc, 0xff, 0x97]);
        // b #0x7fffffc (at 0x18) -> ff ff ff 15
        assert_eq!(patched(RelocKind::A64Jump26, B_ZERO, p + 0x7ff_fffc, p), [0xff, 0xff, 0xff, 0x15]);
        // b #-0x8000000 (at 0x1c) -> 00 00 00 16
        assert_eq!(patched(RelocKind::A64Call26, B_ZERO, p - 0x800_0000, p), [0x00, 0x00, 0x00, 0x16]);
        // Range, alignment, opcode.
        assert_eq!(patch_err(RelocKind::A64Call26, BL_ZERO, p + 0x800_0000, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::A64Jump26, B_ZERO, p - 0x800_0004, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::A64Jump26, B_ZERO, p + 2, p), PatchError::Misaligned);
        assert_eq!(patch_err(RelocKind::A64Call26, le(0xd503_201f), p, p), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn condbr19() {
        let p = BASE + 0x8;
        // b.ne sym -> 01 00 00 54; cbz x3, sym -> 03 00 00 b4 (R_AARCH64_CONDBR19)
        let bne = [0x01, 0x00, 0x00, 0x54];
        let cbz = [0x03, 0x00, 0x00, 0xb4];
        // b.ne #0xffffc (at 0x8) -> e1 ff 7f 54
        assert_eq!(patched(RelocKind::A64CondBr19, bne, p + 0xf_fffc, p), [0xe1, 0xff, 0x7f, 0x54]);
        // b.ne #0x400 (at 0x20) -> 01 20 00 54
        assert_eq!(patched(RelocKind::A64CondBr19, bne, p + 0x400, p), [0x01, 0x20, 0x00, 0x54]);
        // cbz x3, #-0x100000 (at 0xc) -> 03 00 80 b4
        assert_eq!(patched(RelocKind::A64CondBr19, cbz, p - 0x10_0000, p), [0x03, 0x00, 0x80, 0xb4]);
        assert_eq!(patch_err(RelocKind::A64CondBr19, bne, p + 0x10_0000, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::A64CondBr19, cbz, p - 0x10_0004, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::A64CondBr19, cbz, p + 6, p), PatchError::Misaligned);
        assert_eq!(patch_err(RelocKind::A64CondBr19, B_ZERO, p, p), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn tstbr14() {
        let p = BASE + 0x10;
        // tbnz w5, #3, sym -> 05 00 18 37 (R_AARCH64_TSTBR14)
        let tbnz = [0x05, 0x00, 0x18, 0x37];
        // tbnz w5, #3, #0x7ffc (at 0x10) -> e5 ff 1b 37
        assert_eq!(patched(RelocKind::A64TstBr14, tbnz, p + 0x7ffc, p), [0xe5, 0xff, 0x1b, 0x37]);
        // tbnz w5, #3, #-0x8000 (at 0x14) -> 05 00 1c 37
        assert_eq!(patched(RelocKind::A64TstBr14, tbnz, p - 0x8000, p), [0x05, 0x00, 0x1c, 0x37]);
        assert_eq!(patch_err(RelocKind::A64TstBr14, tbnz, p + 0x8000, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::A64TstBr14, tbnz, p - 0x8004, p), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::A64TstBr14, tbnz, p + 1, p), PatchError::Misaligned);
        assert_eq!(patch_err(RelocKind::A64TstBr14, [0x01, 0x00, 0x00, 0x54], p, p), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn adr_prel_pg_hi21() {
        // adrp x1, sym -> 01 00 00 90 (R_AARCH64_ADR_PREL_PG_HI21)
        let adrp = [0x01, 0x00, 0x00, 0x90];
        // adrp x1, #0x12345000 (at 0x0) -> 21 1a 09 b0
        assert_eq!(patched(RelocKind::A64AdrPrelPgHi21, adrp, 0x1234_5678, 0), [0x21, 0x1a, 0x09, 0xb0]);
        // Only pages count: the same page delta from anywhere in P's page.
        assert_eq!(patched(RelocKind::A64AdrPrelPgHi21, adrp, 0x7_1234_5000, 0x7_0000_0ffc), [0x21, 0x1a, 0x09, 0xb0]);
        // adrp x1, #-0x100000000 (at 0x4) -> 01 00 80 90
        assert_eq!(patched(RelocKind::A64AdrPrelPgHi21, adrp, 0x5_0000_0123, 0x6_0000_0004), [0x01, 0x00, 0x80, 0x90]);
        // adrp x1, #0xfffff000 (at 0x8) -> e1 ff 7f f0
        assert_eq!(patched(RelocKind::A64AdrPrelPgHi21, adrp, 0xffff_ffff, 0x8), [0xe1, 0xff, 0x7f, 0xf0]);
        assert_eq!(patch_err(RelocKind::A64AdrPrelPgHi21, adrp, 0x1_0000_0000, 0x8), PatchError::OutOfRange);
        assert_eq!(patch_err(RelocKind::A64AdrPrelPgHi21, adrp, 0x4_ffff_ffff, 0x6_0000_0000), PatchError::OutOfRange);
        // adr x1, sym (op = 0) is not adrp.
        assert_eq!(patch_err(RelocKind::A64AdrPrelPgHi21, le(0x1000_0001), 0, 0), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn add_abs_lo12_nc() {
        // add x2, x1, :lo12:sym -> 22 00 00 91 (R_AARCH64_ADD_ABS_LO12_NC)
        // add x2, x1, #0x678    -> 22 e0 19 91
        let add = [0x22, 0x00, 0x00, 0x91];
        assert_eq!(patched(RelocKind::A64AddAbsLo12Nc, add, 0xdead_b678, 0), [0x22, 0xe0, 0x19, 0x91]);
        // No check: only the low 12 bits are taken.
        assert_eq!(patched(RelocKind::A64AddAbsLo12Nc, add, u64::MAX - 0xfff + 0x678, 0), [0x22, 0xe0, 0x19, 0x91]);
        // add x2, x1, #0, lsl #12 has another meaning for the field.
        assert_eq!(patch_err(RelocKind::A64AddAbsLo12Nc, le(0x9140_0022), 0, 0), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn ldst_abs_lo12_nc() {
        // Template (R_AARCH64_LDSTn_ABS_LO12_NC)    -> patched with #0x678 (#0x670 for q)
        // ldrb w3, [x1, :lo12:sym] -> 23 00 40 39    ldrb w3, [x1, #0x678] -> 23 e0 59 39
        // ldrh w3, [x1, :lo12:sym] -> 23 00 40 79    ldrh w3, [x1, #0x678] -> 23 f0 4c 79
        // ldr w3, [x1, :lo12:sym]  -> 23 00 40 b9    ldr w3, [x1, #0x678]  -> 23 78 46 b9
        // ldr x3, [x1, :lo12:sym]  -> 23 00 40 f9    ldr x3, [x1, #0x678]  -> 23 3c 43 f9
        // ldr q3, [x1, :lo12:sym]  -> 23 00 c0 3d    ldr q3, [x1, #0x670]  -> 23 9c c1 3d
        // str x3, [x1, :lo12:sym]  -> 23 00 00 f9    str x3, [x1, #0x678]  -> 23 3c 03 f9
        let cases = [
            (RelocKind::A64Ldst8AbsLo12Nc, [0x23, 0x00, 0x40, 0x39], 0x678, [0x23, 0xe0, 0x59, 0x39]),
            (RelocKind::A64Ldst16AbsLo12Nc, [0x23, 0x00, 0x40, 0x79], 0x678, [0x23, 0xf0, 0x4c, 0x79]),
            (RelocKind::A64Ldst32AbsLo12Nc, [0x23, 0x00, 0x40, 0xb9], 0x678, [0x23, 0x78, 0x46, 0xb9]),
            (RelocKind::A64Ldst64AbsLo12Nc, [0x23, 0x00, 0x40, 0xf9], 0x678, [0x23, 0x3c, 0x43, 0xf9]),
            (RelocKind::A64Ldst128AbsLo12Nc, [0x23, 0x00, 0xc0, 0x3d], 0x670, [0x23, 0x9c, 0xc1, 0x3d]),
            (RelocKind::A64Ldst64AbsLo12Nc, [0x23, 0x00, 0x00, 0xf9], 0x678, [0x23, 0x3c, 0x03, 0xf9]),
        ];
        for (kind, template, lo12, want) in cases {
            assert_eq!(patched(kind, template, 0x1234_5000 + lo12, 0), want, "{kind:?}");
        }
        // The low 12 bits must be a multiple of the access size.
        for (kind, template, _, _) in cases.into_iter().skip(1) {
            assert_eq!(patch_err(kind, template, 0x1234_5679, 0), PatchError::Misaligned, "{kind:?}");
        }
        assert_eq!(patch_err(RelocKind::A64Ldst128AbsLo12Nc, cases[4].1, 0x678, 0), PatchError::Misaligned);
        // The access size of the instruction must match the relocation.
        assert_eq!(patch_err(RelocKind::A64Ldst32AbsLo12Nc, cases[3].1, 0x678, 0), PatchError::UnexpectedInstruction);
        assert_eq!(patch_err(RelocKind::A64Ldst64AbsLo12Nc, cases[4].1, 0x670, 0), PatchError::UnexpectedInstruction);
        // add is not a load/store.
        let add = [0x22, 0x00, 0x00, 0x91];
        assert_eq!(patch_err(RelocKind::A64Ldst8AbsLo12Nc, add, 0, 0), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn movw_uabs() {
        // Templates (R_AARCH64_MOVW_UABS_Gn[_NC])        -> patched
        // movz x0, #:abs_g0:sym    -> 00 00 80 d2         movz x0, #0xbeef          -> e0 dd 97 d2
        // movk x0, #:abs_g0_nc:sym -> 00 00 80 f2         movk x0, #0xbeef          -> e0 dd 97 f2
        // movz x0, #:abs_g1:sym    -> 00 00 a0 d2         movz x0, #0xdead, lsl #16 -> a0 d5 bb d2
        // movk x0, #:abs_g1_nc:sym -> 00 00 a0 f2         movk x0, #0xdead, lsl #16 -> a0 d5 bb f2
        // movz x0, #:abs_g2:sym    -> 00 00 c0 d2         movz x0, #0x5678, lsl #32 -> 00 cf ca d2
        // movk x0, #:abs_g2_nc:sym -> 00 00 c0 f2         movk x0, #0x5678, lsl #32 -> 00 cf ca f2
        // movz x0, #:abs_g3:sym    -> 00 00 e0 d2         movz x0, #0x1234, lsl #48 -> 80 46 e2 d2
        // movk x0, #:abs_g3:sym    -> 00 00 e0 f2         movk x0, #0x1234, lsl #48 -> 80 46 e2 f2
        let s = 0x1234_5678_dead_beefu64;
        let cases = [
            (RelocKind::A64MovwUabsG0, [0x00, 0x00, 0x80, 0xd2], [0xe0, 0xdd, 0x97, 0xd2]),
            (RelocKind::A64MovwUabsG0Nc, [0x00, 0x00, 0x80, 0xf2], [0xe0, 0xdd, 0x97, 0xf2]),
            (RelocKind::A64MovwUabsG1, [0x00, 0x00, 0xa0, 0xd2], [0xa0, 0xd5, 0xbb, 0xd2]),
            (RelocKind::A64MovwUabsG1Nc, [0x00, 0x00, 0xa0, 0xf2], [0xa0, 0xd5, 0xbb, 0xf2]),
            (RelocKind::A64MovwUabsG2, [0x00, 0x00, 0xc0, 0xd2], [0x00, 0xcf, 0xca, 0xd2]),
            (RelocKind::A64MovwUabsG2Nc, [0x00, 0x00, 0xc0, 0xf2], [0x00, 0xcf, 0xca, 0xf2]),
            (RelocKind::A64MovwUabsG3, [0x00, 0x00, 0xe0, 0xd2], [0x80, 0x46, 0xe2, 0xd2]),
            (RelocKind::A64MovwUabsG3, [0x00, 0x00, 0xe0, 0xf2], [0x80, 0x46, 0xe2, 0xf2]),
        ];
        for (n, (kind, template, want)) in cases.into_iter().enumerate() {
            // The checked forms need a value that fits; mask it to the groups up to this one.
            let group = n as u32 / 2;
            let value = if group < 3 { s & ((1u64 << (16 * (group + 1))) - 1) } else { s };
            assert_eq!(patched(kind, template, value, 0), want, "{kind:?}");
            // The NC forms and G3 ignore the higher bits.
            if n % 2 == 1 || group == 3 {
                assert_eq!(patched(kind, template, s, 0), want, "{kind:?}");
            } else {
                assert_eq!(patch_err(kind, template, value + (1u64 << (16 * (group + 1))), 0), PatchError::OutOfRange);
            }
        }
        // movz w0, #:abs_g0:sym -> 00 00 80 52; movz w0, #0xbeef -> e0 dd 97 52
        assert_eq!(patched(RelocKind::A64MovwUabsG0, [0x00, 0x00, 0x80, 0x52], 0xbeef, 0), [0xe0, 0xdd, 0x97, 0x52]);
        // The shift (hw) of the instruction must be the relocation's group.
        assert_eq!(patch_err(RelocKind::A64MovwUabsG1, cases[0].1, 0, 0), PatchError::UnexpectedInstruction);
        // movn x0, #0 is not a MOVW_UABS instruction.
        assert_eq!(patch_err(RelocKind::A64MovwUabsG0, le(0x9280_0000), 0, 0), PatchError::UnexpectedInstruction);
    }

    #[test]
    fn out_of_bounds() {
        let template = [0u8, 0, 0, 0x14, 0, 0];
        for kind in RelocKind::ALL.into_iter().filter(|k| k.isa() == crate::Isa::Aarch64) {
            let mut code = template;
            assert_eq!(patch(kind, &mut code, 3, 0, 0), Err(PatchError::OutOfBounds), "{kind:?}");
            assert_eq!(patch(kind, &mut code, usize::MAX - 2, 0, 0), Err(PatchError::OutOfBounds), "{kind:?}");
            assert_eq!(patch(kind, &mut code, usize::MAX, 0, 0), Err(PatchError::OutOfBounds), "{kind:?}");
            assert_eq!(code, template);
        }
        let mut code = template;
        assert_eq!(patch(RelocKind::A64Jump26, &mut code, 0, 4, 0), Ok(()));
        assert_eq!(code, [1, 0, 0, 0x14, 0, 0]);
        assert_eq!(patch(RelocKind::A64Abs64, &mut [0u8; 7], 0, 0, 0), Err(PatchError::OutOfBounds));
    }

    #[test]
    fn wrong_isa() {
        let mut code = [0u8; 16];
        for kind in RelocKind::ALL.into_iter().filter(|k| k.isa() != crate::Isa::Aarch64) {
            assert_eq!(patch(kind, &mut code, 0, 0, 0), Err(PatchError::WrongIsa), "{kind:?}");
        }
        assert_eq!(code, [0; 16]);
        assert_eq!(crate::patch(RelocKind::A64Jump26, &mut code, 0, 0, 0), Err(PatchError::UnexpectedInstruction));
    }

    #[test]
    fn branches_and_relocation_types() {
        assert_eq!(
            branch_at(RelocKind::A64Jump26, &[], 8).map(|b| (b.branch_use, b.start, b.end)),
            Some((BranchUse::TailJump, 8, 12))
        );
        assert_eq!(branch_at(RelocKind::A64Call26, &[], 0).map(|b| b.branch_use), Some(BranchUse::Call));
        assert_eq!(branch_at(RelocKind::A64CondBr19, &[], 0), None);
        assert_eq!(reloc_from_elf(282), Some(RelocKind::A64Jump26));
        assert_eq!(reloc_from_elf(269), Some(RelocKind::A64MovwUabsG3));
        assert_eq!(reloc_from_elf(311), None); // R_AARCH64_ADR_GOT_PAGE
        assert!(RelocKind::A64MovwUabsG3.sets_only_high_half() && !RelocKind::A64MovwUabsG1Nc.sets_only_high_half());
        // nop -> 1f 20 03 d5
        assert_eq!(NOP, [0x1f, 0x20, 0x03, 0xd5]);
    }
}
