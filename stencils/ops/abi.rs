//! The contract between generated code and the runtime: the context block every stencil
//! receives in its first argument, the trap codes it reports, and the frame layout.
//!
//! Shared verbatim by the stencil sources (this directory, built with the pinned nightly)
//! and the runtime (`tessera`, built with stable), so both agree on every offset.

/// Bytes of eBPF stack per call frame (`r10` points at the top of the running frame).
pub const FRAME_SIZE: u64 = 512;

/// Why generated code stopped early. Stored in [`JitContext::trap`]; 0 means none.
pub mod trap {
    pub const NONE: u64 = 0;
    /// A load, store or atomic touched memory outside every allowed region.
    pub const MEMORY: u64 = 1;
    /// The fuel budget ran out.
    pub const FUEL: u64 = 2;
    /// A local call went deeper than the configured limit.
    pub const CALL_DEPTH: u64 = 3;
    /// An atomic operation on an address that is not naturally aligned.
    pub const MISALIGNED: u64 = 4;
    /// `callx` named a helper id that is not registered.
    pub const HELPER: u64 = 5;
    /// A helper panicked (caught at the boundary, with `std`).
    pub const HELPER_PANIC: u64 = 6;
}

/// The address model: programs see virtual addresses `region << 32 | offset`, never host
/// addresses. Region 0 is null (no access is ever allowed there), the others are numbered
/// in this order for every run: the stack, the context memory, the program's maps (value
/// areas, in the program's map order), then the embedder-granted regions.
pub mod region {
    /// The stack: `r10` starts at `STACK << 32 | stack length`.
    pub const STACK: u64 = 1;
    /// The context memory: `r1` holds `CONTEXT << 32` (or 0 when the context is empty).
    pub const CONTEXT: u64 = 2;
    /// The first map's value area; map `m` is region `FIRST_MAP + m`.
    pub const FIRST_MAP: u64 = 3;
    /// Entries in a run's region table (region 0 included).
    pub const COUNT: usize = 16;

    /// The virtual address of byte 0 of region `index`.
    pub const fn address(index: u64) -> u64 {
        index << 32
    }
}

/// A map handle as `lddw` of a map (src 1) loads it and map helpers take it: map `m` is
/// `MAP_HANDLE | m`. No region has this index, so a handle cannot be dereferenced.
pub const MAP_HANDLE: u64 = 0xffff_0000_0000_0000;

/// One region as checks see it: 128 bytes, so generated code finds entry `i` at
/// [`REGIONS`]` + 128 * i` of the context.
///
/// The full check (`semantics::locate`, run by the interpreter and by the JIT's slow path):
/// an access of `size` bytes at offset `off` is allowed when `off < len` and `(off & mask) +
/// size <= limit`, with `limit` the read or write limit. For a plain region `mask` is all
/// ones and both limits are its length (a read-only region has write limit 0); for a map's
/// value area `mask` is the value stride minus one and the limits are the value size (0 for
/// writes to a read-only map), so an access stays inside one value.
///
/// The fast check of generated code's hot path, for an access of size class `c` (1, 2, 4,
/// 8 bytes) at the whole 64-bit virtual address `addr` in region `i`: `addr - start <
/// read_bound[c]` (or `write_bound[c]`; wrapping, so one unsigned compare: an address below
/// `start` wraps to a huge offset), where `read_bound[c] = limit + 1 - size` (saturating at
/// 0) for a plain region and 0 for a value area (so every access to a value area takes the
/// slow path). For a plain region that is the full check; so a fast pass implies a full
/// pass, and the host address is `addr + bias`. Region `i` is the one the lowering expects
/// (a guess: any other address fails the check), or for any address `(addr >> 32) & 15`:
/// when bits 36..63 of `addr` are not all zero, `addr - start >= 2^32` exceeds every
/// bound; otherwise it is `addr`'s region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(128))]
pub struct RegionEntry {
    /// Fast-check bounds on the offset per size class, for loads and for stores.
    pub read_bound: [u64; 4],
    pub write_bound: [u64; 4],
    /// The virtual address of byte 0 (`index << 32`).
    pub start: u64,
    /// Host address minus virtual address (wrapping): `host = addr + bias`.
    pub bias: u64,
    /// Host address of byte 0 (generated code only; the interpreter uses slices).
    pub host: u64,
    pub len: u32,
    pub mask: u32,
    pub read_limit: u32,
    pub write_limit: u32,
}

impl RegionEntry {
    /// No access at all (the same as `RegionEntry::default()`, usable in constants).
    pub const NONE: RegionEntry = RegionEntry {
        read_bound: [0; 4],
        write_bound: [0; 4],
        start: 0,
        bias: 0,
        host: 0,
        len: 0,
        mask: 0,
        read_limit: 0,
        write_limit: 0,
    };

