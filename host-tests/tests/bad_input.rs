//! The bad-input catalogue: every bad input we know of, each with the exact typed error it
//! must get, and a check after each one that the VM still works (a good program validates
//! and runs in every mode).
//!
//! Each entry names its input (assembly text, assembly into fixed buffers, bytecode, or
//! bytecode with caller scratch) and the stage it must fail at: the assembler, validation,
//! or a run (the same error in the interpreter, the fast interpreter and the JIT). Every
//! [`AsmErrorKind`] and every [`Error`] variant must be covered by an entry, except those in
//! [`NOT_COVERED`] (each with the reason): a new variant must be placed in [`variants!`], and
//! a variant that gains an entry must leave [`NOT_COVERED`]. Inputs are assembly, bytecode,
//! or a [`Input::Scenario`] that sets up the embedder's side (memory, maps, helpers, code
//! buffers) and reports what every run mode did.

use std::collections::BTreeSet;

use tessera::CodeBuffer;
use tessera::ebpf::asm::{self, AsmError, AsmErrorKind, Label};
use tessera::ebpf::fast_interp::Slot;
use tessera::ebpf::insn::op;
use tessera::ebpf::jit::OwnedScratch;
use tessera::ebpf::maps::{Map, MapDef, MapName};
use tessera::ebpf::program::MAX_INSNS;
use tessera::ebpf::{
    CompileError, Error, Helper, HelperRegistry, Helpers, Insn, LoadError, Memory, Mode, Program, Region, RunError, Vm,
};
use tessera::jit::Error as EmitError;

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
    /// The embedder's side set up by the function, which returns the error (for a run, the
    /// same in every mode, or a description of how the modes differ).
    Scenario(fn() -> Result<Expected, String>),
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
    /// Valid, and compiling fails with this error.
    Compile(CompileError),
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
    use Expected::{Compile, Invalid, Run};
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
        entry(
            "load past the context",
            Program("ldxdw %r0, [%r1+12]\nexit"),
            Run(RunError::MemoryFault { pc: 0, addr: (2 << 32) + 12 }),
        ),
        entry(
            "misaligned atomic",
            Program("mov %r1, 1\nlock add [%r10-15], %r1\nexit"),
            // Without local calls a program addresses its one frame: r10 is offset 512.
            Run(RunError::MisalignedAtomic { pc: 1, addr: (1 << 32) + 512 - 15 }),
        ),
        entry(
            "stack smaller than a frame",
            Scenario(small_stack),
            Run(RunError::StackTooSmall { len: 511, needed: 512 }),
        ),
        entry(
            "more regions than the table holds",
            Scenario(too_many_regions),
            Run(RunError::TooManyRegions { max: 13 }),
        ),
        entry("maps other than the program's", Scenario(wrong_maps), Run(RunError::MapMismatch { map: 0 })),
        entry("a helper panics", Scenario(panicking_helper), Run(RunError::HelperPanicked { pc: 0 })),
        entry(
            "map value offset past the value",
            Scenario(map_value_offset),
            Invalid(LoadError::MapValueOffset { pc: 0, map: 0, offset: 8 }),
        ),
        entry("helper registered twice", Scenario(duplicate_helper), Invalid(LoadError::DuplicateHelper { id: 5 })),
        entry("helper registry full", Scenario(helper_table_full), Invalid(LoadError::HelperTableFull { capacity: 1 })),
        entry("code in memory that cannot execute", Scenario(not_runnable), Run(RunError::NotRunnable)),
        entry(
            "code larger than the configured bound",
            Scenario(code_too_large),
            Compile(CompileError::CodeTooLarge { limit: 64 }),
        ),
        entry(
            "code buffer too small",
            Scenario(code_buffer_full),
            // The first stencil placed, the entry, is the one that does not fit.
            Compile(CompileError::Emit(EmitError::CodeBufferFull { needed: entry_stencil_len(), available: 16 })),
        ),
        entry(
            "scratch too small to compile",
            Scenario(compile_scratch_too_small),
            Compile(CompileError::ScratchTooSmall { labels: 4, fixups: 5 }),
        ),
    ]
}

/// Bytes of this machine's entry stencil.
fn entry_stencil_len() -> u64 {
    let table = tessera_stencils::table(tessera::Isa::host().expect("a supported host")).expect("linked");
    table.entry(tessera_stencils::ids::ENTRY).map_or(0, |e| e.code_len as u64)
}

const ADD_ONE: &str = "mov %r0, %r2\nadd %r0, 1\nexit";

/// Every run mode, the reference first.
const MODES: [Mode; 3] = [Mode::Interpreter, Mode::FastInterpreter, Mode::Jit];

