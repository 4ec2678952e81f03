//! Validated eBPF bytecode (RFC 9669 §3–§5).
//!
//! [`Program::new`] checks every slot once: opcodes and field combinations, reserved fields,
//! register numbers, writes to the frame pointer, `lddw` structure, jump and call targets,
//! helper ids and that execution cannot fall off the end. Everything downstream (the
//! interpreter, the JIT lowering) relies on these facts and does not re-check them.

use super::error::Error;
use super::insn::{FRAME_POINTER, Insn, REGISTER_COUNT, alu, atomic, class, jmp, mem, op, pseudo, source};

/// The largest program accepted, in 8-byte slots.
pub const MAX_INSNS: usize = 1 << 20;

/// Bytecode that passed validation. Instruction indices (`pc`) count 8-byte slots, so the
/// second slot of `lddw` has its own index.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Program<'a> {
    bytes: &'a [u8],
}

impl<'a> Program<'a> {
    /// Validates `bytes`; `is_helper(id)` says whether `call id` (helper form) names a helper
    /// the embedder registers.
    pub fn new(bytes: &'a [u8], is_helper: impl Fn(i32) -> bool) -> Result<Program<'a>, Error> {
        Program::checked(bytes, &is_helper, None)
    }

    /// Like [`Program::new`], and also accepts the pseudo loads of maps (Linux's encoding):
    /// `lddw` with src 1 (`BPF_PSEUDO_MAP_FD`: imm = map index, second imm 0) or src 2
    /// (`BPF_PSEUDO_MAP_VALUE`: imm = map index, second imm = byte offset in the value).
    /// `map_value_size(index)` gives the value size of map `index`, or `None` when there is
    /// no such map; a value offset must be below the value size.
    pub fn with_maps(
        bytes: &'a [u8],
        is_helper: impl Fn(i32) -> bool,
        map_value_size: impl Fn(u32) -> Option<u32>,
    ) -> Result<Program<'a>, Error> {
        Program::checked(bytes, &is_helper, Some(&map_value_size))
    }

    fn checked(
        bytes: &'a [u8],
        is_helper: &dyn Fn(i32) -> bool,
        maps: Option<MapValueSize>,
    ) -> Result<Program<'a>, Error> {
        if !bytes.len().is_multiple_of(Insn::SIZE) {
            return Err(Error::BytecodeLength { len: clamp_u32(bytes.len()) });
        }
        let len = bytes.len() / Insn::SIZE;
        if len == 0 {
            return Err(Error::EmptyProgram);
        }
        if len > MAX_INSNS {
            return Err(Error::ProgramTooLong { len: clamp_u32(len), max: MAX_INSNS as u32 });
        }
        let program = Program { bytes };
        program.validate(is_helper, maps)?;
        Ok(program)
    }

    /// Number of 8-byte slots.
    #[allow(clippy::len_without_is_empty)] // a validated program is never empty
    pub fn len(&self) -> usize {
        self.bytes.len() / Insn::SIZE
    }

    /// The bytecode, as given to [`Program::new`].
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Decodes slot `pc`; a default (all-zero) instruction when `pc` is out of range.
    #[inline]
    pub fn insn(&self, pc: usize) -> Insn {
        self.get(pc).unwrap_or_default()
    }

    /// Decodes slot `pc`, or `None` when `pc` is out of range.
    #[inline]
    pub fn get(&self, pc: usize) -> Option<Insn> {
        let start = pc.checked_mul(Insn::SIZE)?;
        let slot = self.bytes.get(start..start.checked_add(Insn::SIZE)?)?;
        let slot: [u8; 8] = slot.try_into().ok()?;
        Some(Insn::decode(slot))
    }

    /// The 64-bit immediate of the `lddw` whose first slot is `pc`:
    /// `(imm of slot pc + 1) << 32 | (imm of slot pc as u32)`.
    #[inline]
    pub fn lddw_value(&self, pc: usize) -> u64 {
        let lo = self.insn(pc).imm as u32 as u64;
        let hi = self.insn(pc.wrapping_add(1)).imm as u32 as u64;
        (hi << 32) | lo
    }

    /// The instructions in order, as `(pc, insn)`. The second slot of `lddw` is not yielded
    /// on its own (read it with [`Program::insn`]`(pc + 1)` or use [`Program::lddw_value`]),
    /// so every `pc` yielded is an instruction start.
    pub fn iter(&self) -> Iter<'a> {
        Iter { program: *self, pc: 0 }
    }

    /// Whether slot `pc` is the second slot of an `lddw` (valid only on validated programs).
    #[inline]
    pub fn is_lddw_second_slot(&self, pc: usize) -> bool {
        pc > 0 && self.insn(pc - 1).opcode == op::LDDW
    }

    fn validate(&self, is_helper: &dyn Fn(i32) -> bool, maps: Option<MapValueSize>) -> Result<(), Error> {
        let len = self.len();
        // Pass 1: every instruction on its own, and lddw structure.
        let mut pc = 0;
        let mut last = 0;
        while pc < len {
            let insn = self.insn(pc);
            last = pc;
            if insn.opcode == op::LDDW {
                check_lddw(self, pc, insn, maps)?;
                pc += 2;
            } else {
                check_insn(pc, insn, is_helper)?;
                pc += 1;
            }
        }
        // Pass 2: jump and call targets (lddw second slots are now known to be well formed,
        // so slot t is a second slot iff slot t - 1 has the lddw opcode).
        for (pc, insn) in self.iter() {
            if let Some(target) = branch_target(pc, insn) {
                if target < 0 || target >= len as i64 {
                    return Err(Error::JumpOutOfRange { pc: pc as u32, target });
                }
                let t = target as usize;
                if self.is_lddw_second_slot(t) {
                    return Err(Error::JumpIntoLddw { pc: pc as u32, target: t as u32 });
                }
            }
        }
        // Execution must not run past the last instruction.
        let end = self.insn(last);
        if !matches!(end.opcode, op::EXIT | op::JA | op::JA32) {
            return Err(Error::FallsOffEnd { pc: last as u32 });
        }
        Ok(())
    }
}

