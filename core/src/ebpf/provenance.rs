//! Pointer provenance for the lowering: which registers hold "the running frame's r10 plus
//! a constant" or "the context pointer plus a constant", so that a load or store through
//! them tests only the region it can be in (the context's limit), or nothing at all (inside
//! the running frame). Fault semantics stay exactly the interpreter's: a context-based
//! access that fails reports `base + off`, as the interpreter does.
//!
//! Besides these facts the tracker keeps *guesses*: a register derived from a stack or
//! context pointer by additions it cannot follow (`r6 = r1 + r2`, a pointer kept in a loop,
//! an argument a caller passed) is probably still in that region, and an access through it
//! tests that region first. A guess decides only which check runs first, never whether an
//! access is allowed: a wrong one costs the slow path, not correctness. So guesses may be
//! sloppy where facts may not: they survive block boundaries in program order, and flow
//! from call sites into the callee's argument registers.
//!
//! The analysis is linear and needs no allocation: one pass over the program marks jump
//! targets and function starts (local-call targets) in bitmaps of caller scratch, then the
//! lowering walks the program once. Inside a basic block, registers are tracked exactly;
//! at a block boundary only the function's *invariant* registers keep their facts: those
//! not written after the function's entry block (the straight line from its start to the
//! first jump target or branch), whose state at the end of the entry block therefore holds
//! everywhere after it. That covers the common shapes: `r6 = r1` at the start of a
//! program, `r2 = r10; r2 += -8` before a helper call.

use super::bits::{bit, next_set_bit, set_bit};
use super::insn::{FRAME_POINTER, Insn, atomic, class, jmp, mem, op, pseudo};
use super::program::Program;
use super::tables::ByteTable;
use tessera_stencils::abi::FRAME_SIZE;

/// What a register is known (or guessed) to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pointer {
    Unknown,
    /// `r10 + k` of the running function.
    Frame(i32),
    /// The context pointer (r1 at entry) plus `k`.
    Context(i32),
    /// A guess: somewhere in the stack.
    InStack,
    /// A guess: somewhere in the context memory.
    InContext,
}

impl Pointer {
    /// What is left when the exact offset is lost: the region, as a guess.
    #[inline(always)]
    fn guess(self) -> Pointer {
        match self {
            Pointer::Frame(_) | Pointer::InStack => Pointer::InStack,
            Pointer::Context(_) | Pointer::InContext => Pointer::InContext,
            Pointer::Unknown => Pointer::Unknown,
        }
    }

    fn is_exact(self) -> bool {
        matches!(self, Pointer::Frame(_) | Pointer::Context(_))
    }

    /// The two-bit code of a guess in the call-site hints (0: no call site seen yet).
    fn hint_code(self) -> u16 {
        match self.guess() {
            Pointer::InStack => 1,
            Pointer::InContext => 2,
            _ => 3,
        }
    }

    fn from_hint_code(code: u16) -> Pointer {
        match code {
            1 => Pointer::InStack,
            2 => Pointer::InContext,
            _ => Pointer::Unknown,
        }
    }
}

/// Scratch words the analysis needs for a program of `len` slots: a bitmap of jump targets,
/// one of function starts, the registers each 64-slot chunk writes, a bitmap of loop heads,
/// and 16 bits per slot for the guesses call sites pass to the function starting there.
pub(crate) const fn words_needed(len: usize) -> usize {
    4 * len.div_ceil(64) + len.div_ceil(4)
}

/// Facts about the whole program, in caller scratch.
pub(crate) struct Facts<'s> {
    /// Jump targets and function starts: where [`Tracker::enter`] has work to do.
    boundaries: &'s [u64],
    starts: &'s [u64],
    /// Targets of backward jumps.
    loop_heads: &'s [u64],
    /// Per 64-slot chunk, the registers its instructions write (a [`writes`] mask).
    chunk_writes: &'s [u64],
    /// Whether a local call targets pc 0 (r1 is then not always the context there).
    entry_called: bool,
    /// Whether any jump or call targets pc 0 (marked in `boundaries` in any case).
    zero_targeted: bool,
}

