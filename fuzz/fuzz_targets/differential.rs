//! Long-running form of `host-tests/tests/differential.rs`: the fuzzer's bytes drive the
//! same program generator, and the JIT and the fast interpreter must agree with the
//! reference interpreter on the result or error and on every byte of memory
//! (`tessera_host_tests::differential::check`).
//! `cargo +nightly fuzz run differential`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_host_tests::differential;
use tessera_host_tests::program_gen::{self, Bytes};

fuzz_target!(|data: &[u8]| {
    let fuel = 1 + data.first().copied().unwrap_or(0) as u64 * 4;
    let insns = program_gen::program(&mut Bytes(data), 120);
    if let Err(e) = differential::check(&insns, fuel) {
        panic!("{e}");
    }
});
