//! The suite: C programs (bytecode from the committed objects in `programs/`, native code
//! from the same sources via build.rs) and generated long programs.

use crate::{engines, generated, inputs, loader};

/// A native benchmark function: `u64 bench_<name>(u8 *mem, u64 len)`.
pub type NativeFn = unsafe extern "C" fn(*mut u8, u64) -> u64;

// Built by build.rs from programs/*.c with clang -O2.
unsafe extern "C" {
    fn bench_loop(mem: *mut u8, len: u64) -> u64;
    fn bench_fib(mem: *mut u8, len: u64) -> u64;
    fn bench_sieve(mem: *mut u8, len: u64) -> u64;
    fn bench_crc32(mem: *mut u8, len: u64) -> u64;
    fn bench_fnv1a(mem: *mut u8, len: u64) -> u64;
    fn bench_packet(mem: *mut u8, len: u64) -> u64;
    fn bench_memcpy(mem: *mut u8, len: u64) -> u64;
    fn bench_sort(mem: *mut u8, len: u64) -> u64;
    fn bench_helpers(mem: *mut u8, len: u64) -> u64;
}

/// One C program of the suite.
pub struct CProgram {
    pub name: &'static str,
    pub about: &'static str,
    /// The eBPF object (`clang -target bpf -O2 -mcpu=v3 -c`), committed.
    pub object: &'static [u8],
    pub native: NativeFn,
    pub input: fn() -> Vec<u8>,
}

macro_rules! object {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/programs/", $name, ".o"))
    };
}

pub const C_PROGRAMS: [CProgram; 9] = [
    CProgram {
        name: "loop",
        about: "integer loop: LCG, data-dependent branch, 64k iterations",
        object: object!("loop"),
        native: bench_loop,
        input: || inputs::random_bytes(1, 256),
    },
    CProgram {
        name: "fib",
        about: "recursive Fibonacci (local calls) of each of 2 KiB bytes & 7",
        object: object!("fib"),
        native: bench_fib,
        input: || inputs::random_bytes(2, 2048),
    },
    CProgram {
        name: "sieve",
        about: "sieve of Eratosthenes over a 32 KiB table in memory",
        object: object!("sieve"),
        native: bench_sieve,
        input: || inputs::zeros(32 * 1024),
    },
    CProgram {
        name: "crc32",
        about: "bitwise CRC-32 over a 4 KiB buffer",
        object: object!("crc32"),
        native: bench_crc32,
        input: || inputs::random_bytes(4, 4096),
    },
    CProgram {
        name: "fnv1a",
        about: "64-bit FNV-1a, 4 passes over 8 KiB",
        object: object!("fnv1a"),
        native: bench_fnv1a,
        input: || inputs::random_bytes(5, 8192),
    },
    CProgram {
        name: "packet",
        about: "Ethernet/IPv4/TCP header parser over 1024 packets",
        object: object!("packet"),
        native: bench_packet,
        input: || inputs::capture(6, 1024),
    },
    CProgram {
        name: "memcpy",
        about: "byte-wise memcpy and memcmp loops, 8 x 4 KiB",
        object: object!("memcpy"),
        native: bench_memcpy,
        input: || inputs::random_bytes(7, 8192),
    },
    CProgram {
        name: "sort",
        about: "heapsort of 512 u32 (sift-down as a local call)",
        object: object!("sort"),
        native: bench_sort,
        input: || inputs::random_bytes(8, 2048),
    },
    CProgram {
        name: "helpers",
        about: "4096 helper calls (bench_mix) over 32 KiB",
        object: object!("helpers"),
        native: bench_helpers,
        input: || inputs::random_bytes(9, 32 * 1024),
    },
];

/// Sizes of the generated long programs, in instruction slots.
pub const GENERATED_SLOTS: [usize; 2] = [1_000, 10_000];

/// A program ready for every engine.
pub struct Program {
    pub name: String,
    pub about: String,
    pub bytecode: Vec<u8>,
    /// The bytecode for rbpf (with its length prologue), or why there is none.
    pub rbpf_bytecode: Result<Vec<u8>, String>,
    pub input: Vec<u8>,
    pub native: Option<NativeFn>,
}

impl Program {
    /// Instruction slots (8 bytes each; `lddw` takes two).
    pub fn slots(&self) -> usize {
        self.bytecode.len() / 8
    }

    fn new(name: String, about: String, bytecode: Vec<u8>, input: Vec<u8>, native: Option<NativeFn>) -> Program {
        let mut program = Program { name, about, bytecode, rbpf_bytecode: Err(String::new()), input, native };
        program.rbpf_bytecode = engines::rbpf_bytecode(&program);
        program
    }
}

impl CProgram {
    pub fn entry(&self) -> String {
        format!("bench_{}", self.name)
    }

    pub fn load(&self) -> Result<Program, String> {
        let bytecode = loader::text_of(self.object, &self.entry()).map_err(|e| format!("{}.o: {e}", self.name))?;
        Ok(Program::new(self.name.into(), self.about.into(), bytecode, (self.input)(), Some(self.native)))
    }
}

/// The generated program of `slots` instruction slots, with its context memory.
pub fn generated(slots: usize) -> Program {
    Program::new(
        format!("gen-{}k", slots / 1000),
        format!("generated straight-line code, {slots} slots, forward branches"),
        generated::long_program(slots, slots as u64),
        inputs::random_bytes(slots as u64, generated::CONTEXT_LEN),
        None,
    )
}

/// Every program of the suite, C programs first.
pub fn suite() -> Result<Vec<Program>, String> {
    let mut programs = C_PROGRAMS.iter().map(CProgram::load).collect::<Result<Vec<_>, _>>()?;
    programs.extend(GENERATED_SLOTS.iter().map(|&slots| generated(slots)));
    Ok(programs)
}
