//! Differential property test: random valid programs give the same result or the same
//! error, and leave the same memory (stack, context, granted regions, map values), under
//! the JIT, the fast interpreter and the reference interpreter. Runs on every ISA the test binary is built for (natively,
//! or under qemu-user). A small budget here (`TESSERA_DIFF_CASES` for more); the
//! cargo-fuzz target `fuzz/fuzz_targets/differential.rs` runs the same check for long.

use std::collections::BTreeMap;

use tessera::ebpf::{Error, Helpers, RunError, Vm};
use tessera_host_tests::differential;
use tessera_host_tests::program_gen::{self, Rng};

#[test]
fn jit_and_fast_interpreter_match_the_interpreter_on_random_programs() {
    let budget: u64 = std::env::var("TESSERA_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut census: BTreeMap<&str, u64> = BTreeMap::new();
    // Slots that run 1, 2 and 3 instructions: the generator must reach the superinstructions.
    let mut fused = [0usize; 4];
    let maps = differential::map_defs();
    for seed in 1..=budget {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let insns = program_gen::program(&mut rng, 60);
        let bytes = program_gen::to_bytes(&insns);
        let vm =
            Vm::with_maps(&bytes, &maps, Helpers::new(&differential::HELPERS)).expect("generated programs are valid");
        for slot in vm.prepare_fast().slots() {
            fused[slot.instructions().min(3)] += 1;
        }
        let outcome = match differential::check(&insns, 50 + seed % 200) {
            Ok(Ok(_)) => "returned",
            Ok(Err(Error::Run(e))) => match e {
                RunError::MemoryFault { .. } => "MemoryFault",
                RunError::OutOfFuel { .. } => "OutOfFuel",
                RunError::CallDepthExceeded { .. } => "CallDepthExceeded",
                RunError::HelperNotFound { .. } => "HelperNotFound",
                RunError::MisalignedAtomic { .. } => "MisalignedAtomic",
                _ => "other run error",
            },
            Ok(Err(_)) => "other error",
            Err(e) => panic!("seed {seed}: {e}"),
        };
        *census.entry(outcome).or_default() += 1;
    }
    println!(
        "\ndifferential ({}): {budget} programs, {census:?}; JIT == fast interpreter == interpreter \
         ({} superinstructions of 2 and {} of 3 instructions)",
        std::env::consts::ARCH,
        fused[2],
        fused[3]
    );
    assert!(fused[2] > 0 && fused[3] > 0, "the generator should reach every superinstruction length: {fused:?}");
    // The generator must keep reaching every outcome, or the comparison covers less than it
    // claims.
    for outcome in ["returned", "MemoryFault", "OutOfFuel", "CallDepthExceeded", "HelperNotFound", "MisalignedAtomic"] {
        assert!(census.contains_key(outcome), "no program ended in {outcome}: {census:?}");
    }
}

#[test]
fn the_comparison_sees_a_difference() {
    // The same program run against different memory must not compare equal: the check is
    // able to fail.
    let insns = program_gen::program(&mut Rng(3), 40);
    let bytes = program_gen::to_bytes(&insns);
    let maps = differential::map_defs();
    let a = differential::run(&bytes, &maps, tessera::ebpf::Mode::Interpreter, 1000);
    let mut b = differential::run(&bytes, &maps, tessera::ebpf::Mode::Interpreter, 1000);
    assert_eq!(a, b, "a run is deterministic");
    b.writable[0] ^= 1;
    assert_ne!(a, b);
}
