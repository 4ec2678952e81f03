//! Reads a compiled stencil object: one function per `.text.<name>` section, its code, and
//! its relocations turned into hole records. Anything the runtime could not reproduce
//! (a relocation kind or symbol we do not know, a reference to data, a continuation reached
//! by a call) fails generation, naming the stencil.

use object::elf;
use object::read::elf::ElfFile64;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex};
use tessera_arch::{BranchUse, Isa, RelocKind};
use tessera_jit::HoleValue;

use crate::branches;

#[derive(Clone, Debug)]
pub struct Hole {
    pub offset: u16,
    pub kind: RelocKind,
    pub value: HoleValue,
    pub addend: i32,
}

#[derive(Clone, Debug)]
pub struct Stencil {
    pub name: String,
    pub code: Vec<u8>,
    pub holes: Vec<Hole>,
    /// Bytes of trailing jump to the continuation that were removed (when the branch
    /// peephole left the stencil alone).
    pub stripped: usize,
    /// Dead instructions replaced by `nop` (see `nop_dead_high_halves`).
    pub nopped: usize,
    /// What the branch peephole did, if it rewrote the stencil.
    pub rewritten: Option<branches::Stats>,
}

pub fn extract(isa: Isa, bytes: &[u8]) -> Result<Vec<Stencil>, String> {
    let file = ElfFile64::<object::Endianness>::parse(bytes).map_err(|e| format!("{isa}: bad object: {e}"))?;
    let mut stencils = Vec::new();
    for symbol in file.symbols() {
        if !symbol.is_definition() || !symbol.is_global() || symbol.kind() != object::SymbolKind::Text {
            continue;
        }
        let name = symbol.name().map_err(|e| e.to_string())?.to_string();
        let Some(section_index) = symbol.section_index() else { continue };
        stencils.push(extract_one(isa, &file, &name, section_index, symbol.address(), symbol.size())?);
    }
    // Local functions (outlined helpers) would be called through relocations against them,
    // which `extract_one` rejects; data sections are only an error when referenced.
    stencils.sort_by_key(|s| family_key(&s.name));
    Ok(stencils)
}

/// Sort key: family name, then register number(s), so ids are `family.first + k` for
/// `family__rK` and row-major for pair variants `family__rD_rS` (see [`variant_index`]).
pub fn family_key(name: &str) -> (String, u32) {
    match variant_index(name) {
        Some((family, Variant::Single(k))) => (family.to_string(), k),
        Some((family, Variant::Pair(d, s))) => (family.to_string(), d << 16 | s),
        None => (name.to_string(), 0),
    }
}

/// Which registers a variant stencil is specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `family__rK`.
    Single(u32),
    /// `family__rD_rS`.
    Pair(u32, u32),
}

/// The family and variant of a stencil named `family__rK` or `family__rD_rS`.
pub fn variant_index(name: &str) -> Option<(&str, Variant)> {
    let (family, suffix) = name.rsplit_once("__r")?;
    match suffix.split_once("_r") {
        Some((d, s)) => Some((family, Variant::Pair(d.parse().ok()?, s.parse().ok()?))),
        None => Some((family, Variant::Single(suffix.parse().ok()?))),
    }
}

