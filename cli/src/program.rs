//! PROG for the `tessera` commands: an ELF object (`clang -target bpf -O2 -c`), assembly
//! text or raw bytecode. This module reads it, builds the [`Vm`] and runs it with the
//! helpers and memory that kind of program gets, and names where in the file an error is
//! (`file:line` for assembly, section and offset for ELF, the instruction always).
//!
//! Maps and global data: an object's maps (its `.maps`/`maps` definitions and its
//! `.data`/`.rodata`/`.bss` sections) are created with their initial images for every
//! run, and objects call the standard helpers (map lookup/update/delete, clock, trace,
//! random) with a [`StdHost`]. `--show-maps` prints them after the run ([`show_maps`]).

use std::fmt::Write as _;

use tessera::ebpf::elf::{Object, Select};
use tessera::ebpf::helpers::standard::STANDARD;
use tessera::ebpf::jit::OwnedScratch;
use tessera::ebpf::maps::{Map, MapDef, MapKey};
use tessera::ebpf::memory::Host;
use tessera::ebpf::{CompileError, Error, Helpers, JitProgram, LoadError, Memory, Mode, RunError, Vm, asm};

use crate::perf_code::PerfVisibleCode;
use crate::{STACK_SIZE, perf_map::PerfMap};

/// Room for generated code per eBPF slot when compiling outside the arena: several times
/// the largest instruction's stencils with their stubs.
const CODE_BYTES_PER_SLOT: usize = 1024;

/// The ELF magic number: a file starting with it is read as an object.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// A program read from a file.
#[derive(Debug)]
pub struct ProgramFile {
    /// The file as named on the command line (for messages).
    pub path: String,
    /// The bytecode: 8-byte slots.
    pub bytecode: Vec<u8>,
    pub kind: Kind,
}

/// What the file was.
#[derive(Debug)]
pub enum Kind {
    Assembly { text: String },
    Bytecode,
    Elf(ElfProgram),
}

/// The program chosen from an object, linked.
#[derive(Debug)]
pub struct ElfProgram {
    /// The object file (its maps are made from it: `Object::parse(&data)?.maps()`).
    pub data: Vec<u8>,
    /// The program's function name and section.
    pub name: String,
    pub section: String,
    /// The functions in the linked bytecode, in order; the first is the program.
    pub functions: Vec<PlacedFunction>,
    /// Maps the object declares, global-data sections included, in the order pseudo loads
    /// name them.
    pub maps: Vec<MapDef>,
}

/// A function of the object placed in the linked bytecode.
#[derive(Clone, Debug)]
pub struct PlacedFunction {
    pub name: String,
    pub section: String,
    /// Its first slot in its section.
    pub start: u32,
    /// Its length in slots.
    pub len: u32,
    /// Its first slot in the linked bytecode.
    pub offset: u32,
}

/// Why PROG cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Unreadable or not a program: exit 1.
    Program(String),
    /// `--section`/`--function` for a file that is not an object: exit 2.
    Usage(String),
}

impl ProgramFile {
    /// Reads `path`: an ELF object if it starts with the ELF magic number (`select` chooses
    /// the program), else assembly text if it is UTF-8 and assembles, else raw bytecode.
    pub fn read(path: &str, select: Option<Select>) -> Result<ProgramFile, ReadError> {
        let data = std::fs::read(path).map_err(|e| ReadError::Program(format!("{path}: {e}")))?;
        ProgramFile::from_bytes(path, data, select)
    }

    /// [`ProgramFile::read`] of `data`, named `path` in messages.
    pub fn from_bytes(path: &str, data: Vec<u8>, select: Option<Select>) -> Result<ProgramFile, ReadError> {
        if data.starts_with(ELF_MAGIC) {
            return ProgramFile::from_object(path, data, select.unwrap_or(Select::Only));
        }
        if let Some(select) = select {
            let option = match select {
                Select::Function(_) => "--function",
                _ => "--section",
            };
            return Err(ReadError::Usage(format!("{option} applies to ELF objects, and {path} is not one")));
        }
        let (bytecode, source) =
            crate::load_program(&data).map_err(|e| ReadError::Program(located_load_error(path, &e)))?;
        let kind = match source {
            crate::Source::Assembly => Kind::Assembly { text: String::from_utf8(data).unwrap_or_default() },
            crate::Source::Bytecode => Kind::Bytecode,
        };
        Ok(ProgramFile { path: path.to_string(), bytecode, kind })
    }

