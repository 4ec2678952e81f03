//! The fast interpreter: the reference interpreter's semantics over pre-decoded
//! instructions, for targets where memory cannot be made executable.
//!
//! A validated [`Program`] is decoded once into one [`Slot`] per 8-byte instruction slot
//! (so a slot's index is its pc, and errors name the same instruction): a dense operation
//! code of its own, chosen per opcode *and* operand form (immediate or register, signed or
//! unsigned division, the width of a byte swap or sign extension, forward jump or back
//! edge), with the operands resolved: immediates sign-extended, jump and call targets
//! absolute, fuel charges computed by [`fuel`] (a forward jump has none to pay), `lddw`
//! values (map handles and map value addresses included) computed as the reference does,
//! helper ids looked up. A run is then a `match` on that code in a loop: one jump table,
//! no field extraction, no operand-form tests at run time, no `unsafe`.
//!
//! Everything else is the reference interpreter's ([`super::interp`]), shared rather than
//! copied: the entry state, fuel, the local-call frames, helper calls, atomics, the `lddw`
//! values, and every memory access goes through `Memory::load_in` / `Memory::store_in`,
//! which check it with `semantics::locate` against the run's region table. Operations come
//! from `tessera_stencils::semantics`, as for the reference and the JIT. So results, errors
//! (with their pc and address), fuel and final memory are the reference's exactly, which
//! the conformance, differential and bad-input suites check on every ISA.
//!
//! Decoded slots live on the heap ([`decode`], with `alloc`) or in a buffer of
//! [`slots_needed`] slots the caller provides ([`decode_into`]). The embedder API is
//! [`super::Vm::prepare_fast`] / [`super::Vm::prepare_fast_in`], which return a
//! [`FastProgram`], and `Mode::FastInterpreter` in [`super::Vm::run`].
//!
//! Dispatch: a `match` over the `#[repr(u8)]` operation code. Threading through function
//! pointers (a static table of handlers indexed by the code, over the same slots; in the
//! history as a reverted experiment) measured about 25% slower on the benchmark suite
//! (geomean against solana-sbpf's interpreter 0.60 instead of 0.48; crc32 0.79 instead of
//! 0.40): the `match` keeps pc, fuel and the slot's fields in machine registers, a handler
//! call spills them.
//!
//! Superinstructions: clang's two-address code spends many instructions on `mov`s and
//! address arithmetic. Pairs and triples counted over the benchmark suite's runs decide
//! which instruction sequences decode into one slot (see `superinstruction`); every other
//! slot still holds its own instruction, so a jump into a sequence runs it from there.

use tessera_stencils::semantics as s;

use super::error::{LoadError, RunError};
use super::fuel;
use super::helpers::Helpers;
use super::insn::{Insn, op, pseudo};
use super::interp::{self, Config, burn};
use super::kept::Kept;
use super::maps::MapDef;
use super::memory::Memory;
use super::program::Program;