fn extract_one(
    isa: Isa,
    file: &ElfFile64<object::Endianness>,
    name: &str,
    section_index: SectionIndex,
    address: u64,
    size: u64,
) -> Result<Stencil, String> {
    let fail = |msg: String| format!("{isa}: stencil `{name}`: {msg}");
    let section = file.section_by_index(section_index).map_err(|e| fail(e.to_string()))?;
    let section_name = section.name().map_err(|e| fail(e.to_string()))?;
    if section_name != format!(".text.{name}") {
        return Err(fail(format!("expected its own section .text.{name}, found {section_name}")));
    }
    let data = section.data().map_err(|e| fail(e.to_string()))?;
    if address != 0 || size != data.len() as u64 {
        return Err(fail(format!("section holds more than the function ({size} of {} bytes)", data.len())));
    }
    let mut code = data.to_vec();
    let mut holes = Vec::new();
    for (offset, reloc) in section.relocations() {
        let r_type = match reloc.flags() {
            RelocationFlags::Elf { r_type } => r_type,
            other => return Err(fail(format!("non-ELF relocation {other:?}"))),
        };
        if isa == Isa::Riscv64 && r_type == elf::R_RISCV_RELAX {
            // A linker-relaxation hint; leaving the sequence unrelaxed is always valid.
            continue;
        }
        let kind = isa
            .reloc_from_elf(r_type)
            .ok_or_else(|| fail(format!("unsupported relocation type {r_type} at offset {offset:#x}")))?;
        let symbol = match reloc.target() {
            RelocationTarget::Symbol(index) => file.symbol_by_index(index).map_err(|e| fail(e.to_string()))?,
            other => return Err(fail(format!("relocation at {offset:#x} targets {other:?}, not a hole symbol"))),
        };
        let symbol_name = symbol.name().map_err(|e| fail(e.to_string()))?;
        let value = HoleValue::from_symbol(symbol_name).ok_or_else(|| {
            if symbol.is_undefined() {
                format!("{isa}: stencil `{name}`: references unknown symbol `{symbol_name}` at {offset:#x} (an outlined runtime function?)")
            } else {
                format!("{isa}: stencil `{name}`: references `{symbol_name}` at {offset:#x}: data or code outside the stencil")
            }
        })?;
        let is_operand = value.operand_index().is_some();
        if is_operand && kind == RelocKind::X86Abs32 && !x86_alu32_immediate(&code, offset as usize) {
            // x86-64 stencils use an operand hole's address untruncated (the kernel code
            // model sign-extends it): a zero-extending load would turn negative values positive.
            return Err(fail(format!("operand hole {symbol_name} zero-extended by R_X86_64_32 at {offset:#x}")));
        }
        if is_operand && kind.is_pc_relative() {
            return Err(fail(format!("value hole {symbol_name} uses PC-relative {kind:?}")));
        }
        let offset = usize::try_from(offset).map_err(|e| fail(e.to_string()))?;
        if value == HoleValue::Continue
            && isa.branch_at(kind, &code, offset).is_some_and(|b| b.branch_use == BranchUse::Call)
        {
            return Err(fail(format!("the continuation is called at {offset:#x}, not tail-jumped to")));
        }
        holes.push(Hole {
            offset: u16::try_from(offset).map_err(|_| fail("stencil larger than 64 KiB".into()))?,
            kind,
            value,
            addend: i32::try_from(reloc.addend()).map_err(|_| fail("addend out of range".into()))?,
        });
    }
    holes.sort_by_key(|h| h.offset);
    let dead_nops = nop_dead_high_halves(isa, &mut code, &mut holes);
    let nopped = dead_nops.len();
    if let Some((code, holes, stats)) = branches::rewrite(isa, &code, &holes, &dead_nops) {
        return Ok(Stencil { name: name.to_string(), code, holes, stripped: 0, nopped, rewritten: Some(stats) });
    }

    // Remove a trailing tail jump to the continuation: the next stencil follows directly.
    let mut stripped = 0;
    if let Some(last) = holes.last()
        && last.value == HoleValue::Continue
        && let Some(branch) = isa.branch_at(last.kind, &code, last.offset as usize)
        && branch.branch_use == BranchUse::TailJump
        && branch.end == code.len()
    {
        stripped = branch.end - branch.start;
        code.truncate(branch.start);
        holes.pop();
    }
    Ok(Stencil { name: name.to_string(), code, holes, stripped, nopped, rewritten: None })
}

/// AArch64's large code model builds every hole value with `movz` + three `movk`. Operand
/// holes are 32-bit numbers that every stencil truncates (`as u32`), so instructions that only set bits 32..63 are dead: they become `nop`s,
/// which shortens the dependency chain and leaves fewer holes to patch (the branch peephole
/// then removes them). Returns the offsets of the instructions replaced.
fn nop_dead_high_halves(isa: Isa, code: &mut [u8], holes: &mut Vec<Hole>) -> Vec<usize> {
    let nop = isa.nop();
    let mut replaced = Vec::new();
    holes.retain(|h| {
        let dead = h.value.operand_index().is_some() && h.kind.sets_only_high_half();
        if dead {
            let at = h.offset as usize;
            code[at..at + nop.len()].copy_from_slice(nop);
            replaced.push(at);
        }
        !dead
    });
    replaced
}

