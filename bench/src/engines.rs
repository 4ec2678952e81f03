//! The engines, each behind one interface: prepare a program once, then run it on a fresh
//! copy of its input as often as the harness asks, timing the execution alone.
//!
//! Calling conventions differ and are bridged here, the same way for every program:
//! - tessera and native C get r1 = input, r2 = its length as arguments;
//! - rbpf sets r1 only (r2 is 0 in its interpreter and JIT), so its bytecode gets one
//!   prepended `mov r2, len` (jumps and calls are relative, so nothing else moves);
//! - solana-sbpf maps the input at its own virtual address (`MM_INPUT_START`) and takes the
//!   initial registers from the VM, where r1 and r2 are set.

use std::time::{Duration, Instant};

use crate::helper::{BENCH_MIX_ID, mix};
use crate::programs::{NativeFn, Program};
use crate::tessera_api;

/// Everything that runs a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    Native,
    TesseraJit,
    /// tessera's fast interpreter (`fast_interp`): the one compared with the peers.
    TesseraInterp,
    /// tessera's reference interpreter (`interp`).
    TesseraRefInterp,
    RbpfJit,
    RbpfInterp,
    SbpfJit,
    SbpfInterp,
}

impl Engine {
    pub const ALL: [Engine; 8] = [
        Engine::Native,
        Engine::TesseraJit,
        Engine::TesseraInterp,
        Engine::TesseraRefInterp,
        Engine::RbpfJit,
        Engine::RbpfInterp,
        Engine::SbpfJit,
        Engine::SbpfInterp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::TesseraJit => "tessera-jit",
            Engine::TesseraInterp => "tessera-interp",
            Engine::TesseraRefInterp => "tessera-refint",
            Engine::RbpfJit => "rbpf-jit",
            Engine::RbpfInterp => "rbpf-interp",
            Engine::SbpfJit => "sbpf-jit",
            Engine::SbpfInterp => "sbpf-interp",
        }
    }
}

/// The compilers whose speed is measured: bytecode to runnable code, validation included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compiler {
    /// `Vm::new` (validation) + `Vm::compile` (lowering, emission, mmap, mprotect).
    TesseraJit,
    /// `EbpfVmRaw::new` (verifier, stack-usage pass) + helper registration + `jit_compile`
    /// (heap page allocation, mprotect RWX, emission).
    RbpfJit,
    /// `Executable::from_text_bytes` (copies the text) + `verify::<RequisiteVerifier>` +
    /// `jit_compile` (mmap, emission with sbpf's default no-op insertion and constant
    /// sanitising, mprotect).
    SbpfJit,
    /// Not runnable, for reference: `Vm::new` + `compile_into` a reused buffer for the host
    /// ISA (no executable memory).
    TesseraEmit,
    /// The fast interpreter's preparation: `Vm::new` + `prepare_fast` (decoding onto the heap).
    TesseraDecode,
}

impl Compiler {
    pub const ALL: [Compiler; 5] =
        [Compiler::TesseraJit, Compiler::RbpfJit, Compiler::SbpfJit, Compiler::TesseraEmit, Compiler::TesseraDecode];

    pub fn name(self) -> &'static str {
        match self {
            Compiler::TesseraJit => "tessera-jit",
            Compiler::RbpfJit => "rbpf-jit",
            Compiler::SbpfJit => "sbpf-jit",
            Compiler::TesseraEmit => "tessera-emit",
            Compiler::TesseraDecode => "tessera-decode",
        }
    }

    /// What one measured compilation includes (teardown is outside the measurement for all).
    pub fn includes(self) -> &'static str {
        match self {
            Compiler::TesseraJit => "Vm::new (validation) + Vm::compile (lowering, emission, mmap, mprotect)",
            Compiler::RbpfJit => {
                "EbpfVmRaw::new (verifier, stack-usage pass) + register_helper + jit_compile (page allocation, mprotect, emission)"
            }
            Compiler::SbpfJit => {
                "Executable::from_text_bytes (copies the text) + verify (RequisiteVerifier) + jit_compile (mmap, emission, mprotect)"
            }
            Compiler::TesseraEmit => {
                "Vm::new + compile_into a reused buffer for the host ISA (no executable memory: not runnable)"
            }
            Compiler::TesseraDecode => "Vm::new + prepare_fast (decoding for the fast interpreter, onto the heap)",
        }
    }
}

/// A prepared program in one engine.
pub trait Runner {
    /// Copies `input` into the engine's memory (not timed), runs the program once and
    /// returns r0 with the duration of the run alone.
    fn run(&mut self, input: &[u8]) -> (Result<u64, String>, Duration);
}

