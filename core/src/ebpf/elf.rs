//! Loading relocatable eBPF objects (`clang -target bpf -O2 -c`, CPU v1–v4) the way Linux
//! and libbpf represent them.
//!
//! # What comes out
//! - **Code**: the selected program's instructions, followed by every function it calls
//!   (transitively, each once, in the order first called, as libbpf appends `.text`
//!   subprograms), with local call offsets (`call` src 1) fixed for that layout.
//! - **Maps**, object-wide and in a fixed order (the map index): legacy `maps` definitions
//!   by offset, then BTF-defined `.maps` in declaration order, then one map per non-empty
//!   global-data section (`.data*`, `.rodata*` — including `.rodata.str1.1` and
//!   `.rodata.cst*` — and `.bss*`) in section order. A data section is a one-element array
//!   map whose value is the whole section ([`ObjectMap::data`] is its initial image; `.bss`
//!   starts zeroed); `.rodata*` maps carry `BPF_F_RDONLY_PROG`.
//! - **Pseudo loads**: every `lddw` relocated against a map becomes `src = 1`
//!   (`BPF_PSEUDO_MAP_FD`, imm = map index, second imm 0); every `lddw` relocated against
//!   global data becomes `src = 2` (`BPF_PSEUDO_MAP_VALUE`, imm = map index, second imm =
//!   byte offset in the value). [`crate::ebpf::Program::with_maps`] validates them.
//!
//! Anything else — other relocation types, undefined (`extern`) symbols, function
//! pointers, pointers inside initialised data, map-in-map — is refused with an
//! [`ElfError`] naming the section, the offset and the relocation type or symbol;
//! [`Object::explain`] renders one with the names from the object. Malformed input gets an
//! error, never a panic.
//!
//! # For the runtime
//! - Create one [`Map`] per [`ObjectMap`], in index order ([`ObjectMap::create`] /
//!   [`ObjectMap::create_in`] copy the initial image of data sections).
//! - Grant each map's value area ([`Map::values`], [`MapDef::values_len`] bytes) as one
//!   memory region: read-only when [`MapDef::read_only_for_program`] (`.rodata*`),
//!   read-write otherwise. Accesses into it are bounded to one value by
//!   [`MapDef::value_access_ok`] (`(offset & (stride - 1)) + size <= value_size`).
//! - `lddw` src 2 (map `m`, offset `k`): the register gets the address of map `m`'s value
//!   area plus `k` (the value of a data map is its whole section, slot 0).
//! - `lddw` src 1 (map `m`): the register gets a handle of the runtime's choosing that
//!   helpers 1–3 map back to `m`; programs only pass it to helpers.
//! - Helper 1 (`lookup(map, key)`) reads `key_size` bytes at `key`, calls [`Map::lookup`]
//!   and returns the value area's address plus [`MapDef::value_offset`] of the slot, or 0;
//!   helpers 2 and 3 copy the key (and value) out of program memory first, call
//!   [`Map::update`] / [`Map::delete`] and return 0 or [`super::maps::Errno::helper_return`].
//!
//! # Allocation
//! Parsing and linking allocate nothing (the `object` crate's low-level ELF API over the
//! input bytes): [`Object::load_into`] writes into caller buffers, sized by
//! [`Object::max_code_len`] and [`Object::max_functions`]. With `alloc`, [`Object::load`]
//! returns vectors. Map lookups walk the symbol table instead of building an index, so
//! the cost grows with symbols × relocations: fine for programs, not tuned for huge
//! objects.
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use tessera::ebpf::elf::{Object, Select};
//! # let bytes = include_bytes!("../../../examples/counter.o");
//! let object = Object::parse(bytes)?;
//! let program = object.load(Select::Function("count_keys"))?;
//! assert_eq!(object.map_count(), 2);
//! # let _ = program;
//! # }
//! # Ok::<(), tessera::ebpf::elf::ElfError>(())
//! ```

use core::fmt;

use object::LittleEndian;
use object::elf::{self as e, FileHeader64, SectionHeader64, Sym64};
use object::read::elf::{FileHeader, Rel, SectionHeader, SectionTable, Sym, SymbolTable};

use super::btf::{self, Btf, BtfError, MapDefinitionError, RawMapDef};
use super::insn::{Insn, op, pseudo};
use super::maps::{Map, MapDef, MapError, MapName, flags};
use super::program::MAX_INSNS;

/// BPF relocation types (`R_BPF_*`).
pub mod reloc {
    pub const R_BPF_NONE: u32 = 0;
    /// `lddw` of a symbol's address: maps and global data.
    pub const R_BPF_64_64: u32 = 1;
    pub const R_BPF_64_ABS64: u32 = 2;
    pub const R_BPF_64_ABS32: u32 = 3;
    pub const R_BPF_64_NODYLD32: u32 = 4;
    /// `call` of a local function (imm in instructions).
    pub const R_BPF_64_32: u32 = 10;
}

const EM_BPF: u16 = 247;
/// `e_ident` bytes: the class (32/64-bit) and the data encoding (endianness).
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ELF_HEADER_LEN: usize = 64;
/// Where the linked map index's value offset ends up: the second slot's imm.
const LDDW_LEN: usize = 2 * Insn::SIZE;

type Endian = LittleEndian;
type Header = FileHeader64<Endian>;
type Sections<'data> = SectionTable<'data, Header, &'data [u8]>;
type Symbols<'data> = SymbolTable<'data, Header, &'data [u8]>;

