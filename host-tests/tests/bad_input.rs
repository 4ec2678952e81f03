//! The bad-input catalogue: every bad input we know of, each with the exact typed error it
//! must get, and a check after each one that the VM still works (a good program validates
//! and runs in every mode).
//!
//! Each entry names its input (assembly text, assembly into fixed buffers, bytecode, or
//! bytecode with caller scratch) and the stage it must fail at: the assembler, validation,
//! or a run (the same error in the interpreter, the fast interpreter and the JIT). Every [`AsmErrorKind`] and
//! every [`Error`] variant must be covered by an entry, except those in [`NOT_YET_COVERED`]
//! (run-time and compile-time errors whose inputs depend on APIs being reshaped): a new
//! `Error` variant does not compile until it is placed in [`variants!`], and a variant that
//! gains an entry must leave [`NOT_YET_COVERED`]. To add a stage (compiling into a small code
//! buffer, say), add an [`Input`] or [`Expected`] case and its arm in [`outcome`].

use std::collections::BTreeSet;

use tessera::ebpf::asm::{self, AsmError, AsmErrorKind, Label};
use tessera::ebpf::fast_interp::Slot;
use tessera::ebpf::insn::op;
use tessera::ebpf::program::MAX_INSNS;
use tessera::ebpf::{Error, Helper, Helpers, Insn, LoadError, Memory, Mode, Program, RunError, Vm};

/// The catalogue's helper: id 5 returns its first argument (as the conformance suite's).
const HELPERS: [Helper; 1] = [Helper { id: 5, func: |_, a, _, _, _, _| a }];

/// What is fed in.
enum Input {
    /// Assembly text, through `assemble_to_vec`.
    Asm(&'static str),
    /// Assembly text into fixed buffers: (text, output slots, label-table entries).
    AsmInto(&'static str, usize, usize),
    /// A program given as assembly (which must assemble), then validated and run.
    Program(&'static str),
    /// Bytecode, validated and run.
    Bytes(Vec<u8>),
    /// Bytecode validated with `Program::new_in` and this many words of scratch.
    BytesWithScratch(Vec<u8>, usize),
    /// Bytecode validated, then decoded for the fast interpreter into this many slots.
    BytesWithSlots(Vec<u8>, usize),
}

/// Where it must fail, and with what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Asm(AsmError),
    /// Rejected by validation (`Program::new` and `Vm::new` alike).
    Invalid(LoadError),
    /// Valid, and every run mode (interpreter, fast interpreter, JIT) ends in this error
    /// (stack of 9 frames, 16 bytes of context, fuel 1000).
    Run(RunError),
}

struct Entry {
    name: &'static str,
    input: Input,
    expected: Expected,
}

fn entry(name: &'static str, input: Input, expected: Expected) -> Entry {
    Entry { name, input, expected }
}

fn asm_error(line: u32, kind: AsmErrorKind) -> Expected {
    Expected::Asm(AsmError { line, kind })
}

fn bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.encode()).collect()
}

/// One slot given as the little-endian u64 of its bytes (as `.raw` takes it), then `exit`.
fn slot_then_exit(slot: u64) -> Vec<u8> {
    let mut b = slot.to_le_bytes().to_vec();
    b.extend_from_slice(&Insn::new(op::EXIT, 0, 0, 0, 0).encode());
    b
}