/// An ELF object with one `.text.<name>` section per stencil holding exactly its emitted
/// code, and its holes as relocations against the `_HOLE_*` symbols (for the listing's
/// disassembly). `original` is the compiled object, whose machine and flags it copies.
pub fn emitted_object(isa: Isa, original: &[u8], stencils: &[Stencil]) -> Result<Vec<u8>, String> {
    use object::write::{Object, Relocation, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, FileFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
    };
    let file = ElfFile64::<object::Endianness>::parse(original).map_err(|e| format!("{isa}: bad object: {e}"))?;
    let e_flags = file.elf_header().e_flags.get(file.endian());
    let architecture = match isa {
        Isa::X86_64 => Architecture::X86_64,
        Isa::Aarch64 => Architecture::Aarch64,
        Isa::Riscv64 => Architecture::Riscv64,
    };
    let mut obj = Object::new(BinaryFormat::Elf, architecture, Endianness::Little);
    obj.flags = FileFlags::Elf { os_abi: 0, abi_version: 0, e_flags };
    let holes: Vec<_> = HoleValue::ALL
        .iter()
        .map(|v| {
            obj.add_symbol(Symbol {
                name: v.symbol().as_bytes().to_vec(),
                value: 0,
                size: 0,
                kind: SymbolKind::Unknown,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Undefined,
                flags: SymbolFlags::None,
            })
        })
        .collect();
    for s in stencils {
        let section = obj.add_section(Vec::new(), format!(".text.{}", s.name).into_bytes(), SectionKind::Text);
        obj.append_section_data(section, &s.code, 16);
        obj.add_symbol(Symbol {
            name: s.name.as_bytes().to_vec(),
            value: 0,
            size: s.code.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
        for h in &s.holes {
            let r_type = (0..1024)
                .find(|&t| isa.reloc_from_elf(t) == Some(h.kind))
                .ok_or_else(|| format!("{isa}: no ELF relocation type for {:?}", h.kind))?;
            obj.add_relocation(
                section,
                Relocation {
                    offset: h.offset as u64,
                    symbol: holes[h.value as usize],
                    addend: h.addend as i64,
                    flags: RelocationFlags::Elf { r_type },
                },
            )
            .map_err(|e| format!("{isa}: stencil `{}`: {e}", s.name))?;
        }
    }
    obj.write().map_err(|e| format!("{isa}: writing the emitted-code object: {e}"))
}

/// Whether the relocation at `offset` is the 32-bit immediate of a 32-bit ALU instruction
/// (`add`/`or`/`and`/`xor`/`sub`/`cmp`/`test`/`imul` on a 32-bit register), which reads only
/// the low half of its field: there `R_X86_64_32` is exact, unlike in `mov $imm32, %r32`,
/// whose zero extension would turn a negative operand positive.
fn x86_alu32_immediate(code: &[u8], offset: usize) -> bool {
    use iced_x86::{Code, Decoder, DecoderOptions, Instruction};
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        let start = insn.ip() as usize;
        if !(start..start + insn.len()).contains(&offset) {
            continue;
        }
        let constants = decoder.get_constant_offsets(&insn);
        let is_immediate = constants.has_immediate()
            && constants.immediate_size() == 4
            && start + constants.immediate_offset() == offset;
        return is_immediate
            && matches!(
                insn.code(),
                Code::Add_rm32_imm32
                    | Code::Add_EAX_imm32
                    | Code::Or_rm32_imm32
                    | Code::Or_EAX_imm32
                    | Code::And_rm32_imm32
                    | Code::And_EAX_imm32
                    | Code::Xor_rm32_imm32
                    | Code::Xor_EAX_imm32
                    | Code::Sub_rm32_imm32
                    | Code::Sub_EAX_imm32
                    | Code::Cmp_rm32_imm32
                    | Code::Cmp_EAX_imm32
                    | Code::Test_rm32_imm32
                    | Code::Test_EAX_imm32
                    | Code::Imul_r32_rm32_imm32
            );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::x86_alu32_immediate;

    #[test]
    fn r_x86_64_32_is_accepted_only_on_32_bit_alu_immediates() {
        // andl $0, %esi: 81 e6 <imm32>; imull $0, %esi, %esi: 69 f6 <imm32>; addl $0, %eax: 05 <imm32>
        assert!(x86_alu32_immediate(&[0x81, 0xe6, 0, 0, 0, 0], 2));
        assert!(x86_alu32_immediate(&[0x69, 0xf6, 0, 0, 0, 0], 2));
        assert!(x86_alu32_immediate(&[0x05, 0, 0, 0, 0], 1));
        // movl $0, %eax zero-extends into %rax: a negative operand would become positive.
        assert!(!x86_alu32_immediate(&[0xb8, 0, 0, 0, 0], 1));
        // andq $0, %rsi is a 64-bit operation (its field is sign-extended: R_X86_64_32S).
        assert!(!x86_alu32_immediate(&[0x48, 0x81, 0xe6, 0, 0, 0, 0], 3));
        // andl $0x12345678, 0x10(%rax): the relocation at the displacement, not the immediate.
        assert!(!x86_alu32_immediate(&[0x81, 0x60, 0x10, 0x78, 0x56, 0x34, 0x12], 2));
        assert!(!x86_alu32_immediate(&[0x81, 0xe6, 0, 0, 0, 0], 9));
    }
}