/// Input memory aligned to 16 bytes (the C programs read u32 and u64 words from it).
pub struct InputBuffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl InputBuffer {
    pub fn new(len: usize) -> InputBuffer {
        let storage = vec![0u8; len + 16];
        let start = storage.as_ptr().align_offset(16);
        InputBuffer { storage, start, len }
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }

    fn load(&mut self, input: &[u8]) -> &mut [u8] {
        let bytes = self.bytes();
        bytes.copy_from_slice(input);
        bytes
    }
}

/// Prepares `program` for `engine`, or says why the engine cannot run it.
pub fn prepare<'p>(engine: Engine, program: &'p Program) -> Result<Box<dyn Runner + 'p>, String> {
    let input = InputBuffer::new(program.input.len());
    match engine {
        Engine::Native => match program.native {
            Some(f) => Ok(Box::new(NativeRunner { f, input })),
            None => Err("no C source (generated bytecode)".into()),
        },
        Engine::TesseraJit | Engine::TesseraInterp | Engine::TesseraRefInterp => {
            let mode = match engine {
                Engine::TesseraJit => tessera_api::Mode::Jit,
                Engine::TesseraInterp => tessera_api::Mode::FastInterpreter,
                _ => tessera_api::Mode::Interpreter,
            };
            let prepared = tessera_api::prepare(&program.bytecode, mode)?;
            Ok(Box::new(TesseraRunner { prepared, input, stack: tessera_api::new_stack() }))
        }
        Engine::RbpfJit | Engine::RbpfInterp => rbpf_peer::prepare(engine == Engine::RbpfJit, program, input),
        Engine::SbpfJit | Engine::SbpfInterp => sbpf_peer::prepare(engine == Engine::SbpfJit, program, input),
    }
}

/// Compiles `program` once with `compiler` and drops the result outside the measured time;
/// returns the nanoseconds from bytecode to runnable code.
pub fn compile_once(compiler: Compiler, program: &Program, scratch: &mut [u8]) -> Result<u64, String> {
    match compiler {
        Compiler::TesseraJit | Compiler::TesseraDecode => {
            let mode = if compiler == Compiler::TesseraJit {
                tessera_api::Mode::Jit
            } else {
                tessera_api::Mode::FastInterpreter
            };
            let start = Instant::now();
            let prepared = tessera_api::prepare(&program.bytecode, mode)?;
            let ns = start.elapsed().as_nanos() as u64;
            drop(prepared);
            Ok(ns)
        }
        Compiler::TesseraEmit => {
            let start = Instant::now();
            std::hint::black_box(tessera_api::compile_into_host(&program.bytecode, scratch)?);
            Ok(start.elapsed().as_nanos() as u64)
        }
        Compiler::RbpfJit => rbpf_peer::compile_once(program),
        Compiler::SbpfJit => sbpf_peer::compile_once(program),
    }
}

struct NativeRunner {
    f: NativeFn,
    input: InputBuffer,
}

impl Runner for NativeRunner {
    fn run(&mut self, input: &[u8]) -> (Result<u64, String>, Duration) {
        let bytes = self.input.load(input);
        let (ptr, len) = (bytes.as_mut_ptr(), bytes.len() as u64);
        let start = Instant::now();
        // SAFETY: the benchmark's C functions read and write only `[ptr, ptr + len)`, which
        // is this runner's input buffer, borrowed mutably for the call.
        let r0 = unsafe { (self.f)(ptr, len) };
        (Ok(r0), start.elapsed())
    }
}

struct TesseraRunner<'p> {
    prepared: tessera_api::Prepared<'p>,
    input: InputBuffer,
    stack: Vec<u8>,
}

impl Runner for TesseraRunner<'_> {
    fn run(&mut self, input: &[u8]) -> (Result<u64, String>, Duration) {
        let context = self.input.load(input);
        let start = Instant::now();
        let r0 = self.prepared.run(context, &mut self.stack);
        (r0, start.elapsed())
    }
}

/// Runs `f` and turns a panic into an error naming its message (rbpf's JIT asserts when its
/// fixed code page overflows).
fn catch_panic<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    outcome.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("{what} panicked: {message}"))
    })
}

mod rbpf_peer {
    //! rbpf 0.4: `EbpfVmRaw` (r1 = input). Its JIT exists for x86-64 only.

    use super::*;

