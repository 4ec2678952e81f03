//! Lowering: every eBPF instruction becomes a short sequence of stencils.
//!
//! Binary operations stage their second operand in `tmp` (`tmp_from_reg` / `tmp_from_imm`)
//! and then run a stencil specialised for the destination register, so each operation
//! needs one stencil per register rather than one per register pair. Back edges and local
//! calls are preceded by a `fuel` stencil, as the interpreter charges them.

use tessera_stencils::ids::{self, Family, StencilId};

use super::insn::{FRAME_POINTER, Insn, alu, atomic, class, jmp, mem, op, pseudo, source};
use super::{Error, Program};
use crate::emitter::{Generator, Item, Label, Op};
use tessera_stencils::abi::FRAME_SIZE;

/// The label of instruction `pc`.
#[inline]
pub fn insn_label(pc: usize) -> Label {
    Label(pc as u32)
}

/// The label of instruction `pc`'s out-of-line stub in a program of `len` slots.
#[inline]
fn stub_label(len: usize, pc: usize) -> Label {
    Label((len + pc) as u32)
}

/// The instruction whose cold stub `label` marks, if it marks one (for listings).
pub fn stub_owner(program: &Program, label: Label) -> Option<usize> {
    (label.0 as usize).checked_sub(program.len()).filter(|&pc| pc < program.len())
}

/// Labels a program needs: one per slot, and one per slot for its cold stub.
pub fn label_count(program: &Program) -> usize {
    2 * program.len()
}

#[inline]
fn target(pc: usize, delta: i64) -> Label {
    insn_label((pc as i64 + delta + 1) as usize)
}

/// Generates the item stream for `program`: the entry stencil, then every instruction.
///
/// Slow paths live out of line, after the last instruction: a checked load or store whose
/// address is not in the stack or context memory branches to a stub holding the fully
/// checked stencil (granted regions, then the trap) and a jump back; spent fuel branches to
/// a stub that reports the trap. The hot code stays small and falls through.
pub fn lower(program: &Program, sink: &mut impl FnMut(Item) -> Result<(), Error>) -> Result<(), Error> {
    sink(Item::Place(Op::new(ids::ENTRY).target(insn_label(0))))?;
    for (pc, insn) in program.iter() {
        sink(Item::Bind(insn_label(pc)))?;
        if insn.opcode == op::LDDW {
            lower_insn(program, pc, insn, sink)?;
            sink(Item::Bind(insn_label(pc + 1)))?;
        } else {
            lower_insn(program, pc, insn, sink)?;
        }
    }
    for (pc, insn) in program.iter() {
        lower_stub(program.len(), pc, insn, sink)?;
    }
    Ok(())
}

/// The eBPF lowering as an emitter [`Generator`].
pub struct Lowering<'p, 'a>(pub &'p Program<'a>);

impl Generator for Lowering<'_, '_> {
    #[inline]
    fn generate<S: FnMut(Item) -> Result<(), Error>>(&self, sink: &mut S) -> Result<(), Error> {
        lower(self.0, sink)
    }
}

/// Emits the cold stub of instruction `pc`, if its hot stencils branch to one.
fn lower_stub(
    len: usize,
    pc: usize,
    insn: Insn,
    sink: &mut impl FnMut(Item) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut out = Out { sink, pc: pc as u32 };
    let back = insn_label(pc + 1);
    match slow_access(&insn) {
        Some(Slow::Load(family)) => {
            (out.sink)(Item::Bind(stub_label(len, pc)))?;
            out.with(out.variant(family, insn.dst)?, |o| o.imm(insn.off as i32))?;
            return out.with(ids::JA, |o| o.target(back));
        }
        Some(Slow::Store(family)) => {
            (out.sink)(Item::Bind(stub_label(len, pc)))?;
            out.with(out.variant(family, insn.dst)?, |o| o.imm(insn.off as i32))?;
            return out.with(ids::JA, |o| o.target(back));
        }
        None => {}
    }
    if charges_fuel(&insn) {
        (out.sink)(Item::Bind(stub_label(len, pc)))?;
        out.plain(ids::TRAP_FUEL)?;
    }
    Ok(())
}

