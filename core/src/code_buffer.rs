//! A bump allocator for generated code over memory the caller provides.
//!
//! In firmware the memory is a `&'static mut [u8]` the embedder knows to be executable; on
//! a host with `std`, [`crate::exec::ExecutableMemory`] provides mmap'd memory that is never
//! writable and executable at once.

use crate::ebpf::Error;

/// Bump allocation over `&mut [u8]`, with alignment, a capacity error and reset.
#[derive(Debug)]
pub struct CodeBuffer<'m> {
    memory: &'m mut [u8],
    /// The address `memory[0]` executes at (differs from its host address only when
    /// emitting for another machine, e.g. a simulator or a golden test).
    base: u64,
    used: usize,
}

/// A region handed out by [`CodeBuffer::alloc`].
#[derive(Debug)]
pub struct Allocation<'a> {
    pub bytes: &'a mut [u8],
    /// Offset of `bytes` in the buffer.
    pub offset: usize,
    /// The address `bytes[0]` executes at.
    pub address: u64,
}

impl<'m> CodeBuffer<'m> {
    /// A buffer whose code executes where it lies in memory.
    pub fn new(memory: &'m mut [u8]) -> CodeBuffer<'m> {
        let base = memory.as_ptr() as u64;
        CodeBuffer { memory, base, used: 0 }
    }

    /// A buffer whose code will execute at `base` (cross-emission).
    pub fn with_base(memory: &'m mut [u8], base: u64) -> CodeBuffer<'m> {
        CodeBuffer { memory, base, used: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.memory.len()
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    /// Forgets every allocation; the memory is reused from the start.
    pub fn reset(&mut self) {
        self.used = 0;
    }

    /// Allocates `size` bytes whose execution address is a multiple of `align` (a power of two).
    pub fn alloc(&mut self, size: usize, align: usize) -> Result<Allocation<'_>, Error> {
        let align = align.max(1) as u64;
        let address = self.base.wrapping_add(self.used as u64);
        let padding = (align - (address % align)) % align;
        let start = self.used + padding as usize;
        let available = self.memory.len().saturating_sub(self.used);
        let end = start
            .checked_add(size)
            .filter(|&e| e <= self.memory.len())
            .ok_or(Error::CodeBufferFull { needed: (size + padding as usize) as u32, available: available as u32 })?;
        self.used = end;
        Ok(Allocation {
            bytes: &mut self.memory[start..end],
            offset: start,
            address: self.base.wrapping_add(start as u64),
        })
    }

    /// The bytes allocated so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.memory[..self.used]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_alignment_capacity_and_reset() {
        let mut mem = [0u8; 64];
        let mut buf = CodeBuffer::with_base(&mut mem, 0x1000);
        let a = buf.alloc(3, 1).unwrap();
        assert_eq!((a.offset, a.address), (0, 0x1000));
        let b = buf.alloc(8, 16).unwrap();
        assert_eq!((b.offset, b.address), (16, 0x1010));
        assert_eq!(buf.used(), 24);
        assert_eq!(buf.alloc(41, 1).unwrap_err(), Error::CodeBufferFull { needed: 41, available: 40 });
        buf.reset();
        assert_eq!(buf.alloc(64, 4).unwrap().offset, 0);
    }
}