/// Generates, from the operation table below, the [`Op`] codes (the table's, then those
/// decoded by hand), the decoder's lookups and the interpreter loop, so the three cannot
/// disagree.
macro_rules! interpreter {
    (
        binary: [$(($bic:literal, $bi:ident, $brc:literal, $br:ident, $bf:path $(, $ti:ident, $tr:ident)?)),* $(,)?],
        division: [$(($dic:literal, $drc:literal, $dui:ident, $dur:ident, $dsi:ident, $dsr:ident,
            $duf:path, $dsf:path)),* $(,)?],
        unary: [$(($u:ident, $uf:path)),* $(,)?],
        moves: [$(($m:ident, $mf:path)),* $(,)?],
        loads: [$(($lc:literal, $l:ident, $ls:literal, $lf:path)),* $(,)?],
        stores: [$(($sic:literal, $si:ident, $src:literal, $sr:ident, $ss:literal)),* $(,)?],
        indexed_loads: [$(($xc:literal, $x:ident, $xs:literal)),* $(,)?],
        shifted_loads: [$(($yc:literal, $y:ident, $ys:literal)),* $(,)?],
        jumps: [$(($jic:literal, $jrc:literal, $ji:ident, $jr:ident, $jib:ident, $jrb:ident,
            $jf:path)),* $(,)?],
    ) => {
        /// An operation of the fast interpreter: an opcode with its operand form decided.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        enum Op {
            $($bi, $br,)*
            $($dui, $dur, $dsi, $dsr,)*
            $($u,)*
            $($m,)*
            $($l,)*
            $($si, $sr,)*
            $($($ti, $tr,)?)*
            $($x,)*
            $($y,)*
            $($ji, $jr, $jib, $jrb,)*
            /// `mov64 d1, s1; mov64 d2, s2`.
            MovMov,
            /// `mov64 d1, imm1; mov64 d2, imm2`.
            MovImmMovImm,
            /// `add64 d, imm|x; jlt64 a, b, target`, forward or back edge (a loop's close).
            AddImmJlt,
            AddImmJltBack,
            AddRegJlt,
            AddRegJltBack,
            /// `dst = imm` (`mov`, `mov32` with its imm zero-extended).
            MovImm,
            /// `le64`: nothing to do.
            Nop,
            /// `dst = imm`, then skip the second slot.
            Lddw,
            Atomic32,
            Atomic64,
            Ja,
            JaBack,
            CallLocal,
            CallHelper,
            CallX,
            Exit,
            /// What the reference rejects at run time (and the second slot of `lddw`).
            Invalid,
        }

        /// The operation of the table-driven `opcode` (with `off`, which selects signed
        /// division); `None` for the others.
        fn table_op(opcode: u8, off: i16) -> Option<Op> {
            Some(match (opcode, off) {
                $(($bic, _) => Op::$bi, ($brc, _) => Op::$br,)*
                $(($dic, 1) => Op::$dsi, ($drc, 1) => Op::$dsr, ($dic, _) => Op::$dui, ($drc, _) => Op::$dur,)*
                $(($lc, _) => Op::$l,)*
                $(($sic, _) => Op::$si, ($src, _) => Op::$sr,)*
                _ => return None,
            })
        }

        /// The forward and back-edge forms of conditional jump `opcode`.
        fn jump_ops(opcode: u8) -> Option<(Op, Op)> {
            Some(match opcode {
                $($jic => (Op::$ji, Op::$jib), $jrc => (Op::$jr, Op::$jrb),)*
                _ => return None,
            })
        }

        /// The three-address superinstruction of `mov64 d, s` then `opcode` on `d`.
        fn three_address_op(opcode: u8) -> Option<Op> {
            Some(match opcode {
                $($($bic => Op::$ti, $brc => Op::$tr,)?)*
                _ => return None,
            })
        }

        /// The indexed-load superinstruction ending in the load `opcode`.
        fn indexed_load_op(opcode: u8) -> Option<Op> {
            Some(match opcode {
                $($xc => Op::$x,)*
                _ => return None,
            })
        }

        /// The shifted-load superinstruction starting with the load `opcode`.
        fn shifted_load_op(opcode: u8) -> Option<Op> {
            Some(match opcode {
                $($yc => Op::$y,)*
                _ => return None,
            })
        }

        /// How many instructions the superinstruction `op` runs (1 for the others).
        fn fused_len(op: Op) -> usize {
            match op {
                $(Op::$x)|* => 3,
                $($(Op::$ti | Op::$tr => 2,)?)*
                $(Op::$y)|* => 2,
                Op::MovMov | Op::MovImmMovImm | Op::AddImmJlt | Op::AddImmJltBack | Op::AddRegJlt
                | Op::AddRegJltBack => 2,
                _ => 1,
            }
        }

        /// Runs decoded `slots` to completion and returns `r0`; the contract is the reference
        /// interpreter's ([`interp::run`]).
        fn run(
            slots: &[Slot],
            program: &Program,
            helpers: &Helpers,
            memory: &mut Memory,
            config: &Config,
            state: &mut interp::RunState,
        ) -> Result<u64, RunError> {
            let (mut reg, table, mut calls) = interp::enter(memory, program, config, state)?;
            let mut fuel_left = config.fuel;
            let mut pc: usize = 0;
            loop {
                let Some(&slot) = slots.get(pc) else {
                    return Err(RunError::InvalidInstruction { pc: pc as u32 });
                };
                let d = (slot.dst & 0x0f) as usize;
                let sr = (slot.src & 0x0f) as usize;
                let off = slot.aux as i32 as i64 as u64;

                match slot.op {
                    $(
                        Op::$bi => { reg[d] = $bf(reg[d], slot.imm); pc += 1; }
                        Op::$br => { reg[d] = $bf(reg[d], reg[sr]); pc += 1; }
                    )*
                    $(
                        Op::$dui => { reg[d] = $duf(reg[d], slot.imm); pc += 1; }
                        Op::$dur => { reg[d] = $duf(reg[d], reg[sr]); pc += 1; }
                        Op::$dsi => { reg[d] = $dsf(reg[d], slot.imm); pc += 1; }
                        Op::$dsr => { reg[d] = $dsf(reg[d], reg[sr]); pc += 1; }
                    )*
                    $(Op::$u => { reg[d] = $uf(reg[d]); pc += 1; })*
                    $(Op::$m => { reg[d] = $mf(reg[sr]); pc += 1; })*
                    $(
                        Op::$l => {
                            let addr = reg[sr].wrapping_add(off);
                            let Some(v) = memory.load_in(table, addr, $ls) else {
                                return Err(RunError::MemoryFault { pc: pc as u32, addr });
                            };
                            reg[d] = $lf(v);
                            pc += 1;
                        }
                    )*
                    $(
                        Op::$si => {
                            let addr = reg[d].wrapping_add(off);
                            if memory.store_in(table, addr, $ss, slot.imm).is_none() {
                                return Err(RunError::MemoryFault { pc: pc as u32, addr });
                            }
                            pc += 1;
                        }
                        Op::$sr => {
                            let addr = reg[d].wrapping_add(off);
                            if memory.store_in(table, addr, $ss, reg[sr]).is_none() {
                                return Err(RunError::MemoryFault { pc: pc as u32, addr });
                            }
                            pc += 1;
                        }
                    )*
                    $(
                        Op::$ji => pc = if $jf(reg[d], slot.imm) { slot.aux as usize } else { pc + 1 },
                        Op::$jr => pc = if $jf(reg[d], reg[sr]) { slot.aux as usize } else { pc + 1 },
                        Op::$jib => {
                            burn(&mut fuel_left, slot.imm >> 32, pc)?;
                            pc = if $jf(reg[d], packed_imm(slot.imm)) { slot.aux as usize } else { pc + 1 };
                        }
                        Op::$jrb => {
                            burn(&mut fuel_left, slot.imm, pc)?;
                            pc = if $jf(reg[d], reg[sr]) { slot.aux as usize } else { pc + 1 };
                        }
                    )*
                    $($(
                        Op::$ti => { reg[d] = $bf(reg[sr], slot.imm); pc += 2; }
                        Op::$tr => { reg[d] = $bf(reg[sr], reg[slot.aux as usize & 0x0f]); pc += 2; }
                    )?)*
                    $(
                        Op::$x => {
                            let base = reg[sr].wrapping_add(reg[(slot.imm >> 8) as usize & 0x0f]);
                            reg[slot.imm as usize & 0x0f] = base;
                            let addr = base.wrapping_add(off);
                            let Some(v) = memory.load_in(table, addr, $xs) else {
                                return Err(RunError::MemoryFault { pc: (pc + 2) as u32, addr });
                            };
                            reg[d] = v;
                            pc += 3;
                        }
                    )*
                    $(
                        Op::$y => {
                            let addr = reg[sr].wrapping_add(off);
                            let Some(v) = memory.load_in(table, addr, $ys) else {
                                return Err(RunError::MemoryFault { pc: pc as u32, addr });
                            };
                            reg[d] = s::lsh64(v, slot.imm);
                            pc += 2;
                        }
                    )*
                    Op::MovMov => {
                        reg[d] = reg[sr];
                        reg[slot.aux as usize & 0x0f] = reg[slot.imm as usize & 0x0f];
                        pc += 2;
                    }
                    Op::MovImmMovImm => {
                        reg[d] = packed_imm(slot.imm);
                        reg[slot.aux as usize & 0x0f] = packed_imm(slot.imm >> 32);
                        pc += 2;
                    }
                    Op::AddImmJlt => pc = add_jlt(&mut reg, &mut fuel_left, &slot, pc, packed_imm(slot.imm), false)?,
                    Op::AddImmJltBack => pc = add_jlt(&mut reg, &mut fuel_left, &slot, pc, packed_imm(slot.imm), true)?,
                    Op::AddRegJlt => {
                        let operand = reg[sr];
                        pc = add_jlt(&mut reg, &mut fuel_left, &slot, pc, operand, false)?;
                    }
                    Op::AddRegJltBack => {
                        let operand = reg[sr];
                        pc = add_jlt(&mut reg, &mut fuel_left, &slot, pc, operand, true)?;
                    }
                    Op::MovImm => {
                        reg[d] = slot.imm;
                        pc += 1;
                    }
                    Op::Nop => pc += 1,
                    Op::Lddw => {
                        reg[d] = slot.imm;
                        pc += 2;
                    }
                    Op::Atomic32 | Op::Atomic64 => {
                        let size = if slot.op == Op::Atomic64 { 8 } else { 4 };
                        let addr = reg[d].wrapping_add(off);
                        interp::atomic_op(memory, table, &mut reg, addr, size, slot.imm as i32, sr, pc)?;
                        pc += 1;
                    }
                    Op::Ja => pc = slot.aux as usize,
                    Op::JaBack => {
                        burn(&mut fuel_left, slot.imm, pc)?;
                        pc = slot.aux as usize;
                    }
                    Op::CallLocal => {
                        burn(&mut fuel_left, slot.imm, pc)?;
                        calls.call(&mut reg, pc, pc + 1)?;
                        pc = slot.aux as usize;
                    }
                    Op::CallHelper => {
                        interp::call_helper(helpers.at(slot.aux as usize), slot.imm, memory, &mut reg, pc)?;
                        pc += 1;
                    }
                    Op::CallX => {
                        let id = reg[d];
                        interp::call_helper(helpers.get(id), id, memory, &mut reg, pc)?;
                        pc += 1;
                    }
                    Op::Exit => match calls.exit(&mut reg) {
                        None => return Ok(reg[0]),
                        Some(return_pc) => pc = return_pc,
                    },
                    Op::Invalid => return Err(RunError::InvalidInstruction { pc: pc as u32 }),
                }
            }
        }
    };
}