/// The stencil families of a binary ALU operation: the register form (second operand in
/// `tmp`) and, where the operation has one, the immediate form.
#[inline]
fn alu_families(code: u8, wide: bool, signed: bool) -> Option<(Family, Option<Family>)> {
    let pick = |w64, w32| if wide { w64 } else { w32 };
    Some(match (code, signed) {
        (alu::ADD, _) => (pick(ids::ADD64, ids::ADD32), Some(pick(ids::ADD64_IMM, ids::ADD32_IMM))),
        (alu::SUB, _) => (pick(ids::SUB64, ids::SUB32), Some(pick(ids::SUB64_IMM, ids::SUB32_IMM))),
        (alu::MUL, _) => (pick(ids::MUL64, ids::MUL32), Some(pick(ids::MUL64_IMM, ids::MUL32_IMM))),
        (alu::OR, _) => (pick(ids::OR64, ids::OR32), Some(pick(ids::OR64_IMM, ids::OR32_IMM))),
        (alu::AND, _) => (pick(ids::AND64, ids::AND32), Some(pick(ids::AND64_IMM, ids::AND32_IMM))),
        (alu::XOR, _) => (pick(ids::XOR64, ids::XOR32), Some(pick(ids::XOR64_IMM, ids::XOR32_IMM))),
        (alu::LSH, _) => (pick(ids::LSH64, ids::LSH32), Some(pick(ids::LSH64_IMM, ids::LSH32_IMM))),
        (alu::RSH, _) => (pick(ids::RSH64, ids::RSH32), Some(pick(ids::RSH64_IMM, ids::RSH32_IMM))),
        (alu::ARSH, _) => (pick(ids::ARSH64, ids::ARSH32), Some(pick(ids::ARSH64_IMM, ids::ARSH32_IMM))),
        (alu::DIV, false) => (pick(ids::DIV64, ids::DIV32), None),
        (alu::DIV, true) => (pick(ids::SDIV64, ids::SDIV32), None),
        (alu::MOD, false) => (pick(ids::MOD64, ids::MOD32), None),
        (alu::MOD, true) => (pick(ids::SMOD64, ids::SMOD32), None),
        _ => return None,
    })
}

/// The stencil families of a conditional jump: register and immediate forms.
#[inline]
fn jump_families(code: u8, wide: bool) -> Option<(Family, Family)> {
    let pick = |w64, w32| if wide { w64 } else { w32 };
    Some(match code {
        jmp::JEQ => (pick(ids::JEQ64, ids::JEQ32), pick(ids::JEQ64_IMM, ids::JEQ32_IMM)),
        jmp::JNE => (pick(ids::JNE64, ids::JNE32), pick(ids::JNE64_IMM, ids::JNE32_IMM)),
        jmp::JGT => (pick(ids::JGT64, ids::JGT32), pick(ids::JGT64_IMM, ids::JGT32_IMM)),
        jmp::JGE => (pick(ids::JGE64, ids::JGE32), pick(ids::JGE64_IMM, ids::JGE32_IMM)),
        jmp::JLT => (pick(ids::JLT64, ids::JLT32), pick(ids::JLT64_IMM, ids::JLT32_IMM)),
        jmp::JLE => (pick(ids::JLE64, ids::JLE32), pick(ids::JLE64_IMM, ids::JLE32_IMM)),
        jmp::JSGT => (pick(ids::JSGT64, ids::JSGT32), pick(ids::JSGT64_IMM, ids::JSGT32_IMM)),
        jmp::JSGE => (pick(ids::JSGE64, ids::JSGE32), pick(ids::JSGE64_IMM, ids::JSGE32_IMM)),
        jmp::JSLT => (pick(ids::JSLT64, ids::JSLT32), pick(ids::JSLT64_IMM, ids::JSLT32_IMM)),
        jmp::JSLE => (pick(ids::JSLE64, ids::JSLE32), pick(ids::JSLE64_IMM, ids::JSLE32_IMM)),
        jmp::JSET => (pick(ids::JSET64, ids::JSET32), pick(ids::JSET64_IMM, ids::JSET32_IMM)),
        _ => return None,
    })
}

