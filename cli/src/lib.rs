//! Code shared by the `tessera` and `tessera-bpf-plugin` binaries: hex parsing, telling
//! assembly text from bytecode, the helper table, and running a program in either mode;
//! and for `tessera`, reading PROG of every kind ([`program`]), the perf map
//! ([`perf_map`]) and running on another ISA through qemu-user ([`cross`]).

pub mod cross;
pub mod perf_code;
pub mod perf_map;
pub mod program;

use std::fmt;

use tessera::ebpf::{Error, Helper, Helpers, Memory, Mode, Vm, asm};
use tessera_stencils::abi::FRAME_SIZE;

/// The helper id the bpf_conformance suite calls (its "unwind" helper).
pub const CONFORMANCE_HELPER_ID: u32 = 5;

/// Bytes of eBPF stack given to every run: one frame plus eight nested local calls.
pub const STACK_SIZE: usize = FRAME_SIZE as usize * 9;

fn identity(_: &mut Memory, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a
}

static HELPERS: [Helper; 1] = [Helper { id: CONFORMANCE_HELPER_ID, func: identity }];

/// The helpers every program run by these tools sees: id 5 returns its first argument.
pub fn helpers() -> Helpers<'static> {
    Helpers::new(&HELPERS)
}

/// Parses base16 bytes: whitespace-separated tokens, each either one or two hex digits
/// (`aa bb 1`) or an even-length run of digits (`aabb11`). Empty input gives no bytes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("invalid hex {token:?}"));
        }
        if token.len() == 1 {
            out.push(u8::from_str_radix(token, 16).map_err(|e| e.to_string())?);
            continue;
        }
        if !token.len().is_multiple_of(2) {
            return Err(format!("odd number of hex digits in {token:?}"));
        }
        for i in (0..token.len()).step_by(2) {
            out.push(u8::from_str_radix(&token[i..i + 2], 16).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

/// Space-separated lowercase hex bytes (`aa bb 11`), the form the suite's runner sends.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Why a file could not be read as a program.
#[derive(Debug)]
pub enum LoadError {
    /// The file is text that looks like assembly but does not assemble.
    Asm(asm::AsmError),
    /// Neither assembly text nor a whole number of 8-byte instructions.
    NotAProgram { len: usize },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Asm(e) => write!(f, "{e}"),
            LoadError::NotAProgram { len } => {
                write!(f, "not assembly text, and {len} bytes is not a whole number of 8-byte instructions")
            }
        }
    }
}

/// Whether `text` is plausibly assembly: no control characters besides tab, CR and LF
/// (raw bytecode almost always contains NUL bytes).
fn looks_like_text(text: &str) -> bool {
    text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

/// Where a program came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Assembly,
    Bytecode,
}

/// The bytecode of a file's contents: assembly text if it is UTF-8 and assembles, else raw
/// little-endian bytecode if its length is a multiple of 8. Text that looks like assembly
/// but fails to assemble reports the assembler's error (with its line).
pub fn load_program(data: &[u8]) -> Result<(Vec<u8>, Source), LoadError> {
    if let Ok(text) = std::str::from_utf8(data) {
        match asm::assemble_to_bytes(text) {
            Ok(bytes) => return Ok((bytes, Source::Assembly)),
            Err(e) if looks_like_text(text) => return Err(LoadError::Asm(e)),
            Err(_) => {}
        }
    }
    if data.len().is_multiple_of(8) {
        Ok((data.to_vec(), Source::Bytecode))
    } else {
        Err(LoadError::NotAProgram { len: data.len() })
    }
}

/// Runs `bytecode` with `memory` as context (r1 = its address, r2 = its length) and
/// [`helpers`]; `fuel` is the budget back edges and local calls are charged against.
pub fn execute(bytecode: &[u8], memory: &mut [u8], mode: Mode, fuel: u64) -> Result<u64, Error> {
    let mut vm = Vm::new(bytecode, helpers())?;
    vm.set_fuel(fuel);
    let mut stack = vec![0u8; STACK_SIZE];
    let mut memory = Memory::new(&mut stack, memory, &mut []);
    vm.run(mode, &mut memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(parse_hex("aa bb\n11 0c").unwrap(), [0xaa, 0xbb, 0x11, 0x0c]);
        assert_eq!(parse_hex("aabb11").unwrap(), [0xaa, 0xbb, 0x11]);
        assert_eq!(parse_hex("  a ").unwrap(), [0x0a]);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("+1").is_err());
        assert_eq!(to_hex(&[0xaa, 0x01]), "aa 01");
    }

    #[test]
    fn assembly_or_bytecode() {
        let (bytes, source) = load_program(b"mov %r0, 7\nexit\n").unwrap();
        assert_eq!(source, Source::Assembly);
        assert_eq!(load_program(&bytes).unwrap(), (bytes.clone(), Source::Bytecode));
        match load_program(b"mov %r0, 7\nfrobnicate\nexit\n") {
            Err(LoadError::Asm(e)) => assert_eq!(e.line, 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(load_program(&[0x95, 0, 0]), Err(LoadError::NotAProgram { len: 3 })));
    }

    #[test]
    fn runs_every_mode() {
        let (bytes, _) = load_program(b"ldxb %r0, [%r1+1]\nadd %r0, %r2\nexit").unwrap();
        for mode in [Mode::Interpreter, Mode::FastInterpreter, Mode::Jit] {
            assert_eq!(execute(&bytes, &mut [1, 40, 3], mode, tessera::ebpf::fuel::DEFAULT_FUEL), Ok(43));
        }
    }
}