/// How an opcode moves control, for the facts pass: the jump's displacement field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    None,
    /// A jump by `off`.
    Off,
    /// A jump by `imm` (`ja32`).
    Imm,
    /// `call`: a local call (src 1) to `pc + imm + 1`.
    Call,
}

// Built at compile time: an index out of bounds would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
static FLOW: ByteTable<Flow> = ByteTable({
    let mut flow = [Flow::None; 256];
    let mut opcode = 0;
    while opcode < 256 {
        let class = opcode as u8 & 0x07;
        let code = opcode as u8 & 0xf0;
        if class == class::JMP || class == class::JMP32 {
            flow[opcode] = match code {
                jmp::EXIT => Flow::None,
                jmp::CALL if opcode as u8 == op::CALL => Flow::Call,
                jmp::CALL => Flow::None,
                jmp::JA if class == class::JMP32 => Flow::Imm,
                _ => Flow::Off,
            };
        }
        opcode += 1;
    }
    flow
});

impl<'s> Facts<'s> {
    /// Marks every jump target and function start of `program` (validated: targets are in
    /// range). `None` when `words` is smaller than [`words_needed`].
    ///
    /// Every slot is looked at, `lddw` second slots included: their opcode (0) is no jump.
    pub(crate) fn of(program: &Program, words: &'s mut [u64]) -> Option<(Facts<'s>, &'s mut [u64])> {
        let n = program.len().div_ceil(64);
        let (words, hints) = words.split_at_mut_checked(4 * n)?;
        let hints = hints.get_mut(..program.len().div_ceil(4))?;
        hints.fill(0);
        words.fill(0);
        let (boundaries, rest) = words.split_at_mut(n);
        let (starts, rest) = rest.split_at_mut(n);
        let (loop_heads, chunk_writes) = rest.split_at_mut(n);
        set_bit(starts, 0);
        set_bit(boundaries, 0);
        let (mut entry_called, mut zero_targeted) = (false, false);
        let chunks = program.bytes().chunks(64 * Insn::SIZE);
        for ((chunk_index, chunk), chunk_written) in chunks.enumerate().zip(chunk_writes.iter_mut()) {
            let mut written = 0u16;
            for (i, slot) in chunk.as_chunks::<{ Insn::SIZE }>().0.iter().enumerate() {
                let (opcode, regs) = (slot[0], slot[1]);
                // Most instructions write their `dst` and move no control: one table lookup.
                match EFFECT[opcode] {
                    Effect::None | Effect::Store => continue,
                    Effect::Dst
                    | Effect::Load64
                    | Effect::Mov64
                    | Effect::Add64
                    | Effect::Sub64
                    | Effect::Add64Reg
                    | Effect::Sub64Reg => {
                        written |= 1 << (regs & 0xf);
                        continue;
                    }
                    Effect::Jump | Effect::Call | Effect::Atomic => written |= slot_writes(opcode, regs, slot),
                }
                let flow = FLOW[opcode];
                let off = i16::from_le_bytes([slot[2], slot[3]]) as i64;
                let imm = i32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]) as i64;
                let delta = match flow {
                    Flow::Off => off,
                    Flow::Imm => imm,
                    Flow::Call if regs >> 4 == pseudo::CALL_LOCAL => imm,
                    _ => continue,
                };
                let target = ((chunk_index * 64 + i) as i64 + delta + 1) as usize;
                set_bit(boundaries, target);
                if delta < 0 && flow != Flow::Call {
                    set_bit(loop_heads, target);
                }
                zero_targeted |= target == 0;
                if flow == Flow::Call {
                    set_bit(starts, target);
                    entry_called |= target == 0;
                }
            }
            *chunk_written = written as u64;
        }
        Some((Facts { boundaries, starts, loop_heads, chunk_writes, entry_called, zero_targeted }, hints))
    }

    fn is_function_start(&self, pc: usize) -> bool {
        bit(self.starts, pc)
    }

    /// Whether a jump or a local call lands on `pc`.
    fn is_target(&self, pc: usize) -> bool {
        if pc == 0 { self.zero_targeted } else { bit(self.boundaries, pc) }
    }
}

