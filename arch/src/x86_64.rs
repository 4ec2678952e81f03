//! x86-64 hole patching.
//!
//! Stencils are built with the small code model (`-C code-model=small`, non-PIC), so a hole
//! appears as a 32-bit immediate or displacement: `R_X86_64_32S` for sign-extended
//! immediates (`mov $sym, %rax`), `R_X86_64_32` for zero-extended ones (`mov $sym, %eax`),
//! and `R_X86_64_PC32`/`R_X86_64_PLT32` for RIP-relative operands and `call`/`jmp` to the
//! continuation. `R_X86_64_64` appears in data (`.quad sym`) and `movabs`; `R_X86_64_8` in
//! the count of a shift by a constant (`shl $sym, %rax`).

use crate::{Branch, BranchUse, DirectBranch, HoleBranch, PatchError, RelocKind, read, write};

/// Patches one x86-64 hole; see [`crate::patch`] for the meaning of the arguments.
#[inline(always)]
pub fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError> {
    match kind {
        RelocKind::X86Abs64 => write(code, offset, value.to_le_bytes()),
        // PLT32 is resolved like PC32: there is no PLT, the target is the symbol itself.
        RelocKind::X86Pc32 | RelocKind::X86Plt32 => {
            let delta = value.wrapping_sub(place) as i64;
            patch_imm32(code, offset, i32::try_from(delta).map(|d| d as u32))
        }
        RelocKind::X86Abs32 => patch_imm32(code, offset, u32::try_from(value)),
        RelocKind::X86Abs32S => patch_imm32(code, offset, i32::try_from(value as i64).map(|v| v as u32)),
        RelocKind::X86Abs8 => {
            read::<1>(code, offset)?;
            let field = u8::try_from(value).map_err(|_| PatchError::OutOfRange)?;
            write(code, offset, [field])
        }
        _ => Err(PatchError::WrongIsa),
    }
}

/// Writes a 32-bit field, after checking that it exists and that the value fitted.
#[inline]
fn patch_imm32<E>(code: &mut [u8], offset: usize, field: Result<u32, E>) -> Result<(), PatchError> {
    // Bounds first, so that an out-of-bounds hole is reported as such whatever its value.
    read::<4>(code, offset)?;
    let field = field.map_err(|_| PatchError::OutOfRange)?;
    write(code, offset, field.to_le_bytes())
}

/// The X86_64 [`crate::Patcher`].
#[derive(Clone, Copy, Debug)]
pub struct X86_64;

impl crate::Patcher for X86_64 {
    const ISA: crate::Isa = crate::Isa::X86_64;

    #[inline(always)]
    fn patch(kind: RelocKind, code: &mut [u8], offset: usize, value: u64, place: u64) -> Result<(), PatchError> {
        patch(kind, code, offset, value, place)
    }
}

/// ELF relocation types (x86-64 psABI) that stencils may carry.
pub fn reloc_from_elf(r_type: u32) -> Option<RelocKind> {
    Some(match r_type {
        1 => RelocKind::X86Abs64,   // R_X86_64_64
        2 => RelocKind::X86Pc32,    // R_X86_64_PC32
        4 => RelocKind::X86Plt32,   // R_X86_64_PLT32
        10 => RelocKind::X86Abs32,  // R_X86_64_32
        11 => RelocKind::X86Abs32S, // R_X86_64_32S
        14 => RelocKind::X86Abs8,   // R_X86_64_8
        _ => return None,
    })
}

/// `jmp rel32` / `call rel32` whose displacement a PC32/PLT32 relocation at `offset` fills.
pub fn branch_at(kind: RelocKind, code: &[u8], offset: usize) -> Option<Branch> {
    if !matches!(kind, RelocKind::X86Pc32 | RelocKind::X86Plt32) {
        return None;
    }
    let start = offset.checked_sub(1)?;
    let branch_use = match code.get(start)? {
        0xe9 => BranchUse::TailJump,
        0xe8 => BranchUse::Call,
        _ => return None,
    };
    Some(Branch { branch_use, start, end: offset + 4 })
}

