//! Disassembler: prints instructions in the syntax [`super::asm`] accepts, one per line.
//!
//! Jump targets are printed as relative offsets (`ja +3`, `jeq %r1, 0, -2`, `ja32 +70000`,
//! `call local +5`), `lddw` as one line with its 64-bit value in hex. A slot the assembler
//! could not reproduce exactly — an unknown opcode, a register above r10, a reserved field
//! that is not zero, an `lddw` without a clean second slot — is printed as
//! `.raw 0x<16 hex digits>` (the little-endian u64 of its 8 bytes), which the assembler turns
//! back into the same slot. So `assemble(disassemble(p)) == p` for every `p`, and printing
//! never panics.

use core::fmt;

use super::insn::{Insn, REGISTER_COUNT, alu, atomic, class, jmp, mem, op, pseudo, source};

/// Displays a program, one instruction per line (each line ends in `\n`).
#[derive(Clone, Copy, Debug)]
pub struct Disassembly<'a>(pub &'a [Insn]);

impl<'a> Disassembly<'a> {
    /// The same listing with each line prefixed by its slot index (`  12: `); for reading,
    /// not for reassembly.
    pub fn numbered(self) -> Numbered<'a> {
        Numbered(self.0)
    }
}

impl fmt::Display for Disassembly<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_program(f, self.0, false)
    }
}

/// See [`Disassembly::numbered`].
#[derive(Clone, Copy, Debug)]
pub struct Numbered<'a>(&'a [Insn]);

impl fmt::Display for Numbered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_program(f, self.0, true)
    }
}

fn write_program(f: &mut fmt::Formatter<'_>, insns: &[Insn], numbered: bool) -> fmt::Result {
    let mut pc = 0usize;
    while let Some(insn) = insns.get(pc) {
        if numbered {
            write!(f, "{pc:4}: ")?;
        }
        let used = write_insn(f, insn, insns.get(pc + 1))?;
        f.write_str("\n")?;
        pc += used;
    }
    Ok(())
}

/// Writes one instruction (no newline); `next` is the following slot, used by `lddw`.
/// Returns the number of slots consumed (1, or 2 for `lddw`).
pub fn write_insn(f: &mut dyn fmt::Write, insn: &Insn, next: Option<&Insn>) -> Result<usize, fmt::Error> {
    if insn.opcode == op::LDDW {
        if let Some(hi) = next
            && insn.src == 0
            && insn.off == 0
            && insn.dst < REGISTER_COUNT
            && is_lddw_tail(hi)
        {
            let value = u64::from(insn.imm as u32) | (u64::from(hi.imm as u32) << 32);
            write!(f, "lddw %r{}, {:#x}", insn.dst, value)?;
            return Ok(2);
        }
        write_raw(f, insn)?;
        return Ok(1);
    }
    if !write_single(f, insn)? {
        write_raw(f, insn)?;
    }
    Ok(1)
}

/// Displays one slot on its own (an `lddw` first slot prints as `.raw`).
#[derive(Clone, Copy, Debug)]
pub struct DisplayInsn<'a>(pub &'a Insn);

impl fmt::Display for DisplayInsn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_insn(f, self.0, None).map(|_| ())
    }
}

fn is_lddw_tail(hi: &Insn) -> bool {
    hi.opcode == 0 && hi.dst == 0 && hi.src == 0 && hi.off == 0
}

fn write_raw(f: &mut dyn fmt::Write, insn: &Insn) -> fmt::Result {
    write!(f, ".raw {:#018x}", u64::from_le_bytes(insn.encode()))
}

/// A memory operand `[%rN+off]`.
struct MemOp(u8, i16);

impl fmt::Display for MemOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[%r{}{:+}]", self.0, self.1)
    }
}

fn size_name(opcode: u8) -> &'static str {
    match opcode & 0x18 {
        mem::B => "b",
        mem::H => "h",
        mem::W => "w",
        _ => "dw",
    }
}