fn catalogue() -> Vec<Entry> {
    use AsmErrorKind::*;
    use Expected::{Invalid, Run};
    use Input::*;
    vec![
        // --- the assembler ---
        entry("unknown mnemonic", Asm("mov %r0, 1\nmovq %r0, 1"), asm_error(2, UnknownMnemonic)),
        entry("lock with no operation", Asm("lock"), asm_error(1, BadOperandCount)),
        entry("too many operands", Asm("neg %r1, %r2"), asm_error(1, BadOperandCount)),
        entry("register above r10", Asm("mov %r0, %r11"), asm_error(1, BadRegister)),
        entry("register where an immediate goes", Asm("stw [%r1], %r2"), asm_error(1, BadRegister)),
        entry("malformed number", Asm("add %r0, 0xg"), asm_error(1, BadImmediate)),
        entry("imm32 out of range", Asm("mov32 %r0, 4294967296"), asm_error(1, ImmediateOutOfRange)),
        entry("malformed offset", Asm("ldxw %r0, [%r1+x]"), asm_error(1, BadOffset)),
        entry("offset out of range", Asm("ldxw %r0, [%r1+65537]"), asm_error(1, OffsetOutOfRange)),
        entry("jump target not a label", Asm("ja 3"), asm_error(1, BadJumpTarget)),
        entry("label beyond i16", Asm(far_jump()), asm_error(1, JumpOutOfRange)),
        entry("unknown label", Asm("exit\nja nowhere"), asm_error(2, UnknownLabel)),
        entry("label defined twice", Asm("a:\nexit\na: exit"), asm_error(3, DuplicateLabel)),
        entry("label starting with a digit", Asm("1a: exit"), asm_error(1, BadLabel)),
        entry("memory operand without brackets", Asm("ldxb %r0, %r1"), asm_error(1, BadMemoryOperand)),
        entry("call mode", Asm("call far 1"), asm_error(1, BadCallMode)),
        entry("directive", Asm(".org 0"), asm_error(1, UnknownDirective)),
        entry("section header in the text", Asm("exit\n-- result"), asm_error(2, UnknownDirective)),
        entry("output full", AsmInto("mov %r0, 0\nlddw %r1, 1", 2, 0), asm_error(2, OutputFull)),
        entry("label table full", AsmInto("a: mov %r0, 0\nb: exit", 2, 1), asm_error(2, LabelTableFull)),
        // --- validation: length ---
        entry("length not a multiple of 8", Bytes(vec![0x95, 0, 0, 0]), Invalid(LoadError::BytecodeLength { len: 4 })),
        entry("empty program", Bytes(vec![]), Invalid(LoadError::EmptyProgram)),
        entry(
            "more than 2^20 slots",
            Bytes(vec![0; (MAX_INSNS + 1) * 8]),
            Invalid(LoadError::ProgramTooLong { len: MAX_INSNS as u32 + 1, max: MAX_INSNS as u32 }),
        ),
        entry(
            "scratch too small",
            BytesWithScratch(bytes(&[Insn::new(op::EXIT, 0, 0, 0, 0)]), 2),
            Invalid(LoadError::ScratchTooSmall { needed: 5 }),
        ),
        entry(
            "fast-interpreter slot buffer too small",
            BytesWithSlots(
                bytes(&[Insn::new(op::LDDW, 0, 0, 0, 1), Insn::default(), Insn::new(op::EXIT, 0, 0, 0, 0)]),
                2,
            ),
            Invalid(LoadError::SlotBufferTooSmall { needed: 3 }),
        ),
        // --- validation: each slot ---
        entry("LD_ABS", Program(".raw 0x20\nexit"), Invalid(LoadError::UnknownOpcode { pc: 0, opcode: 0x20 })),
        entry(
            "le8",
            Program(".raw 0x00000008000000d4\nexit"),
            Invalid(LoadError::UnknownOpcode { pc: 0, opcode: 0xd4 }),
        ),
        entry(
            "pseudo lddw of a map the program was not given",
            Program(".raw 0x1018\n.raw 0\nexit"),
            Invalid(LoadError::UnknownMap { pc: 0, map: 0 }),
        ),
        entry(
            "mov with an offset",
            Bytes(slot_then_exit(0x0000_0001_0001_00b7)),
            Invalid(LoadError::ReservedField { pc: 0 }),
        ),
        entry(
            "exit with an imm",
            Program("mov %r0, 0\n.raw 0x0000000100000095"),
            Invalid(LoadError::ReservedField { pc: 1 }),
        ),
        entry("register 11", Program(".raw 0x0bb7\nexit"), Invalid(LoadError::BadRegister { pc: 0, reg: 11 })),
        entry("write r10", Program("mov %r10, 0\nexit"), Invalid(LoadError::FrameRegisterWrite { pc: 0 })),
        entry(
            "xchg into r10",
            Program("lock xchg [%r10-8], %r10\nexit"),
            Invalid(LoadError::FrameRegisterWrite { pc: 0 }),
        ),
        entry("lddw in the last slot", Program("exit\n.raw 0x18"), Invalid(LoadError::TruncatedLddw { pc: 1 })),
        entry(
            "lddw second slot not clear",
            Program(".raw 0x18\n.raw 0x95\nexit"),
            Invalid(LoadError::BadLddwSecondSlot { pc: 1 }),
        ),
        entry("unregistered helper", Program("call 6\nexit"), Invalid(LoadError::UnknownHelper { pc: 0, id: 6 })),
        entry(
            "lsh32 by 32",
            Program("lsh32 %r0, 32\nexit"),
            Invalid(LoadError::ShiftOutOfRange { pc: 0, amount: 32, width: 32 }),
        ),
        entry(
            "rsh by 64",
            Program("rsh %r0, 64\nexit"),
            Invalid(LoadError::ShiftOutOfRange { pc: 0, amount: 64, width: 64 }),
        ),
        entry(
            "arsh by -1",
            Program("arsh %r0, -1\nexit"),
            Invalid(LoadError::ShiftOutOfRange { pc: 0, amount: -1, width: 64 }),
        ),
        // --- validation: control flow ---
        entry("jump past the end", Program("ja +1\nexit"), Invalid(LoadError::JumpOutOfRange { pc: 0, target: 2 })),
        entry(
            "call before the start",
            Program("call local -2\nexit"),
            Invalid(LoadError::JumpOutOfRange { pc: 0, target: -1 }),
        ),
        entry(
            "jump into lddw",
            Program("ja +1\nlddw %r0, 1\nexit"),
            Invalid(LoadError::JumpIntoLddw { pc: 0, target: 2 }),
        ),
        entry("falls off the end", Program("mov %r0, 0"), Invalid(LoadError::FallsOffEnd { pc: 0 })),
        entry(
            "falls into the next function (the issue's example: it returned 3)",
            Program("mov %r0, 1\ncall local next\nnext: add %r0, 1\nexit"),
            Invalid(LoadError::FallsIntoFunction { pc: 1, function: 2 }),
        ),
        entry(
            "callee jumps into its caller",
            Program("call local f\nback: exit\nf: ja back"),
            Invalid(LoadError::JumpOutOfFunction { pc: 2, target: 1 }),
        ),
        entry(
            "caller jumps into its callee",
            Program("call local f\njeq %r0, 0, inside\nexit\nf: mov %r0, 1\ninside: exit"),
            Invalid(LoadError::JumpOutOfFunction { pc: 1, target: 4 }),
        ),
        entry("code after exit", Program("exit\nmov %r0, 1\nexit"), Invalid(LoadError::Unreachable { pc: 1 })),
        entry("function never called", Program("exit\nf: exit"), Invalid(LoadError::Unreachable { pc: 1 })),
        // --- running (both modes) ---
        entry(
            "callx of an unregistered id",
            Program("mov %r1, 99\ncall %r1\nexit"),
            Run(RunError::HelperNotFound { pc: 1, id: 99 }),
        ),
        entry(
            "recursion",
            Program("call local f\nexit\nf: call local f\nexit"),
            Run(RunError::CallDepthExceeded { pc: 2 }),
        ),
        entry("infinite loop", Program("ja -1"), Run(RunError::OutOfFuel { pc: 0 })),
    ]
}