/// The run-time error every mode ended in, or how they differ.
fn agreed(results: [Result<u64, Error>; 3]) -> Result<Expected, String> {
    match results {
        [Err(Error::Run(a)), Err(Error::Run(b)), Err(Error::Run(c))] if a == b && a == c => Ok(Expected::Run(a)),
        [a, b, c] => Err(format!("interpreter {a:?}, fast interpreter {b:?}, JIT {c:?}")),
    }
}

/// Runs `program` in every mode with memory from `memory` (called once per mode).
fn every_mode(
    program: &str,
    helpers: Helpers,
    memory: impl Fn(&mut dyn FnMut(&mut Memory) -> Result<u64, Error>) -> Result<u64, Error>,
) -> Result<Expected, String> {
    let bytes = asm::assemble_to_bytes(program).map_err(|e| e.to_string())?;
    agreed(MODES.map(|mode| {
        let mut vm = Vm::new(&bytes, helpers).map_err(Error::Load)?;
        memory(&mut |m| vm.run(mode, m))
    }))
}

fn small_stack() -> Result<Expected, String> {
    every_mode(ADD_ONE, Helpers::empty(), |run| run(&mut Memory::new(&mut [0u8; 511], &mut [], &mut [])))
}

fn too_many_regions() -> Result<Expected, String> {
    every_mode(ADD_ONE, Helpers::empty(), |run| {
        let data = [0u8; 4];
        let mut regions: Vec<Region> = (0..14).map(|_| Region::ReadOnly(&data)).collect();
        run(&mut Memory::new(&mut [0u8; 512], &mut [], &mut regions))
    })
}

fn wrong_maps() -> Result<Expected, String> {
    // Validated against one map of 8-byte values; run with a map of 16-byte values.
    let def = |value| MapDef::new(2, 4, value, 1, 0, MapName::new("m")).map_err(|e| e.to_string());
    let program_maps = [def(8)?];
    let bytes = asm::assemble_to_bytes(ADD_ONE).map_err(|e| e.to_string())?;
    let run_with = def(16)?;
    agreed(MODES.map(|mode| {
        let mut vm = Vm::with_maps(&bytes, &program_maps, Helpers::empty()).map_err(Error::Load)?;
        let mut maps = [Map::new(run_with).map_err(|_| Error::Run(RunError::NotRunnable))?];
        vm.run(mode, &mut Memory::new(&mut [0u8; 512], &mut [], &mut []).with_maps(&mut maps))
    }))
}

fn panics(_: &mut Memory, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    panic!("a helper's bug")
}

fn panicking_helper() -> Result<Expected, String> {
    static PANICS: [Helper; 1] = [Helper { id: 9, func: panics }];
    // The panic is caught and reported; keep its message out of the test output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = every_mode("call 9\nexit", Helpers::new(&PANICS), |run| {
        run(&mut Memory::new(&mut [0u8; 512], &mut [], &mut []))
    });
    std::panic::set_hook(hook);
    outcome
}

fn map_value_offset() -> Result<Expected, String> {
    let maps = [MapDef::new(2, 4, 8, 1, 0, MapName::new("m")).map_err(|e| e.to_string())?];
    // lddw %r0, map 0 value + 8 (src 2): one past the value.
    let bytes = bytes(&[Insn::new(op::LDDW, 0, 2, 0, 0), Insn::new(0, 0, 0, 0, 8), Insn::new(op::EXIT, 0, 0, 0, 0)]);
    match Vm::with_maps(&bytes, &maps, Helpers::empty()) {
        Err(e) => Ok(Expected::Invalid(e)),
        Ok(_) => Err("validated".into()),
    }
}

fn duplicate_helper() -> Result<Expected, String> {
    let mut registry = HelperRegistry::<4>::new();
    registry.register(5, |_, a, _, _, _, _| a).map_err(|e| e.to_string())?;
    match registry.register(5, |_, _, b, _, _, _| b) {
        Err(e) => Ok(Expected::Invalid(e)),
        Ok(()) => Err("registered".into()),
    }
}

fn helper_table_full() -> Result<Expected, String> {
    let mut registry = HelperRegistry::<1>::new();
    registry.register(5, |_, a, _, _, _, _| a).map_err(|e| e.to_string())?;
    match registry.register(6, |_, _, b, _, _, _| b) {
        Err(e) => Ok(Expected::Invalid(e)),
        Ok(()) => Err("registered".into()),
    }
}

fn not_runnable() -> Result<Expected, String> {
    // Compiled for this machine into plain memory: emitted, but never called.
    let bytes = asm::assemble_to_bytes(ADD_ONE).map_err(|e| e.to_string())?;
    let vm = Vm::new(&bytes, Helpers::empty()).map_err(|e| e.to_string())?;
    let mut code = vec![0u8; 4096];
    let mut buffer = CodeBuffer::new(&mut code);
    let mut scratch = OwnedScratch::with_size(vm.scratch_size());
    let jit = vm.compile_into(&mut buffer, scratch.scratch()).map_err(|e| e.to_string())?;
    match jit.run(&mut Memory::new(&mut [0u8; 512], &mut [], &mut [])) {
        Err(e) => Ok(Expected::Run(e)),
        Ok(r0) => Err(format!("ran: {r0}")),
    }
}

