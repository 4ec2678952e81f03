//! `tessera dump`: cross-emits a program for one ISA and lists, per eBPF instruction, the
//! stencils it became and their machine code disassembled (capstone), then the out-of-line
//! stubs apart.
//!
//! The code comes from a real emission into a buffer based at [`BASE`]; the emitter reports
//! every stencil it places (an [`Observer`]), which maps the bytes back to instructions.

use std::fmt::Write as _;

use capstone::arch::arm64::Arm64OperandType;
use capstone::arch::riscv::RiscVOperand;
use capstone::arch::x86::X86OperandType;
use capstone::arch::{ArchOperand, BuildsCapstone, BuildsCapstoneExtraMode};
use capstone::{Capstone, InsnGroupType};
use tessera::Isa;
use tessera::ebpf::jit::OwnedScratch;
use tessera::ebpf::{CompileError, Observer, Program, Vm, disasm};
use tessera::jit::StencilId;
use tessera_stencils::ids::NAMES;

/// The address the dumped code is emitted for.
pub const BASE: u64 = 0x1000_0000;

/// Where a segment of code belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The entry stencil (native ABI to pinned registers).
    Entry,
    /// The hot code of an instruction.
    Hot(usize),
    /// An out-of-line stub of an instruction.
    Cold(usize),
}

/// The code of one part, in emission order.
pub struct Segment {
    pub part: Part,
    /// Offset in the code and length in bytes.
    pub start: usize,
    pub len: usize,
    pub stencils: Vec<&'static str>,
}

/// Groups placed stencils into segments, one per instruction's hot code or stub.
#[derive(Default)]
struct Segments(Vec<Segment>);

impl Observer for Segments {
    fn placed(&mut self, pc: Option<usize>, cold: bool, id: StencilId, offset: usize, len: usize) {
        let name = NAMES.get(id.0 as usize).copied().unwrap_or("?");
        let part = match (pc, cold) {
            (None, _) => Part::Entry,
            (Some(pc), false) => Part::Hot(pc),
            (Some(pc), true) => Part::Cold(pc),
        };
        match self.0.last_mut() {
            Some(seg) if seg.part == part && seg.start + seg.len == offset => {
                seg.len += len;
                seg.stencils.push(name);
            }
            _ => self.0.push(Segment { part, start: offset, len, stencils: vec![name] }),
        }
    }
}

/// A program's code for one ISA, emitted at [`BASE`].
pub struct Emitted {
    pub address: u64,
    pub code: Vec<u8>,
    pub segments: Vec<Segment>,
}

impl Emitted {
    /// Bytes of the entry stencil, of the instructions' hot code and of the cold stubs.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let sum = |f: fn(Part) -> bool| self.segments.iter().filter(|s| f(s.part)).map(|s| s.len).sum();
        (sum(|p| p == Part::Entry), sum(|p| matches!(p, Part::Hot(_))), sum(|p| matches!(p, Part::Cold(_))))
    }

    /// The part `address` lies in, and how far into it.
    fn part_at(&self, address: u64) -> Option<(Part, u64)> {
        let offset = address.checked_sub(self.address)?;
        self.segments.iter().find(|s| (s.start as u64..(s.start + s.len) as u64).contains(&offset)).map(|s| {
            // An instruction's code may be split by nothing but its own stencils, so the first
            // segment of a part is where it starts.
            let first = self.segments.iter().find(|f| f.part == s.part).map_or(s.start, |f| f.start);
            (s.part, offset - first as u64)
        })
    }
}

/// Emits `vm`'s program for `isa` at [`BASE`], recording where every stencil went.
pub fn emit(vm: &Vm, isa: Isa) -> Result<Emitted, CompileError> {
    let need = vm.scratch_size();
    let mut scratch = OwnedScratch::with_size(need);
    let mut memory = vec![0u8; 256 + 1024 * vm.program().len()];
    let mut buffer = tessera::CodeBuffer::with_base(&mut memory, BASE);
    let mut segments = Segments::default();
    let code = vm.emit_observed(isa, &mut buffer, scratch.scratch(), &mut segments)?;
    Ok(Emitted { address: code.address, code: code.bytes.to_vec(), segments: segments.0 })
}

