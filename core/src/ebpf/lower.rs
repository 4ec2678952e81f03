//! Lowering: every eBPF instruction becomes a short sequence of stencils, placed by the
//! copy-and-patch emitter in one pass.
//!
//! An opcode's lowering is looked up in [`RULES`], a table built at compile time; the
//! stencil for a register is `family.first + register`. Binary operations with a register
//! operand stage it in `tmp` (`tmp_from_reg`) and run a stencil specialised for the
//! destination, so each operation needs one stencil per register rather than one per pair;
//! constant operands are folded into `_imm` stencils. Back edges use the `_back` form of
//! their jump, which charges fuel first ([`super::fuel`]).
//!
//! Slow paths live out of line, after the last instruction: a checked load or store whose
//! fast check does not pass (a value area of a map, an address outside its region, or not
//! in the region the lowering expected) branches to a stub holding the fully checked
//! stencil (the region table's full check, then the access or the trap) and a jump back; a
//! back edge out of fuel branches to a stub that reports the trap.

use tessera_jit::{Emitter, Family, Holes, Isa, Label, PairFamily, Patcher, StencilId};
use tessera_stencils::abi::FRAME_SIZE;
use tessera_stencils::ids;

use super::error::CompileError;
use super::fuel;
use super::helpers::Helpers;
use super::insn::{Insn, atomic, mem, op, pseudo};
use super::program::Program;
use super::provenance::{Facts, Pointer, Tracker};
use super::tables::ByteTable;
use tessera_stencils::abi::{MAP_HANDLE, region};

/// The label of instruction `pc`.
#[inline]
pub(crate) fn insn_label(pc: usize) -> Label {
    Label(pc as u32)
}

/// The label of instruction `pc`'s out-of-line stub in a program of `len` slots.
#[inline]
fn stub_label(len: usize, pc: usize) -> Label {
    Label((len + pc) as u32)
}

/// Labels the lowering of `program` binds: one per slot and one per slot's stub.
pub(crate) fn labels_needed(program: &Program) -> usize {
    labels_for(program.len())
}

/// [`labels_needed`] for a program of `len` slots.
pub(crate) const fn labels_for(len: usize) -> usize {
    2 * len
}

/// Forward branches the lowering of `program` can leave for the emitter to fix up: the
/// entry's, and at most a jump and a cold branch per instruction.
pub(crate) fn fixups_needed(program: &Program) -> usize {
    fixups_for(program.len())
}

/// [`fixups_needed`] for a program of `len` slots.
pub(crate) const fn fixups_for(len: usize) -> usize {
    2 * len + 1
}

/// Scratch words: the provenance analysis's, then one per possible out-of-line stub.
pub(crate) fn words_needed(program: &Program) -> usize {
    words_for(program.len())
}

/// [`words_needed`] for a program of `len` slots.
pub(crate) const fn words_for(len: usize) -> usize {
    super::provenance::words_needed(len) + len
}

/// What an out-of-line stub holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum StubKind {
    /// The fully checked access (`stencil`, with the instruction's `off`), then a jump back
    /// to the next instruction.
    SlowAccess = 0,
    /// The memory trap for a context-based access (`stencil`, with `off`).
    MemoryTrap = 1,
    /// The fuel trap of a back edge or a local call.
    FuelTrap = 2,
}

/// The stubs the hot pass asked for, in order, packed one per word of caller scratch:
/// `pc | stencil << 32 | kind << 48`.
struct Stubs<'w> {
    words: &'w mut [u64],
    count: usize,
}

impl Stubs<'_> {
    #[inline(always)]
    fn push(&mut self, pc: usize, kind: StubKind, stencil: StencilId) -> Result<(), CompileError> {
        let slot = self.words.get_mut(self.count).ok_or(CompileError::Unlowerable { pc: pc as u32 })?;
        *slot = pc as u64 | (stencil.0 as u64) << 32 | (kind as u64) << 48;
        self.count += 1;
        Ok(())
    }
}

/// What sees each placed stencil (for listings); `()` sees nothing and costs nothing.
pub trait Observer {
    /// Stencil `id` was placed at `offset`, `len` bytes, for instruction `pc` (`None` for
    /// the entry stencil); `cold` for out-of-line stubs.
    fn placed(&mut self, pc: Option<usize>, cold: bool, id: StencilId, offset: usize, len: usize);
}

impl Observer for () {
    #[inline(always)]
    fn placed(&mut self, _: Option<usize>, _: bool, _: StencilId, _: usize, _: usize) {}
}

