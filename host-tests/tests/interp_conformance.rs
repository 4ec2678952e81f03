//! The bpf_conformance suite through the validator and both interpreters.
//!
//! Every `tests/*.data` program is validated and run with its `-- mem` bytes as context
//! memory (r1 = their address, r2 = their length), a stack of `FRAME_SIZE * 9` bytes and
//! helper 5 (the suite's "unwind" helper, `|a, ..| a`), by the reference interpreter and by
//! the fast interpreter (decoded into a caller buffer, the no-allocator path). Each outcome
//! must equal [`conformance::expected_outcome`] exactly: `Ok(-- result)`, or the typed error
//! the case's entry in [`conformance::EXPECTED_ERRORS`] names; and the two runs must leave
//! the same memory.

use tessera::ebpf::fast_interp::Slot;
use tessera::ebpf::interp::{self, Config};
use tessera::ebpf::{Error, Helper, Helpers, Memory, Program, Vm};
use tessera_host_tests::conformance::{self, TestCase};
use tessera_stencils::abi::FRAME_SIZE;

fn unwind(_: &mut Memory, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a
}

const HELPERS: [Helper; 1] = [Helper { id: 5, func: unwind }];

/// Which interpreter runs a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interpreter {
    Reference,
    Fast,
}

/// The outcome of a run, with the final stack and context.
type Run = (Result<u64, Error>, Vec<u8>, Vec<u8>);

/// Validates and interprets the case; `Err` if it does not assemble.
fn run_case(case: &TestCase, interpreter: Interpreter) -> Result<Run, String> {
    let bytes = conformance::program_bytes(case)?;
    let helpers = Helpers::new(&HELPERS);
    let mut stack = vec![0u8; FRAME_SIZE as usize * 9];
    let mut context = case.mem.clone();
    let result = match interpreter {
        Interpreter::Reference => {
            Program::new(&bytes, |id| helpers.contains(id)).map_err(Error::from).and_then(|program| {
                let mut memory = Memory::new(&mut stack, &mut context, &mut []);
                Ok(interp::run(&program, &helpers, &mut memory, &Config::default())?)
            })
        }
        Interpreter::Fast => Vm::new(&bytes, helpers).map_err(Error::from).and_then(|vm| {
            let mut slots = vec![Slot::EMPTY; vm.fast_slots_needed()];
            let fast = vm.prepare_fast_in(&mut slots)?;
            Ok(fast.run(&mut Memory::new(&mut stack, &mut context, &mut []))?)
        }),
    };
    Ok((result, stack, context))
}

/// Why `case` fails in `interpreter`, if it does: a wrong outcome, or memory left unlike
/// the reference interpreter's (`reference`).
fn failure(case: &TestCase, interpreter: Interpreter, reference: &Result<Run, String>) -> Option<String> {
    let run = run_case(case, interpreter);
    let (want, (got, stack, context)) = match (conformance::expected_outcome(case), &run) {
        (Err(e), _) => return Some(e),
        (_, Err(e)) => return Some(e.clone()),
        (Ok(want), Ok(run)) => (want, run),
    };
    if want != *got {
        return Some(format!("expected {}, got {}", conformance::describe(&want), conformance::describe(got)));
    }
    match reference {
        Ok((_, ref_stack, ref_context)) if (ref_stack, ref_context) != (stack, context) => {
            Some("memory differs from the reference interpreter's".into())
        }
        _ => None,
    }
}

fn conformance_through(interpreter: Interpreter) {
    let cases = conformance::load_dir(conformance::tests_dir());
    assert!(cases.len() >= 313, "expected the conformance suite, found {} files", cases.len());
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in &cases {
        match failure(case, interpreter, &run_case(case, Interpreter::Reference)) {
            None => passed += 1,
            Some(f) => failures.push(format!("{}: {f}", case.name)),
        }
    }
    let label = match interpreter {
        Interpreter::Reference => "interp",
        Interpreter::Fast => "fast-interp",
    };
    println!("\n{label} conformance ({}): {passed} passed, {} failed", std::env::consts::ARCH, failures.len());
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(failures.is_empty(), "{} conformance failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn interp_conformance() {
    conformance_through(Interpreter::Reference);
}

#[test]
fn fast_interp_conformance() {
    conformance_through(Interpreter::Fast);
}

#[test]
fn every_expected_error_names_a_case_of_the_suite() {
    let cases = conformance::load_dir(conformance::tests_dir());
    for (name, _) in conformance::EXPECTED_ERRORS {
        assert!(cases.iter().any(|c| c.name == *name), "conformance::EXPECTED_ERRORS names no file {name}.data");
    }
}