// The operation table: every table-driven operation, with its opcodes and semantics.
interpreter! {
    // `dst = f(dst, operand)`: (imm opcode, code, reg opcode, code, f), and for the 64-bit
    // ones the codes of the superinstructions `mov64 d, s; op64 d, operand`, which compute
    // `d = f(s, operand)`
    binary: [
        (0x07, Add64Imm, 0x0f, Add64Reg, s::add64, Add64ImmFrom, Add64RegFrom),
        (0x17, Sub64Imm, 0x1f, Sub64Reg, s::sub64, Sub64ImmFrom, Sub64RegFrom),
        (0x27, Mul64Imm, 0x2f, Mul64Reg, s::mul64, Mul64ImmFrom, Mul64RegFrom),
        (0x47, Or64Imm, 0x4f, Or64Reg, s::or64, Or64ImmFrom, Or64RegFrom),
        (0x57, And64Imm, 0x5f, And64Reg, s::and64, And64ImmFrom, And64RegFrom),
        (0x67, Lsh64Imm, 0x6f, Lsh64Reg, s::lsh64, Lsh64ImmFrom, Lsh64RegFrom),
        (0x77, Rsh64Imm, 0x7f, Rsh64Reg, s::rsh64, Rsh64ImmFrom, Rsh64RegFrom),
        (0xa7, Xor64Imm, 0xaf, Xor64Reg, s::xor64, Xor64ImmFrom, Xor64RegFrom),
        (0xc7, Arsh64Imm, 0xcf, Arsh64Reg, s::arsh64, Arsh64ImmFrom, Arsh64RegFrom),
        (0x04, Add32Imm, 0x0c, Add32Reg, s::add32),
        (0x14, Sub32Imm, 0x1c, Sub32Reg, s::sub32),
        (0x24, Mul32Imm, 0x2c, Mul32Reg, s::mul32),
        (0x44, Or32Imm, 0x4c, Or32Reg, s::or32),
        (0x54, And32Imm, 0x5c, And32Reg, s::and32),
        (0x64, Lsh32Imm, 0x6c, Lsh32Reg, s::lsh32),
        (0x74, Rsh32Imm, 0x7c, Rsh32Reg, s::rsh32),
        (0xa4, Xor32Imm, 0xac, Xor32Reg, s::xor32),
        (0xc4, Arsh32Imm, 0xcc, Arsh32Reg, s::arsh32),
    ],
    // Division and modulo, unsigned (off 0) or signed (off 1): (imm opcode, reg
    // opcode, unsigned imm, unsigned reg, signed imm, signed reg, unsigned f, signed f)
    division: [
        (0x37, 0x3f, Div64Imm, Div64Reg, SDiv64Imm, SDiv64Reg, s::div64, s::sdiv64),
        (0x97, 0x9f, Mod64Imm, Mod64Reg, SMod64Imm, SMod64Reg, s::mod64, s::smod64),
        (0x34, 0x3c, Div32Imm, Div32Reg, SDiv32Imm, SDiv32Reg, s::div32, s::sdiv32),
        (0x94, 0x9c, Mod32Imm, Mod32Reg, SMod32Imm, SMod32Reg, s::mod32, s::smod32),
    ],
    // `dst = f(dst)` (negation, byte order)
    unary: [
        (Neg64, s::neg64),
        (Neg32, s::neg32),
        (Zext16, s::zext16),
        (Zext32, s::zext32),
        (Bswap16, s::bswap16),
        (Bswap32, s::bswap32),
        (Bswap64, s::bswap64),
    ],
    // `dst = f(src)` (moves, sign extensions)
    moves: [
        (Mov64, core::convert::identity),
        (Mov32, s::mov32),
        (MovSx64From8, s::movsx64_8),
        (MovSx64From16, s::movsx64_16),
        (MovSx64From32, s::movsx64_32),
        (MovSx32From8, s::movsx32_8),
        (MovSx32From16, s::movsx32_16),
    ],
    // `dst = f(the size bytes at src + off)`: (opcode, code, size, f)
    loads: [
        (0x71, Ldx8, 1, core::convert::identity),
        (0x69, Ldx16, 2, core::convert::identity),
        (0x61, Ldx32, 4, core::convert::identity),
        (0x79, Ldx64, 8, core::convert::identity),
        (0x91, Ldxs8, 1, s::movsx64_8),
        (0x89, Ldxs16, 2, s::movsx64_16),
        (0x81, Ldxs32, 4, s::movsx64_32),
    ],
    // The low size bytes of imm or src to dst + off: (imm opcode, code, reg opcode,
    // code, size)
    stores: [
        (0x72, St8, 0x73, Stx8, 1),
        (0x6a, St16, 0x6b, Stx16, 2),
        (0x62, St32, 0x63, Stx32, 4),
        (0x7a, St64, 0x7b, Stx64, 8),
    ],
    // Superinstructions `mov64 d, s; add64 d, t; ldx x, [d + off]` (array indexing):
    // (opcode, code, size) of the load
    indexed_loads: [
        (0x71, Ldx8Indexed, 1),
        (0x69, Ldx16Indexed, 2),
        (0x61, Ldx32Indexed, 4),
        (0x79, Ldx64Indexed, 8),
    ],
    // Superinstructions `ldx x, [src + off]; lsh64 x, imm` (assembling bytes): (opcode,
    // code, size) of the load
    shifted_loads: [
        (0x71, Ldx8Lsh, 1),
        (0x69, Ldx16Lsh, 2),
        (0x61, Ldx32Lsh, 4),
        (0x79, Ldx64Lsh, 8),
    ],
    // `if f(dst, operand) goto target`, forward or back edge: (imm opcode, reg opcode,
    // imm, reg, imm back edge, reg back edge, f)
    jumps: [
        (0x15, 0x1d, Jeq64Imm, Jeq64Reg, Jeq64ImmBack, Jeq64RegBack, s::jeq64),
        (0x25, 0x2d, Jgt64Imm, Jgt64Reg, Jgt64ImmBack, Jgt64RegBack, s::jgt64),
        (0x35, 0x3d, Jge64Imm, Jge64Reg, Jge64ImmBack, Jge64RegBack, s::jge64),
        (0x45, 0x4d, Jset64Imm, Jset64Reg, Jset64ImmBack, Jset64RegBack, s::jset64),
        (0x55, 0x5d, Jne64Imm, Jne64Reg, Jne64ImmBack, Jne64RegBack, s::jne64),
        (0x65, 0x6d, Jsgt64Imm, Jsgt64Reg, Jsgt64ImmBack, Jsgt64RegBack, s::jsgt64),
        (0x75, 0x7d, Jsge64Imm, Jsge64Reg, Jsge64ImmBack, Jsge64RegBack, s::jsge64),
        (0xa5, 0xad, Jlt64Imm, Jlt64Reg, Jlt64ImmBack, Jlt64RegBack, s::jlt64),
        (0xb5, 0xbd, Jle64Imm, Jle64Reg, Jle64ImmBack, Jle64RegBack, s::jle64),
        (0xc5, 0xcd, Jslt64Imm, Jslt64Reg, Jslt64ImmBack, Jslt64RegBack, s::jslt64),
        (0xd5, 0xdd, Jsle64Imm, Jsle64Reg, Jsle64ImmBack, Jsle64RegBack, s::jsle64),
        (0x16, 0x1e, Jeq32Imm, Jeq32Reg, Jeq32ImmBack, Jeq32RegBack, s::jeq32),
        (0x26, 0x2e, Jgt32Imm, Jgt32Reg, Jgt32ImmBack, Jgt32RegBack, s::jgt32),
        (0x36, 0x3e, Jge32Imm, Jge32Reg, Jge32ImmBack, Jge32RegBack, s::jge32),
        (0x46, 0x4e, Jset32Imm, Jset32Reg, Jset32ImmBack, Jset32RegBack, s::jset32),
        (0x56, 0x5e, Jne32Imm, Jne32Reg, Jne32ImmBack, Jne32RegBack, s::jne32),
        (0x66, 0x6e, Jsgt32Imm, Jsgt32Reg, Jsgt32ImmBack, Jsgt32RegBack, s::jsgt32),
        (0x76, 0x7e, Jsge32Imm, Jsge32Reg, Jsge32ImmBack, Jsge32RegBack, s::jsge32),
        (0xa6, 0xae, Jlt32Imm, Jlt32Reg, Jlt32ImmBack, Jlt32RegBack, s::jlt32),
        (0xb6, 0xbe, Jle32Imm, Jle32Reg, Jle32ImmBack, Jle32RegBack, s::jle32),
        (0xc6, 0xce, Jslt32Imm, Jslt32Reg, Jslt32ImmBack, Jslt32RegBack, s::jslt32),
        (0xd6, 0xde, Jsle32Imm, Jsle32Reg, Jsle32ImmBack, Jsle32RegBack, s::jsle32),
    ],
}