/// How an opcode lowers.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// Not an instruction the validator accepts.
    Invalid,
    /// `dst = op(dst, src)`: `pair[dst, src]` where the operation has register-pair
    /// stencils, else stage `src`, then `family[dst]`.
    AluReg(Family, Option<PairFamily>),
    /// `dst = op(dst, imm)`, folded.
    AluImm(Family),
    /// `dst = op(dst, imm)` where the operation has no immediate form: stage the constant.
    AluImmStaged(Family),
    /// `dst -= imm` as `dst += -imm`, which has a folded form on every ISA (x86-64 cannot
    /// fold a negated relocated constant into `sub`). For 64 bits `-imm` must still be a
    /// sign-extended 32-bit value, which `i32::MIN` negated is not: that one is staged.
    SubImm {
        wide: bool,
    },
    /// Division and modulo: the signed family when `off == 1`.
    DivMod {
        from_reg: bool,
        unsigned: Family,
        signed: Family,
    },
    /// `mov dst, imm` (`wide`: 64-bit, sign-extended; else 32-bit, zero-extended).
    MovImm {
        wide: bool,
    },
    /// `mov dst, src`, and the sign-extending `movsx` forms chosen by `off`.
    MovReg {
        wide: bool,
    },
    Neg(Family),
    /// Byte swaps and truncations (`to_be`: the swapping forms).
    End {
        to_be: bool,
    },
    Lddw,
    /// Loads: checked (fast check, `slow` stub), expected in the stack or the context memory
    /// (the same stub), context-based and frame-relative families.
    Load {
        checked: Family,
        slow: Family,
        in_stack: Family,
        in_context: Family,
        context: Family,
        frame: Family,
        size: i64,
    },
    /// Stores of a register (`from_reg`) or a constant. The context and frame forms name
    /// the stored register, or take the constant as operand 1.
    Store {
        from_reg: bool,
        checked: Family,
        slow: Family,
        in_stack: Family,
        in_context: Family,
        context: Family,
        context_imm: StencilId,
        frame: Family,
        frame_imm: StencilId,
        size: i64,
    },
    Atomic {
        wide: bool,
    },
    /// Conditional jumps: forward and backward families, by register or constant.
    Jump {
        from_reg: bool,
        forward: Family,
        backward: Family,
    },
    Ja,
    Ja32,
    Call,
    Callx,
    Exit,
}

/// A binary ALU operation's families: 64-bit, 32-bit, the immediate forms (64, 32), and
/// the 64-bit register-pair form.
type AluFamilies = (Family, Family, Option<(Family, Family)>, Option<PairFamily>);

const fn alu(code: u8) -> Option<AluFamilies> {
    let (f64, f32, imm) = match code {
        0x00 => (ids::ADD64, ids::ADD32, Some((ids::ADD64_IMM, ids::ADD32_IMM))),
        // `sub dst, imm` lowers to an addition (`Rule::SubImm`).
        0x10 => (ids::SUB64, ids::SUB32, None),
        0x20 => (ids::MUL64, ids::MUL32, Some((ids::MUL64_IMM, ids::MUL32_IMM))),
        0x40 => (ids::OR64, ids::OR32, Some((ids::OR64_IMM, ids::OR32_IMM))),
        0x50 => (ids::AND64, ids::AND32, Some((ids::AND64_IMM, ids::AND32_IMM))),
        0x60 => (ids::LSH64, ids::LSH32, Some((ids::LSH64_IMM, ids::LSH32_IMM))),
        0x70 => (ids::RSH64, ids::RSH32, Some((ids::RSH64_IMM, ids::RSH32_IMM))),
        0xa0 => (ids::XOR64, ids::XOR32, Some((ids::XOR64_IMM, ids::XOR32_IMM))),
        0xc0 => (ids::ARSH64, ids::ARSH32, Some((ids::ARSH64_IMM, ids::ARSH32_IMM))),
        _ => return None,
    };
    let pair = match code {
        0x00 => Some(ids::ADD64_RR),
        0x40 => Some(ids::OR64_RR),
        0xa0 => Some(ids::XOR64_RR),
        _ => None,
    };
    Some((f64, f32, imm, pair))
}

