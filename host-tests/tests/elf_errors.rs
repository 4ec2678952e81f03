//! Loader errors, each with its exact typed error: patched example objects (headers,
//! section and symbol tables, relocations, map definitions) and objects written with the
//! `object` crate's writer for what clang would not emit (undefined symbols, function
//! pointers, bad call targets, map declarations of every unsupported kind).

use object::write::{Object as Writer, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};
use tessera::ebpf::Insn;
use tessera::ebpf::btf::BtfError;
use tessera::ebpf::elf::{ElfError, Object, Select, reloc};
use tessera::ebpf::insn::{op, pseudo};
use tessera::ebpf::maps::MapError;

const COUNTER: &[u8] = include_bytes!("../../examples/counter.o");
const GLOBALS: &[u8] = include_bytes!("../../examples/globals.o");
const LEGACY: &[u8] = include_bytes!("../../examples/counter_legacy.o");

fn parse(bytes: &[u8]) -> Result<Object<'_>, ElfError> {
    Object::parse(bytes)
}

fn load_err(bytes: &[u8], select: Select) -> ElfError {
    match Object::parse(bytes) {
        Ok(o) => o.load(select).expect_err("the object loads"),
        Err(e) => e,
    }
}

// --- raw ELF patching ---------------------------------------------------------------

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// File offset of section header `index` (64 bytes each, at `e_shoff`).
fn shdr(b: &[u8], index: u32) -> usize {
    u64_at(b, 0x28) as usize + 64 * index as usize
}

/// File offset of a section's contents (`sh_offset`).
fn section_offset(b: &[u8], index: u32) -> usize {
    u64_at(b, shdr(b, index) + 24) as usize
}

/// Index of section `name`, read from the raw headers (so it works on objects the loader
/// refuses).
fn section(b: &[u8], name: &str) -> u32 {
    let count = u16_at(b, 0x3c) as u32;
    let names = section_offset(b, u16_at(b, 0x3e) as u32);
    (0..count)
        .find(|&i| {
            let start = names + u32_at(b, shdr(b, i)) as usize;
            let end = start + b[start..].iter().position(|&c| c == 0).unwrap();
            &b[start..end] == name.as_bytes()
        })
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// Index of symbol `name`, read from the raw symbol table (so it works on objects the
/// loader refuses).
fn symbol(b: &[u8], name: &str) -> u32 {
    let count = u16_at(b, 0x3c) as u32;
    let symtab = (0..count).find(|&i| u32_at(b, shdr(b, i) + 4) == 2).expect("a symbol table");
    let strings = section_offset(b, u32_at(b, shdr(b, symtab) + 40));
    let symbols = u64_at(b, shdr(b, symtab) + 32) as u32 / 24;
    (0..symbols)
        .find(|&i| {
            let start = strings + u32_at(b, sym(b, i)) as usize;
            let end = start + b[start..].iter().position(|&c| c == 0).unwrap();
            &b[start..end] == name.as_bytes()
        })
        .unwrap_or_else(|| panic!("no symbol {name}"))
}

/// File offset of symbol `index` (24 bytes each) in the symbol table.
fn sym(b: &[u8], index: u32) -> usize {
    section_offset(b, section(b, ".symtab")) + 24 * index as usize
}

/// File offset of relocation `n` (16 bytes: r_offset, r_info = sym << 32 | type) of a
/// REL section.
fn rel(b: &[u8], rel_section: &str, n: usize) -> usize {
    section_offset(b, section(b, rel_section)) + 16 * n
}

fn patched(bytes: &[u8], patch: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    patch(&mut b);
    b
}

#[test]
fn file_header_errors() {
    assert_eq!(parse(&COUNTER[..40]).err(), Some(ElfError::TruncatedHeader { len: 40 }));
    assert_eq!(parse(&[]).err(), Some(ElfError::TruncatedHeader { len: 0 }));
    assert_eq!(parse(&patched(COUNTER, |b| b[0] = 0)).err(), Some(ElfError::NotElf));
    assert_eq!(parse(&patched(COUNTER, |b| b[4] = 1)).err(), Some(ElfError::NotElf64 { class: 1 }));
    assert_eq!(parse(&patched(COUNTER, |b| b[5] = 2)).err(), Some(ElfError::NotLittleEndian { encoding: 2 }));
    assert_eq!(parse(&patched(COUNTER, |b| b[6] = 0)).err(), Some(ElfError::BadHeader));
    assert_eq!(parse(&patched(COUNTER, |b| put_u16(b, 18, 62))).err(), Some(ElfError::NotBpf { machine: 62 }));
    assert_eq!(parse(&patched(COUNTER, |b| put_u16(b, 16, 2))).err(), Some(ElfError::NotRelocatable { file_type: 2 }));
    // Section header table past the end, or with the wrong entry size.
    let len = COUNTER.len() as u64;
    assert_eq!(parse(&patched(COUNTER, |b| put_u64(b, 0x28, len - 64))).err(), Some(ElfError::BadSectionTable));
    assert_eq!(parse(&patched(COUNTER, |b| put_u16(b, 0x3a, 40))).err(), Some(ElfError::BadSectionTable));
    // A file cut short loses its section headers (they come last).
    assert_eq!(parse(&COUNTER[..COUNTER.len() - 1]).err(), Some(ElfError::BadSectionTable));
}

#[test]
fn section_errors() {
    let maps = section(COUNTER, ".maps");
    assert_eq!(maps, 7);
    let past_end = COUNTER.len() as u64;
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, maps) + 24;
            put_u64(b, at, past_end)
        }))
        .err(),
        Some(ElfError::SectionOutOfBounds { section: 7 })
    );
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, maps) + 32;
            put_u64(b, at, u64::MAX - 8)
        }))
        .err(),
        Some(ElfError::SectionOutOfBounds { section: 7 })
    );
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, maps);
            put_u32(b, at, 0xffff_0000)
        }))
        .err(),
        Some(ElfError::BadSectionName { section: 7 })
    );
    // The section name table's own offset past the end: no name can be read.
    let shstrndx = u16_at(COUNTER, 0x3e) as u32;
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, shstrndx) + 24;
            put_u64(b, at, past_end)
        }))
        .err(),
        Some(ElfError::BadSectionName { section: 0 })
    );
    let symtab = section(COUNTER, ".symtab");
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, symtab) + 4;
            put_u32(b, at, 1) // SHT_PROGBITS
        }))
        .err(),
        Some(ElfError::NoSymbolTable)
    );
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, symtab) + 32;
            put_u64(b, at, 25) // sh_size: not whole symbols
        }))
        .err(),
        Some(ElfError::BadSymbolTable)
    );
    // Linked to no string table: the first symbol's name cannot be read.
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, symtab) + 40;
            put_u32(b, at, 0)
        }))
        .err(),
        Some(ElfError::BadSymbol { symbol: 0 })
    );
}

