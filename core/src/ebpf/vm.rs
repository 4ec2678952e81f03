//! The embedder API: load a program, register helpers, set limits, run it interpreted or
//! compiled, and get `Result<u64, Error>`.
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use tessera::ebpf::{Helper, Helpers, Memory, Mode, Vm, asm};
//! let code = asm::assemble_to_vec("mov %r0, %r2\nadd %r0, 1\nexit").unwrap();
//! let bytes: Vec<u8> = code.iter().flat_map(|i| i.encode()).collect();
//! let mut vm = Vm::new(&bytes, Helpers::empty()).unwrap();
//! vm.compile().unwrap();
//! let (mut stack, mut ctx) = ([0u8; 512 * 9], [0u8; 4]);
//! let mut memory = Memory::new(&mut stack, &mut ctx, &mut []);
//! assert_eq!(vm.run(Mode::Jit, &mut memory), Ok(5));
//! assert_eq!(vm.run(Mode::Interpreter, &mut memory), Ok(5));
//! # }
//! ```
//!
//! Without `std`, compile into caller memory with [`Vm::compile_into`] and run with
//! [`jit::run_compiled`] (the caller vouches that the memory is executable).

use tessera_arch::Isa;

use super::interp::{self, Config};
use super::jit::{self, CompiledCode};
use super::{Error, Helpers, Memory, Program};
use crate::code_buffer::CodeBuffer;

/// Interpreter or generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    Interpreter,
    Jit,
}

/// A validated program with its helpers and limits.
pub struct Vm<'p, 'h> {
    program: Program<'p>,
    helpers: Helpers<'h>,
    config: Config,
    #[cfg(all(feature = "std", unix))]
    native: Option<(crate::exec::ExecutableMemory, CompiledCode)>,
}

impl<'p, 'h> Vm<'p, 'h> {
    /// Validates `bytecode` against the helper ids in `helpers`.
    pub fn new(bytecode: &'p [u8], helpers: Helpers<'h>) -> Result<Vm<'p, 'h>, Error> {
        let program = Program::new(bytecode, |id| helpers.contains(id))?;
        Ok(Vm {
            program,
            helpers,
            config: Config::default(),
            #[cfg(all(feature = "std", unix))]
            native: None,
        })
    }

    pub fn program(&self) -> &Program<'p> {
        &self.program
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Units of fuel for each run: one per back edge and per local call.
    pub fn set_fuel(&mut self, fuel: u64) {
        self.config.fuel = fuel;
    }

    pub fn set_max_call_depth(&mut self, depth: u32) {
        self.config.max_call_depth = depth;
    }

    /// Scratch entries [`Vm::compile_into`] needs.
    pub fn labels_needed(&self) -> usize {
        jit::labels_needed(&self.program)
    }

    /// Emits code for `isa` (any ISA, from any host) into `buffer`.
    pub fn compile_into(&self, isa: Isa, labels: &mut [u32], buffer: &mut CodeBuffer) -> Result<CompiledCode, Error> {
        jit::compile(&self.program, isa, labels, buffer)
    }

    /// Runs the interpreter with r1 = context address, r2 = context length.
    pub fn interpret(&self, memory: &mut Memory) -> Result<u64, Error> {
        jit::check_stack(memory)?;
        let (r1, r2) = (memory.context_start(), memory.context.len() as u64);
        interp::run(&self.program, &self.helpers, memory, r1, r2, &self.config)
    }

    /// Compiles for the host into fresh executable memory (W^X: written, then sealed).
    #[cfg(all(feature = "std", unix))]
    pub fn compile(&mut self) -> Result<(), Error> {
        let isa = Isa::host().ok_or(Error::NotHostIsa)?;
        let mut labels = std::vec![0u32; self.labels_needed()];
        // Lower once, size the mapping exactly, then replay into it.
        let lowered = crate::emitter::Recorded::record(&super::lower::Lowering(&self.program))?;
        let emitter = crate::emitter::Emitter::new(isa);
        let len = emitter.layout(&lowered, &mut labels)?;
        let mut exec = crate::exec::ExecutableMemory::new(len)?;
        let address = exec.address();
        emitter.emit(&lowered, &labels, exec.writable()?, address)?;
        let compiled = CompiledCode { isa, offset: 0, len, address };
        exec.make_executable()?;
        self.native = Some((exec, compiled));
        Ok(())
    }

    /// Size in bytes of the code [`Vm::compile`] generated.
    #[cfg(all(feature = "std", unix))]
    pub fn compiled_len(&self) -> Option<usize> {
        self.native.as_ref().map(|(_, c)| c.len)
    }

    /// Runs in `mode` with r1 = context address, r2 = context length. `Mode::Jit` compiles
    /// first if [`Vm::compile`] has not been called.
    #[cfg(all(feature = "std", unix))]
    pub fn run(&mut self, mode: Mode, memory: &mut Memory) -> Result<u64, Error> {
        match mode {
            Mode::Interpreter => self.interpret(memory),
            Mode::Jit => {
                if self.native.is_none() {
                    self.compile()?;
                }
                let (exec, compiled) = self.native.as_ref().ok_or(Error::ExecutableMemory)?;
                let (r1, r2) = (memory.context_start(), memory.context.len() as u64);
                let entry = exec.address() + compiled.offset as u64;
                // SAFETY: `compile` emitted this code for the host ISA from `self.program`
                // into memory it sealed read+execute and synchronised; it is not modified
                // while `exec` lives, and `exec` outlives this call.
                unsafe { jit::run_compiled(entry, &self.helpers, memory, r1, r2, &self.config) }
            }
        }
    }
}
