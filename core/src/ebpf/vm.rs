//! The embedder API: load a program, register helpers, set limits, and run it interpreted
//! or compiled.
//!
//! ```
//! # #[cfg(all(feature = "std", feature = "asm", target_os = "linux"))] {
//! use tessera::ebpf::{Helpers, Memory, Vm, asm};
//! let bytes = asm::assemble_to_bytes("mov %r0, %r2\nadd %r0, 1\nexit").unwrap();
//! let vm = Vm::new(&bytes, Helpers::empty()).unwrap();   // validates
//! let jit = vm.compile().unwrap();                      // into the process's code arena
//! let (mut stack, mut ctx) = ([0u8; tessera::ebpf::STACK_SIZE], [0u8; 4]);
//! let mut memory = Memory::new(&mut stack, &mut ctx, &mut []);
//! assert_eq!(jit.run(&mut memory), Ok(5));
//! assert_eq!(vm.interpret(&mut memory), Ok(5));         // the reference interpreter
//! let fast = vm.prepare_fast();                         // decoded once, for the fast one
//! assert_eq!(fast.run(&mut memory), Ok(5));
//! # }
//! ```
//!
//! Without `std`, compile into caller memory with [`Vm::compile_into`] (a [`CodeBuffer`]
//! the embedder vouches is executable, and [`Scratch`] sized by [`Vm::scratch_size`]); the
//! [`JitProgram`] it returns runs the same way. [`Vm::emit_for`] emits for any ISA, from any
//! host, without running. Where memory cannot be made executable, [`Vm::prepare_fast_in`]
//! decodes for the fast interpreter into caller memory.

#[cfg(feature = "jit")]
use tessera_jit::{Allocation, CodeBuffer, Isa};

#[cfg(feature = "jit")]
use super::error::CompileError;
use super::error::{LoadError, RunError};
use super::fast_interp::{self, FastProgram, Slot};
use super::interp::{self, Config};
#[cfg(feature = "jit")]
use super::jit::{self, JitProgram, Scratch, ScratchSize};
use super::kept::Kept;
use super::maps::MapDef;
use super::{Helpers, Memory, Program};

/// Interpreter or generated code, for [`Vm::run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// The reference interpreter ([`Vm::interpret`]).
    Interpreter,
    /// The fast interpreter ([`Vm::prepare_fast`]): the same results, pre-decoded.
    FastInterpreter,
    Jit,
}

/// A validated program with its helpers and limits.
#[derive(Debug)]
pub struct Vm<'p, 'h> {
    program: Program<'p>,
    /// The definitions of the program's maps, by index (the `imm` of its pseudo `lddw`s).
    maps: &'p [MapDef],
    helpers: Helpers<'h>,
    config: Config,
    /// The bound on generated code (see [`Vm::set_max_code_size`]).
    #[cfg(feature = "jit")]
    max_code_size: usize,
    /// The code [`Vm::run`] compiled on first use in `Mode::Jit`.
    #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
    compiled: Option<JitProgram<'p, 'h, 'static>>,
    /// The program [`Vm::run`] decoded on first use in `Mode::FastInterpreter`.
    #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
    decoded: Option<FastProgram<'p, 'h, 'static>>,
    /// The run state of the last [`Vm::interpret`], reused by the next.
    kept: Kept<interp::RunState>,
}

impl<'p, 'h> Vm<'p, 'h> {
    /// Validates `bytecode` against the helper ids in `helpers`.
    pub fn new(bytecode: &'p [u8], helpers: Helpers<'h>) -> Result<Vm<'p, 'h>, LoadError> {
        Vm::with_maps(bytecode, &[], helpers)
    }

