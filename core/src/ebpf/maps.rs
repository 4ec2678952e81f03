//! eBPF maps (`BPF_MAP_TYPE_ARRAY`, `BPF_MAP_TYPE_HASH`): definitions and storage, with the
//! kernel's semantics, independent of the interpreter and the JIT.
//!
//! # Layout: one value region per map
//! Every map keeps all its values in one contiguous, 8-byte-aligned area, value `slot` at
//! byte offset `slot * stride`, where `stride` ([`MapDef::value_stride`]) is the value
//! size rounded up to a power of two, at least 8. The runtime can therefore expose a map's
//! values as a single memory region ([`Map::values`], [`MapDef::values_len`] bytes) and
//! check an access `[offset, offset + size)` into it with a mask instead of a division
//! ([`MapDef::value_access_ok`]): `(offset & (stride - 1)) + size <= value_size`. The
//! padding bytes between `value_size` and `stride` stay zero and are never accessible.
//!
//! A lookup returns the value's slot; a hash map keeps a key's slot while the key is
//! present (updates write in place), so a pointer handed to a program stays valid until
//! the key is deleted, as in the kernel. Keys and bookkeeping live after the value area in
//! the same storage, outside the region a program may access.
//!
//! # Storage
//! [`Map::new_in`] takes caller memory (`&'s mut [u8]`, 8-byte aligned, at least
//! [`MapDef::storage_len`] bytes; [`AlignedBytes`] gives such memory in a `static` or on
//! the stack) and needs no allocator. With the `alloc` feature, [`Map::new`] allocates.
//! Everything is preallocated: `BPF_F_NO_PREALLOC` is accepted and changes nothing.
//!
//! # Errors
//! Construction fails with a [`MapError`]; operations fail with an [`Errno`], the negative
//! errno value the kernel's `bpf_map_*_elem` helpers return, so helper ids 1–3 can pass it
//! straight back to the program ([`Errno::helper_return`]).

use core::fmt;

/// `bpf_map_update_elem` flags.
pub mod update {
    /// Create a new element or update an existing one.
    pub const BPF_ANY: u64 = 0;
    /// Create a new element only if it does not exist.
    pub const BPF_NOEXIST: u64 = 1;
    /// Update an existing element only.
    pub const BPF_EXIST: u64 = 2;
}

/// Map flags (`map_flags`) this implementation accepts.
pub mod flags {
    /// Hash maps: allocate elements on demand (here every map is preallocated; no effect).
    pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
    /// Read-only from the syscall side (no effect here).
    pub const BPF_F_RDONLY: u32 = 1 << 3;
    /// Write-only from the syscall side (no effect here).
    pub const BPF_F_WRONLY: u32 = 1 << 4;
    /// Read-only from the program: the runtime must expose the values read-only.
    pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    /// Write-only from the program (the runtime may still allow reads).
    pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
    /// Array maps: values may be memory-mapped (they always are: no effect).
    pub const BPF_F_MMAPABLE: u32 = 1 << 10;
}

/// The largest key a map accepts (the eBPF stack size, as the kernel's hash map).
pub const MAX_KEY_SIZE: u32 = 512;
/// The largest value a map accepts, in bytes.
pub const MAX_VALUE_SIZE: u32 = 1 << 26;
/// The largest storage a map may need, in bytes (values, keys and bookkeeping): 256 MiB,
/// so a definition read from an object cannot ask for an absurd allocation.
pub const MAX_STORAGE_LEN: u64 = 1 << 28;
/// The alignment of a map's storage and of its value area.
pub const STORAGE_ALIGN: usize = 8;

/// Map types this implementation supports (`enum bpf_map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u32)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`.
    Hash = 1,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array = 2,
}

impl MapType {
    /// The type with this `bpf_map_type` number, if supported.
    pub const fn from_raw(raw: u32) -> Option<MapType> {
        match raw {
            1 => Some(MapType::Hash),
            2 => Some(MapType::Array),
            _ => None,
        }
    }

    pub const fn raw(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for MapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MapType::Hash => "hash",
            MapType::Array => "array",
        })
    }
}

