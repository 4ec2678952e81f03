//! The errors of the eBPF front end, one type per stage: loading ([`LoadError`]),
//! compiling ([`CompileError`]) and running ([`RunError`]), and [`Error`] for calls that
//! span stages. Instruction indices (`pc`) count 8-byte slots from 0, so the second slot of
//! `lddw` has its own index.

use core::fmt;

use tessera_jit::Isa;

/// Why bytecode was rejected (validation), or the program could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LoadError {
    /// The bytecode length is not a multiple of 8.
    BytecodeLength { len: u32 },
    /// The program has no instructions.
    EmptyProgram,
    /// The program has more instructions than the loader accepts.
    ProgramTooLong { len: u32, max: u32 },
    /// Unknown opcode, or a field combination RFC 9669 does not define.
    UnknownOpcode { pc: u32, opcode: u8 },
    /// A field RFC 9669 reserves (must be zero) is not zero.
    ReservedField { pc: u32 },
    /// A register number above r10.
    BadRegister { pc: u32, reg: u8 },
    /// An instruction writes the read-only frame pointer r10.
    FrameRegisterWrite { pc: u32 },
    /// A jump or call lands outside the program.
    JumpOutOfRange { pc: u32, target: i64 },
    /// A jump or call lands on the second slot of `lddw`.
    JumpIntoLddw { pc: u32, target: u32 },
    /// `lddw` in the last slot, with no second slot.
    TruncatedLddw { pc: u32 },
    /// The second slot of `lddw` has something other than zero outside its imm.
    BadLddwSecondSlot { pc: u32 },
    /// `call` names a helper id the embedder did not register.
    UnknownHelper { pc: u32, id: i32 },
    /// Execution can run past the last instruction (it is not `exit` or `ja`).
    FallsOffEnd { pc: u32 },
    /// The last instruction of a function is not `exit` or `ja`, so execution can run on
    /// into the next function (the local-call target `function`).
    FallsIntoFunction { pc: u32, function: u32 },
    /// A jump lands outside the function it is in (functions: the entry at 0 and every
    /// local-call target, each up to the next).
    JumpOutOfFunction { pc: u32, target: u32 },
    /// No path from the entry (through jumps, fall-through and local calls) reaches `pc`.
    Unreachable { pc: u32 },
    /// A shift by an immediate outside `0..width` (32 or 64 bits), as the Linux verifier
    /// rejects.
    ShiftOutOfRange { pc: u32, amount: i32, width: u8 },
    /// A pseudo `lddw` (src 1 or 2) names a map index the program was not given.
    UnknownMap { pc: u32, map: u32 },
    /// A `lddw` of a map value (src 2) with an offset at or past the value's size.
    MapValueOffset { pc: u32, map: u32, offset: u32 },
    /// The caller's validation scratch is smaller than `needed` words.
    ScratchTooSmall { needed: u32 },
    /// The caller's buffer for the fast interpreter's decoded program is smaller than
    /// `needed` slots (see `fast_interp::slots_needed`).
    SlotBufferTooSmall { needed: u32 },
    /// A helper id was registered twice.
    DuplicateHelper { id: u32 },
    /// A fixed-capacity helper registry is full.
    HelperTableFull { capacity: u32 },
}

/// Why code could not be generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CompileError {
    /// The copy-and-patch core failed (most often: the code buffer is full).
    Emit(tessera_jit::Error),
    /// This build links no stencil table for the ISA (see the crate's ISA features).
    IsaNotLinked { isa: Isa },
    /// Compiling for the host asked on a host that is none of the supported ISAs.
    UnsupportedHost,
    /// The caller's scratch is smaller than [`crate::ebpf::jit::ScratchSize`] says.
    ScratchTooSmall { labels: u32, fixups: u32 },
    /// A validated instruction the lowering has no stencil for (a validator bug, reported).
    Unlowerable { pc: u32 },
    /// The generated code would exceed `limit` bytes (the configured bound, or the ISA's
    /// branch reach).
    CodeTooLarge { limit: u64 },
}

/// Why a run stopped without a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RunError {
    /// A load, store or atomic outside every allowed region.
    MemoryFault { pc: u32, addr: u64 },
    /// The fuel budget is spent.
    OutOfFuel { pc: u32 },
    /// A local call exceeded the call-depth limit.
    CallDepthExceeded { pc: u32 },
    /// An atomic operation on an address that is not naturally aligned.
    MisalignedAtomic { pc: u32, addr: u64 },
    /// `callx` named a helper id the embedder did not register.
    HelperNotFound { pc: u32, id: u64 },
    /// The stack given to a run is smaller than one frame.
    StackTooSmall { len: u32, needed: u32 },
    /// More embedder-granted regions than a run supports.
    TooManyRegions { max: u32 },
    /// The code was emitted for another ISA, or into memory this machine cannot execute.
    NotRunnable,
    /// Execution reached an instruction validation rejects (a validator bug, reported).
    InvalidInstruction { pc: u32 },
    /// A region of the run (stack, context, map values, granted) is 4 GiB or larger.
    RegionTooLarge { region: u32 },
    /// The run's maps do not match the program's: missing, or another definition than map
    /// `map` of the program.
    MapMismatch { map: u32 },
    /// A helper panicked (caught at the call, with `std`).
    HelperPanicked { pc: u32 },
}

