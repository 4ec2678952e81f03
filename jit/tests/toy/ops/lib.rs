//! Stencils of a toy front end: an accumulator machine with a loop counter.
//!
//! It exists to show (and test) that the copy-and-patch core and the generator know
//! nothing of eBPF: this is a second front end with its own stencil source, tables and
//! emitter driver (`jit/tests/toy.rs`). State lives in two registers, the accumulator and
//! the counter `n`; every stencil tail-calls its continuation with both.
#![no_std]
#![feature(explicit_tail_calls)]
#![allow(incomplete_features, internal_features)]

unsafe extern "C" {
    static _HOLE_OPERAND0: u8;
}

unsafe extern "C" {
    fn _HOLE_CONTINUE(acc: u64, n: u64) -> u64;
    fn _HOLE_JUMP(acc: u64, n: u64) -> u64;
    fn _HOLE_COLD(acc: u64, n: u64) -> u64;
}

/// The 32-bit operand patched into the stencil, zero-extended.
#[inline(always)]
fn operand() -> u64 {
    (&raw const _HOLE_OPERAND0) as usize as u32 as u64
}

/// The platform C ABI entry: `fn(n) -> acc`; calls the program's first stencil.
#[unsafe(no_mangle)]
extern "C" fn entry(n: u64) -> u64 {
    // SAFETY: `_HOLE_JUMP` is patched to the first stencil of the program.
    unsafe { _HOLE_JUMP(0, n) }
}

/// `acc = operand`
#[unsafe(no_mangle)]
extern "C" fn set(_acc: u64, n: u64) -> u64 {
    // SAFETY: continuations are stencils with this signature.
    unsafe { become _HOLE_CONTINUE(operand(), n) }
}

/// `acc += n`
#[unsafe(no_mangle)]
extern "C" fn add_n(acc: u64, n: u64) -> u64 {
    // SAFETY: as above.
    unsafe { become _HOLE_CONTINUE(acc.wrapping_add(n), n) }
}

/// `acc *= operand`
#[unsafe(no_mangle)]
extern "C" fn mul(acc: u64, n: u64) -> u64 {
    // SAFETY: as above.
    unsafe { become _HOLE_CONTINUE(acc.wrapping_mul(operand()), n) }
}

/// `n -= 1; if n != 0 goto jump`
#[unsafe(no_mangle)]
extern "C" fn loop_n(acc: u64, n: u64) -> u64 {
    let n = n.wrapping_sub(1);
    // SAFETY: as above.
    unsafe {
        if n != 0 {
            become _HOLE_JUMP(acc, n)
        } else {
            become _HOLE_CONTINUE(acc, n)
        }
    }
}

/// `if acc > operand goto cold`: the slow path is out of line.
#[unsafe(no_mangle)]
extern "C" fn check_limit(acc: u64, n: u64) -> u64 {
    // SAFETY: as above.
    unsafe {
        if acc > operand() {
            core::hint::cold_path();
            become _HOLE_COLD(acc, n)
        } else {
            become _HOLE_CONTINUE(acc, n)
        }
    }
}

/// Returns the accumulator to the entry's caller.
#[unsafe(no_mangle)]
extern "C" fn ret(acc: u64, _n: u64) -> u64 {
    acc
}

/// The cold path of `check_limit`: returns `u64::MAX`.
#[unsafe(no_mangle)]
extern "C" fn overflow(_acc: u64, _n: u64) -> u64 {
    u64::MAX
}