/// Why an object cannot be loaded. Sections and symbols are named by index, offsets are
/// byte offsets in the section (as `llvm-objdump -dr` shows them); [`Object::explain`]
/// adds the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ElfError {
    // --- the file ---
    /// Shorter than the 64-byte ELF header.
    TruncatedHeader { len: u32 },
    /// No ELF magic number.
    NotElf,
    /// Not a 64-bit ELF file (`EI_CLASS`).
    NotElf64 { class: u8 },
    /// Not little-endian (`EI_DATA`): big-endian (`bpfeb`) objects are not supported.
    NotLittleEndian { encoding: u8 },
    /// The ELF header is otherwise malformed (version, sizes).
    BadHeader,
    /// `e_machine` is not `EM_BPF` (247).
    NotBpf { machine: u16 },
    /// Not a relocatable object (`e_type` is not `ET_REL`).
    NotRelocatable { file_type: u16 },
    /// The section header table lies outside the file or is malformed.
    BadSectionTable,
    /// A section's name is outside the section name table or not UTF-8.
    BadSectionName { section: u32 },
    /// A section's contents lie (partly) past the end of the file.
    SectionOutOfBounds { section: u32 },
    /// No `SHT_SYMTAB` section.
    NoSymbolTable,
    /// The symbol table or its string table is malformed.
    BadSymbolTable,
    /// A symbol's name is invalid, or it names a section that does not exist.
    BadSymbol { symbol: u32 },
    /// A relocation section is malformed, not linked to the symbol table, applies to no
    /// section, or is `SHT_RELA` for code.
    BadRelocationSection { section: u32 },
    /// A function symbol's range is empty, not whole instructions, outside its section, or
    /// partly overlaps another function.
    BadFunction { symbol: u32 },

    // --- maps ---
    /// The object declares BTF-defined maps (`.maps`) but has no `.BTF` describing them.
    MissingBtf,
    /// The `.BTF` section is malformed.
    Btf(BtfError),
    /// Map `map` (the map index) is declared in a way this loader does not support.
    BadMapDefinition { map: u32, reason: &'static str },
    /// Map `map`'s definition is refused (type, sizes, flags).
    Map { map: u32, error: MapError },

    // --- choosing the program ---
    /// The object has no program.
    NoProgram,
    /// No program has the name asked for ([`Object::programs`] lists the candidates).
    ProgramNotFound { candidates: u32 },
    /// Several programs match (or none was named and the object has several).
    AmbiguousProgram { matches: u32 },

    // --- linking ---
    /// A relocation type other than `R_BPF_64_64` (lddw) and `R_BPF_64_32` (call) in code,
    /// or any relocation in initialised data or in a maps section.
    UnsupportedRelocation { section: u32, offset: u64, kind: u32 },
    /// A relocation not at the start of an instruction.
    RelocationOffset { section: u32, offset: u64 },
    /// A relocation names a symbol index that does not exist.
    RelocationSymbol { section: u32, offset: u64, symbol: u32 },
    /// A relocation against an undefined (`extern`) symbol.
    UndefinedSymbol { section: u32, offset: u64, symbol: u32 },
    /// A relocation against a symbol that is neither a map, global data nor (for calls)
    /// code: function pointers, absolute symbols, BTF...
    UnsupportedRelocationTarget { section: u32, offset: u64, symbol: u32 },
    /// An `R_BPF_64_64` relocation on an instruction that is not a whole `lddw`.
    RelocationNotLddw { section: u32, offset: u64 },
    /// An `R_BPF_64_32` relocation on an instruction that is not a local call.
    RelocationNotCall { section: u32, offset: u64 },
    /// A relocation against a symbol in a maps section where no map is defined.
    NoMapAtSymbol { section: u32, offset: u64, symbol: u32 },
    /// The symbol plus the addend in the instruction points outside the data section, or
    /// a map reference has an addend.
    RelocationAddend { section: u32, offset: u64, symbol: u32 },
    /// A local call lands outside every function.
    CallTargetNotFound { section: u32, offset: u64 },
    /// A `lddw` that is already a pseudo load (src != 0): file descriptors mean nothing here.
    UnexpectedPseudoLoad { section: u32, offset: u64 },

    // --- output ---
    /// The caller's code buffer is full ([`Object::max_code_len`] bytes always suffice).
    CodeBufferFull { capacity: u32 },
    /// The caller's function table is full ([`Object::max_functions`] entries suffice).
    FunctionTableFull { capacity: u32 },
    /// The linked program has more instructions than a program may have.
    ProgramTooLong { insns: u32 },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ElfError::TruncatedHeader { len } => write!(f, "{len} bytes is too short for an ELF header"),
            ElfError::NotElf => f.write_str("not an ELF file"),
            ElfError::NotElf64 { class } => write!(f, "ELF class {class} is not 64-bit"),
            ElfError::NotLittleEndian { encoding } => {
                write!(f, "ELF data encoding {encoding} is not little-endian (bpfeb is not supported)")
            }
            ElfError::BadHeader => f.write_str("malformed ELF header"),
            ElfError::NotBpf { machine } => write!(f, "ELF machine {machine} is not BPF (247)"),
            ElfError::NotRelocatable { file_type } => {
                write!(f, "ELF type {file_type} is not a relocatable object (1)")
            }
            ElfError::BadSectionTable => f.write_str("malformed section header table"),
            ElfError::BadSectionName { section } => write!(f, "section {section}: invalid name"),
            ElfError::SectionOutOfBounds { section } => {
                write!(f, "section {section}: contents past the end of the file")
            }
            ElfError::NoSymbolTable => f.write_str("no symbol table"),
            ElfError::BadSymbolTable => f.write_str("malformed symbol table"),
            ElfError::BadSymbol { symbol } => write!(f, "symbol {symbol}: invalid name or section"),
            ElfError::BadRelocationSection { section } => write!(f, "section {section}: malformed relocation section"),
            ElfError::BadFunction { symbol } => write!(f, "symbol {symbol}: function outside its section"),
            ElfError::MissingBtf => f.write_str("BTF-defined maps (.maps) without .BTF describing them"),
            ElfError::Btf(e) => write!(f, "{e}"),
            ElfError::BadMapDefinition { map, reason } => write!(f, "map {map}: {reason}"),
            ElfError::Map { map, error } => write!(f, "map {map}: {error}"),
            ElfError::NoProgram => f.write_str("the object has no program"),
            ElfError::ProgramNotFound { candidates } => {
                write!(f, "no program by that name ({candidates} candidates)")
            }
            ElfError::AmbiguousProgram { matches } => write!(f, "{matches} programs match; choose one"),
            ElfError::UnsupportedRelocation { section, offset, kind } => {
                write!(f, "section {section} offset {offset:#x}: relocation type {kind} not supported")
            }
            ElfError::RelocationOffset { section, offset } => {
                write!(f, "section {section} offset {offset:#x}: relocation not at an instruction")
            }
            ElfError::RelocationSymbol { section, offset, symbol } => {
                write!(f, "section {section} offset {offset:#x}: relocation names missing symbol {symbol}")
            }
            ElfError::UndefinedSymbol { section, offset, symbol } => {
                write!(f, "section {section} offset {offset:#x}: symbol {symbol} is undefined")
            }
            ElfError::UnsupportedRelocationTarget { section, offset, symbol } => {
                write!(f, "section {section} offset {offset:#x}: symbol {symbol} is not a map, global data or function")
            }
            ElfError::RelocationNotLddw { section, offset } => {
                write!(f, "section {section} offset {offset:#x}: data relocation on an instruction that is not lddw")
            }
            ElfError::RelocationNotCall { section, offset } => {
                write!(f, "section {section} offset {offset:#x}: call relocation on an instruction that is not a call")
            }
            ElfError::NoMapAtSymbol { section, offset, symbol } => {
                write!(f, "section {section} offset {offset:#x}: no map at symbol {symbol}")
            }
            ElfError::RelocationAddend { section, offset, symbol } => {
                write!(f, "section {section} offset {offset:#x}: offset from symbol {symbol} out of range")
            }
            ElfError::CallTargetNotFound { section, offset } => {
                write!(f, "section {section} offset {offset:#x}: call target is not in a function")
            }
            ElfError::UnexpectedPseudoLoad { section, offset } => {
                write!(f, "section {section} offset {offset:#x}: lddw is already a pseudo load")
            }
            ElfError::CodeBufferFull { capacity } => write!(f, "code buffer of {capacity} bytes is full"),
            ElfError::FunctionTableFull { capacity } => write!(f, "function table of {capacity} entries is full"),
            ElfError::ProgramTooLong { insns } => {
                write!(f, "linked program has {insns} instructions, more than {MAX_INSNS}")
            }
        }
    }
}

impl core::error::Error for ElfError {}

impl From<BtfError> for ElfError {
    fn from(e: BtfError) -> ElfError {
        ElfError::Btf(e)
    }
}

/// Which program to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select<'n> {
    /// The object's only program.
    Only,
    /// The program in the section of this name (e.g. `"xdp"`, `"socket"`).
    Section(&'n str),
    /// The program (function) of this name.
    Function(&'n str),
}

/// A program the object offers: a global function in an executable section other than
/// `.text` (or, when there are none, a global function in `.text`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramInfo<'data> {
    pub name: &'data str,
    pub section_name: &'data str,
    pub symbol: u32,
    pub section: u32,
    /// Length in instruction slots (the function alone, before calls are linked in).
    pub insns: u32,
}

