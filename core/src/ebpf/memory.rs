//! The memory an eBPF program may touch, shared by the interpreter and the JIT runtime.
//!
//! eBPF addresses are host addresses: `r1` holds `context.as_ptr()`, `r10` the end of the
//! stack. An access `[addr, addr + size)` is allowed when it lies entirely inside one of
//! the stack, the context memory, or an embedder-granted [`Region`] (searched in that
//! order; the first that contains the whole access decides). Every bounds check goes
//! through [`semantics::in_region`], the same function the memory stencils use.

use tessera_stencils::abi::FRAME_SIZE;
use tessera_stencils::semantics;

use super::error::RunError;

/// Memory the embedder grants to a program besides its stack and context.
#[derive(Debug)]
pub enum Region<'m> {
    /// Loads only; stores and atomics fault.
    ReadOnly(&'m [u8]),
    /// Loads, stores and atomics.
    ReadWrite(&'m mut [u8]),
}

impl Region<'_> {
    /// Host address of the first byte (the eBPF address of the region).
    #[inline]
    pub fn start(&self) -> u64 {
        self.bytes().as_ptr() as u64
    }

    #[inline]
    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    #[inline]
    pub fn writable(&self) -> bool {
        matches!(self, Region::ReadWrite(_))
    }

    #[inline]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Region::ReadOnly(b) => b,
            Region::ReadWrite(b) => b,
        }
    }

    /// The bytes, when the region is writable.
    #[inline]
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Region::ReadOnly(_) => None,
            Region::ReadWrite(b) => Some(b),
        }
    }

    /// Whether `[addr, addr + size)` lies inside the region.
    #[inline]
    pub fn contains(&self, addr: u64, size: u64) -> bool {
        let b = self.bytes();
        semantics::in_region(addr, size, b.as_ptr() as u64, b.len() as u64)
    }
}

/// Everything a running program can address: its stack (all call frames), the context
/// memory and the regions granted by the embedder.
#[derive(Debug)]
pub struct Memory<'r, 'm> {
    /// The whole eBPF stack; `r10` starts at its end and drops by `FRAME_SIZE` per local call.
    pub stack: &'r mut [u8],
    /// Context memory: `r1` points at it.
    pub context: &'r mut [u8],
    /// Further regions, searched in order.
    pub regions: &'r mut [Region<'m>],
}

/// Where an access landed: which memory, and the byte offset in it.
#[derive(Clone, Copy)]
enum Place {
    Stack(usize),
    Context(usize),
    Region(usize, usize),
}

#[inline]
fn valid_size(size: u64) -> bool {
    matches!(size, 1 | 2 | 4 | 8)
}

#[inline]
fn slice_contains(bytes: &[u8], addr: u64, size: u64) -> Option<usize> {
    let start = bytes.as_ptr() as u64;
    if semantics::in_region(addr, size, start, bytes.len() as u64) {
        usize::try_from(addr.wrapping_sub(start)).ok()
    } else {
        None
    }
}

#[inline]
fn read_le(bytes: &[u8], off: usize, size: u64) -> Option<u64> {
    let end = off.checked_add(size as usize)?;
    let src = bytes.get(off..end)?;
    let mut buf = [0u8; 8];
    for (d, s) in buf.iter_mut().zip(src) {
        *d = *s;
    }
    Some(u64::from_le_bytes(buf))
}

#[inline]
fn write_le(bytes: &mut [u8], off: usize, size: u64, value: u64) -> Option<()> {
    let end = off.checked_add(size as usize)?;
    let dst = bytes.get_mut(off..end)?;
    for (d, s) in dst.iter_mut().zip(value.to_le_bytes()) {
        *d = s;
    }
    Some(())
}