    fn from_object(path: &str, data: Vec<u8>, select: Select) -> Result<ProgramFile, ReadError> {
        let fail = |msg: String| ReadError::Program(format!("{path}: {msg}"));
        let (bytecode, elf) = {
            let object = Object::parse(&data).map_err(|e| fail(e.to_string()))?;
            let explain = |e| fail(object.explain(e).to_string());
            let info = object.select(select).map_err(explain)?;
            let linked = object.load(select).map_err(explain)?;
            let functions = linked
                .functions
                .iter()
                .map(|f| PlacedFunction {
                    name: object.symbol_name(f.symbol).to_string(),
                    section: object.section_name(f.section).to_string(),
                    start: f.start,
                    len: f.len,
                    offset: f.offset,
                })
                .collect();
            let (name, section) = (info.name.to_string(), info.section_name.to_string());
            (linked.code, (name, section, functions, object.maps().map(|m| m.def).collect()))
        };
        let (name, section, functions, maps) = elf;
        let elf = ElfProgram { data, name, section, functions, maps };
        Ok(ProgramFile { path: path.to_string(), bytecode, kind: Kind::Elf(elf) })
    }

    /// A short name for the program: the ELF function, else the file's stem.
    pub fn name(&self) -> String {
        match &self.kind {
            Kind::Elf(elf) => elf.name.clone(),
            _ => std::path::Path::new(&self.path)
                .file_stem()
                .map_or_else(|| self.path.clone(), |s| s.to_string_lossy().into_owned()),
        }
    }

    /// What the file is, for listings: `assembly`, `bytecode`, or the ELF program.
    pub fn describe_kind(&self) -> String {
        match &self.kind {
            Kind::Assembly { .. } => "assembly".into(),
            Kind::Bytecode => "bytecode".into(),
            Kind::Elf(elf) => {
                let mut s = format!("ELF program `{}` (section `{}`", elf.name, elf.section);
                if elf.functions.len() > 1 {
                    let _ = write!(s, ", {} functions", elf.functions.len());
                }
                if !elf.maps.is_empty() {
                    let _ = write!(s, ", {} maps", elf.maps.len());
                }
                s.push(')');
                s
            }
        }
    }

