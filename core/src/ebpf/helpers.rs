//! Helper functions, called by `call imm` and `callx`: the embedder's, and the standard
//! set (maps, clock, trace, randomness) under their Linux ids.

use super::error::LoadError as Error;
use super::maps::{Errno, MAX_KEY_SIZE};
use super::memory::Memory;
use tessera_stencils::abi::MAP_HANDLE;

/// A helper: the program's memory (to read and write through the pointers it is given,
/// reach the maps and the [`super::memory::Host`]), five arguments (r1..r5) in, r0 out. Pointers
/// are the program's virtual addresses; [`Memory::read`] and [`Memory::write`] check them.
pub type HelperFn = fn(&mut Memory<'_, '_>, u64, u64, u64, u64, u64) -> u64;

/// One registered helper; the id is the embedder's choice (the standard ones use Linux's).
#[derive(Clone, Copy)]
pub struct Helper {
    pub id: u32,
    pub func: HelperFn,
}

impl core::fmt::Debug for Helper {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Helper").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why a helper call did not return normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// The helper panicked; with `std` the panic is caught at the call, so that the
    /// interpreter and generated code report it alike (without `std` a panic is the
    /// embedder's panic handler's business: it never unwinds through generated code, and
    /// this is never built).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    Panicked,
}

/// Calls helper `f`: the one place both run modes call helpers through.
#[inline]
pub(crate) fn call(f: HelperFn, memory: &mut Memory<'_, '_>, args: [u64; 5]) -> Result<u64, CallFailure> {
    let [a1, a2, a3, a4, a5] = args;
    #[cfg(feature = "std")]
    {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(memory, a1, a2, a3, a4, a5))).map_err(panicked)
    }
    #[cfg(not(feature = "std"))]
    {
        Ok(f(memory, a1, a2, a3, a4, a5))
    }
}

/// Drops a caught panic's payload, out of line: the landing pad then needs no registers
/// of its own, so that the call's normal path saves none.
#[cfg(feature = "std")]
#[cold]
#[inline(never)]
fn panicked(payload: std::boxed::Box<dyn core::any::Any + Send>) -> CallFailure {
    drop(payload);
    CallFailure::Panicked
}

/// A helper table borrowed from the embedder (a static array works with no allocator).
#[derive(Clone, Copy, Debug, Default)]
pub struct Helpers<'h> {
    table: &'h [Helper],
}

impl<'h> Helpers<'h> {
    pub const fn new(table: &'h [Helper]) -> Helpers<'h> {
        Helpers { table }
    }

    pub const fn empty() -> Helpers<'static> {
        Helpers { table: &[] }
    }

    /// Looks a helper up by id (ids are 32-bit; `callx` passes a 64-bit register).
    pub fn get(&self, id: u64) -> Option<HelperFn> {
        self.position(id).and_then(|index| self.at(index))
    }

    /// Where helper `id` is in the table: the fast interpreter and generated code resolve
    /// each `call` to it once.
    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        self.table.iter().position(|h| h.id as u64 == id)
    }

    /// The helper at `index` in the table.
    #[inline]
    pub(crate) fn at(&self, index: usize) -> Option<HelperFn> {
        self.table.get(index).map(|h| h.func)
    }

    pub fn contains(&self, id: i32) -> bool {
        self.get(id as u32 as u64).is_some()
    }
}

/// A fixed-capacity helper registry for embedders without an allocator: helpers are
/// registered one by one (ids are checked for duplicates), then lent out as [`Helpers`].
#[derive(Debug, Default)]
pub struct HelperRegistry<const N: usize> {
    helpers: heapless::Vec<Helper, N>,
}

impl<const N: usize> HelperRegistry<N> {
    pub const fn new() -> HelperRegistry<N> {
        HelperRegistry { helpers: heapless::Vec::new() }
    }