/// What an instruction does to the registers, by opcode.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Writes no register (stores, `exit`).
    None,
    /// Ends its block (jumps), writing nothing.
    Jump,
    /// Overwrites `dst` with something not tracked.
    Dst,
    /// `mov64 dst, src` (a copy when `off` is 0, else `movsx`).
    Mov64,
    /// `add64` / `sub64 dst, imm`.
    Add64,
    Sub64,
    /// `add64` / `sub64 dst, src`.
    Add64Reg,
    Sub64Reg,
    /// `ldxdw`: may reload a pointer spilled to the frame.
    Load64,
    /// A store (not an atomic): writes no register, may spill a pointer to the frame.
    Store,
    /// A call: r0..r5 (result and clobbered arguments).
    Call,
    /// An atomic operation: `cmpxchg` writes r0, the fetch forms `src`.
    Atomic,
}

// Built at compile time: an index out of bounds would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
static EFFECT: ByteTable<Effect> = ByteTable({
    let mut effect = [Effect::None; 256];
    let mut opcode = 1;
    // Opcode 0 is no instruction: only the second slot of `lddw` has it.
    while opcode < 256 {
        let o = opcode as u8;
        effect[opcode] = match o & 0x07 {
            class::LDX if o == 0x79 => Effect::Load64,
            class::ALU | class::LDX | class::LD => Effect::Dst,
            class::ALU64 => match o {
                0xbf => Effect::Mov64,
                0x07 => Effect::Add64,
                0x17 => Effect::Sub64,
                0x0f => Effect::Add64Reg,
                0x1f => Effect::Sub64Reg,
                _ => Effect::Dst,
            },
            class::STX if o & 0xe0 == mem::ATOMIC => Effect::Atomic,
            class::ST | class::STX => Effect::Store,
            class::JMP | class::JMP32 => match o & 0xf0 {
                jmp::CALL => Effect::Call,
                jmp::EXIT => Effect::None,
                _ => Effect::Jump,
            },
            _ => Effect::None,
        };
        opcode += 1;
    }
    effect
});

/// The registers an instruction writes, as a bit mask (bit k = rk).
fn writes(insn: &Insn) -> u16 {
    const ARGS: u16 = 0b11_1111; // r0..r5: a call's result and its clobbered arguments
    match EFFECT[insn.opcode] {
        Effect::None | Effect::Jump | Effect::Store => 0,
        Effect::Dst
        | Effect::Load64
        | Effect::Mov64
        | Effect::Add64
        | Effect::Sub64
        | Effect::Add64Reg
        | Effect::Sub64Reg => 1 << (insn.dst & 0xf),
        Effect::Call => ARGS,
        Effect::Atomic => match insn.imm {
            atomic::CMPXCHG => 1,
            i if i & atomic::FETCH != 0 => 1 << (insn.src & 0xf),
            _ => 0,
        },
    }
}

/// [`writes`] of a raw slot (`lddw` second slots, opcode 0, write nothing).
#[inline(always)]
fn slot_writes(opcode: u8, regs: u8, slot: &[u8; Insn::SIZE]) -> u16 {
    match EFFECT[opcode] {
        Effect::None | Effect::Jump | Effect::Store => 0,
        Effect::Dst
        | Effect::Load64
        | Effect::Mov64
        | Effect::Add64
        | Effect::Sub64
        | Effect::Add64Reg
        | Effect::Sub64Reg => 1 << (regs & 0xf),
        _ => {
            let imm = slot.get(4..8).and_then(|b| b.try_into().ok()).map_or(0, i32::from_le_bytes);
            writes(&Insn::new(opcode, regs & 0xf, regs >> 4, 0, imm))
        }
    }
}