/// (forward, forward immediate, backward, backward immediate) for a condition code, 64 and
/// 32 bit.
const fn cond(code: u8, wide: bool) -> Option<[Family; 4]> {
    macro_rules! pick {
        ($a:ident, $ai:ident, $b:ident, $bi:ident, $c:ident, $ci:ident, $d:ident, $di:ident) => {
            if wide { [ids::$a, ids::$ai, ids::$b, ids::$bi] } else { [ids::$c, ids::$ci, ids::$d, ids::$di] }
        };
    }
    Some(match code {
        0x10 => pick!(JEQ64, JEQ64_IMM, JEQ64_BACK, JEQ64_IMM_BACK, JEQ32, JEQ32_IMM, JEQ32_BACK, JEQ32_IMM_BACK),
        0x20 => pick!(JGT64, JGT64_IMM, JGT64_BACK, JGT64_IMM_BACK, JGT32, JGT32_IMM, JGT32_BACK, JGT32_IMM_BACK),
        0x30 => pick!(JGE64, JGE64_IMM, JGE64_BACK, JGE64_IMM_BACK, JGE32, JGE32_IMM, JGE32_BACK, JGE32_IMM_BACK),
        0x40 => {
            pick!(JSET64, JSET64_IMM, JSET64_BACK, JSET64_IMM_BACK, JSET32, JSET32_IMM, JSET32_BACK, JSET32_IMM_BACK)
        }
        0x50 => pick!(JNE64, JNE64_IMM, JNE64_BACK, JNE64_IMM_BACK, JNE32, JNE32_IMM, JNE32_BACK, JNE32_IMM_BACK),
        0x60 => {
            pick!(JSGT64, JSGT64_IMM, JSGT64_BACK, JSGT64_IMM_BACK, JSGT32, JSGT32_IMM, JSGT32_BACK, JSGT32_IMM_BACK)
        }
        0x70 => {
            pick!(JSGE64, JSGE64_IMM, JSGE64_BACK, JSGE64_IMM_BACK, JSGE32, JSGE32_IMM, JSGE32_BACK, JSGE32_IMM_BACK)
        }
        0xa0 => pick!(JLT64, JLT64_IMM, JLT64_BACK, JLT64_IMM_BACK, JLT32, JLT32_IMM, JLT32_BACK, JLT32_IMM_BACK),
        0xb0 => pick!(JLE64, JLE64_IMM, JLE64_BACK, JLE64_IMM_BACK, JLE32, JLE32_IMM, JLE32_BACK, JLE32_IMM_BACK),
        0xc0 => {
            pick!(JSLT64, JSLT64_IMM, JSLT64_BACK, JSLT64_IMM_BACK, JSLT32, JSLT32_IMM, JSLT32_BACK, JSLT32_IMM_BACK)
        }
        0xd0 => {
            pick!(JSLE64, JSLE64_IMM, JSLE64_BACK, JSLE64_IMM_BACK, JSLE32, JSLE32_IMM, JSLE32_BACK, JSLE32_IMM_BACK)
        }
        _ => return None,
    })
}

/// Load families by size code (`mem::W/H/B/DW`).
const fn load(size_code: u8, signed: bool) -> Rule {
    macro_rules! families {
        ($checked:ident, $slow:ident, $in_stack:ident, $in_context:ident, $context:ident, $frame:ident, $size:expr) => {
            Rule::Load {
                checked: ids::$checked,
                slow: ids::$slow,
                in_stack: ids::$in_stack,
                in_context: ids::$in_context,
                context: ids::$context,
                frame: ids::$frame,
                size: $size,
            }
        };
    }
    match (size_code, signed) {
        (mem::B, false) => families!(LDX8, LDX8_SLOW, LDX8_IN_STACK, LDX8_IN_CTX, LDX8_CTX, LDX8_FP, 1),
        (mem::H, false) => families!(LDX16, LDX16_SLOW, LDX16_IN_STACK, LDX16_IN_CTX, LDX16_CTX, LDX16_FP, 2),
        (mem::W, false) => families!(LDX32, LDX32_SLOW, LDX32_IN_STACK, LDX32_IN_CTX, LDX32_CTX, LDX32_FP, 4),
        (mem::B, true) => families!(LDXS8, LDXS8_SLOW, LDXS8_IN_STACK, LDXS8_IN_CTX, LDXS8_CTX, LDXS8_FP, 1),
        (mem::H, true) => families!(LDXS16, LDXS16_SLOW, LDXS16_IN_STACK, LDXS16_IN_CTX, LDXS16_CTX, LDXS16_FP, 2),
        (mem::W, true) => families!(LDXS32, LDXS32_SLOW, LDXS32_IN_STACK, LDXS32_IN_CTX, LDXS32_CTX, LDXS32_FP, 4),
        _ => families!(LDX64, LDX64_SLOW, LDX64_IN_STACK, LDX64_IN_CTX, LDX64_CTX, LDX64_FP, 8),
    }
}