/// Which form of a load or store stencil: fully checked (the cold stub), stack and
/// context checked inline with a branch to the stub (the hot path), or frame-relative with
/// no check.
#[derive(Clone, Copy)]
enum Access {
    Checked,
    Fast,
    Frame,
}

#[inline]
fn load_family(insn: &Insn, access: Access) -> Family {
    let signed = insn.opcode & 0xe0 == mem::MEMSX;
    let by_size = |b, h, w, dw| match insn.opcode & 0x18 {
        mem::B => b,
        mem::H => h,
        mem::W => w,
        _ => dw,
    };
    match (access, signed) {
        (Access::Checked, false) => by_size(ids::LDX8, ids::LDX16, ids::LDX32, ids::LDX64),
        (Access::Checked, true) => by_size(ids::LDXS8, ids::LDXS16, ids::LDXS32, ids::LDX64),
        (Access::Fast, false) => by_size(ids::LDX8_FAST, ids::LDX16_FAST, ids::LDX32_FAST, ids::LDX64_FAST),
        (Access::Fast, true) => by_size(ids::LDXS8_FAST, ids::LDXS16_FAST, ids::LDXS32_FAST, ids::LDX64_FAST),
        (Access::Frame, false) => by_size(ids::LDX8_FP, ids::LDX16_FP, ids::LDX32_FP, ids::LDX64_FP),
        (Access::Frame, true) => by_size(ids::LDXS8_FP, ids::LDXS16_FP, ids::LDXS32_FP, ids::LDX64_FP),
    }
}

/// Store stencils; the frame form is a single stencil, returned as a one-entry family.
#[inline]
fn store_family(insn: &Insn, access: Access) -> Family {
    let by_size = |b, h, w, dw| match insn.opcode & 0x18 {
        mem::B => b,
        mem::H => h,
        mem::W => w,
        _ => dw,
    };
    let single = |id: StencilId| Family { first: id.0, count: 1 };
    match access {
        Access::Checked => by_size(ids::STX8, ids::STX16, ids::STX32, ids::STX64),
        Access::Fast => by_size(ids::STX8_FAST, ids::STX16_FAST, ids::STX32_FAST, ids::STX64_FAST),
        Access::Frame => {
            by_size(single(ids::STX8_FP), single(ids::STX16_FP), single(ids::STX32_FP), single(ids::STX64_FP))
        }
    }
}

/// A checked load or store, and the fully checked stencil family its stub uses.
enum Slow {
    Load(Family),
    Store(Family),
}

#[inline]
fn slow_access(insn: &Insn) -> Option<Slow> {
    let size = insn.opcode & 0x18;
    match insn.class() {
        class::LDX if !in_frame(insn.src, insn.off, size) => Some(Slow::Load(load_family(insn, Access::Checked))),
        class::ST | class::STX if insn.opcode & 0xe0 == mem::MEM && !in_frame(insn.dst, insn.off, size) => {
            Some(Slow::Store(store_family(insn, Access::Checked)))
        }
        _ => None,
    }
}

/// Backward jumps charge fuel (local calls charge it inside `call_local`).
#[inline]
fn charges_fuel(insn: &Insn) -> bool {
    match insn.class() {
        class::JMP | class::JMP32 => match insn.opcode {
            op::JA32 => insn.imm < 0,
            op::EXIT | op::CALL | op::CALLX => false,
            _ => insn.off < 0,
        },
        _ => false,
    }
}

