//! The `negative/` cases of bpf_conformance that the assembler (and the `.data` parser) must
//! reject, plus a census of the whole directory so that a new file cannot go unclassified.
//!
//! Categories:
//! - `Asm`: malformed assembly; the assembler must fail on the given asm line.
//! - `Directive`: the file has an unknown `--` section; the parser records it.
//! - `Validator(e)`: a well-formed program the validator must reject with exactly `e` (an
//!   RFC 9669 reserved field set, or an offset that selects no variant); checked against
//!   `Program::new` and `Vm::new`.
//! - `NoProgram`: neither `-- asm` nor `-- raw`; nothing may be reported as a pass.
//! - `WrongExpectation`: a valid program whose `-- result` / `-- error` a correct VM must
//!   not produce. `error.data` (`or %r0, %r10`) expects a rejection that only a verifier
//!   tracking uninitialised registers would give; RFC 9669 defines no such check, and in
//!   tessera every register starts at 0, so the program is valid and must run.

use tessera::ebpf::asm::{self, AsmErrorKind};
use tessera::ebpf::{Error, Helpers, LoadError, Memory, Mode, Program, Vm};
use tessera_host_tests::conformance::{self, TestCase};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Asm(u32, AsmErrorKind),
    Directive,
    Validator(LoadError),
    NoProgram,
    WrongExpectation,
}

fn expected(name: &str) -> Option<Kind> {
    use AsmErrorKind::*;
    use Kind::*;
    Some(match name {
        "invalid_imm32_dec_range" => Asm(2, ImmediateOutOfRange),
        "invalid_imm32_hex_range" => Asm(2, ImmediateOutOfRange),
        "invalid_label" => Asm(1, UnknownLabel),
        "invalid_lock" => Asm(1, BadOperandCount),
        "invalid_lock2" => Asm(1, BadOperandCount),
        "invalid_mnemonic" => Asm(2, UnknownMnemonic),
        "invalid_offset" => Asm(1, BadMemoryOperand),
        "invalid_offset_range" => Asm(2, OffsetOutOfRange),
        "invalid_operand_count" => Asm(1, BadOperandCount),
        "invalid_register" => Asm(1, BadRegister),
        "invalid_unknown_directive" => Directive,
        "error" => WrongExpectation,
        "empty" | "empty_instructions" => NoProgram,
        "incorrect_return_value_high_bits" => WrongExpectation,
        // A mov offset selects movsx; 1 selects none, so the opcode is undefined.
        "unused-mov64_reg-offset" => Validator(LoadError::UnknownOpcode { pc: 0, opcode: 0xbf }),
        "unused-mov_reg-offset" => Validator(LoadError::UnknownOpcode { pc: 0, opcode: 0xbc }),
        n if n.starts_with("unused-") => Validator(LoadError::ReservedField { pc: 0 }),
        _ => return None,
    })
}

/// The suite's `-- error` texts (uBPF's assembler messages) and our errors for them.
const SUITE_MESSAGES: &[(&str, AsmErrorKind)] = &[
    ("Invalid number of operands for lock", AsmErrorKind::BadOperandCount),
    ("Invalid register", AsmErrorKind::BadRegister),
];

fn negatives() -> Vec<TestCase> {
    let cases = conformance::load_dir(conformance::negative_dir());
    assert!(cases.len() >= 60, "expected the negative suite, found {} files", cases.len());
    cases
}

#[test]
fn every_negative_file_is_classified() {
    let unknown: Vec<_> = negatives().into_iter().filter(|c| expected(&c.name).is_none()).map(|c| c.name).collect();
    assert!(unknown.is_empty(), "unclassified negative files: {unknown:?}");
}

#[test]
fn malformed_assembly_is_rejected_with_its_line() {
    let mut checked = 0;
    for case in negatives() {
        let Some(Kind::Asm(line, kind)) = expected(&case.name) else {
            continue;
        };
        let text = case.asm.as_deref().unwrap_or_else(|| panic!("{}: no asm", case.name));
        let e = asm::assemble_to_vec(text).expect_err(&format!("{}: malformed assembly was accepted", case.name));
        assert!(e.line >= 1, "{}: {e}", case.name);
        // The asm line numbers count the comment lines inside the section (see each file).
        assert_eq!((e.line, e.kind), (line, kind), "{}: {e}", case.name);
        // Where the file names the error, it is the one we give.
        if let Some(text) = case.error.as_deref().filter(|t| !t.is_empty()) {
            let named = SUITE_MESSAGES.iter().find(|(m, _)| *m == text).map(|&(_, k)| k);
            assert_eq!(named, Some(kind), "{}: the suite's error {text:?}", case.name);
        }
        let msg = conformance::program_bytes(&case).expect_err(&case.name);
        assert!(msg.contains(&case.name) && msg.contains("file line"), "{msg}");
        checked += 1;
    }
    assert_eq!(checked, 10);
}

