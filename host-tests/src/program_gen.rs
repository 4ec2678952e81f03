//! Random valid eBPF programs for differential testing (JIT vs interpreter).
//!
//! The generator draws from a byte source, so the same code serves the small-budget
//! property test in `cargo test` (a seeded PRNG) and the cargo-fuzz target (fuzzer bytes).
//! Programs mix every ALU op in both widths, byte-order and sign-extension ops, forward
//! branches, backward branches (loops that only fuel stops), loads, stores and atomics both
//! in and out of bounds of the stack, the context, two granted regions (one read-only) and
//! a map value, helper calls by `call` and `callx` (helpers that read and write the
//! program's memory, and unknown ids), local calls (including recursion deep enough to hit
//! the call-depth limit), and the compiler idioms the fast interpreter runs as
//! superinstructions, with registers that may alias. [`crate::differential`] gives the
//! programs the memory they expect.

use tessera::ebpf::Insn;
use tessera::ebpf::insn::{alu, atomic, class, jmp, mem, op, pseudo, source};
use tessera_stencils::abi::region;

/// Where random decisions come from.
pub trait Source {
    fn byte(&mut self) -> u8;

    fn below(&mut self, n: u32) -> u32 {
        let v = u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]);
        if n == 0 { 0 } else { v % n }
    }

    fn imm(&mut self) -> i32 {
        match self.below(4) {
            0 => self.below(8) as i32 - 2,
            1 => [0, 1, -1, i32::MIN, i32::MAX, 31, 32, 63, 64][self.below(9) as usize],
            _ => u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]) as i32,
        }
    }
}

/// xorshift64*: a deterministic source for the in-test property run.
pub struct Rng(pub u64);

impl Source for Rng {
    fn byte(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    }
}

/// Fuzzer bytes; zeros once exhausted.
pub struct Bytes<'a>(pub &'a [u8]);

impl Source for Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
}

/// Helper ids the generated programs call (see [`helper`]).
pub const HELPER_ID: u32 = 7;
/// `peek(addr)`: the 8 bytes at `addr` if the program may read them, else `u64::MAX`
/// (see `crate::differential`).
pub const PEEK_ID: u32 = 8;
/// `poke(addr, value)`: writes 8 bytes at `addr` if the program may write them; 0 or 1.
pub const POKE_ID: u32 = 9;
/// An id no helper has: `callx` to it fails at run time.
pub const MISSING_ID: u32 = 99;

/// The virtual address of the first byte of granted region `index` when the program has
/// one map (region numbers: stack, context, the map, then the granted regions).
pub const fn granted_region(index: u64) -> u64 {
    region::address(region::FIRST_MAP + 1 + index)
}

/// Sizes the generated programs expect: granted regions 0 (read-only) and 1, and the one
/// map's value (an array map of [`MAP_ENTRIES`] values).
pub const REGION_SIZES: [usize; 2] = [32, 48];
pub const MAP_VALUE_SIZE: u32 = 24;
pub const MAP_ENTRIES: u32 = 2;

/// The helper registered under [`HELPER_ID`]: mixes its arguments.
pub fn helper(_: &mut tessera::ebpf::Memory, a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    mix(a, b, c, d, e)
}

/// What [`helper`] computes (for engines that take plain functions).
pub fn mix(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    a.rotate_left(7) ^ b.wrapping_mul(31) ^ c.wrapping_add(d) ^ e
}

const ALU_OPS: [u8; 12] = [
    alu::ADD,
    alu::SUB,
    alu::MUL,
    alu::DIV,
    alu::OR,
    alu::AND,
    alu::LSH,
    alu::RSH,
    alu::MOD,
    alu::XOR,
    alu::MOV,
    alu::ARSH,
];
const JMP_OPS: [u8; 11] =
    [jmp::JEQ, jmp::JGT, jmp::JGE, jmp::JSET, jmp::JNE, jmp::JSGT, jmp::JSGE, jmp::JLT, jmp::JLE, jmp::JSLT, jmp::JSLE];
const SIZES: [u8; 4] = [mem::B, mem::H, mem::W, mem::DW];

fn reg(s: &mut impl Source) -> u8 {
    s.below(10) as u8
}

