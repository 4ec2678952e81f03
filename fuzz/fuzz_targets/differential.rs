//! Long-running form of `host-tests/tests/differential.rs`: the fuzzer's bytes drive the
//! same program generator, and the JIT and the fast interpreter must agree with the
//! reference interpreter on the result or error and on the final memory.
//! `cargo +nightly fuzz run differential`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::ebpf::{Helper, Helpers, Memory, Mode, Vm};
use tessera_host_tests::program_gen::{self, Bytes, HELPER_ID};

const HELPERS: [Helper; 1] = [Helper { id: HELPER_ID, func: program_gen::helper }];

fuzz_target!(|data: &[u8]| {
    let mut source = Bytes(data);
    let insns = program_gen::program(&mut source, 120);
    let bytes = program_gen::to_bytes(&insns);
    let fuel = 1 + data.first().copied().unwrap_or(0) as u64 * 4;
    let mut stack = vec![0u8; 512 * 9];
    let mut context = vec![0u8; 64];
    let mut outcomes = Vec::new();
    for mode in [Mode::Interpreter, Mode::Jit, Mode::FastInterpreter] {
        stack.iter_mut().for_each(|b| *b = 0);
        context.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let mut vm = Vm::new(&bytes, Helpers::new(&HELPERS)).expect("generated programs are valid");
        vm.set_fuel(fuel);
        let result = vm.run(mode, &mut Memory::new(&mut stack, &mut context, &mut []));
        outcomes.push((result, stack.clone(), context.clone()));
    }
    assert!(outcomes[0] == outcomes[1], "JIT and interpreter disagree");
    assert!(outcomes[0] == outcomes[2], "fast interpreter and interpreter disagree");
});
