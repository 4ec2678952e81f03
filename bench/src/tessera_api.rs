//! Every use of tessera's compile and run API, in one place, so that the reshaped API (code
//! arena, compiled-program handle, errors split by stage) is cheap to adopt.

use tessera::CodeBuffer;
use tessera::ebpf::jit::OwnedScratch;
use tessera::ebpf::{FastProgram, Helper, Helpers, JitProgram, Memory, Vm};
pub use tessera_arch::Isa;
use tessera_stencils::abi::FRAME_SIZE;

use crate::helper::{BENCH_MIX_ID, mix};

/// `bench_mix` as a tessera helper.
fn tessera_mix(_: &mut Memory, a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
    mix(a, b, c, d, e)
}

static HELPERS: [Helper; 1] = [Helper { id: BENCH_MIX_ID, func: tessera_mix }];
/// The bpf_conformance suite's helper (id 5 returns its first argument).
static CONFORMANCE_HELPERS: [Helper; 1] = [Helper { id: 5, func: |_, a, _, _, _, _| a }];

/// Which helper table a program is validated against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperSet {
    /// `bench_mix`, for the suite.
    Bench,
    /// The conformance suite's helper.
    Conformance,
}

impl HelperSet {
    fn helpers(self) -> Helpers<'static> {
        match self {
            HelperSet::Bench => Helpers::new(&HELPERS),
            HelperSet::Conformance => Helpers::new(&CONFORMANCE_HELPERS),
        }
    }
}

/// The stack every run gets: one frame per call level (tessera's default depth limit is 8)
/// plus the entry frame.
const STACK_LEN: usize = FRAME_SIZE as usize * 9;

/// How a [`Prepared`] program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Generated code (`Vm::compile`).
    Jit,
    /// The fast interpreter (`Vm::prepare_fast`: decoded once, then run).
    FastInterpreter,
    /// The reference interpreter (`Vm::interpret`).
    Interpreter,
}

/// A validated program, prepared for one mode.
pub struct Prepared<'p> {
    vm: Vm<'p, 'static>,
    jit: Option<JitProgram<'p, 'static, 'static>>,
    fast: Option<FastProgram<'p, 'static, 'static>>,
}

/// A zeroed stack for [`Prepared::run`] (allocated by the caller, outside compile timing).
pub fn new_stack() -> Vec<u8> {
    vec![0; STACK_LEN]
}

/// Validates `bytecode` and prepares it to run in `mode`: what an embedder with `std` does to
/// get a runnable program from bytes. For the JIT: validation, lowering, emission into the
/// process's code arena (no system call per program); for the fast interpreter:
/// validation and decoding; for the reference interpreter: validation.
pub fn prepare(bytecode: &[u8], mode: Mode) -> Result<Prepared<'_>, String> {
    let mut vm = Vm::new(bytecode, Helpers::new(&HELPERS)).map_err(|e| e.to_string())?;
    vm.set_fuel(u64::MAX);
    let jit = match mode {
        Mode::Jit => Some(vm.compile().map_err(|e| e.to_string())?),
        _ => None,
    };
    let fast = (mode == Mode::FastInterpreter).then(|| vm.prepare_fast());
    Ok(Prepared { vm, jit, fast })
}

impl Prepared<'_> {
    /// Runs in the mode it was prepared for, with r1 = `context`, r2 = its length, on `stack`
    /// (from [`new_stack`]).
    pub fn run(&mut self, context: &mut [u8], stack: &mut [u8]) -> Result<u64, String> {
        let mut memory = Memory::new(stack, context, &mut []);
        let result = match (&self.jit, &self.fast) {
            (Some(jit), _) => jit.run(&mut memory),
            (None, Some(fast)) => fast.run(&mut memory),
            (None, None) => self.vm.interpret(&mut memory),
        };
        result.map_err(|e| e.to_string())
    }

    /// Bytes of generated code.
    pub fn code_len(&self) -> Option<usize> {
        self.jit.as_ref().map(|jit| jit.code().len())
    }
}

/// A program validated once, for repeated cross-emission into a caller buffer.
pub struct Emittable<'p> {
    vm: Vm<'p, 'static>,
    scratch: OwnedScratch,
}

pub fn emittable(bytecode: &[u8], helpers: HelperSet) -> Result<Emittable<'_>, String> {
    let vm = Vm::new(bytecode, helpers.helpers()).map_err(|e| e.to_string())?;
    let need = vm.scratch_size();
    Ok(Emittable { vm, scratch: OwnedScratch::with_size(need) })
}

impl Emittable<'_> {
    /// Instruction slots of the program.
    pub fn slots(&self) -> usize {
        self.vm.program().len()
    }

    /// Emits code for `isa` into `memory` (not executable; any ISA from any host) and
    /// returns its length in bytes.
    pub fn emit(&mut self, isa: Isa, memory: &mut [u8]) -> Result<usize, String> {
        let mut buffer = CodeBuffer::with_base(memory, 0x4000_0000);
        Ok(self.vm.emit_for(isa, &mut buffer, self.scratch.scratch()).map_err(|e| e.to_string())?.bytes.len())
    }
}

/// Validation plus emission into a reused buffer: tessera's compile path without executable
/// memory (what an embedder without `std` does, and what a code arena would do per program).
pub fn compile_into_host(bytecode: &[u8], memory: &mut [u8]) -> Result<usize, String> {
    let isa = Isa::host().ok_or_else(|| "no stencil table for this host".to_string())?;
    emittable(bytecode, HelperSet::Bench)?.emit(isa, memory)
}

/// Size of one ISA's stencil table.
pub struct TableSize {
    pub stencils: usize,
    pub code_bytes: usize,
    pub holes: usize,
    pub total_bytes: usize,
}

pub fn table_size(isa: Isa) -> TableSize {
    let Some(t) = tessera_stencils::table(isa) else {
        return TableSize { stencils: 0, code_bytes: 0, holes: 0, total_bytes: 0 };
    };
    TableSize { stencils: t.len(), code_bytes: t.code.len(), holes: t.holes.len(), total_bytes: t.size_bytes() }
}