// The register arrays below are r0..r10: their last element is the frame pointer.
const _: () = assert!(FRAME_POINTER == 10);

/// The tracker the lowering consults and updates as it walks the program in order.
pub(crate) struct Tracker<'f> {
    facts: &'f Facts<'f>,
    /// Per slot, the guesses call sites pass to the function starting there: two bits per
    /// argument register r1..r5 (see [`Pointer::hint_code`]), joined over the call sites
    /// lowered so far.
    hints: &'f mut [u64],
    regs: [Pointer; 11],
    /// Guesses for the 64 eight-byte slots of the running frame (`r10 - 512 + 8 * i`), two
    /// bits each as in the call-site hints: where a pointer was spilled, for its reload.
    frame_slots: u128,
    /// The registers that keep their state across the current function's blocks.
    invariant: u16,
    /// Whether the walk is still in the current function's entry block.
    in_entry_block: bool,
    /// The invariant registers' states (from the end of the entry block).
    kept: [Pointer; 11],
}

impl<'f> Tracker<'f> {
    /// `hints` is what [`Facts::of`] left of the scratch.
    pub(crate) fn new(facts: &'f Facts<'f>, hints: &'f mut [u64]) -> Tracker<'f> {
        Tracker {
            facts,
            hints,
            regs: [Pointer::Unknown; 11],
            frame_slots: 0,
            invariant: 0,
            in_entry_block: false,
            kept: [Pointer::Unknown; 11],
        }
    }

    /// Whether a backward jump lands on `pc`.
    #[inline(always)]
    pub(crate) fn is_loop_head(&self, pc: usize) -> bool {
        bit(self.facts.loop_heads, pc)
    }

    /// What `r` holds before the instruction at `pc` (call [`Tracker::enter`] first).
    #[inline(always)]
    pub(crate) fn get(&self, r: u8) -> Pointer {
        self.regs.get(r as usize).copied().unwrap_or(Pointer::Unknown)
    }

    /// Called before lowering the instruction at `pc`: starts a function or a block.
    #[inline(always)]
    pub(crate) fn enter(&mut self, program: &Program, pc: usize) {
        if bit(self.facts.boundaries, pc) {
            self.enter_boundary(program, pc);
        }
    }

    #[inline(never)]
    fn enter_boundary(&mut self, program: &Program, pc: usize) {
        if self.facts.is_function_start(pc) {
            self.regs = [Pointer::Unknown; 11];
            let hint = self.hint(pc);
            let [_, args @ .., _, _, _, _, _] = &mut self.regs;
            for (r, reg) in (1..).zip(args.iter_mut()) {
                *reg = Pointer::from_hint_code(hint >> (2 * r) & 3);
            }
            let [_, r1, .., r10] = &mut self.regs;
            if pc == 0 && !self.facts.entry_called {
                *r1 = Pointer::Context(0);
            }
            *r10 = Pointer::Frame(0);
            self.frame_slots = 0;
            self.invariant = self.invariant_after_entry_block(program, pc);
            self.in_entry_block = true;
        }
        if self.facts.is_target(pc) {
            self.end_entry_block();
            // Facts hold only in invariant registers; the others keep their guesses (from
            // the instruction before in program order, which may not even lead here).
            for (r, (reg, kept)) in self.regs.iter_mut().zip(self.kept).enumerate() {
                *reg = if self.invariant >> r & 1 != 0 { kept } else { reg.guess() };
            }
        }
    }

    /// The call-site hints recorded for the function starting at `pc`.
    fn hint(&self, pc: usize) -> u16 {
        self.hints.get(pc / 4).map_or(0, |w| (w >> (16 * (pc % 4))) as u16)
    }

    /// A local call to `target` with the current registers: joins their guesses into the
    /// callee's hints.
    #[inline(never)]
    fn record_call(&mut self, target: usize) {
        let old = self.hint(target);
        let mut new = 0u16;
        for (r, reg) in self.regs.iter().enumerate().take(6).skip(1) {
            let (was, now) = (old >> (2 * r) & 3, reg.hint_code());
            let joined = if was == 0 || was == now { now } else { 3 };
            new |= joined << (2 * r);
        }
        if let Some(w) = self.hints.get_mut(target / 4) {
            let shift = 16 * (target % 4);
            *w = *w & !(0xffff << shift) | (new as u64) << shift;
        }
    }

    /// Called after lowering `insn` at `pc`: applies its effect.
    #[inline(always)]
    pub(crate) fn after(&mut self, pc: usize, insn: &Insn) {
        let dst = (insn.dst & 0xf) as usize;
        let new = match EFFECT[insn.opcode] {
            Effect::None => return,
            Effect::Store => return self.spill(insn),
            Effect::Jump => return self.end_entry_block(),
            Effect::Dst => Pointer::Unknown,
            Effect::Load64 => self.reload(insn.src, insn.off),
            Effect::Mov64 if insn.off == 0 => self.get(insn.src),
            Effect::Mov64 => Pointer::Unknown,
            Effect::Add64 => offset(self.get(dst as u8), insn.imm as i64),
            Effect::Sub64 => offset(self.get(dst as u8), -(insn.imm as i64)),
            // A pointer plus a number: the pointer's region, as a guess; the base is the
            // exact fact if one side is (`r2 = index; r2 += r1`), else the destination.
            Effect::Add64Reg => match (self.get(dst as u8), self.get(insn.src)) {
                (d, s) if s.is_exact() && !d.is_exact() => s.guess(),
                (Pointer::Unknown, s) => s.guess(),
                (d, _) => d.guess(),
            },
            // A pointer minus a number stays in its region; a difference of pointers is not
            // a pointer.
            Effect::Sub64Reg => match self.get(insn.src) {
                Pointer::Unknown => self.get(dst as u8).guess(),
                _ => Pointer::Unknown,
            },
            Effect::Call | Effect::Atomic => {
                if insn.opcode == op::CALL && insn.src == pseudo::CALL_LOCAL {
                    self.record_call((pc as i64 + insn.imm as i64 + 1) as usize);
                }
                let written = writes(insn);
                for (r, reg) in self.regs.iter_mut().enumerate().take(6) {
                    if written >> r & 1 != 0 {
                        *reg = Pointer::Unknown;
                    }
                }
                if written >> 6 != 0 {
                    // An atomic fetch into r6..r9.
                    let r = (insn.src & 0xf) as usize;
                    if let Some(reg) = self.regs.get_mut(r) {
                        *reg = Pointer::Unknown;
                    }
                }
                return;
            }
        };
        if let Some(slot) = self.regs.get_mut(dst) {
            *slot = new;
        }
    }

    /// Where an access `[base + off]` starts in the running frame (bytes from its bottom),
    /// when `base` is the frame pointer plus a known offset and the access starts inside it.
    #[inline(always)]
    fn frame_offset(&self, base: u8, off: i16) -> Option<u32> {
        let Pointer::Frame(k) = self.get(base) else { return None };
        let at = k as i64 + off as i64 + FRAME_SIZE as i64;
        (0..FRAME_SIZE as i64).contains(&at).then_some(at as u32)
    }

    /// The guess recorded for the eight bytes at `[base + off]` (see [`Tracker::spill`]).
    #[inline(always)]
    fn reload(&self, base: u8, off: i16) -> Pointer {
        match self.frame_offset(base, off) {
            Some(at) if at % 8 == 0 => Pointer::from_hint_code((self.frame_slots >> (at / 4) & 3) as u16),
            _ => Pointer::Unknown,
        }
    }

    /// A store: an aligned eight-byte store of a register to the frame records the
    /// register's guess in its slot (a spill); any other store there forgets what the slots
    /// it touches held.
    #[inline(always)]
    fn spill(&mut self, insn: &Insn) {
        let Some(at) = self.frame_offset(insn.dst, insn.off) else { return };
        let code = match insn.opcode {
            0x7b if at % 8 == 0 => self.get(insn.src).hint_code(),
            _ => 0,
        } as u128;
        // The first slot, and the next one if an unaligned store reaches into it.
        for slot in [at / 8, at.div_ceil(8)].into_iter().filter(|&s| s < 64) {
            self.frame_slots &= !(3 << (2 * slot));
        }
        self.frame_slots |= code << (2 * (at / 8));
    }

    /// Leaving the entry block: the invariant registers keep what they hold now.
    #[inline(always)]
    fn end_entry_block(&mut self) {
        if self.in_entry_block {
            self.keep_invariant();
        }
    }

    #[inline(never)]
    fn keep_invariant(&mut self) {
        self.in_entry_block = false;
        for (r, (kept, reg)) in self.kept.iter_mut().zip(self.regs).enumerate() {
            *kept = if self.invariant >> r & 1 != 0 { reg } else { Pointer::Unknown };
        }
        let [.., r10] = &mut self.kept;
        *r10 = Pointer::Frame(0);
    }

    /// The registers not written after the entry block of the function starting at `start`:
    /// the entry block is walked (it ends at its first jump or at a jump target), the rest
    /// of the function is read from the per-chunk write masks, whole chunks at a time.
    fn invariant_after_entry_block(&self, program: &Program, start: usize) -> u16 {
        let len = program.len();
        let end = next_set_bit(self.facts.starts, start + 1).unwrap_or(len);
        let mut pc = start;
        if !self.facts.is_target(start) {
            while let Some(insn) = program.get(pc).filter(|_| pc < end) {
                pc += if insn.opcode == op::LDDW { 2 } else { 1 };
                if EFFECT[insn.opcode] == Effect::Jump || self.facts.is_target(pc) {
                    break;
                }
            }
        }
        // Registers written in [pc, end): single slots up to a chunk boundary, whole chunks,
        // then single slots again.
        let slots = program.bytes().as_chunks::<{ Insn::SIZE }>().0.iter();
        let single = |from: usize, to: usize| {
            slots.clone().take(to).skip(from).fold(0u16, |w, slot| w | slot_writes(slot[0], slot[1], slot))
        };
        let mut written = 0u16;
        let first_full = pc.next_multiple_of(64).min(end);
        written |= single(pc, first_full);
        let last_full = (end / 64 * 64).max(first_full);
        for chunk in first_full / 64..last_full / 64 {
            written |= self.facts.chunk_writes.get(chunk).copied().unwrap_or(u64::MAX) as u16;
        }
        written |= single(last_full, end);
        !written & 0x7ff
    }
}

/// `p` moved by `delta`: exact when it stays representable, else a guess.
fn offset(p: Pointer, delta: i64) -> Pointer {
    let moved = |k: i32| i32::try_from(k as i64 + delta).ok();
    match p {
        Pointer::Frame(k) => moved(k).map_or(Pointer::InStack, Pointer::Frame),
        Pointer::Context(k) => moved(k).map_or(Pointer::InContext, Pointer::Context),
        other => other,
    }
}

#[cfg(all(test, feature = "asm"))]
mod tests {
    use super::*;
    use crate::ebpf::asm;

