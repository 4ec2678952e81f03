//! A bump allocator for generated code over memory the caller provides.
//!
//! In firmware the memory is a `&'static mut [u8]` the embedder knows to be executable
//! ([`CodeBuffer::executable`]); on a host with `std`, [`crate::exec::CodeArena`] lends
//! executable memory through the same type. A plain [`CodeBuffer::new`] or
//! [`CodeBuffer::with_base`] buffer only receives bytes (cross-emission, listings, tests).
//!
//! Every allocation splits its bytes off the free tail for the buffer's whole lifetime `'m`,
//! so code handed out can never be overwritten through the buffer: the borrow checker keeps
//! compiled programs valid. Starting over means making a new buffer from the memory once the
//! old one and everything allocated from it are gone.

use crate::Error;

/// Bump allocation over `&mut [u8]`, with alignment and capacity errors.
#[derive(Debug)]
pub struct CodeBuffer<'m> {
    /// The unallocated tail.
    free: &'m mut [u8],
    /// The address `free[0]` executes at.
    free_base: u64,
    capacity: usize,
    /// Whether code placed here may be run on this machine (see [`CodeBuffer::executable`]).
    executable: bool,
    /// Set when an allocation or an [`CodeBuffer::append`] ran out of room, so that an
    /// owner able to grow (the arena) can retry elsewhere.
    ran_out: bool,
}

/// A region handed out by a [`CodeBuffer`].
#[derive(Debug)]
pub struct Allocation<'m> {
    pub bytes: &'m mut [u8],
    /// Offset of `bytes` from the start of the buffer's memory.
    pub offset: usize,
    /// The address `bytes[0]` executes at.
    pub address: u64,
    /// Whether the bytes may be run on this machine at `address`.
    pub executable: bool,
}