/// `ja end` with 40,000 lines between: the label is beyond an i16 offset.
fn far_jump() -> &'static str {
    let text = format!("ja end\n{}end: exit\n", "mov %r0, 0\n".repeat(40_000));
    Box::leak(text.into_boxed_str())
}

/// Error variants by stage. The error enums are `#[non_exhaustive]`, so a variant added
/// later falls into `_` here and must be listed by hand: keep this in step with
/// `core/src/ebpf/error.rs`.
macro_rules! variants {
    ($($enum:ident: $($variant:ident),* ;)*) => {
        $(
            #[allow(non_snake_case)]
            fn $enum(e: &$enum) -> &'static str {
                match e {
                    $($enum::$variant { .. } => stringify!($variant),)*
                    _ => "an unlisted variant",
                }
            }
        )*
        const ALL_VARIANTS: &[&str] = &[$($(stringify!($variant),)*)*];
    };
}

variants! {
    LoadError: BytecodeLength, EmptyProgram, ProgramTooLong, UnknownOpcode, ReservedField, BadRegister,
        FrameRegisterWrite, JumpOutOfRange, JumpIntoLddw, TruncatedLddw, BadLddwSecondSlot, UnknownHelper,
        FallsOffEnd, FallsIntoFunction, JumpOutOfFunction, Unreachable, ShiftOutOfRange, ScratchTooSmall, UnknownMap,
        MapValueOffset, SlotBufferTooSmall,
        DuplicateHelper, HelperTableFull;
    RunError: MemoryFault, OutOfFuel, CallDepthExceeded, MisalignedAtomic, HelperNotFound, StackTooSmall,
        TooManyRegions, NotRunnable, InvalidInstruction;
}