    /// The provenance of `reg` before each instruction of `text`.
    fn trace(text: &str, reg: u8) -> std::vec::Vec<Pointer> {
        let bytes = asm::assemble_to_bytes(text).unwrap();
        let program = Program::new(&bytes, |_| true).unwrap();
        let mut words = std::vec![0u64; words_needed(program.len())];
        let (facts, hints) = Facts::of(&program, &mut words).unwrap();
        let mut tracker = Tracker::new(&facts, hints);
        program
            .iter()
            .map(|(pc, insn)| {
                tracker.enter(&program, pc);
                let p = tracker.get(reg);
                tracker.after(pc, &insn);
                p
            })
            .collect()
    }

    #[test]
    fn context_kept_in_an_invariant_register_across_blocks() {
        let text = "mov %r6, %r1\nmov %r2, 0\nl: ldxb %r0, [%r6+2]\nadd %r2, 1\njlt %r2, 4, l\nexit";
        use Pointer::*;
        assert_eq!(trace(text, 6), [Unknown, Context(0), Context(0), Context(0), Context(0), Context(0)]);
        // r1 is never written: the context everywhere.
        assert_eq!(trace(text, 1), [Context(0); 6]);
    }

    #[test]
    fn frame_offsets_are_tracked_in_a_block_and_lost_when_rewritten() {
        use Pointer::*;
        let text = "mov %r2, %r10\nadd %r2, -8\nsub %r2, 8\nstxdw [%r2], %r1\nmul %r2, 2\nexit";
        assert_eq!(trace(text, 2), [Unknown, Frame(0), Frame(-8), Frame(-16), Frame(-16), Unknown]);
        // A call clobbers r1..r5.
        let text = "mov %r1, %r10\ncall 1\nmov %r0, %r1\nexit";
        assert_eq!(trace(text, 1), [Context(0), Frame(0), Unknown, Unknown]);
    }

