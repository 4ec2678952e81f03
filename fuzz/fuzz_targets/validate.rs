//! Arbitrary bytes through the validator, and (when valid) both run modes: no panic, and
//! the JIT agrees with the interpreter. `cargo +nightly fuzz run validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::ebpf::{Helpers, Memory, Mode, Vm};

fuzz_target!(|data: &[u8]| {
    let Ok(mut vm) = Vm::new(data, Helpers::empty()) else { return };
    vm.set_fuel(1000);
    // One set of buffers for both runs, so addresses (and faults naming them) compare equal.
    let (mut stack, mut context) = (vec![0u8; 512 * 9], vec![0u8; 64]);
    let mut results = Vec::new();
    for mode in [Mode::Interpreter, Mode::Jit] {
        stack.iter_mut().for_each(|b| *b = 0);
        context.iter_mut().for_each(|b| *b = 0);
        let result = vm.run(mode, &mut Memory::new(&mut stack, &mut context, &mut []));
        results.push((result, stack.clone(), context.clone()));
    }
    assert!(results[0] == results[1], "JIT and interpreter disagree: {:?} vs {:?}", results[0].0, results[1].0);
});
