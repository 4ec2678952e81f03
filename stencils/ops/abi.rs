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
    /// A helper call failed (unknown id in `callx`, or the runtime refused it).
    pub const HELPER: u64 = 5;
}

/// How many embedder-granted regions generated code checks.
pub const MAX_GRANTED: usize = 8;

/// One embedder-granted region as generated code sees it.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct GrantedRegion {
    pub start: u64,
    pub len: u64,
    /// Non-zero when stores and atomics may write it.
    pub writable: u64,
}

/// The runtime-owned block generated code reads and writes. `#[repr(C)]`: stencils address
/// fields by offset, so the layout is part of the table digest.
#[repr(C)]
pub struct JitContext {
    /// The whole eBPF stack (all frames).
    pub stack_start: u64,
    pub stack_len: u64,
    /// Context memory passed to the program (r1 points at it, r2 holds its length).
    pub mem_start: u64,
    pub mem_len: u64,
    /// `r10` of the running frame.
    pub frame_pointer: u64,
    /// `!fuel_left` (that is, `u64::MAX - fuel_left`): every back edge (taken or not) and
    /// local call charges what `tessera::ebpf::fuel` says, exactly as the interpreter does;
    /// kept complemented so that a charge is one add whose carry means "out of fuel".
    pub fuel_complement: u64,
    /// Current and maximum local-call depth.
    pub depth: u64,
    pub max_depth: u64,
    /// Trap code (see [`trap`]), the instruction index it names, and the faulting address.
    pub trap: u64,
    pub trap_insn: u64,
    pub trap_addr: u64,
    /// eBPF registers that an ISA does not pin in machine registers live here, by index.
    pub spill: [u64; 11],
    /// Embedder-granted regions, checked inline after stack and context memory (no call,
    /// so the fast path of a memory stencil needs no stack frame).
    pub granted: [GrantedRegion; MAX_GRANTED],
    pub granted_count: u64,
    /// Calls helper `id` with r1..r5; sets `trap` to [`trap::HELPER`] when it cannot.
    pub call_helper:
        unsafe extern "C" fn(ctx: *mut JitContext, id: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> u64,
    /// Opaque pointer for the runtime's own state (helper table, granted regions).
    pub host: *mut u8,
}
