//! Fuel: the execution budget that makes every run terminate, charged identically by the
//! interpreter and generated code.
//!
//! Charges are computed from the program alone (at lowering time for the JIT):
//! - a back edge, a jump from `pc` to `target <= pc` (taken or not), charges
//!   `pc - target + 1`, the instructions of the loop it closes;
//! - a local call to `target` charges `len - target`, the most instructions the callee can
//!   execute before its first back edge (control only moves forward between back edges).
//!
//! A run stops with `OutOfFuel` at the first charge larger than the fuel left. Between two
//! charges control moves forward, so the instructions executed are bounded by the fuel
//! spent plus one straight run of the program: **a run executes at most `fuel + len`
//! instructions**. (Proof sketch: take the pc as a potential; forward execution raises it
//! by one per instruction, a back edge lowers it by exactly what it charges, minus one,
//! and each call starts a new activation whose forward reach the call has paid for.)

/// The fuel a run gets unless the embedder sets another budget: about 10^8 instructions,
/// a fraction of a second of generated code on a host.
pub const DEFAULT_FUEL: u64 = 100_000_000;

/// What a jump at `pc` to `target` charges, if it is a back edge.
#[inline(always)]
pub fn back_edge_charge(pc: usize, target: usize) -> Option<u64> {
    (target <= pc).then(|| (pc - target + 1) as u64)
}

/// What a local call to `target` charges in a program of `len` slots.
#[inline(always)]
pub fn call_charge(len: usize, target: usize) -> u64 {
    len.saturating_sub(target) as u64
}
