//! Fixed-size tables whose lookups cannot go out of bounds: by opcode byte (256 entries,
//! indexed by a `u8`) and by register number (16 entries, the number taken modulo 16, as
//! the 4-bit register fields of an instruction are). The two `allow`s here are the only
//! run-time indexing of them; everything else in the crate gets and slices checked.

use core::ops::{Index, IndexMut};

/// A table with one entry per byte value (per opcode, or per register byte).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ByteTable<T>(pub(crate) [T; 256]);

impl<T> Index<u8> for ByteTable<T> {
    type Output = T;
    #[inline(always)]
    fn index(&self, byte: u8) -> &T {
        // A `u8` is below 256, the length of the table.
        #[allow(clippy::indexing_slicing)]
        &self.0[usize::from(byte)]
    }
}

/// One entry per register: 16 of them, so that every 4-bit field names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RegisterFile<T>(pub(crate) [T; 16]);

impl<T: Copy> RegisterFile<T> {
    pub(crate) const fn splat(value: T) -> RegisterFile<T> {
        RegisterFile([value; 16])
    }
}

impl<T> Index<usize> for RegisterFile<T> {
    type Output = T;
    #[inline(always)]
    fn index(&self, r: usize) -> &T {
        // `r % 16` is below 16, the length of the file.
        #[allow(clippy::indexing_slicing)]
        &self.0[r % 16]
    }
}

impl<T> IndexMut<usize> for RegisterFile<T> {
    #[inline(always)]
    fn index_mut(&mut self, r: usize) -> &mut T {
        #[allow(clippy::indexing_slicing)]
        &mut self.0[r % 16]
    }
}