fn compile_with(
    program: &str,
    max_code: Option<usize>,
    code_bytes: usize,
    scratch_cut: usize,
) -> Result<Expected, String> {
    let bytes = asm::assemble_to_bytes(program).map_err(|e| e.to_string())?;
    let mut vm = Vm::new(&bytes, Helpers::empty()).map_err(|e| e.to_string())?;
    if let Some(limit) = max_code {
        vm.set_max_code_size(limit);
    }
    let mut size = vm.scratch_size();
    size.labels -= scratch_cut.min(size.labels);
    let mut code = vec![0u8; code_bytes];
    // Placed at an aligned address, so no alignment padding depends on where `code` is.
    let mut buffer = CodeBuffer::with_base(&mut code, 0x1000);
    let mut scratch = OwnedScratch::with_size(size);
    let outcome = match vm.compile_into(&mut buffer, scratch.scratch()) {
        Err(e) => Ok(Expected::Compile(e)),
        Ok(jit) => return Err(format!("compiled into {} bytes", jit.code().len())),
    };
    if buffer.used() != 0 {
        return Err(format!("a failed compilation took {} bytes of the buffer", buffer.used()));
    }
    outcome
}

fn code_too_large() -> Result<Expected, String> {
    // Twenty additions: more than 64 bytes of code on every ISA.
    let program = format!("mov %r0, %r2\n{}exit", "add %r0, 1\n".repeat(20));
    compile_with(&program, Some(64), 1 << 16, 0)
}

fn code_buffer_full() -> Result<Expected, String> {
    // Smaller than every ISA's entry stencil, the first one placed.
    compile_with(ADD_ONE, None, 16, 0)
}

fn compile_scratch_too_small() -> Result<Expected, String> {
    compile_with("mov %r0, 1\nexit", None, 1 << 16, 1)
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
        MapValueOffset, SlotBufferTooSmall, DuplicateHelper, HelperTableFull;
    CompileError: Emit, IsaNotLinked, UnsupportedHost, ScratchTooSmall, Unlowerable, CodeTooLarge;
    RunError: MemoryFault, OutOfFuel, CallDepthExceeded, MisalignedAtomic, HelperNotFound, StackTooSmall,
        TooManyRegions, NotRunnable, InvalidInstruction, RegionTooLarge, MapMismatch, HelperPanicked;
}

/// Variants no input here can reach, and why.
const NOT_COVERED: &[&str] = &[
    // Report a validator or lowering bug: no valid program reaches them.
    "InvalidInstruction",
    "Unlowerable",
    // This test binary links every ISA's table and runs on a host the JIT supports.
    "IsaNotLinked",
    "UnsupportedHost",
    // Needs a region of 4 GiB or more; the check is `memory::table_len`, one comparison.
    "RegionTooLarge",
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
        Input::Scenario(scenario) => return scenario(),
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
    agreed(MODES.map(|mode| run(&program, mode)))
}

fn run(program: &[u8], mode: Mode) -> Result<u64, Error> {
    let mut vm = Vm::new(program, Helpers::new(&HELPERS))?;
    vm.set_fuel(1000);
    let (mut stack, mut context) = (vec![0u8; tessera::ebpf::STACK_SIZE], vec![0u8; 16]);
    vm.run(mode, &mut Memory::new(&mut stack, &mut context, &mut []))
}

/// After a bad input, a good program (a local call and a loop) still validates and runs.
fn still_works() -> Result<(), String> {
    const GOOD: &str =
        "mov %r0, 0\nmov %r6, 10\nloop: call local f\nsub %r6, 1\njne %r6, 0, loop\nexit\nf: add %r0, 3\nexit";
    let program = asm::assemble_to_bytes(GOOD).map_err(|e| e.to_string())?;
    for mode in MODES {
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
            Expected::Compile(err) => Some(CompileError(&err)),
            Expected::Asm(_) => None,
        })
        .collect();
    assert!(!covered.contains("an unlisted variant"), "an entry's error is missing from variants!");
    let missing: Vec<&str> =
        ALL_VARIANTS.iter().copied().filter(|v| !covered.contains(v) && !NOT_COVERED.contains(v)).collect();
    assert!(missing.is_empty(), "Error variants with no catalogue entry: {missing:?}");
    let stale: Vec<&str> = NOT_COVERED.iter().copied().filter(|v| covered.contains(v)).collect();
    assert!(stale.is_empty(), "covered now, remove from NOT_COVERED: {stale:?}");
    for v in NOT_COVERED {
        assert!(ALL_VARIANTS.contains(v), "NOT_COVERED names no variant {v}");
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
