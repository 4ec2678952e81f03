//! Getting the bytecode out of the committed objects.

use object::{Object, ObjectSection, ObjectSymbol};

/// Why an object cannot be used as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Not an ELF object `object` can read.
    Parse(String),
    NoText,
    /// `.text` has relocations (a call or data reference left for a loader to resolve).
    Relocations(usize),
    /// No symbol `entry`, or it is not at offset 0 of `.text`.
    EntryNotFirst {
        entry: String,
        offset: Option<u64>,
    },
    /// `.text` is not a whole number of 8-byte slots.
    Length(usize),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Parse(e) => write!(f, "not a readable ELF object: {e}"),
            LoadError::NoText => write!(f, "no .text section"),
            LoadError::Relocations(n) => write!(f, ".text has {n} relocations"),
            LoadError::EntryNotFirst { entry, offset: None } => write!(f, "no symbol `{entry}`"),
            LoadError::EntryNotFirst { entry, offset: Some(o) } => {
                write!(f, "`{entry}` is at offset {o} of .text, not 0")
            }
            LoadError::Length(n) => write!(f, ".text is {n} bytes, not a multiple of 8"),
        }
    }
}

impl std::error::Error for LoadError {}

// LOADER: replace with tessera::ebpf::elf once merged
/// The bytecode of a benchmark object: its `.text` section, which must start with the
/// function `entry` and need no relocation (the programs keep every function in `.text`, so
/// clang resolves local calls itself; see `programs/bench.h`). Not a general ELF loader.
pub fn text_of(object_bytes: &[u8], entry: &str) -> Result<Vec<u8>, LoadError> {
    let file = object::File::parse(object_bytes).map_err(|e| LoadError::Parse(e.to_string()))?;
    let text = file.section_by_name(".text").ok_or(LoadError::NoText)?;
    let relocations = text.relocations().count();
    if relocations != 0 {
        return Err(LoadError::Relocations(relocations));
    }
    let offset = file.symbols().find(|s| s.name() == Ok(entry)).map(|s| s.address());
    if offset != Some(0) {
        return Err(LoadError::EntryNotFirst { entry: entry.to_string(), offset });
    }
    let bytes = text.data().map_err(|e| LoadError::Parse(e.to_string()))?;
    if bytes.len() % 8 != 0 {
        return Err(LoadError::Length(bytes.len()));
    }
    Ok(bytes.to_vec())
}