#[test]
fn symbol_errors() {
    let count_keys = symbol(COUNTER, "count_keys");
    assert_eq!(count_keys, 13);
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = sym(b, 13);
            put_u32(b, at, 0xffff_0000)
        }))
        .err(),
        Some(ElfError::BadSymbol { symbol: 13 })
    );
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = sym(b, 13) + 6;
            put_u16(b, at, 100)
        }))
        .err(), // st_shndx
        Some(ElfError::BadSymbol { symbol: 13 })
    );
    // A function whose size is not whole instructions, or that runs past its section.
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = sym(b, 13) + 16;
            put_u64(b, at, 460)
        }))
        .err(),
        Some(ElfError::BadFunction { symbol: 13 })
    );
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = sym(b, 13) + 8;
            put_u64(b, at, 8)
        }))
        .err(), // st_value
        Some(ElfError::BadFunction { symbol: 13 })
    );
}

#[test]
fn relocation_errors() {
    // .relcounter entry 0: R_BPF_64_64 against `overflow`, on the first lddw (at 0x58).
    let code = section(COUNTER, "counter");
    let relocs = section(COUNTER, ".relcounter");
    assert_eq!((code, relocs), (3, 4));
    let first = rel(COUNTER, ".relcounter", 0);
    assert_eq!(u64_at(COUNTER, first), 0x58);
    assert_eq!(u32_at(COUNTER, first + 8), reloc::R_BPF_64_64);
    let select = Select::Function("count_keys");

    let bad_type = patched(COUNTER, |b| put_u32(b, first + 8, reloc::R_BPF_64_ABS32));
    let error = ElfError::UnsupportedRelocation { section: 3, offset: 0x58, kind: 3 };
    assert_eq!(load_err(&bad_type, select), error);
    assert_eq!(
        parse(&bad_type).unwrap().explain(error).to_string(),
        "section `counter` (3) offset 0x58: relocation R_BPF_64_ABS32 (3) not supported"
    );
    let unknown_type = patched(COUNTER, |b| put_u32(b, first + 8, 77));
    assert_eq!(load_err(&unknown_type, select), ElfError::UnsupportedRelocation { section: 3, offset: 0x58, kind: 77 });
    assert_eq!(
        load_err(&patched(COUNTER, |b| put_u32(b, first + 8, reloc::R_BPF_64_32)), select),
        ElfError::RelocationNotCall { section: 3, offset: 0x58 }
    );
    assert_eq!(
        load_err(&patched(COUNTER, |b| put_u64(b, first, 0x59)), select),
        ElfError::RelocationOffset { section: 3, offset: 0x59 }
    );
    // On the second slot of the lddw, and on an ordinary instruction.
    assert_eq!(
        load_err(&patched(COUNTER, |b| put_u64(b, first, 0x60)), select),
        ElfError::RelocationNotLddw { section: 3, offset: 0x60 }
    );
    assert_eq!(
        load_err(&patched(COUNTER, |b| put_u64(b, first, 0)), select),
        ElfError::RelocationNotLddw { section: 3, offset: 0 }
    );
    assert_eq!(
        load_err(&patched(COUNTER, |b| put_u32(b, first + 12, 999)), select),
        ElfError::RelocationSymbol { section: 3, offset: 0x58, symbol: 999 }
    );
    // Against a function symbol (a function pointer) and against the .BTF section symbol.
    assert_eq!(
        load_err(&patched(COUNTER, |b| put_u32(b, first + 12, 16)), select), // `query`
        ElfError::UnsupportedRelocationTarget { section: 3, offset: 0x58, symbol: 16 }
    );
    // The relocation section itself: not linked to the symbol table, or for no section.
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, relocs) + 40;
            put_u32(b, at, 0)
        }))
        .err(),
        Some(ElfError::BadRelocationSection { section: 4 })
    );
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, relocs) + 44;
            put_u32(b, at, 999)
        }))
        .err(),
        Some(ElfError::BadRelocationSection { section: 4 })
    );
    assert_eq!(
        parse(&patched(COUNTER, |b| {
            let at = shdr(b, relocs) + 32;
            put_u64(b, at, 15)
        }))
        .err(), // not whole entries
        Some(ElfError::BadRelocationSection { section: 4 })
    );
    // An lddw that is already a pseudo load.
    let lddw_at = section_offset(COUNTER, code) + 0x58;
    assert_eq!(
        load_err(&patched(COUNTER, |b| b[lddw_at + 1] |= 0x10), select),
        ElfError::UnexpectedPseudoLoad { section: 3, offset: 0x58 }
    );
}

