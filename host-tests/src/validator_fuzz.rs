//! The validator property, shared by the cargo-fuzz target `validate` and the bounded
//! property test `tests/fuzz_properties.rs`.
//!
//! Inputs come from a [`Source`]: either raw bytes (any slot at all) or a program shaped like
//! real code (functions that end in `exit`, jumps inside them, calls to function starts),
//! then mutated a little, so that every control-flow rule is exercised on both sides of
//! its line. The property:
//! - validation never panics;
//! - its verdict on control flow (jump targets, falling off the end or into the next
//!   function, jumps out of a function, unreachable code) equals that of
//!   [`reference_control_flow`], a slow and obvious implementation of the same rules;
//! - an accepted program runs to the same result or error, and the same memory, in the
//!   interpreter, the fast interpreter and the JIT.
//!
//! A failure message carries the program disassembled.

use tessera::ebpf::disasm::Disassembly;
use tessera::ebpf::insn::{alu, class, jmp, op, pseudo, source};
use tessera::ebpf::{Error, Helper, Helpers, Insn, LoadError, Memory, Mode, Program, Vm};

use crate::program_gen::{self, HELPER_ID, Source};

const HELPERS: [Helper; 1] = [Helper { id: HELPER_ID, func: program_gen::helper }];

/// Fuel for the runs of accepted programs: enough for short loops, small for long ones.
const FUEL: u64 = 300;

/// The input of one case: a program in 8-byte slots (any bytes at all).
pub fn input(s: &mut impl Source) -> Vec<Insn> {
    match s.below(4) {
        0 => (0..1 + s.below(12)).map(|_| Insn::decode(random_slot(s))).collect(),
        _ => {
            let mut insns = structured(s);
            for _ in 0..[0, 0, 1, 2][s.below(4) as usize] {
                mutate(s, &mut insns);
            }
            insns
        }
    }
}

fn random_slot(s: &mut impl Source) -> [u8; 8] {
    core::array::from_fn(|_| s.byte())
}

/// Functions of 2..12 slots; every one ends in `exit` (or a `ja` back into itself), jumps
/// stay inside their function, calls go to function starts.
fn structured(s: &mut impl Source) -> Vec<Insn> {
    let count = 1 + s.below(4) as usize;
    let mut starts = vec![0usize];
    for _ in 1..count {
        let last = *starts.last().unwrap_or(&0);
        starts.push(last + 2 + s.below(10) as usize);
    }
    let len = *starts.last().unwrap_or(&0) + 2 + s.below(10) as usize;
    let end_of = |f: usize| starts.get(f + 1).copied().unwrap_or(len);
    let mut insns = Vec::with_capacity(len);
    for f in 0..count {
        let (start, end) = (starts[f], end_of(f));
        // Each function calls the next one once, so all are usually reachable.
        let calls_next_at = start + s.below((end - start - 1) as u32) as usize;
        while insns.len() < end {
            let pc = insns.len();
            if pc == calls_next_at && f + 1 < count {
                let callee = starts[f + 1];
                insns.push(Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, (callee as i64 - pc as i64 - 1) as i32));
                continue;
            }
            if pc + 1 == end {
                insns.push(if s.below(6) == 0 && pc > start {
                    Insn::new(op::JA, 0, 0, (start as i64 - pc as i64 - 1) as i16, 0)
                } else {
                    Insn::new(op::EXIT, 0, 0, 0, 0)
                });
                continue;
            }
            let dst = s.below(10) as u8;
            match s.below(12) {
                0..=3 => insns.push(Insn::new(class::ALU64 | alu::ADD | source::K, dst, 0, 0, s.imm())),
                4 => {
                    // Shifts, with an immediate sometimes outside the width.
                    let code = [alu::LSH, alu::RSH, alu::ARSH][s.below(3) as usize];
                    let cls = if s.below(2) == 0 { class::ALU } else { class::ALU64 };
                    let amount = if s.below(8) == 0 { s.imm() } else { s.below(32) as i32 };
                    insns.push(Insn::new(cls | code | source::K, dst, 0, 0, amount));
                }
                5..=7 => {
                    let target = start + s.below((end - start) as u32) as usize;
                    let code = [jmp::JEQ, jmp::JNE, jmp::JGT, jmp::JSLT][s.below(4) as usize];
                    let off = (target as i64 - pc as i64 - 1) as i16;
                    insns.push(Insn::new(class::JMP | code | source::K, dst, 0, off, s.below(4) as i32));
                }
                8 => {
                    let callee = starts[s.below(count as u32) as usize];
                    insns.push(Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, (callee as i64 - pc as i64 - 1) as i32));
                }
                9 => insns.push(Insn::new(op::CALL, 0, pseudo::CALL_HELPER, 0, HELPER_ID as i32)),
                10 if pc + 2 < end => {
                    insns.push(Insn::new(op::LDDW, dst, 0, 0, s.imm()));
                    insns.push(Insn::new(0, 0, 0, 0, s.imm()));
                }
                // An early exit: what follows is dead unless a jump reaches it.
                11 if s.below(3) == 0 => insns.push(Insn::new(op::EXIT, 0, 0, 0, 0)),
                _ => insns.push(Insn::new(class::ALU64 | alu::MOV | source::X, dst, s.below(11) as u8, 0, 0)),
            }
        }
    }
    // The calls above and jumps may land on an lddw second slot: the validator says so.
    insns
}

