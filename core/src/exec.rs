//! Executable memory and the call into generated code: one of the two places in the crate
//! where `unsafe` is needed (memory becomes code; code is called).

#[cfg(all(feature = "std", unix))]
pub use mmap::ExecutableMemory;

/// Makes freshly written code visible to instruction fetch on this core.
pub use tessera_arch::icache::sync_icache_slice as sync_icache;

#[cfg(all(feature = "std", unix))]
mod mmap {
    use crate::ebpf::Error;

    /// Page-granular memory from `mmap`: writable while code is written, then switched to
    /// read+execute. Never writable and executable at once (W^X).
    #[derive(Debug)]
    pub struct ExecutableMemory {
        ptr: *mut u8,
        len: usize,
        executable: bool,
    }

    // SAFETY: the mapping is owned exclusively by this value; nothing aliases it.
    unsafe impl Send for ExecutableMemory {}
    // SAFETY: shared references only read the mapping or execute it.
    unsafe impl Sync for ExecutableMemory {}

    impl ExecutableMemory {
        /// Maps at least `len` bytes, readable and writable.
        pub fn new(len: usize) -> Result<ExecutableMemory, Error> {
            let len = len.max(1).next_multiple_of(4096);
            // SAFETY: an anonymous private mapping with no address hint has no preconditions.
            let ptr = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(Error::ExecutableMemory);
            }
            Ok(ExecutableMemory { ptr: ptr.cast(), len, executable: false })
        }

        /// The writable bytes; switches the mapping back to read+write if it was executable.
        pub fn writable(&mut self) -> Result<&mut [u8], Error> {
            self.protect(libc::PROT_READ | libc::PROT_WRITE)?;
            self.executable = false;
            // SAFETY: `ptr..ptr+len` is our live mapping, now readable and writable, and
            // `&mut self` guarantees no other reference to it exists.
            Ok(unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) })
        }

        /// Switches to read+execute and synchronises the instruction cache.
        pub fn make_executable(&mut self) -> Result<(), Error> {
            self.protect(libc::PROT_READ | libc::PROT_EXEC)?;
            self.executable = true;
            super::sync_icache(self.bytes());
            Ok(())
        }

        pub fn is_executable(&self) -> bool {
            self.executable
        }

        pub fn bytes(&self) -> &[u8] {
            // SAFETY: the mapping is always readable; shared access cannot write it.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }

        pub fn address(&self) -> u64 {
            self.ptr as u64
        }

        fn protect(&self, prot: libc::c_int) -> Result<(), Error> {
            // SAFETY: `ptr` is page-aligned and `len` a page multiple, both from our mmap.
            let rc = unsafe { libc::mprotect(self.ptr.cast(), self.len, prot) };
            if rc == 0 { Ok(()) } else { Err(Error::ExecutableMemory) }
        }
    }

    impl Drop for ExecutableMemory {
        fn drop(&mut self) {
            // SAFETY: unmapping our own mapping; no references outlive `self`.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}