    /// The helpers the program may call: for assembly and bytecode, the bpf_conformance
    /// suite's (id 5 returns its first argument); for ELF objects the standard set (map
    /// lookup/update/delete, `ktime_get_ns`, `trace_printk`, `get_prandom_u32`).
    pub fn helpers(&self) -> Helpers<'static> {
        match self.kind {
            Kind::Elf(_) => Helpers::new(&STANDARD),
            Kind::Assembly { .. } | Kind::Bytecode => crate::helpers(),
        }
    }

    /// The map definitions pseudo loads may name: the object's, none for other kinds.
    pub fn map_defs(&self) -> &[MapDef] {
        match &self.kind {
            Kind::Elf(elf) => &elf.maps,
            Kind::Assembly { .. } | Kind::Bytecode => &[],
        }
    }

    /// The validated program.
    pub fn vm(&self) -> Result<Vm<'_, 'static>, LoadError> {
        Vm::with_maps(&self.bytecode, self.map_defs(), self.helpers())
    }

    /// The object's maps as a run starts with them: values zeroed, data sections holding
    /// their initial image. Empty for assembly and bytecode.
    pub fn create_maps(&self) -> Result<Vec<Map<'static>>, String> {
        let Kind::Elf(elf) = &self.kind else { return Ok(Vec::new()) };
        let object = Object::parse(&elf.data).map_err(|e| format!("{}: {e}", self.path))?;
        object
            .maps()
            .map(|m| m.create().map_err(|e| format!("{}: map `{}`: {e}", self.path, m.def.name().as_str())))
            .collect()
    }

    /// Runs the program with `context` as its memory (r1 = address, r2 = length), `maps`
    /// (from [`ProgramFile::create_maps`]) and a budget of `fuel`. In `Mode::Jit` the code
    /// is compiled into the process's arena, or with `perf` into memory perf names from the
    /// map, and recorded there.
    pub fn run(
        &self,
        context: &mut [u8],
        maps: &mut [Map<'static>],
        mode: Mode,
        fuel: u64,
        perf: Option<&mut PerfMap>,
    ) -> Result<u64, Error> {
        let mut vm = self.vm()?;
        vm.set_fuel(fuel);
        let mut stack = vec![0u8; STACK_SIZE];
        let mut host = StdHost::new();
        let mut memory = Memory::new(&mut stack, context, &mut []).with_maps(maps).with_host(&mut host);
        match mode {
            Mode::Interpreter => Ok(vm.interpret(&mut memory)?),
            Mode::FastInterpreter => vm.run(Mode::FastInterpreter, &mut memory),
            Mode::Jit => match perf {
                None => Ok(vm.compile()?.run(&mut memory)?),
                Some(perf) => {
                    let name = format!("tessera:{}", self.name());
                    let record = |perf: &mut PerfMap, jit: &JitProgram| {
                        if let Err(e) = perf.record(jit.address(), jit.code().len(), &name) {
                            eprintln!("warning: {}: {e}", perf.path().display());
                        }
                    };
                    // perf names code from its map only in anonymous memory (see
                    // `perf_code`), which the code arena is not. Where that memory cannot be
                    // had (qemu-user has no `mremap` of shared mappings), the arena it is.
                    let mut code = match PerfVisibleCode::new(CODE_BYTES_PER_SLOT * (self.bytecode.len() / 8 + 1)) {
                        Ok(code) => code,
                        Err(e) => {
                            eprintln!("warning: --perf-map: {e}; the code is in the arena, which perf does not name");
                            let jit = vm.compile()?;
                            record(perf, &jit);
                            return Ok(jit.run(&mut memory)?);
                        }
                    };
                    let need = vm.scratch_size();
                    let mut scratch = OwnedScratch::with_size(need);
                    let mut buffer = code.buffer();
                    let jit = vm.compile_into(&mut buffer, scratch.scratch())?;
                    record(perf, &jit);
                    Ok(jit.run(&mut memory)?)
                }
            },
        }
    }

    /// The function of an object that starts at slot `pc`, as `` `name` (section `s`) ``.
    pub fn function_starting_at(&self, pc: usize) -> Option<String> {
        let Kind::Elf(elf) = &self.kind else { return None };
        let f = elf.functions.iter().find(|f| f.offset as usize == pc)?;
        Some(format!("`{}` (section `{}`)", f.name, f.section))
    }

    /// Where slot `pc` is: `count.s:7`, `prog.o: section `socket` offset 0x60 in
    /// `udp_filter``, or just the file for bytecode (the instruction index is its place).
    pub fn locate(&self, pc: usize) -> String {
        match &self.kind {
            Kind::Assembly { text } => match asm::line_of_slot(text, pc) {
                Some(line) => format!("{}:{line}", self.path),
                None => self.path.clone(),
            },
            Kind::Bytecode => self.path.clone(),
            Kind::Elf(elf) => {
                let pc = pc as u64;
                let function =
                    elf.functions.iter().find(|f| (f.offset as u64..f.offset as u64 + f.len as u64).contains(&pc));
                match function {
                    Some(f) => {
                        let offset = (f.start as u64 + pc - f.offset as u64) * 8;
                        format!("{}: section `{}` offset {offset:#x} in `{}`", self.path, f.section, f.name)
                    }
                    None => self.path.clone(),
                }
            }
        }
    }

    /// `error` as one line: where it happened, then what (which names the instruction).
    pub fn explain(&self, error: &Error) -> String {
        let Some(pc) = error_pc(error) else { return format!("{}: {error}", self.path) };
        format!("{}: {error}", self.locate(pc as usize))
    }
}