#[test]
fn call_relocation_errors() {
    // globals: hash_input calls `mix` through R_BPF_64_32 relocations at 0x68 and 0x80.
    let code = section(GLOBALS, "globals");
    let at = (0..8).map(|n| rel(GLOBALS, ".relglobals", n)).find(|&r| u64_at(GLOBALS, r) == 0x68).unwrap();
    assert_eq!(u32_at(GLOBALS, at + 8), reloc::R_BPF_64_32);
    // Against a data symbol: not code.
    let runs = symbol(GLOBALS, "runs");
    assert_eq!(
        load_err(&patched(GLOBALS, |b| put_u32(b, at + 12, runs)), Select::Only),
        ElfError::UnsupportedRelocationTarget { section: code, offset: 0x68, symbol: runs }
    );
    // As a data relocation on the call.
    assert_eq!(
        load_err(&patched(GLOBALS, |b| put_u32(b, at + 8, reloc::R_BPF_64_64)), Select::Only),
        ElfError::RelocationNotLddw { section: code, offset: 0x68 }
    );
    // mix's symbol moved so that `mix + imm + 1` lands before .text.
    let mix = symbol(GLOBALS, "mix");
    let call_at = section_offset(GLOBALS, code) + 0x68;
    assert_eq!(
        load_err(&patched(GLOBALS, |b| put_u32(b, call_at + 4, -5i32 as u32)), Select::Only),
        ElfError::CallTargetNotFound { section: code, offset: 0x68 }
    );
    assert_eq!(mix, 18);
}