const fn store(size_code: u8, from_reg: bool) -> Rule {
    macro_rules! families {
        ($checked:ident, $slow:ident, $in_stack:ident, $in_context:ident, $context:ident, $context_imm:ident,
            $frame:ident, $frame_imm:ident, $size:expr) => {
            Rule::Store {
                from_reg,
                checked: ids::$checked,
                slow: ids::$slow,
                in_stack: ids::$in_stack,
                in_context: ids::$in_context,
                context: ids::$context,
                context_imm: ids::$context_imm,
                frame: ids::$frame,
                frame_imm: ids::$frame_imm,
                size: $size,
            }
        };
    }
    match size_code {
        mem::B => families!(STX8, STX8_SLOW, STX8_IN_STACK, STX8_IN_CTX, STX8_CTX, ST8_CTX_IMM, STX8_FP, ST8_FP_IMM, 1),
        mem::H => {
            families!(
                STX16,
                STX16_SLOW,
                STX16_IN_STACK,
                STX16_IN_CTX,
                STX16_CTX,
                ST16_CTX_IMM,
                STX16_FP,
                ST16_FP_IMM,
                2
            )
        }
        mem::W => {
            families!(
                STX32,
                STX32_SLOW,
                STX32_IN_STACK,
                STX32_IN_CTX,
                STX32_CTX,
                ST32_CTX_IMM,
                STX32_FP,
                ST32_FP_IMM,
                4
            )
        }
        _ => families!(
            STX64,
            STX64_SLOW,
            STX64_IN_STACK,
            STX64_IN_CTX,
            STX64_CTX,
            ST64_CTX_IMM,
            STX64_FP,
            ST64_FP_IMM,
            8
        ),
    }
}

const fn rule(opcode: u8) -> Rule {
    let class = opcode & 0x07;
    let code = opcode & 0xf0;
    let from_reg = opcode & 0x08 != 0;
    match class {
        0x04 | 0x07 => {
            let wide = class == 0x07;
            if code == 0x10 && !from_reg {
                return Rule::SubImm { wide };
            }
            if let Some((f64, f32, imm, pair)) = alu(code) {
                let family = if wide { f64 } else { f32 };
                return match (from_reg, imm) {
                    (true, _) => Rule::AluReg(family, if wide { pair } else { None }),
                    (false, Some((i64_, i32_))) => Rule::AluImm(if wide { i64_ } else { i32_ }),
                    (false, None) => Rule::AluImmStaged(family),
                };
            }
            match code {
                0x30 => Rule::DivMod {
                    from_reg,
                    unsigned: if wide { ids::DIV64 } else { ids::DIV32 },
                    signed: if wide { ids::SDIV64 } else { ids::SDIV32 },
                },
                0x90 => Rule::DivMod {
                    from_reg,
                    unsigned: if wide { ids::MOD64 } else { ids::MOD32 },
                    signed: if wide { ids::SMOD64 } else { ids::SMOD32 },
                },
                0xb0 if from_reg => Rule::MovReg { wide },
                0xb0 => Rule::MovImm { wide },
                0x80 if !from_reg => Rule::Neg(if wide { ids::NEG64 } else { ids::NEG32 }),
                // END: class ALU with the source bit = to big-endian; ALU64 = bswap.
                0xd0 => Rule::End { to_be: from_reg || wide },
                _ => Rule::Invalid,
            }
        }
        0x05 | 0x06 => {
            let wide = class == 0x05;
            match opcode {
                op::EXIT => return Rule::Exit,
                op::CALL => return Rule::Call,
                op::CALLX => return Rule::Callx,
                op::JA => return Rule::Ja,
                op::JA32 => return Rule::Ja32,
                _ => {}
            }
            match cond(code, wide) {
                Some([fwd, fwd_imm, back, back_imm]) if from_reg => {
                    let _ = (fwd_imm, back_imm);
                    Rule::Jump { from_reg, forward: fwd, backward: back }
                }
                Some([_, fwd_imm, _, back_imm]) => Rule::Jump { from_reg, forward: fwd_imm, backward: back_imm },
                None => Rule::Invalid,
            }
        }
        0x01 => match opcode & 0xe0 {
            mem::MEM | mem::MEMSX => load(opcode & 0x18, opcode & 0xe0 == mem::MEMSX),
            _ => Rule::Invalid,
        },
        0x02 | 0x03 => match opcode & 0xe0 {
            mem::MEM => store(opcode & 0x18, class == 0x03),
            mem::ATOMIC if class == 0x03 => Rule::Atomic { wide: opcode & 0x18 == mem::DW },
            _ => Rule::Invalid,
        },
        0x00 if opcode == op::LDDW => Rule::Lddw,
        _ => Rule::Invalid,
    }
}

