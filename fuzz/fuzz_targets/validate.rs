//! Arbitrary bytes through the validator, and (when valid) both run modes: no panic, and
//! the JIT agrees with the interpreter. `cargo +nightly fuzz run validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::ebpf::{Helpers, Memory, Mode, Vm};

fuzz_target!(|data: &[u8]| {
    let Ok(mut vm) = Vm::new(data, Helpers::empty()) else { return };
    vm.set_fuel(1000);
    let mut results = Vec::new();
    for mode in [Mode::Interpreter, Mode::Jit] {
        let (mut stack, mut context) = (vec![0u8; 512 * 9], vec![0u8; 64]);
        results.push(vm.run(mode, &mut Memory::new(&mut stack, &mut context, &mut [])));
    }
    assert_eq!(results[0], results[1]);
});