/// A memory operand: base register and offset, mostly in bounds of the stack (r10) or
/// the 64-byte context (r1 at entry), sometimes not.
fn address(s: &mut impl Source) -> (u8, i16) {
    match s.below(8) {
        0..=4 => (10, -(s.below(64) as i16 * 8 + 8) + (s.below(8) == 0) as i16 * s.below(8) as i16),
        5 | 6 => (1, s.below(72) as i16 - 4),
        _ => (reg(s), s.imm() as i16),
    }
}

/// `dst` = a pointer into a granted region or the map's value (near its bounds), by `lddw`.
fn region_pointer(s: &mut impl Source, dst: u8, out: &mut Vec<Insn>) {
    if s.below(3) < 2 {
        // Within 4 bytes of either end of a granted region.
        let index = s.below(2) as u64;
        let len = REGION_SIZES[index as usize] as u32;
        let off = s.below(len + 8) as i64 - 4;
        let addr = granted_region(index).wrapping_add(off as u64);
        out.push(Insn::new(op::LDDW, dst, 0, 0, addr as u32 as i32));
        out.push(Insn::new(0, 0, 0, 0, (addr >> 32) as i32));
    } else {
        // The address of the map's first value plus an offset inside it (the validator's
        // rule); accesses from there may run into the second value or past the end.
        let off = s.below(MAP_VALUE_SIZE) as i32;
        out.push(Insn::new(op::LDDW, dst, pseudo::LDDW_MAP_VALUE, 0, 0));
        out.push(Insn::new(0, 0, 0, 0, off));
    }
}

/// A helper call through `callx`, or a call of a memory helper with a pointer argument.
fn helper_call(s: &mut impl Source, out: &mut Vec<Insn>) {
    let id = [HELPER_ID, PEEK_ID, POKE_ID, MISSING_ID][s.below(4) as usize];
    if s.below(2) == 0 {
        let reg = reg(s);
        out.push(Insn::new(class::ALU64 | alu::MOV | source::K, reg, 0, 0, id as i32));
        out.push(Insn::new(op::CALLX, reg, 0, 0, 0));
    } else {
        // r1 = an address the memory helpers read or write, r2 = a value.
        let (base, off) = address(s);
        out.push(Insn::new(class::ALU64 | alu::MOV | source::X, 1, base, 0, 0));
        out.push(Insn::new(class::ALU64 | alu::ADD | source::K, 1, 0, 0, off as i32));
        let id = if id == MISSING_ID { HELPER_ID } else { id };
        out.push(Insn::new(op::CALL, 0, 0, 0, id as i32));
    }
}

/// A branch offset from `pc` in a body of `len` slots: mostly forward; backward ones make
/// loops only fuel ends.
fn branch_offset(s: &mut impl Source, pc: usize, len: usize) -> i16 {
    if s.below(4) == 0 {
        -(s.below(pc as u32 + 1) as i16) - 1
    } else {
        s.below(len.saturating_sub(pc + 1) as u32) as i16
    }
}

/// The 64-bit ALU operations with a three-address superinstruction (after a `mov64`).
const THREE_ADDRESS_OPS: [u8; 9] =
    [alu::ADD, alu::SUB, alu::MUL, alu::OR, alu::AND, alu::LSH, alu::RSH, alu::XOR, alu::ARSH];