/// Variants without an entry yet: their inputs depend on the address model and the helper
/// registry API (issue 10, items 4 and 11), or cannot be reached from valid programs
/// (`InvalidInstruction` reports a validator bug).
const NOT_YET_COVERED: &[&str] = &[
    // Needs a program validated against maps (`Vm::with_maps`); covered in core's tests.
    "MapValueOffset",
    "MemoryFault",
    "MisalignedAtomic",
    "TooManyRegions",
    "StackTooSmall",
    "NotRunnable",
    "InvalidInstruction",
    "DuplicateHelper",
    "HelperTableFull",
];

const ALL_ASM_KINDS: [AsmErrorKind; 17] = [
    AsmErrorKind::UnknownMnemonic,
    AsmErrorKind::BadOperandCount,
    AsmErrorKind::BadRegister,
    AsmErrorKind::BadImmediate,
    AsmErrorKind::ImmediateOutOfRange,
    AsmErrorKind::BadOffset,
    AsmErrorKind::OffsetOutOfRange,
    AsmErrorKind::BadJumpTarget,
    AsmErrorKind::JumpOutOfRange,
    AsmErrorKind::UnknownLabel,
    AsmErrorKind::DuplicateLabel,
    AsmErrorKind::BadLabel,
    AsmErrorKind::BadMemoryOperand,
    AsmErrorKind::BadCallMode,
    AsmErrorKind::UnknownDirective,
    AsmErrorKind::OutputFull,
    AsmErrorKind::LabelTableFull,
];

/// What the input actually gives, in the terms of [`Expected`]; `Err` when it gives no error
/// at all (or fails at an earlier stage than a `Program` input may).
fn outcome(input: &Input) -> Result<Expected, String> {
    let helpers = Helpers::new(&HELPERS);
    let program = match input {
        Input::Asm(text) => {
            return match asm::assemble_to_vec(text) {
                Err(e) => Ok(Expected::Asm(e)),
                Ok(p) => Err(format!("assembled {} slots", p.len())),
            };
        }
        Input::AsmInto(text, slots, labels) => {
            let (mut out, mut table) = (vec![Insn::default(); *slots], vec![Label::EMPTY; *labels]);
            return match asm::assemble(text, &mut out, &mut table) {
                Err(e) => Ok(Expected::Asm(e)),
                Ok(n) => Err(format!("assembled {n} slots")),
            };
        }
        Input::BytesWithScratch(code, words) => {
            let mut scratch = vec![0u64; *words];
            return match Program::new_in(code, |id| helpers.contains(id), &mut scratch) {
                Err(e) => Ok(Expected::Invalid(e)),
                Ok(_) => Err("validated".into()),
            };
        }
        Input::BytesWithSlots(code, len) => {
            let vm = Vm::new(code, helpers).map_err(|e| format!("does not validate: {e}"))?;
            let mut slots = vec![Slot::EMPTY; *len];
            return match vm.prepare_fast_in(&mut slots) {
                Err(e) => Ok(Expected::Invalid(e)),
                Ok(_) => Err("decoded".into()),
            };
        }
        Input::Program(text) => {
            asm::to_bytes(&asm::assemble_to_vec(text).map_err(|e| format!("does not assemble: {e}"))?)
        }
        Input::Bytes(code) => code.clone(),
    };
    let by_program = Program::new(&program, |id| helpers.contains(id)).err();
    let by_vm = Vm::new(&program, helpers).err();
    if by_program != by_vm {
        return Err(format!("Program::new gives {by_program:?} but Vm::new {by_vm:?}"));
    }
    if let Some(e) = by_vm {
        return Ok(Expected::Invalid(e));
    }
    let [interp, fast, jit] = [Mode::Interpreter, Mode::FastInterpreter, Mode::Jit].map(|mode| run(&program, mode));
    match (interp, fast, jit) {
        (Err(Error::Run(a)), Err(Error::Run(b)), Err(Error::Run(c))) if a == b && a == c => Ok(Expected::Run(a)),
        (a, b, c) => Err(format!("interpreter {a:?}, fast interpreter {b:?}, JIT {c:?}")),
    }
}