    #[test]
    fn a_register_written_after_the_entry_block_is_not_invariant() {
        use Pointer::*;
        let text = "mov %r6, %r1\nl: ldxb %r0, [%r6]\nmov %r6, %r0\njne %r0, 0, l\nexit";
        // At the loop head the fact is lost; what is left is a guess.
        assert_eq!(trace(text, 6), [Unknown, InContext, InContext, Unknown, Unknown]);
    }

    #[test]
    fn guesses_follow_pointer_arithmetic_loops_and_calls() {
        use Pointer::*;
        // A pointer plus a number is in the pointer's region; a difference of pointers is
        // no pointer.
        let text =
            "mov %r3, %r2\nadd %r3, %r1\nmov %r4, %r10\nadd %r4, %r2\nsub %r4, %r3\nmov %r5, %r3\nsub %r5, %r2\nexit";
        assert_eq!(
            trace(text, 3),
            [Unknown, Unknown, InContext, InContext, InContext, InContext, InContext, InContext]
        );
        assert_eq!(trace(text, 4)[3..6], [Frame(0), InStack, Unknown]);
        assert_eq!(trace(text, 5)[6..], [InContext, InContext]);
        // An offset too far for a fact leaves a guess.
        let text = "mov %r3, %r1\nlddw %r4, 0x7fffffff\nadd %r3, 0x7fffffff\nadd %r3, 0x7fffffff\nexit";
        assert_eq!(trace(text, 3)[3..], [Context(0x7fff_ffff), InContext]);
        // Arguments: the callee starts with the guesses its callers agree on (r1 the
        // context's, r2 a stack pointer from one call and a number from the other).
        let text = "mov %r6, %r1\nmov %r2, %r10\ncall local f\nmov %r2, 5\nmov %r1, %r6\ncall local f\nexit\n\
                    f: mov %r0, %r2\nexit";
        assert_eq!(trace(text, 1)[7], InContext);
        assert_eq!(trace(text, 2)[7], Unknown);
        let text = "mov %r2, %r10\ncall local f\nexit\nf: mov %r0, %r2\nexit";
        assert_eq!(trace(text, 2)[3], InStack);
        // Spilled to the frame and reloaded; a store over the slot forgets it.
        let text = "stxdw [%r10-16], %r1\nldxdw %r3, [%r10-16]\nstxb [%r10-12], %r0\nldxdw %r4, [%r10-16]\n\
                    ldxdw %r5, [%r10-8]\nexit";
        assert_eq!(trace(text, 3)[2], InContext);
        assert_eq!(trace(text, 4)[4], Unknown);
        assert_eq!(trace(text, 5)[5], Unknown);
    }