/// One decoded instruction slot (16 bytes). Which fields mean what depends on the
/// operation: `aux` holds a jump or call target (absolute), a memory offset (`i32`) or a
/// helper's index; `imm` the sign-extended immediate, the `lddw` value, a helper id or a
/// fuel charge. A back edge that compares with an immediate packs both: the charge in the
/// high half, the immediate (sign-extended at run time) in the low half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct Slot {
    op: Op,
    dst: u8,
    src: u8,
    aux: u32,
    imm: u64,
}

impl Slot {
    /// A slot that runs as an invalid instruction: what a caller's buffer starts with.
    pub const EMPTY: Slot = Slot::new(Op::Invalid, 0, 0, 0, 0);

    const fn new(op: Op, dst: u8, src: u8, aux: u32, imm: u64) -> Slot {
        Slot { op, dst, src, aux, imm }
    }

    /// How many of the program's instructions one dispatch of this slot runs: 2 or 3 for a
    /// superinstruction, else 1.
    pub fn instructions(&self) -> usize {
        fused_len(self.op)
    }
}

/// Slots [`decode_into`] needs for `program`: one per 8-byte instruction slot.
pub fn slots_needed(program: &Program) -> usize {
    program.len()
}

/// Decodes `program` (which calls `helpers`) into the first [`slots_needed`] slots of
/// `buffer`, and returns them.
pub fn decode_into<'b>(program: &Program, helpers: &Helpers, buffer: &'b mut [Slot]) -> Result<&'b [Slot], LoadError> {
    let len = slots_needed(program);
    let needed = u32::try_from(len).unwrap_or(u32::MAX);
    let slots = buffer.get_mut(..len).ok_or(LoadError::SlotBufferTooSmall { needed })?;
    // Second slots of `lddw` are not instructions; they keep `EMPTY`.
    slots.fill(Slot::EMPTY);
    for (pc, insn) in program.iter() {
        if let Some(slot) = slots.get_mut(pc) {
            *slot = decode_one(program, helpers, pc, insn);
        }
    }
    Ok(slots)
}

