//! Raw eBPF instructions (RFC 9669 §3): the 8-byte encoding and the opcode fields.

/// One 8-byte instruction slot, decoded field by field (little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Insn {
    pub opcode: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const SIZE: usize = 8;

    pub const fn new(opcode: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { opcode, dst, src, off, imm }
    }

    /// Decodes one slot. `bytes` must hold exactly 8 bytes.
    #[inline]
    pub fn decode(bytes: [u8; 8]) -> Insn {
        Insn {
            opcode: bytes[0],
            dst: bytes[1] & 0x0f,
            src: bytes[1] >> 4,
            off: i16::from_le_bytes([bytes[2], bytes[3]]),
            imm: i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }

    pub fn encode(&self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [self.opcode, (self.dst & 0x0f) | (self.src << 4), off[0], off[1], imm[0], imm[1], imm[2], imm[3]]
    }

    pub const fn class(&self) -> u8 {
        self.opcode & 0x07
    }
}

/// Instruction classes (low 3 bits of the opcode).
pub mod class {
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;
}

/// Source bit (0x08) for ALU and JMP classes.
pub mod source {
    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;
}

/// ALU operation codes (high 4 bits of the opcode).
pub mod alu {
    pub const ADD: u8 = 0x00;
    pub const SUB: u8 = 0x10;
    pub const MUL: u8 = 0x20;
    pub const DIV: u8 = 0x30;
    pub const OR: u8 = 0x40;
    pub const AND: u8 = 0x50;
    pub const LSH: u8 = 0x60;
    pub const RSH: u8 = 0x70;
    pub const NEG: u8 = 0x80;
    pub const MOD: u8 = 0x90;
    pub const XOR: u8 = 0xa0;
    pub const MOV: u8 = 0xb0;
    pub const ARSH: u8 = 0xc0;
    pub const END: u8 = 0xd0;
}

/// Jump operation codes (high 4 bits of the opcode).
pub mod jmp {
    pub const JA: u8 = 0x00;
    pub const JEQ: u8 = 0x10;
    pub const JGT: u8 = 0x20;
    pub const JGE: u8 = 0x30;
    pub const JSET: u8 = 0x40;
    pub const JNE: u8 = 0x50;
    pub const JSGT: u8 = 0x60;
    pub const JSGE: u8 = 0x70;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;
    pub const JLT: u8 = 0xa0;
    pub const JLE: u8 = 0xb0;
    pub const JSLT: u8 = 0xc0;
    pub const JSLE: u8 = 0xd0;
}

/// Load/store size (bits 3-4) and mode (bits 5-7).
pub mod mem {
    pub const W: u8 = 0x00;
    pub const H: u8 = 0x08;
    pub const B: u8 = 0x10;
    pub const DW: u8 = 0x18;
    pub const IMM: u8 = 0x00;
    pub const ABS: u8 = 0x20;
    pub const IND: u8 = 0x40;
    pub const MEM: u8 = 0x60;
    pub const MEMSX: u8 = 0x80;
    pub const ATOMIC: u8 = 0xc0;
}

/// Atomic operations (imm field of `STX | ATOMIC`).
pub mod atomic {
    pub const ADD: i32 = 0x00;
    pub const OR: i32 = 0x40;
    pub const AND: i32 = 0x50;
    pub const XOR: i32 = 0xa0;
    pub const FETCH: i32 = 0x01;
    pub const XCHG: i32 = 0xe0 | FETCH;
    pub const CMPXCHG: i32 = 0xf0 | FETCH;
}

/// `src` values of `call` (RFC 9669 §4.3.1) and `lddw` (§5.4).
pub mod pseudo {
    /// `call imm`: helper function by static id.
    pub const CALL_HELPER: u8 = 0;
    /// `call imm`: local function at `pc + imm + 1`.
    pub const CALL_LOCAL: u8 = 1;
    /// `call imm`: helper by BTF id (not supported).
    pub const CALL_BTF: u8 = 2;
    /// `lddw`: the 64-bit immediate itself.
    pub const LDDW_IMM64: u8 = 0;
    /// `lddw` (`BPF_PSEUDO_MAP_FD`): the map whose index is imm.
    pub const LDDW_MAP_FD: u8 = 1;
    /// `lddw` (`BPF_PSEUDO_MAP_VALUE`): the address of the value of map imm, plus the byte
    /// offset in the second slot's imm.
    pub const LDDW_MAP_VALUE: u8 = 2;
}

/// Commonly used full opcodes.
pub mod op {
    use super::{class, jmp, mem, source};
    pub const LDDW: u8 = class::LD | mem::IMM | mem::DW;
    pub const CALL: u8 = class::JMP | jmp::CALL | source::K;
    /// `callx` (conformance-suite extension): the helper id is in register `dst`.
    pub const CALLX: u8 = class::JMP | jmp::CALL | source::X;
    pub const EXIT: u8 = class::JMP | jmp::EXIT;
    pub const JA: u8 = class::JMP | jmp::JA;
    pub const JA32: u8 = class::JMP32 | jmp::JA;
}

/// Number of general registers (r0..r10). r10 is the read-only frame pointer.
pub const REGISTER_COUNT: u8 = 11;
/// The frame pointer register.
pub const FRAME_POINTER: u8 = 10;