    /// Registers `func` under `id`.
    pub fn register(&mut self, id: u32, func: HelperFn) -> Result<(), Error> {
        if self.helpers.iter().any(|h| h.id == id) {
            return Err(Error::DuplicateHelper { id });
        }
        self.helpers.push(Helper { id, func }).map_err(|_| Error::HelperTableFull { capacity: N as u32 })
    }

    /// The registered helpers, for [`crate::ebpf::Vm::new`].
    pub fn helpers(&self) -> Helpers<'_> {
        Helpers::new(&self.helpers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_rejects_duplicates_and_overflow() {
        let mut registry = HelperRegistry::<2>::new();
        registry.register(1, |_, a, _, _, _, _| a).unwrap();
        assert_eq!(registry.register(1, |_, _, b, _, _, _| b), Err(Error::DuplicateHelper { id: 1 }));
        registry.register(7, |_, _, b, _, _, _| b).unwrap();
        assert_eq!(registry.register(8, |_, a, _, _, _, _| a), Err(Error::HelperTableFull { capacity: 2 }));
        let helpers = registry.helpers();
        let mut stack = [0u8; 512];
        let mut memory = Memory::new(&mut stack, &mut [], &mut []);
        assert_eq!(helpers.get(7).map(|f| f(&mut memory, 1, 2, 3, 4, 5)), Some(2));
        assert!(helpers.contains(1) && !helpers.contains(8));
    }

    /// The last trace message.
    struct Sink {
        bytes: [u8; 64],
        len: usize,
    }

    impl crate::ebpf::memory::Host for Sink {
        fn trace(&mut self, message: &[u8]) {
            self.len = message.len().min(64);
            self.bytes[..self.len].copy_from_slice(&message[..self.len]);
        }
    }

    #[test]
    fn trace_printk_copies_bytes_as_they_are() {
        // A UTF-8 format, `%c` of a byte above 0x7f and `%s` of such bytes: every byte
        // once, as Linux writes them (not re-encoded as UTF-8).
        let mut ctx = *b"\xc3\xa9 %c|%s|%%\0\xe9\xff!\0";
        let (fmt_len, string_at) = (12, 12);
        let mut stack = [0u8; 512];
        let mut sink = Sink { bytes: [0; 64], len: 0 };
        let mut memory = Memory::new(&mut stack, &mut ctx, &mut []).with_host(&mut sink);
        let base = memory.context_address();
        let len = standard::trace_printk(&mut memory, base, fmt_len, 0xe9, base + string_at, 0);
        let expected = b"\xc3\xa9 \xe9|\xe9\xff!|%";
        assert_eq!(len, expected.len() as u64);
        assert_eq!(&sink.bytes[..sink.len], expected);
    }
}

/// The standard helpers, under their Linux ids. Register the ones a program may call (all
/// of [`STANDARD`](standard::STANDARD), or a selection) next to the embedder's own.
pub mod standard {
    use super::*;

    pub const MAP_LOOKUP_ELEM: u32 = 1;
    pub const MAP_UPDATE_ELEM: u32 = 2;
    pub const MAP_DELETE_ELEM: u32 = 3;
    pub const KTIME_GET_NS: u32 = 5;
    pub const TRACE_PRINTK: u32 = 6;
    pub const GET_PRANDOM_U32: u32 = 7;

    /// Every standard helper.
    pub static STANDARD: [Helper; 6] = [
        Helper { id: MAP_LOOKUP_ELEM, func: map_lookup_elem },
        Helper { id: MAP_UPDATE_ELEM, func: map_update_elem },
        Helper { id: MAP_DELETE_ELEM, func: map_delete_elem },
        Helper { id: KTIME_GET_NS, func: ktime_get_ns },
        Helper { id: TRACE_PRINTK, func: trace_printk },
        Helper { id: GET_PRANDOM_U32, func: get_prandom_u32 },
    ];

    /// The index of the map a handle names (`lddw` of a map, src 1, loads handles).
    fn map_index(memory: &Memory, handle: u64) -> Option<usize> {
        let index = handle.checked_sub(MAP_HANDLE).filter(|&i| (i as usize) < memory.maps.len())?;
        Some(index as usize)
    }