/// Where a map comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MapOrigin {
    /// The legacy `maps` section (`struct bpf_map_def`).
    Legacy,
    /// A BTF-defined map in `.maps`.
    Btf,
    /// A `.data*` section.
    Data,
    /// A `.rodata*` section (`BPF_F_RDONLY_PROG`).
    ReadOnlyData,
    /// A `.bss*` section (starts zeroed).
    Bss,
}

/// A map of the object. Its index (position in [`Object::maps`]) is the imm of the pseudo
/// loads that name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMap<'data> {
    pub def: MapDef,
    pub origin: MapOrigin,
    /// The ELF section it is defined in, and its offset there (0 for data sections).
    pub section: u32,
    pub offset: u64,
    /// The initial bytes of value 0: the section image of `.data`/`.rodata` maps, empty
    /// otherwise (the values start zeroed).
    pub data: &'data [u8],
}

impl ObjectMap<'_> {
    /// The map in caller storage ([`MapDef::storage_len`] bytes, 8-aligned), with value 0
    /// set to [`ObjectMap::data`].
    pub fn create_in<'s>(&self, storage: &'s mut [u8]) -> Result<Map<'s>, MapError> {
        let mut map = Map::new_in(self.def, storage)?;
        self.initialize(&mut map);
        Ok(map)
    }

    /// The map in allocated storage, with value 0 set to [`ObjectMap::data`].
    #[cfg(feature = "alloc")]
    pub fn create(&self) -> Result<Map<'static>, MapError> {
        let mut map = Map::new(self.def)?;
        self.initialize(&mut map);
        Ok(map)
    }

    fn initialize(&self, map: &mut Map) {
        // data.len() == value_size for data sections (checked when the map was defined).
        if let Some(value) = map.values_mut().get_mut(..self.data.len()) {
            value.copy_from_slice(self.data);
        }
    }
}

/// A function placed in the linked program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Function {
    /// Its symbol ([`Object::symbol_name`]).
    pub symbol: u32,
    /// Its section, and its first instruction there.
    pub section: u32,
    pub start: u32,
    /// Its length in instruction slots.
    pub len: u32,
    /// Its first instruction in the linked program.
    pub offset: u32,
}

/// A linked program in caller buffers ([`Object::load_into`]).
#[derive(Clone, Copy, Debug)]
pub struct LinkedProgram<'b> {
    /// The bytecode: 8-byte slots, the program first.
    pub code: &'b [u8],
    /// The functions in `code`, in order; the first is the program.
    pub functions: &'b [Function],
}

/// A linked program ([`Object::load`]).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
pub struct LoadedProgram {
    pub code: alloc::vec::Vec<u8>,
    pub functions: alloc::vec::Vec<Function>,
}

/// A parsed, checked eBPF object. Parsing checks the file structure (sections, symbols,
/// relocation sections, function ranges) and every map definition; choosing and linking a
/// program happens in [`Object::load`] / [`Object::load_into`].
pub struct Object<'data> {
    data: &'data [u8],
    sections: Sections<'data>,
    symbols: Symbols<'data>,
    symtab: u32,
    text: Option<u32>,
    legacy_maps: Option<u32>,
    btf_maps: Option<u32>,
    btf: Option<Btf<'data>>,
    /// The BTF `DATASEC` describing `.maps`.
    maps_datasec: Option<btf::Type<'data>>,
    legacy_map_count: u32,
    btf_map_count: u32,
    map_count: u32,
}

impl fmt::Debug for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("len", &self.data.len())
            .field("sections", &self.sections.len())
            .field("symbols", &self.symbols.len())
            .field("maps", &self.map_count)
            .finish_non_exhaustive()
    }
}

/// Where a symbol is defined.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Undefined,
    Section(u32),
    /// Absolute or common.
    Other,
}

/// Where each map comes from, without reading its definition.
#[derive(Clone, Copy)]
enum MapSource {
    Legacy { symbol: u32 },
    Btf { var: u32 },
    Data { section: u32, origin: MapOrigin },
}