/// Emits `insn`'s stencils; returns how many slots it occupies.
fn lower_insn(
    program: &Program,
    pc: usize,
    insn: Insn,
    sink: &mut impl FnMut(Item) -> Result<(), Error>,
) -> Result<usize, Error> {
    let at = pc as u32;
    let mut out = Out { sink, pc: at };
    let (dst, src) = (insn.dst, insn.src);
    match insn.class() {
        class::LD => {
            let hi = program.insn(pc + 1).imm;
            out.with(out.variant(ids::LDDW, dst)?, |o| o.imm(insn.imm).imm_hi(hi))?;
            return Ok(2);
        }
        class::ALU | class::ALU64 => {
            let wide = insn.class() == class::ALU64;
            let code = insn.opcode & 0xf0;
            let from_reg = insn.opcode & source::X != 0;
            match code {
                alu::MOV if !from_reg && (wide || insn.imm >= 0) => {
                    out.with(out.variant(ids::MOV_IMM, dst)?, |o| o.imm(insn.imm))?;
                }
                alu::MOV => {
                    out.stage(from_reg, src, insn.imm)?;
                    let family = match (wide, insn.off) {
                        (true, 8) => ids::MOVSX64_8,
                        (true, 16) => ids::MOVSX64_16,
                        (true, 32) => ids::MOVSX64_32,
                        (true, _) => ids::MOV64,
                        (false, 8) => ids::MOVSX32_8,
                        (false, 16) => ids::MOVSX32_16,
                        (false, _) => ids::MOV32,
                    };
                    out.plain(out.variant(family, dst)?)?;
                }
                alu::NEG => out.plain(out.variant(if wide { ids::NEG64 } else { ids::NEG32 }, dst)?)?,
                alu::END => {
                    let to_be = from_reg || wide;
                    let family = match (to_be, insn.imm) {
                        (false, 16) => Some(ids::ZEXT16),
                        (false, 32) => Some(ids::ZEXT32),
                        (false, _) => None, // le64 on a little-endian machine: nothing to do
                        (true, 16) => Some(ids::BSWAP16),
                        (true, 32) => Some(ids::BSWAP32),
                        (true, _) => Some(ids::BSWAP64),
                    };
                    if let Some(family) = family {
                        out.plain(out.variant(family, dst)?)?;
                    }
                }
                _ => {
                    let (by_reg, by_imm) = alu_families(code, wide, insn.off == 1)
                        .ok_or(Error::UnknownOpcode { pc: at, opcode: insn.opcode })?;
                    match by_imm {
                        Some(family) if !from_reg => out.with(out.variant(family, dst)?, |o| o.imm(insn.imm))?,
                        _ => {
                            out.stage(from_reg, src, insn.imm)?;
                            out.plain(out.variant(by_reg, dst)?)?;
                        }
                    }
                }
            }
        }
        class::JMP | class::JMP32 => {
            let wide = insn.class() == class::JMP;
            let code = insn.opcode & 0xf0;
            match insn.opcode {
                op::EXIT => out.plain(ids::EXIT)?,
                op::CALL if insn.src == pseudo::CALL_LOCAL => {
                    let to = target(pc, insn.imm as i64);
                    out.with(ids::CALL_LOCAL, |o| o.target(to))?;
                }
                op::CALL => out.with(ids::CALL_HELPER, |o| o.imm(insn.imm))?,
                op::CALLX => {
                    out.plain(out.variant(ids::TMP_FROM_REG, dst)?)?;
                    out.plain(ids::CALLX)?;
                }
                op::JA | op::JA32 => {
                    let delta = if insn.opcode == op::JA32 { insn.imm as i64 } else { insn.off as i64 };
                    if delta < 0 {
                        out.with(ids::FUEL, |o| o.target(stub_label(program.len(), pc)))?;
                    }
                    let to = target(pc, delta);
                    out.with(ids::JA, |o| o.target(to))?;
                }
                _ => {
                    if insn.off < 0 {
                        out.with(ids::FUEL, |o| o.target(stub_label(program.len(), pc)))?;
                    }
                    let (by_reg, by_imm) =
                        jump_families(code, wide).ok_or(Error::UnknownOpcode { pc: at, opcode: insn.opcode })?;
                    let to = target(pc, insn.off as i64);
                    if insn.opcode & source::X != 0 {
                        out.stage(true, src, 0)?;
                        out.with(out.variant(by_reg, dst)?, |o| o.target(to))?;
                    } else {
                        out.with(out.variant(by_imm, dst)?, |o| o.imm(insn.imm).target(to))?;
                    }
                }
            }
        }
        class::LDX => {
            if in_frame(src, insn.off, insn.opcode & 0x18) {
                out.with(out.variant(load_family(&insn, Access::Frame), dst)?, |o| o.imm(insn.off as i32))?;
            } else {
                out.plain(out.variant(ids::TMP_FROM_REG, src)?)?;
                let stub = stub_label(program.len(), pc);
                out.with(out.variant(load_family(&insn, Access::Fast), dst)?, |o| o.imm(insn.off as i32).target(stub))?;
            }
        }
        class::ST | class::STX => {
            let value_from_reg = insn.class() == class::STX;
            out.stage(value_from_reg, src, insn.imm)?;
            let off = insn.off as i32;
            if insn.opcode & 0xe0 == mem::ATOMIC {
                let wide = insn.opcode & 0x18 == mem::DW;
                let family = match (insn.imm & !atomic::FETCH, wide) {
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
                    _ => return Err(Error::UnknownOpcode { pc: at, opcode: insn.opcode }),
                };
                out.with(out.variant(family, dst)?, |o| o.imm(off))?;
                // Fetch forms (and xchg) return the old value in `src`; cmpxchg writes r0 itself.
                if insn.imm & atomic::FETCH != 0 && insn.imm != atomic::CMPXCHG {
                    out.plain(out.variant(ids::MOV64, src)?)?;
                }
            } else if in_frame(dst, insn.off, insn.opcode & 0x18) {
                out.with(out.variant(store_family(&insn, Access::Frame), 0)?, |o| o.imm(off))?;
            } else {
                let stub = stub_label(program.len(), pc);
                out.with(out.variant(store_family(&insn, Access::Fast), dst)?, |o| o.imm(off).target(stub))?;
            }
        }
        _ => return Err(Error::UnknownOpcode { pc: at, opcode: insn.opcode }),
    }
    Ok(1)
}