/// Why a map definition or its storage is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MapError {
    /// A `bpf_map_type` other than hash (1) and array (2).
    UnsupportedType { map_type: u32 },
    /// Key size 0, above [`MAX_KEY_SIZE`], or (array) not 4.
    KeySize { size: u32 },
    /// Value size 0 or above [`MAX_VALUE_SIZE`].
    ValueSize { size: u32 },
    /// `max_entries` is 0.
    MaxEntries { count: u32 },
    /// Flags the map type does not accept.
    Flags { flags: u32 },
    /// The storage would exceed [`MAX_STORAGE_LEN`] bytes.
    TooLarge,
    /// The caller's storage is smaller than [`MapDef::storage_len`].
    StorageTooSmall { needed: u64, available: u64 },
    /// The caller's storage does not start at a multiple of [`STORAGE_ALIGN`].
    StorageMisaligned,
    /// The allocator could not provide the storage.
    OutOfMemory { needed: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::UnsupportedType { map_type } => {
                write!(f, "map type {map_type} is not supported (hash 1, array 2)")
            }
            MapError::KeySize { size } => write!(f, "key size {size} not accepted for this map type"),
            MapError::ValueSize { size } => write!(f, "value size {size} not accepted (1..={MAX_VALUE_SIZE})"),
            MapError::MaxEntries { count } => write!(f, "max_entries {count} not accepted"),
            MapError::Flags { flags } => write!(f, "map flags {flags:#x} not accepted for this map type"),
            MapError::TooLarge => write!(f, "map storage would exceed {MAX_STORAGE_LEN} bytes"),
            MapError::StorageTooSmall { needed, available } => {
                write!(f, "map storage of {available} bytes, {needed} needed")
            }
            MapError::StorageMisaligned => write!(f, "map storage is not {STORAGE_ALIGN}-byte aligned"),
            MapError::OutOfMemory { needed } => write!(f, "cannot allocate {needed} bytes of map storage"),
        }
    }
}

impl core::error::Error for MapError {}

/// A map operation's failure: the negative errno value the kernel's helper returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(i32)]
pub enum Errno {
    /// `-ENOENT`: no such key (hash delete, `BPF_EXIST` update of a missing key).
    NoEnt = -2,
    /// `-E2BIG`: array index out of range, or the hash map is full.
    TooBig = -7,
    /// `-EFAULT`: a helper was given a pointer to memory the program may not access.
    Fault = -14,
    /// `-EEXIST`: `BPF_NOEXIST` update of a present key (always, for arrays).
    Exist = -17,
    /// `-EINVAL`: bad flags, wrong key or value length, or deleting from an array.
    Inval = -22,
}

impl Errno {
    /// The value as `i32` (negative).
    pub const fn raw(self) -> i32 {
        self as i32
    }

    /// The value as a helper's return in `r0`: the sign-extended negative errno.
    pub const fn helper_return(self) -> u64 {
        self as i32 as i64 as u64
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Errno::NoEnt => "ENOENT: no such element",
            Errno::TooBig => "E2BIG: index out of range or map full",
            Errno::Fault => "EFAULT: bad address",
            Errno::Exist => "EEXIST: element exists",
            Errno::Inval => "EINVAL: invalid argument",
        })
    }
}

impl core::error::Error for Errno {}

/// A map's name, stored inline (no allocation, no lifetime). Longer names are truncated
/// at a character boundary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MapName {
    bytes: [u8; MapName::CAPACITY],
    len: u8,
}

impl MapName {
    /// The longest name kept, in bytes.
    pub const CAPACITY: usize = 32;

    pub const EMPTY: MapName = MapName { bytes: [0; MapName::CAPACITY], len: 0 };

    /// `name`, truncated to [`MapName::CAPACITY`] bytes at a character boundary.
    pub fn new(name: &str) -> MapName {
        let mut len = name.len().min(Self::CAPACITY);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Self::CAPACITY];
        if let (Some(to), Some(from)) = (bytes.get_mut(..len), name.as_bytes().get(..len)) {
            to.copy_from_slice(from);
        }
        MapName { bytes, len: len as u8 }
    }

    pub fn as_str(&self) -> &str {
        // Built from a &str cut at a character boundary, so this cannot fail.
        core::str::from_utf8(self.bytes.get(..self.len as usize).unwrap_or_default()).unwrap_or_default()
    }
}

impl Default for MapName {
    fn default() -> MapName {
        MapName::EMPTY
    }
}

impl fmt::Debug for MapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for MapName {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

/// A validated map definition: type, key and value sizes, capacity, flags and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MapDef {
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: MapName,
}

const ARRAY_FLAGS: u32 = flags::BPF_F_RDONLY
    | flags::BPF_F_WRONLY
    | flags::BPF_F_RDONLY_PROG
    | flags::BPF_F_WRONLY_PROG
    | flags::BPF_F_MMAPABLE;
const HASH_FLAGS: u32 = flags::BPF_F_NO_PREALLOC
    | flags::BPF_F_RDONLY
    | flags::BPF_F_WRONLY
    | flags::BPF_F_RDONLY_PROG
    | flags::BPF_F_WRONLY_PROG;