/// One small change: a jump or call target moved, an instruction replaced by `exit`, `ja`,
/// a local call or a random slot, or a slot removed.
fn mutate(s: &mut impl Source, insns: &mut Vec<Insn>) {
    if insns.is_empty() {
        return;
    }
    let len = insns.len();
    let pc = s.below(len as u32) as usize;
    let delta = s.below(7) as i32 - 3;
    let insn = &mut insns[pc];
    match s.below(6) {
        0 => insn.off = insn.off.wrapping_add(delta as i16),
        1 if insn.opcode == op::CALL => insn.imm = insn.imm.wrapping_add(delta),
        1 | 2 => *insn = Insn::new(op::EXIT, 0, 0, 0, 0),
        3 => *insn = Insn::new(op::JA, 0, 0, delta as i16, 0),
        4 => *insn = Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, s.below(len as u32) as i32 - pc as i32 - 1),
        _ => {
            insns.remove(pc);
        }
    }
}

/// Error kinds the validator's first pass gives (each slot on its own, before any control
/// flow is looked at); the reference does not model them.
fn is_slot_error(e: &LoadError) -> bool {
    matches!(
        e,
        LoadError::BytecodeLength { .. }
            | LoadError::EmptyProgram
            | LoadError::ProgramTooLong { .. }
            | LoadError::UnknownOpcode { .. }
            | LoadError::ReservedField { .. }
            | LoadError::BadRegister { .. }
            | LoadError::FrameRegisterWrite { .. }
            | LoadError::TruncatedLddw { .. }
            | LoadError::BadLddwSecondSlot { .. }
            | LoadError::UnknownHelper { .. }
            | LoadError::ShiftOutOfRange { .. }
    )
}