/// A capstone instance for `isa`, with details on (for branch targets) and skip-data on
/// (bytes it cannot decode are shown as `.byte` and decoding goes on).
pub fn disassembler(isa: Isa) -> Result<Capstone, String> {
    use capstone::arch::{arm64, riscv, x86};
    let cs = match isa {
        Isa::X86_64 => Capstone::new().x86().mode(x86::ArchMode::Mode64).detail(true).build(),
        Isa::Aarch64 => Capstone::new().arm64().mode(arm64::ArchMode::Arm).detail(true).build(),
        // RV64GC: the compressed extension is part of the ISA the stencils are built for.
        Isa::Riscv64 => Capstone::new()
            .riscv()
            .mode(riscv::ArchMode::RiscV64)
            .extra_mode([riscv::ArchExtraMode::RiscVC].into_iter())
            .detail(true)
            .build(),
    };
    let mut cs = cs.map_err(|e| format!("capstone for {}: {e}", isa.name()))?;
    cs.set_skipdata(true).map_err(|e| format!("capstone for {}: {e}", isa.name()))?;
    Ok(cs)
}

/// One machine instruction.
pub struct MachineInsn {
    pub address: u64,
    pub bytes: Vec<u8>,
    /// `mnemonic operands`.
    pub text: String,
    /// Where a direct jump, branch or call goes.
    pub target: Option<u64>,
}

/// The immediate operands of an instruction and the registers, in order.
fn operands(cs: &Capstone, insn: &capstone::Insn) -> (Vec<i64>, Vec<u16>, bool) {
    let branch_groups = [InsnGroupType::CS_GRP_JUMP, InsnGroupType::CS_GRP_CALL, InsnGroupType::CS_GRP_BRANCH_RELATIVE];
    let Ok(detail) = cs.insn_detail(insn) else { return (Vec::new(), Vec::new(), false) };
    let is_branch = detail.groups().iter().any(|g| branch_groups.contains(&u32::from(g.0)));
    let (mut imms, mut regs) = (Vec::new(), Vec::new());
    for op in detail.arch_detail().operands() {
        match op {
            ArchOperand::X86Operand(op) => match op.op_type {
                X86OperandType::Imm(v) => imms.push(v),
                X86OperandType::Reg(r) => regs.push(r.0),
                _ => {}
            },
            ArchOperand::Arm64Operand(op) => match op.op_type {
                Arm64OperandType::Imm(v) => imms.push(v),
                Arm64OperandType::Reg(r) => regs.push(r.0),
                _ => {}
            },
            ArchOperand::RiscVOperand(RiscVOperand::Imm(v)) => imms.push(v),
            ArchOperand::RiscVOperand(RiscVOperand::Reg(r)) => regs.push(r.0),
            _ => {}
        }
    }
    (imms, regs, is_branch)
}

/// Disassembles `code` placed at `address` for `isa`.
pub fn disassemble(cs: &Capstone, isa: Isa, code: &[u8], address: u64) -> Result<Vec<MachineInsn>, String> {
    let insns = cs.disasm_all(code, address).map_err(|e| format!("capstone: {e}"))?;
    // RISC-V reaches far with `auipc rX, hi` then `jalr rd, lo(rX)`: the previous `auipc`.
    let mut auipc: Option<(u64, u16, i64)> = None;
    let mut out = Vec::with_capacity(insns.len());
    for insn in insns.iter() {
        let mnemonic = insn.mnemonic().unwrap_or("?");
        let text = match insn.op_str() {
            Some(ops) if !ops.is_empty() => format!("{mnemonic} {ops}"),
            _ => mnemonic.to_string(),
        };
        let (imms, regs, is_branch) = operands(cs, insn);
        let here = insn.address();
        let target = match isa {
            // x86-64 and AArch64 branch operands are absolute addresses.
            Isa::X86_64 | Isa::Aarch64 => imms.last().filter(|_| is_branch).map(|&v| v as u64),
            Isa::Riscv64 => match (mnemonic, auipc) {
                ("jalr" | "c.jalr" | "c.jr", Some((at, reg, hi))) if regs.contains(&reg) => {
                    let lo = imms.last().copied().unwrap_or(0);
                    Some(at.wrapping_add((hi << 12).wrapping_add(lo) as u64))
                }
                // Direct branches and jumps: the operand is relative to the instruction.
                ("jalr" | "c.jalr" | "c.jr", _) => None,
                _ => imms.last().filter(|_| is_branch).map(|&v| here.wrapping_add(v as u64)),
            },
        };
        auipc = match (mnemonic, regs.first(), imms.last()) {
            ("auipc", Some(&reg), Some(&hi)) => Some((here, reg, hi)),
            _ => None,
        };
        out.push(MachineInsn { address: here, bytes: insn.bytes().to_vec(), text, target });
    }
    Ok(out)
}