#[test]
fn map_definition_errors() {
    // counter_legacy: `maps` holds two struct bpf_map_def (20 bytes each).
    let maps = section_offset(LEGACY, section(LEGACY, "maps"));
    assert_eq!(
        parse(&patched(LEGACY, |b| put_u32(b, maps, 6))).err(),
        Some(ElfError::Map { map: 0, error: MapError::UnsupportedType { map_type: 6 } })
    );
    let bad = patched(LEGACY, |b| put_u32(b, maps, 27));
    let error = parse(&bad).unwrap_err();
    assert_eq!(error, ElfError::Map { map: 0, error: MapError::UnsupportedType { map_type: 27 } });
    assert_eq!(format!("{error}"), "map 0: map type 27 is not supported (hash 1, array 2)");
    assert_eq!(
        parse(&patched(LEGACY, |b| put_u32(b, maps + 20 + 4, 8))).err(), // legacy_totals: array key_size 8
        Some(ElfError::Map { map: 1, error: MapError::KeySize { size: 8 } })
    );
    assert_eq!(
        parse(&patched(LEGACY, |b| put_u32(b, maps + 12, 0))).err(),
        Some(ElfError::Map { map: 0, error: MapError::MaxEntries { count: 0 } })
    );
    // Two map symbols at one offset.
    let totals = symbol(LEGACY, "legacy_totals");
    assert_eq!(
        parse(&patched(LEGACY, |b| {
            let at = sym(b, totals) + 8;
            put_u64(b, at, 0)
        }))
        .err(),
        Some(ElfError::BadMapDefinition { map: 0, reason: "two maps at the same offset" })
    );
    // A definition past the section.
    assert_eq!(
        parse(&patched(LEGACY, |b| {
            let at = sym(b, totals) + 8;
            put_u64(b, at, 32)
        }))
        .err(),
        Some(ElfError::BadMapDefinition { map: 1, reason: "definition runs past the maps section" })
    );
    // BTF-defined maps: a broken .BTF, and .maps without it.
    let btf = section_offset(COUNTER, section(COUNTER, ".BTF"));
    assert_eq!(
        parse(&patched(COUNTER, |b| b[btf] = 0)).err(),
        Some(ElfError::Btf(BtfError::BadMagic { magic: 0xeb00 }))
    );
    let btf_header = shdr(COUNTER, section(COUNTER, ".BTF"));
    assert_eq!(parse(&patched(COUNTER, |b| put_u32(b, btf_header, 1))).err(), Some(ElfError::MissingBtf));
}

// --- objects written from scratch ---------------------------------------------------

struct Builder {
    obj: Writer<'static>,
}

impl Builder {
    fn new() -> Builder {
        Builder { obj: Writer::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little) }
    }

    fn section(&mut self, name: &str, kind: SectionKind, bytes: &[u8]) -> SectionId {
        let id = self.obj.add_section(Vec::new(), name.as_bytes().to_vec(), kind);
        if kind == SectionKind::UninitializedData {
            self.obj.append_section_bss(id, bytes.len() as u64, 8);
        } else {
            self.obj.append_section_data(id, bytes, 8);
        }
        id
    }

    fn code(&mut self, name: &str, insns: &[Insn]) -> SectionId {
        let bytes: Vec<u8> = insns.iter().flat_map(|i| i.encode()).collect();
        self.section(name, SectionKind::Text, &bytes)
    }

    fn symbol(&mut self, name: &str, section: SymbolSection, kind: SymbolKind, value: u64, size: u64) -> SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind,
            scope: SymbolScope::Dynamic,
            weak: false,
            section,
            flags: SymbolFlags::None,
        })
    }

    /// A global function of `len` instructions starting at instruction `start`.
    fn function(&mut self, name: &str, section: SectionId, start: u64, len: u64) -> SymbolId {
        self.symbol(name, SymbolSection::Section(section), SymbolKind::Text, start * 8, len * 8)
    }

    fn local_function(&mut self, name: &str, section: SectionId, start: u64, len: u64) -> SymbolId {
        let id = self.function(name, section, start, len);
        self.obj.symbol_mut(id).scope = SymbolScope::Compilation;
        id
    }

    fn variable(&mut self, name: &str, section: SectionId, value: u64, size: u64) -> SymbolId {
        self.symbol(name, SymbolSection::Section(section), SymbolKind::Data, value, size)
    }

    fn relocate(&mut self, section: SectionId, offset: u64, symbol: SymbolId, r_type: u32) {
        let relocation = Relocation { offset, symbol, addend: 0, flags: RelocationFlags::Elf { r_type } };
        self.obj.add_relocation(section, relocation).unwrap();
    }

    fn build(self) -> Vec<u8> {
        self.obj.write().unwrap()
    }
}