fn clamp_u32(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

fn name_has_prefix(name: &str, base: &str) -> bool {
    name == base || name.strip_prefix(base).is_some_and(|rest| rest.starts_with('.'))
}

impl<'data> Object<'data> {
    /// Parses and checks `data` (see the type's documentation).
    pub fn parse(data: &'data [u8]) -> Result<Object<'data>, ElfError> {
        let ident =
            data.first_chunk::<ELF_HEADER_LEN>().ok_or(ElfError::TruncatedHeader { len: clamp_u32(data.len()) })?;
        if ident.first_chunk::<4>() != Some(&e::ELFMAG) {
            return Err(ElfError::NotElf);
        }
        if ident[EI_CLASS] != e::ELFCLASS64 {
            return Err(ElfError::NotElf64 { class: ident[EI_CLASS] });
        }
        if ident[EI_DATA] != e::ELFDATA2LSB {
            return Err(ElfError::NotLittleEndian { encoding: ident[EI_DATA] });
        }
        let header = Header::parse(data).map_err(|_| ElfError::BadHeader)?;
        let endian = LittleEndian;
        let machine = header.e_machine(endian);
        if machine != EM_BPF {
            return Err(ElfError::NotBpf { machine });
        }
        let file_type = header.e_type(endian);
        if file_type != e::ET_REL {
            return Err(ElfError::NotRelocatable { file_type });
        }
        let sections = header.sections(endian, data).map_err(|_| ElfError::BadSectionTable)?;
        let mut object = Object {
            data,
            symbols: SymbolTable::default(),
            sections,
            symtab: 0,
            text: None,
            legacy_maps: None,
            btf_maps: None,
            btf: None,
            maps_datasec: None,
            legacy_map_count: 0,
            btf_map_count: 0,
            map_count: 0,
        };
        object.check_sections()?;
        object.check_symbols()?;
        object.check_relocation_sections()?;
        object.check_functions()?;
        object.check_maps()?;
        Ok(object)
    }

    // --- parsing and checking -----------------------------------------------------------

    fn check_sections(&mut self) -> Result<(), ElfError> {
        let endian = LittleEndian;
        let mut symtab = None;
        let mut btf_section = None;
        for (index, shdr) in self.sections.enumerate() {
            let section = clamp_u32(index.0);
            let name = self.sections.section_name(endian, shdr).map_err(|_| ElfError::BadSectionName { section })?;
            let name = core::str::from_utf8(name).map_err(|_| ElfError::BadSectionName { section })?;
            let kind = shdr.sh_type(endian);
            if kind != e::SHT_NOBITS && kind != e::SHT_NULL {
                shdr.data(endian, self.data).map_err(|_| ElfError::SectionOutOfBounds { section })?;
            }
            let contents = kind == e::SHT_PROGBITS || kind == e::SHT_NOBITS;
            match (kind, name) {
                (e::SHT_SYMTAB, _) if symtab.is_none() => symtab = Some(index),
                (e::SHT_PROGBITS, ".text") => self.text = Some(section),
                (_, "maps") if contents => self.legacy_maps = Some(section),
                (_, ".maps") if contents => self.btf_maps = Some(section),
                (e::SHT_PROGBITS, ".BTF") => btf_section = Some(section),
                _ => {}
            }
        }
        let symtab = symtab.ok_or(ElfError::NoSymbolTable)?;
        let shdr = self.sections.section(symtab).map_err(|_| ElfError::NoSymbolTable)?;
        self.symbols = SymbolTable::parse(endian, self.data, &self.sections, symtab, shdr)
            .map_err(|_| ElfError::BadSymbolTable)?;
        self.symtab = clamp_u32(symtab.0);
        if let Some(maps) = self.btf_maps {
            // The BTF is only read when it is needed: for BTF-defined maps.
            if self.section_size(maps) > 0 {
                let btf = btf_section.ok_or(ElfError::MissingBtf)?;
                self.btf = Some(Btf::parse(self.section_data(btf))?);
            }
        }
        Ok(())
    }

    fn check_symbols(&self) -> Result<(), ElfError> {
        let endian = LittleEndian;
        for (index, sym) in self.symbols.enumerate() {
            let symbol = clamp_u32(index.0);
            let bad = ElfError::BadSymbol { symbol };
            let name = self.symbols.symbol_name(endian, sym).map_err(|_| bad)?;
            core::str::from_utf8(name).map_err(|_| bad)?;
            match self.symbols.symbol_section(endian, sym, index) {
                Ok(Some(section)) if section.0 >= self.sections.len() => return Err(bad),
                Ok(_) => {}
                Err(_) => return Err(bad),
            }
        }
        Ok(())
    }

    fn check_relocation_sections(&self) -> Result<(), ElfError> {
        let endian = LittleEndian;
        for (index, shdr) in self.sections.enumerate() {
            let section = clamp_u32(index.0);
            let bad = ElfError::BadRelocationSection { section };
            let kind = shdr.sh_type(endian);
            if kind != e::SHT_REL && kind != e::SHT_RELA {
                continue;
            }
            let target = shdr.sh_info(endian);
            if target as usize >= self.sections.len() || target == 0 {
                return Err(bad);
            }
            let is_code = self.is_code(target);
            let is_data =
                self.data_origin(target).is_some() || Some(target) == self.legacy_maps || Some(target) == self.btf_maps;
            if kind == e::SHT_RELA {
                if is_code || is_data {
                    return Err(bad);
                }
                continue;
            }
            let (rels, link) = shdr.rel(endian, self.data).map_err(|_| bad)?.ok_or(bad)?;
            if link.0 != self.symtab as usize {
                return Err(bad);
            }
            // Pointers inside initialised data or map definitions (map-in-map) cannot be
            // represented: refuse them rather than leave them zero.
            if let Some(rel) = rels.first()
                && is_data
            {
                return Err(ElfError::UnsupportedRelocation {
                    section: target,
                    offset: rel.r_offset(endian),
                    kind: rel.r_type(endian),
                });
            }
        }
        Ok(())
    }

    /// Function ranges lie in their sections and do not partly overlap (aliases share one
    /// range), so linking places each instruction at most once.
    fn check_functions(&self) -> Result<(), ElfError> {
        let count = clamp_u32(self.symbols.len());
        for symbol in 0..count {
            let Some(section) = self.function_section(symbol) else { continue };
            let (start, len) = self.function_range(symbol, section)?;
            for other in 0..symbol {
                if self.function_section(other) != Some(section) {
                    continue;
                }
                let (other_start, other_len) = self.function_range(other, section)?;
                let overlap = start < other_start + other_len && other_start < start + len;
                if overlap && (start, len) != (other_start, other_len) {
                    return Err(ElfError::BadFunction { symbol });
                }
            }
        }
        Ok(())
    }

    fn check_maps(&mut self) -> Result<(), ElfError> {
        // Legacy maps: every object symbol in `maps`, at distinct offsets.
        if let Some(section) = self.legacy_maps {
            let mut count = 0u32;
            for symbol in self.symbols_in(section) {
                let offset = self.symbol_value(symbol);
                if self.symbols_in(section).any(|other| other != symbol && self.symbol_value(other) == offset) {
                    return Err(ElfError::BadMapDefinition { map: count, reason: "two maps at the same offset" });
                }
                count += 1;
            }
            self.legacy_map_count = count;
        }
        if let Some(btf) = &self.btf {
            let datasec = btf.find(btf::kind::DATASEC, ".maps")?.ok_or(ElfError::MissingBtf)?;
            self.btf_map_count = clamp_u32(btf.datasec_vars(&datasec).count());
            self.maps_datasec = Some(datasec);
        }
        let data_maps = clamp_u32(self.data_sections().count());
        self.map_count = self.legacy_map_count.saturating_add(self.btf_map_count).saturating_add(data_maps);
        for index in 0..self.map_count {
            self.read_map(index)?;
        }
        Ok(())
    }

    // --- sections and symbols -----------------------------------------------------------

    fn section_header(&self, section: u32) -> Option<&'data SectionHeader64<Endian>> {
        self.sections.section(object::SectionIndex(section as usize)).ok()
    }

    /// Name of section `section` ("" if there is none).
    pub fn section_name(&self, section: u32) -> &'data str {
        let name = self.section_header(section).and_then(|s| self.sections.section_name(LittleEndian, s).ok());
        name.and_then(|n| core::str::from_utf8(n).ok()).unwrap_or_default()
    }

    /// Index of the first section named `name`.
    pub fn section_by_name(&self, name: &str) -> Option<u32> {
        (0..clamp_u32(self.sections.len())).find(|&s| self.section_name(s) == name)
    }

    /// Index of the first symbol named `name`.
    pub fn symbol_by_name(&self, name: &str) -> Option<u32> {
        (1..clamp_u32(self.symbols.len())).find(|&s| self.symbol_name(s) == name)
    }

    /// Contents of section `section` (empty for `SHT_NOBITS` or a missing section).
    fn section_data(&self, section: u32) -> &'data [u8] {
        self.section_header(section).and_then(|s| s.data(LittleEndian, self.data).ok()).unwrap_or_default()
    }

    fn section_size(&self, section: u32) -> u64 {
        self.section_header(section).map_or(0, |s| s.sh_size(LittleEndian))
    }

    fn is_code(&self, section: u32) -> bool {
        self.section_header(section).is_some_and(|s| {
            s.sh_type(LittleEndian) == e::SHT_PROGBITS && s.sh_flags(LittleEndian) & e::SHF_EXECINSTR as u64 != 0
        })
    }

    /// The kind of global-data map section `section` makes, if it is one.
    fn data_origin(&self, section: u32) -> Option<MapOrigin> {
        let shdr = self.section_header(section)?;
        let endian = LittleEndian;
        let flags = shdr.sh_flags(endian);
        if flags & e::SHF_ALLOC as u64 == 0 || flags & e::SHF_EXECINSTR as u64 != 0 {
            return None;
        }
        let name = self.section_name(section);
        match shdr.sh_type(endian) {
            e::SHT_PROGBITS if name_has_prefix(name, ".rodata") => Some(MapOrigin::ReadOnlyData),
            e::SHT_PROGBITS if name_has_prefix(name, ".data") => Some(MapOrigin::Data),
            e::SHT_NOBITS if name_has_prefix(name, ".bss") => Some(MapOrigin::Bss),
            _ => None,
        }
    }

    /// The non-empty global-data sections, in section order.
    fn data_sections(&self) -> impl Iterator<Item = (u32, MapOrigin)> + '_ {
        (0..clamp_u32(self.sections.len()))
            .filter_map(|s| Some((s, self.data_origin(s)?)))
            .filter(|&(s, _)| self.section_size(s) > 0)
    }

    fn symbol(&self, symbol: u32) -> Option<&'data Sym64<Endian>> {
        self.symbols.symbol(object::SymbolIndex(symbol as usize)).ok()
    }

    /// Name of symbol `symbol` ("" if there is none).
    pub fn symbol_name(&self, symbol: u32) -> &'data str {
        let name = self.symbol(symbol).and_then(|s| self.symbols.symbol_name(LittleEndian, s).ok());
        name.and_then(|n| core::str::from_utf8(n).ok()).unwrap_or_default()
    }

    fn symbol_value(&self, symbol: u32) -> u64 {
        self.symbol(symbol).map_or(0, |s| s.st_value(LittleEndian))
    }

    fn place(&self, symbol: u32) -> Place {
        let Some(sym) = self.symbol(symbol) else { return Place::Other };
        if sym.st_shndx(LittleEndian) == e::SHN_UNDEF {
            return Place::Undefined;
        }
        match self.symbols.symbol_section(LittleEndian, sym, object::SymbolIndex(symbol as usize)) {
            Ok(Some(section)) => Place::Section(clamp_u32(section.0)),
            _ => Place::Other,
        }
    }

    /// Object (or untyped) symbols defined in `section`: map definitions.
    fn symbols_in(&self, section: u32) -> impl Iterator<Item = u32> + '_ {
        (0..clamp_u32(self.symbols.len())).filter(move |&s| {
            self.place(s) == Place::Section(section)
                && self.symbol(s).is_some_and(|sym| matches!(sym.st_type(), e::STT_OBJECT | e::STT_NOTYPE))
        })
    }

    /// The section of function symbol `symbol`, if it is a function in an executable
    /// section.
    fn function_section(&self, symbol: u32) -> Option<u32> {
        let sym = self.symbol(symbol)?;
        if sym.st_type() != e::STT_FUNC {
            return None;
        }
        match self.place(symbol) {
            Place::Section(section) if self.is_code(section) => Some(section),
            _ => None,
        }
    }

    /// `(first instruction, length)` of function `symbol` in `section`.
    fn function_range(&self, symbol: u32, section: u32) -> Result<(u32, u32), ElfError> {
        let bad = ElfError::BadFunction { symbol };
        let sym = self.symbol(symbol).ok_or(bad)?;
        let (value, size) = (sym.st_value(LittleEndian), sym.st_size(LittleEndian));
        let end = value.checked_add(size).ok_or(bad)?;
        let slot = Insn::SIZE as u64;
        if size == 0 || !value.is_multiple_of(slot) || !size.is_multiple_of(slot) || end > self.section_size(section) {
            return Err(bad);
        }
        Ok((clamp_u32(value / slot), clamp_u32(size / slot)))
    }

    // --- programs -----------------------------------------------------------------------

    fn is_program(&self, symbol: u32, in_text: bool) -> bool {
        let Some(section) = self.function_section(symbol) else { return false };
        let global = self.symbol(symbol).is_some_and(|s| matches!(s.st_bind(), e::STB_GLOBAL | e::STB_WEAK));
        global && (Some(section) == self.text) == in_text
    }

    /// The programs the object offers, in symbol order: global functions in executable
    /// sections other than `.text`; if there are none, global functions in `.text`.
    pub fn programs(&self) -> impl Iterator<Item = ProgramInfo<'data>> + '_ {
        let symbols = 0..clamp_u32(self.symbols.len());
        let in_text = !symbols.clone().any(|s| self.is_program(s, false));
        symbols.filter(move |&s| self.is_program(s, in_text)).filter_map(|symbol| {
            let section = self.function_section(symbol)?;
            let (_, insns) = self.function_range(symbol, section).ok()?;
            Some(ProgramInfo {
                name: self.symbol_name(symbol),
                section_name: self.section_name(section),
                symbol,
                section,
                insns,
            })
        })
    }

    /// The program `select` names.
    pub fn select(&self, select: Select) -> Result<ProgramInfo<'data>, ElfError> {
        let matches = |p: &ProgramInfo| match select {
            Select::Only => true,
            Select::Section(name) => p.section_name == name,
            Select::Function(name) => p.name == name,
        };
        let candidates = clamp_u32(self.programs().count());
        let count = clamp_u32(self.programs().filter(matches).count());
        match (count, select) {
            (0, Select::Only) => Err(ElfError::NoProgram),
            (0, _) => Err(ElfError::ProgramNotFound { candidates }),
            (1, _) => self.programs().find(matches).ok_or(ElfError::NoProgram),
            (matches, _) => Err(ElfError::AmbiguousProgram { matches }),
        }
    }

    // --- maps -----------------------------------------------------------------------

    /// Number of maps (declared maps and global-data sections).
    pub fn map_count(&self) -> u32 {
        self.map_count
    }

    /// The maps, in index order.
    pub fn maps(&self) -> impl Iterator<Item = ObjectMap<'data>> + '_ {
        // Every map was read once by `parse`, so reading it again cannot fail.
        (0..self.map_count).filter_map(|index| self.read_map(index).ok())
    }

    /// Map `index`.
    pub fn map(&self, index: u32) -> Option<ObjectMap<'data>> {
        self.read_map(index).ok()
    }

    fn map_source(&self, index: u32) -> Option<MapSource> {
        if index < self.legacy_map_count {
            // The index-th legacy map by offset (offsets are distinct).
            let section = self.legacy_maps?;
            let symbol = self.symbols_in(section).find(|&s| {
                let offset = self.symbol_value(s);
                self.symbols_in(section).filter(|&o| self.symbol_value(o) < offset).count() == index as usize
            })?;
            return Some(MapSource::Legacy { symbol });
        }
        let index = index - self.legacy_map_count;
        if index < self.btf_map_count {
            return Some(MapSource::Btf { var: index });
        }
        let (section, origin) = self.data_sections().nth((index - self.btf_map_count) as usize)?;
        Some(MapSource::Data { section, origin })
    }

    /// The `.maps` variable number `var`: its BTF type, its name and its ELF symbol.
    fn btf_map_var(&self, map: u32, var: u32) -> Result<(u32, &'data str, u32), ElfError> {
        let btf = self.btf.as_ref().ok_or(ElfError::MissingBtf)?;
        let section = self.btf_maps.ok_or(ElfError::MissingBtf)?;
        let datasec = self.maps_datasec.as_ref().ok_or(ElfError::MissingBtf)?;
        let info = btf.datasec_vars(datasec).nth(var as usize).ok_or(ElfError::MissingBtf)?;
        let var_type = btf.get(info.type_id)?;
        if var_type.kind != btf::kind::VAR {
            return Err(ElfError::BadMapDefinition { map, reason: "a .maps entry is not a variable" });
        }
        let name = btf.name(&var_type)?;
        // clang leaves the offsets in DATASEC to the linker: the symbol has the real one.
        let symbol = self
            .symbols_in(section)
            .find(|&s| self.symbol_name(s) == name)
            .ok_or(ElfError::BadMapDefinition { map, reason: "no symbol for the map variable" })?;
        Ok((var_type.size_or_type, name, symbol))
    }

    fn read_map(&self, index: u32) -> Result<ObjectMap<'data>, ElfError> {
        let source = self.map_source(index).ok_or(ElfError::BadMapDefinition { map: index, reason: "no such map" })?;
        let (raw, name, origin, section, offset, data) = match source {
            MapSource::Legacy { symbol } => {
                let section = self.legacy_maps.unwrap_or_default();
                let offset = self.symbol_value(symbol);
                (
                    self.legacy_definition(index, symbol)?,
                    self.symbol_name(symbol),
                    MapOrigin::Legacy,
                    section,
                    offset,
                    &[][..],
                )
            }
            MapSource::Btf { var } => {
                let (var_type, name, symbol) = self.btf_map_var(index, var)?;
                let btf = self.btf.as_ref().ok_or(ElfError::MissingBtf)?;
                let raw = btf.map_definition(var_type).map_err(|e| match e {
                    MapDefinitionError::Btf(e) => ElfError::Btf(e),
                    MapDefinitionError::Invalid(reason) => ElfError::BadMapDefinition { map: index, reason },
                })?;
                let section = self.btf_maps.unwrap_or_default();
                (raw, name, MapOrigin::Btf, section, self.symbol_value(symbol), &[][..])
            }
            MapSource::Data { section, origin } => {
                let flags = match origin {
                    MapOrigin::ReadOnlyData => flags::BPF_F_RDONLY_PROG | flags::BPF_F_MMAPABLE,
                    _ => flags::BPF_F_MMAPABLE,
                };
                let value_size = clamp_u32(self.section_size(section));
                let raw = RawMapDef { map_type: 2, key_size: 4, value_size, max_entries: 1, flags };
                let data = if origin == MapOrigin::Bss { &[][..] } else { self.section_data(section) };
                (raw, self.section_name(section), origin, section, 0, data)
            }
        };
        let def =
            MapDef::new(raw.map_type, raw.key_size, raw.value_size, raw.max_entries, raw.flags, MapName::new(name))
                .map_err(|error| ElfError::Map { map: index, error })?;
        Ok(ObjectMap { def, origin, section, offset, data })
    }

    /// A `struct bpf_map_def` (type, key_size, value_size, max_entries, map_flags; fields
    /// past those must be zero, missing ones are zero).
    fn legacy_definition(&self, map: u32, symbol: u32) -> Result<RawMapDef, ElfError> {
        let section = self.legacy_maps.unwrap_or_default();
        let data = self.section_data(section);
        let size = match self.symbol(symbol).map_or(0, |s| s.st_size(LittleEndian)) {
            // Without a symbol size, libbpf splits the section evenly.
            0 => data.len() as u64 / u64::from(self.legacy_map_count.max(1)),
            size => size,
        };
        let start = self.symbol_value(symbol);
        let bytes = start
            .checked_add(size)
            .and_then(|end| data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?))
            .ok_or(ElfError::BadMapDefinition { map, reason: "definition runs past the maps section" })?;
        let mut words = [0u32; 5];
        for (i, word) in words.iter_mut().enumerate() {
            let field = bytes.get(4 * i..4 * i + 4).and_then(|b| b.try_into().ok());
            *word = field.map_or(0, u32::from_le_bytes);
        }
        if bytes.get(20..).is_some_and(|rest| rest.iter().any(|&b| b != 0)) {
            return Err(ElfError::BadMapDefinition { map, reason: "unsupported non-zero fields in bpf_map_def" });
        }
        let [map_type, key_size, value_size, max_entries, flags] = words;
        Ok(RawMapDef { map_type, key_size, value_size, max_entries, flags })
    }

    /// Index of the map defined at `offset` of maps section `section`, or of the data map
    /// of data section `section`.
    fn map_index(&self, section: u32, offset: u64) -> Option<u32> {
        if Some(section) == self.legacy_maps {
            self.symbols_in(section).find(|&s| self.symbol_value(s) == offset)?;
            let before = self.symbols_in(section).filter(|&s| self.symbol_value(s) < offset).count();
            return Some(clamp_u32(before));
        }
        if Some(section) == self.btf_maps {
            let var = (0..self.btf_map_count).find(|&var| {
                self.btf_map_var(0, var).is_ok_and(|(_, _, symbol)| self.symbol_value(symbol) == offset)
            })?;
            return Some(self.legacy_map_count + var);
        }
        let position = self.data_sections().position(|(s, _)| s == section)?;
        Some(self.legacy_map_count + self.btf_map_count + clamp_u32(position))
    }

    // --- linking ------------------------------------------------------------------------

    /// Upper bound of the linked code's size in bytes: all executable sections.
    pub fn max_code_len(&self) -> usize {
        let code = (0..clamp_u32(self.sections.len())).filter(|&s| self.is_code(s));
        code.map(|s| self.section_size(s) as usize).fold(0, usize::saturating_add)
    }

    /// Upper bound of the number of functions in a linked program: all function symbols.
    pub fn max_functions(&self) -> usize {
        (0..clamp_u32(self.symbols.len())).filter(|&s| self.function_section(s).is_some()).count()
    }

    /// Links the program `select` names into caller buffers (no allocation).
    pub fn load_into<'b>(
        &self,
        select: Select,
        code: &'b mut [u8],
        functions: &'b mut [Function],
    ) -> Result<LinkedProgram<'b>, ElfError> {
        let mut code = Fixed { buf: code, len: 0 };
        let mut funcs = Fixed { buf: functions, len: 0 };
        self.link(select, &mut code, &mut funcs)?;
        let code_len = code.len;
        let funcs_len = funcs.len;
        Ok(LinkedProgram {
            code: code.buf.get(..code_len).unwrap_or_default(),
            functions: funcs.buf.get(..funcs_len).unwrap_or_default(),
        })
    }

    /// Links the program `select` names.
    #[cfg(feature = "alloc")]
    pub fn load(&self, select: Select) -> Result<LoadedProgram, ElfError> {
        let mut code = alloc::vec::Vec::new();
        let mut functions = alloc::vec::Vec::new();
        self.link(select, &mut code, &mut functions)?;
        Ok(LoadedProgram { code, functions })
    }

    fn link(
        &self,
        select: Select,
        code: &mut dyn Buffer<u8>,
        funcs: &mut dyn Buffer<Function>,
    ) -> Result<(), ElfError> {
        let program = self.select(select)?;
        self.place_function(program.symbol, program.section, code, funcs)?;
        let mut next = 0;
        while let Some(&function) = funcs.items().get(next) {
            self.relocate(function, code, funcs)?;
            next += 1;
        }
        let insns = code.items().len() / Insn::SIZE;
        if insns > MAX_INSNS {
            return Err(ElfError::ProgramTooLong { insns: clamp_u32(insns) });
        }
        Ok(())
    }

    /// Appends function `symbol` to the program; returns where it starts.
    fn place_function(
        &self,
        symbol: u32,
        section: u32,
        code: &mut dyn Buffer<u8>,
        funcs: &mut dyn Buffer<Function>,
    ) -> Result<Function, ElfError> {
        let (start, len) = self.function_range(symbol, section)?;
        let offset = clamp_u32(code.items().len() / Insn::SIZE);
        let function = Function { symbol, section, start, len, offset };
        let bytes_start = start as usize * Insn::SIZE;
        let bytes = self
            .section_data(section)
            .get(bytes_start..bytes_start + len as usize * Insn::SIZE)
            .ok_or(ElfError::BadFunction { symbol })?;
        if !funcs.push(function) {
            return Err(ElfError::FunctionTableFull { capacity: clamp_u32(funcs.capacity()) });
        }
        if !code.extend(bytes) {
            return Err(ElfError::CodeBufferFull { capacity: clamp_u32(code.capacity()) });
        }
        Ok(function)
    }

    /// The relocations that apply to `section`, as `(offset, type, symbol)`.
    fn relocations(&self, section: u32) -> impl Iterator<Item = (u64, u32, u32)> + '_ {
        let endian = LittleEndian;
        self.sections
            .iter()
            .filter(move |s| s.sh_type(endian) == e::SHT_REL && s.sh_info(endian) == section)
            .flat_map(move |s| s.rel(endian, self.data).ok().flatten().map_or(&[][..], |(rels, _)| rels))
            .map(move |r| (r.r_offset(endian), r.r_type(endian), r.r_sym(endian)))
    }

    /// Applies the relocations of `function` and links its local calls.
    fn relocate(
        &self,
        function: Function,
        code: &mut dyn Buffer<u8>,
        funcs: &mut dyn Buffer<Function>,
    ) -> Result<(), ElfError> {
        let section = function.section;
        let slot = Insn::SIZE as u64;
        let first = function.start as u64 * slot;
        let end = first + function.len as u64 * slot;
        let input = self.section_data(section);
        for (offset, kind, symbol) in self.relocations(section) {
            if offset < first || offset >= end {
                continue;
            }
            if !offset.is_multiple_of(slot) {
                return Err(ElfError::RelocationOffset { section, offset });
            }
            let out_pc = function.offset as usize + ((offset - first) / slot) as usize;
            let insn = read_insn(input, offset as usize).unwrap_or_default();
            match kind {
                reloc::R_BPF_64_64 => {
                    if insn.opcode != op::LDDW || offset + LDDW_LEN as u64 > end {
                        return Err(ElfError::RelocationNotLddw { section, offset });
                    }
                    let second = read_insn(input, offset as usize + Insn::SIZE).unwrap_or_default();
                    let (src, map, value_offset) = self.data_reference(section, offset, symbol, insn, second)?;
                    let first_slot = Insn { src, imm: map as i32, ..insn };
                    let second_slot = Insn { imm: value_offset as i32, ..second };
                    write_insn(code.items_mut(), out_pc, first_slot);
                    write_insn(code.items_mut(), out_pc + 1, second_slot);
                }
                // Calls are linked below, with or without a relocation.
                reloc::R_BPF_64_32 if insn.opcode == op::CALL && insn.src == pseudo::CALL_LOCAL => {}
                reloc::R_BPF_64_32 => return Err(ElfError::RelocationNotCall { section, offset }),
                _ => return Err(ElfError::UnsupportedRelocation { section, offset, kind }),
            }
        }
        let mut index = 0;
        while index < function.len {
            let offset = (function.start + index) as u64 * slot;
            let insn = read_insn(input, offset as usize).unwrap_or_default();
            let out_pc = (function.offset + index) as usize;
            if insn.opcode == op::LDDW {
                if insn.src != pseudo::LDDW_IMM64 {
                    return Err(ElfError::UnexpectedPseudoLoad { section, offset });
                }
                index += 2;
                continue;
            }
            if insn.opcode == op::CALL && insn.src == pseudo::CALL_LOCAL {
                let (target_section, target) = self.call_target(function, offset, insn)?;
                let out_target = self
                    .locate(target_section, target, code, funcs)
                    .ok_or(ElfError::CallTargetNotFound { section, offset })??;
                let imm = out_target as i64 - (out_pc as i64 + 1);
                let imm = i32::try_from(imm).map_err(|_| ElfError::CallTargetNotFound { section, offset })?;
                write_insn(code.items_mut(), out_pc, Insn { imm, ..insn });
            }
            index += 1;
        }
        Ok(())
    }

    /// What a `R_BPF_64_64` relocation against `symbol` makes of its lddw:
    /// `(src, map index, offset in the value)`.
    fn data_reference(
        &self,
        section: u32,
        offset: u64,
        symbol: u32,
        insn: Insn,
        second: Insn,
    ) -> Result<(u8, u32, u32), ElfError> {
        if self.symbol(symbol).is_none() {
            return Err(ElfError::RelocationSymbol { section, offset, symbol });
        }
        let target = match self.place(symbol) {
            Place::Undefined => return Err(ElfError::UndefinedSymbol { section, offset, symbol }),
            Place::Other => return Err(ElfError::UnsupportedRelocationTarget { section, offset, symbol }),
            Place::Section(target) => target,
        };
        let value = self.symbol_value(symbol);
        let addend_error = ElfError::RelocationAddend { section, offset, symbol };
        if Some(target) == self.legacy_maps || Some(target) == self.btf_maps {
            let map = self.map_index(target, value).ok_or(ElfError::NoMapAtSymbol { section, offset, symbol })?;
            if insn.imm != 0 || second.imm != 0 {
                return Err(addend_error);
            }
            return Ok((pseudo::LDDW_MAP_FD, map, 0));
        }
        if self.data_origin(target).is_some() {
            let map =
                self.map_index(target, 0).ok_or(ElfError::UnsupportedRelocationTarget { section, offset, symbol })?;
            // The addend is the first slot's imm (REL relocations); the second slot holds
            // the address's upper half, which must be zero.
            let at = (value as i128) + (insn.imm as i128);
            if second.imm != 0 || at < 0 || at >= self.section_size(target) as i128 {
                return Err(addend_error);
            }
            return Ok((pseudo::LDDW_MAP_VALUE, map, at as u32));
        }
        Err(ElfError::UnsupportedRelocationTarget { section, offset, symbol })
    }

    /// `(section, instruction index)` a local call at `offset` of the function's section
    /// goes to: relocated (`symbol + imm + 1`, in instructions) or pc-relative.
    fn call_target(&self, function: Function, offset: u64, insn: Insn) -> Result<(u32, i64), ElfError> {
        let section = function.section;
        let slot = Insn::SIZE as u64;
        let relocation = self.relocations(section).find(|&(at, kind, _)| at == offset && kind == reloc::R_BPF_64_32);
        let Some((_, _, symbol)) = relocation else {
            return Ok((section, (offset / slot) as i64 + insn.imm as i64 + 1));
        };
        if self.symbol(symbol).is_none() {
            return Err(ElfError::RelocationSymbol { section, offset, symbol });
        }
        match self.place(symbol) {
            Place::Undefined => Err(ElfError::UndefinedSymbol { section, offset, symbol }),
            Place::Section(target) if self.is_code(target) => {
                let value = self.symbol_value(symbol);
                if !value.is_multiple_of(slot) {
                    return Err(ElfError::RelocationAddend { section, offset, symbol });
                }
                Ok((target, (value / slot) as i64 + insn.imm as i64 + 1))
            }
            _ => Err(ElfError::UnsupportedRelocationTarget { section, offset, symbol }),
        }
    }

    /// The linked position of instruction `target` of `section`: in a function already
    /// placed, or in the function that contains it, placed now. `None` when no function
    /// contains it.
    fn locate(
        &self,
        section: u32,
        target: i64,
        code: &mut dyn Buffer<u8>,
        funcs: &mut dyn Buffer<Function>,
    ) -> Option<Result<u32, ElfError>> {
        let target = u32::try_from(target).ok()?;
        let contains = |f: &Function| f.section == section && f.start <= target && target - f.start < f.len;
        if let Some(f) = funcs.items().iter().find(|f| contains(f)) {
            return Some(Ok(f.offset + (target - f.start)));
        }
        let symbol = (0..clamp_u32(self.symbols.len())).find(|&s| {
            self.function_section(s) == Some(section)
                && self.function_range(s, section).is_ok_and(|(start, len)| start <= target && target - start < len)
        })?;
        Some(self.place_function(symbol, section, code, funcs).map(|f| f.offset + (target - f.start)))
    }

    // --- messages -----------------------------------------------------------------------

    /// `error` with the object's names: sections, symbols, maps, and the candidate programs.
    pub fn explain(&self, error: ElfError) -> Explained<'_, 'data> {
        Explained { object: self, error }
    }

    fn map_name(&self, map: u32) -> &'data str {
        match self.map_source(map) {
            Some(MapSource::Legacy { symbol }) => self.symbol_name(symbol),
            Some(MapSource::Btf { var }) => self.btf_map_var(map, var).map_or("", |(_, name, _)| name),
            Some(MapSource::Data { section, .. }) => self.section_name(section),
            None => "",
        }
    }
}