/// Decodes `program` onto the heap (see [`decode_into`]).
#[cfg(feature = "alloc")]
pub fn decode(program: &Program, helpers: &Helpers) -> alloc::vec::Vec<Slot> {
    let mut slots = alloc::vec![Slot::EMPTY; slots_needed(program)];
    // Cannot fail: the buffer has exactly the slots needed.
    let _ = decode_into(program, helpers, &mut slots);
    slots
}

/// A jump target as a slot index; a target outside `u32` (impossible in a validated
/// program) becomes one no slot has, so running it is an invalid instruction.
fn target(pc: usize, offset: i64) -> u32 {
    u32::try_from(pc as i64 + 1 + offset).unwrap_or(u32::MAX)
}

/// Opcodes the superinstructions start with or contain.
const MOV64_REG: u8 = 0xbf;
const MOV64_IMM: u8 = 0xb7;
const ADD64_REG: u8 = 0x0f;
const ADD64_IMM: u8 = 0x07;
const LSH64_IMM: u8 = 0x67;
const JLT64_REG: u8 = 0xad;

/// The superinstruction that starts at `pc`, if the instructions there make one: it runs
/// them in one dispatch and continues after the last (a jump to a later one of them still
/// lands on that instruction's own slot). Chosen by dynamic pair counts over the benchmark
/// suite (clang's two-address idioms). Only the last instruction of one can fail, and it
/// reports its own pc; the others are ALU operations.
fn superinstruction(program: &Program, pc: usize, insn: Insn) -> Option<Slot> {
    let (d, s) = (insn.dst & 0x0f, insn.src & 0x0f);
    let second = program.get(pc + 1)?;
    let (second_dst, second_src) = (second.dst & 0x0f, second.src & 0x0f);
    if insn.opcode == MOV64_REG && insn.off == 0 {
        // `d = s; d += t; x = [d + off]`: `t` reads `s` where it names `d`.
        let t = if second_src == d { s } else { second_src };
        if second.opcode == ADD64_REG
            && second_dst == d
            && let Some(third) = program.get(pc + 2)
            && third.src & 0x0f == d
            && let Some(op) = indexed_load_op(third.opcode)
        {
            let imm = u64::from(d) | u64::from(t) << 8;
            return Some(Slot::new(op, third.dst & 0x0f, s, third.off as i32 as u32, imm));
        }
        // `d = s; d = f(d, operand)`
        if second_dst == d
            && let Some(op) = three_address_op(second.opcode)
        {
            let (aux, imm) = if second.opcode & 0x08 != 0 { (u32::from(t), 0) } else { (0, second.imm as i64 as u64) };
            return Some(Slot::new(op, d, s, aux, imm));
        }
        if second.opcode == MOV64_REG && second.off == 0 {
            return Some(Slot::new(Op::MovMov, d, s, u32::from(second_dst), u64::from(second_src)));
        }
    }
    if insn.opcode == MOV64_IMM && second.opcode == MOV64_IMM {
        // Both immediates, packed (sign-extended at run time).
        let imm = u64::from(second.imm as u32) << 32 | u64::from(insn.imm as u32);
        return Some(Slot::new(Op::MovImmMovImm, d, 0, u32::from(second_dst), imm));
    }
    // `x = [src + off] << k`
    if second.opcode == LSH64_IMM
        && second_dst == d
        && let Some(op) = shifted_load_op(insn.opcode)
    {
        return Some(Slot::new(op, d, s, insn.off as i32 as u32, second.imm as u64));
    }
    // `d += k|x; if a < b goto target`: the immediate, the jump's charge and registers packed
    // (see `AddJlt`).
    if matches!(insn.opcode, ADD64_IMM | ADD64_REG) && second.opcode == JLT64_REG {
        let to = target(pc + 1, second.off as i64);
        let charge = fuel::back_edge_charge(pc + 1, to as usize);
        let op = match (insn.opcode == ADD64_IMM, charge.is_some()) {
            (true, false) => Op::AddImmJlt,
            (true, true) => Op::AddImmJltBack,
            (false, false) => Op::AddRegJlt,
            (false, true) => Op::AddRegJltBack,
        };
        let imm = AddJlt::pack(insn.imm, charge.unwrap_or(0), second_dst, second_src);
        return Some(Slot::new(op, d, s, to, imm));
    }
    None
}

/// The slot of the instruction at `pc`.
fn decode_one(program: &Program, helpers: &Helpers, pc: usize, insn: Insn) -> Slot {
    if let Some(slot) = superinstruction(program, pc, insn) {
        return slot;
    }
    let (dst, src) = (insn.dst & 0x0f, insn.src & 0x0f);
    let imm = insn.imm as i64 as u64;
    let off = insn.off as i32 as u32;
    let slot = |op, aux, imm| Slot::new(op, dst, src, aux, imm);
    // An unconditional jump or a conditional one: the back-edge form carries its charge.
    let jump = |(forward, back): (Op, Op), to: u32, operand: u64| match fuel::back_edge_charge(pc, to as usize) {
        None => slot(forward, to, operand),
        Some(charge) if insn.opcode & 0x08 == 0 && forward != Op::Ja => {
            slot(back, to, (charge << 32) | (operand & 0xffff_ffff))
        }
        Some(charge) => slot(back, to, charge),
    };
    if let Some(op) = table_op(insn.opcode, insn.off) {
        return slot(op, off, imm);
    }
    if let Some(ops) = jump_ops(insn.opcode) {
        return jump(ops, target(pc, insn.off as i64), imm);
    }
    let unary = |op| slot(op, 0, 0);
    let byte_swap = |op16, op32, op64| {
        unary(match insn.imm {
            16 => op16,
            32 => op32,
            _ => op64,
        })
    };
    match insn.opcode {
        0xb7 => slot(Op::MovImm, 0, imm),
        0xb4 => slot(Op::MovImm, 0, s::mov32(imm)),
        0xbf => unary(match insn.off {
            8 => Op::MovSx64From8,
            16 => Op::MovSx64From16,
            32 => Op::MovSx64From32,
            _ => Op::Mov64,
        }),
        0xbc => unary(match insn.off {
            8 => Op::MovSx32From8,
            16 => Op::MovSx32From16,
            _ => Op::Mov32,
        }),
        0x87 => unary(Op::Neg64),
        0x84 => unary(Op::Neg32),
        0xd7 | 0xdc => byte_swap(Op::Bswap16, Op::Bswap32, Op::Bswap64),
        0xd4 => byte_swap(Op::Zext16, Op::Zext32, Op::Nop),
        op::LDDW => slot(Op::Lddw, 0, interp::lddw_value(program, pc, insn)),
        0xc3 => slot(Op::Atomic32, off, imm),
        0xdb => slot(Op::Atomic64, off, imm),
        op::JA => jump((Op::Ja, Op::JaBack), target(pc, insn.off as i64), 0),
        op::JA32 => jump((Op::Ja, Op::JaBack), target(pc, insn.imm as i64), 0),
        op::CALL if insn.src == pseudo::CALL_LOCAL => {
            let to = target(pc, insn.imm as i64);
            slot(Op::CallLocal, to, fuel::call_charge(program.len(), to as usize))
        }
        op::CALL => {
            let id = insn.imm as u32 as u64;
            let index = helpers.position(id).and_then(|i| u32::try_from(i).ok()).unwrap_or(u32::MAX);
            slot(Op::CallHelper, index, id)
        }
        op::CALLX => unary(Op::CallX),
        op::EXIT => unary(Op::Exit),
        _ => Slot::EMPTY,
    }
}