impl<'r, 'm> Memory<'r, 'm> {
    pub fn new(stack: &'r mut [u8], context: &'r mut [u8], regions: &'r mut [Region<'m>]) -> Memory<'r, 'm> {
        Memory { stack, context, regions }
    }

    /// Every run needs at least one frame: frame-relative stencils rely on `[r10 -
    /// FRAME_SIZE, r10)` lying in the stack. Both run modes check it up front.
    pub fn check_stack(&self) -> Result<(), RunError> {
        if (self.stack.len() as u64) < FRAME_SIZE {
            let len = u32::try_from(self.stack.len()).unwrap_or(u32::MAX);
            return Err(RunError::StackTooSmall { len, needed: FRAME_SIZE as u32 });
        }
        Ok(())
    }

    /// The address `r10` holds at entry: one past the last stack byte.
    #[inline]
    pub fn stack_end(&self) -> u64 {
        (self.stack.as_ptr() as u64).wrapping_add(self.stack.len() as u64)
    }

    /// The address `r1` holds at entry.
    #[inline]
    pub fn context_start(&self) -> u64 {
        self.context.as_ptr() as u64
    }

    #[inline]
    fn locate(&self, addr: u64, size: u64) -> Option<Place> {
        if let Some(off) = slice_contains(self.stack, addr, size) {
            return Some(Place::Stack(off));
        }
        if let Some(off) = slice_contains(self.context, addr, size) {
            return Some(Place::Context(off));
        }
        for (i, r) in self.regions.iter().enumerate() {
            if let Some(off) = slice_contains(r.bytes(), addr, size) {
                return Some(Place::Region(i, off));
            }
        }
        None
    }

    /// Whether `[addr, addr + size)` may be accessed (`write` for stores and atomics).
    /// `size` must be 1, 2, 4 or 8.
    pub fn allows(&self, addr: u64, size: u64, write: bool) -> bool {
        if !valid_size(size) {
            return false;
        }
        match self.locate(addr, size) {
            Some(Place::Stack(_)) | Some(Place::Context(_)) => true,
            Some(Place::Region(i, _)) => !write || self.regions.get(i).is_some_and(Region::writable),
            None => false,
        }
    }

    /// Little-endian load of `size` (1, 2, 4 or 8) bytes, zero-extended; `None` when the
    /// access is not allowed.
    #[inline]
    pub fn load(&self, addr: u64, size: u64) -> Option<u64> {
        if !valid_size(size) {
            return None;
        }
        match self.locate(addr, size)? {
            Place::Stack(off) => read_le(self.stack, off, size),
            Place::Context(off) => read_le(self.context, off, size),
            Place::Region(i, off) => read_le(self.regions.get(i)?.bytes(), off, size),
        }
    }

    /// Little-endian store of the low `size` (1, 2, 4 or 8) bytes of `value`; `None` when
    /// the access is not allowed (out of bounds, or a read-only region).
    #[inline]
    pub fn store(&mut self, addr: u64, size: u64, value: u64) -> Option<()> {
        if !valid_size(size) {
            return None;
        }
        match self.locate(addr, size)? {
            Place::Stack(off) => write_le(self.stack, off, size, value),
            Place::Context(off) => write_le(self.context, off, size, value),
            Place::Region(i, off) => write_le(self.regions.get_mut(i)?.bytes_mut()?, off, size, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_context_and_regions() {
        let mut stack = [0u8; 16];
        let mut ctx = [1u8, 2, 3, 4];
        let ro = [9u8; 8];
        let mut rw = [0u8; 8];
        let mut regions = [Region::ReadOnly(&ro), Region::ReadWrite(&mut rw)];
        let ro_addr = regions[0].start();
        let rw_addr = regions[1].start();
        assert!(!regions[0].writable() && regions[1].writable());
        let mut m = Memory::new(&mut stack, &mut ctx, &mut regions);
        let c = m.context_start();
        assert_eq!(m.load(c, 4), Some(0x0403_0201));
        assert_eq!(m.load(c + 1, 4), None);
        assert_eq!(m.load(c, 3), None);
        assert_eq!(m.store(c + 2, 2, 0xbbaa), Some(()));
        assert_eq!(m.load(c, 4), Some(0xbbaa_0201));
        let top = m.stack_end();
        assert_eq!(m.store(top - 8, 8, 0x1122_3344_5566_7788), Some(()));
        assert_eq!(m.load(top - 8, 8), Some(0x1122_3344_5566_7788));
        assert_eq!(m.load(top - 7, 8), None);
        assert_eq!(m.load(top - 1, 2), None); // straddles the end: no one region holds it
        assert_eq!(m.load(ro_addr, 8), Some(0x0909_0909_0909_0909));
        assert!(m.allows(ro_addr, 8, false));
        assert!(!m.allows(ro_addr, 8, true));
        assert_eq!(m.store(ro_addr, 1, 0), None);
        assert_eq!(m.store(rw_addr + 4, 4, 0xdead_beef), Some(()));
        assert_eq!(m.load(rw_addr + 4, 4), Some(0xdead_beef));
        assert!(!m.allows(u64::MAX, 8, false));
        assert!(!m.allows(0, 8, false));
    }
}