/// `jmp`/`jcc` with an 8- or 32-bit displacement and no prefix at `at`: `EB rel8`,
/// `E9 rel32`, `7x rel8`, `0F 8x rel32` (`x` is the condition `cc`).
pub fn direct_branch_at(code: &[u8], at: usize) -> Option<DirectBranch> {
    let rel8 = |len: usize| Some(len as i64 + *code.get(at + 1)? as i8 as i64);
    let rel32 = |len: usize| {
        let field = code.get(at + len - 4..at + len)?;
        Some(len as i64 + i32::from_le_bytes(field.try_into().ok()?) as i64)
    };
    let (cond, offset, len) = match *code.get(at)? {
        0xeb => (None, rel8(2)?, 2),
        0xe9 => (None, rel32(5)?, 5),
        op @ 0x70..=0x7f => (Some(op as u32 & 0xf), rel8(2)?, 2),
        0x0f => match *code.get(at + 1)? {
            op @ 0x80..=0x8f => (Some(op as u32 & 0xf), rel32(6)?, 6),
            _ => return None,
        },
        _ => return None,
    };
    Some(DirectBranch { cond, offset, len })
}

/// `cc ^ 1` is the opposite condition (`jb`/`jae`, `je`/`jne`, ...).
pub fn invert_condition(cond: u32) -> Option<u32> {
    (cond < 16).then_some(cond ^ 1)
}

/// 2 bytes (rel8) when the displacement fits, else 5 (`jmp`) or 6 (`jcc`).
pub fn branch_len(cond: Option<u32>, offset: i64) -> Option<usize> {
    if i8::try_from(offset - 2).is_ok() {
        return Some(2);
    }
    let len = if cond.is_some() { 6 } else { 5 };
    i32::try_from(offset - len as i64).is_ok().then_some(len)
}

pub fn encode_branch(cond: Option<u32>, offset: i64, len: usize, out: &mut [u8]) -> Option<()> {
    let disp = offset - len as i64;
    match (cond, len) {
        (None, 2) => out.get_mut(..2)?.copy_from_slice(&[0xeb, i8::try_from(disp).ok()? as u8]),
        (Some(cc @ 0..16), 2) => out.get_mut(..2)?.copy_from_slice(&[0x70 | cc as u8, i8::try_from(disp).ok()? as u8]),
        (None, 5) => {
            let [op, rel @ ..] = out.first_chunk_mut::<5>()?;
            *op = 0xe9;
            *rel = i32::try_from(disp).ok()?.to_le_bytes();
        }
        (Some(cc @ 0..16), 6) => {
            let [op0, op1, rel @ ..] = out.first_chunk_mut::<6>()?;
            (*op0, *op1) = (0x0f, 0x80 | cc as u8);
            *rel = i32::try_from(disp).ok()?.to_le_bytes();
        }
        _ => return None,
    }
    Some(())
}

/// `jmp rel32` or `jcc rel32` to a hole: the field is the last four bytes, as in the `jmp`
/// it replaces, so the relocation keeps that jump's kind and addend.
pub fn encode_hole_branch(cond: Option<u32>, like: (RelocKind, i32), out: &mut [u8]) -> Option<HoleBranch> {
    if !matches!(like.0, RelocKind::X86Pc32 | RelocKind::X86Plt32) {
        return None;
    }
    let len = if cond.is_some() { 6 } else { 5 };
    encode_branch(cond, len as i64, len, out)?;
    out.get_mut(len - 4..len)?.fill(0);
    Some(HoleBranch { len, reloc_at: len - 4, kind: like.0, addend: like.1 })
}

/// `nop`.
pub const NOP: [u8; 1] = [0x90];