/// `path:line: message` for an assembler error, `path: message` otherwise.
fn located_load_error(path: &str, e: &crate::LoadError) -> String {
    match e {
        crate::LoadError::Asm(e) => format!("{path}:{}: {}", e.line, e.kind),
        other => format!("{path}: {other}"),
    }
}

/// The instruction an error names, if any.
pub fn error_pc(error: &Error) -> Option<u32> {
    match *error {
        Error::Load(
            LoadError::UnknownOpcode { pc, .. }
            | LoadError::ReservedField { pc }
            | LoadError::BadRegister { pc, .. }
            | LoadError::FrameRegisterWrite { pc }
            | LoadError::JumpOutOfRange { pc, .. }
            | LoadError::JumpIntoLddw { pc, .. }
            | LoadError::TruncatedLddw { pc }
            | LoadError::BadLddwSecondSlot { pc }
            | LoadError::UnknownHelper { pc, .. }
            | LoadError::FallsOffEnd { pc }
            | LoadError::FallsIntoFunction { pc, .. }
            | LoadError::JumpOutOfFunction { pc, .. }
            | LoadError::Unreachable { pc }
            | LoadError::ShiftOutOfRange { pc, .. }
            | LoadError::UnknownMap { pc, .. }
            | LoadError::MapValueOffset { pc, .. },
        )
        | Error::Compile(CompileError::Unlowerable { pc })
        | Error::Run(
            RunError::MemoryFault { pc, .. }
            | RunError::OutOfFuel { pc }
            | RunError::CallDepthExceeded { pc }
            | RunError::MisalignedAtomic { pc, .. }
            | RunError::HelperNotFound { pc, .. }
            | RunError::InvalidInstruction { pc },
        ) => Some(pc),
        _ => None,
    }
}

/// The standard helpers' view of this process: a monotonic clock from the run's start,
/// `bpf_trace_printk` lines on stderr, and xorshift random numbers seeded from the time.
pub struct StdHost {
    start: std::time::Instant,
    random: u64,
}

impl StdHost {
    pub fn new() -> StdHost {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        // xorshift must not start at 0.
        StdHost { start: std::time::Instant::now(), random: seed | 1 }
    }
}

impl Default for StdHost {
    fn default() -> StdHost {
        StdHost::new()
    }
}

impl Host for StdHost {
    fn ktime_ns(&mut self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn trace(&mut self, message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        eprintln!("trace: {}", text.strip_suffix('\n').unwrap_or(&text));
    }

    fn random_u32(&mut self) -> u32 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        (x >> 32) as u32
    }
}

/// The maps after a run, for `--show-maps`: a header per map, then its present entries
/// (`key => value`, bytes in hex, with the number for 4- and 8-byte keys and values).
/// Arrays list only their non-zero values and say how many were zero.
pub fn show_maps(maps: &[Map]) -> String {
    let mut out = String::new();
    for map in maps {
        let def = map.def();
        let _ = writeln!(
            out,
            "map `{}` ({}, key {} bytes, value {} bytes, {} of {} entries):",
            def.name().as_str(),
            def.map_type(),
            def.key_size(),
            def.value_size(),
            map.len(),
            def.max_entries()
        );
        let mut zeros = 0;
        for (key, value) in map.entries() {
            let key = match key {
                MapKey::Index(index) => {
                    if value.iter().all(|&b| b == 0) {
                        zeros += 1;
                        continue;
                    }
                    format!("[{index}]")
                }
                MapKey::Bytes(bytes) => hex_number(bytes),
            };
            let _ = writeln!(out, "  {key} => {}", hex_number(value));
        }
        if zeros > 0 {
            let _ = writeln!(out, "  ({zeros} zero values not shown)");
        }
    }
    out
}

/// `01 00 00 00 (1)`: bytes in hex, and as a little-endian number when 4 or 8 long.
fn hex_number(bytes: &[u8]) -> String {
    let mut s = bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
    let number = match *bytes {
        [a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d]) as u64),
        [a, b, c, d, e, f, g, h] => Some(u64::from_le_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    };
    if let Some(n) = number {
        let _ = write!(s, " ({n})");
    }
    s
}
