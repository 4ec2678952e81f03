//! The error type of the copy-and-patch core.

use core::fmt;

/// What can go wrong while placing stencils into code memory. Front ends wrap it in their
/// own compile error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The code buffer has no room: `needed` bytes were asked for, `available` were free.
    CodeBufferFull { needed: u64, available: u64 },
    /// The caller's label table has no entry for `label`.
    LabelOutOfRange { label: u32, labels: u32 },
    /// The caller's fix-up table is full (`capacity` entries).
    FixupsFull { capacity: u32 },
    /// A branch targets a label that was never bound.
    UnboundLabel { label: u32 },
    /// A label was bound twice.
    LabelBoundTwice { label: u32 },
    /// No stencil with this id in the table.
    UnknownStencil { id: u16 },
    /// A stencil has a branch hole but no target was given for it.
    MissingTarget { id: u16 },
    /// A table entry points outside the table (a generator bug, reported not hidden).
    CorruptTable,
    /// The table was generated for another ISA than the patcher the emitter uses.
    WrongTable,
    /// A hole could not be patched (a value out of its field's range, or a generator bug).
    Patch(tessera_arch::PatchError),
    /// Generated code larger than the emitter addresses (4 GiB).
    CodeTooLarge,
    /// The platform refused to map or protect executable memory.
    ExecutableMemory,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::CodeBufferFull { needed, available } => {
                write!(f, "code buffer full: {needed} bytes needed, {available} available")
            }
            Error::LabelOutOfRange { label, labels } => write!(f, "label {label} outside a table of {labels} labels"),
            Error::FixupsFull { capacity } => write!(f, "fix-up table full ({capacity} entries)"),
            Error::UnboundLabel { label } => write!(f, "branch to label {label}, which was never bound"),
            Error::LabelBoundTwice { label } => write!(f, "label {label} bound twice"),
            Error::UnknownStencil { id } => write!(f, "no stencil with id {id}"),
            Error::MissingTarget { id } => write!(f, "stencil {id} placed without a target for its branch hole"),
            Error::CorruptTable => f.write_str("stencil table entry outside the table"),
            Error::WrongTable => f.write_str("stencil table generated for another ISA"),
            Error::Patch(e) => write!(f, "patching a stencil hole failed: {e}"),
            Error::CodeTooLarge => f.write_str("generated code larger than 4 GiB"),
            Error::ExecutableMemory => f.write_str("could not map or protect executable memory"),
        }
    }
}

impl core::error::Error for Error {}

impl From<tessera_arch::PatchError> for Error {
    fn from(e: tessera_arch::PatchError) -> Error {
        Error::Patch(e)
    }
}