    /// The invariant registers by the definition: walk the whole function slot by slot.
    fn invariant_by_definition(program: &Program, facts: &Facts, start: usize) -> u16 {
        let mut written = 0u16;
        let mut in_entry = !facts.is_target(start);
        let mut pc = start;
        while let Some(insn) = program.get(pc) {
            if pc != start && facts.is_function_start(pc) {
                break;
            }
            if pc != start && facts.is_target(pc) {
                in_entry = false;
            }
            if !in_entry {
                written |= writes(&insn);
            }
            if in_entry && EFFECT[insn.opcode] == Effect::Jump {
                in_entry = false;
            }
            pc += if insn.opcode == op::LDDW { 2 } else { 1 };
        }
        !written & 0x7ff
    }

    #[test]
    fn chunked_invariants_match_the_definition() {
        // Random programs across several 64-slot chunks: straight-line register writes,
        // forward and backward jumps, local calls, lddw; every function start compared.
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut compared = 0;
        for _ in 0..300 {
            // Functions of random lengths, each ending in exit; jumps stay in their function,
            // calls go to function starts.
            let sizes: std::vec::Vec<usize> = (0..1 + next(4)).map(|_| 10 + next(150) as usize).collect();
            let starts: std::vec::Vec<usize> =
                sizes.iter().scan(0, |at, &n| Some(core::mem::replace(at, *at + n))).collect();
            let mut insns = std::vec::Vec::new();
            for (&start, &size) in starts.iter().zip(&sizes) {
                while insns.len() < start + size - 1 {
                    let pc = insns.len() as i64;
                    let reg = 1 + next(9) as u8;
                    let room = (start + size - 1) as i64 - pc;
                    match next(10) {
                        0..=3 => insns.push(Insn::new(0x07, reg, 0, 0, 1)),
                        4 => insns.push(Insn::new(0xbf, reg, next(10) as u8, 0, 0)),
                        5 if room >= 2 => {
                            insns.push(Insn::new(op::LDDW, reg, 0, 0, 7));
                            insns.push(Insn::default());
                        }
                        6 => {
                            // Anywhere in the function but the lddw second slots.
                            let target = start as i64 + next(size as u64 - 1) as i64;
                            let ok = insns.get(target as usize).is_none_or(|i: &Insn| i.opcode != 0)
                                && (target == 0 || insns.get(target as usize - 1).is_none_or(|i| i.opcode != op::LDDW));
                            if ok {
                                insns.push(Insn::new(0x15, reg, 0, (target - pc - 1) as i16, 0));
                            }
                        }
                        7 => {
                            let callee = starts[next(starts.len() as u64) as usize] as i64;
                            insns.push(Insn::new(op::CALL, 0, 1, 0, (callee - pc - 1) as i32));
                        }
                        8 => insns.push(Insn::new(0x85, 0, 0, 0, 1)),
                        _ => insns.push(Insn::new(0xb7, reg, 0, 0, 3)),
                    }
                }
                insns.push(Insn::new(op::EXIT, 0, 0, 0, 0));
            }
            let bytes: std::vec::Vec<u8> = insns.iter().flat_map(|i| i.encode()).collect();
            // Not every random program is valid (jumps into lddw, out of functions, ...).
            let Ok(program) = Program::new(&bytes, |_| true) else { continue };
            let mut words = std::vec![0u64; words_needed(program.len())];
            let (facts, hints) = Facts::of(&program, &mut words).unwrap();
            let tracker = Tracker::new(&facts, hints);
            for (pc, _) in program.iter().filter(|&(pc, _)| facts.is_function_start(pc)) {
                let expected = invariant_by_definition(&program, &facts, pc);
                assert_eq!(tracker.invariant_after_entry_block(&program, pc), expected, "function at {pc}");
                compared += 1;
            }
        }
        assert!(compared > 250, "enough valid programs ({compared})");
    }
}
