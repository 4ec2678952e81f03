//! Instruction-cache upkeep after writing code.
//!
//! After the JIT writes instructions as data, the instruction side of the CPU may still hold
//! stale bytes. [`sync_icache`] makes the written range visible to instruction fetch on the
//! calling CPU and (where the platform provides it) on every CPU in the inner-shareable
//! domain. Each ISA's sequence lives in its own file (`sync_icache` there):
//!
//! * x86-64: instruction and data caches are coherent, nothing to do.
//! * AArch64: clean the data cache to the point of unification, invalidate the instruction
//!   cache, by line (sizes from `CTR_EL0`), then barriers. Works at EL0 under Linux (which
//!   sets `SCTLR_EL1.UCI`) and at EL1 on bare metal.
//! * RISC-V on Linux: the `riscv_flush_icache` system call, which covers every hart the
//!   process may run on. On bare metal: `fence.i`, which covers the calling hart only; a
//!   multi-hart embedder must run `fence.i` on the other harts itself (e.g. through an IPI).

/// Makes `len` bytes of freshly written code at `start` visible to instruction fetch.
///
/// # Safety
///
/// `start..start + len` must be mapped memory of this process (the cache maintenance
/// instructions fault on unmapped addresses). The writes to it must be complete; the call
/// orders them before later instruction fetches.
#[inline]
pub unsafe fn sync_icache(start: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller guarantees that the range is mapped (this function's contract).
    unsafe {
        crate::aarch64::sync_icache(start as usize, len)
    };
    #[cfg(target_arch = "riscv64")]
    // SAFETY: the caller guarantees that the range is mapped (this function's contract).
    unsafe {
        crate::riscv64::sync_icache(start as usize, len)
    };
    #[cfg(not(any(target_arch = "aarch64", target_arch = "riscv64")))]
    crate::x86_64::sync_icache(start as usize, len);
}

/// [`sync_icache`] for code in a slice: safe, since a slice is always mapped memory.
#[inline]
pub fn sync_icache_slice(code: &[u8]) {
    // SAFETY: `code` is a live slice, so its whole range is mapped memory of this process.
    unsafe { sync_icache(code.as_ptr(), code.len()) }
}

/// Whether this target needs [`sync_icache`] at all (false on x86-64).
pub const NEEDS_SYNC: bool = cfg!(any(target_arch = "aarch64", target_arch = "riscv64"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_written_code() {
        // Runs the real maintenance sequence on the host (under qemu-user for the
        // aarch64/riscv64 Linux targets): it must not fault on a mapped, unaligned range.
        let mut code = [0u8; 300];
        for (i, b) in code.iter_mut().enumerate() {
            *b = i as u8;
        }
        sync_icache_slice(&code[1..299]);
        sync_icache_slice(&code[..0]);
        // SAFETY: `code` is a live stack array; the range is inside it.
        unsafe { sync_icache(code.as_ptr().wrapping_add(7), 100) };
        assert_eq!(NEEDS_SYNC, !cfg!(target_arch = "x86_64"));
    }
}