/// `; -> pc 12`-style note for a branch target: the instruction (or stub) it lands in.
fn target_note(emitted: &Emitted, target: u64) -> String {
    let place = |part: Part| match part {
        Part::Entry => "entry".to_string(),
        Part::Hot(pc) => format!("pc {pc}"),
        Part::Cold(pc) => format!("stub of pc {pc}"),
    };
    match emitted.part_at(target) {
        Some((part, 0)) => format!("-> {}", place(part)),
        Some((part, into)) => format!("-> {}+{into:#x}", place(part)),
        None => String::new(),
    }
}

/// The eBPF instruction at `pc` as text.
fn insn_text(program: &Program, pc: usize) -> String {
    let mut s = String::new();
    let _ = disasm::write_insn(&mut s, &program.insn(pc), program.get(pc + 1).as_ref());
    s
}

/// Width of the bytes column: 10 bytes as `aa bb ...`.
const BYTES_COLUMN: usize = 3 * 10;

/// The whole listing as text; `function_at(pc)` names a function starting at `pc`.
pub fn dump(vm: &Vm, isa: Isa, function_at: impl Fn(usize) -> Option<String>) -> Result<String, String> {
    let program = vm.program();
    let emitted = emit(vm, isa).map_err(|e| e.to_string())?;
    let cs = disassembler(isa)?;
    let (entry, hot, cold) = emitted.sizes();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "; {} code at {:#x}, {} bytes: {entry} entry, {hot} for the instructions, {cold} in cold stubs",
        isa.name(),
        emitted.address,
        emitted.code.len()
    );
    let mut cold_header = false;
    for seg in &emitted.segments {
        let heading = match seg.part {
            Part::Entry => "entry".to_string(),
            Part::Hot(pc) => {
                if let Some(function) = function_at(pc) {
                    let _ = writeln!(out, "\n; function {function}");
                }
                format!("pc {pc}: {}", insn_text(program, pc))
            }
            Part::Cold(pc) => {
                if !cold_header {
                    let _ = writeln!(out, "\n; cold stubs (out-of-line slow paths and traps)");
                    cold_header = true;
                }
                format!("stub of pc {pc}: {}", insn_text(program, pc))
            }
        };
        let _ = writeln!(out, "\n{heading}");
        let _ = writeln!(out, "  ; {}", seg.stencils.join(", "));
        let code = emitted.code.get(seg.start..seg.start + seg.len).unwrap_or_default();
        for insn in disassemble(&cs, isa, code, emitted.address + seg.start as u64)? {
            let note = match insn.target {
                // The operand is not the address itself (RISC-V offsets): show the address.
                Some(t) if !insn.text.contains(&format!("{t:#x}")) => {
                    format!("  ; {t:#x} {}", target_note(&emitted, t))
                }
                Some(t) if emitted.part_at(t).is_some() => format!("  ; {}", target_note(&emitted, t)),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:#010x}  {:<BYTES_COLUMN$} {}{note}",
                insn.address,
                tessera_cli::to_hex(&insn.bytes),
                insn.text
            );
        }
    }

    let insns = program.iter().count();
    let _ = writeln!(out);
    let _ = writeln!(out, "eBPF instructions: {insns} ({} slots)", program.len());
    let _ = writeln!(
        out,
        "generated bytes:   {} ({entry} entry + {hot} for the instructions + {cold} in cold stubs)",
        emitted.code.len()
    );
    let _ = writeln!(
        out,
        "bytes/instruction: {:.1} (hot code, excluding entry and stubs)",
        hot as f64 / insns.max(1) as f64
    );
    Ok(out)
}