/// Iterator over the instructions of a [`Program`] (see [`Program::iter`]).
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    program: Program<'a>,
    pc: usize,
}

impl Iterator for Iter<'_> {
    type Item = (usize, Insn);

    #[inline]
    fn next(&mut self) -> Option<(usize, Insn)> {
        let pc = self.pc;
        let insn = self.program.get(pc)?;
        self.pc = pc + if insn.opcode == op::LDDW { 2 } else { 1 };
        Some((pc, insn))
    }
}

impl<'a> IntoIterator for &Program<'a> {
    type Item = (usize, Insn);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The slot a jump or local call at `pc` may transfer control to (not for `exit`/helpers).
/// Valid on any instruction; `None` for instructions that do not branch.
pub fn branch_target(pc: usize, insn: Insn) -> Option<i64> {
    let pc = pc as i64;
    match insn.class() {
        class::JMP => match insn.opcode & 0xf0 {
            jmp::CALL if insn.opcode == op::CALL && insn.src == pseudo::CALL_LOCAL => Some(pc + insn.imm as i64 + 1),
            jmp::CALL | jmp::EXIT => None,
            _ => Some(pc + insn.off as i64 + 1),
        },
        class::JMP32 => match insn.opcode & 0xf0 {
            jmp::JA => Some(pc + insn.imm as i64 + 1),
            jmp::CALL | jmp::EXIT => None,
            _ => Some(pc + insn.off as i64 + 1),
        },
        _ => None,
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn unknown(pc: usize, insn: Insn) -> Error {
    Error::UnknownOpcode { pc: pc as u32, opcode: insn.opcode }
}

fn reserved(pc: usize) -> Error {
    Error::ReservedField { pc: pc as u32 }
}

/// The second operand of ALU and jump instructions: with the X bit a register and a zero
/// imm; without it (an immediate) src must be zero.
fn source_operand(pc: usize, insn: &Insn, x: bool) -> Result<(), Error> {
    if x {
        if insn.imm != 0 {
            return Err(reserved(pc));
        }
        reg(pc, insn.src)?;
    } else if insn.src != 0 {
        return Err(reserved(pc));
    }
    Ok(())
}

/// A register operand must be r0..r10.
fn reg(pc: usize, r: u8) -> Result<(), Error> {
    if r >= REGISTER_COUNT { Err(Error::BadRegister { pc: pc as u32, reg: r }) } else { Ok(()) }
}

/// A destination register must be r0..r9.
fn dst_reg(pc: usize, r: u8) -> Result<(), Error> {
    reg(pc, r)?;
    if r == FRAME_POINTER { Err(Error::FrameRegisterWrite { pc: pc as u32 }) } else { Ok(()) }
}

/// The value size of map `index`, `None` when there is no such map.
type MapValueSize<'m> = &'m dyn Fn(u32) -> Option<u32>;

fn check_lddw(program: &Program, pc: usize, insn: Insn, maps: Option<MapValueSize>) -> Result<(), Error> {
    let Some(second) = program.get(pc + 1) else {
        return Err(Error::TruncatedLddw { pc: pc as u32 });
    };
    match (insn.src, maps) {
        (pseudo::LDDW_IMM64, _) => {}
        (pseudo::LDDW_MAP_FD | pseudo::LDDW_MAP_VALUE, Some(value_size)) => {
            let map = insn.imm as u32;
            let size = value_size(map).ok_or(Error::UnknownMap { pc: pc as u32, map })?;
            let offset = second.imm as u32;
            if insn.src == pseudo::LDDW_MAP_FD && offset != 0 {
                return Err(Error::BadLddwSecondSlot { pc: (pc + 1) as u32 });
            }
            if insn.src == pseudo::LDDW_MAP_VALUE && offset >= size {
                return Err(Error::MapValueOffset { pc: pc as u32, map, offset });
            }
        }
        // Other pseudo loads (BTF ids, map indices by fd array...) are not supported, nor
        // map loads where the embedder gives no maps.
        _ => return Err(unknown(pc, insn)),
    }
    if insn.off != 0 {
        return Err(reserved(pc));
    }
    dst_reg(pc, insn.dst)?;
    if second.opcode != 0 || second.dst != 0 || second.src != 0 || second.off != 0 {
        return Err(Error::BadLddwSecondSlot { pc: (pc + 1) as u32 });
    }
    Ok(())
}

fn check_insn(pc: usize, insn: Insn, is_helper: &dyn Fn(i32) -> bool) -> Result<(), Error> {
    match insn.class() {
        class::ALU | class::ALU64 => check_alu(pc, insn),
        class::JMP | class::JMP32 => check_jmp(pc, insn, is_helper),
        class::LDX => check_ldx(pc, insn),
        class::ST => check_st(pc, insn),
        class::STX => check_stx(pc, insn),
        // class::LD: only lddw (handled by the caller); LD_ABS/LD_IND are not supported.
        _ => Err(unknown(pc, insn)),
    }
}

fn check_alu(pc: usize, insn: Insn) -> Result<(), Error> {
    let is64 = insn.class() == class::ALU64;
    let x = insn.opcode & source::X != 0;
    let code = insn.opcode & 0xf0;
    match code {
        alu::NEG => {
            if x {
                return Err(unknown(pc, insn));
            }
            if insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                return Err(reserved(pc));
            }
        }
        alu::END => {
            // ALU64 END is bswap and has no source variant.
            if is64 && x {
                return Err(unknown(pc, insn));
            }
            if !matches!(insn.imm, 16 | 32 | 64) {
                return Err(unknown(pc, insn));
            }
            if insn.src != 0 || insn.off != 0 {
                return Err(reserved(pc));
            }
        }
        alu::ADD
        | alu::SUB
        | alu::MUL
        | alu::DIV
        | alu::OR
        | alu::AND
        | alu::LSH
        | alu::RSH
        | alu::MOD
        | alu::XOR
        | alu::MOV
        | alu::ARSH => {
            source_operand(pc, &insn, x)?;
            match code {
                alu::DIV | alu::MOD => {
                    // off 1: sdiv / smod
                    if insn.off != 0 && insn.off != 1 {
                        return Err(unknown(pc, insn));
                    }
                }
                alu::MOV => {
                    // off 8/16/32 with a register source: movsx (32 only for ALU64)
                    let ok = match insn.off {
                        0 => true,
                        8 | 16 => x,
                        32 => x && is64,
                        _ => false,
                    };
                    if !ok {
                        return Err(if x { unknown(pc, insn) } else { reserved(pc) });
                    }
                }
                _ => {
                    if insn.off != 0 {
                        return Err(reserved(pc));
                    }
                }
            }
        }
        _ => return Err(unknown(pc, insn)),
    }
    dst_reg(pc, insn.dst)
}

fn check_jmp(pc: usize, insn: Insn, is_helper: &dyn Fn(i32) -> bool) -> Result<(), Error> {
    let is32 = insn.class() == class::JMP32;
    let x = insn.opcode & source::X != 0;
    match insn.opcode & 0xf0 {
        jmp::JA => {
            if x {
                return Err(unknown(pc, insn));
            }
            // ja: target in off; ja32 (gotol): target in imm.
            let unused = if is32 { insn.off as i32 } else { insn.imm };
            if insn.dst != 0 || insn.src != 0 || unused != 0 {
                return Err(reserved(pc));
            }
        }
        jmp::CALL => {
            if is32 {
                return Err(unknown(pc, insn));
            }
            if x {
                // callx: the helper id is in register dst.
                if insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                    return Err(reserved(pc));
                }
                reg(pc, insn.dst)?;
            } else {
                if insn.src != pseudo::CALL_HELPER && insn.src != pseudo::CALL_LOCAL {
                    return Err(unknown(pc, insn));
                }
                if insn.dst != 0 || insn.off != 0 {
                    return Err(reserved(pc));
                }
                if insn.src == pseudo::CALL_HELPER && !is_helper(insn.imm) {
                    return Err(Error::UnknownHelper { pc: pc as u32, id: insn.imm });
                }
            }
        }
        jmp::EXIT => {
            if is32 || x {
                return Err(unknown(pc, insn));
            }
            if insn.dst != 0 || insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                return Err(reserved(pc));
            }
        }
        jmp::JEQ
        | jmp::JGT
        | jmp::JGE
        | jmp::JSET
        | jmp::JNE
        | jmp::JSGT
        | jmp::JSGE
        | jmp::JLT
        | jmp::JLE
        | jmp::JSLT
        | jmp::JSLE => {
            source_operand(pc, &insn, x)?;
            reg(pc, insn.dst)?;
        }
        _ => return Err(unknown(pc, insn)),
    }
    Ok(())
}