/// How every opcode lowers, built at compile time (where an index out of bounds would fail
/// the build, not a run).
#[allow(clippy::indexing_slicing)]
static RULES: ByteTable<Rule> = ByteTable({
    let mut rules = [Rule::Invalid; 256];
    let mut opcode = 0;
    while opcode < 256 {
        rules[opcode] = rule(opcode as u8);
        opcode += 1;
    }
    rules
});

/// Places one instruction's stencils; operand 2 of each names the instruction (for trap
/// reports).
struct Ops<'o, 'e, P: Patcher, O: Observer> {
    emitter: &'o mut Emitter<'e, P>,
    observer: &'o mut O,
    pc: usize,
    cold: bool,
}

impl<P: Patcher, O: Observer> Ops<'_, '_, P, O> {
    #[inline(always)]
    fn push(&mut self, id: StencilId, holes: Holes) -> Result<(), CompileError> {
        let at = self.emitter.offset();
        self.emitter.place(id, &holes.operand(2, self.pc as u32))?;
        self.observer.placed(Some(self.pc), self.cold, id, at, self.emitter.offset() - at);
        Ok(())
    }

    /// The variant of `family` for register `r`. Validation guarantees the register exists
    /// for the family; a miss is a validator bug, reported, not hidden.
    #[inline(always)]
    fn variant(&self, family: Family, r: u8) -> Result<StencilId, CompileError> {
        family.variant(r).ok_or(CompileError::Unlowerable { pc: self.pc as u32 })
    }

    /// The variant of `family` for registers `d` and `s` (as [`Ops::variant`]).
    #[inline(always)]
    fn pair(&self, family: PairFamily, d: u8, s: u8) -> Result<StencilId, CompileError> {
        family.variant(d, s).ok_or(CompileError::Unlowerable { pc: self.pc as u32 })
    }

    #[inline(always)]
    fn stage_reg(&mut self, r: u8) -> Result<(), CompileError> {
        let id = self.variant(ids::TMP_FROM_REG, r)?;
        self.push(id, Holes::NONE)
    }

    #[inline(always)]
    fn stage_imm(&mut self, imm: i32) -> Result<(), CompileError> {
        self.push(ids::TMP_FROM_IMM, Holes::NONE.operand(0, imm as u32))
    }
}

/// How a load or store reaches memory, from what the lowering knows of its base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// `r10 + off` of the running frame, proved inside `[r10 - FRAME_SIZE, r10)`, which the
    /// runtime keeps inside the stack: no run-time check. (The interpreter checks it anyway
    /// and, by the same invariant, never faults on it.)
    Frame(i32),
    /// The context pointer plus this offset (non-negative): only the context's limit is
    /// checked; a failure reports `base + off`, as the interpreter does.
    Context(i32),
    /// Probably in the stack or the context memory (a guess): that region's check first,
    /// the region table's full check in the stub.
    InStack,
    InContext,
    /// Anything else: the region table's checks.
    Checked,
}

/// The access an instruction with base register `base` and offset `off` makes.
#[inline(always)]
fn access(tracker: &Tracker, base: u8, off: i16, size: i64) -> Access {
    match tracker.get(base) {
        Pointer::Frame(k) => {
            let at = k as i64 + off as i64;
            if at >= -(FRAME_SIZE as i64) && at + size <= 0 { Access::Frame(at as i32) } else { Access::InStack }
        }
        Pointer::Context(k) => match i32::try_from(k as i64 + off as i64) {
            Ok(at) if (0..i32::MAX - 8).contains(&at) => Access::Context(at),
            _ => Access::InContext,
        },
        Pointer::InStack => Access::InStack,
        Pointer::InContext => Access::InContext,
        Pointer::Unknown => Access::Checked,
    }
}

/// The slot a jump at `pc` with displacement `delta` lands on (validated to be in range).
#[inline(always)]
fn jump_target(pc: usize, delta: i64) -> usize {
    (pc as i64 + delta + 1) as usize
}

