//! The one helper every engine registers, with the same semantics everywhere: the C
//! programs call it as `bench_mix`, natively through the exported symbol below.

/// The helper's id in every engine: solana-sbpf's hash of the name `bench_mix` (sbpf looks
/// syscalls up by that hash), so one bytecode works unchanged in every engine.
/// `programs/bench.h` spells the same number.
pub const BENCH_MIX_ID: u32 = 0x90a1_e635;

/// Its name, as registered with solana-sbpf.
pub const BENCH_MIX_NAME: &str = "bench_mix";

/// Mixes five words (a cheap, non-linear function the compiler cannot see through).
pub fn mix(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    (a ^ b).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ c.wrapping_add(d) ^ e
}

/// The native programs' `bench_mix`.
#[unsafe(no_mangle)]
pub extern "C" fn bench_mix(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    mix(a, b, c, d, e)
}
