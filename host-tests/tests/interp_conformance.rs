//! The bpf_conformance suite through the validator and the reference interpreter.
//!
//! Every `tests/*.data` program is validated and run with its `-- mem` bytes as context
//! memory (r1 = their address, r2 = their length), a stack of `FRAME_SIZE * 9` bytes and
//! helper 5 (the suite's "unwind" helper, `|a, ..| a`). The outcome must equal
//! [`conformance::expected_outcome`] exactly: `Ok(-- result)`, or the typed error the
//! case's entry in [`conformance::EXPECTED_ERRORS`] names.

use tessera::ebpf::interp::{self, Config};
use tessera::ebpf::{Error, Helper, Helpers, Memory, Program};
use tessera_host_tests::conformance::{self, TestCase};
use tessera_stencils::abi::FRAME_SIZE;

fn unwind(_: &mut Memory, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a
}

const HELPERS: [Helper; 1] = [Helper { id: 5, func: unwind }];

/// The outcome of validating and interpreting the case; `Err` if it does not assemble.
fn run_case(case: &TestCase) -> Result<Result<u64, Error>, String> {
    let bytes = conformance::program_bytes(case)?;
    let helpers = Helpers::new(&HELPERS);
    let program = match Program::new(&bytes, |id| helpers.contains(id)) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.into())),
    };
    let mut stack = vec![0u8; FRAME_SIZE as usize * 9];
    let mut context = case.mem.clone();
    let mut memory = Memory::new(&mut stack, &mut context, &mut []);
    Ok(interp::run(&program, &helpers, &mut memory, &Config::default()).map_err(Into::into))
}

#[test]
fn interp_conformance() {
    let cases = conformance::load_dir(conformance::tests_dir());
    assert!(cases.len() >= 313, "expected the conformance suite, found {} files", cases.len());
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let failure = match (conformance::expected_outcome(case), run_case(case)) {
            (Err(e), _) | (_, Err(e)) => Some(e),
            (Ok(want), Ok(got)) if want == got => None,
            (Ok(want), Ok(got)) => {
                Some(format!("expected {}, got {}", conformance::describe(&want), conformance::describe(&got)))
            }
        };
        match failure {
            None => passed += 1,
            Some(f) => failures.push(format!("{}: {f}", case.name)),
        }
    }
    println!("\ninterp conformance ({}): {passed} passed, {} failed", std::env::consts::ARCH, failures.len());
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(failures.is_empty(), "{} conformance failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_expected_error_names_a_case_of_the_suite() {
    let cases = conformance::load_dir(conformance::tests_dir());
    for (name, _) in conformance::EXPECTED_ERRORS {
        assert!(cases.iter().any(|c| c.name == *name), "conformance::EXPECTED_ERRORS names no file {name}.data");
    }
}