    /// Validates `bytecode`, whose pseudo `lddw`s name the maps in `maps` (an ELF object's
    /// maps, in the object's order; see [`super::elf`]). Runs then need those maps in their
    /// [`Memory`] ([`Memory::with_maps`]).
    pub fn with_maps(bytecode: &'p [u8], maps: &'p [MapDef], helpers: Helpers<'h>) -> Result<Vm<'p, 'h>, LoadError> {
        let value_size = |i: u32| maps.get(i as usize).map(MapDef::value_size);
        let program = Program::with_maps(bytecode, |id| helpers.contains(id), value_size)?;
        Ok(Vm {
            program,
            maps,
            helpers,
            config: Config::default(),
            #[cfg(feature = "jit")]
            max_code_size: jit::DEFAULT_MAX_CODE_SIZE,
            #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
            compiled: None,
            #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
            decoded: None,
            kept: Kept::new(),
        })
    }

    pub fn program(&self) -> &Program<'p> {
        &self.program
    }

    /// The definitions of the program's maps.
    pub fn maps(&self) -> &'p [MapDef] {
        self.maps
    }

    /// What a compiled or decoded program keeps of this one.
    fn parts(&self) -> (Program<'p>, &'p [MapDef], Helpers<'h>, super::interp::Config) {
        (self.program, self.maps, self.helpers, self.config)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The execution budget of each run (see [`super::fuel`]; default
    /// [`super::fuel::DEFAULT_FUEL`]).
    pub fn set_fuel(&mut self, fuel: u64) {
        self.config.fuel = fuel;
        self.forget_compiled();
    }

    /// Bounds the code one compilation may generate (default
    /// [`jit::DEFAULT_MAX_CODE_SIZE`]; never more than the ISA's branches reach,
    /// [`jit::max_code_size`]): a larger program fails with [`CompileError::CodeTooLarge`].
    #[cfg(feature = "jit")]
    pub fn set_max_code_size(&mut self, bytes: usize) {
        self.max_code_size = bytes;
    }

    pub fn set_max_call_depth(&mut self, depth: u32) {
        self.config.max_call_depth = depth;
        self.forget_compiled();
    }

    /// Limits live in compiled and decoded handles too: a change takes a fresh one.
    fn forget_compiled(&mut self) {
        #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
        {
            self.compiled = None;
            self.decoded = None;
        }
    }

    /// Runs in `mode` with r1 = the context's address, r2 = its length; `Mode::Jit`
    /// compiles into the process's code arena on first use and keeps the code,
    /// `Mode::FastInterpreter` decodes on first use and keeps the slots.
    #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
    pub fn run(&mut self, mode: Mode, memory: &mut Memory) -> Result<u64, super::Error> {
        match mode {
            Mode::Interpreter => Ok(self.interpret(memory)?),
            Mode::FastInterpreter => {
                let parts = self.parts();
                Ok(self.decoded.get_or_insert_with(|| FastProgram::on_heap(parts)).run(memory)?)
            }
            Mode::Jit => {
                let compiled = match self.compiled.take() {
                    Some(compiled) => compiled,
                    None => self.compile()?,
                };
                let result = compiled.run(memory);
                self.compiled = Some(compiled);
                Ok(result?)
            }
        }
    }

    /// The scratch [`Vm::compile_into`] and [`Vm::emit_for`] need.
    #[cfg(feature = "jit")]
    pub fn scratch_size(&self) -> ScratchSize {
        ScratchSize::of(&self.program)
    }

    /// Runs the reference interpreter with r1 = the context's address, r2 = its length.
    pub fn interpret(&self, memory: &mut Memory) -> Result<u64, RunError> {
        self.kept.with(interp::RunState::new, |state| self.interpret_with(memory, state))
    }

    /// [`Vm::interpret`] in run state the caller keeps between runs (see
    /// [`interp::RunContext`]).
    pub fn interpret_in(&self, memory: &mut Memory, context: &mut interp::RunContext) -> Result<u64, RunError> {
        self.interpret_with(memory, &mut context.0)
    }

    fn interpret_with(&self, memory: &mut Memory, state: &mut interp::RunState) -> Result<u64, RunError> {
        memory.check_stack()?;
        memory.check_maps(self.maps)?;
        interp::run_in(&self.program, &self.helpers, memory, &self.config, state)
    }

    /// Decodes the program for the fast interpreter onto the heap (once; run the result as
    /// often as needed).
    #[cfg(feature = "alloc")]
    pub fn prepare_fast(&self) -> FastProgram<'p, 'h, 'static> {
        FastProgram::on_heap(self.parts())
    }

    /// Decodes the program for the fast interpreter into `buffer`, which needs
    /// [`Vm::fast_slots_needed`] slots (no allocator needed).
    pub fn prepare_fast_in<'b>(&self, buffer: &'b mut [Slot]) -> Result<FastProgram<'p, 'h, 'b>, LoadError> {
        FastProgram::in_buffer(self.parts(), buffer)
    }

    /// The buffer [`Vm::prepare_fast_in`] needs, in slots.
    pub fn fast_slots_needed(&self) -> usize {
        fast_interp::slots_needed(&self.program)
    }

    /// Emits code for `isa` (any ISA, from any host) into `buffer`, without a way to run it:
    /// cross-emission, listings, golden tests.
    #[cfg(feature = "jit")]
    pub fn emit_for<'m>(
        &self,
        isa: Isa,
        buffer: &mut CodeBuffer<'m>,
        scratch: Scratch<'_>,
    ) -> Result<Allocation<'m>, CompileError> {
        jit::emit(&self.program, &self.helpers, isa, buffer, scratch, self.max_code_size)
    }

    /// [`Vm::emit_for`], telling `observer` where every stencil went (for listings).
    #[cfg(feature = "jit")]
    pub fn emit_observed<'m>(
        &self,
        isa: Isa,
        buffer: &mut CodeBuffer<'m>,
        scratch: Scratch<'_>,
        observer: &mut impl super::Observer,
    ) -> Result<Allocation<'m>, CompileError> {
        jit::emit_observed(&self.program, &self.helpers, isa, buffer, scratch, self.max_code_size, observer)
    }

    /// Compiles for this machine into `buffer`. The result runs if the buffer is executable
    /// ([`CodeBuffer::executable`]); otherwise its `run` reports [`RunError::NotRunnable`].
    #[cfg(feature = "jit")]
    pub fn compile_into<'m>(
        &self,
        buffer: &mut CodeBuffer<'m>,
        scratch: Scratch<'_>,
    ) -> Result<JitProgram<'p, 'h, 'm>, CompileError> {
        let isa = Isa::host().ok_or(CompileError::UnsupportedHost)?;
        let allocation = jit::emit(&self.program, &self.helpers, isa, buffer, scratch, self.max_code_size)?;
        Ok(JitProgram::in_buffer(self.parts(), isa, allocation))
    }

    /// Compiles for this machine into the process's code arena
    /// ([`tessera_jit::exec::CodeArena::global`]): no system call per program.
    #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
    pub fn compile(&self) -> Result<JitProgram<'p, 'h, 'static>, CompileError> {
        self.compile_in(tessera_jit::exec::CodeArena::global())
    }

    /// Compiles for this machine into `arena`.
    #[cfg(all(feature = "jit", feature = "std", target_os = "linux"))]
    pub fn compile_in(
        &self,
        arena: &std::sync::Arc<tessera_jit::exec::CodeArena>,
    ) -> Result<JitProgram<'p, 'h, 'static>, CompileError> {
        use super::jit::OwnedScratch;
        use core::cell::RefCell;
        std::thread_local! {
            // Reused across compilations: no allocation per program once warm.
            static SCRATCH: RefCell<OwnedScratch> = RefCell::new(OwnedScratch::default());
        }
        let isa = Isa::host().ok_or(CompileError::UnsupportedHost)?;
        let need = self.scratch_size();
        let (code, address) = SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            scratch.ensure(need);
            arena.emit(|buffer| {
                jit::emit(&self.program, &self.helpers, isa, buffer, scratch.scratch(), self.max_code_size)
                    .map(|a| a.address)
            })
        })?;
        Ok(JitProgram::in_arena(self.parts(), isa, code, address))
    }
}
