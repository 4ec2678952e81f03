//! The memory a program may address, and the address model it sees it through.
//!
//! Programs see **virtual addresses**, `region << 32 | offset`, never host addresses (see
//! `tessera_stencils::abi::region`): region 1 is the stack (`r10` starts at its end), region
//! 2 the context memory (`r1` points at it; with no context, r1 and r2 are 0), then one
//! region per map of the program (its value area, in the program's map order), then the
//! regions the embedder grants, in order. Region 0 is null. Results therefore do not depend
//! on where the memory lies, and no host address reaches a program (an attacker learns
//! nothing about the address space of the kernel or firmware running it).
//!
//! Every access is checked against the run's region table by [`semantics::locate`], the
//! same function the memory stencils run, so the interpreter and generated code agree on
//! every fault. The embedder learns the address of what it grants from
//! [`Memory::region_address`] (to put pointers into context memory, say).

use tessera_stencils::abi::{FRAME_SIZE, RegionEntry, region};
use tessera_stencils::semantics;

use super::error::RunError;
use super::maps::Map;

/// Memory the embedder grants to a program besides its stack, context and maps.
#[derive(Debug)]
pub enum Region<'m> {
    /// Loads only; stores and atomics fault.
    ReadOnly(&'m [u8]),
    /// Loads, stores and atomics.
    ReadWrite(&'m mut [u8]),
}

impl Region<'_> {
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
}

/// What the standard helpers ask of the embedding system: a clock, a sink for
/// `bpf_trace_printk` and randomness. Every method has a deterministic default.
pub trait Host {
    /// Nanoseconds of a monotonic clock (`bpf_ktime_get_ns`).
    fn ktime_ns(&mut self) -> u64 {
        0
    }

    /// One formatted `bpf_trace_printk` message.
    fn trace(&mut self, message: &[u8]) {
        let _ = message;
    }

    /// 32 random bits (`bpf_get_prandom_u32`).
    fn random_u32(&mut self) -> u32 {
        0
    }
}

/// Everything a running program can address: its stack (all call frames), the context
/// memory, the program's maps and the regions granted by the embedder.
pub struct Memory<'r, 'm> {
    /// The whole eBPF stack; `r10` starts at its end and drops by `FRAME_SIZE` per local call.
    pub stack: &'r mut [u8],
    /// Context memory: `r1` points at it.
    pub context: &'r mut [u8],
    /// Further regions, in order.
    pub regions: &'r mut [Region<'m>],
    /// The program's maps, in the program's map order (an ELF object's map indices).
    pub maps: &'r mut [Map<'m>],
    host: Option<&'r mut dyn Host>,
    /// Bytes at the bottom of `stack` the running program cannot address: all but the top
    /// frame for a program without local calls (see [`Memory::enter_stack`]), else none.
    stack_hidden: usize,
}

impl core::fmt::Debug for Memory<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Memory")
            .field("stack", &self.stack.len())
            .field("context", &self.context.len())
            .field("regions", &self.regions.len())
            .field("maps", &self.maps.len())
            .finish_non_exhaustive()
    }
}

/// A run's region table: the checks' view of a [`Memory`] (host addresses included, for
/// generated code; the interpreter uses only the check fields).
pub(crate) type Table = [RegionEntry; region::COUNT];

/// Sets entry `index` to [`RegionEntry::with_check`] of the arguments, unless it holds that
/// already (a kept table, see [`Memory::refill_table`], usually does: the same stack and
/// context run after run). Every entry is either [`RegionEntry::NONE`] or made by
/// `with_check` from these fields and its index, so equal fields mean an equal entry.
#[inline]
fn set_entry(table: &mut Table, index: usize, host: u64, len: u32, mask: u32, read_limit: u32, write_limit: u32) {
    let Some(entry) = table.get_mut(index) else { return };
    let same = entry.start == region::address(index as u64)
        && entry.host == host
        && entry.len == len
        && entry.mask == mask
        && entry.read_limit == read_limit
        && entry.write_limit == write_limit;
    if !same {
        *entry = RegionEntry::with_check(index as u64, host, len, mask, read_limit, write_limit);
    }
}

/// [`set_entry`] of a plain region ([`RegionEntry::plain`]).
#[inline]
fn set_plain(table: &mut Table, index: usize, host: u64, len: u32, writable: bool) {
    set_entry(table, index, host, len, u32::MAX, len, if writable { len } else { 0 });
}