/// An error from any stage, for calls that load, compile and run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    Load(LoadError),
    Compile(CompileError),
    Run(RunError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LoadError::BytecodeLength { len } => write!(f, "bytecode length {len} is not a multiple of 8"),
            LoadError::EmptyProgram => f.write_str("program has no instructions"),
            LoadError::ProgramTooLong { len, max } => write!(f, "program has {len} instructions, more than {max}"),
            LoadError::UnknownOpcode { pc, opcode } => write!(f, "instruction {pc}: unknown opcode {opcode:#04x}"),
            LoadError::ReservedField { pc } => write!(f, "instruction {pc}: reserved field is not zero"),
            LoadError::BadRegister { pc, reg } => write!(f, "instruction {pc}: bad register r{reg}"),
            LoadError::FrameRegisterWrite { pc } => {
                write!(f, "instruction {pc}: writes the read-only frame pointer r10")
            }
            LoadError::JumpOutOfRange { pc, target } => {
                write!(f, "instruction {pc}: jump target {target} outside the program")
            }
            LoadError::JumpIntoLddw { pc, target } => {
                write!(f, "instruction {pc}: jump target {target} is the second slot of lddw")
            }
            LoadError::TruncatedLddw { pc } => write!(f, "instruction {pc}: lddw has no second slot"),
            LoadError::BadLddwSecondSlot { pc } => write!(f, "instruction {pc}: malformed second slot of lddw"),
            LoadError::UnknownHelper { pc, id } => write!(f, "instruction {pc}: unknown helper id {id}"),
            LoadError::FallsOffEnd { pc } => {
                write!(f, "instruction {pc}: execution can fall off the end of the program")
            }
            LoadError::UnknownMap { pc, map } => write!(f, "instruction {pc}: no map with index {map}"),
            LoadError::MapValueOffset { pc, map, offset } => {
                write!(f, "instruction {pc}: offset {offset} is past the value of map {map}")
            }
            LoadError::FallsIntoFunction { pc, function } => {
                write!(f, "instruction {pc}: execution can fall through into the function at {function}")
            }
            LoadError::JumpOutOfFunction { pc, target } => {
                write!(f, "instruction {pc}: jump target {target} is outside the function of the jump")
            }
            LoadError::Unreachable { pc } => write!(f, "instruction {pc}: unreachable"),
            LoadError::ShiftOutOfRange { pc, amount, width } => {
                write!(f, "instruction {pc}: shift by {amount} is outside 0..{width}")
            }
            LoadError::ScratchTooSmall { needed } => write!(f, "validation scratch too small: {needed} words needed"),
            LoadError::SlotBufferTooSmall { needed } => {
                write!(f, "fast-interpreter slot buffer too small: {needed} slots needed")
            }
            LoadError::DuplicateHelper { id } => write!(f, "helper id {id} registered twice"),
            LoadError::HelperTableFull { capacity } => write!(f, "helper registry full ({capacity} helpers)"),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CompileError::Emit(e) => write!(f, "emitting code failed: {e}"),
            CompileError::IsaNotLinked { isa } => {
                write!(f, "no stencil table for {isa} in this build (enable the `{isa}` feature)")
            }
            CompileError::UnsupportedHost => f.write_str("the host is not x86-64, AArch64 or RISC-V"),
            CompileError::ScratchTooSmall { labels, fixups } => {
                write!(f, "scratch too small: {labels} labels and {fixups} fix-ups needed")
            }
            CompileError::Unlowerable { pc } => write!(f, "instruction {pc}: no stencil for a validated instruction"),
            CompileError::CodeTooLarge { limit } => write!(f, "generated code would exceed {limit} bytes"),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RunError::MemoryFault { pc, addr } => write!(
                f,
                "instruction {pc}: memory access at {addr:#x} (region {}, offset {:#x}) out of bounds",
                addr >> 32,
                addr & 0xffff_ffff
            ),
            RunError::OutOfFuel { pc } => write!(f, "instruction {pc}: out of fuel"),
            RunError::CallDepthExceeded { pc } => write!(f, "instruction {pc}: call depth limit exceeded"),
            RunError::MisalignedAtomic { pc, addr } => {
                write!(f, "instruction {pc}: misaligned atomic access at {addr:#x}")
            }
            RunError::HelperNotFound { pc, id } => write!(f, "instruction {pc}: no helper with id {id}"),
            RunError::StackTooSmall { len, needed } => {
                write!(f, "stack of {len} bytes is smaller than one {needed}-byte frame")
            }
            RunError::TooManyRegions { max } => write!(f, "more than {max} granted regions"),
            RunError::NotRunnable => f.write_str("code for another ISA, or in memory this machine cannot execute"),
            RunError::InvalidInstruction { pc } => write!(f, "instruction {pc}: not a valid instruction"),
            RunError::RegionTooLarge { region } => write!(f, "region {region} is 4 GiB or larger"),
            RunError::MapMismatch { map } => {
                write!(f, "map {map} of the run differs from the program's (or is missing)")
            }
            RunError::HelperPanicked { pc } => write!(f, "instruction {pc}: the helper panicked"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Load(e) => e.fmt(f),
            Error::Compile(e) => e.fmt(f),
            Error::Run(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for LoadError {}
impl core::error::Error for CompileError {}
impl core::error::Error for RunError {}
impl core::error::Error for Error {}

impl From<tessera_jit::Error> for CompileError {
    fn from(e: tessera_jit::Error) -> CompileError {
        CompileError::Emit(e)
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        Error::Load(e)
    }
}

impl From<CompileError> for Error {
    fn from(e: CompileError) -> Error {
        Error::Compile(e)
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Error {
        Error::Run(e)
    }
}
