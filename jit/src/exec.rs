//! A long-lived executable arena for hosts with `std` (Linux): many programs compile into
//! a few large mappings, with no `mmap`/`mprotect`/`munmap` per program.
//!
//! W^X: each chunk is one `memfd` mapped twice, a read+write view the emitter writes
//! through and a read+execute view the code runs from. No mapping is ever writable and
//! executable; the writable view's address never reaches generated code. (The alternative,
//! flipping pages between RW and RX, needs an `mprotect` per program and stops every other
//! program on those pages from running meanwhile.)
//!
//! Programs are bump-allocated in the current chunk; a handle ([`ArenaCode`]) keeps its
//! chunk alive. A full chunk whose programs are all dropped is recycled: one is kept as a
//! spare, the rest are unmapped. Before a spare is reused its executable view is mapped
//! afresh over itself, so that no stale translation of old code survives (QEMU's user-mode
//! emulation tracks code by the executable view's pages and would not see writes through
//! the other view).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::vec::Vec;

use crate::{CodeBuffer, Error};

/// Bytes mapped per chunk, unless one program needs more.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Where programs start in a chunk: a multiple of this (a cache line).
pub const PROGRAM_ALIGN: usize = 64;

/// The largest chunk the arena maps for one program.
const MAX_CHUNK_SIZE: usize = 1 << 32;

/// One memfd mapped twice.
#[derive(Debug)]
struct Mapping {
    fd: libc::c_int,
    rw: *mut u8,
    rx: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by the arena, whose mutex serialises all writes through `rw`;
// `rx` is only executed and read.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(len: usize) -> Result<Mapping, Error> {
        let len = len.max(1).next_multiple_of(page_size());
        // SAFETY: memfd_create with a NUL-terminated name and valid flags has no other
        // preconditions; the result is checked.
        let fd = unsafe { libc::memfd_create(c"tessera-code".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::ExecutableMemory);
        }
        let mut mapping = Mapping { fd, rw: core::ptr::null_mut(), rx: core::ptr::null_mut(), len };
        // SAFETY: `fd` is our memfd; growing it has no memory-safety preconditions.
        if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
            return Err(Error::ExecutableMemory);
        }
        mapping.rw = map(fd, len, libc::PROT_READ | libc::PROT_WRITE, core::ptr::null_mut())?;
        mapping.rx = map(fd, len, libc::PROT_READ | libc::PROT_EXEC, core::ptr::null_mut())?;
        Ok(mapping)
    }

    /// Maps the executable view afresh at its own address (see the module comment).
    fn refresh_executable_view(&mut self) -> Result<(), Error> {
        map(self.fd, self.len, libc::PROT_READ | libc::PROT_EXEC, self.rx).map(|_| ())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        for view in [self.rw, self.rx] {
            if !view.is_null() {
                // SAFETY: `view` is a mapping of `len` bytes made by `map`; no handle to code
                // in it is alive (the arena drops a mapping only when its last program is
                // dropped), so nothing refers to it any more.
                unsafe { libc::munmap(view.cast(), self.len) };
            }
        }
        // SAFETY: closing our own descriptor; the mappings (if any) stay valid without it.
        unsafe { libc::close(self.fd) };
    }
}

/// `mmap` of `len` bytes of `fd` with `prot`, shared; at `fixed` when it is not null.
fn map(fd: libc::c_int, len: usize, prot: libc::c_int, fixed: *mut u8) -> Result<*mut u8, Error> {
    let flags = if fixed.is_null() { libc::MAP_SHARED } else { libc::MAP_SHARED | libc::MAP_FIXED };
    // SAFETY: a shared mapping of our own memfd. With MAP_FIXED, `fixed` is the start of a
    // mapping of exactly `len` bytes that this arena owns and that no live code handle uses
    // (only spare chunks are refreshed), so replacing it invalidates nothing in use.
    let ptr = unsafe { libc::mmap(fixed.cast(), len, prot, flags, fd, 0) };
    if ptr == libc::MAP_FAILED { Err(Error::ExecutableMemory) } else { Ok(ptr.cast()) }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s.is_power_of_two()).unwrap_or(4096)
}

#[derive(Debug)]
struct Chunk {
    id: u64,
    mapping: Mapping,
    used: usize,
    /// Programs in this chunk whose handles are alive.
    live: usize,
}

#[derive(Debug, Default)]
struct State {
    /// The chunk new programs go to is the last one.
    chunks: Vec<Chunk>,
    spare: Option<Mapping>,
    next_id: u64,
}

