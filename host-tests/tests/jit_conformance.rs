//! The bpf_conformance suite through the JIT on the ISA this test runs on (x86-64 natively;
//! AArch64 and RISC-V under qemu-user in the xtask's second tier), checked against the
//! expected results and against the interpreter.

use tessera::ebpf::{Helper, Helpers, Memory, Mode, Vm};
use tessera_host_tests::conformance::{TestCase, load_dir, program_bytes, tests_dir};

/// The suite's helper 5 ("unwind" in its runners): returns its first argument.
pub const CONFORMANCE_HELPERS: [Helper; 1] = [Helper { id: 5, func: |a, _, _, _, _| a }];

fn run(case: &TestCase, mode: Mode) -> Result<u64, String> {
    let bytes = program_bytes(case)?;
    let mut vm = Vm::new(&bytes, Helpers::new(&CONFORMANCE_HELPERS)).map_err(|e| e.to_string())?;
    let mut stack = vec![0u8; 512 * 9];
    let mut context = case.mem.clone();
    let mut memory = Memory::new(&mut stack, &mut context, &mut []);
    vm.run(mode, &mut memory).map_err(|e| e.to_string())
}

fn arch() -> &'static str {
    std::env::consts::ARCH
}

#[test]
fn conformance_suite_through_the_jit() {
    let cases = load_dir(tests_dir());
    assert_eq!(cases.len(), 313, "expected the full suite in {}", tests_dir().display());
    let (mut passed, mut failures) = (0, Vec::new());
    for case in &cases {
        let jit = run(case, Mode::Jit);
        let outcome = match (&case.result, &case.error, &jit) {
            (_, Some(_), Err(_)) => Ok(()),
            (_, Some(_), Ok(v)) => Err(format!("expected an error, got {v:#x}")),
            (Some(want), None, Ok(got)) if want == got => Ok(()),
            (Some(want), None, Ok(got)) => Err(format!("expected {want:#x}, got {got:#x}")),
            (_, None, Err(e)) => Err(format!("error: {e}")),
            (None, None, Ok(got)) => Err(format!("no expectation in file, got {got:#x}")),
        };
        // Differential check against the reference interpreter, whatever the file says.
        let interp = run(case, Mode::Interpreter);
        let outcome = outcome.and_then(|()| {
            if interp.as_ref().ok() == jit.as_ref().ok() {
                Ok(())
            } else {
                Err(format!("jit {jit:?} != interpreter {interp:?}"))
            }
        });
        match outcome {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    println!("\njit conformance ({}): {passed} passed, {} failed", arch(), failures.len());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