/// Bytes of bookkeeping per hash slot (its free-list link) and per hash bucket.
const LINK_SIZE: u64 = 4;
const BUCKET_SIZE: u64 = 4;

impl MapDef {
    /// Checks a definition as the kernel would (`map_type` is the raw `bpf_map_type`):
    /// arrays need 4-byte keys; sizes and counts non-zero and within the limits; flags
    /// from [`flags`] that the type accepts.
    pub fn new(
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
        name: MapName,
    ) -> Result<MapDef, MapError> {
        let kind = MapType::from_raw(map_type).ok_or(MapError::UnsupportedType { map_type })?;
        let (key_ok, allowed_flags) = match kind {
            MapType::Array => (key_size == 4, ARRAY_FLAGS),
            MapType::Hash => (key_size != 0 && key_size <= MAX_KEY_SIZE, HASH_FLAGS),
        };
        if !key_ok {
            return Err(MapError::KeySize { size: key_size });
        }
        if value_size == 0 || value_size > MAX_VALUE_SIZE {
            return Err(MapError::ValueSize { size: value_size });
        }
        if max_entries == 0 {
            return Err(MapError::MaxEntries { count: max_entries });
        }
        if flags & !allowed_flags != 0 {
            return Err(MapError::Flags { flags });
        }
        let def = MapDef { map_type: kind, key_size, value_size, max_entries, flags, name };
        if def.layout().is_none() {
            return Err(MapError::TooLarge);
        }
        Ok(def)
    }

    pub fn map_type(&self) -> MapType {
        self.map_type
    }

    pub fn key_size(&self) -> u32 {
        self.key_size
    }

    pub fn value_size(&self) -> u32 {
        self.value_size
    }

    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    pub fn flags(&self) -> u32 {
        self.flags
    }

    pub fn name(&self) -> &MapName {
        &self.name
    }

    /// Whether programs may only read the values (`BPF_F_RDONLY_PROG`, set for `.rodata`):
    /// the runtime exposes the value region read-only.
    pub fn read_only_for_program(&self) -> bool {
        self.flags & flags::BPF_F_RDONLY_PROG != 0
    }

    /// Distance between consecutive values: the value size rounded up to a power of two,
    /// at least 8.
    pub fn value_stride(&self) -> u32 {
        // value_size <= MAX_VALUE_SIZE (2^26), so the power of two fits.
        self.value_size.next_power_of_two().max(8)
    }

    /// Length of the value area, `max_entries * stride`.
    pub fn values_len(&self) -> usize {
        self.layout().map_or(0, |l| l.values_len)
    }

    /// Bytes of storage [`Map::new_in`] needs (values first, then keys and bookkeeping).
    pub fn storage_len(&self) -> usize {
        self.layout().map_or(0, |l| l.total)
    }

    /// Byte offset of value `slot` in the value area.
    pub fn value_offset(&self, slot: u32) -> usize {
        slot as usize * self.value_stride() as usize
    }

    /// Whether an access of `size` bytes at byte `offset` of the value area stays inside
    /// one value: inside the area, and `(offset & (stride - 1)) + size <= value_size`.
    pub fn value_access_ok(&self, offset: u64, size: u64) -> bool {
        let stride = self.value_stride() as u64;
        let in_area = offset.checked_add(size).is_some_and(|end| end <= self.values_len() as u64);
        in_area && (offset & (stride - 1)) + size <= self.value_size as u64
    }

    fn layout(&self) -> Option<Layout> {
        let entries = self.max_entries as u64;
        let values_len = entries.checked_mul(self.value_stride() as u64)?;
        let (keys_len, links_len, buckets) = match self.map_type {
            MapType::Array => (0, 0, 0),
            MapType::Hash => {
                // At most half the buckets are used, so linear probing stays short.
                let buckets = entries.checked_mul(2)?.checked_next_power_of_two()?;
                (entries.checked_mul(self.key_size as u64)?, entries * LINK_SIZE, buckets)
            }
        };
        let keys_off = values_len;
        let links_off = keys_off.checked_add(keys_len)?;
        let buckets_off = links_off.checked_add(links_len)?;
        let total = buckets_off.checked_add(buckets.checked_mul(BUCKET_SIZE)?)?;
        if total > MAX_STORAGE_LEN || buckets > u32::MAX as u64 {
            return None;
        }
        Some(Layout {
            values_len: usize::try_from(values_len).ok()?,
            keys_off: usize::try_from(keys_off).ok()?,
            links_off: usize::try_from(links_off).ok()?,
            buckets_off: usize::try_from(buckets_off).ok()?,
            buckets: buckets as u32,
            total: usize::try_from(total).ok()?,
        })
    }
}