const EXIT: Insn = Insn::new(op::EXIT, 0, 0, 0, 0);
const LDDW_R1: [Insn; 2] = [Insn::new(op::LDDW, 1, 0, 0, 0), Insn::new(0, 0, 0, 0, 0)];
const MOV_R0_1: Insn = Insn::new(0xb7, 0, 0, 0, 1);

fn lddw(imm: i32) -> [Insn; 2] {
    [Insn::new(op::LDDW, 1, 0, 0, imm), Insn::new(0, 0, 0, 0, 0)]
}

fn call_local(imm: i32) -> Insn {
    Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, imm)
}

/// `prog`: `lddw r1, <reloc>; exit`, with the relocation against what `target` adds.
fn lddw_program(target: impl FnOnce(&mut Builder) -> SymbolId) -> Vec<u8> {
    lddw_program_with(LDDW_R1, reloc::R_BPF_64_64, target)
}

fn lddw_program_with(insns: [Insn; 2], r_type: u32, target: impl FnOnce(&mut Builder) -> SymbolId) -> Vec<u8> {
    let mut b = Builder::new();
    let code = b.code("prog", &[insns[0], insns[1], EXIT]);
    b.function("main", code, 0, 3);
    let symbol = target(&mut b);
    b.relocate(code, 0, symbol, r_type);
    b.build()
}

fn prog_section(bytes: &[u8]) -> u32 {
    section(bytes, "prog")
}

#[test]
fn relocation_target_errors() {
    let ext = lddw_program(|b| b.symbol("ext", SymbolSection::Undefined, SymbolKind::Data, 0, 0));
    let (prog, ext_sym) = (prog_section(&ext), symbol(&ext, "ext"));
    let error = ElfError::UndefinedSymbol { section: prog, offset: 0, symbol: ext_sym };
    assert_eq!(load_err(&ext, Select::Only), error);
    assert_eq!(
        parse(&ext).unwrap().explain(error).to_string(),
        format!("section `prog` ({prog}) offset 0x0: relocation against undefined symbol `ext` (symbol {ext_sym})")
    );

    let absolute = lddw_program(|b| b.symbol("abs", SymbolSection::Absolute, SymbolKind::Data, 16, 0));
    let abs = symbol(&absolute, "abs");
    assert_eq!(
        load_err(&absolute, Select::Only),
        ElfError::UnsupportedRelocationTarget { section: prog_section(&absolute), offset: 0, symbol: abs }
    );

    // A function pointer (`lddw r1, func`).
    let pointer = lddw_program(|b| {
        let text = b.code(".text", &[MOV_R0_1, EXIT]);
        b.local_function("callback", text, 0, 2)
    });
    assert_eq!(
        load_err(&pointer, Select::Only),
        ElfError::UnsupportedRelocationTarget {
            section: prog_section(&pointer),
            offset: 0,
            symbol: symbol(&pointer, "callback")
        }
    );

    // Data: an addend (in the lddw's imm) past the section, or a second-slot imm.
    let data = |imm: i32, value: u64| {
        lddw_program_with(lddw(imm), reloc::R_BPF_64_64, |b| {
            let d = b.section(".data", SectionKind::Data, &[1, 2, 3, 4, 5, 6, 7, 8]);
            b.variable("g", d, value, 4)
        })
    };
    let ok = data(2, 4);
    let code = parse(&ok).unwrap().load(Select::Only).unwrap().code;
    assert_eq!(&code[..16], &[[0x18, 0x21, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 6, 0, 0, 0]].concat());
    for (imm, value) in [(4, 4), (8, 0), (-5, 4)] {
        let bad = data(imm, value);
        let g = symbol(&bad, "g");
        assert_eq!(
            load_err(&bad, Select::Only),
            ElfError::RelocationAddend { section: prog_section(&bad), offset: 0, symbol: g },
            "imm {imm} value {value}"
        );
    }
    // A pointer inside initialised data cannot be represented.
    let mut b = Builder::new();
    let code = b.code("prog", &[MOV_R0_1, EXIT]);
    b.function("main", code, 0, 2);
    let d = b.section(".data", SectionKind::Data, &[0; 16]);
    let g = b.variable("g", d, 0, 8);
    b.relocate(d, 8, g, reloc::R_BPF_64_ABS64);
    let pointer_in_data = b.build();
    assert_eq!(
        parse(&pointer_in_data).err(),
        Some(ElfError::UnsupportedRelocation { section: section(&pointer_in_data, ".data"), offset: 8, kind: 2 })
    );
}

