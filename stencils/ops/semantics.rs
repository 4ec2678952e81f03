//! The meaning of every eBPF operation, written once.
//!
//! The interpreter (`tessera::ebpf::interp`) calls these functions, and the stencil sources
//! (`stencils/ops`) include this very file, so the JIT and the interpreter cannot drift.
//! Everything here is `#[inline(always)]`, total (no panics, no traps) and follows RFC 9669:
//! division by zero yields 0, modulo by zero leaves the dividend, shift amounts are masked,
//! signed `MIN / -1` wraps.

/// Binary ALU operations, in RFC 9669 opcode order (`code >> 4`).
macro_rules! define_alu {
    ($($(#[$m:meta])* $name64:ident, $name32:ident, |$a:ident, $b:ident| $body64:expr, $body32:expr;)*) => {
        $(
            $(#[$m])*
            #[inline(always)]
            pub fn $name64($a: u64, $b: u64) -> u64 { $body64 }
            $(#[$m])*
            /// 32-bit form: operates on the low halves; the result is zero-extended.
            #[inline(always)]
            pub fn $name32($a: u64, $b: u64) -> u64 {
                let $a = $a as u32;
                let $b = $b as u32;
                ($body32) as u32 as u64
            }
        )*
    };
}

define_alu! {
    add64, add32, |a, b| a.wrapping_add(b), a.wrapping_add(b);
    sub64, sub32, |a, b| a.wrapping_sub(b), a.wrapping_sub(b);
    mul64, mul32, |a, b| a.wrapping_mul(b), a.wrapping_mul(b);
    /// Unsigned division; `x / 0 == 0`.
    div64, div32, |a, b| a.checked_div(b).unwrap_or(0), a.checked_div(b).unwrap_or(0);
    /// Signed division; `x / 0 == 0`, `MIN / -1 == MIN`.
    sdiv64, sdiv32, |a, b| if b == 0 { 0 } else { (a as i64).wrapping_div(b as i64) as u64 },
        if b == 0 { 0 } else { (a as i32).wrapping_div(b as i32) as u32 };
    /// Unsigned modulo; `x % 0 == x`.
    mod64, mod32, |a, b| a.checked_rem(b).unwrap_or(a), a.checked_rem(b).unwrap_or(a);
    /// Signed modulo (sign of the dividend); `x % 0 == x`, `MIN % -1 == 0`.
    smod64, smod32, |a, b| if b == 0 { a } else { (a as i64).wrapping_rem(b as i64) as u64 },
        if b == 0 { a } else { (a as i32).wrapping_rem(b as i32) as u32 };
    or64, or32, |a, b| a | b, a | b;
    and64, and32, |a, b| a & b, a & b;
    xor64, xor32, |a, b| a ^ b, a ^ b;
    /// Shift amounts are masked to the operand width.
    lsh64, lsh32, |a, b| a.wrapping_shl(b as u32), a.wrapping_shl(b);
    rsh64, rsh32, |a, b| a.wrapping_shr(b as u32), a.wrapping_shr(b);
    arsh64, arsh32, |a, b| (a as i64).wrapping_shr(b as u32) as u64, (a as i32).wrapping_shr(b) as u32;
}

#[inline(always)]
pub fn neg64(a: u64) -> u64 {
    a.wrapping_neg()
}
#[inline(always)]
pub fn neg32(a: u64) -> u64 {
    (a as u32).wrapping_neg() as u64
}
#[inline(always)]
pub fn mov32(a: u64) -> u64 {
    a as u32 as u64
}
#[inline(always)]
pub fn movsx64_8(a: u64) -> u64 {
    a as i8 as i64 as u64
}
#[inline(always)]
pub fn movsx64_16(a: u64) -> u64 {
    a as i16 as i64 as u64
}
#[inline(always)]
pub fn movsx64_32(a: u64) -> u64 {
    a as i32 as i64 as u64
}
#[inline(always)]
pub fn movsx32_8(a: u64) -> u64 {
    a as i8 as i32 as u32 as u64
}
#[inline(always)]
pub fn movsx32_16(a: u64) -> u64 {
    a as i16 as i32 as u32 as u64
}
/// `le16` on a little-endian machine, and the truncation half of every byte-order op.
#[inline(always)]
pub fn zext16(a: u64) -> u64 {
    a as u16 as u64
}
#[inline(always)]
pub fn zext32(a: u64) -> u64 {
    a as u32 as u64
}
/// `be16` and `bswap16` (every supported ISA is little-endian).
#[inline(always)]
pub fn bswap16(a: u64) -> u64 {
    (a as u16).swap_bytes() as u64
}
#[inline(always)]
pub fn bswap32(a: u64) -> u64 {
    (a as u32).swap_bytes() as u64
}
#[inline(always)]
pub fn bswap64(a: u64) -> u64 {
    a.swap_bytes()
}

/// Conditional jumps. The 32-bit forms (JMP32) compare the low halves.
macro_rules! define_cmp {
    ($($name64:ident, $name32:ident, $t64:ty, $t32:ty, $op:tt;)*) => {
        $(
            #[inline(always)]
            pub fn $name64(a: u64, b: u64) -> bool {
                (a as $t64) $op (b as $t64)
            }
            #[inline(always)]
            pub fn $name32(a: u64, b: u64) -> bool {
                (a as $t32) $op (b as $t32)
            }
        )*
    };
}

define_cmp! {
    jeq64, jeq32, u64, u32, ==;
    jne64, jne32, u64, u32, !=;
    jgt64, jgt32, u64, u32, >;
    jge64, jge32, u64, u32, >=;
    jlt64, jlt32, u64, u32, <;
    jle64, jle32, u64, u32, <=;
    jsgt64, jsgt32, i64, i32, >;
    jsge64, jsge32, i64, i32, >=;
    jslt64, jslt32, i64, i32, <;
    jsle64, jsle32, i64, i32, <=;
}

#[inline(always)]
pub fn jset64(a: u64, b: u64) -> bool {
    a & b != 0
}
#[inline(always)]
pub fn jset32(a: u64, b: u64) -> bool {
    (a as u32) & (b as u32) != 0
}

/// Where an access of `size` bytes at virtual address `addr` lands: the region index and
/// the offset in it, when that region allows it (`write` for stores and atomics). The one
/// bounds check of the interpreter and of every checked memory stencil; see
/// [`crate::abi::RegionEntry`] for the rule.
#[inline(always)]
pub fn locate(
    regions: &[crate::abi::RegionEntry; crate::abi::region::COUNT],
    addr: u64,
    size: u64,
    write: bool,
) -> Option<(usize, u64)> {
    let index = (addr >> 32) as usize;
    let off = addr & 0xffff_ffff;
    // Checked on the same line; written with `get`, LLVM keeps a second test in every
    // stencil that inlines this (4 KB more x86-64 code).
    #[allow(clippy::indexing_slicing)]
    let r = if index < crate::abi::region::COUNT { &regions[index] } else { return None };
    let limit = if write { r.write_limit } else { r.read_limit } as u64;
    if off < r.len as u64 && (off & r.mask as u64) + size <= limit { Some((index, off)) } else { None }
}

/// Whether `addr` is naturally aligned for an access of `size` bytes (atomics need it).
#[inline(always)]
pub fn is_aligned(addr: u64, size: u64) -> bool {
    addr & (size - 1) == 0
}

/// Atomic read-modify-write operations: `new = op(old, operand)`. The fetch forms return
/// `old`; `xchg` stores the operand. `cmpxchg` is separate (it also reads `r0`).
#[inline(always)]
pub fn atomic_add(old: u64, v: u64) -> u64 {
    old.wrapping_add(v)
}
#[inline(always)]
pub fn atomic_or(old: u64, v: u64) -> u64 {
    old | v
}
#[inline(always)]
pub fn atomic_and(old: u64, v: u64) -> u64 {
    old & v
}
#[inline(always)]
pub fn atomic_xor(old: u64, v: u64) -> u64 {
    old ^ v
}
