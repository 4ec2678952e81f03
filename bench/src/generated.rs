//! Generated long programs (1k and 10k instructions) for compile speed at scale.
//!
//! The differential tests' generator (`tessera_host_tests::program_gen`) produces programs
//! that fault, run out of fuel or use instructions the peers lack (atomics, sign-extending
//! loads, signed division), on purpose. A benchmark needs programs every engine runs to the
//! same result, so this generator draws from the same random source but only from the
//! subset every peer implements with eBPF's semantics:
//! - ALU64 and ALU32 operations, except 32-bit add/sub/mul (solana-sbpf v3 sign-extends
//!   their results where eBPF zero-extends), shifts by immediates only, division and modulo
//!   by non-zero immediates only (sbpf faults on a zero divisor where eBPF yields 0);
//! - byte swaps, forward branches (64- and 32-bit, register and immediate; 64-bit unsigned
//!   comparisons only with non-negative immediates, which rbpf's interpreter zero-extends),
//!   `lddw`;
//! - loads from the context memory in bounds (through r9, a copy of r1), loads and stores in
//!   16 stack slots the prologue initialises (rbpf's stack is 512 bytes; the JITs' native
//!   stacks start with garbage);
//! - helper calls to `bench_mix`, after which r1..r5 are re-initialised (their values after
//!   a call differ between engines).
//!
//! Values never depend on addresses: r1, r9 and r10 are never used as operands.

use tessera::ebpf::Insn;
use tessera::ebpf::insn::{alu, class, jmp, mem, op, source};
use tessera_host_tests::program_gen::{Rng, Source};

use crate::helper::BENCH_MIX_ID;

/// Registers that hold values (r1 is the argument, r9 the context copy, r10 the frame).
const VALUE_REGS: [u8; 8] = [0, 2, 3, 4, 5, 6, 7, 8];
/// The context base register.
const CTX: u8 = 9;
/// Stack slots (8 bytes each) below r10 that the prologue initialises.
const STACK_SLOTS: i16 = 16;
/// Bytes of context memory the program reads.
pub const CONTEXT_LEN: usize = 256;

const ALU64_OPS: [u8; 11] =
    [alu::ADD, alu::SUB, alu::MUL, alu::OR, alu::AND, alu::XOR, alu::MOV, alu::LSH, alu::RSH, alu::ARSH, alu::NEG];
const ALU32_OPS: [u8; 7] = [alu::OR, alu::AND, alu::XOR, alu::MOV, alu::LSH, alu::RSH, alu::ARSH];
const JMP_OPS: [u8; 11] =
    [jmp::JEQ, jmp::JGT, jmp::JGE, jmp::JSET, jmp::JNE, jmp::JSGT, jmp::JSGE, jmp::JLT, jmp::JLE, jmp::JSLT, jmp::JSLE];
const SIZES: [(u8, i16); 4] = [(mem::B, 1), (mem::H, 2), (mem::W, 4), (mem::DW, 8)];

fn value_reg(s: &mut Rng) -> u8 {
    VALUE_REGS[s.below(VALUE_REGS.len() as u32) as usize]
}

/// A stack offset for an access of `size` bytes inside the initialised slots.
fn stack_offset(s: &mut Rng, size: i16) -> i16 {
    let span = STACK_SLOTS * 8;
    -span + size * s.below((span / size) as u32) as i16
}