fn check_ldx(pc: usize, insn: Insn) -> Result<(), Error> {
    let size = insn.opcode & 0x18;
    match insn.opcode & 0xe0 {
        mem::MEM => {}
        mem::MEMSX if size != mem::DW => {}
        _ => return Err(unknown(pc, insn)),
    }
    if insn.imm != 0 {
        return Err(reserved(pc));
    }
    reg(pc, insn.src)?;
    dst_reg(pc, insn.dst)
}

fn check_st(pc: usize, insn: Insn) -> Result<(), Error> {
    if insn.opcode & 0xe0 != mem::MEM {
        return Err(unknown(pc, insn));
    }
    if insn.src != 0 {
        return Err(reserved(pc));
    }
    reg(pc, insn.dst)
}

fn check_stx(pc: usize, insn: Insn) -> Result<(), Error> {
    let size = insn.opcode & 0x18;
    match insn.opcode & 0xe0 {
        mem::MEM => {
            if insn.imm != 0 {
                return Err(reserved(pc));
            }
        }
        mem::ATOMIC => {
            if size != mem::W && size != mem::DW {
                return Err(unknown(pc, insn));
            }
            const ADD_FETCH: i32 = atomic::ADD | atomic::FETCH;
            const OR_FETCH: i32 = atomic::OR | atomic::FETCH;
            const AND_FETCH: i32 = atomic::AND | atomic::FETCH;
            const XOR_FETCH: i32 = atomic::XOR | atomic::FETCH;
            let writes_src = match insn.imm {
                atomic::ADD | atomic::OR | atomic::AND | atomic::XOR | atomic::CMPXCHG => false,
                ADD_FETCH | OR_FETCH | AND_FETCH | XOR_FETCH | atomic::XCHG => true,
                _ => return Err(unknown(pc, insn)),
            };
            reg(pc, insn.dst)?;
            if writes_src {
                dst_reg(pc, insn.src)?;
            }
        }
        _ => return Err(unknown(pc, insn)),
    }
    reg(pc, insn.dst)?;
    reg(pc, insn.src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insns: &[Insn]) -> [u8; 256] {
        let mut out = [0u8; 256];
        for (chunk, insn) in out.chunks_exact_mut(8).zip(insns) {
            chunk.copy_from_slice(&insn.encode());
        }
        out
    }

    fn check(insns: &[Insn]) -> Result<(), Error> {
        let b = bytes(insns);
        Program::new(&b[..insns.len() * 8], |id| id == 1).map(|_| ())
    }

    const EXIT: Insn = Insn::new(op::EXIT, 0, 0, 0, 0);
    const MOV64_K: u8 = class::ALU64 | alu::MOV | source::K;
    const MOV64_X: u8 = class::ALU64 | alu::MOV | source::X;

    #[test]
    fn accepts_minimal() {
        assert_eq!(check(&[EXIT]), Ok(()));
        assert_eq!(check(&[Insn::new(MOV64_K, 0, 0, 0, 7), EXIT]), Ok(()));
    }

    #[test]
    fn length_errors() {
        assert_eq!(Program::new(&[0u8; 7], |_| true).err(), Some(Error::BytecodeLength { len: 7 }));
        assert_eq!(Program::new(&[], |_| true).err(), Some(Error::EmptyProgram));
    }

    #[test]
    fn too_long() {
        // Length is checked before any slot is decoded, so zeros suffice.
        extern crate std;
        let big = std::vec![0u8; (MAX_INSNS + 1) * 8];
        assert_eq!(
            Program::new(&big, |_| true).err(),
            Some(Error::ProgramTooLong { len: (MAX_INSNS + 1) as u32, max: MAX_INSNS as u32 })
        );
    }

    #[test]
    fn unknown_opcodes() {
        let cases = [
            Insn::new(0xd4, 0, 0, 0, 8),     // le8
            Insn::new(0xdf, 0, 0, 0, 16),    // ALU64 END with X
            Insn::new(0x20, 0, 0, 0, 0),     // LD_ABS
            Insn::new(0x40, 0, 0, 0, 0),     // LD_IND
            Insn::new(0xc3, 1, 2, 0, 0x10),  // bad atomic op
            Insn::new(0xd3, 1, 2, 0, 0),     // atomic byte size
            Insn::new(0x93, 1, 2, 0, 0),     // MEMSX on STX
            Insn::new(0x92, 1, 0, 0, 0),     // MEMSX on ST
            Insn::new(0x99, 1, 2, 0, 0),     // ldxsdw
            Insn::new(0x3f, 1, 2, 2, 0),     // sdiv offset 2
            Insn::new(MOV64_X, 1, 2, 7, 0),  // movsx offset 7
            Insn::new(0xbc, 1, 2, 32, 0),    // movsx32 offset 32
            Insn::new(op::CALL, 0, 2, 0, 1), // call BTF
            Insn::new(0xe7, 0, 0, 0, 0),     // ALU op 0xe
            Insn::new(0x8c, 0, 0, 0, 0),     // neg with X
            Insn::new(0x96, 0, 0, 0, 0),     // JMP32 exit
            Insn::new(0x0d, 0, 0, 0, 0),     // ja with X
        ];
        for insn in cases {
            assert_eq!(check(&[insn, EXIT]), Err(Error::UnknownOpcode { pc: 0, opcode: insn.opcode }), "{insn:?}");
        }
        // lddw with src != 0 (pseudo map load)
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 1, 0, 0), Insn::default(), EXIT]),
            Err(Error::UnknownOpcode { pc: 0, opcode: op::LDDW })
        );
    }

    #[test]
    fn reserved_fields() {
        let cases = [
            Insn::new(0x07, 0, 0, 1, 1),      // add64 imm, offset
            Insn::new(0x0f, 0, 1, 0, 1),      // add64 reg, imm
            Insn::new(MOV64_K, 0, 0, 8, 1),   // movsx needs a register source
            Insn::new(0x87, 0, 0, 0, 1),      // neg64 imm
            Insn::new(0xdc, 0, 1, 0, 16),     // be16 src
            Insn::new(op::JA, 1, 0, 0, 0),    // ja dst
            Insn::new(op::JA32, 0, 0, 1, 0),  // gotol off
            Insn::new(op::CALL, 1, 0, 0, 1),  // call dst
            Insn::new(op::CALLX, 1, 1, 0, 0), // callx src
            Insn::new(op::EXIT, 0, 0, 0, 1),
            Insn::new(0x1d, 0, 1, 0, 1),   // jeq reg, imm
            Insn::new(0x15, 0, 1, 0, 0),   // jeq imm, src
            Insn::new(0x79, 0, 10, -8, 1), // ldxdw imm
            Insn::new(0x7a, 10, 1, -8, 0), // stdw src
            Insn::new(0x7b, 10, 0, -8, 1), // stxdw imm
        ];
        for insn in cases {
            assert_eq!(check(&[insn, EXIT]), Err(Error::ReservedField { pc: 0 }), "{insn:?}");
        }
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 0, 1, 0), Insn::default(), EXIT]),
            Err(Error::ReservedField { pc: 0 })
        );
    }

    #[test]
    fn registers() {
        assert_eq!(check(&[Insn::new(MOV64_K, 11, 0, 0, 0), EXIT]), Err(Error::BadRegister { pc: 0, reg: 11 }));
        assert_eq!(check(&[Insn::new(MOV64_X, 0, 12, 0, 0), EXIT]), Err(Error::BadRegister { pc: 0, reg: 12 }));
        assert_eq!(check(&[Insn::new(op::CALLX, 15, 0, 0, 0), EXIT]), Err(Error::BadRegister { pc: 0, reg: 15 }));
        for insn in [
            Insn::new(MOV64_K, 10, 0, 0, 0),
            Insn::new(0x79, 10, 1, 0, 0),    // ldxdw r10
            Insn::new(0xdb, 1, 10, 0, 0x01), // fetch add into r10
            Insn::new(0xdb, 1, 10, 0, 0xe1), // xchg into r10
            Insn::new(0xd4, 10, 0, 0, 16),   // le16 r10
        ] {
            assert_eq!(check(&[insn, EXIT]), Err(Error::FrameRegisterWrite { pc: 0 }), "{insn:?}");
        }
        assert_eq!(
            check(&[Insn::new(op::LDDW, 10, 0, 0, 0), Insn::default(), EXIT]),
            Err(Error::FrameRegisterWrite { pc: 0 })
        );
        // cmpxchg writes r0, not src; reading r10 is fine.
        assert_eq!(check(&[Insn::new(0xdb, 1, 10, 0, 0xf1), EXIT]), Ok(()));
        assert_eq!(check(&[Insn::new(MOV64_X, 1, 10, 0, 0), EXIT]), Ok(()));
    }

    #[test]
    fn jumps() {
        assert_eq!(check(&[Insn::new(op::JA, 0, 0, 5, 0), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: 6 }));
        assert_eq!(check(&[Insn::new(op::JA, 0, 0, -2, 0), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: -1 }));
        assert_eq!(check(&[Insn::new(op::JA32, 0, 0, 0, -3), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: -2 }));
        assert_eq!(check(&[Insn::new(op::CALL, 0, 1, 0, 9), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: 10 }));
        assert_eq!(
            check(&[Insn::new(0x15, 1, 0, 1, 0), Insn::new(op::LDDW, 0, 0, 0, 1), Insn::default(), EXIT]),
            Err(Error::JumpIntoLddw { pc: 0, target: 2 })
        );
        // ja -1 (an infinite loop) is a valid program.
        assert_eq!(check(&[Insn::new(op::JA, 0, 0, -1, 0)]), Ok(()));
    }

    #[test]
    fn lddw_structure() {
        assert_eq!(check(&[EXIT, Insn::new(op::LDDW, 0, 0, 0, 0)]), Err(Error::TruncatedLddw { pc: 1 }));
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 0, 0, 0), Insn::new(0, 1, 0, 0, 0), EXIT]),
            Err(Error::BadLddwSecondSlot { pc: 1 })
        );
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 0, 0, 0), Insn::new(op::EXIT, 0, 0, 0, 0), EXIT]),
            Err(Error::BadLddwSecondSlot { pc: 1 })
        );
        assert_eq!(check(&[Insn::new(op::LDDW, 0, 0, 0, 0), Insn::new(0, 0, 0, 0, 5), EXIT]), Ok(()));
        // lddw last: falls off the end
        assert_eq!(check(&[EXIT, Insn::new(op::LDDW, 0, 0, 0, 0), Insn::default()]), Err(Error::FallsOffEnd { pc: 1 }));
    }

    #[test]
    fn pseudo_map_loads() {
        // Two maps, with values of 8 and 16 bytes.
        let with_maps = |insns: &[Insn]| {
            let b = bytes(insns);
            let sizes = [8u32, 16];
            Program::with_maps(&b[..insns.len() * 8], |_| false, |i| sizes.get(i as usize).copied()).map(|_| ())
        };
        let lddw =
            |src: u8, imm: i32, second: i32| [Insn::new(op::LDDW, 1, src, 0, imm), Insn::new(0, 0, 0, 0, second)];
        let prog = |pair: [Insn; 2]| [pair[0], pair[1], EXIT];
        assert_eq!(with_maps(&prog(lddw(1, 1, 0))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(2, 0, 7))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(2, 1, 15))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(0, 5, 5))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(1, 2, 0))), Err(Error::UnknownMap { pc: 0, map: 2 }));
        assert_eq!(with_maps(&prog(lddw(2, -1, 0))), Err(Error::UnknownMap { pc: 0, map: u32::MAX }));
        assert_eq!(with_maps(&prog(lddw(2, 0, 8))), Err(Error::MapValueOffset { pc: 0, map: 0, offset: 8 }));
        assert_eq!(with_maps(&prog(lddw(2, 1, -1))), Err(Error::MapValueOffset { pc: 0, map: 1, offset: u32::MAX }));
        assert_eq!(with_maps(&prog(lddw(1, 0, 4))), Err(Error::BadLddwSecondSlot { pc: 1 }));
        for src in [3, 4, 5, 6, 15] {
            assert_eq!(with_maps(&prog(lddw(src, 0, 0))), Err(Error::UnknownOpcode { pc: 0, opcode: op::LDDW }));
        }
        // Without maps (Program::new) every pseudo load stays rejected.
        assert_eq!(check(&prog(lddw(2, 0, 0))), Err(Error::UnknownOpcode { pc: 0, opcode: op::LDDW }));
        // The other lddw checks still apply.
        assert_eq!(
            with_maps(&[Insn::new(op::LDDW, 10, 1, 0, 0), Insn::default(), EXIT]),
            Err(Error::FrameRegisterWrite { pc: 0 })
        );
        assert_eq!(
            with_maps(&[Insn::new(op::LDDW, 1, 2, 0, 0), Insn::new(0, 1, 0, 0, 0), EXIT]),
            Err(Error::BadLddwSecondSlot { pc: 1 })
        );
    }

    #[test]
    fn helpers_and_end() {
        assert_eq!(check(&[Insn::new(op::CALL, 0, 0, 0, 1), EXIT]), Ok(()));
        assert_eq!(check(&[Insn::new(op::CALL, 0, 0, 0, 2), EXIT]), Err(Error::UnknownHelper { pc: 0, id: 2 }));
        assert_eq!(check(&[Insn::new(MOV64_K, 0, 0, 0, 0)]), Err(Error::FallsOffEnd { pc: 0 }));
        assert_eq!(check(&[EXIT, Insn::new(op::CALL, 0, 1, 0, -2)]), Err(Error::FallsOffEnd { pc: 1 }));
        assert_eq!(check(&[EXIT, Insn::new(op::JA32, 0, 0, 0, -2)]), Ok(()));
    }

    #[test]
    fn iter_skips_second_slots() {
        let b = bytes(&[Insn::new(op::LDDW, 0, 0, 0, 1), Insn::new(0, 0, 0, 0, 2), EXIT]);
        let p = Program::new(&b[..24], |_| false).unwrap();
        let mut it = p.iter();
        assert_eq!(it.next().map(|(pc, i)| (pc, i.opcode)), Some((0, op::LDDW)));
        assert_eq!(it.next().map(|(pc, i)| (pc, i.opcode)), Some((2, op::EXIT)));
        assert_eq!(it.next(), None);
        assert_eq!(p.lddw_value(0), (2 << 32) | 1);
        assert_eq!(p.insn(99), Insn::default());
    }
}
