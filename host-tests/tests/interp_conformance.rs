//! The bpf_conformance suite through the validator and the reference interpreter.
//!
//! Every `tests/*.data` program is validated and run with its `-- mem` bytes as context
//! memory (r1 = their address, r2 = their length), a stack of `FRAME_SIZE * 9` bytes and
//! helper 5 (the suite's "unwind" helper, `|a, ..| a`). `r0` must equal `-- result`, or the
//! program must be rejected (at load or run time) when the file expects `-- error`.
//! Every `negative/unused-*.data` program (RFC 9669 reserved fields set) must be rejected by
//! the validator.

use tessera::ebpf::interp::{self, Config};
use tessera::ebpf::{Helper, Helpers, Memory, Program};
use tessera_host_tests::conformance::{self, TestCase};
use tessera_stencils::abi::FRAME_SIZE;

fn unwind(a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a
}

const HELPERS: [Helper; 1] = [Helper { id: 5, func: unwind }];

fn run_case(case: &TestCase) -> Result<u64, String> {
    let bytes = conformance::program_bytes(case)?;
    let helpers = Helpers::new(&HELPERS);
    let program = Program::new(&bytes, |id| helpers.contains(id)).map_err(|e| format!("rejected: {e}"))?;
    let mut stack = vec![0u8; FRAME_SIZE as usize * 9];
    let mut context = case.mem.clone();
    let r1 = context.as_ptr() as u64;
    let r2 = context.len() as u64;
    let mut memory = Memory::new(&mut stack, &mut context, &mut []);
    interp::run(&program, &helpers, &mut memory, r1, r2, &Config::default()).map_err(|e| format!("error: {e}"))
}

#[test]
fn interp_conformance() {
    let cases = conformance::load_dir(conformance::tests_dir());
    assert!(cases.len() >= 313, "expected the conformance suite, found {} files", cases.len());
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = run_case(case);
        let ok = match (&case.error, case.result, &outcome) {
            (Some(_), _, Err(_)) => true,
            (None, Some(expected), Ok(r0)) => *r0 == expected,
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            let expected = match (&case.error, case.result) {
                (Some(_), _) => "an error".to_string(),
                (None, Some(r)) => format!("{r:#x}"),
                (None, None) => "no expectation in the file".to_string(),
            };
            let got = match &outcome {
                Ok(r0) => format!("{r0:#x}"),
                Err(e) => e.clone(),
            };
            failures.push(format!("{}: expected {expected}, got {got}", case.name));
        }
    }
    println!("\ninterp conformance ({}): {passed} passed, {} failed", std::env::consts::ARCH, failures.len());
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(failures.is_empty(), "{} conformance failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn reserved_field_programs_are_rejected() {
    let cases: Vec<TestCase> = conformance::load_dir(conformance::negative_dir())
        .into_iter()
        .filter(|c| c.name.starts_with("unused-"))
        .collect();
    assert!(cases.len() >= 45, "expected the unused-* negative cases, found {}", cases.len());
    let accepted: Vec<&str> = cases
        .iter()
        .filter(|c| {
            let bytes = conformance::program_bytes(c).unwrap_or_else(|e| panic!("{e}"));
            Program::new(&bytes, |_| true).is_ok()
        })
        .map(|c| c.name.as_str())
        .collect();
    assert!(accepted.is_empty(), "validator accepted: {accepted:?}");
}