#[test]
fn program_errors() {
    // Only a static function: no program.
    let mut b = Builder::new();
    let code = b.code("prog", &[MOV_R0_1, EXIT]);
    b.local_function("helper", code, 0, 2);
    assert_eq!(load_err(&b.build(), Select::Only), ElfError::NoProgram);

    // Two programs in one section: a section name is ambiguous, a function name is not.
    let mut b = Builder::new();
    let code = b.code("xdp", &[MOV_R0_1, EXIT, MOV_R0_1, EXIT]);
    b.function("first", code, 0, 2);
    b.function("second", code, 2, 2);
    let two = b.build();
    assert_eq!(load_err(&two, Select::Section("xdp")), ElfError::AmbiguousProgram { matches: 2 });
    assert_eq!(parse(&two).unwrap().load(Select::Function("second")).unwrap().code.len(), 16);
    assert_eq!(load_err(&two, Select::Function("third")), ElfError::ProgramNotFound { candidates: 2 });

    // Functions that partly overlap; aliases (one range, two names) are fine.
    let mut b = Builder::new();
    let code = b.code("xdp", &[MOV_R0_1, EXIT, MOV_R0_1, EXIT]);
    b.function("first", code, 0, 2);
    b.function("alias", code, 0, 2);
    b.function("second", code, 1, 3);
    let bytes = b.build();
    assert_eq!(parse(&bytes).err(), Some(ElfError::BadFunction { symbol: symbol(&bytes, "second") }));

    // With no program section, the global functions of .text are the programs.
    let mut b = Builder::new();
    let text = b.code(".text", &[MOV_R0_1, EXIT]);
    b.function("entry", text, 0, 2);
    let programs: Vec<(String, String)> =
        parse(&b.build()).unwrap().programs().map(|p| (p.name.to_string(), p.section_name.to_string())).collect();
    assert_eq!(programs, [("entry".to_string(), ".text".to_string())]);
}

#[test]
fn local_calls() {
    // main calls (pc-relative, no relocation) a static function later in its own section,
    // which calls itself: the callee is appended once, the offsets fixed.
    let mut b = Builder::new();
    let code = b.code("prog", &[call_local(3), EXIT, MOV_R0_1, EXIT, call_local(-1), EXIT, EXIT]);
    b.function("main", code, 0, 2);
    b.local_function("callee", code, 4, 2);
    b.local_function("unused", code, 6, 1);
    let bytes = b.build();
    let object = parse(&bytes).unwrap();
    let linked = object.load(Select::Only).unwrap();
    let names: Vec<&str> = linked.functions.iter().map(|f| object.symbol_name(f.symbol)).collect();
    assert_eq!(names, ["main", "callee"]);
    let insns: Vec<Insn> = linked.code.chunks(8).map(|c| Insn::decode(c.try_into().unwrap())).collect();
    assert_eq!(insns, [call_local(1), EXIT, call_local(-1), EXIT]);

    // A call into a gap between functions (instruction 2), or out of the section.
    for imm in [1, 100, -3] {
        let mut b = Builder::new();
        let code = b.code("prog", &[call_local(imm), EXIT, MOV_R0_1, EXIT]);
        b.function("main", code, 0, 2);
        let bytes = b.build();
        assert_eq!(
            load_err(&bytes, Select::Only),
            ElfError::CallTargetNotFound { section: prog_section(&bytes), offset: 0 },
            "imm {imm}"
        );
    }
    // A relocated call to an undefined function.
    let mut b = Builder::new();
    let code = b.code("prog", &[call_local(-1), EXIT]);
    b.function("main", code, 0, 2);
    let ext = b.symbol("ext", SymbolSection::Undefined, SymbolKind::Text, 0, 0);
    b.relocate(code, 0, ext, reloc::R_BPF_64_32);
    let bytes = b.build();
    assert_eq!(
        load_err(&bytes, Select::Only),
        ElfError::UndefinedSymbol { section: prog_section(&bytes), offset: 0, symbol: symbol(&bytes, "ext") }
    );
    // R_BPF_64_32 on something that is not a call.
    let mut b = Builder::new();
    let code = b.code("prog", &[MOV_R0_1, EXIT]);
    let main = b.function("main", code, 0, 2);
    b.relocate(code, 0, main, reloc::R_BPF_64_32);
    let bytes = b.build();
    assert_eq!(
        load_err(&bytes, Select::Only),
        ElfError::RelocationNotCall { section: prog_section(&bytes), offset: 0 }
    );
}

