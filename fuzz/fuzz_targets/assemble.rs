//! The assembler property (`tessera_host_tests::asm_fuzz`): the fuzzer's bytes are the text
//! itself (first byte even) or drive the generator of labelled programs (odd). Assembling
//! never panics, errors name a line of the text, labelled programs assemble to exactly the
//! program they print, and whatever assembles round-trips through the disassembler. The
//! same check runs for a bounded number of cases in `cargo test`
//! (`host-tests/tests/fuzz_properties.rs`). `cargo +nightly fuzz run assemble`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_host_tests::asm_fuzz;
use tessera_host_tests::program_gen::Bytes;

fuzz_target!(|data: &[u8]| {
    let case = match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => asm_fuzz::raw_text(rest),
        _ => asm_fuzz::input(&mut Bytes(data)),
    };
    if let Err(e) = asm_fuzz::check(&case) {
        panic!("{e}");
    }
});