/// The immediate of a back edge that compares with one (see [`Slot`]).
#[inline(always)]
fn packed_imm(imm: u64) -> u64 {
    imm as u32 as i32 as i64 as u64
}

/// The `imm` of `add d, k|x; jlt a, b`: `k` in bits 0..32 (see [`packed_imm`]), the jump's
/// fuel charge in bits 32..56 (a charge is at most the program length, 2^20), `a` and `b`
/// in bits 56..60 and 60..64. Kept in `imm` rather than in spare bits of `dst` and `src`,
/// which would keep more values live across the dispatch.
struct AddJlt;

impl AddJlt {
    fn pack(k: i32, charge: u64, a: u8, b: u8) -> u64 {
        u64::from(k as u32) | (charge & 0xff_ffff) << 32 | u64::from(a & 0x0f) << 56 | u64::from(b & 0x0f) << 60
    }

    #[inline(always)]
    fn charge(imm: u64) -> u64 {
        (imm >> 32) & 0xff_ffff
    }

    #[inline(always)]
    fn registers(imm: u64) -> (usize, usize) {
        ((imm >> 56) as usize & 0x0f, (imm >> 60) as usize)
    }
}

/// `d += operand; if a < b goto target` (see [`AddJlt`]), charging the jump's fuel on a back
/// edge; returns the next pc.
#[inline(always)]
fn add_jlt(
    reg: &mut interp::Registers,
    fuel_left: &mut u64,
    slot: &Slot,
    pc: usize,
    operand: u64,
    back: bool,
) -> Result<usize, RunError> {
    let d = (slot.dst & 0x0f) as usize;
    reg[d] = s::add64(reg[d], operand);
    if back {
        burn(fuel_left, AddJlt::charge(slot.imm), pc + 1)?;
    }
    let (a, b) = AddJlt::registers(slot.imm);
    Ok(if s::jlt64(reg[a], reg[b]) { slot.aux as usize } else { pc + 2 })
}

/// Where a [`FastProgram`]'s slots live.
#[derive(Debug)]
enum Slots<'b> {
    /// In the caller's buffer.
    Buffer(&'b [Slot]),
    #[cfg(feature = "alloc")]
    Heap(alloc::vec::Vec<Slot>),
}

/// A program decoded for the fast interpreter, with its helpers and limits: call
/// [`FastProgram::run`]. Made by [`super::Vm::prepare_fast`] (heap) or
/// [`super::Vm::prepare_fast_in`] (the caller's buffer).
#[derive(Debug)]
pub struct FastProgram<'p, 'h, 'b> {
    program: Program<'p>,
    maps: &'p [MapDef],
    helpers: Helpers<'h>,
    config: Config,
    slots: Slots<'b>,
    /// The run state of the last run, reused by the next.
    kept: Kept<interp::RunState>,
}

impl<'p, 'h, 'b> FastProgram<'p, 'h, 'b> {
    /// Decodes into `buffer` (at least [`slots_needed`] slots).
    pub(crate) fn in_buffer(
        (program, maps, helpers, config): (Program<'p>, &'p [MapDef], Helpers<'h>, Config),
        buffer: &'b mut [Slot],
    ) -> Result<FastProgram<'p, 'h, 'b>, LoadError> {
        let slots = decode_into(&program, &helpers, buffer)?;
        Ok(FastProgram { program, maps, helpers, config, slots: Slots::Buffer(slots), kept: Kept::new() })
    }

    /// Decodes onto the heap.
    #[cfg(feature = "alloc")]
    pub(crate) fn on_heap(
        (program, maps, helpers, config): (Program<'p>, &'p [MapDef], Helpers<'h>, Config),
    ) -> FastProgram<'p, 'h, 'b> {
        let slots = decode(&program, &helpers);
        FastProgram { program, maps, helpers, config, slots: Slots::Heap(slots), kept: Kept::new() }
    }

    /// Runs the program with r1 = the context's address (0 when it is empty) and r2 = its
    /// length: the reference interpreter's results and errors, faster.
    pub fn run(&self, memory: &mut Memory) -> Result<u64, RunError> {
        self.kept.with(interp::RunState::new, |state| self.run_with(memory, state))
    }

    /// [`FastProgram::run`] in run state the caller keeps between runs (see
    /// [`interp::RunContext`]).
    pub fn run_in(&self, memory: &mut Memory, context: &mut interp::RunContext) -> Result<u64, RunError> {
        self.run_with(memory, &mut context.0)
    }

    fn run_with(&self, memory: &mut Memory, state: &mut interp::RunState) -> Result<u64, RunError> {
        memory.check_stack()?;
        memory.check_maps(self.maps)?;
        run(self.slots(), &self.program, &self.helpers, memory, &self.config, state)
    }