/// The validator's rules on control flow, written the slow and obvious way (quadratic
/// function lookup, an explicit stack), for a non-empty program whose slots each passed the
/// validator's first pass. Reports the first violation in the validator's order: targets
/// out of range or into `lddw`, falling off the end, then function structure in program
/// order, then the first unreachable instruction.
pub fn reference_control_flow(insns: &[Insn]) -> Result<(), LoadError> {
    let len = insns.len();
    let size = |pc: usize| if insns[pc].opcode == op::LDDW { 2 } else { 1 };
    let mut starts = Vec::new();
    let mut pc = 0;
    while pc < len {
        starts.push(pc);
        pc += size(pc);
    }
    let is_jump =
        |i: &Insn| matches!(i.class(), class::JMP | class::JMP32) && !matches!(i.opcode & 0xf0, jmp::CALL | jmp::EXIT);
    let is_local_call = |i: &Insn| i.opcode == op::CALL && i.src == pseudo::CALL_LOCAL;
    let target = |pc: usize| -> Option<i64> {
        let i = insns[pc];
        if is_local_call(&i) || i.opcode == op::JA32 {
            Some(pc as i64 + 1 + i64::from(i.imm))
        } else if is_jump(&i) {
            Some(pc as i64 + 1 + i64::from(i.off))
        } else {
            None
        }
    };
    for &pc in &starts {
        if let Some(t) = target(pc) {
            if t < 0 || t >= len as i64 {
                return Err(LoadError::JumpOutOfRange { pc: pc as u32, target: t });
            }
            if !starts.contains(&(t as usize)) {
                return Err(LoadError::JumpIntoLddw { pc: pc as u32, target: t as u32 });
            }
        }
    }
    let unconditional = |pc: usize| matches!(insns[pc].opcode, op::EXIT | op::JA | op::JA32);
    let last = *starts.last().expect("non-empty");
    if !unconditional(last) {
        return Err(LoadError::FallsOffEnd { pc: last as u32 });
    }
    let mut functions = vec![0usize];
    for &pc in &starts {
        if is_local_call(&insns[pc]) {
            functions.push(target(pc).expect("call target") as usize);
        }
    }
    functions.sort_unstable();
    functions.dedup();
    for &pc in &starts {
        let f = functions.iter().rposition(|&start| start <= pc).expect("0 is a function");
        let (start, end) = (functions[f], functions.get(f + 1).copied().unwrap_or(len));
        if is_jump(&insns[pc]) {
            let t = target(pc).expect("jump target") as usize;
            if t < start || t >= end {
                return Err(LoadError::JumpOutOfFunction { pc: pc as u32, target: t as u32 });
            }
        }
        if pc + size(pc) == end && end < len && !unconditional(pc) {
            return Err(LoadError::FallsIntoFunction { pc: pc as u32, function: end as u32 });
        }
    }
    let mut reached = vec![false; len];
    let mut stack = vec![0usize];
    reached[0] = true;
    while let Some(pc) = stack.pop() {
        let mut next = Vec::new();
        if !unconditional(pc) {
            next.push(pc + size(pc));
        }
        next.extend(target(pc).map(|t| t as usize));
        for n in next {
            if n < len && !reached[n] {
                reached[n] = true;
                stack.push(n);
            }
        }
    }
    match starts.iter().find(|&&pc| !reached[pc]) {
        Some(&pc) => Err(LoadError::Unreachable { pc: pc as u32 }),
        None => Ok(()),
    }
}

/// What one case ended in, for the property test's census.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Rejected by the first pass (a slot on its own).
    SlotError,
    /// Rejected on control flow: the error's variant name.
    ControlFlow(&'static str),
}

fn variant_name(e: &LoadError) -> &'static str {
    match e {
        LoadError::JumpOutOfRange { .. } => "JumpOutOfRange",
        LoadError::JumpIntoLddw { .. } => "JumpIntoLddw",
        LoadError::FallsOffEnd { .. } => "FallsOffEnd",
        LoadError::FallsIntoFunction { .. } => "FallsIntoFunction",
        LoadError::JumpOutOfFunction { .. } => "JumpOutOfFunction",
        LoadError::Unreachable { .. } => "Unreachable",
        _ => "other",
    }
}

/// Checks the property on one program; `Err` explains a failure, program included.
pub fn check(insns: &[Insn]) -> Result<Verdict, String> {
    let bytes = program_gen::to_bytes(insns);
    let helpers = Helpers::new(&HELPERS);
    let listing = || format!("program:\n{}", Disassembly(insns).numbered());
    let verdict = Program::new(&bytes, |id| helpers.contains(id));
    let verdict = match verdict {
        Err(e) if is_slot_error(&e) => return Ok(Verdict::SlotError),
        other => other.map(|_| ()),
    };
    let reference = reference_control_flow(insns);
    if verdict != reference {
        return Err(format!("validator says {verdict:?}, the reference {reference:?}\n{}", listing()));
    }
    if let Err(e) = verdict {
        return Ok(Verdict::ControlFlow(variant_name(&e)));
    }
    // One set of buffers for both runs, so addresses (r10, r1) and anything derived from
    // them compare equal.
    let (mut stack, mut context) = (vec![0u8; tessera::ebpf::STACK_SIZE], vec![0u8; 64]);
    let runs = [Mode::Interpreter, Mode::Jit, Mode::FastInterpreter].map(|mode| {
        stack.fill(0);
        context.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let result = Vm::new(&bytes, Helpers::new(&HELPERS)).map_err(Error::from).and_then(|mut vm| {
            vm.set_fuel(FUEL);
            vm.run(mode, &mut Memory::new(&mut stack, &mut context, &mut []))
        });
        (result, stack.clone(), context.clone())
    });
    if runs[0] != runs[1] {
        return Err(format!("interpreter {:?} but JIT {:?}\n{}", runs[0].0, runs[1].0, listing()));
    }
    if runs[0] != runs[2] {
        return Err(format!("interpreter {:?} but fast interpreter {:?}\n{}", runs[0].0, runs[2].0, listing()));
    }
    Ok(Verdict::Accepted)
}