/// clang's two-address idioms, which the fast interpreter fuses: `mov d, s; op d, x`,
/// `mov d, base; add d, t; ldx x, [d + off]`, `add d, k; jlt d, r, target`, `mov; mov`.
/// Registers are drawn so that they sometimes alias (`x` or `t` may be `d`, and so on).
fn idiom(s: &mut impl Source, pc: usize, len: usize, out: &mut Vec<Insn>) {
    let (d, src) = (reg(s), s.below(11) as u8);
    let mov = |d, src| Insn::new(class::ALU64 | alu::MOV | source::X, d, src, 0, 0);
    match s.below(4) {
        0 => {
            out.push(mov(d, src));
            let code = THREE_ADDRESS_OPS[s.below(THREE_ADDRESS_OPS.len() as u32) as usize];
            if s.below(2) == 0 {
                let imm = if matches!(code, alu::LSH | alu::RSH | alu::ARSH) { s.imm() & 63 } else { s.imm() };
                out.push(Insn::new(class::ALU64 | code | source::K, d, 0, 0, imm));
            } else {
                let x = [d, src, s.below(11) as u8][s.below(3) as usize];
                out.push(Insn::new(class::ALU64 | code | source::X, d, x, 0, 0));
            }
        }
        1 => {
            // Mostly a small index in `t` into the stack or context, so that loads succeed.
            let (base, off) = address(s);
            let t = [d, reg(s), reg(s)][s.below(3) as usize];
            let index = [0, 8, 16][s.below(3) as usize];
            if s.below(4) != 0 && t != d {
                out.push(Insn::new(class::ALU64 | alu::MOV | source::K, t, 0, 0, index));
            }
            out.push(mov(d, base));
            out.push(Insn::new(class::ALU64 | alu::ADD | source::X, d, t, 0, 0));
            let x = [d, reg(s)][s.below(2) as usize];
            let size = SIZES[s.below(4) as usize];
            out.push(Insn::new(class::LDX | mem::MEM | size, x, d, off.wrapping_sub(index as i16), 0));
        }
        2 => {
            out.push(Insn::new(class::ALU64 | alu::ADD | source::K, d, 0, 0, s.imm()));
            let off = branch_offset(s, pc + 1, len);
            out.push(Insn::new(class::JMP | jmp::JLT | source::X, d, s.below(11) as u8, off, 0));
        }
        _ => {
            out.push(mov(d, src));
            let second_dst = [d, reg(s)][s.below(2) as usize];
            let second_src = [d, src, s.below(11) as u8][s.below(3) as usize];
            out.push(mov(second_dst, second_src));
        }
    }
}

/// One straight-line or branching instruction at `pc` in a body of `len` slots.
fn body_insn(s: &mut impl Source, pc: usize, len: usize, out: &mut Vec<Insn>) {
    let dst = reg(s);
    match s.below(17) {
        0..=5 => {
            let cls = if s.below(2) == 0 { class::ALU64 } else { class::ALU };
            let code = ALU_OPS[s.below(ALU_OPS.len() as u32) as usize];
            // sdiv/smod use off = 1.
            let off = if matches!(code, alu::DIV | alu::MOD) && s.below(2) == 0 { 1 } else { 0 };
            if s.below(2) == 0 {
                let mut imm = s.imm();
                if matches!(code, alu::LSH | alu::RSH | alu::ARSH) {
                    // The validator rejects immediate shifts outside the operand width.
                    imm &= if cls == class::ALU64 { 63 } else { 31 };
                }
                out.push(Insn::new(cls | code | source::K, dst, 0, off, imm));
            } else {
                out.push(Insn::new(cls | code | source::X, dst, s.below(11) as u8, off, 0));
            }
        }
        6 => {
            let cls = if s.below(2) == 0 { class::ALU64 } else { class::ALU };
            match s.below(3) {
                0 => out.push(Insn::new(cls | alu::NEG, dst, 0, 0, 0)),
                1 => {
                    let width = [16, 32, 64][s.below(3) as usize];
                    let src = if cls == class::ALU { s.below(2) as u8 } else { 0 };
                    out.push(Insn::new(cls | alu::END | (src << 3), dst, 0, 0, width));
                }
                _ => {
                    let off = if cls == class::ALU64 {
                        [8, 16, 32][s.below(3) as usize]
                    } else {
                        [8, 16][s.below(2) as usize]
                    };
                    out.push(Insn::new(cls | alu::MOV | source::X, dst, reg(s), off, 0));
                }
            }
        }
        7 | 8 => {
            let off = branch_offset(s, pc, len);
            let cls = if s.below(2) == 0 { class::JMP } else { class::JMP32 };
            let code = JMP_OPS[s.below(JMP_OPS.len() as u32) as usize];
            if s.below(2) == 0 {
                let mut imm = s.imm();
                if matches!(code, alu::LSH | alu::RSH | alu::ARSH) {
                    // The validator rejects immediate shifts outside the operand width.
                    imm &= if cls == class::ALU64 { 63 } else { 31 };
                }
                out.push(Insn::new(cls | code | source::K, dst, 0, off, imm));
            } else {
                out.push(Insn::new(cls | code | source::X, dst, s.below(11) as u8, off, 0));
            }
        }
        9 | 10 => {
            let (base, off) = address(s);
            let size = SIZES[s.below(4) as usize];
            let mode = if s.below(3) == 0 && size != mem::DW { mem::MEMSX } else { mem::MEM };
            out.push(Insn::new(class::LDX | mode | size, dst, base, off, 0));
        }
        11 | 12 => {
            let (base, off) = address(s);
            let size = SIZES[s.below(4) as usize];
            if s.below(2) == 0 {
                out.push(Insn::new(class::ST | mem::MEM | size, base, 0, off, s.imm()));
            } else {
                out.push(Insn::new(class::STX | mem::MEM | size, base, reg(s), off, 0));
            }
        }
        13 => {
            let (base, off) = address(s);
            let size = if s.below(2) == 0 { mem::W } else { mem::DW };
            let ops = [
                atomic::ADD,
                atomic::OR,
                atomic::AND,
                atomic::XOR,
                atomic::ADD | atomic::FETCH,
                atomic::OR | atomic::FETCH,
                atomic::AND | atomic::FETCH,
                atomic::XOR | atomic::FETCH,
                atomic::XCHG,
                atomic::CMPXCHG,
            ];
            let a = ops[s.below(ops.len() as u32) as usize];
            out.push(Insn::new(class::STX | mem::ATOMIC | size, base, reg(s), off, a));
        }
        14 => match s.below(4) {
            0 => out.push(Insn::new(op::CALL, 0, 0, 0, HELPER_ID as i32)),
            1 => helper_call(s, out),
            _ => region_pointer(s, dst, out),
        },
        15 => idiom(s, pc, len, out),
        _ => {
            // lddw
            out.push(Insn::new(op::LDDW, dst, 0, 0, s.imm()));
            out.push(Insn::new(0, 0, 0, 0, s.imm()));
        }
    }
}

