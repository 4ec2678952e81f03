//! The one error type of the eBPF front end: loading, validation, and running.

use core::fmt;

/// Everything that can go wrong between bytecode and a result. Instruction indices (`pc`)
/// count 8-byte slots from 0, so the second slot of `lddw` has its own index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    // --- loading and validation ---
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
    /// A pseudo `lddw` (src 1 or 2) names a map index the program was not given.
    UnknownMap { pc: u32, map: u32 },
    /// A `lddw` of a map value (src 2) with an offset at or past the value's size.
    MapValueOffset { pc: u32, map: u32, offset: u32 },

    // --- running ---
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

    // --- compiling ---
    /// The code buffer has no room for the generated code.
    CodeBufferFull { needed: u32, available: u32 },
    /// A scratch table supplied by the caller is too small.
    ScratchTooSmall { needed: u32 },
    /// A stencil hole could not be patched (a generator or emitter bug, reported not hidden).
    Patch(tessera_arch::PatchError),
    /// The stencil tables do not provide the ISA asked for.
    UnsupportedIsa,
    /// Generated code can only be run on the ISA it was compiled for.
    NotHostIsa,
    /// The platform refused to map or protect executable memory.
    ExecutableMemory,
    /// Generated code checks at most `max` embedder-granted regions.
    TooManyRegions { max: u32 },
    /// The stack given to a run is smaller than one frame.
    StackTooSmall { len: u32, needed: u32 },
    /// A helper id was registered twice.
    DuplicateHelper { id: u32 },
    /// A fixed-capacity helper registry is full.
    HelperTableFull { capacity: u32 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BytecodeLength { len } => write!(f, "bytecode length {len} is not a multiple of 8"),
            Error::EmptyProgram => f.write_str("program has no instructions"),
            Error::ProgramTooLong { len, max } => write!(f, "program has {len} instructions, more than {max}"),
            Error::UnknownOpcode { pc, opcode } => write!(f, "instruction {pc}: unknown opcode {opcode:#04x}"),
            Error::ReservedField { pc } => write!(f, "instruction {pc}: reserved field is not zero"),
            Error::BadRegister { pc, reg } => write!(f, "instruction {pc}: bad register r{reg}"),
            Error::FrameRegisterWrite { pc } => write!(f, "instruction {pc}: writes the read-only frame pointer r10"),
            Error::JumpOutOfRange { pc, target } => {
                write!(f, "instruction {pc}: jump target {target} outside the program")
            }
            Error::JumpIntoLddw { pc, target } => {
                write!(f, "instruction {pc}: jump target {target} is the second slot of lddw")
            }
            Error::TruncatedLddw { pc } => write!(f, "instruction {pc}: lddw has no second slot"),
            Error::BadLddwSecondSlot { pc } => write!(f, "instruction {pc}: malformed second slot of lddw"),
            Error::UnknownHelper { pc, id } => write!(f, "instruction {pc}: unknown helper id {id}"),
            Error::FallsOffEnd { pc } => write!(f, "instruction {pc}: execution can fall off the end of the program"),
            Error::UnknownMap { pc, map } => write!(f, "instruction {pc}: no map with index {map}"),
            Error::MapValueOffset { pc, map, offset } => {
                write!(f, "instruction {pc}: offset {offset} is past the value of map {map}")
            }
            Error::MemoryFault { pc, addr } => write!(f, "instruction {pc}: memory access at {addr:#x} out of bounds"),
            Error::OutOfFuel { pc } => write!(f, "instruction {pc}: out of fuel"),
            Error::CallDepthExceeded { pc } => write!(f, "instruction {pc}: call depth limit exceeded"),
            Error::MisalignedAtomic { pc, addr } => {
                write!(f, "instruction {pc}: misaligned atomic access at {addr:#x}")
            }
            Error::HelperNotFound { pc, id } => write!(f, "instruction {pc}: no helper with id {id}"),
            Error::CodeBufferFull { needed, available } => {
                write!(f, "code buffer full: {needed} bytes needed, {available} available")
            }
            Error::ScratchTooSmall { needed } => write!(f, "scratch table too small: {needed} entries needed"),
            Error::Patch(e) => write!(f, "patching a stencil hole failed: {e}"),
            Error::UnsupportedIsa => f.write_str("no stencil table for this ISA"),
            Error::NotHostIsa => f.write_str("code for another ISA cannot run on this host"),
            Error::ExecutableMemory => f.write_str("could not map or protect executable memory"),
            Error::TooManyRegions { max } => write!(f, "generated code checks at most {max} granted regions"),
            Error::StackTooSmall { len, needed } => {
                write!(f, "stack of {len} bytes is smaller than one {needed}-byte frame")
            }
            Error::DuplicateHelper { id } => write!(f, "helper id {id} registered twice"),
            Error::HelperTableFull { capacity } => write!(f, "helper registry full ({capacity} helpers)"),
        }
    }
}

impl core::error::Error for Error {}

impl From<tessera_arch::PatchError> for Error {
    fn from(e: tessera_arch::PatchError) -> Error {
        Error::Patch(e)
    }
}