/// A `.BTF` section declaring `.maps` variables whose attributes are all `__uint(name, n)`.
fn btf_for_maps(maps: &[(&str, &[(&str, u32)])]) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut string = |s: &str| {
        let at = strings.len() as u32;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        at
    };
    let mut types: Vec<u32> = Vec::new();
    let mut next_id = 1u32;
    let mut add = |types: &mut Vec<u32>, words: &[u32]| {
        types.extend_from_slice(words);
        next_id += 1;
        next_id - 1
    };
    let kind = |k: u32, vlen: u32| (k << 24) | vlen;
    let int = add(&mut types, &[string("int"), kind(1, 0), 4, 32]);
    let mut vars = Vec::new();
    for (name, attributes) in maps {
        let mut members = Vec::new();
        for (i, (attribute, n)) in attributes.iter().enumerate() {
            let array = add(&mut types, &[0, kind(3, 0), 0, int, int, *n]);
            let ptr = add(&mut types, &[0, kind(2, 0), array]);
            members.extend_from_slice(&[string(attribute), ptr, 64 * i as u32]);
        }
        let mut def = vec![0, kind(4, attributes.len() as u32), 8 * attributes.len() as u32];
        def.extend_from_slice(&members);
        let def = add(&mut types, &def);
        let var = add(&mut types, &[string(name), kind(14, 0), def, 1]);
        vars.extend_from_slice(&[var, 0, 0]);
    }
    let mut datasec = vec![string(".maps"), kind(15, maps.len() as u32), 0];
    datasec.extend_from_slice(&vars);
    add(&mut types, &datasec);
    let types: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut out = vec![0x9f, 0xeb, 1, 0];
    for w in [24, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&types);
    out.extend_from_slice(&strings);
    out
}

/// An object with BTF-defined maps `maps` (32 bytes each in `.maps`, in order), and a
/// program loading the address of the first.
fn btf_map_object(maps: &[(&str, &[(&str, u32)])], extra_symbol: bool) -> Vec<u8> {
    let mut b = Builder::new();
    let code = b.code("prog", &[LDDW_R1[0], LDDW_R1[1], EXIT]);
    b.function("main", code, 0, 3);
    let section = b.section(".maps", SectionKind::Data, &vec![0; 32 * maps.len().max(1)]);
    let mut first = None;
    for (i, (name, _)) in maps.iter().enumerate() {
        let id = b.variable(name, section, 32 * i as u64, 32);
        first.get_or_insert(id);
    }
    let target = if extra_symbol { Some(b.variable("stray", section, 64, 0)) } else { first };
    if let Some(target) = target {
        b.relocate(code, 0, target, reloc::R_BPF_64_64);
    }
    b.section(".BTF", SectionKind::Other, &btf_for_maps(maps));
    b.build()
}

const HASH: &[(&str, u32)] = &[("type", 1), ("key_size", 4), ("value_size", 8), ("max_entries", 16)];