/// Figures about an arena, for tests and tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaStats {
    /// Chunks mapped (the spare included).
    pub chunks: usize,
    /// Bytes mapped (each chunk counted once, not per view).
    pub mapped_bytes: usize,
    /// Bytes handed out in chunks still in use.
    pub used_bytes: usize,
    /// Programs whose handles are alive.
    pub live: usize,
}

/// Executable memory shared by many programs. See the module documentation.
#[derive(Debug, Default)]
pub struct CodeArena {
    state: Mutex<State>,
}

/// A program's code in a [`CodeArena`]; the code stays mapped while the handle lives.
#[derive(Debug)]
pub struct ArenaCode {
    arena: Arc<CodeArena>,
    chunk: u64,
    address: u64,
    len: usize,
}

impl ArenaCode {
    /// The address the code starts at (in the executable view).
    pub fn address(&self) -> u64 {
        self.address
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The code's bytes, read through the executable view.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `address .. address + len` lies in a readable mapping that this handle keeps
        // alive (see Drop), and nothing writes it while the handle lives: the arena only
        // writes free space.
        unsafe { core::slice::from_raw_parts(self.address as *const u8, self.len) }
    }
}

impl Drop for ArenaCode {
    fn drop(&mut self) {
        self.arena.release(self.chunk);
    }
}

impl CodeArena {
    pub fn new() -> Arc<CodeArena> {
        Arc::new(CodeArena::default())
    }