    /// The validated program this was decoded from.
    pub fn program(&self) -> &Program<'p> {
        &self.program
    }

    /// The decoded slots, one per instruction slot of the program.
    pub fn slots(&self) -> &[Slot] {
        match &self.slots {
            Slots::Buffer(slots) => slots,
            #[cfg(feature = "alloc")]
            Slots::Heap(slots) => slots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::Vm;
    use crate::ebpf::helpers::Helper;

    fn bytes(insns: &[Insn]) -> ([u8; 512], usize) {
        let mut buf = [0u8; 512];
        for (chunk, insn) in buf.chunks_exact_mut(8).zip(insns) {
            chunk.copy_from_slice(&insn.encode());
        }
        (buf, insns.len() * 8)
    }

    const EXIT: Insn = Insn::new(op::EXIT, 0, 0, 0, 0);

    #[test]
    fn a_slot_is_sixteen_bytes() {
        assert_eq!(core::mem::size_of::<Slot>(), 16);
    }

    #[test]
    fn operands_are_resolved_once() {
        // r0 = 0; loop: r0 += -1 (sign-extended); if r0 != -5 goto loop (a back edge with an
        // immediate: charge 2 and the immediate packed); exit
        let prog = [
            Insn::new(0xb7, 0, 0, 0, 0),
            Insn::new(0x07, 0, 0, 0, -1),
            Insn::new(0x55, 0, 0, -2, -5),
            Insn::new(0x05, 0, 0, 0, 0),
            EXIT,
        ];
        let (buf, n) = bytes(&prog);
        let program = Program::new(&buf[..n], |_| false).unwrap();
        let mut slots = [Slot::EMPTY; 5];
        let slots = decode_into(&program, &Helpers::empty(), &mut slots).unwrap();
        assert_eq!(slots[1], Slot::new(Op::Add64Imm, 0, 0, 0, u64::MAX));
        let back = Slot::new(Op::Jne64ImmBack, 0, 0, 1, 2 << 32 | 0xffff_fffb);
        assert_eq!(slots[2], back);
        assert_eq!(packed_imm(back.imm), -5i64 as u64);
        assert_eq!(slots[3], Slot::new(Op::Ja, 0, 0, 4, 0));
        let mut small = [Slot::EMPTY; 4];
        assert_eq!(
            decode_into(&program, &Helpers::empty(), &mut small),
            Err(LoadError::SlotBufferTooSmall { needed: 5 })
        );
    }

    /// Runs `insns` in both interpreters with the given fuel and context, from the same
    /// memory, and checks that they agree on the result and the final memory; returns the
    /// result and the first slot's operation.
    fn both(insns: &[Insn], fuel: u64, context: &[u8]) -> (Result<u64, RunError>, Op) {
        let (buf, n) = bytes(insns);
        let mut vm = Vm::new(&buf[..n], Helpers::empty()).expect("a valid test program");
        vm.set_fuel(fuel);
        let mut slots = [Slot::EMPTY; 64];
        let fast = vm.prepare_fast_in(&mut slots).unwrap();
        let mut runs = [true, false].map(|reference| {
            let (mut stack, mut ctx) = ([0u8; 512], [0u8; 32]);
            ctx[..context.len()].copy_from_slice(context);
            let ctx = &mut ctx[..context.len()];
            let mut memory = Memory::new(&mut stack, ctx, &mut []);
            let result = if reference { vm.interpret(&mut memory) } else { fast.run(&mut memory) };
            (result, stack, [0u8; 32])
        });
        runs[1].2 = runs[0].2;
        assert_eq!(runs[0].0, runs[1].0, "{insns:?} fuel {fuel}");
        assert_eq!(runs[0].1, runs[1].1, "stack after {insns:?}");
        (runs[1].0, fast.slots()[0].op)
    }

    fn mov(d: u8, s: u8) -> Insn {
        Insn::new(MOV64_REG, d, s, 0, 0)
    }
    fn mov_imm(d: u8, imm: i32) -> Insn {
        Insn::new(0xb7, d, 0, 0, imm)
    }

    #[test]
    fn superinstructions_alias_fault_and_charge_like_the_instructions_they_replace() {
        let ctx: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
        let r0_from = |d| Insn::new(MOV64_REG, 0, d, 0, 0);
        // Three-address forms, with the operand naming the destination or the source.
        for (second, op) in [
            (Insn::new(ADD64_REG, 2, 2, 0, 0), Op::Add64RegFrom),
            (Insn::new(0x1f, 2, 3, 0, 0), Op::Sub64RegFrom),
            (Insn::new(0x67, 2, 0, 0, 5), Op::Lsh64ImmFrom),
            (Insn::new(0xc7, 2, 0, 0, 63), Op::Arsh64ImmFrom),
        ] {
            let prog = [mov_imm(3, -9), mov(2, 3), second, r0_from(2), EXIT];
            let (buf, n) = bytes(&prog[1..]);
            let program = Program::new(&buf[..n], |_| false).unwrap();
            assert_eq!(decode_one(&program, &Helpers::empty(), 0, prog[1]).op, op);
            assert!(both(&prog, 100, &[]).0.is_ok());
        }
        // `mov d, d; op d, x` and `mov; mov` through each other.
        assert_eq!(
            both(&[mov(1, 1), Insn::new(0xaf, 1, 1, 0, 0), r0_from(1), EXIT], 100, &ctx),
            (Ok(0), Op::Xor64RegFrom)
        );
        assert_eq!(both(&[mov(3, 1), mov(1, 3), r0_from(1), EXIT], 100, &ctx), (Ok(2 << 32), Op::MovMov));
        // Indexed loads: the sum stays in `d` (unless the load overwrites it), `t` may be `d`,
        // and a fault names the load (pc + 2) and its address.
        // r0 = [r1 + r4 + off] + r2, with r4 = 4 and context byte i = 17 * i.
        for (t, x, off, want) in [
            (4u8, 0u8, 1i16, Ok(0x8877_6655 + (2 << 32) + 4)),
            (4, 2, 0, Ok(0x7766_5544)),
            (2, 0, 0, Err(RunError::MemoryFault { pc: 3, addr: 4 << 32 })),
            (4, 0, 13, Err(RunError::MemoryFault { pc: 3, addr: (2 << 32) + 17 })),
        ] {
            let load = Insn::new(0x61, x, 2, off, 0);
            let prog =
                [mov_imm(4, 4), mov(2, 1), Insn::new(ADD64_REG, 2, t, 0, 0), load, Insn::new(0x0f, 0, 2, 0, 0), EXIT];
            assert_eq!(both(&prog, 100, &ctx).0, want, "t {t} x {x} off {off}");
        }
        let (buf, n) = bytes(&[mov(2, 1), Insn::new(ADD64_REG, 2, 4, 0, 0), Insn::new(0x71, 0, 2, 0, 0), EXIT]);
        let program = Program::new(&buf[..n], |_| false).unwrap();
        assert_eq!(decode_one(&program, &Helpers::empty(), 0, program.insn(0)).op, Op::Ldx8Indexed);
        // A loop closed by `add; jlt`: the back edge at pc 3 charges 2 on each of 5 passes.
        let count =
            [mov_imm(0, 0), mov_imm(1, 5), Insn::new(ADD64_IMM, 0, 0, 0, 1), Insn::new(JLT64_REG, 0, 1, -2, 0), EXIT];
        for fuel in 0..12 {
            let (result, _) = both(&count, fuel, &[]);
            assert_eq!(result, if fuel >= 10 { Ok(5) } else { Err(RunError::OutOfFuel { pc: 3 }) }, "fuel {fuel}");
        }
        let (buf, n) = bytes(&count[2..]);
        let program = Program::new(&buf[..n], |_| false).unwrap();
        let fused = Slot::new(Op::AddImmJltBack, 0, 0, 0, AddJlt::pack(1, 2, 0, 1));
        assert_eq!(decode_one(&program, &Helpers::empty(), 0, program.insn(0)), fused);
        let forward =
            [mov_imm(1, 5), Insn::new(ADD64_IMM, 0, 0, 0, -1), Insn::new(JLT64_REG, 0, 1, 1, 0), mov_imm(0, 7), EXIT];
        assert_eq!(both(&forward, 0, &[]).0, Ok(7));
    }

    /// A program with maps: a map handle (`lddw` src 1) for `map_lookup_elem`, a store into
    /// the value found, a map value's address (`lddw` src 2) and a load there at `offset`.
    /// Every mode gives the same result (or fault) and leaves the same map values.
    #[cfg(feature = "alloc")]
    #[test]
    fn map_loads_and_helpers_like_the_reference() {
        use crate::ebpf::Mode;
        use crate::ebpf::helpers::standard::STANDARD;
        use crate::ebpf::maps::{Map, MapDef, MapName, MapType};
        let def = MapDef::new(MapType::Array.raw(), 4, 12, 3, 0, MapName::new("m")).unwrap();
        let defs = [def];
        for (offset, want) in [(0, Ok(9 + 77)), (6, Err(RunError::MemoryFault { pc: 11, addr: (3 << 32) + 10 }))] {
            let prog = [
                Insn::new(0x62, 10, 0, -4, 1), // *(u32 *)(r10 - 4) = 1 (the key)
                Insn::new(op::LDDW, 1, pseudo::LDDW_MAP_FD, 0, 0),
                Insn::new(0, 0, 0, 0, 0),
                mov(2, 10),
                Insn::new(ADD64_IMM, 2, 0, 0, -4),
                Insn::new(op::CALL, 0, 0, 0, 1), // map_lookup_elem(map 0, &key)
                Insn::new(0x62, 0, 0, 0, 77),    // *(u32 *)(value 1) = 77
                Insn::new(0x61, 5, 0, 0, 0),
                Insn::new(op::LDDW, 3, pseudo::LDDW_MAP_VALUE, 0, 0),
                Insn::new(0, 0, 0, 0, 4), // value 0, byte 4
                mov_imm(0, 0),
                Insn::new(0x61, 4, 3, offset, 0),
                Insn::new(0xbf, 0, 4, 0, 0),
                Insn::new(0x0f, 0, 5, 0, 0),
                EXIT,
            ];
            let (buf, n) = bytes(&prog);
            let mut vm = Vm::with_maps(&buf[..n], &defs, Helpers::new(&STANDARD)).unwrap();
            let mut modes = alloc::vec![Mode::Interpreter, Mode::FastInterpreter];
            if cfg!(all(feature = "jit", feature = "std", target_os = "linux")) {
                modes.push(Mode::Jit);
            }
            let mut outcomes = alloc::vec::Vec::new();
            for mode in modes {
                let mut maps = [Map::new(def).unwrap()];
                maps[0].values_mut()[4] = 9;
                let mut stack = [0u8; 512];
                let mut memory = Memory::new(&mut stack, &mut [], &mut []).with_maps(&mut maps);
                let result = run_mode(&mut vm, mode, &mut memory);
                outcomes.push((result, maps[0].values().to_vec()));
            }
            assert_eq!(outcomes[0].0, want.map_err(crate::ebpf::Error::from), "offset {offset}");
            assert!(outcomes.iter().all(|o| *o == outcomes[0]), "offset {offset}: {outcomes:?}");
            assert_eq!(outcomes[0].1[16], 77, "the helper found value 1");
        }
    }

    /// Runs `vm` in `mode`: `Vm::run` where it exists, else the interpreters directly.
    #[cfg(feature = "alloc")]
    fn run_mode(vm: &mut Vm, mode: crate::ebpf::Mode, memory: &mut Memory) -> Result<u64, crate::ebpf::Error> {
        #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
        return vm.run(mode, memory);
        #[cfg(not(all(feature = "jit", feature = "std", target_os = "linux")))]
        match mode {
            crate::ebpf::Mode::FastInterpreter => Ok(vm.prepare_fast().run(memory)?),
            _ => Ok(vm.interpret(memory)?),
        }
    }

    fn add(_: &mut Memory, a: u64, b: u64, _: u64, _: u64, _: u64) -> u64 {
        a + b
    }

    #[test]
    fn runs_like_the_reference_without_a_heap() {
        static HELPERS: [Helper; 1] = [Helper { id: 9, func: add }];
        // A loop calling a local function and a helper; then a fault past the context.
        let prog = [
            Insn::new(0xb7, 6, 0, 0, 3),
            Insn::new(op::CALL, 0, 1, 0, 5), // -> 7
            Insn::new(0x17, 6, 0, 0, 1),
            Insn::new(0x55, 6, 0, -3, 0),
            Insn::new(0x71, 1, 1, 0, 0),
            Insn::new(0x0f, 0, 1, 0, 0),
            EXIT,
            Insn::new(0xbf, 1, 6, 0, 0),
            Insn::new(0xb7, 2, 0, 0, 10),
            Insn::new(op::CALL, 0, 0, 0, 9),
            EXIT,
        ];
        let (buf, n) = bytes(&prog);
        let mut vm = Vm::new(&buf[..n], Helpers::new(&HELPERS)).unwrap();
        let mut slots = [Slot::EMPTY; 16];
        for fuel in [0, 12, 100] {
            vm.set_fuel(fuel);
            let fast = vm.prepare_fast_in(&mut slots).unwrap();
            for context in [&mut [7u8][..], &mut []] {
                let mut stack = [0u8; 512 * 2];
                let want = vm.interpret(&mut Memory::new(&mut stack, context, &mut []));
                let got = fast.run(&mut Memory::new(&mut stack, context, &mut []));
                assert_eq!(got, want, "fuel {fuel}, context {context:?}");
            }
        }
    }
}