    /// `mov r2, len` prepended to the program (rbpf passes no length).
    pub fn with_length_prologue(program: &Program) -> Result<Vec<u8>, String> {
        let len = i32::try_from(program.input.len()).map_err(|_| "input too large for `mov r2, imm32`".to_string())?;
        let mut bytes = vec![0xb7, 0x02, 0, 0];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&program.bytecode);
        Ok(bytes)
    }

    fn vm(bytecode: &[u8]) -> Result<rbpf::EbpfVmRaw<'_>, String> {
        let mut vm = rbpf::EbpfVmRaw::new(Some(bytecode)).map_err(|e| e.to_string())?;
        vm.register_helper(BENCH_MIX_ID, mix).map_err(|e| e.to_string())?;
        Ok(vm)
    }

    struct RbpfRunner<'p> {
        vm: rbpf::EbpfVmRaw<'p>,
        jit: bool,
        input: InputBuffer,
    }

    pub fn prepare<'p>(jit: bool, program: &'p Program, input: InputBuffer) -> Result<Box<dyn Runner + 'p>, String> {
        let bytecode = program.rbpf_bytecode.as_ref().map_err(Clone::clone)?;
        let mut vm = vm(bytecode)?;
        if jit {
            compile_jit(&mut vm)?;
        }
        Ok(Box::new(RbpfRunner { vm, jit, input }))
    }

    #[cfg(target_arch = "x86_64")]
    fn compile_jit(vm: &mut rbpf::EbpfVmRaw<'_>) -> Result<(), String> {
        catch_panic("rbpf's JIT (it emits into one fixed 4 KiB page)", || vm.jit_compile().map_err(|e| e.to_string()))
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn compile_jit(_: &mut rbpf::EbpfVmRaw<'_>) -> Result<(), String> {
        Err("rbpf's JIT emits x86-64 only".into())
    }

    pub fn compile_once(program: &Program) -> Result<u64, String> {
        let bytecode = program.rbpf_bytecode.as_ref().map_err(Clone::clone)?;
        let start = Instant::now();
        let mut vm = vm(bytecode)?;
        compile_jit(&mut vm)?;
        let ns = start.elapsed().as_nanos() as u64;
        drop(vm);
        Ok(ns)
    }

    impl Runner for RbpfRunner<'_> {
        fn run(&mut self, input: &[u8]) -> (Result<u64, String>, Duration) {
            let mem = self.input.load(input);
            // rbpf ties the memory's borrow to the VM's lifetime parameter; the VM is
            // covariant in it, so a shorter-lived view of it takes this borrow.
            let vm: &rbpf::EbpfVmRaw<'_> = &self.vm;
            let start = Instant::now();
            let r0 = if self.jit { run_jit(vm, mem) } else { vm.execute_program(mem).map_err(|e| e.to_string()) };
            (r0, start.elapsed())
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn run_jit<'m>(vm: &rbpf::EbpfVmRaw<'m>, mem: &'m mut [u8]) -> Result<u64, String> {
        // SAFETY: calls the code rbpf's JIT generated for this program. rbpf's JIT code does
        // no bounds checks: the programs access only their input and stack, which the
        // interpreters (checked) confirm before any timed run, and the results are compared.
        unsafe { vm.execute_program_jit(mem) }.map_err(|e| e.to_string())
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn run_jit(_: &rbpf::EbpfVmRaw<'_>, _: &mut [u8]) -> Result<u64, String> {
        Err("rbpf's JIT emits x86-64 only".into())
    }
}

mod sbpf_peer {
    //! solana-sbpf 0.26, SBPF v3 (the version with eBPF's relative local calls, 32-bit jumps
    //! and static syscalls), default configuration (instruction meter, address translation).

    use std::ptr::NonNull;
    use std::sync::Arc;

    use solana_sbpf::aligned_memory::AlignedMemory;
    use solana_sbpf::ebpf::{HOST_ALIGN, MM_INPUT_START, MM_STACK_START};
    use solana_sbpf::elf::Executable;
    use solana_sbpf::error::ProgramResult;
    use solana_sbpf::memory_region::{MemoryMapping, MemoryRegion};
    use solana_sbpf::program::{BuiltinFunctionDefinition, BuiltinProgram, FunctionRegistry, SBPFVersion};
    use solana_sbpf::verifier::RequisiteVerifier;
    use solana_sbpf::vm::{CallFrame, Config, ContextObject, EbpfVm, ExecutionMode};

    use super::*;

    const VERSION: SBPFVersion = SBPFVersion::V3;
    /// The instruction budget: large enough for every program, small enough that sbpf's
    /// signed meter arithmetic does not wrap.
    const BUDGET: u64 = 1 << 62;

    /// sbpf's per-run context: the instruction meter and the memory mapping.
    pub struct Context {
        remaining: u64,
        mapping: MemoryMapping,
    }

    impl ContextObject for Context {
        fn consume(&mut self, amount: u64) {
            self.remaining = self.remaining.saturating_sub(amount);
        }

        fn get_remaining(&self) -> u64 {
            self.remaining
        }

        fn active_mapping_ptr(&mut self) -> NonNull<MemoryMapping> {
            NonNull::from(&mut self.mapping)
        }
    }

    /// `bench_mix` as an sbpf syscall.
    struct Mix;

    impl BuiltinFunctionDefinition<Context> for Mix {
        type Error = std::convert::Infallible;

        fn rust(_: &mut Context, a: u64, b: u64, c: u64, d: u64, e: u64) -> Result<u64, Self::Error> {
            Ok(mix(a, b, c, d, e))
        }
    }

    fn loader() -> Result<Arc<BuiltinProgram<Context>>, String> {
        let mut loader = BuiltinProgram::new_loader(Config::default());
        loader.register_definition::<Mix>(crate::helper::BENCH_MIX_NAME).map_err(|e| e.to_string())?;
        Ok(Arc::new(loader))
    }

    fn executable(bytecode: &[u8], loader: Arc<BuiltinProgram<Context>>) -> Result<Executable<Context>, String> {
        let executable = Executable::from_text_bytes(bytecode, loader, VERSION, FunctionRegistry::default())
            .map_err(|e| e.to_string())?;
        executable.verify::<RequisiteVerifier>().map_err(|e| e.to_string())?;
        Ok(executable)
    }

    #[cfg(target_arch = "x86_64")]
    fn compile_jit(executable: &Executable<Context>) -> Result<(), String> {
        executable.jit_compile().map_err(|e| e.to_string())
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn compile_jit(_: &Executable<Context>) -> Result<(), String> {
        Err("solana-sbpf's JIT emits x86-64 only".into())
    }

    pub fn compile_once(program: &Program) -> Result<u64, String> {
        let loader = loader()?;
        let start = Instant::now();
        let executable = executable(&program.bytecode, loader)?;
        compile_jit(&executable)?;
        let ns = start.elapsed().as_nanos() as u64;
        drop(executable);
        Ok(ns)
    }

    struct SbpfRunner {
        executable: Executable<Context>,
        jit: bool,
        stack: AlignedMemory<HOST_ALIGN>,
        call_frames: Vec<CallFrame>,
        input: InputBuffer,
    }

    pub fn prepare<'p>(jit: bool, program: &'p Program, input: InputBuffer) -> Result<Box<dyn Runner + 'p>, String> {
        let executable = executable(&program.bytecode, loader()?)?;
        if jit {
            compile_jit(&executable)?;
        }
        let config = executable.get_config();
        let stack = AlignedMemory::zero_filled(config.stack_size());
        let call_frames = vec![CallFrame::default(); config.max_call_depth];
        Ok(Box::new(SbpfRunner { executable, jit, stack, call_frames, input }))
    }

    impl Runner for SbpfRunner {
        fn run(&mut self, input: &[u8]) -> (Result<u64, String>, Duration) {
            let stack_len = self.stack.len();
            let input_len = input.len() as u64;
            let regions = vec![
                self.executable.get_ro_region(),
                MemoryRegion::new(std::ptr::from_mut(self.stack.as_slice_mut()), MM_STACK_START),
                MemoryRegion::new(std::ptr::from_mut(self.input.load(input)), MM_INPUT_START),
            ];
            // SAFETY: the regions point at this runner's stack and input buffers and at the
            // executable's text, all of which outlive the mapping (dropped at the end of this
            // call); the writable ones accept any bytes.
            let mapping = match unsafe { MemoryMapping::new(regions, self.executable.get_config(), VERSION) } {
                Ok(m) => m,
                Err(e) => return (Err(e.to_string()), Duration::ZERO),
            };
            let mut context = Context { remaining: BUDGET, mapping };
            let mut vm = EbpfVm::new(self.executable.get_loader().clone(), VERSION, &mut context, stack_len);
            vm.registers[1] = MM_INPUT_START;
            vm.registers[2] = input_len;
            let mut mode = if self.jit { ExecutionMode::Jit } else { ExecutionMode::Interpreted };
            let start = Instant::now();
            let (_, result) = vm.execute_program(&self.executable, &mut mode, &mut self.call_frames);
            let elapsed = start.elapsed();
            let r0 = match result {
                ProgramResult::Ok(v) => Ok(v),
                ProgramResult::Err(e) => Err(e.to_string()),
            };
            (r0, elapsed)
        }
    }
}

pub use rbpf_peer::with_length_prologue as rbpf_bytecode;