/// Instruction fetch is coherent with data writes on x86-64: only keep the compiler from
/// moving the code writes past this point.
#[cfg(not(any(target_arch = "aarch64", target_arch = "riscv64")))]
pub(crate) fn sync_icache(_start: usize, _len: usize) {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    //! Expected bytes come from `llvm-mc -triple=x86_64 -filetype=obj` (LLVM 14) and
    //! `llvm-objdump -d`, as quoted in each test.
    use super::*;
    use crate::patch as patch_any;

    /// Patches `template` at `offset` and returns the result.
    fn patched<const N: usize>(kind: RelocKind, template: [u8; N], offset: usize, value: u64, place: u64) -> [u8; N] {
        let mut code = template;
        patch(kind, &mut code, offset, value, place).unwrap();
        code
    }

    #[test]
    fn abs64_movabs() {
        // movabsq $0, %rax                  -> 48 b8 00 00 00 00 00 00 00 00
        // movabsq $0x1122334455667788, %rax -> 48 b8 88 77 66 55 44 33 22 11
        let zero = [0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0];
        let want = [0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11];
        assert_eq!(patched(RelocKind::X86Abs64, zero, 2, 0x1122_3344_5566_7788, 0), want);
    }

    #[test]
    fn pc32_and_plt32_call() {
        // call sym  -> e8 00 00 00 00, R_X86_64_PLT32 sym-0x4 at 0x1
        // call fwd (at 0x0, fwd = 0x1005)   -> e8 00 10 00 00
        // call back (at 0x1018, back = 0x1018) -> e8 fb ff ff ff
        let zero = [0xe8, 0, 0, 0, 0];
        for kind in [RelocKind::X86Pc32, RelocKind::X86Plt32] {
            // S + A = 0x1005 - 4, P = 0x1.
            assert_eq!(patched(kind, zero, 1, 0x1005 - 4, 0x1), [0xe8, 0x00, 0x10, 0x00, 0x00]);
            // The same call placed high in the address space.
            let base = 0xffff_8000_0000_0000u64;
            assert_eq!(patched(kind, zero, 1, base + 0x1005 - 4, base + 1), [0xe8, 0x00, 0x10, 0x00, 0x00]);
            assert_eq!(patched(kind, zero, 1, 0x1018 - 4, 0x1019), [0xe8, 0xfb, 0xff, 0xff, 0xff]);
        }
    }

    #[test]
    fn pc32_range() {
        let mut code = [0xe8, 0, 0, 0, 0];
        let place = 0x1_0000_0000u64;
        assert_eq!(patch(RelocKind::X86Pc32, &mut code, 1, place + 0x7fff_ffff, place), Ok(()));
        assert_eq!(code, [0xe8, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(patch(RelocKind::X86Pc32, &mut code, 1, place - 0x8000_0000, place), Ok(()));
        assert_eq!(code, [0xe8, 0x00, 0x00, 0x00, 0x80]);
        let before = code;
        assert_eq!(patch(RelocKind::X86Pc32, &mut code, 1, place + 0x8000_0000, place), Err(PatchError::OutOfRange));
        assert_eq!(patch(RelocKind::X86Plt32, &mut code, 1, place - 0x8000_0001, place), Err(PatchError::OutOfRange));
        assert_eq!(code, before, "a failed patch leaves the code untouched");
    }

    #[test]
    fn abs32_zero_extended() {
        // movl $sym, %eax        -> b8 00 00 00 00, R_X86_64_32 sym at 0x1
        // movl $0x89abcdef, %eax -> b8 ef cd ab 89
        let zero = [0xb8, 0, 0, 0, 0];
        assert_eq!(patched(RelocKind::X86Abs32, zero, 1, 0x89ab_cdef, 0), [0xb8, 0xef, 0xcd, 0xab, 0x89]);
        assert_eq!(
            patched(RelocKind::X86Abs32, zero, 1, RelocKind::X86Abs32.imm32_value(-0x7654_3211), 0),
            [0xb8, 0xef, 0xcd, 0xab, 0x89]
        );
        let mut code = zero;
        assert_eq!(patch(RelocKind::X86Abs32, &mut code, 1, 0x1_0000_0000, 0), Err(PatchError::OutOfRange));
        // A negative number sign-extended to 64 bits does not fit a zero-extended field.
        assert_eq!(patch(RelocKind::X86Abs32, &mut code, 1, (-1i64) as u64, 0), Err(PatchError::OutOfRange));
    }

    #[test]
    fn abs32s_sign_extended() {
        // movq $sym, %rax          -> 48 c7 c0 00 00 00 00, R_X86_64_32S sym at 0x3
        // movq $-0x12345678, %rax  -> 48 c7 c0 88 a9 cb ed
        let zero = [0x48, 0xc7, 0xc0, 0, 0, 0, 0];
        let want = [0x48, 0xc7, 0xc0, 0x88, 0xa9, 0xcb, 0xed];
        assert_eq!(patched(RelocKind::X86Abs32S, zero, 3, (-0x1234_5678i64) as u64, 0), want);
        assert_eq!(patched(RelocKind::X86Abs32S, zero, 3, RelocKind::X86Abs32S.imm32_value(-0x1234_5678), 0), want);
        let mut code = zero;
        assert_eq!(patch(RelocKind::X86Abs32S, &mut code, 3, 0x8000_0000, 0), Err(PatchError::OutOfRange));
        assert_eq!(patch(RelocKind::X86Abs32S, &mut code, 3, (-0x8000_0001i64) as u64, 0), Err(PatchError::OutOfRange));
        assert_eq!(patch(RelocKind::X86Abs32S, &mut code, 3, (-0x8000_0000i64) as u64, 0), Ok(()));
    }

    #[test]
    fn abs8_shift_count() {
        // shlq $sym, %rax -> 48 c1 e0 00, R_X86_64_8 sym at 0x3
        let zero = [0x48, 0xc1, 0xe0, 0];
        assert_eq!(patched(RelocKind::X86Abs8, zero, 3, 63, 0), [0x48, 0xc1, 0xe0, 63]);
        assert_eq!(patched(RelocKind::X86Abs8, zero, 3, RelocKind::X86Abs8.imm32_value(8), 0), [0x48, 0xc1, 0xe0, 8]);
        // An operand gives its low 8 bits (the hardware masks the count further).
        assert_eq!(
            patched(RelocKind::X86Abs8, zero, 3, RelocKind::X86Abs8.imm32_value(-1), 0),
            [0x48, 0xc1, 0xe0, 0xff]
        );
        let mut code = zero;
        assert_eq!(patch(RelocKind::X86Abs8, &mut code, 3, 0x100, 0), Err(PatchError::OutOfRange));
        assert_eq!(patch(RelocKind::X86Abs8, &mut code, 3, (-1i64) as u64, 0), Err(PatchError::OutOfRange));
        assert_eq!(patch(RelocKind::X86Abs8, &mut code, 4, 1, 0), Err(PatchError::OutOfBounds));
        assert_eq!(code, zero);
    }

    #[test]
    fn out_of_bounds() {
        let mut code = [0u8; 8];
        assert_eq!(patch(RelocKind::X86Abs64, &mut code, 1, 0, 0), Err(PatchError::OutOfBounds));
        assert_eq!(patch(RelocKind::X86Abs64, &mut code, usize::MAX, 0, 0), Err(PatchError::OutOfBounds));
        for kind in [RelocKind::X86Pc32, RelocKind::X86Plt32, RelocKind::X86Abs32, RelocKind::X86Abs32S] {
            assert_eq!(patch(kind, &mut code, 5, 0, 0), Err(PatchError::OutOfBounds));
            assert_eq!(patch(kind, &mut code, usize::MAX - 1, 0, 0), Err(PatchError::OutOfBounds));
            // Out of bounds wins over out of range.
            assert_eq!(patch(kind, &mut code, 5, u64::MAX / 2, 0), Err(PatchError::OutOfBounds));
            assert_eq!(patch(kind, &mut code, 4, 0, 0), Ok(()));
        }
        assert_eq!(code, [0; 8]);
    }

    #[test]
    fn wrong_isa() {
        let mut code = [0u8; 16];
        for kind in RelocKind::ALL {
            if kind.isa() != crate::Isa::X86_64 {
                assert_eq!(patch(kind, &mut code, 0, 0, 0), Err(PatchError::WrongIsa), "{kind:?}");
            }
        }
        assert_eq!(code, [0; 16]);
        // The crate-level dispatcher routes x86-64 kinds here.
        assert_eq!(patch_any(RelocKind::X86Abs32, &mut code, 0, 0x1234_5678, 0), Ok(()));
        assert_eq!(code[..4], [0x78, 0x56, 0x34, 0x12]);
    }

    #[test]
    fn direct_branches_decode_encode_and_invert() {
        // jae .+5 -> 73 03; jmp .+0x105 -> e9 00 01 00 00; jne .-4 -> 75 fa; jl .+0x86 -> 0f 8c 80 00 00 00
        let cases: [(&[u8], Option<u32>, i64); 4] = [
            (&[0x73, 0x03], Some(3), 5),
            (&[0xe9, 0x00, 0x01, 0x00, 0x00], None, 0x105),
            (&[0x75, 0xfa], Some(5), -4),
            (&[0x0f, 0x8c, 0x80, 0x00, 0x00, 0x00], Some(0xc), 0x86),
        ];
        for (bytes, cond, offset) in cases {
            let b = direct_branch_at(bytes, 0).unwrap();
            assert_eq!((b.cond, b.offset, b.len), (cond, offset, bytes.len()));
            let mut out = [0u8; 8];
            encode_branch(cond, offset, bytes.len(), &mut out).unwrap();
            assert_eq!(&out[..bytes.len()], bytes);
        }
        assert_eq!(branch_len(Some(3), 129), Some(2));
        assert_eq!(branch_len(Some(3), 130), Some(6));
        assert_eq!(branch_len(None, -126), Some(2));
        assert_eq!(branch_len(None, -127), Some(5));
        assert_eq!(encode_branch(Some(3), 130, 2, &mut [0; 8]), None);
        assert_eq!(invert_condition(2), Some(3)); // jb <-> jae
        assert_eq!(invert_condition(5), Some(4)); // jne <-> je
        assert_eq!(direct_branch_at(&[0x3e, 0x73, 0x03], 0), None); // prefixed: not recognised
        let mut out = [0xffu8; 8];
        let h = encode_hole_branch(Some(2), (RelocKind::X86Plt32, -4), &mut out).unwrap();
        assert_eq!(out[..6], [0x0f, 0x82, 0, 0, 0, 0]);
        assert_eq!(h, HoleBranch { len: 6, reloc_at: 2, kind: RelocKind::X86Plt32, addend: -4 });
        assert_eq!(encode_hole_branch(None, (RelocKind::X86Abs32S, 0), &mut out), None);
    }

    #[test]
    fn branches_and_relocation_types() {
        // jmp sym -> e9 <rel32>; call sym -> e8 <rel32>; the relocation sits after the opcode.
        let jmp = [0xe9, 0, 0, 0, 0];
        let call = [0xe8, 0, 0, 0, 0];
        let tail = Branch { branch_use: BranchUse::TailJump, start: 0, end: 5 };
        assert_eq!(branch_at(RelocKind::X86Plt32, &jmp, 1), Some(tail));
        assert_eq!(branch_at(RelocKind::X86Plt32, &call, 1).map(|b| b.branch_use), Some(BranchUse::Call));
        assert_eq!(branch_at(RelocKind::X86Abs32, &jmp, 1), None);
        assert_eq!(branch_at(RelocKind::X86Plt32, &jmp, 0), None);
        assert_eq!(reloc_from_elf(4), Some(RelocKind::X86Plt32));
        assert_eq!(reloc_from_elf(11), Some(RelocKind::X86Abs32S));
        assert_eq!(reloc_from_elf(9), None); // R_X86_64_GOTPCREL: not patchable here
    }
}