fn run(program: &[u8], mode: Mode) -> Result<u64, Error> {
    let mut vm = Vm::new(program, Helpers::new(&HELPERS))?;
    vm.set_fuel(1000);
    let (mut stack, mut context) = (vec![0u8; 512 * 9], vec![0u8; 16]);
    vm.run(mode, &mut Memory::new(&mut stack, &mut context, &mut []))
}

/// After a bad input, a good program (a local call and a loop) still validates and runs.
fn still_works() -> Result<(), String> {
    const GOOD: &str =
        "mov %r0, 0\nmov %r6, 10\nloop: call local f\nsub %r6, 1\njne %r6, 0, loop\nexit\nf: add %r0, 3\nexit";
    let program = asm::assemble_to_bytes(GOOD).map_err(|e| e.to_string())?;
    for mode in [Mode::Interpreter, Mode::FastInterpreter, Mode::Jit] {
        let r = run(&program, mode);
        if r != Ok(30) {
            return Err(format!("{mode:?}: the good program gave {r:?}"));
        }
    }
    Ok(())
}

#[test]
fn every_bad_input_gets_its_exact_error_and_the_vm_keeps_working() {
    let mut failures = Vec::new();
    for e in catalogue() {
        match outcome(&e.input) {
            Ok(got) if got == e.expected => {}
            Ok(got) => failures.push(format!("{}: expected {:?}, got {got:?}", e.name, e.expected)),
            Err(why) => failures.push(format!("{}: expected {:?}, but {why}", e.name, e.expected)),
        }
        if let Err(why) = still_works() {
            failures.push(format!("after {}: {why}", e.name));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_catalogue_covers_every_error() {
    let entries = catalogue();
    let covered: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| match e.expected {
            Expected::Invalid(err) => Some(LoadError(&err)),
            Expected::Run(err) => Some(RunError(&err)),
            Expected::Asm(_) => None,
        })
        .collect();
    let missing: Vec<&str> =
        ALL_VARIANTS.iter().copied().filter(|v| !covered.contains(v) && !NOT_YET_COVERED.contains(v)).collect();
    assert!(missing.is_empty(), "Error variants with no catalogue entry: {missing:?}");
    let stale: Vec<&str> = NOT_YET_COVERED.iter().copied().filter(|v| covered.contains(v)).collect();
    assert!(stale.is_empty(), "covered now, remove from NOT_YET_COVERED: {stale:?}");
    for v in NOT_YET_COVERED {
        assert!(ALL_VARIANTS.contains(v), "NOT_YET_COVERED names no variant {v}");
    }
    let kinds: Vec<AsmErrorKind> = entries
        .iter()
        .filter_map(|e| match e.expected {
            Expected::Asm(a) => Some(a.kind),
            _ => None,
        })
        .collect();
    for kind in ALL_ASM_KINDS {
        assert!(kinds.contains(&kind), "AsmErrorKind::{kind:?} has no catalogue entry");
    }
    // The entry names are unique, so a failure names one entry.
    let names: BTreeSet<&str> = entries.iter().map(|e| e.name).collect();
    assert_eq!(names.len(), entries.len());
}
