//! Arbitrary bytes through the ELF loader: parse, create the maps, link and validate every
//! program, and check the allocation-free path agrees; no input may panic.
//! `cargo +nightly fuzz run elf` (seed it with `examples/*.o`: `cargo +nightly fuzz run elf
//! ../examples/mcpu`, or copy them into `fuzz/corpus/elf`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_host_tests::elf_check::exercise(data);
});