/// An [`ElfError`] with names from its object ([`Object::explain`]).
pub struct Explained<'o, 'data> {
    object: &'o Object<'data>,
    error: ElfError,
}

impl fmt::Display for Explained<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.object;
        let at = |f: &mut fmt::Formatter<'_>, section: u32, offset: u64| {
            write!(f, "section `{}` ({section}) offset {offset:#x}", o.section_name(section))
        };
        let symbol =
            |f: &mut fmt::Formatter<'_>, symbol: u32| write!(f, "`{}` (symbol {symbol})", o.symbol_name(symbol));
        match self.error {
            ElfError::UnsupportedRelocation { section, offset, kind } => {
                at(f, section, offset)?;
                write!(f, ": relocation {} not supported", reloc_name(kind))
            }
            ElfError::RelocationOffset { section, offset } => {
                at(f, section, offset)?;
                f.write_str(": relocation not at an instruction")
            }
            ElfError::RelocationSymbol { section, offset, symbol: s } => {
                at(f, section, offset)?;
                write!(f, ": relocation names missing symbol {s}")
            }
            ElfError::UndefinedSymbol { section, offset, symbol: s } => {
                at(f, section, offset)?;
                f.write_str(": relocation against undefined symbol ")?;
                symbol(f, s)
            }
            ElfError::UnsupportedRelocationTarget { section, offset, symbol: s } => {
                at(f, section, offset)?;
                f.write_str(": relocation against ")?;
                symbol(f, s)?;
                write!(f, " in section `{}`, not a map, global data or function", o.symbol_section_name(s))
            }
            ElfError::RelocationNotLddw { section, offset } => {
                at(f, section, offset)?;
                f.write_str(": R_BPF_64_64 relocation on an instruction that is not lddw")
            }
            ElfError::RelocationNotCall { section, offset } => {
                at(f, section, offset)?;
                f.write_str(": R_BPF_64_32 relocation on an instruction that is not a local call")
            }
            ElfError::NoMapAtSymbol { section, offset, symbol: s } => {
                at(f, section, offset)?;
                f.write_str(": no map defined at ")?;
                symbol(f, s)
            }
            ElfError::RelocationAddend { section, offset, symbol: s } => {
                at(f, section, offset)?;
                f.write_str(": offset from ")?;
                symbol(f, s)?;
                f.write_str(" is out of range")
            }
            ElfError::CallTargetNotFound { section, offset } => {
                at(f, section, offset)?;
                f.write_str(": call target is not in a function")
            }
            ElfError::UnexpectedPseudoLoad { section, offset } => {
                at(f, section, offset)?;
                f.write_str(": lddw is already a pseudo load")
            }
            ElfError::BadSectionName { section }
            | ElfError::SectionOutOfBounds { section }
            | ElfError::BadRelocationSection { section } => write!(f, "{} (`{}`)", self.error, o.section_name(section)),
            ElfError::BadSymbol { symbol: s } | ElfError::BadFunction { symbol: s } => {
                write!(f, "{} (`{}`)", self.error, o.symbol_name(s))
            }
            ElfError::BadMapDefinition { map, reason } => write!(f, "map `{}` ({map}): {reason}", o.map_name(map)),
            ElfError::Map { map, error } => write!(f, "map `{}` ({map}): {error}", o.map_name(map)),
            ElfError::ProgramNotFound { .. } | ElfError::AmbiguousProgram { .. } => {
                write!(f, "{}; programs:", self.error)?;
                for p in o.programs() {
                    write!(f, " `{}` (section `{}`)", p.name, p.section_name)?;
                }
                Ok(())
            }
            other => write!(f, "{other}"),
        }
    }
}