#[test]
fn unknown_directive_is_recorded() {
    let cases = negatives();
    let case = cases.iter().find(|c| c.name == "invalid_unknown_directive").expect("file");
    assert_eq!(case.unknown_sections.len(), 1);
    assert_eq!(case.unknown_sections[0].1, "Unknown directive");
    // The program part before the bad header is empty.
    assert_eq!(asm::assemble_to_vec(case.asm.as_deref().unwrap_or("")).map(|p| p.len()), Ok(0));
    // Fed to the assembler directly, the header line is an unknown directive.
    let e = asm::assemble_to_vec("-- Unknown directive\nexit").unwrap_err();
    assert_eq!((e.line, e.kind), (1, AsmErrorKind::UnknownDirective));
}

#[test]
fn validator_cases_are_rejected_with_their_exact_error() {
    let mut checked = 0;
    for case in negatives() {
        let Some(Kind::Validator(error)) = expected(&case.name) else {
            continue;
        };
        assert!(case.error.is_some(), "{}: a validator case must have -- error", case.name);
        assert!(case.result.is_none(), "{}", case.name);
        let bytes = conformance::program_bytes(&case).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Program::new(&bytes, |_| true).err(), Some(error), "{}", case.name);
        assert_eq!(Vm::new(&bytes, Helpers::empty()).err(), Some(error), "{}", case.name);
        // Raw byte form: two slots, the second `exit`.
        assert!(case.asm.is_none(), "{}", case.name);
        assert_eq!(bytes.len(), 16, "{}", case.name);
        assert_eq!(&bytes[8..], &[0x95, 0, 0, 0, 0, 0, 0, 0], "{}", case.name);
        // Each sets exactly one reserved field; the disassembler must not hide it.
        let insn = tessera::ebpf::Insn::decode(bytes[..8].try_into().unwrap());
        let text = tessera::ebpf::disasm::Disassembly(&[insn]).to_string();
        assert!(text.starts_with(".raw"), "{}: {text}", case.name);
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} validator cases");
}

#[test]
fn no_program_cases_have_no_program() {
    for case in negatives() {
        if expected(&case.name) == Some(Kind::NoProgram) {
            assert!(!case.has_program(), "{}", case.name);
            assert!(conformance::program_bytes(&case).is_err(), "{}", case.name);
            assert_eq!(Program::new(&[], |_| true).err(), Some(LoadError::EmptyProgram));
        }
    }
}

#[test]
fn wrong_expectation_is_really_wrong() {
    let cases = negatives();
    let case = cases.iter().find(|c| c.name == "incorrect_return_value_high_bits").expect("file");
    let program = asm::assemble_to_vec(case.asm.as_deref().expect("asm")).expect("valid asm");
    // `ldxdw %r0, [%r1+2]; exit`: the correct r0 is the little-endian u64 at mem[2..10].
    assert_eq!(program.len(), 2);
    assert_eq!((program[0].opcode, program[0].src, program[0].off), (0x79, 1, 2));
    let correct = u64::from_le_bytes(case.mem[2..10].try_into().unwrap());
    assert_eq!(correct, 0x8877665544332211);
    assert_ne!(case.result, Some(correct));
}

/// Runs a negative file's program in every mode and returns the results.
fn run_all_modes(case: &TestCase) -> [Result<u64, Error>; 3] {
    let bytes = conformance::program_bytes(case).expect("program");
    [Mode::Interpreter, Mode::FastInterpreter, Mode::Jit].map(|mode| {
        let mut vm = Vm::new(&bytes, Helpers::empty()).expect("valid program");
        let (mut stack, mut context) = (vec![0u8; tessera::ebpf::STACK_SIZE], case.mem.clone());
        let mut memory = Memory::new(&mut stack, &mut context, &mut []);
        vm.run(mode, &mut memory)
    })
}

#[test]
fn wrong_expectations_are_not_met_by_any_mode() {
    let cases = negatives();
    let high_bits = cases.iter().find(|c| c.name == "incorrect_return_value_high_bits").expect("file");
    for result in run_all_modes(high_bits) {
        assert_eq!(result, Ok(0x8877665544332211));
        assert_ne!(result.ok(), high_bits.result);
    }
    // `or %r0, %r10; exit` runs and returns r10 (r0 starts at 0), not the error it expects.
    let error = cases.iter().find(|c| c.name == "error").expect("file");
    assert!(error.error.is_some());
    for result in run_all_modes(error) {
        let r0 = result.expect("a valid program runs");
        assert_ne!(r0, 0, "r0 | r10 is the frame pointer");
    }
}
