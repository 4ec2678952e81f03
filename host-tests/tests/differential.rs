//! Differential property test: random valid programs give the same result or the same
//! error, and leave the same memory, under the JIT, the fast interpreter and the reference
//! interpreter. Runs on every ISA the test binary is built for (natively, or under
//! qemu-user). A small budget here; the cargo-fuzz target `fuzz/fuzz_targets/differential.rs`
//! runs the same check for long.

use tessera::ebpf::{Helper, Helpers, Memory, Mode, Vm};
use tessera_host_tests::program_gen::{self as program_gen, HELPER_ID, Rng};

const HELPERS: [Helper; 1] = [Helper { id: HELPER_ID, func: program_gen::helper }];

/// Buffers shared by both runs, so addresses (r10, r1) are identical in both and any value
/// derived from them compares equal.
struct Buffers {
    stack: Vec<u8>,
    context: Vec<u8>,
}

impl Buffers {
    fn reset(&mut self) {
        self.stack.iter_mut().for_each(|b| *b = 0);
        self.context.iter_mut().enumerate().for_each(|(i, b)| *b = (i as u8).wrapping_mul(37));
    }

    /// Runs `bytes` in `mode` from the initial memory; returns the result and final memory.
    fn run(&mut self, bytes: &[u8], mode: Mode, fuel: u64) -> (Result<u64, tessera::ebpf::Error>, Vec<u8>, Vec<u8>) {
        let mut vm = Vm::new(bytes, Helpers::new(&HELPERS)).expect("generated programs are valid");
        vm.set_fuel(fuel);
        self.reset();
        let result = {
            let mut memory = Memory::new(&mut self.stack, &mut self.context, &mut []);
            vm.run(mode, &mut memory)
        };
        (result, self.stack.clone(), self.context.clone())
    }
}

#[test]
fn jit_and_fast_interpreter_match_the_interpreter_on_random_programs() {
    let budget: u64 = std::env::var("TESSERA_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let (mut ok, mut errors) = (0, 0);
    // Slots that run 1, 2 and 3 instructions: the generator must reach the superinstructions.
    let mut fused = [0usize; 4];
    let mut buffers = Buffers { stack: vec![0u8; 512 * 9], context: vec![0u8; 64] };
    for seed in 1..=budget {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let insns = program_gen::program(&mut rng, 60);
        let bytes = program_gen::to_bytes(&insns);
        let fuel = 50 + seed % 200;
        let vm = Vm::new(&bytes, Helpers::new(&HELPERS)).expect("generated programs are valid");
        for slot in vm.prepare_fast().slots() {
            fused[slot.instructions().min(3)] += 1;
        }
        let (interp, interp_stack, interp_ctx) = buffers.run(&bytes, Mode::Interpreter, fuel);
        let listing = tessera::ebpf::disasm::Disassembly(&insns).to_string();
        for mode in [Mode::Jit, Mode::FastInterpreter] {
            let (got, stack, ctx) = buffers.run(&bytes, mode, fuel);
            assert_eq!(got, interp, "seed {seed}: {mode:?} and the interpreter disagree on\n{listing}");
            assert_eq!(ctx, interp_ctx, "seed {seed}: {mode:?}: context memory differs\n{listing}");
            assert_eq!(stack, interp_stack, "seed {seed}: {mode:?}: stack differs\n{listing}");
        }
        if interp.is_ok() { ok += 1 } else { errors += 1 }
    }
    println!(
        "\ndifferential ({}): {budget} programs, {ok} returned, {errors} trapped; JIT == fast interpreter == interpreter \
         ({} superinstructions of 2 and {} of 3 instructions)",
        std::env::consts::ARCH,
        fused[2],
        fused[3]
    );
    assert!(ok > 0 && errors > 0, "the generator should produce both outcomes");
    assert!(fused[2] > 0 && fused[3] > 0, "the generator should reach every superinstruction length: {fused:?}");
}