/// A random valid program: a main body, then a local function the body calls (which may
/// call itself, so deep recursion reaches the depth limit).
pub fn program(s: &mut impl Source, max_len: usize) -> Vec<Insn> {
    let len = 4 + s.below(max_len.max(5) as u32 - 4) as usize;
    let mut main = Vec::new();
    for r in 0..10 {
        if r != 1 {
            main.push(Insn::new(class::ALU64 | alu::MOV | source::K, r, 0, 0, s.imm()));
        }
    }
    let mut calls = Vec::new();
    while main.len() < len {
        let pc = main.len();
        if s.below(20) == 0 {
            calls.push(pc);
            main.push(Insn::new(op::CALL, 0, 1, 0, 0));
        } else {
            body_insn(s, pc, len, &mut main);
        }
    }
    if calls.is_empty() {
        // At least one call, so the function is reachable (the validator rejects dead code).
        calls.push(main.len());
        main.push(Insn::new(op::CALL, 0, 1, 0, 0));
    }
    // Jumps must not land on lddw second slots or past the end: clamp them to the exit.
    let exit_pc = main.len();
    main.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    let func_pc = main.len();
    let mut func = vec![
        Insn::new(class::ALU64 | alu::ADD | source::K, 0, 0, 0, s.imm()),
        Insn::new(class::ALU64 | alu::MUL | source::X, 6, 0, 0, 0),
        Insn::new(class::JMP | jmp::JGT | source::K, 0, 0, 1, s.imm()),
        Insn::new(op::CALL, 0, 1, 0, -4),
        Insn::new(op::EXIT, 0, 0, 0, 0),
    ];
    // The recursive call at func[3] targets func[0]: imm = 0 - 3 - 1.
    func[3].imm = -4;
    let second_slots: Vec<usize> =
        main.iter().enumerate().filter(|(_, i)| i.opcode == op::LDDW).map(|(pc, _)| pc + 1).collect();
    for (pc, insn) in main.iter_mut().enumerate().take(exit_pc) {
        let is_jump = matches!(insn.class(), class::JMP | class::JMP32)
            && insn.opcode & 0xf0 != jmp::CALL
            && insn.opcode != op::EXIT;
        if is_jump {
            let mut target = pc as i64 + insn.off as i64 + 1;
            if target < 0 || target > exit_pc as i64 || second_slots.contains(&(target as usize)) {
                target = exit_pc as i64;
            }
            insn.off = (target - pc as i64 - 1) as i16;
        }
    }
    for pc in calls {
        main[pc].imm = (func_pc as i64 - pc as i64 - 1) as i32;
    }
    main.extend(func);
    main
}

pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.encode()).collect()
}
