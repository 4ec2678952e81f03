//! Reads a compiled stencil object: one function per `.text.<name>` section, its code, and
//! its relocations turned into hole records. Anything the runtime could not reproduce
//! (a relocation kind or symbol we do not know, a reference to data, a continuation reached
//! by a call) fails generation, naming the stencil.

use object::elf;
use object::read::elf::ElfFile64;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex};
use tessera_arch::{BranchUse, Isa, RelocKind};
use tessera_jit::HoleValue;

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
    /// Bytes of trailing jump to the continuation that were removed.
    pub stripped: usize,
    /// Dead instructions replaced by `nop` (see `nop_dead_high_halves`).
    pub nopped: usize,
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

/// Sort key: family name, then register number, so ids are `family.first + k`.
pub fn family_key(name: &str) -> (String, u32) {
    match name.rsplit_once("__r") {
        Some((family, k)) if k.parse::<u32>().is_ok() => (family.to_string(), k.parse().unwrap_or(0)),
        _ => (name.to_string(), 0),
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
        if is_operand && kind == RelocKind::X86Abs32 {
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
    let nopped = nop_dead_high_halves(isa, &mut code, &mut holes);

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
    Ok(Stencil { name: name.to_string(), code, holes, stripped, nopped })
}

/// AArch64's large code model builds every hole value with `movz` + three `movk`. Operand
/// holes are 32-bit numbers that every stencil truncates (`as u32`), so instructions that only set bits 32..63 are dead: they become `nop`s,
/// which shortens the dependency chain and leaves fewer holes to patch. Returns how many
/// instructions were replaced.
fn nop_dead_high_halves(isa: Isa, code: &mut [u8], holes: &mut Vec<Hole>) -> usize {
    let nop = isa.nop();
    let before = holes.len();
    holes.retain(|h| {
        let dead = h.value.operand_index().is_some() && h.kind.sets_only_high_half();
        if dead {
            let at = h.offset as usize;
            code[at..at + nop.len()].copy_from_slice(nop);
        }
        !dead
    });
    before - holes.len()
}