impl Object<'_> {
    fn symbol_section_name(&self, symbol: u32) -> &str {
        match self.place(symbol) {
            Place::Section(s) => self.section_name(s),
            Place::Undefined => "(undefined)",
            Place::Other => "(absolute)",
        }
    }
}

fn reloc_name(kind: u32) -> &'static str {
    match kind {
        reloc::R_BPF_NONE => "R_BPF_NONE (0)",
        reloc::R_BPF_64_64 => "R_BPF_64_64 (1)",
        reloc::R_BPF_64_ABS64 => "R_BPF_64_ABS64 (2)",
        reloc::R_BPF_64_ABS32 => "R_BPF_64_ABS32 (3)",
        reloc::R_BPF_64_NODYLD32 => "R_BPF_64_NODYLD32 (4)",
        reloc::R_BPF_64_32 => "R_BPF_64_32 (10)",
        _ => "of an unknown type",
    }
}

fn read_insn(bytes: &[u8], offset: usize) -> Option<Insn> {
    let slot: [u8; 8] = bytes.get(offset..offset.checked_add(Insn::SIZE)?)?.try_into().ok()?;
    Some(Insn::decode(slot))
}

fn write_insn(bytes: &mut [u8], pc: usize, insn: Insn) {
    let start = pc * Insn::SIZE;
    if let Some(slot) = bytes.get_mut(start..start + Insn::SIZE) {
        slot.copy_from_slice(&insn.encode());
    }
}