/// Writes `insn` if it has a canonical text form; returns `Ok(false)` (writing nothing) if not.
fn write_single(f: &mut dyn fmt::Write, insn: &Insn) -> Result<bool, fmt::Error> {
    let &Insn { opcode, dst, src, off, imm } = insn;
    if dst >= REGISTER_COUNT || src >= REGISTER_COUNT {
        return Ok(false);
    }
    let code = opcode & 0xf0;
    let is_x = opcode & source::X != 0;
    match insn.class() {
        cls @ (class::ALU | class::ALU64) => {
            let suffix = if cls == class::ALU { "32" } else { "" };
            if code == alu::END {
                if src != 0 || off != 0 || !matches!(imm, 16 | 32 | 64) {
                    return Ok(false);
                }
                let name = match (cls, is_x) {
                    (class::ALU, false) => "le",
                    (class::ALU, true) => "be",
                    (_, false) => "bswap",
                    (_, true) => return Ok(false),
                };
                write!(f, "{name}{imm} %r{dst}")?;
                return Ok(true);
            }
            if code == alu::NEG {
                if is_x || src != 0 || off != 0 || imm != 0 {
                    return Ok(false);
                }
                write!(f, "neg{suffix} %r{dst}")?;
                return Ok(true);
            }
            if code == alu::MOV && is_x && off != 0 {
                let name = match (cls, off) {
                    (class::ALU, 8) => "movsx832",
                    (class::ALU, 16) => "movsx1632",
                    (class::ALU64, 8) => "movsx864",
                    (class::ALU64, 16) => "movsx1664",
                    (class::ALU64, 32) => "movsx3264",
                    _ => return Ok(false),
                };
                if imm != 0 {
                    return Ok(false);
                }
                write!(f, "{name} %r{dst}, %r{src}")?;
                return Ok(true);
            }
            let name = match (code, off) {
                (alu::ADD, 0) => "add",
                (alu::SUB, 0) => "sub",
                (alu::MUL, 0) => "mul",
                (alu::DIV, 0) => "div",
                (alu::DIV, 1) => "sdiv",
                (alu::OR, 0) => "or",
                (alu::AND, 0) => "and",
                (alu::LSH, 0) => "lsh",
                (alu::RSH, 0) => "rsh",
                (alu::MOD, 0) => "mod",
                (alu::MOD, 1) => "smod",
                (alu::XOR, 0) => "xor",
                (alu::MOV, 0) => "mov",
                (alu::ARSH, 0) => "arsh",
                _ => return Ok(false),
            };
            if is_x {
                if imm != 0 {
                    return Ok(false);
                }
                write!(f, "{name}{suffix} %r{dst}, %r{src}")?;
            } else {
                if src != 0 {
                    return Ok(false);
                }
                write!(f, "{name}{suffix} %r{dst}, {imm}")?;
            }
            Ok(true)
        }
        cls @ (class::JMP | class::JMP32) => {
            let suffix = if cls == class::JMP32 { "32" } else { "" };
            match code {
                jmp::JA => {
                    if is_x || dst != 0 || src != 0 {
                        return Ok(false);
                    }
                    if cls == class::JMP && imm == 0 {
                        write!(f, "ja {off:+}")?;
                    } else if cls == class::JMP32 && off == 0 {
                        write!(f, "ja32 {imm:+}")?;
                    } else {
                        return Ok(false);
                    }
                    Ok(true)
                }
                jmp::CALL => {
                    if cls != class::JMP || off != 0 {
                        return Ok(false);
                    }
                    if opcode == op::CALLX {
                        if src != 0 || imm != 0 {
                            return Ok(false);
                        }
                        write!(f, "call %r{dst}")?;
                        return Ok(true);
                    }
                    if dst != 0 {
                        return Ok(false);
                    }
                    match src {
                        pseudo::CALL_HELPER => write!(f, "call {imm}")?,
                        pseudo::CALL_LOCAL => write!(f, "call local {imm:+}")?,
                        pseudo::CALL_BTF => write!(f, "call runtime {imm}")?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                }
                jmp::EXIT => {
                    if opcode != op::EXIT || dst != 0 || src != 0 || off != 0 || imm != 0 {
                        return Ok(false);
                    }
                    f.write_str("exit")?;
                    Ok(true)
                }
                _ => {
                    let name = match code {
                        jmp::JEQ => "jeq",
                        jmp::JGT => "jgt",
                        jmp::JGE => "jge",
                        jmp::JSET => "jset",
                        jmp::JNE => "jne",
                        jmp::JSGT => "jsgt",
                        jmp::JSGE => "jsge",
                        jmp::JLT => "jlt",
                        jmp::JLE => "jle",
                        jmp::JSLT => "jslt",
                        jmp::JSLE => "jsle",
                        _ => return Ok(false),
                    };
                    if is_x {
                        if imm != 0 {
                            return Ok(false);
                        }
                        write!(f, "{name}{suffix} %r{dst}, %r{src}, {off:+}")?;
                    } else {
                        if src != 0 {
                            return Ok(false);
                        }
                        write!(f, "{name}{suffix} %r{dst}, {imm}, {off:+}")?;
                    }
                    Ok(true)
                }
            }
        }
        class::LDX => {
            let mode = opcode & 0xe0;
            let signed = match mode {
                mem::MEM => "",
                mem::MEMSX if opcode & 0x18 != mem::DW => "s",
                _ => return Ok(false),
            };
            if imm != 0 {
                return Ok(false);
            }
            write!(f, "ldx{signed}{} %r{dst}, {}", size_name(opcode), MemOp(src, off))?;
            Ok(true)
        }
        class::ST => {
            if opcode & 0xe0 != mem::MEM || src != 0 {
                return Ok(false);
            }
            write!(f, "st{} {}, {imm}", size_name(opcode), MemOp(dst, off))?;
            Ok(true)
        }
        class::STX => {
            let mode = opcode & 0xe0;
            if mode == mem::MEM {
                if imm != 0 {
                    return Ok(false);
                }
                write!(f, "stx{} {}, %r{src}", size_name(opcode), MemOp(dst, off))?;
                return Ok(true);
            }
            let size = opcode & 0x18;
            if mode != mem::ATOMIC || !(size == mem::W || size == mem::DW) {
                return Ok(false);
            }
            let suffix = if size == mem::W { "32" } else { "" };
            let (fetch, name) = match imm {
                atomic::XCHG => ("", "xchg"),
                atomic::CMPXCHG => ("", "cmpxchg"),
                _ => {
                    let fetch = if imm & atomic::FETCH != 0 { "fetch " } else { "" };
                    let name = match imm & !atomic::FETCH {
                        atomic::ADD => "add",
                        atomic::OR => "or",
                        atomic::AND => "and",
                        atomic::XOR => "xor",
                        _ => return Ok(false),
                    };
                    (fetch, name)
                }
            };
            write!(f, "lock {fetch}{name}{suffix} {}, %r{src}", MemOp(dst, off))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn prints_canonical_forms() {
        let p = [
            Insn::new(0xb7, 0, 0, 0, -1),
            Insn::new(op::LDDW, 1, 0, 0, 0x5566_7788),
            Insn::new(0, 0, 0, 0, 0x1122_3344),
            Insn::new(0x15, 1, 0, -2, 7),
            Insn::new(0x8d, 2, 0, 0, 0),
            Insn::new(0x85, 0, 1, 0, 3),
            Insn::new(0xdb, 10, 1, -8, 0xf1),
            Insn::new(0x91, 0, 10, -1, 0),
            Insn::new(0xff, 0, 0, 0, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        let text = Disassembly(&p).to_string();
        let expected = "mov %r0, -1\nlddw %r1, 0x1122334455667788\njeq %r1, 7, -2\ncall %r2\n\
                        call local +3\nlock cmpxchg [%r10-8], %r1\nldxsb %r0, [%r10-1]\n\
                        .raw 0x00000000000000ff\nexit\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn reserved_fields_print_raw() {
        // add64 imm with a nonzero offset; an lddw with nothing after it.
        let p = [Insn::new(0x07, 0, 0, 1, 1), Insn::new(op::LDDW, 0, 0, 0, 1)];
        let text = Disassembly(&p).to_string();
        assert_eq!(text, ".raw 0x0000000100010007\n.raw 0x0000000100000018\n");
    }
}