/// Lowers `program` through `emitter`: the entry stencil, every instruction, then the
/// out-of-line stubs. `words` is scratch for the provenance analysis
/// ([`super::provenance::words_needed`]).
pub(crate) fn lower<P: Patcher, O: Observer>(
    program: &Program,
    helpers: &Helpers,
    emitter: &mut Emitter<'_, P>,
    words: &mut [u64],
    observer: &mut O,
) -> Result<(), CompileError> {
    let len = program.len();
    let too_small =
        CompileError::ScratchTooSmall { labels: labels_needed(program) as u32, fixups: fixups_needed(program) as u32 };
    let (fact_words, stub_words) = words.split_at_mut_checked(super::provenance::words_needed(len)).ok_or(too_small)?;
    let (facts, hints) = Facts::of(program, fact_words).ok_or(too_small)?;
    let at = emitter.offset();
    emitter.place(ids::ENTRY, &Holes::NONE.jump(insn_label(0)))?;
    observer.placed(None, false, ids::ENTRY, at, emitter.offset() - at);
    let mut tracker = Tracker::new(&facts, hints);
    let mut stubs = Stubs { words: stub_words, count: 0 };
    for (pc, insn) in program.iter() {
        if P::ISA == Isa::X86_64 && tracker.is_loop_head(pc) {
            // Loops start on a 16-byte boundary: their speed then does not depend on where the
            // code before them happened to end (up to 15 bytes of NOPs, run once on entry).
            let mut pad = (emitter.address().wrapping_neg() % LOOP_ALIGN) as u8;
            let out = &mut Ops { emitter, observer, pc, cold: false };
            while pad > 0 {
                let n = pad.min(15);
                out.push(out.variant(ids::PAD, n)?, Holes::NONE)?;
                pad -= n;
            }
        }
        emitter.bind(insn_label(pc))?;
        tracker.enter(program, pc);
        let out = &mut Ops { emitter, observer, pc, cold: false };
        lower_insn(program, helpers, len, pc, insn, &tracker, &mut stubs, out)?;
        tracker.after(pc, &insn);
    }
    // The stubs follow the hot code, in the order the hot pass asked for them.
    for &stub in stubs.words.get(..stubs.count).unwrap_or_default() {
        let pc = stub as u32 as usize;
        let stencil = StencilId((stub >> 32) as u16);
        let out = &mut Ops { emitter, observer, pc, cold: true };
        out.emitter.bind(stub_label(len, pc))?;
        let off = Holes::NONE.operand(0, program.insn(pc).off as i32 as u32);
        match (stub >> 48) as u8 {
            k if k == StubKind::SlowAccess as u8 => {
                // `tmp` still holds the base the hot stencil staged.
                out.push(stencil, off)?;
                out.push(ids::JA, Holes::NONE.jump(insn_label(pc + 1)))?;
            }
            k if k == StubKind::MemoryTrap as u8 => out.push(stencil, off)?,
            _ => out.push(ids::TRAP_FUEL, Holes::NONE)?,
        }
    }
    Ok(())
}