/// Whether `[r10 + off, r10 + off + size)` lies in the running frame `[r10 - FRAME_SIZE, r10)`,
/// which the runtime keeps inside the stack: such accesses need no run-time bounds check.
/// (The interpreter checks them anyway and, by the same invariant, never faults on them.)
#[inline]
fn in_frame(base: u8, off: i16, size_code: u8) -> bool {
    let size = match size_code {
        mem::B => 1,
        mem::H => 2,
        mem::W => 4,
        _ => 8,
    };
    base == FRAME_POINTER && off as i64 >= -(FRAME_SIZE as i64) && off as i64 + size <= 0
}

/// Where lowered stencils go, stamped with the instruction they come from.
struct Out<'s, S> {
    sink: &'s mut S,
    pc: u32,
}

impl<S: FnMut(Item) -> Result<(), Error>> Out<'_, S> {
    fn with(&mut self, id: StencilId, holes: impl FnOnce(Op) -> Op) -> Result<(), Error> {
        (self.sink)(Item::Place(holes(Op::new(id).insn(self.pc))))
    }

    /// The variant of `family` for register `r`. Validation guarantees r <= 10 and that
    /// written registers are <= 9; a miss here is a validator bug, reported, not hidden.
    fn variant(&self, family: Family, r: u8) -> Result<StencilId, Error> {
        family.reg(r).ok_or(Error::BadRegister { pc: self.pc, reg: r })
    }

    fn plain(&mut self, id: StencilId) -> Result<(), Error> {
        self.with(id, |o| o)
    }

    /// Puts the second operand in `tmp`.
    fn stage(&mut self, from_reg: bool, src: u8, imm: i32) -> Result<(), Error> {
        if from_reg {
            self.plain(self.variant(ids::TMP_FROM_REG, src)?)
        } else {
            self.with(ids::TMP_FROM_IMM, |o| o.imm(imm))
        }
    }
}
