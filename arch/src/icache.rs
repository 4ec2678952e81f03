//! Instruction-cache upkeep after writing code.
//!
//! After the JIT writes instructions as data, the instruction side of the CPU may still hold
//! stale bytes. [`sync_icache`] makes the written range visible to instruction fetch on the
//! calling CPU and (where the platform provides it) on every CPU in the inner-shareable
//! domain:
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
        aarch64::sync(start as usize, len)
    };
    #[cfg(target_arch = "riscv64")]
    // SAFETY: the caller guarantees that the range is mapped (this function's contract).
    unsafe {
        riscv64::sync(start as usize, len)
    };
    #[cfg(not(any(target_arch = "aarch64", target_arch = "riscv64")))]
    {
        // Coherent instruction fetch (x86-64): only keep the compiler from moving the code
        // writes past this point.
        let _ = start;
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// [`sync_icache`] for code in a slice: safe, since a slice is always mapped memory.
#[inline]
pub fn sync_icache_slice(code: &[u8]) {
    // SAFETY: `code` is a live slice, so its whole range is mapped memory of this process.
    unsafe { sync_icache(code.as_ptr(), code.len()) }
}

/// Whether this target needs [`sync_icache`] at all (false on x86-64).
pub const NEEDS_SYNC: bool = cfg!(any(target_arch = "aarch64", target_arch = "riscv64"));

#[cfg(target_arch = "aarch64")]
mod aarch64 {
    use core::arch::asm;

    /// `CTR_EL0.IDC`: cleaning the data cache is not required for coherence.
    const CTR_IDC: u64 = 1 << 28;
    /// `CTR_EL0.DIC`: invalidating the instruction cache is not required for coherence.
    const CTR_DIC: u64 = 1 << 29;

    /// Cleans and invalidates by line, as in the Arm ARM's "Instruction cache coherency"
    /// sequence (and LLVM's `__clear_cache`).
    ///
    /// # Safety
    ///
    /// `start..start + len` must be mapped memory.
    pub(super) unsafe fn sync(start: usize, len: usize) {
        let end = start.saturating_add(len);
        let ctr: u64;
        // SAFETY: reading CTR_EL0 has no side effects; EL0 access is enabled by Linux
        // (SCTLR_EL1.UCT) and always allowed at EL1.
        unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };

        if ctr & CTR_IDC == 0 {
            // DminLine, bits 16..19: log2 of the smallest data line in words.
            let line = 4usize << ((ctr >> 16) & 0xf);
            let mut addr = start & !(line - 1);
            while addr < end {
                // SAFETY: `addr` lies in a line overlapping the caller's mapped range
                // (`sync`'s contract); `dc cvau` only writes back cached data.
                unsafe { asm!("dc cvau, {}", in(reg) addr, options(nostack, preserves_flags)) };
                addr = addr.wrapping_add(line);
                if addr == 0 {
                    break;
                }
            }
        }
        // SAFETY: a barrier; no memory is accessed.
        unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };

        if ctr & CTR_DIC == 0 {
            // IminLine, bits 0..3: log2 of the smallest instruction line in words.
            let line = 4usize << (ctr & 0xf);
            let mut addr = start & !(line - 1);
            while addr < end {
                // SAFETY: as for `dc cvau` above; `ic ivau` only drops instruction lines.
                unsafe { asm!("ic ivau, {}", in(reg) addr, options(nostack, preserves_flags)) };
                addr = addr.wrapping_add(line);
                if addr == 0 {
                    break;
                }
            }
            // SAFETY: a barrier; no memory is accessed.
            unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
        }
        // SAFETY: a context synchronisation barrier; no memory is accessed.
        unsafe { asm!("isb", options(nostack, preserves_flags)) };
    }
}

#[cfg(target_arch = "riscv64")]
mod riscv64 {
    use core::arch::asm;

    /// Linux `riscv_flush_icache(start, end, flags)` (`__NR_riscv_flush_icache`).
    #[cfg(target_os = "linux")]
    const SYS_RISCV_FLUSH_ICACHE: usize = 259;

    /// # Safety
    ///
    /// `start..start + len` must be mapped memory.
    #[cfg(target_os = "linux")]
    pub(super) unsafe fn sync(start: usize, len: usize) {
        let end = start.saturating_add(len);
        // flags = 0: make the range coherent for every thread of the process, not only the
        // calling one (SYS_RISCV_FLUSH_ICACHE_LOCAL).
        let flags = 0usize;
        // SAFETY: the system call only performs cache maintenance (it does not access the
        // range and checks its arguments in the kernel); it clobbers nothing but a0, and the
        // `memory` clobber (no `nomem`) orders the code writes before it. The result is
        // ignored: it only fails for invalid flags, and ours are valid.
        unsafe {
            asm!(
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
    #[cfg(not(target_os = "linux"))]
    pub(super) unsafe fn sync(_start: usize, _len: usize) {
        // SAFETY: `fence.i` orders earlier stores before later instruction fetches on this
        // hart; it accesses no memory.
        unsafe { asm!("fence.i", options(nostack, preserves_flags)) };
    }
}

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