/// A program of exactly `slots` instruction slots (at least 64), reproducible from `seed`.
pub fn long_program(slots: usize, seed: u64) -> Vec<u8> {
    let slots = slots.max(64);
    let mut s = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut p: Vec<Insn> = Vec::with_capacity(slots);
    p.push(Insn::new(class::ALU64 | alu::MOV | source::X, CTX, 1, 0, 0));
    for slot in 1..=STACK_SLOTS {
        p.push(Insn::new(class::ST | mem::MEM | mem::DW, 10, 0, -8 * slot, s.imm()));
    }
    for r in VALUE_REGS {
        p.push(Insn::new(class::ALU64 | alu::MOV | source::K, r, 0, 0, s.imm()));
    }
    // The epilogue folds every value register and one stack slot into r0.
    let epilogue_len = VALUE_REGS.len() + 2;
    let body_end = slots - epilogue_len;
    let mut branches = Vec::new();
    let mut second_slots = Vec::new();
    while p.len() < body_end {
        let room = body_end - p.len();
        let dst = value_reg(&mut s);
        match s.below(100) {
            0..=44 => {
                let wide = s.below(3) != 0;
                let (cls, code) = if wide {
                    (class::ALU64, ALU64_OPS[s.below(ALU64_OPS.len() as u32) as usize])
                } else {
                    (class::ALU, ALU32_OPS[s.below(ALU32_OPS.len() as u32) as usize])
                };
                let bits = if wide { 64 } else { 32 };
                p.push(match code {
                    alu::NEG => Insn::new(cls | alu::NEG, dst, 0, 0, 0),
                    alu::LSH | alu::RSH | alu::ARSH => Insn::new(cls | code, dst, 0, 0, s.below(bits) as i32),
                    _ if s.below(2) == 0 => Insn::new(cls | code | source::K, dst, 0, 0, s.imm()),
                    _ => Insn::new(cls | code | source::X, dst, value_reg(&mut s), 0, 0),
                });
            }
            45..=49 => {
                let cls = if s.below(2) == 0 { class::ALU64 } else { class::ALU };
                let code = if s.below(2) == 0 { alu::DIV } else { alu::MOD };
                let divisor = s.imm() | 1;
                p.push(Insn::new(cls | code | source::K, dst, 0, 0, divisor));
            }
            50..=54 => {
                let to_big_endian = s.below(2) as u8;
                let width = [16, 32, 64][s.below(3) as usize];
                p.push(Insn::new(class::ALU | alu::END | (to_big_endian << 3), dst, 0, 0, width));
            }
            55..=69 if room > 2 => {
                let cls = if s.below(2) == 0 { class::JMP } else { class::JMP32 };
                let code = JMP_OPS[s.below(JMP_OPS.len() as u32) as usize];
                let off = s.below(room.min(24) as u32) as i16;
                branches.push(p.len());
                let signed = matches!(code, jmp::JSGT | jmp::JSGE | jmp::JSLT | jmp::JSLE);
                // rbpf's interpreter zero-extends the immediate of 64-bit unsigned jumps.
                let imm = if cls == class::JMP && !signed { s.imm() & i32::MAX } else { s.imm() };
                p.push(if s.below(2) == 0 {
                    Insn::new(cls | code | source::K, dst, 0, off, imm)
                } else {
                    Insn::new(cls | code | source::X, dst, value_reg(&mut s), off, 0)
                });
            }
            70..=81 => {
                let (size, bytes) = SIZES[s.below(4) as usize];
                let off = bytes * s.below(CONTEXT_LEN as u32 / bytes as u32) as i16;
                p.push(Insn::new(class::LDX | mem::MEM | size, dst, CTX, off, 0));
            }
            82..=89 => {
                let (size, bytes) = SIZES[s.below(4) as usize];
                let off = stack_offset(&mut s, bytes);
                p.push(if s.below(3) == 0 {
                    Insn::new(class::ST | mem::MEM | size, 10, 0, off, s.imm())
                } else {
                    Insn::new(class::STX | mem::MEM | size, 10, value_reg(&mut s), off, 0)
                });
            }
            90..=96 => {
                let (size, bytes) = SIZES[s.below(4) as usize];
                let off = stack_offset(&mut s, bytes);
                p.push(Insn::new(class::LDX | mem::MEM | size, dst, 10, off, 0));
            }
            97 if room > 6 => {
                p.push(Insn::new(class::ALU64 | alu::MOV | source::X, 1, value_reg(&mut s), 0, 0));
                p.push(Insn::new(op::CALL, 0, 0, 0, BENCH_MIX_ID as i32));
                for r in 1..=5 {
                    p.push(Insn::new(class::ALU64 | alu::MOV | source::K, r, 0, 0, s.imm()));
                }
            }
            98 | 99 if room > 2 => {
                second_slots.push(p.len() + 1);
                p.push(Insn::new(op::LDDW, dst, 0, 0, s.imm()));
                p.push(Insn::new(0, 0, 0, 0, s.imm()));
            }
            _ => p.push(Insn::new(class::ALU64 | alu::ADD | source::K, dst, 0, 0, s.imm())),
        }
    }
    // Branches must not land on the second slot of an lddw.
    for &pc in &branches {
        let target = pc as i64 + 1 + p[pc].off as i64;
        if second_slots.contains(&(target as usize)) {
            p[pc].off += 1;
        }
    }
    p.push(Insn::new(class::LDX | mem::MEM | mem::DW, 1, 10, -8, 0));
    for r in VALUE_REGS.iter().copied().filter(|&r| r != 0).chain([1]) {
        p.push(Insn::new(class::ALU64 | alu::XOR | source::X, 0, r, 0, 0));
    }
    p.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    debug_assert_eq!(p.len(), slots);
    p.iter().flat_map(Insn::encode).collect()
}