    /// Copies the key a pointer points at (key sizes are at most [`MAX_KEY_SIZE`]).
    fn read_key(memory: &mut Memory, map: usize, addr: u64, buf: &mut [u8; MAX_KEY_SIZE as usize]) -> Option<usize> {
        let size = memory.maps.get(map)?.def().key_size() as usize;
        let key = memory.read(addr, size)?;
        buf.get_mut(..size)?.copy_from_slice(key);
        Some(size)
    }

    /// `bpf_map_lookup_elem(map, key)`: the address of the key's value, or 0 (NULL).
    pub fn map_lookup_elem(memory: &mut Memory, handle: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
        let mut buf = [0u8; MAX_KEY_SIZE as usize];
        let found = map_index(memory, handle).and_then(|m| {
            let size = read_key(memory, m, key, &mut buf)?;
            let map = memory.maps.get(m)?;
            let slot = map.lookup(buf.get(..size)?)?;
            Some(Memory::map_address(m) + map.def().value_offset(slot) as u64)
        });
        found.unwrap_or(0)
    }

    /// `bpf_map_update_elem(map, key, value, flags)`: 0, or a negative errno.
    pub fn map_update_elem(memory: &mut Memory, handle: u64, key: u64, value: u64, flags: u64, _: u64) -> u64 {
        let Some(m) = map_index(memory, handle) else { return Errno::Inval.helper_return() };
        let mut key_buf = [0u8; MAX_KEY_SIZE as usize];
        let Some(key_size) = read_key(memory, m, key, &mut key_buf) else { return Errno::Fault.helper_return() };
        let value_size = memory.maps.get(m).map_or(0, |map| map.def().value_size() as usize);
        // The value may lie in this very map: copy it out first (values are small in
        // practice; a larger one is read in pieces into its place after the key's slot is
        // known would be needed, so it is refused rather than risk aliasing).
        let mut value_buf = [0u8; MAX_VALUE_COPY];
        let Some(value_copy) = value_buf.get_mut(..value_size) else { return Errno::TooBig.helper_return() };
        match memory.read(value, value_size) {
            Some(bytes) => value_copy.copy_from_slice(bytes),
            None => return Errno::Fault.helper_return(),
        }
        let (Some(map), Some(key)) = (memory.maps.get_mut(m), key_buf.get(..key_size)) else {
            return Errno::Inval.helper_return();
        };
        match map.update(key, value_copy, flags) {
            Ok(()) => 0,
            Err(e) => e.helper_return(),
        }
    }

    /// `bpf_map_delete_elem(map, key)`: 0, or a negative errno.
    pub fn map_delete_elem(memory: &mut Memory, handle: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
        let Some(m) = map_index(memory, handle) else { return Errno::Inval.helper_return() };
        let mut buf = [0u8; MAX_KEY_SIZE as usize];
        let Some(size) = read_key(memory, m, key, &mut buf) else { return Errno::Fault.helper_return() };
        let (Some(map), Some(key)) = (memory.maps.get_mut(m), buf.get(..size)) else {
            return Errno::Inval.helper_return();
        };
        match map.delete(key) {
            Ok(()) => 0,
            Err(e) => e.helper_return(),
        }
    }

    /// `bpf_ktime_get_ns()`: the host's clock (0 without a host).
    pub fn ktime_get_ns(memory: &mut Memory, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        memory.host().map_or(0, |host| host.ktime_ns())
    }

    /// `bpf_get_prandom_u32()`: the host's randomness (0 without a host).
    pub fn get_prandom_u32(memory: &mut Memory, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        memory.host().map_or(0, |host| host.random_u32() as u64)
    }