/// Growable output: a `Vec` with `alloc`, or a caller slice.
trait Buffer<T: Copy> {
    fn items(&self) -> &[T];
    fn items_mut(&mut self) -> &mut [T];
    /// Appends; `false` when full.
    fn extend(&mut self, items: &[T]) -> bool;
    fn push(&mut self, item: T) -> bool {
        self.extend(&[item])
    }
    fn capacity(&self) -> usize;
}

struct Fixed<'b, T> {
    buf: &'b mut [T],
    len: usize,
}

impl<T: Copy> Buffer<T> for Fixed<'_, T> {
    fn items(&self) -> &[T] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn items_mut(&mut self) -> &mut [T] {
        self.buf.get_mut(..self.len).unwrap_or_default()
    }

    fn extend(&mut self, items: &[T]) -> bool {
        let end = self.len + items.len();
        let Some(dst) = self.buf.get_mut(self.len..end) else { return false };
        dst.copy_from_slice(items);
        self.len = end;
        true
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(feature = "alloc")]
impl<T: Copy> Buffer<T> for alloc::vec::Vec<T> {
    fn items(&self) -> &[T] {
        self
    }

    fn items_mut(&mut self) -> &mut [T] {
        self
    }

    fn extend(&mut self, items: &[T]) -> bool {
        self.extend_from_slice(items);
        true
    }

    fn capacity(&self) -> usize {
        usize::MAX
    }
}
