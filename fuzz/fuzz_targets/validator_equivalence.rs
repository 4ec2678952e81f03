//! The validator equivalence property (`tessera_host_tests::validator_equivalence`): the
//! validator gives exactly the verdict of the frozen pre-rewrite validator
//! (`tessera_host_tests::validator_oracle`). The first byte picks the input: the rest as
//! bytecode, or a generated program or maze drawn from the rest; then the remaining bytes
//! drive a few mutations. The same check runs for a bounded number of cases in `cargo test`
//! (`host-tests/tests/validator_equivalence.rs`).
//! `cargo +nightly fuzz run validator_equivalence`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_host_tests::program_gen::{Bytes, Source};
use tessera_host_tests::validator_equivalence::{self, MAP_VALUE_SIZES};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut source = Bytes(rest);
    let mut bytes = match mode % 4 {
        0 => rest.to_vec(),
        1 | 2 => validator_equivalence::generated(&mut source),
        _ => validator_equivalence::maze(&mut source),
    };
    if mode % 4 != 0 {
        for _ in 0..source.below(5) {
            validator_equivalence::mutate(&mut source, &mut bytes);
        }
    }
    if let Err(e) = validator_equivalence::check(&bytes, &MAP_VALUE_SIZES) {
        panic!("{e}");
    }
});