/// Where each part of a map's storage starts.
#[derive(Clone, Copy)]
struct Layout {
    values_len: usize,
    keys_off: usize,
    links_off: usize,
    buckets_off: usize,
    buckets: u32,
    total: usize,
}

/// A byte array aligned for map storage, for maps in a `static` or on the stack.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(8))]
pub struct AlignedBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> AlignedBytes<N> {
    pub const fn new() -> Self {
        AlignedBytes([0; N])
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for AlignedBytes<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The bytes behind a map: borrowed from the caller, or allocated. Either way they do not
/// move while the map lives, so the value area's address is stable between runs.
enum Storage<'s> {
    Borrowed(&'s mut [u8]),
    #[cfg(feature = "alloc")]
    Owned {
        buf: alloc::boxed::Box<[u8]>,
        start: usize,
    },
}

impl Storage<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Borrowed(b) => b,
            #[cfg(feature = "alloc")]
            Storage::Owned { buf, start } => buf.get(*start..).unwrap_or_default(),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Borrowed(b) => b,
            #[cfg(feature = "alloc")]
            Storage::Owned { buf, start } => buf.get_mut(*start..).unwrap_or_default(),
        }
    }
}

/// The key of an entry, as [`Map::entries`] yields it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKey<'a> {
    /// An array index (the 4-byte little-endian key).
    Index(u32),
    /// A hash key's bytes.
    Bytes(&'a [u8]),
}

/// Free-list end, and the link value of an occupied hash slot.
const NO_SLOT: u32 = u32::MAX;
const OCCUPIED: u32 = u32::MAX - 1;

/// An array or hash map over one storage area (see the module docs for the layout).
pub struct Map<'s> {
    def: MapDef,
    layout: Layout,
    storage: Storage<'s>,
    /// Hash: present keys, and the first free slot.
    len: u32,
    free_head: u32,
}

impl core::fmt::Debug for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").field("def", &self.def).field("len", &self.len()).finish_non_exhaustive()
    }
}