    /// `bpf_trace_printk(fmt, fmt_size, a, b, c)`: formats into the host's trace sink and
    /// returns the message length, or a negative errno. The format takes `%d %i %u %x %c %s
    /// %p %%` with the `l`/`ll` length modifiers, as Linux's does (at most three conversions).
    pub fn trace_printk(memory: &mut Memory, fmt: u64, fmt_size: u64, a: u64, b: u64, c: u64) -> u64 {
        let mut format = [0u8; MAX_TRACE];
        let Some(size) = usize::try_from(fmt_size).ok().filter(|&n| n <= MAX_TRACE) else {
            return Errno::Inval.helper_return();
        };
        match memory.read(fmt, size) {
            Some(bytes) => format.get_mut(..size).unwrap_or_default().copy_from_slice(bytes),
            None => return Errno::Fault.helper_return(),
        }
        let format = format.get(..size).unwrap_or_default();
        let format = format.split(|&b| b == 0).next().unwrap_or_default();
        let mut out = Message { bytes: [0; MAX_TRACE], len: 0 };
        if super::printf::format(memory, format, [a, b, c], &mut out).is_err() {
            return Errno::Inval.helper_return();
        }
        let message = out.as_bytes();
        if let Some(host) = memory.host() {
            host.trace(message);
        }
        message.len() as u64
    }

    /// The largest value `bpf_map_update_elem` copies (and so accepts).
    pub const MAX_VALUE_COPY: usize = 1024;
    /// The longest `bpf_trace_printk` format and message.
    pub const MAX_TRACE: usize = 256;

    /// A formatted message, in a fixed buffer (truncated when full, as Linux's is).
    pub(super) struct Message {
        bytes: [u8; MAX_TRACE],
        len: usize,
    }

    impl Message {
        fn as_bytes(&self) -> &[u8] {
            self.bytes.get(..self.len).unwrap_or_default()
        }

        /// Appends one byte as it is (bytes from the program are not text: a byte above
        /// 0x7f stays one byte, as Linux writes it).
        pub(super) fn push(&mut self, b: u8) {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    /// Formatted numbers (ASCII).
    impl core::fmt::Write for Message {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            s.bytes().for_each(|b| self.push(b));
            Ok(())
        }
    }
}

/// The `printf` subset of `bpf_trace_printk`.
mod printf {
    use core::fmt::Write;

    use super::Memory;
    use super::standard::Message;

    /// Formats `format` with up to three arguments. `Err` for an unknown conversion or more
    /// than three of them. The format's own bytes, `%c` and `%s` are copied byte for byte.
    pub(super) fn format(memory: &mut Memory, format: &[u8], args: [u64; 3], out: &mut Message) -> Result<(), ()> {
        let mut args = args.into_iter();
        let mut i = 0;
        while let Some(&b) = format.get(i) {
            i += 1;
            if b != b'%' {
                out.push(b);
                continue;
            }
            // Length modifiers: l, ll (the value is 64-bit either way; without them 32-bit).
            let mut long = false;
            while format.get(i) == Some(&b'l') {
                long = true;
                i += 1;
            }
            let conversion = *format.get(i).ok_or(())?;
            i += 1;
            if conversion == b'%' {
                out.push(b'%');
                continue;
            }
            let v = args.next().ok_or(())?;
            let narrow = |v: u64| if long { v } else { v as u32 as u64 };
            match conversion {
                b'd' | b'i' if long => write!(out, "{}", v as i64),
                b'd' | b'i' => write!(out, "{}", v as i32),
                b'u' => write!(out, "{}", narrow(v)),
                b'x' => write!(out, "{:x}", narrow(v)),
                b'p' => write!(out, "0x{v:x}"),
                b'c' => {
                    out.push(v as u8);
                    Ok(())
                }
                b's' => {
                    // A NUL-terminated string in program memory, byte by byte.
                    for addr in (v..).take(super::standard::MAX_TRACE) {
                        match memory.read(addr, 1).and_then(|b| b.first().copied()) {
                            Some(0) => break,
                            Some(c) => out.push(c),
                            None => return Err(()),
                        }
                    }
                    Ok(())
                }
                _ => return Err(()),
            }
            .map_err(|_| ())?;
        }
        Ok(())
    }
}
