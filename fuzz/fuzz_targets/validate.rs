//! The validator property (`tessera_host_tests::validator_fuzz`): the fuzzer's bytes are the
//! bytecode itself (first byte even) or drive the generator of program-shaped inputs (odd).
//! Validation never panics, agrees with the slow reference on control flow, and accepted
//! programs run alike in the interpreter and the JIT. The same check runs for a bounded
//! number of cases in `cargo test` (`host-tests/tests/fuzz_properties.rs`).
//! `cargo +nightly fuzz run validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::ebpf::Insn;
use tessera_host_tests::program_gen::Bytes;
use tessera_host_tests::validator_fuzz;

fuzz_target!(|data: &[u8]| {
    let insns = match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            rest.chunks_exact(Insn::SIZE).map(|c| Insn::decode(c.try_into().expect("8 bytes"))).collect()
        }
        _ => validator_fuzz::input(&mut Bytes(data)),
    };
    if let Err(e) = validator_fuzz::check(&insns) {
        panic!("{e}");
    }
});