impl<'m> CodeBuffer<'m> {
    /// A buffer whose code would execute where it lies in memory, for inspection only: code
    /// emitted here is never run.
    pub fn new(memory: &'m mut [u8]) -> CodeBuffer<'m> {
        let base = memory.as_ptr() as u64;
        CodeBuffer::with_base(memory, base)
    }

    /// A buffer whose code will execute at `base` on some other machine or mapping
    /// (cross-emission, a simulator, golden tests). Code emitted here is never run.
    pub fn with_base(memory: &'m mut [u8], base: u64) -> CodeBuffer<'m> {
        let capacity = memory.len();
        CodeBuffer { free: memory, free_base: base, capacity, executable: false, ran_out: false }
    }

    /// A buffer over memory this machine can execute where it lies: code emitted here may be
    /// run after its instruction cache is synchronised ([`Allocation::sync_icache`]).
    ///
    /// # Safety
    /// For the whole lifetime `'m`, `memory` must be executable at its own address on the
    /// calling machine (and stay mapped), and nothing but this buffer's allocations may write
    /// it. On bare metal: a region the MMU/PMP maps executable; where the platform enforces
    /// W^X, the embedder must provide a region it is allowed to write and run.
    pub unsafe fn executable(memory: &'m mut [u8]) -> CodeBuffer<'m> {
        let base = memory.as_ptr() as u64;
        // SAFETY: the caller's contract is this function's own, with base = the address.
        unsafe { CodeBuffer::executable_at(memory, base) }
    }

    /// A buffer whose bytes are written through `memory` and executed at `base`: the two
    /// views of one double-mapped region.
    ///
    /// # Safety
    /// For the whole lifetime `'m`, `base .. base + memory.len()` must be mapped executable
    /// and readable on the calling machine and show the same bytes as `memory`, and nothing
    /// but this buffer's allocations may write them.
    pub unsafe fn executable_at(memory: &'m mut [u8], base: u64) -> CodeBuffer<'m> {
        let capacity = memory.len();
        CodeBuffer { free: memory, free_base: base, capacity, executable: true, ran_out: false }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn used(&self) -> usize {
        self.capacity - self.free.len()
    }

    pub fn remaining(&self) -> usize {
        self.free.len()
    }

    /// The address the next byte would execute at (before alignment).
    pub fn next_address(&self) -> u64 {
        self.free_base
    }

    pub fn is_executable(&self) -> bool {
        self.executable
    }

    /// Whether an allocation failed for lack of room since the buffer was made.
    pub fn ran_out(&self) -> bool {
        self.ran_out
    }

    /// Padding before the next byte whose execution address is a multiple of `align`.
    fn padding(&self, align: usize) -> usize {
        let align = align.max(1).next_power_of_two() as u64;
        (align - self.free_base % align) as usize % align as usize
    }

    /// Allocates `size` bytes whose execution address is a multiple of `align` (rounded up
    /// to a power of two). On error nothing is allocated.
    pub fn alloc(&mut self, size: usize, align: usize) -> Result<Allocation<'m>, Error> {
        let padding = self.padding(align);
        match padding.checked_add(size).and_then(|_| self.split(padding, size)) {
            Some(allocation) => Ok(allocation),
            None => {
                self.ran_out = true;
                Err(Error::CodeBufferFull {
                    needed: (padding as u64).saturating_add(size as u64),
                    available: self.free.len() as u64,
                })
            }
        }
    }

    /// Lets `emit` write into all the free space (from the next multiple of `align`), which
    /// executes at the address it is given, and allocates the bytes it says it wrote. On
    /// error nothing is allocated; [`Error::CodeBufferFull`] from `emit` marks the buffer as
    /// having run out.
    pub fn append<R, E: From<Error>>(
        &mut self,
        align: usize,
        emit: impl FnOnce(&mut [u8], u64) -> Result<(usize, R), E>,
        is_full: impl FnOnce(&E) -> bool,
    ) -> Result<(Allocation<'m>, R), E> {
        let padding = self.padding(align);
        let Some(space) = self.free.get_mut(padding..) else {
            self.ran_out = true;
            return Err(Error::CodeBufferFull { needed: padding as u64, available: self.free.len() as u64 }.into());
        };
        let base = self.free_base.wrapping_add(padding as u64);
        let available = space.len();
        match emit(space, base) {
            Ok((len, r)) if len <= available => match self.split(padding, len) {
                Some(allocation) => Ok((allocation, r)),
                None => Err(Error::CodeTooLarge.into()),
            },
            Ok(_) => Err(Error::CodeTooLarge.into()),
            Err(e) => {
                if is_full(&e) {
                    self.ran_out = true;
                }
                Err(e)
            }
        }
    }

    /// Splits `padding + size` bytes off the free tail; `None` (and nothing split) when
    /// the tail is shorter.
    fn split(&mut self, padding: usize, size: usize) -> Option<Allocation<'m>> {
        let end = padding.checked_add(size).filter(|&end| end <= self.free.len())?;
        let offset = self.used() + padding;
        let free = core::mem::take(&mut self.free);
        let (head, tail) = free.split_at_mut(end);
        let (_, bytes) = head.split_at_mut(padding);
        let address = self.free_base.wrapping_add(padding as u64);
        self.free = tail;
        self.free_base = address.wrapping_add(size as u64);
        Some(Allocation { bytes, offset, address, executable: self.executable })
    }
}

impl Allocation<'_> {
    /// Makes the bytes just written visible to instruction fetch at [`Allocation::address`]
    /// (nothing to do on x86-64; cache maintenance on AArch64; `fence.i` or the Linux system
    /// call on RISC-V). Does nothing for a buffer that is not executable.
    pub fn sync_icache(&self) {
        if self.executable {
            // SAFETY: an executable allocation's address range is mapped on this machine and
            // shows these bytes (the contract of `CodeBuffer::executable[_at]`).
            unsafe { tessera_arch::icache::sync_icache(self.address as *const u8, self.bytes.len()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_alignment_capacity() {
        let mut mem = [0u8; 64];
        let mut buf = CodeBuffer::with_base(&mut mem, 0x1000);
        let a = buf.alloc(3, 1).unwrap();
        assert_eq!((a.offset, a.address, a.bytes.len()), (0, 0x1000, 3));
        let b = buf.alloc(8, 16).unwrap();
        assert_eq!((b.offset, b.address), (16, 0x1010));
        assert_eq!(buf.used(), 24);
        assert!(!buf.ran_out());
        assert_eq!(buf.alloc(41, 1).unwrap_err(), Error::CodeBufferFull { needed: 41, available: 40 });
        assert!(buf.ran_out());
        assert_eq!(buf.used(), 24, "a failed allocation leaves the buffer as it was");
        // Overflowing sizes are errors, not panics.
        assert_eq!(buf.alloc(usize::MAX, 16).unwrap_err(), Error::CodeBufferFull { needed: u64::MAX, available: 40 });
        assert_eq!(buf.alloc(40, 4).unwrap().address, 0x1018);
        assert_eq!(buf.remaining(), 0);
    }

    #[test]
    fn append_allocates_what_was_written() {
        let mut mem = [0u8; 32];
        let mut buf = CodeBuffer::with_base(&mut mem, 0x2001);
        let (a, r) = buf
            .append(
                4,
                |space: &mut [u8], base| {
                    assert_eq!((space.len(), base), (29, 0x2004));
                    space[..5].copy_from_slice(b"hello");
                    Ok::<_, Error>((5, 7))
                },
                |_| false,
            )
            .unwrap();
        assert_eq!((a.bytes as &[u8], a.offset, a.address, r), (&b"hello"[..], 3, 0x2004, 7));
        let err = buf
            .append(
                1,
                |_, _| Err::<(usize, ()), _>(Error::CodeBufferFull { needed: 99, available: 24 }),
                |e| matches!(e, Error::CodeBufferFull { .. }),
            )
            .unwrap_err();
        assert_eq!(err, Error::CodeBufferFull { needed: 99, available: 24 });
        assert!(buf.ran_out());
        assert_eq!(buf.used(), 8);
    }
}