impl<'s> Map<'s> {
    /// A map over caller memory: `storage` must be [`STORAGE_ALIGN`]-aligned and hold at
    /// least [`MapDef::storage_len`] bytes (the rest is left alone). The values start
    /// zeroed.
    pub fn new_in(def: MapDef, storage: &'s mut [u8]) -> Result<Map<'s>, MapError> {
        let layout = def.layout().ok_or(MapError::TooLarge)?;
        if !(storage.as_ptr() as usize).is_multiple_of(STORAGE_ALIGN) {
            return Err(MapError::StorageMisaligned);
        }
        let available = storage.len();
        let storage = storage
            .get_mut(..layout.total)
            .ok_or(MapError::StorageTooSmall { needed: layout.total as u64, available: available as u64 })?;
        storage.fill(0);
        Ok(Map::init(def, layout, Storage::Borrowed(storage)))
    }

    /// A map over zeroed `storage`.
    fn init(def: MapDef, layout: Layout, storage: Storage<'s>) -> Map<'s> {
        let mut map = Map { def, layout, storage, len: 0, free_head: NO_SLOT };
        if def.map_type == MapType::Hash {
            // Free list 0 -> 1 -> ... -> max_entries - 1.
            for slot in 0..def.max_entries {
                let next = if slot + 1 < def.max_entries { slot + 1 } else { NO_SLOT };
                map.set_link(slot, next);
            }
            map.free_head = 0;
        }
        map
    }

    pub fn def(&self) -> &MapDef {
        &self.def
    }

    /// Number of present elements (every index, for arrays).
    pub fn len(&self) -> u32 {
        match self.def.map_type {
            MapType::Array => self.def.max_entries,
            MapType::Hash => self.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value area: `max_entries` values, value `slot` at `slot * stride`. This is the
    /// region a runtime exposes to programs.
    pub fn values(&self) -> &[u8] {
        self.storage.bytes().get(..self.layout.values_len).unwrap_or_default()
    }

    /// The value area, writable (see [`Map::values`]).
    pub fn values_mut(&mut self) -> &mut [u8] {
        let len = self.layout.values_len;
        self.storage.bytes_mut().get_mut(..len).unwrap_or_default()
    }

    /// The `value_size` bytes of the value in `slot`, if the slot holds one.
    pub fn value(&self, slot: u32) -> Option<&[u8]> {
        if !self.slot_present(slot) {
            return None;
        }
        let start = self.def.value_offset(slot);
        self.values().get(start..start + self.def.value_size as usize)
    }

    /// The value in `slot`, writable.
    pub fn value_mut(&mut self, slot: u32) -> Option<&mut [u8]> {
        if !self.slot_present(slot) {
            return None;
        }
        let start = self.def.value_offset(slot);
        let size = self.def.value_size as usize;
        self.values_mut().get_mut(start..start + size)
    }

    /// `bpf_map_lookup_elem`: the slot of `key`'s value (its byte offset in the value area
    /// is [`MapDef::value_offset`]), or `None` (the helper returns NULL). A key of the
    /// wrong length is never found.
    pub fn lookup(&self, key: &[u8]) -> Option<u32> {
        if key.len() != self.def.key_size as usize {
            return None;
        }
        match self.def.map_type {
            MapType::Array => array_index(key).filter(|&i| i < self.def.max_entries),
            MapType::Hash => self.find(key).map(|(_, slot)| slot),
        }
    }

    /// `bpf_map_update_elem`: sets `key`'s value. `flags` is one of [`update`]'s values.
    pub fn update(&mut self, key: &[u8], value: &[u8], flags: u64) -> Result<(), Errno> {
        if flags > update::BPF_EXIST
            || key.len() != self.def.key_size as usize
            || value.len() != self.def.value_size as usize
        {
            return Err(Errno::Inval);
        }
        let slot = match self.def.map_type {
            MapType::Array => {
                let index = array_index(key).ok_or(Errno::Inval)?;
                if index >= self.def.max_entries {
                    return Err(Errno::TooBig);
                }
                if flags == update::BPF_NOEXIST {
                    // Every element of an array exists.
                    return Err(Errno::Exist);
                }
                index
            }
            MapType::Hash => match self.find(key) {
                Some(_) if flags == update::BPF_NOEXIST => return Err(Errno::Exist),
                Some((_, slot)) => slot,
                None if flags == update::BPF_EXIST => return Err(Errno::NoEnt),
                None => self.insert(key)?,
            },
        };
        let start = self.def.value_offset(slot);
        let dst = self.values_mut().get_mut(start..start + value.len()).ok_or(Errno::Inval)?;
        dst.copy_from_slice(value);
        Ok(())
    }

    /// `bpf_map_delete_elem`: removes `key` (hash maps; arrays answer `-EINVAL`).
    pub fn delete(&mut self, key: &[u8]) -> Result<(), Errno> {
        if key.len() != self.def.key_size as usize {
            return Err(Errno::Inval);
        }
        match self.def.map_type {
            MapType::Array => Err(Errno::Inval),
            MapType::Hash => {
                let (bucket, slot) = self.find(key).ok_or(Errno::NoEnt)?;
                self.remove_bucket(bucket);
                self.set_link(slot, self.free_head);
                self.free_head = slot;
                self.len -= 1;
                Ok(())
            }
        }
    }

    /// The present entries, in slot order.
    pub fn entries(&self) -> Entries<'_, 's> {
        Entries { map: self, slot: 0 }
    }

    // --- hash internals -------------------------------------------------------------
    // Buckets hold `slot + 1` (0 = empty), with linear probing; deletion shifts later
    // entries back, so no tombstones. Slots never move: only bucket entries do.

    fn slot_present(&self, slot: u32) -> bool {
        match self.def.map_type {
            MapType::Array => slot < self.def.max_entries,
            MapType::Hash => slot < self.def.max_entries && self.link(slot) == OCCUPIED,
        }
    }

    fn key_at(&self, slot: u32) -> &[u8] {
        let size = self.def.key_size as usize;
        let start = self.layout.keys_off + slot as usize * size;
        self.storage.bytes().get(start..start + size).unwrap_or_default()
    }

    fn read_u32(&self, offset: usize) -> u32 {
        let bytes = self.storage.bytes().get(offset..offset + 4).and_then(|b| b.try_into().ok());
        u32::from_le_bytes(bytes.unwrap_or_default())
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        if let Some(b) = self.storage.bytes_mut().get_mut(offset..offset + 4) {
            b.copy_from_slice(&value.to_le_bytes());
        }
    }

    fn link(&self, slot: u32) -> u32 {
        self.read_u32(self.layout.links_off + slot as usize * LINK_SIZE as usize)
    }

    fn set_link(&mut self, slot: u32, value: u32) {
        self.write_u32(self.layout.links_off + slot as usize * LINK_SIZE as usize, value);
    }

    fn bucket(&self, index: u32) -> u32 {
        self.read_u32(self.layout.buckets_off + index as usize * BUCKET_SIZE as usize)
    }

    fn set_bucket(&mut self, index: u32, value: u32) {
        self.write_u32(self.layout.buckets_off + index as usize * BUCKET_SIZE as usize, value);
    }

    fn home(&self, key: &[u8]) -> u32 {
        hash(key) & (self.layout.buckets - 1)
    }

    /// `(bucket, slot)` of `key`.
    fn find(&self, key: &[u8]) -> Option<(u32, u32)> {
        let mask = self.layout.buckets - 1;
        let mut b = self.home(key);
        // At most half the buckets are full, so an empty one ends every probe.
        for _ in 0..self.layout.buckets {
            let entry = self.bucket(b);
            if entry == 0 {
                return None;
            }
            if self.key_at(entry - 1) == key {
                return Some((b, entry - 1));
            }
            b = (b + 1) & mask;
        }
        None
    }

    /// Takes a free slot for `key` (not present) and records it in a bucket.
    fn insert(&mut self, key: &[u8]) -> Result<u32, Errno> {
        let slot = self.free_head;
        if slot == NO_SLOT {
            return Err(Errno::TooBig);
        }
        self.free_head = self.link(slot);
        self.set_link(slot, OCCUPIED);
        let size = self.def.key_size as usize;
        let start = self.layout.keys_off + slot as usize * size;
        if let Some(dst) = self.storage.bytes_mut().get_mut(start..start + size) {
            dst.copy_from_slice(key);
        }
        let mask = self.layout.buckets - 1;
        let mut b = self.home(key);
        while self.bucket(b) != 0 {
            b = (b + 1) & mask;
        }
        self.set_bucket(b, slot + 1);
        self.len += 1;
        Ok(slot)
    }

    /// Empties bucket `hole`, moving back later entries of the probe run whose home
    /// position does not lie cyclically in `(hole, j]`.
    fn remove_bucket(&mut self, mut hole: u32) {
        let mask = self.layout.buckets - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let entry = self.bucket(j);
            if entry == 0 || j == hole {
                break;
            }
            let home = self.home(self.key_at(entry - 1));
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.set_bucket(hole, entry);
                hole = j;
            }
        }
        self.set_bucket(hole, 0);
    }
}

#[cfg(feature = "alloc")]
impl Map<'static> {
    /// A map in allocated storage. The values start zeroed.
    pub fn new(def: MapDef) -> Result<Map<'static>, MapError> {
        let layout = def.layout().ok_or(MapError::TooLarge)?;
        // Over-allocate so the storage can start at an aligned address; a boxed slice's
        // heap block does not move when the map does.
        let len = layout.total + STORAGE_ALIGN - 1;
        let mut buf = alloc::vec::Vec::new();
        buf.try_reserve_exact(len).map_err(|_| MapError::OutOfMemory { needed: len as u64 })?;
        buf.resize(len, 0u8);
        let buf = buf.into_boxed_slice();
        let start = buf.as_ptr().align_offset(STORAGE_ALIGN);
        if start >= STORAGE_ALIGN {
            return Err(MapError::StorageMisaligned);
        }
        Ok(Map::init(def, layout, Storage::Owned { buf, start }))
    }
}