/// The alignment of loop heads in x86-64 code.
const LOOP_ALIGN: u64 = 16;

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lower_insn<P: Patcher, O: Observer>(
    program: &Program,
    helpers: &Helpers,
    len: usize,
    pc: usize,
    insn: Insn,
    tracker: &Tracker,
    stubs: &mut Stubs,
    out: &mut Ops<'_, '_, P, O>,
) -> Result<(), CompileError> {
    let (dst, src, imm) = (insn.dst, insn.src, insn.imm);
    let stub = stub_label(len, pc);
    match RULES[insn.opcode] {
        Rule::Invalid => return Err(CompileError::Unlowerable { pc: pc as u32 }),
        Rule::AluReg(_, Some(pair)) => out.push(out.pair(pair, dst, src)?, Holes::NONE)?,
        Rule::AluReg(family, None) => {
            out.stage_reg(src)?;
            out.push(out.variant(family, dst)?, Holes::NONE)?;
        }
        Rule::AluImm(family) => out.push(out.variant(family, dst)?, Holes::NONE.operand(0, imm as u32))?,
        Rule::AluImmStaged(family) => {
            out.stage_imm(imm)?;
            out.push(out.variant(family, dst)?, Holes::NONE)?;
        }
        Rule::SubImm { wide: true } if imm == i32::MIN => {
            out.stage_imm(imm)?;
            out.push(out.variant(ids::SUB64, dst)?, Holes::NONE)?;
        }
        Rule::SubImm { wide } => {
            let family = if wide { ids::ADD64_IMM } else { ids::ADD32_IMM };
            // 32 bits: `x - imm == x + (-imm)` modulo 2^32 for every imm, `i32::MIN` included.
            out.push(out.variant(family, dst)?, Holes::NONE.operand(0, imm.wrapping_neg() as u32))?;
        }
        Rule::DivMod { from_reg, unsigned, signed } => {
            if from_reg {
                out.stage_reg(src)?;
            } else {
                out.stage_imm(imm)?;
            }
            let family = if insn.off == 1 { signed } else { unsigned };
            out.push(out.variant(family, dst)?, Holes::NONE)?;
        }
        // A 64-bit move, or a 32-bit one whose zero extension is the sign extension.
        Rule::MovImm { wide } if wide || imm >= 0 => {
            out.push(out.variant(ids::MOV_IMM, dst)?, Holes::NONE.operand(0, imm as u32))?
        }
        Rule::MovImm { .. } => {
            out.stage_imm(imm)?;
            out.push(out.variant(ids::MOV32, dst)?, Holes::NONE)?;
        }
        Rule::MovReg { wide: true } if insn.off == 0 => out.push(out.pair(ids::MOV64_RR, dst, src)?, Holes::NONE)?,
        Rule::MovReg { wide } => {
            out.stage_reg(src)?;
            let family = match (wide, insn.off) {
                (true, 8) => ids::MOVSX64_8,
                (true, 16) => ids::MOVSX64_16,
                (true, 32) => ids::MOVSX64_32,
                (true, _) => ids::MOV64,
                (false, 8) => ids::MOVSX32_8,
                (false, 16) => ids::MOVSX32_16,
                (false, _) => ids::MOV32,
            };
            out.push(out.variant(family, dst)?, Holes::NONE)?;
        }
        Rule::Neg(family) => out.push(out.variant(family, dst)?, Holes::NONE)?,
        Rule::End { to_be } => {
            let family = match (to_be, imm) {
                (false, 16) => Some(ids::ZEXT16),
                (false, 32) => Some(ids::ZEXT32),
                // le64 on a little-endian machine: nothing to do.
                (false, _) => None,
                (true, 16) => Some(ids::BSWAP16),
                (true, 32) => Some(ids::BSWAP32),
                (true, _) => Some(ids::BSWAP64),
            };
            if let Some(family) = family {
                out.push(out.variant(family, dst)?, Holes::NONE)?;
            }
        }
        Rule::Lddw => {
            // Pseudo loads of maps (validated against the program's maps): a handle, or the
            // address of a map value plus an offset (see `tessera_stencils::abi`).
            let second = program.insn(pc + 1).imm as u32;
            let (lo, hi) = match src {
                pseudo::LDDW_MAP_FD => (imm as u32, (MAP_HANDLE >> 32) as u32),
                pseudo::LDDW_MAP_VALUE => (second, (region::FIRST_MAP + imm as u32 as u64) as u32),
                _ => (imm as u32, second),
            };
            out.push(out.variant(ids::LDDW, dst)?, Holes::NONE.operand(0, lo).operand(1, hi))?;
        }
        Rule::Load { checked, slow, in_stack, in_context, context, frame, size } => {
            let checked = match access(tracker, src, insn.off, size) {
                Access::Frame(at) => return out.push(out.variant(frame, dst)?, Holes::NONE.operand(0, at as u32)),
                Access::Context(at) => {
                    out.push(out.variant(context, dst)?, Holes::NONE.operand(0, at as u32).cold(stub))?;
                    return stubs.push(pc, StubKind::MemoryTrap, out.variant(ids::TRAP_MEMORY, src)?);
                }
                Access::InStack => in_stack,
                Access::InContext => in_context,
                Access::Checked => checked,
            };
            out.stage_reg(src)?;
            out.push(out.variant(checked, dst)?, Holes::NONE.operand(0, insn.off as i32 as u32).cold(stub))?;
            stubs.push(pc, StubKind::SlowAccess, out.variant(slow, dst)?)?;
        }
        Rule::Store { from_reg, checked, slow, in_stack, in_context, context, context_imm, frame, frame_imm, size } => {
            let checked = match access(tracker, dst, insn.off, size) {
                Access::Frame(at) => {
                    let holes = Holes::NONE.operand(0, at as u32);
                    return match from_reg {
                        true => out.push(out.variant(frame, src)?, holes),
                        false => out.push(frame_imm, holes.operand(1, imm as u32)),
                    };
                }
                Access::Context(at) => {
                    let holes = Holes::NONE.operand(0, at as u32).cold(stub);
                    match from_reg {
                        true => out.push(out.variant(context, src)?, holes)?,
                        false => out.push(context_imm, holes.operand(1, imm as u32))?,
                    }
                    return stubs.push(pc, StubKind::MemoryTrap, out.variant(ids::TRAP_MEMORY, dst)?);
                }
                Access::InStack => in_stack,
                Access::InContext => in_context,
                Access::Checked => checked,
            };
            if from_reg {
                out.stage_reg(src)?;
            } else {
                out.stage_imm(imm)?;
            }
            let holes = Holes::NONE.operand(0, insn.off as i32 as u32).cold(stub);
            out.push(out.variant(checked, dst)?, holes)?;
            stubs.push(pc, StubKind::SlowAccess, out.variant(slow, dst)?)?;
        }
        Rule::Atomic { wide } => {
            out.stage_reg(src)?;
            let family = match (imm & !atomic::FETCH, wide) {
                (atomic::ADD, true) => ids::ATOMIC64_ADD,
                (atomic::ADD, false) => ids::ATOMIC32_ADD,
                (atomic::OR, true) => ids::ATOMIC64_OR,
                (atomic::OR, false) => ids::ATOMIC32_OR,
                (atomic::AND, true) => ids::ATOMIC64_AND,
                (atomic::AND, false) => ids::ATOMIC32_AND,
                (atomic::XOR, true) => ids::ATOMIC64_XOR,
                (atomic::XOR, false) => ids::ATOMIC32_XOR,
                (0xe0, true) => ids::ATOMIC64_XCHG,
                (0xe0, false) => ids::ATOMIC32_XCHG,
                (0xf0, true) => ids::ATOMIC64_CMPXCHG,
                (0xf0, false) => ids::ATOMIC32_CMPXCHG,
                _ => return Err(CompileError::Unlowerable { pc: pc as u32 }),
            };
            out.push(out.variant(family, dst)?, Holes::NONE.operand(0, insn.off as i32 as u32))?;
            // Fetch forms (and xchg) return the old value in `src`; cmpxchg writes r0 itself.
            if imm & atomic::FETCH != 0 && imm != atomic::CMPXCHG {
                out.push(out.variant(ids::MOV64, src)?, Holes::NONE)?;
            }
        }
        Rule::Jump { from_reg, forward, backward } => {
            let target = jump_target(pc, insn.off as i64);
            if from_reg {
                out.stage_reg(src)?;
            }
            let holes = Holes::NONE.operand(0, imm as u32).jump(insn_label(target));
            match fuel::back_edge_charge(pc, target) {
                Some(charge) => {
                    out.push(out.variant(backward, dst)?, holes.operand(1, charge as u32).cold(stub))?;
                    stubs.push(pc, StubKind::FuelTrap, ids::TRAP_FUEL)?;
                }
                None => out.push(out.variant(forward, dst)?, holes)?,
            }
        }
        Rule::Ja | Rule::Ja32 => {
            let delta = if insn.opcode == op::JA32 { imm as i64 } else { insn.off as i64 };
            let target = jump_target(pc, delta);
            let holes = Holes::NONE.jump(insn_label(target));
            match fuel::back_edge_charge(pc, target) {
                Some(charge) => {
                    out.push(ids::JA_BACK, holes.operand(1, charge as u32).cold(stub))?;
                    stubs.push(pc, StubKind::FuelTrap, ids::TRAP_FUEL)?;
                }
                // A jump to the next instruction is a no-op.
                None if target == pc + 1 => {}
                None => out.push(ids::JA, holes)?,
            }
        }
        Rule::Call if src == pseudo::CALL_LOCAL => {
            let target = jump_target(pc, imm as i64);
            let charge = fuel::call_charge(len, target);
            out.push(ids::CALL_LOCAL, Holes::NONE.operand(1, charge as u32).jump(insn_label(target)).cold(stub))?;
            stubs.push(pc, StubKind::FuelTrap, ids::TRAP_FUEL)?;
        }
        Rule::Call => {
            // Validation accepted the id, so the table has it.
            let index = helpers.position(imm as u32 as u64).ok_or(CompileError::Unlowerable { pc: pc as u32 })?;
            out.push(ids::CALL_HELPER, Holes::NONE.operand(0, index as u32))?
        }
        Rule::Callx => {
            out.stage_reg(dst)?;
            out.push(ids::CALLX, Holes::NONE)?;
        }
        Rule::Exit => out.push(ids::EXIT, Holes::NONE)?,
    }
    Ok(())
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn every_opcode_the_validator_accepts_has_a_rule() {
        // One instruction per opcode, with operands every rule accepts; the validator
        // decides what is valid, the table must cover it.
        let mut accepted = 0;
        for opcode in 0..=255u8 {
            for imm in [0, 16, atomic::ADD, atomic::XCHG] {
                let insn = Insn::new(opcode, 1, 2, 0, imm);
                let exit = Insn::new(op::EXIT, 0, 0, 0, 0);
                let slots: &[Insn] = if opcode == op::LDDW { &[insn, Insn::default(), exit] } else { &[insn, exit] };
                let bytes: std::vec::Vec<u8> = slots.iter().flat_map(|i| i.encode()).collect();
                if Program::new(&bytes, |_| true).is_ok() {
                    accepted += 1;
                    assert!(!matches!(RULES[opcode], Rule::Invalid), "opcode {opcode:#04x} has no rule");
                }
            }
        }
        assert!(accepted > 100, "the probe reaches most opcodes ({accepted})");
    }
}