/// A region's length as the table holds it (at most 4 GiB - 1).
fn table_len(index: usize, len: usize) -> Result<u32, RunError> {
    u32::try_from(len).map_err(|_| RunError::RegionTooLarge { region: index as u32 })
}

impl<'r, 'm> Memory<'r, 'm> {
    pub fn new(stack: &'r mut [u8], context: &'r mut [u8], regions: &'r mut [Region<'m>]) -> Memory<'r, 'm> {
        Memory { stack, context, regions, maps: &mut [], host: None, stack_hidden: 0 }
    }

    /// The program's maps (see [`Memory::maps`]).
    pub fn with_maps(mut self, maps: &'r mut [Map<'m>]) -> Memory<'r, 'm> {
        self.maps = maps;
        self
    }

    /// The clock, trace sink and randomness of the standard helpers.
    pub fn with_host(mut self, host: &'r mut dyn Host) -> Memory<'r, 'm> {
        self.host = Some(host);
        self
    }

    /// The embedding system, if one was given.
    pub fn host(&mut self) -> Option<&mut (dyn Host + 'r)> {
        self.host.as_deref_mut()
    }

    /// The value `r1` holds at entry: the context's address, or 0 when it is empty.
    pub fn context_address(&self) -> u64 {
        if self.context.is_empty() { 0 } else { region::address(region::CONTEXT) }
    }

    /// The value `r10` holds at entry: one past the last stack byte the run can address.
    pub fn stack_end(&self) -> u64 {
        region::address(region::STACK) + self.run_stack_len() as u64
    }

    /// Checks the stack (see [`Memory::check_stack`]) and fixes the part of it a run of
    /// `program` addresses: the whole stack when it makes local calls, else its top frame
    /// only, so that no computed address reaches (stale) bytes below the frame the program
    /// has.
    pub(crate) fn enter_stack(&mut self, program: &super::Program) -> Result<(), RunError> {
        self.check_stack()?;
        self.stack_hidden =
            if program.has_local_calls() { 0 } else { self.stack.len().saturating_sub(FRAME_SIZE as usize) };
        Ok(())
    }

    /// The stack the running program addresses (see [`Memory::enter_stack`]).
    fn run_stack(&self) -> &[u8] {
        self.stack.get(self.stack_hidden..).unwrap_or_default()
    }

    fn run_stack_mut(&mut self) -> &mut [u8] {
        self.stack.get_mut(self.stack_hidden..).unwrap_or_default()
    }

    /// Bytes of [`Memory::run_stack`].
    pub(crate) fn run_stack_len(&self) -> usize {
        self.stack.len().saturating_sub(self.stack_hidden)
    }

    /// The address of map `index`'s value area (value `slot` is at `slot * stride` in it).
    pub fn map_address(index: usize) -> u64 {
        region::address(region::FIRST_MAP + index as u64)
    }

    /// The address of granted region `index`.
    pub fn region_address(&self, index: usize) -> u64 {
        region::address(region::FIRST_MAP + (self.maps.len() + index) as u64)
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

    /// Checks that this memory's maps are the program's: the same number, each with the
    /// definition the program was validated against.
    pub fn check_maps(&self, maps: &[super::maps::MapDef]) -> Result<(), RunError> {
        if self.maps.len() != maps.len() {
            return Err(RunError::MapMismatch { map: self.maps.len().min(maps.len()) as u32 });
        }
        match self.maps.iter().zip(maps).position(|(run, program)| run.def() != program) {
            Some(map) => Err(RunError::MapMismatch { map: map as u32 }),
            None => Ok(()),
        }
    }

    /// The run's region table, with host addresses taken from the mutable borrows (the
    /// pointers generated code writes through).
    pub(crate) fn table(&mut self) -> Result<Table, RunError> {
        let mut table = [RegionEntry::default(); region::COUNT];
        self.fill_table(&mut table)?;
        Ok(table)
    }

    /// [`Memory::table`] into `table`, whose entries are all [`RegionEntry::default`] (no
    /// access) on entry: built where it is used, with no copy (moving a table out of a
    /// `Result` costs as much as a short run).
    pub(crate) fn fill_table(&mut self, table: &mut Table) -> Result<(), RunError> {
        self.region_count()?;
        self.fill_entries(table)
    }

    /// [`Memory::fill_table`] into a table kept between runs, of which entries `1..*filled`
    /// may hold an earlier run's regions (the rest are [`RegionEntry::NONE`]): only the
    /// entries this run uses are written, and those an earlier run used beyond them are
    /// reset, so every region this memory does not grant stays inaccessible.
    pub(crate) fn refill_table(&mut self, table: &mut Table, filled: &mut usize) -> Result<(), RunError> {
        let count = self.region_count()?;
        if let Some(stale) = table.get_mut(count..*filled) {
            stale.fill(RegionEntry::NONE);
        }
        // Set before filling: a fill that fails part way leaves entries below `count` that
        // the next run must overwrite or reset.
        *filled = count;
        self.fill_entries(table)
    }

    /// The number of region-table entries this memory uses (region 0 included).
    fn region_count(&self) -> Result<usize, RunError> {
        let count = region::FIRST_MAP as usize + self.maps.len() + self.regions.len();
        if count > region::COUNT {
            return Err(RunError::TooManyRegions { max: (region::COUNT - region::FIRST_MAP as usize) as u32 });
        }
        Ok(count)
    }

    /// Writes entries `1..region_count()` (checked by the caller).
    fn fill_entries(&mut self, table: &mut Table) -> Result<(), RunError> {
        let stack = self.run_stack_mut();
        let (host, len) = (stack.as_mut_ptr() as u64, stack.len());
        set_plain(table, region::STACK as usize, host, table_len(1, len)?, true);
        let context = self.context.as_mut_ptr() as u64;
        set_plain(table, region::CONTEXT as usize, context, table_len(2, self.context.len())?, true);
        let mut index = region::FIRST_MAP as usize;
        for map in self.maps.iter_mut() {
            let def = *map.def();
            let values = map.values_mut();
            let (host, len) = (values.as_mut_ptr() as u64, table_len(index, values.len())?);
            let write_limit = if def.read_only_for_program() { 0 } else { def.value_size() };
            // One value: a plain region, so the fast check covers it.
            let mask = if def.max_entries() == 1 { u32::MAX } else { def.value_stride() - 1 };
            set_entry(table, index, host, len, mask, def.value_size(), write_limit);
            index += 1;
        }
        for granted in self.regions.iter_mut() {
            let writable = granted.writable();
            let len = table_len(index, granted.bytes().len())?;
            let host = match granted.bytes_mut() {
                Some(bytes) => bytes.as_mut_ptr() as u64,
                None => granted.bytes().as_ptr() as u64,
            };
            set_plain(table, index, host, len, writable);
            index += 1;
        }
        Ok(())
    }

    /// Region `index`'s bytes. Inlined for the stack and the context (every access of
    /// the interpreters comes here), out of line for maps and granted regions.
    #[inline(always)]
    fn slice(&self, index: usize) -> Option<&[u8]> {
        match index as u64 {
            region::STACK => Some(self.run_stack()),
            region::CONTEXT => Some(self.context),
            _ => self.further_slice(index),
        }
    }

    /// A map's values or a granted region's bytes.
    fn further_slice(&self, index: usize) -> Option<&[u8]> {
        let i = index.checked_sub(region::FIRST_MAP as usize)?;
        match self.maps.get(i) {
            Some(map) => Some(map.values()),
            None => self.regions.get(i - self.maps.len()).map(Region::bytes),
        }
    }

    /// Region `index`'s bytes, writable (a read-only region has none); inlined as
    /// [`Memory::slice`].
    #[inline(always)]
    fn slice_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        match index as u64 {
            region::STACK => Some(self.run_stack_mut()),
            region::CONTEXT => Some(self.context),
            _ => self.further_slice_mut(index),
        }
    }

    /// A map's values or a writable granted region's bytes.
    fn further_slice_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        let i = index.checked_sub(region::FIRST_MAP as usize)?;
        let maps = self.maps.len();
        match self.maps.get_mut(i) {
            Some(map) => Some(map.values_mut()),
            None => self.regions.get_mut(i - maps).and_then(Region::bytes_mut),
        }
    }

    /// Little-endian load of `size` (1, 2, 4 or 8) bytes at `addr`, zero-extended; `None`
    /// when the access is not allowed. `table` is [`Memory::table`] of this memory.
    #[inline]
    pub(crate) fn load_in(&self, table: &Table, addr: u64, size: u64) -> Option<u64> {
        let (index, off) = semantics::locate(table, addr, size, false)?;
        let bytes = self.slice(index)?.get(off as usize..(off + size) as usize)?;
        let mut buf = [0u8; 8];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(u64::from_le_bytes(buf))
    }

    /// Little-endian store of the low `size` (1, 2, 4 or 8) bytes of `value`; `None` when
    /// the access is not allowed (out of bounds, or a read-only region).
    #[inline]
    pub(crate) fn store_in(&mut self, table: &Table, addr: u64, size: u64, value: u64) -> Option<()> {
        let (index, off) = semantics::locate(table, addr, size, true)?;
        let bytes = self.slice_mut(index)?.get_mut(off as usize..(off + size) as usize)?;
        bytes.copy_from_slice(value.to_le_bytes().get(..size as usize)?);
        Some(())
    }

    /// `Memory::load_in` with a table made for the call (helpers, tests).
    pub fn load(&mut self, addr: u64, size: u64) -> Option<u64> {
        let table = self.table().ok()?;
        self.load_in(&table, addr, size)
    }

    /// `Memory::store_in` with a table made for the call (helpers, tests).
    pub fn store(&mut self, addr: u64, size: u64, value: u64) -> Option<()> {
        let table = self.table().ok()?;
        self.store_in(&table, addr, size, value)
    }

    /// The `len` bytes at `addr`, when one region allows reading all of them (within one
    /// value, for a map): how helpers read keys, values and strings.
    pub fn read(&mut self, addr: u64, len: usize) -> Option<&[u8]> {
        let table = self.table().ok()?;
        let (index, off) = semantics::locate(&table, addr, len as u64, false)?;
        self.slice(index)?.get(off as usize..off as usize + len)
    }

    /// Writes `bytes` at `addr`, when one region allows writing all of them.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> Option<()> {
        let table = self.table().ok()?;
        let (index, off) = semantics::locate(&table, addr, bytes.len() as u64, true)?;
        self.slice_mut(index)?.get_mut(off as usize..off as usize + bytes.len())?.copy_from_slice(bytes);
        Some(())
    }

    /// Whether `[addr, addr + size)` may be accessed (`write` for stores and atomics).
    pub fn allows(&mut self, addr: u64, size: u64, write: bool) -> bool {
        self.table().ok().and_then(|t| semantics::locate(&t, addr, size, write)).is_some()
    }

    /// Zeroes the stack a run of `program` may read (of [`Memory::run_stack`], which is one
    /// frame for a program without local calls): the `reach` bytes below the top of every
    /// frame when the program reaches the stack only through `r10` (see
    /// [`Program::stack_reach`]), else all of it (a computed address may name any byte).
    /// A run never reads what an earlier run left.
    ///
    /// [`Program::stack_reach`]: super::Program::stack_reach
    pub(crate) fn clear_stack(&mut self, program: &super::Program) {
        let stack = self.run_stack_mut();
        let len = stack.len();
        match program.stack_reach() {
            Some(0) => {}
            Some(reach) => {
                for frame in 0..len / FRAME_SIZE as usize {
                    let top = len - frame * FRAME_SIZE as usize;
                    if let Some(bytes) = stack.get_mut(top.saturating_sub(reach as usize)..top) {
                        bytes.fill(0);
                    }
                }
            }
            None => stack.fill(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::maps::{Map, MapDef, MapName, MapType};

    #[test]
    fn stack_context_maps_and_regions() {
        let mut stack = [0u8; 512];
        let mut ctx = [1u8, 2, 3, 4];
        let ro = [9u8; 8];
        let mut rw = [0u8; 8];
        let mut regions = [Region::ReadOnly(&ro), Region::ReadWrite(&mut rw)];
        let def = MapDef::new(MapType::Array.raw(), 4, 12, 3, 0, MapName::new("m")).unwrap();
        let mut maps = [Map::new(def).unwrap()];
        let mut m = Memory::new(&mut stack, &mut ctx, &mut regions).with_maps(&mut maps);
        let (ro_addr, rw_addr) = (m.region_address(0), m.region_address(1));
        assert_eq!((ro_addr, rw_addr), (4 << 32, 5 << 32));
        let c = m.context_address();
        assert_eq!(c, 2 << 32);
        assert_eq!(m.load(c, 4), Some(0x0403_0201));
        assert_eq!(m.load(c + 1, 4), None);
        assert_eq!(m.store(c + 2, 2, 0xbbaa), Some(()));
        assert_eq!(m.load(c, 4), Some(0xbbaa_0201));
        let top = m.stack_end();
        assert_eq!(top, (1 << 32) + 512);
        assert_eq!(m.store(top - 8, 8, 0x1122_3344_5566_7788), Some(()));
        assert_eq!(m.load(top - 8, 8), Some(0x1122_3344_5566_7788));
        assert_eq!(m.load(top - 7, 8), None);
        assert_eq!(m.load(ro_addr, 8), Some(0x0909_0909_0909_0909));
        assert!(m.allows(ro_addr, 8, false) && !m.allows(ro_addr, 8, true));
        assert_eq!(m.store(rw_addr + 4, 4, 0xdead_beef), Some(()));
        assert_eq!(m.load(rw_addr + 4, 4), Some(0xdead_beef));
        // Map values: 12 bytes each at a stride of 16; an access stays inside one value.
        let map = Memory::map_address(0);
        assert_eq!(m.store(map + 16 + 8, 4, 7), Some(()));
        assert_eq!(m.load(map + 16 + 8, 4), Some(7));
        assert_eq!(m.load(map + 16 + 12, 1), None, "the padding after a value");
        assert_eq!(m.load(map + 16 + 10, 4), None, "straddles the end of a value");
        assert_eq!(m.load(map + 48, 1), None, "past the last value");
        // Null, unknown regions and host-looking addresses fault.
        assert!(!m.allows(0, 1, false));
        assert!(!m.allows(15 << 32, 1, false));
        assert!(!m.allows(m.stack.as_ptr() as u64, 1, false));
    }

    #[test]
    fn entries_are_set_as_made_and_kept_when_unchanged() {
        let mut table = [RegionEntry::NONE; region::COUNT];
        for writable in [true, false] {
            set_plain(&mut table, 4, 0x1000, 64, writable);
            assert_eq!(table[4], RegionEntry::plain(4, 0x1000, 64, writable));
        }
        set_entry(&mut table, 5, 0x2000, 48, 15, 12, 0);
        assert_eq!(table[5], RegionEntry::with_check(5, 0x2000, 48, 15, 12, 0));
        // The same fields in another slot still make that slot's entry.
        table[6] = table[5];
        set_entry(&mut table, 6, 0x2000, 48, 15, 12, 0);
        assert_eq!(table[6], RegionEntry::with_check(6, 0x2000, 48, 15, 12, 0));
    }

    #[test]
    fn an_empty_context_is_null() {
        let mut stack = [0u8; 512];
        let m = Memory::new(&mut stack, &mut [], &mut []);
        assert_eq!(m.context_address(), 0);
    }

    #[test]
    fn the_fast_check_implies_the_full_one() {
        // Every kind of entry the runtime builds, in every slot of the table, and addresses
        // around its start and its end, in it and in every other region (high bits too): a
        // fast pass, through the masked index or for an expected region, must be a full
        // pass at the same host address.
        let entries = |index: u64| {
            [
                RegionEntry::plain(index, 0x1000, 0, true),
                RegionEntry::plain(index, 0x1000, 3, false),
                RegionEntry::plain(index, 0x1000, 64, true),
                RegionEntry::with_check(index, 0x1000, 48, 15, 12, 12),
                RegionEntry::with_check(index, 0x1000, 16, u32::MAX, 13, 0),
                RegionEntry::plain(index, 0x1000, u32::MAX, true),
            ]
        };
        let offsets = [0u64, 1, 2, 7, 11, 12, 13, 15, 16, 47, 48, 63, 64, 65, 0xffff_fff0, 0xffff_fff8, 0xffff_ffff];
        let high = [0u64, 1 << 36, 1 << 40, 1 << 63, u64::MAX << 36];
        for index in 1..region::COUNT as u64 {
            for entry in entries(index) {
                let mut table = [RegionEntry::default(); region::COUNT];
                table[index as usize] = entry;
                for other in 0..region::COUNT as u64 {
                    for (&off, &hi) in offsets.iter().flat_map(|o| high.iter().map(move |h| (o, h))) {
                        let addr = hi | other << 32 | off;
                        for (class, size) in [1u64, 2, 4, 8].into_iter().enumerate() {
                            for write in [false, true] {
                                let full = semantics::locate(&table, addr, size, write);
                                let fast_in = |e: &RegionEntry| {
                                    let bound = if write { e.write_bound[class] } else { e.read_bound[class] };
                                    addr.wrapping_sub(e.start) < bound
                                };
                                let fast = fast_in(&table[((addr >> 32) & 15) as usize]);
                                let expected = fast_in(&entry);
                                let at = std::format!("{entry:?} addr {addr:#x} size {size} write {write}");
                                if fast || expected {
                                    assert_eq!(full, Some((index as usize, off)), "{at}");
                                    assert_eq!(addr.wrapping_add(entry.bias), entry.host + off, "{at}");
                                }
                                if entry.mask == u32::MAX && hi == 0 && other == index {
                                    assert_eq!(fast, full.is_some(), "plain regions: fast == full, {at}");
                                    assert_eq!(expected, full.is_some(), "plain regions: expected == full, {at}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