    /// The process-wide arena that `std` front ends compile into by default.
    pub fn global() -> &'static Arc<CodeArena> {
        static GLOBAL: OnceLock<Arc<CodeArena>> = OnceLock::new();
        GLOBAL.get_or_init(CodeArena::new)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while emitting leaves no invariant half-updated (the chunk's `used` is only
        // advanced after a successful emission), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `emit` with a [`CodeBuffer`] over free executable space and keeps what it
    /// allocated as one program. When `emit` fails because the buffer ran out
    /// ([`CodeBuffer::ran_out`]), it is run again with a chunk twice as large.
    pub fn emit<R, E: From<Error>>(
        self: &Arc<Self>,
        mut emit: impl FnMut(&mut CodeBuffer<'_>) -> Result<R, E>,
    ) -> Result<(ArenaCode, R), E> {
        let mut state = self.lock();
        if state.chunks.is_empty() {
            state.new_chunk(CHUNK_SIZE)?;
        }
        loop {
            let chunk = state.chunks.last_mut().ok_or(Error::ExecutableMemory)?;
            // Programs start on a fresh cache line.
            chunk.used = chunk.used.next_multiple_of(PROGRAM_ALIGN).min(chunk.mapping.len);
            let free = chunk.mapping.len - chunk.used;
            // SAFETY: `rw + used .. rw + len` is the chunk's free space: mapped read+write,
            // written by no one else (the arena lock is held and allocated code is never
            // handed out writable), and shown at `rx + used` by the executable view of the
            // same memfd, which stays mapped while any program in the chunk lives.
            let (mut buffer, base) = unsafe {
                let memory = core::slice::from_raw_parts_mut(chunk.mapping.rw.add(chunk.used), free);
                let base = chunk.mapping.rx.add(chunk.used) as u64;
                (CodeBuffer::executable_at(memory, base), base)
            };
            match emit(&mut buffer) {
                Ok(r) => {
                    let len = buffer.used();
                    chunk.used += len;
                    chunk.live += 1;
                    let code = ArenaCode { arena: Arc::clone(self), chunk: chunk.id, address: base, len };
                    return Ok((code, r));
                }
                // Too little room: again in a fresh chunk, twice the size of this one's room.
                Err(_) if buffer.ran_out() && free < MAX_CHUNK_SIZE => {
                    state.new_chunk(free.saturating_mul(2).clamp(CHUNK_SIZE, MAX_CHUNK_SIZE))?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn release(&self, chunk: u64) {
        let mut state = self.lock();
        let current = state.chunks.last().map(|c| c.id);
        let Some(index) = state.chunks.iter().position(|c| c.id == chunk) else { return };
        let Some(entry) = state.chunks.get_mut(index) else { return };
        entry.live = entry.live.saturating_sub(1);
        if entry.live == 0 && Some(chunk) != current {
            let retired = state.chunks.remove(index);
            if state.spare.is_none() && retired.mapping.len == CHUNK_SIZE.next_multiple_of(page_size()) {
                state.spare = Some(retired.mapping);
            }
        }
    }

    pub fn stats(&self) -> ArenaStats {
        let state = self.lock();
        let chunks = state.chunks.len() + state.spare.is_some() as usize;
        let mapped_bytes =
            state.chunks.iter().map(|c| c.mapping.len).sum::<usize>() + state.spare.as_ref().map_or(0, |m| m.len);
        let used_bytes = state.chunks.iter().map(|c| c.used).sum();
        let live = state.chunks.iter().map(|c| c.live).sum();
        ArenaStats { chunks, mapped_bytes, used_bytes, live }
    }
}

impl State {
    /// Makes a chunk of at least `len` bytes the current one, reusing the spare if it fits.
    fn new_chunk(&mut self, len: usize) -> Result<(), Error> {
        // The previous current chunk is retired now if nothing in it is alive.
        if let Some(last) = self.chunks.last()
            && last.live == 0
        {
            let retired = self.chunks.pop().map(|c| c.mapping);
            if self.spare.is_none() {
                self.spare = retired.filter(|m| m.len == CHUNK_SIZE.next_multiple_of(page_size()));
            }
        }
        let mapping = match self.spare.take() {
            Some(mut spare) if spare.len >= len => {
                spare.refresh_executable_view()?;
                spare
            }
            other => {
                self.spare = other;
                Mapping::new(len.max(CHUNK_SIZE))?
            }
        };
        self.next_id += 1;
        self.chunks.push(Chunk { id: self.next_id, mapping, used: 0, live: 0 });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit_bytes(arena: &Arc<CodeArena>, bytes: &[u8]) -> ArenaCode {
        arena
            .emit(|buffer| {
                let allocation = buffer.alloc(bytes.len(), 16)?;
                allocation.bytes.copy_from_slice(bytes);
                allocation.sync_icache();
                Ok::<_, Error>(())
            })
            .unwrap()
            .0
    }

    #[test]
    fn programs_share_a_chunk_and_read_back_through_the_executable_view() {
        let arena = CodeArena::new();
        let a = emit_bytes(&arena, &[1, 2, 3]);
        let b = emit_bytes(&arena, &[4, 5]);
        assert_eq!((a.bytes(), b.bytes()), (&[1u8, 2, 3][..], &[4u8, 5][..]));
        assert_eq!(b.address() - a.address(), PROGRAM_ALIGN as u64);
        let stats = arena.stats();
        assert_eq!((stats.chunks, stats.live, stats.used_bytes), (1, 2, PROGRAM_ALIGN + 2));
    }

    #[test]
    fn a_program_larger_than_a_chunk_gets_its_own() {
        let arena = CodeArena::new();
        let small = emit_bytes(&arena, &[9]);
        let big = std::vec![0xaa; CHUNK_SIZE + 5000];
        let code = arena
            .emit(|buffer| {
                let allocation = buffer.alloc(big.len(), 16)?;
                allocation.bytes.copy_from_slice(&big);
                Ok::<_, Error>(())
            })
            .unwrap()
            .0;
        assert_eq!(code.bytes(), &big[..]);
        assert_eq!(small.bytes(), &[9]);
        assert_eq!(arena.stats().live, 2);
    }

    #[test]
    fn dropped_programs_free_their_chunks() {
        let arena = CodeArena::new();
        let program = std::vec![0x90u8; 64 << 10];
        // 64 MiB of programs through an arena that never holds more than a few chunks.
        for _ in 0..1024 {
            drop(emit_bytes(&arena, &program));
        }
        let stats = arena.stats();
        assert!(stats.chunks <= 2, "{stats:?}");
        assert_eq!(stats.live, 0);
        let kept = emit_bytes(&arena, &program);
        assert_eq!(kept.bytes(), &program[..]);
    }

    #[test]
    fn no_mapping_is_writable_and_executable() {
        let arena = CodeArena::new();
        let _code = emit_bytes(&arena, &[0xc3]);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let tessera: Vec<&str> = maps.lines().filter(|l| l.contains("tessera-code")).collect();
        assert!(tessera.len() >= 2, "both views listed:\n{maps}");
        for line in maps.lines() {
            let perms = line.split_whitespace().nth(1).unwrap_or("");
            assert!(!(perms.contains('w') && perms.contains('x')), "writable and executable: {line}");
        }
    }
}
