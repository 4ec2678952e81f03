//! The bpf_conformance suite through the JIT on the ISA this test runs on (x86-64 natively;
//! AArch64 and RISC-V under qemu-user in the xtask's second tier), checked against the exact
//! expected outcome and against the interpreter (the whole `Result`, errors included).

use tessera::ebpf::{Error, Helper, Helpers, Memory, Mode, Vm};
use tessera_host_tests::conformance::{self, TestCase, describe, expected_outcome, load_dir, program_bytes};

/// The suite's helper 5 ("unwind" in its runners): returns its first argument.
pub const CONFORMANCE_HELPERS: [Helper; 1] = [Helper { id: 5, func: |_, a, _, _, _, _| a }];

/// The outcome of loading and running the case in `mode`; `Err` if it does not assemble.
fn run(case: &TestCase, mode: Mode) -> Result<Result<u64, Error>, String> {
    let bytes = program_bytes(case)?;
    let mut vm = match Vm::new(&bytes, Helpers::new(&CONFORMANCE_HELPERS)) {
        Ok(vm) => vm,
        Err(e) => return Ok(Err(e.into())),
    };
    let mut stack = vec![0u8; tessera::ebpf::STACK_SIZE];
    let mut context = case.mem.clone();
    let mut memory = Memory::new(&mut stack, &mut context, &mut []);
    Ok(vm.run(mode, &mut memory))
}

#[test]
fn conformance_suite_through_the_jit() {
    let cases = load_dir(conformance::tests_dir());
    assert_eq!(cases.len(), 313, "expected the full suite in {}", conformance::tests_dir().display());
    let (mut passed, mut failures) = (0, Vec::new());
    for case in &cases {
        let outcome = (|| {
            let want = expected_outcome(case)?;
            let jit = run(case, Mode::Jit)?;
            if jit != want {
                return Err(format!("expected {}, got {}", describe(&want), describe(&jit)));
            }
            // Differential check against the reference interpreter: same result or same error.
            let interp = run(case, Mode::Interpreter)?;
            if interp != jit {
                return Err(format!("jit {} != interpreter {}", describe(&jit), describe(&interp)));
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    println!("\njit conformance ({}): {passed} passed, {} failed", std::env::consts::ARCH, failures.len());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