#[test]
fn btf_map_errors() {
    // The good case first: a hash map, loaded as a map pseudo load.
    let good = btf_map_object(&[("m", HASH)], false);
    let object = parse(&good).unwrap();
    assert_eq!(object.map(0).map(|m| (m.def.key_size(), m.def.value_size(), m.def.max_entries())), Some((4, 8, 16)));
    let code = object.load(Select::Only).unwrap().code;
    assert_eq!(Insn::decode(code[..8].try_into().unwrap()), Insn::new(op::LDDW, 1, pseudo::LDDW_MAP_FD, 0, 0));

    let with = |attributes: &[(&str, u32)]| parse(&btf_map_object(&[("ok", HASH), ("m", attributes)], false)).err();
    assert_eq!(
        with(&[("type", 6), ("key_size", 4), ("value_size", 8), ("max_entries", 1)]),
        Some(ElfError::Map { map: 1, error: MapError::UnsupportedType { map_type: 6 } })
    );
    assert_eq!(
        with(&[("type", 1), ("value_size", 8), ("max_entries", 1)]),
        Some(ElfError::Map { map: 1, error: MapError::KeySize { size: 0 } })
    );
    assert_eq!(
        with(&[("type", 2), ("key_size", 4), ("value_size", 8), ("max_entries", 1), ("map_flags", 1)]),
        Some(ElfError::Map { map: 1, error: MapError::Flags { flags: 1 } })
    );
    assert_eq!(
        with(&[("type", 2), ("key_size", 4), ("value_size", 8), ("max_entries", 1), ("pinning", 1)]),
        Some(ElfError::BadMapDefinition { map: 1, reason: "map pinning is not supported" })
    );
    assert_eq!(
        with(&[("type", 2), ("key_size", 4), ("value_size", 8), ("max_entries", 1), ("color", 3)]),
        Some(ElfError::BadMapDefinition { map: 1, reason: "unknown map attribute" })
    );
    let bytes = btf_map_object(&[("ok", HASH), ("m", &[("type", 9)])], false);
    let error = parse(&bytes).unwrap_err();
    assert_eq!(error, ElfError::Map { map: 1, error: MapError::UnsupportedType { map_type: 9 } });

    // A relocation against a symbol of .maps where no map is declared.
    let stray = btf_map_object(&[("m", HASH)], true);
    assert_eq!(
        load_err(&stray, Select::Only),
        ElfError::NoMapAtSymbol { section: prog_section(&stray), offset: 0, symbol: symbol(&stray, "stray") }
    );
    // A map reference with an addend.
    let mut b = Builder::new();
    let code = b.code("prog", &[lddw(8)[0], lddw(8)[1], EXIT]);
    b.function("main", code, 0, 3);
    let maps = b.section(".maps", SectionKind::Data, &[0; 32]);
    let m = b.variable("m", maps, 0, 32);
    b.relocate(code, 0, m, reloc::R_BPF_64_64);
    b.section(".BTF", SectionKind::Other, &btf_for_maps(&[("m", HASH)]));
    let bytes = b.build();
    assert_eq!(
        load_err(&bytes, Select::Only),
        ElfError::RelocationAddend { section: prog_section(&bytes), offset: 0, symbol: symbol(&bytes, "m") }
    );
    // A map variable without its ELF symbol.
    let mut b = Builder::new();
    let code = b.code("prog", &[MOV_R0_1, EXIT]);
    b.function("main", code, 0, 2);
    b.section(".maps", SectionKind::Data, &[0; 32]);
    b.section(".BTF", SectionKind::Other, &btf_for_maps(&[("m", HASH)]));
    assert_eq!(
        parse(&b.build()).err(),
        Some(ElfError::BadMapDefinition { map: 0, reason: "no symbol for the map variable" })
    );
    // .maps without .BTF.
    let mut b = Builder::new();
    let code = b.code("prog", &[MOV_R0_1, EXIT]);
    b.function("main", code, 0, 2);
    let maps = b.section(".maps", SectionKind::Data, &[0; 32]);
    b.variable("m", maps, 0, 32);
    assert_eq!(parse(&b.build()).err(), Some(ElfError::MissingBtf));
}

#[test]
fn explanations_name_things() {
    let bytes = btf_map_object(&[("ok", HASH), ("m", &[("type", 9)])], false);
    let object_error = parse(&bytes).unwrap_err();
    // The object does not parse, so explain with a good object of the same layout.
    let good = btf_map_object(&[("ok", HASH), ("m", HASH)], false);
    assert_eq!(
        parse(&good).unwrap().explain(object_error).to_string(),
        "map `m` (1): map type 9 is not supported (hash 1, array 2)"
    );
}
