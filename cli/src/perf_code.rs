//! Executable memory that `perf` names from `/tmp/perf-PID.map`, for `tessera run
//! --perf-map`.
//!
//! perf consults the map only for samples in anonymous memory: mappings it sees as `//anon`,
//! `/dev/zero…` or `/anon_hugepage…` (Linux `tools/perf/util/map.c`, `is_anon_memory`).
//! The code arena's `memfd` shows as the file `/memfd:tessera-code (deleted)`, a DSO to
//! perf, so perf ignores the map for it and reports bare offsets. This is the arena's
//! W^X scheme on memory perf does see as anonymous: one *shared anonymous* mapping (which
//! Linux backs by `/dev/zero (deleted)`), read+write, duplicated by `mremap(old_size = 0)`
//! into a second view of the same pages, read+execute. No view is ever writable and
//! executable.

use std::io;

use tessera::CodeBuffer;

/// A double-mapped region of shared anonymous memory (see the module comment).
#[derive(Debug)]
pub struct PerfVisibleCode {
    rw: *mut u8,
    rx: *mut u8,
    len: usize,
}

impl PerfVisibleCode {
    /// At least `len` bytes (whole pages).
    pub fn new(len: usize) -> io::Result<PerfVisibleCode> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
        let len = len.max(1).next_multiple_of(page);
        let prot_rw = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_SHARED | libc::MAP_ANONYMOUS;
        // SAFETY: a fresh shared anonymous mapping; the result is checked.
        let rw = unsafe { libc::mmap(core::ptr::null_mut(), len, prot_rw, flags, -1, 0) };
        if rw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut code = PerfVisibleCode { rw: rw.cast(), rx: core::ptr::null_mut(), len };
        // SAFETY: `rw` is a shared mapping of `len` bytes that we own; with an old size of 0
        // mremap maps the same pages once more, at a new address, leaving `rw` as it is.
        let rx = unsafe { libc::mremap(rw, 0, len, libc::MREMAP_MAYMOVE) };
        if rx == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        code.rx = rx.cast();
        // SAFETY: `rx` is the second view, `len` bytes, that we own and nothing uses yet.
        if unsafe { libc::mprotect(rx, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(code)
    }

    /// A code buffer that writes through the writable view and places code for the
    /// executable one.
    pub fn buffer(&mut self) -> CodeBuffer<'_> {
        // SAFETY: `rw` is `len` bytes of read+write memory we own, borrowed mutably here for
        // the buffer's lifetime; `rx` shows the same pages read+execute at its own address
        // and both stay mapped until `self` is dropped, which the borrow prevents while the
        // buffer (or code placed in it) lives. Nothing else writes them.
        unsafe {
            let memory = core::slice::from_raw_parts_mut(self.rw, self.len);
            CodeBuffer::executable_at(memory, self.rx as u64)
        }
    }
}

impl Drop for PerfVisibleCode {
    fn drop(&mut self) {
        for view in [self.rw, self.rx] {
            if !view.is_null() {
                // SAFETY: a view of `len` bytes made in `new`; the borrow of `buffer` has
                // ended, so no code placed in it can still run or be read.
                unsafe { libc::munmap(view.cast(), self.len) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_views_show_the_same_pages_and_are_named_dev_zero() {
        let mut code = PerfVisibleCode::new(100).unwrap();
        assert!(code.len >= 100);
        // SAFETY: reading and writing our own mapping through its views.
        unsafe {
            code.rw.add(7).write(0xa5);
            assert_eq!(code.rx.add(7).read_volatile(), 0xa5);
        }
        // The executable view is what perf sees: anonymous memory, not a file.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let rx = format!("{:x}-", code.rx as usize);
        let line = maps.lines().find(|l| l.starts_with(&rx)).expect("executable view mapped");
        assert!(line.contains(" r-xs ") && line.ends_with("/dev/zero (deleted)"), "{line}");
        let _ = code.buffer();
    }
}