    /// Plain region `index` of `len` bytes at host address `host`.
    pub const fn plain(index: u64, host: u64, len: u32, writable: bool) -> RegionEntry {
        let write_limit = if writable { len } else { 0 };
        RegionEntry::with_check(index, host, len, u32::MAX, len, write_limit)
    }

    /// Region `index` with the given full check; the fast checks are derived from it.
    pub const fn with_check(
        index: u64,
        host: u64,
        len: u32,
        mask: u32,
        read_limit: u32,
        write_limit: u32,
    ) -> RegionEntry {
        let plain = mask == u32::MAX;
        let start = region::address(index);
        RegionEntry {
            read_bound: fast_ends(plain, read_limit),
            write_bound: fast_ends(plain, write_limit),
            start,
            bias: host.wrapping_sub(start),
            host,
            len,
            mask,
            read_limit,
            write_limit,
        }
    }
}

/// The fast check's offset bounds for access sizes 1, 2, 4, 8 (see [`RegionEntry`]).
const fn fast_ends(plain: bool, limit: u32) -> [u64; 4] {
    if !plain {
        return [0; 4];
    }
    [fast_end(limit, 1), fast_end(limit, 2), fast_end(limit, 4), fast_end(limit, 8)]
}

/// The exclusive bound on the offset of a `size`-byte access inside `limit` bytes.
const fn fast_end(limit: u32, size: u32) -> u64 {
    if limit >= size { (limit - size + 1) as u64 } else { 0 }
}

/// The index of an access size in [`RegionEntry::read_bound`] / `write_bound`.
pub const fn size_class(size: u64) -> usize {
    match size {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}

/// The runtime-owned block generated code reads and writes. `#[repr(C)]`: stencils address
/// fields by offset, so the layout is part of the table digest. The scalar fields come
/// first, so that on RISC-V (12-bit signed load offsets) every one of them and the entries
/// of the stack and the context are one load away from the context pointer.
#[repr(C, align(128))]
pub struct JitContext {
    /// Host address of `r10` of the running frame: frame-relative accesses the lowering
    /// proved inside the frame use it with no check. `r10` as the program sees it is
    /// `frame_host - regions[STACK].bias`, so that a local call moves one value. On AArch64
    /// it (like `fuel_complement`) is the initial value only: generated code keeps it in a
    /// register.
    pub frame_host: u64,
    /// `!fuel_left` (that is, `u64::MAX - fuel_left`): every back edge (taken or not) and
    /// local call charges what `tessera::ebpf::fuel` says, exactly as the interpreter does;
    /// kept complemented so that a charge is one add whose carry means "out of fuel". The
    /// add is stored even when it carries: the run ends there, with the fuel trap.
    pub fuel_complement: u64,
    /// A local call traps when the caller's `frame_host` is at or below this: the depth
    /// limit, as `frame_host` drops by [`FRAME_SIZE`] per level.
    pub frame_floor: u64,
    /// Trap code (see [`trap`]), the instruction index it names, and the faulting address.
    pub trap: u64,
    pub trap_insn: u64,
    pub trap_addr: u64,
    /// eBPF registers that an ISA does not pin in machine registers live here, by index.
    pub spill: [u64; 11],
    /// The helper the next call calls: its position in the program's helper table for
    /// [`JitContext::call_helper`], its id for [`JitContext::call_helper_by_id`].
    pub helper: u64,
    /// Calls the helper at position [`JitContext::helper`] with r1..r5 (`call`, whose helper
    /// the lowering resolved), passed in the registers the helper takes them in (see the
    /// stencils' calling convention). A trap comes back in the result, so that nothing
    /// lives across the helper call in the runtime; `trap_addr` is set here.
    pub call_helper:
        unsafe extern "C" fn(ctx: *mut JitContext, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> HelperReturn,
    /// The same for the helper with id [`JitContext::helper`] (`callx`).
    pub call_helper_by_id:
        unsafe extern "C" fn(ctx: *mut JitContext, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> HelperReturn,
    /// Opaque address of the runtime's own state (helpers, memory, maps); an integer, so
    /// that a context can be kept between runs in a handle that is `Send` and `Sync`.
    pub host: usize,
    /// The run's region table (see [`region`]), at [`REGIONS`].
    pub regions: [RegionEntry; region::COUNT],
}

/// What [`JitContext::call_helper`] returns: r0, or a trap code (see [`trap`]; 0 for none).
/// Two words, returned in two registers by the C ABI of every supported ISA.
#[repr(C)]
pub struct HelperReturn {
    pub r0: u64,
    pub trap: u64,
}

/// Where [`JitContext::regions`] starts.
pub const REGIONS: usize = core::mem::offset_of!(JitContext, regions);