/// Array keys are a 4-byte little-endian index.
fn array_index(key: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(key.try_into().ok()?))
}

/// FNV-1a over the key, then a murmur3 finalizer so low bits (the bucket index) mix well.
fn hash(key: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Iterator over a map's present entries (see [`Map::entries`]).
pub struct Entries<'m, 's> {
    map: &'m Map<'s>,
    slot: u32,
}

impl<'m> Iterator for Entries<'m, '_> {
    type Item = (MapKey<'m>, &'m [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while self.slot < self.map.def.max_entries {
            let slot = self.slot;
            self.slot += 1;
            if let Some(value) = self.map.value(slot) {
                let key = match self.map.def.map_type {
                    MapType::Array => MapKey::Index(slot),
                    MapType::Hash => MapKey::Bytes(self.map.key_at(slot)),
                };
                return Some((key, value));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::update::*;
    use super::*;

    fn def(map_type: u32, key: u32, value: u32, max: u32) -> MapDef {
        MapDef::new(map_type, key, value, max, 0, MapName::new("m")).unwrap()
    }

    #[test]
    fn definitions_are_checked() {
        let name = MapName::new("m");
        assert_eq!(MapDef::new(6, 4, 8, 1, 0, name), Err(MapError::UnsupportedType { map_type: 6 }));
        assert_eq!(MapDef::new(2, 8, 8, 1, 0, name), Err(MapError::KeySize { size: 8 }));
        assert_eq!(MapDef::new(1, 0, 8, 1, 0, name), Err(MapError::KeySize { size: 0 }));
        assert_eq!(MapDef::new(1, 513, 8, 1, 0, name), Err(MapError::KeySize { size: 513 }));
        assert_eq!(MapDef::new(1, 4, 0, 1, 0, name), Err(MapError::ValueSize { size: 0 }));
        assert_eq!(MapDef::new(1, 4, MAX_VALUE_SIZE + 1, 1, 0, name), Err(MapError::ValueSize { size: (1 << 26) + 1 }));
        assert_eq!(MapDef::new(1, 4, 8, 0, 0, name), Err(MapError::MaxEntries { count: 0 }));
        assert_eq!(MapDef::new(2, 4, 8, 1, 1, name), Err(MapError::Flags { flags: 1 }));
        assert_eq!(MapDef::new(1, 4, 8, 1, 1 << 10, name), Err(MapError::Flags { flags: 1 << 10 }));
        assert_eq!(MapDef::new(1, 4, 8, 1, 1 << 15, name), Err(MapError::Flags { flags: 1 << 15 }));
        assert_eq!(MapDef::new(2, 4, 1 << 26, 1 << 20, 0, name), Err(MapError::TooLarge));
        assert_eq!(MapDef::new(1, 512, 8, u32::MAX, 0, name), Err(MapError::TooLarge));
        // At most 256 MiB of storage.
        assert_eq!(MapDef::new(2, 4, 1 << 20, (1 << 8) + 1, 0, name), Err(MapError::TooLarge));
        assert_eq!(MapDef::new(2, 4, 1 << 20, 1 << 8, 0, name).map(|d| d.storage_len()), Ok(1 << 28));
        assert!(MapDef::new(1, 4, 8, 1, flags::BPF_F_NO_PREALLOC, name).is_ok());
    }

    #[test]
    fn strides_and_bounds() {
        let d = def(2, 4, 12, 3);
        assert_eq!((d.value_stride(), d.values_len()), (16, 48));
        assert_eq!(def(2, 4, 1, 1).value_stride(), 8);
        assert_eq!(def(2, 4, 64, 1).value_stride(), 64);
        assert_eq!(def(2, 4, 65, 1).value_stride(), 128);
        assert!(d.value_access_ok(0, 8));
        assert!(d.value_access_ok(4, 8));
        assert!(!d.value_access_ok(8, 8)); // into the padding of value 0
        assert!(d.value_access_ok(16, 4));
        assert!(d.value_access_ok(32 + 8, 4));
        assert!(!d.value_access_ok(32 + 12, 1));
        assert!(!d.value_access_ok(48, 1)); // past the area
        assert!(!d.value_access_ok(u64::MAX, 2));
    }

    #[test]
    fn names_truncate_at_char_boundaries() {
        assert_eq!(MapName::new("counts").as_str(), "counts");
        let long = "é".repeat(20); // 40 bytes
        assert_eq!(MapName::new(&long).as_str(), "é".repeat(16));
    }

    #[test]
    fn array_semantics() {
        let mut storage = AlignedBytes::<64>::new();
        let mut m = Map::new_in(def(2, 4, 8, 4), storage.as_mut_slice()).unwrap();
        assert_eq!(m.lookup(&2u32.to_le_bytes()), Some(2));
        assert_eq!(m.lookup(&4u32.to_le_bytes()), None);
        assert_eq!(m.lookup(&[0, 0]), None);
        assert_eq!(m.value(2), Some(&[0u8; 8][..]));
        assert_eq!(m.update(&2u32.to_le_bytes(), &7u64.to_le_bytes(), BPF_ANY), Ok(()));
        assert_eq!(m.update(&2u32.to_le_bytes(), &8u64.to_le_bytes(), BPF_EXIST), Ok(()));
        assert_eq!(m.update(&2u32.to_le_bytes(), &9u64.to_le_bytes(), BPF_NOEXIST), Err(Errno::Exist));
        assert_eq!(m.update(&4u32.to_le_bytes(), &9u64.to_le_bytes(), BPF_ANY), Err(Errno::TooBig));
        assert_eq!(m.update(&1u32.to_le_bytes(), &9u64.to_le_bytes(), 3), Err(Errno::Inval));
        assert_eq!(m.update(&1u32.to_le_bytes(), &[1, 2], BPF_ANY), Err(Errno::Inval));
        assert_eq!(m.delete(&1u32.to_le_bytes()), Err(Errno::Inval));
        assert_eq!(m.value(2), Some(&8u64.to_le_bytes()[..]));
        assert_eq!(&m.values()[16..24], &8u64.to_le_bytes());
        assert_eq!(m.entries().count(), 4);
        assert_eq!(m.entries().nth(2), Some((MapKey::Index(2), &8u64.to_le_bytes()[..])));
        assert_eq!(Errno::Exist.helper_return(), (-17i64) as u64);
    }

    #[test]
    fn hash_semantics() {
        let d = def(1, 4, 8, 3);
        let mut storage = AlignedBytes::<256>::new();
        let mut m = Map::new_in(d, storage.as_mut_slice()).unwrap();
        let k = |n: u32| n.to_le_bytes();
        let v = |n: u64| n.to_le_bytes();
        assert_eq!(m.lookup(&k(1)), None);
        assert_eq!(m.update(&k(1), &v(10), BPF_EXIST), Err(Errno::NoEnt));
        assert_eq!(m.update(&k(1), &v(10), BPF_NOEXIST), Ok(()));
        assert_eq!(m.update(&k(1), &v(11), BPF_NOEXIST), Err(Errno::Exist));
        assert_eq!(m.update(&k(2), &v(20), BPF_ANY), Ok(()));
        assert_eq!(m.update(&k(3), &v(30), BPF_ANY), Ok(()));
        assert_eq!(m.update(&k(4), &v(40), BPF_ANY), Err(Errno::TooBig));
        // Updating a present key works when full, in place.
        let slot1 = m.lookup(&k(1)).unwrap();
        assert_eq!(m.update(&k(1), &v(12), BPF_EXIST), Ok(()));
        assert_eq!(m.lookup(&k(1)), Some(slot1));
        assert_eq!(m.value(slot1), Some(&v(12)[..]));
        assert_eq!(m.len(), 3);
        assert_eq!(m.delete(&k(2)), Ok(()));
        assert_eq!(m.delete(&k(2)), Err(Errno::NoEnt));
        assert_eq!(m.delete(&[1]), Err(Errno::Inval));
        assert_eq!(m.lookup(&k(2)), None);
        assert_eq!(m.lookup(&k(1)), Some(slot1));
        assert_eq!(m.update(&k(4), &v(40), BPF_ANY), Ok(()));
        assert_eq!(m.len(), 3);
        let mut seen: [(u32, u64); 3] = [(0, 0); 3];
        for (i, (key, value)) in m.entries().enumerate() {
            let MapKey::Bytes(key) = key else { panic!("hash keys are bytes") };
            seen[i] = (u32::from_le_bytes(key.try_into().unwrap()), u64::from_le_bytes(value.try_into().unwrap()));
        }
        seen.sort();
        assert_eq!(seen, [(1, 12), (3, 30), (4, 40)]);
    }

    #[test]
    fn storage_is_checked() {
        let d = def(1, 4, 8, 3);
        assert_eq!(d.storage_len(), 3 * 8 + 3 * 4 + 3 * 4 + 8 * 4);
        let mut storage = AlignedBytes::<128>::new();
        assert_eq!(
            Map::new_in(d, &mut storage.as_mut_slice()[..8]).err(),
            Some(MapError::StorageTooSmall { needed: 80, available: 8 })
        );
        assert_eq!(Map::new_in(d, &mut storage.as_mut_slice()[1..]).err(), Some(MapError::StorageMisaligned));
    }

    /// Against a simple model: random operations over a small key space, with deletes
    /// exercising backward shifts across wrapped probe runs.
    #[cfg(feature = "std")]
    #[test]
    fn hash_matches_a_model() {
        extern crate std;
        use std::collections::BTreeMap;
        let d = def(1, 2, 4, 24);
        let mut m = Map::new(d).unwrap();
        let mut model: BTreeMap<u16, (u32, u32)> = BTreeMap::new(); // key -> (value, slot)
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let key = (seed % 40) as u16;
            let kb = key.to_le_bytes();
            match (seed >> 32) % 4 {
                0 => assert_eq!(m.lookup(&kb), model.get(&key).map(|e| e.1), "step {step}"),
                1 => {
                    let fits = model.contains_key(&key) || model.len() < 24;
                    let expected = if fits { Ok(()) } else { Err(Errno::TooBig) };
                    let r = m.update(&kb, &step.to_le_bytes(), BPF_ANY);
                    assert_eq!(r, expected, "step {step}");
                    if r.is_ok() {
                        let slot = m.lookup(&kb).unwrap();
                        if let Some(e) = model.get(&key) {
                            assert_eq!(e.1, slot, "slot moved at step {step}");
                        }
                        model.insert(key, (step, slot));
                    }
                }
                2 => {
                    let expected = if model.remove(&key).is_some() { Ok(()) } else { Err(Errno::NoEnt) };
                    assert_eq!(m.delete(&kb), expected, "step {step}");
                }
                _ => {
                    for (k, (v, slot)) in &model {
                        assert_eq!(m.lookup(&k.to_le_bytes()), Some(*slot));
                        assert_eq!(m.value(*slot), Some(&v.to_le_bytes()[..]));
                    }
                }
            }
            assert_eq!(m.len() as usize, model.len());
        }
    }
}
