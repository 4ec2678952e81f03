//! The eBPF JIT: a validated program lowered through the copy-and-patch core into a code
//! buffer or arena, and a handle that runs the result.

use tessera_jit::{Allocation, CodeBuffer, Emitter, Fixup, Isa, Patcher, WithPatcher};
use tessera_stencils::abi::{FRAME_SIZE, HelperReturn, JitContext, RegionEntry, region, trap};

use super::error::{CompileError, RunError};
use super::helpers::{self, CallFailure, HelperFn};
use super::interp::{Config, MAX_CALL_DEPTH};
use super::kept::Kept;
use super::lower::{self, Observer};
use super::maps::MapDef;
use super::{Helpers, Memory, Program};

/// How much [`Scratch`] compiling a program needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScratchSize {
    pub labels: usize,
    pub fixups: usize,
    /// Words for the provenance analysis.
    pub words: usize,
}

impl ScratchSize {
    pub fn of(program: &Program) -> ScratchSize {
        ScratchSize {
            labels: lower::labels_needed(program),
            fixups: lower::fixups_needed(program),
            words: lower::words_needed(program),
        }
    }

    /// Enough for any program of up to `slots` slots (for scratch sized at build time).
    pub const fn for_slots(slots: usize) -> ScratchSize {
        ScratchSize {
            labels: lower::labels_for(slots),
            fixups: lower::fixups_for(slots),
            words: lower::words_for(slots),
        }
    }
}

/// The caller's scratch for one compilation (see [`ScratchSize`]); no allocator needed.
#[derive(Debug)]
pub struct Scratch<'s> {
    pub labels: &'s mut [u32],
    pub fixups: &'s mut [Fixup],
    pub words: &'s mut [u64],
}

/// [`Scratch`] on the heap, grown as needed and reused across compilations.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct OwnedScratch {
    labels: alloc::vec::Vec<u32>,
    fixups: alloc::vec::Vec<Fixup>,
    words: alloc::vec::Vec<u64>,
}

#[cfg(feature = "alloc")]
impl OwnedScratch {
    pub fn with_size(size: ScratchSize) -> OwnedScratch {
        let mut scratch = OwnedScratch::default();
        scratch.ensure(size);
        scratch
    }

    /// Grows every table to at least `size`.
    pub fn ensure(&mut self, size: ScratchSize) {
        if self.labels.len() < size.labels {
            self.labels.resize(size.labels, 0);
        }
        if self.fixups.len() < size.fixups {
            self.fixups.resize(size.fixups, Fixup::EMPTY);
        }
        if self.words.len() < size.words {
            self.words.resize(size.words, 0);
        }
    }

    pub fn scratch(&mut self) -> Scratch<'_> {
        Scratch { labels: &mut self.labels, fixups: &mut self.fixups, words: &mut self.words }
    }
}

/// The default bound on one program's generated code ([`Vm::set_max_code_size`]): a
/// program of `MAX_INSNS` slots of plain ALU code fits, and a hostile program of loads and
/// stores cannot make the JIT write more than this.
///
/// [`Vm::set_max_code_size`]: super::Vm::set_max_code_size
pub const DEFAULT_MAX_CODE_SIZE: usize = 64 << 20;

/// The most code one program may have on `isa`: its branches between stencils and to the
/// out-of-line stubs must reach (AArch64 `b`/`bl`: ±128 MiB; x86-64 `rel32` and RISC-V
/// `auipc`+`jalr`: ±2 GiB).
pub const fn max_code_size(isa: Isa) -> usize {
    match isa {
        Isa::Aarch64 => 128 << 20,
        Isa::X86_64 | Isa::Riscv64 => (2 << 30) - 1,
    }
}

/// Where generated code starts: a cache line.
const CODE_ALIGN: usize = 64;

/// Emits `program` for `isa` into `buffer` (any ISA, from any host), then makes it visible
/// to instruction fetch if the buffer is executable. On error the buffer is as it was.
pub fn emit<'m>(
    program: &Program,
    helpers: &Helpers,
    isa: Isa,
    buffer: &mut CodeBuffer<'m>,
    scratch: Scratch<'_>,
    limit: usize,
) -> Result<Allocation<'m>, CompileError> {
    emit_observed(program, helpers, isa, buffer, scratch, limit, &mut ())
}

/// [`emit`], telling `observer` about every stencil placed (for listings).
pub fn emit_observed<'m, O: Observer>(
    program: &Program,
    helpers: &Helpers,
    isa: Isa,
    buffer: &mut CodeBuffer<'m>,
    scratch: Scratch<'_>,
    limit: usize,
    observer: &mut O,
) -> Result<Allocation<'m>, CompileError> {
    let table = tessera_stencils::table(isa).ok_or(CompileError::IsaNotLinked { isa })?;
    let limit = limit.min(max_code_size(isa));
    let need = ScratchSize::of(program);
    if scratch.labels.len() < need.labels || scratch.fixups.len() < need.fixups || scratch.words.len() < need.words {
        return Err(CompileError::ScratchTooSmall { labels: need.labels as u32, fixups: need.fixups as u32 });
    }
    struct Job<'a, 'b, 'm, O> {
        program: &'a Program<'a>,
        helpers: &'a Helpers<'a>,
        table: &'static tessera_jit::StencilTable,
        buffer: &'a mut CodeBuffer<'m>,
        scratch: Scratch<'b>,
        limit: usize,
        observer: &'a mut O,
    }
    impl<'m, O: Observer> WithPatcher for Job<'_, '_, 'm, O> {
        type Output = Result<Allocation<'m>, CompileError>;
        fn call<P: Patcher>(self) -> Self::Output {
            let Job { program, helpers, table, buffer, scratch, limit, observer } = self;
            let Scratch { labels, fixups, words } = scratch;
            let (allocation, ()) = buffer.append(
                CODE_ALIGN,
                |out, base| {
                    // Past the limit the program is too large, whatever room is left.
                    let capped = out.len() > limit;
                    let end = out.len().min(limit);
                    let out = out.get_mut(..end).unwrap_or_default();
                    let mut emit = || {
                        let mut emitter = Emitter::<P>::new(table, out, base, tessera_jit::Scratch { labels, fixups })?;
                        lower::lower(program, helpers, &mut emitter, words, observer)?;
                        Ok::<_, CompileError>((emitter.finish()?, ()))
                    };
                    match emit() {
                        Err(CompileError::Emit(tessera_jit::Error::CodeBufferFull { .. })) if capped => {
                            Err(CompileError::CodeTooLarge { limit: limit as u64 })
                        }
                        other => other,
                    }
                },
                |e: &CompileError| matches!(e, CompileError::Emit(tessera_jit::Error::CodeBufferFull { .. })),
            )?;
            Ok(allocation)
        }
    }
    let allocation = isa.with_patcher(Job { program, helpers, table, buffer, scratch, limit, observer })?;
    allocation.sync_icache();
    Ok(allocation)
}

/// Where a compiled program's code lives.
#[derive(Debug)]
enum Code<'c> {
    /// In caller memory (a [`CodeBuffer`]).
    Buffer(&'c [u8]),
    /// In a [`tessera_jit::exec::CodeArena`].
    #[cfg(all(feature = "std", target_os = "linux"))]
    Arena(tessera_jit::exec::ArenaCode),
}

/// A program compiled for this machine, with its helpers and limits: call [`JitProgram::run`].
/// The code stays valid as long as the handle lives.
#[derive(Debug)]
pub struct JitProgram<'p, 'h, 'c> {
    program: Program<'p>,
    maps: &'p [MapDef],
    helpers: Helpers<'h>,
    config: Config,
    code: Code<'c>,
    address: u64,
    isa: Isa,
    runnable: bool,
    /// The context of the last run, reused by the next (see [`super::kept`]).
    kept: Kept<Prepared>,
}

/// The context generated code runs with, kept between runs (see [`super::kept`]) so that a
/// run writes only what differs from the last one: a fresh context is 2 KiB of stores before
/// the first instruction, the region table most of them.
struct Prepared {
    ctx: JitContext,
    /// Region-table entries `1..filled` may hold an earlier run's regions; the others are
    /// [`RegionEntry::NONE`].
    filled: usize,
}

impl Prepared {
    const fn new() -> Prepared {
        Prepared {
            ctx: JitContext {
                frame_host: 0,
                fuel_complement: 0,
                frame_floor: 0,
                trap: trap::NONE,
                trap_insn: 0,
                trap_addr: 0,
                spill: [0; 11],
                helper: 0,
                call_helper,
                call_helper_by_id,
                host: 0,
                regions: [RegionEntry::NONE; region::COUNT],
            },
            filled: 0,
        }
    }
}

impl core::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Prepared").field("filled", &self.filled).finish_non_exhaustive()
    }
}

impl<'p, 'h, 'c> JitProgram<'p, 'h, 'c> {
    /// A handle for code emitted into a [`CodeBuffer`] by [`emit`].
    pub(crate) fn in_buffer(
        (program, maps, helpers, config): (Program<'p>, &'p [MapDef], Helpers<'h>, Config),
        isa: Isa,
        allocation: Allocation<'c>,
    ) -> JitProgram<'p, 'h, 'c> {
        let runnable = allocation.executable && Some(isa) == Isa::host();
        let address = allocation.address;
        let code = Code::Buffer(allocation.bytes);
        JitProgram { program, maps, helpers, config, code, address, isa, runnable, kept: Kept::new() }
    }

    #[cfg(all(feature = "std", target_os = "linux"))]
    pub(crate) fn in_arena(
        (program, maps, helpers, config): (Program<'p>, &'p [MapDef], Helpers<'h>, Config),
        isa: Isa,
        code: tessera_jit::exec::ArenaCode,
        address: u64,
    ) -> JitProgram<'p, 'h, 'c> {
        let code = Code::Arena(code);
        JitProgram { program, maps, helpers, config, code, address, isa, runnable: true, kept: Kept::new() }
    }

    /// Runs the program with r1 = the context's address (0 when it is empty) and r2 = its
    /// length.
    pub fn run(&self, memory: &mut Memory) -> Result<u64, RunError> {
        self.kept.with(Prepared::new, |prepared| self.run_prepared(memory, prepared))
    }

    /// [`JitProgram::run`] with a context the caller keeps between runs (of any programs):
    /// without `alloc`, where a program cannot keep one itself, this saves a run the 2 KiB
    /// of stores a fresh context takes.
    pub fn run_in(&self, memory: &mut Memory, context: &mut RunContext) -> Result<u64, RunError> {
        self.run_prepared(memory, &mut context.0)
    }

    fn run_prepared(&self, memory: &mut Memory, prepared: &mut Prepared) -> Result<u64, RunError> {
        if !self.runnable {
            return Err(RunError::NotRunnable);
        }
        memory.check_maps(self.maps)?;
        // SAFETY: `runnable` says the code was emitted by `emit` for this machine's ISA from
        // the validated `self.program` into memory this machine executes (a `CodeBuffer`
        // built with the unsafe `executable` contract, or the arena), with its instruction
        // cache synchronised; `self.code` keeps it alive and unmodified while we run.
        unsafe { run_compiled(self.address, &self.program, &self.helpers, memory, &self.config, prepared) }
    }

    /// The address the code starts at (its entry stencil).
    pub fn address(&self) -> u64 {
        self.address
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn program(&self) -> &Program<'p> {
        &self.program
    }

    /// The generated code.
    pub fn code(&self) -> &[u8] {
        match &self.code {
            Code::Buffer(bytes) => bytes,
            #[cfg(all(feature = "std", target_os = "linux"))]
            Code::Arena(code) => code.bytes(),
        }
    }

    /// Whether [`JitProgram::run`] can run it (host ISA, executable memory).
    pub fn is_runnable(&self) -> bool {
        self.runnable
    }
}

/// A run context a caller keeps between runs ([`JitProgram::run_in`]); any program can use
/// any context, one run at a time.
pub struct RunContext(Prepared);

impl RunContext {
    pub const fn new() -> RunContext {
        RunContext(Prepared::new())
    }
}

impl Default for RunContext {
    fn default() -> RunContext {
        RunContext::new()
    }
}

impl core::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

/// What the helper trampoline needs during a run.
struct RunState<'a, 'r, 'm> {
    helpers: &'a Helpers<'a>,
    /// The run's memory, borrowed mutably by `run_compiled` for the whole call; generated
    /// code writes through pointers from the same borrows.
    memory: *mut Memory<'r, 'm>,
}

/// The runtime side of `call`: calls the helper at position `ctx.helper` of the program's
/// table (resolved when the program was lowered). r1..r5 arrive in the registers the helper
/// takes them in, and nothing but the helper's result lives across the call.
unsafe extern "C" fn call_helper(ctx: *mut JitContext, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> HelperReturn {
    // SAFETY: generated code passes back the context `run_compiled` created; its `host`
    // points at the `RunState` on `run_compiled`'s stack, alive for the whole run.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as above.
    let state = unsafe { &*(ctx.host as *const RunState) };
    let found = usize::try_from(ctx.helper).ok().and_then(|index| state.helpers.at(index));
    // SAFETY: as above.
    unsafe { call_found(ctx, state, found, [a1, a2, a3, a4, a5]) }
}

/// The runtime side of `callx`: calls the helper with id `ctx.helper`.
unsafe extern "C" fn call_helper_by_id(
    ctx: *mut JitContext,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> HelperReturn {
    // SAFETY: as in `call_helper`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as above.
    let state = unsafe { &*(ctx.host as *const RunState) };
    let found = state.helpers.get(ctx.helper);
    // SAFETY: as above.
    unsafe { call_found(ctx, state, found, [a1, a2, a3, a4, a5]) }
}

/// Calls `found` (the helper `ctx.helper` names, if any) with the run's memory.
///
/// # Safety
/// `state` is the run's state `ctx.host` points at, as in [`call_helper`].
#[inline(always)]
unsafe fn call_found(ctx: &mut JitContext, state: &RunState, found: Option<HelperFn>, args: [u64; 5]) -> HelperReturn {
    let Some(f) = found else {
        ctx.trap_addr = ctx.helper;
        return HelperReturn { r0: 0, trap: trap::HELPER };
    };
    // SAFETY: `memory` is the run's `&mut Memory`, which `run_compiled` does not touch
    // while generated code runs; generated code is suspended during this call, and the
    // helper's accesses reborrow the very slices generated code's pointers were taken from.
    let memory = unsafe { &mut *state.memory };
    match helpers::call(f, memory, args) {
        Ok(r0) => HelperReturn { r0, trap: trap::NONE },
        Err(CallFailure::Panicked) => HelperReturn { r0: 0, trap: trap::HELPER_PANIC },
    }
}

/// Runs compiled code whose entry stencil is at `entry`.
///
/// # Safety
/// `entry` must be the address of an entry stencil emitted by [`emit`] for this machine's
/// ISA from a validated program, in memory that is executable and whose instruction cache
/// has been synchronised; the code must not be modified while it runs.
unsafe fn run_compiled(
    entry: u64,
    program: &Program,
    helpers: &Helpers,
    memory: &mut Memory,
    config: &Config,
    prepared: &mut Prepared,
) -> Result<u64, RunError> {
    memory.enter_stack(program)?;
    let Prepared { ctx, filled } = prepared;
    memory.refill_table(&mut ctx.regions, filled)?;
    memory.clear_stack(program);
    // Everything else a run reads before writing it: the fuel, the frame and its floor, the
    // trap, the registers kept in the context (all zero at entry) and the runtime's state.
    // The same depth rule as the interpreter: the configured limit, and no deeper than
    // the stack can hold frames for; as a floor under the running frame's host address.
    let stack_len = memory.run_stack_len() as u64;
    let frames = (stack_len / FRAME_SIZE).saturating_sub(1);
    let max_depth = (config.max_call_depth.min(MAX_CALL_DEPTH) as u64).min(frames);
    ctx.fuel_complement = !config.fuel;
    ctx.frame_host = ctx.regions.get(region::STACK as usize).map_or(0, |r| r.host).wrapping_add(stack_len);
    ctx.frame_floor = ctx.frame_host.wrapping_sub(max_depth * FRAME_SIZE);
    ctx.trap = trap::NONE;
    ctx.spill = [0; 11];
    let (r1, r2) = (memory.context_address(), memory.context.len() as u64);
    let state = RunState { helpers, memory };
    ctx.host = &state as *const RunState as usize;
    // SAFETY: the caller guarantees `entry` is an entry stencil (C ABI:
    // `fn(*mut JitContext, u64, u64) -> u64`) in executable memory. Generated code only
    // touches memory through the region table in `ctx` (every access checked against it,
    // or proved inside the running frame), whose host addresses come from the mutable
    // borrows `memory` holds for this call.
    let r0 = unsafe {
        let f: unsafe extern "C" fn(*mut JitContext, u64, u64) -> u64 = core::mem::transmute(entry as usize);
        f(ctx, r1, r2)
    };
    let pc = ctx.trap_insn as u32;
    match ctx.trap {
        trap::NONE => Ok(r0),
        trap::MEMORY => Err(RunError::MemoryFault { pc, addr: ctx.trap_addr }),
        trap::FUEL => Err(RunError::OutOfFuel { pc }),
        trap::CALL_DEPTH => Err(RunError::CallDepthExceeded { pc }),
        trap::MISALIGNED => Err(RunError::MisalignedAtomic { pc, addr: ctx.trap_addr }),
        trap::HELPER_PANIC => Err(RunError::HelperPanicked { pc }),
        _ => Err(RunError::HelperNotFound { pc, id: ctx.trap_addr }),
    }
}

#[cfg(all(test, feature = "std", target_os = "linux"))]
mod tests {
    use super::*;
    use crate::ebpf::Vm;
    use crate::ebpf::insn::{Insn, alu, class, jmp, op, source};
    use std::vec::Vec;

    fn bytes(insns: &[Insn]) -> Vec<u8> {
        insns.iter().flat_map(|i| i.encode()).collect()
    }

    /// r0 = 10 + 9 + ... + 1, through a counting loop (a 3-instruction body).
    fn counting_loop() -> Vec<u8> {
        bytes(&[
            Insn::new(class::ALU64 | alu::MOV | source::K, 0, 0, 0, 0),
            Insn::new(class::ALU64 | alu::MOV | source::K, 1, 0, 0, 10),
            Insn::new(class::ALU64 | alu::ADD | source::X, 0, 1, 0, 0),
            Insn::new(class::ALU64 | alu::SUB | source::K, 1, 0, 0, 1),
            Insn::new(class::JMP | jmp::JNE | source::K, 1, 0, -3, 0),
            Insn::new(op::EXIT, 0, 0, 0, 0),
        ])
    }

    fn run_both(code: &[u8], fuel: u64) -> (Result<u64, RunError>, Result<u64, RunError>) {
        let mut vm = Vm::new(code, Helpers::empty()).unwrap();
        vm.set_fuel(fuel);
        let jit = vm.compile().unwrap();
        let mut stack = [0u8; super::super::STACK_SIZE];
        let mut ctx = [0u8; 8];
        let mut memory = Memory::new(&mut stack, &mut ctx, &mut []);
        (jit.run(&mut memory), vm.interpret(&mut memory))
    }

    #[test]
    fn counting_loop_runs_natively() {
        assert_eq!(run_both(&counting_loop(), 1000), (Ok(55), Ok(55)));
    }

    #[test]
    fn fuel_is_charged_per_loop_body_identically() {
        // Ten back edges of 3 instructions each: 30 units.
        assert_eq!(run_both(&counting_loop(), 30), (Ok(55), Ok(55)));
        let out = Err(RunError::OutOfFuel { pc: 4 });
        assert_eq!(run_both(&counting_loop(), 29), (out, out));
    }

    #[test]
    fn arena_and_caller_buffer_emit_identical_bytes() {
        let code = counting_loop();
        let vm = Vm::new(&code, Helpers::empty()).unwrap();
        let jit = vm.compile().unwrap();
        let need = vm.scratch_size();
        let mut scratch = OwnedScratch::with_size(need);
        let mut memory = std::vec![0u8; 4096];
        // The same execution address, so that every absolute and relative field agrees.
        let mut buffer = CodeBuffer::with_base(&mut memory, jit.address());
        let allocation = vm.emit_for(jit.isa(), &mut buffer, scratch.scratch()).unwrap();
        assert_eq!(allocation.address, jit.address());
        assert_eq!(&allocation.bytes[..], jit.code());
    }

    #[test]
    fn code_in_a_plain_buffer_is_not_runnable() {
        let code = counting_loop();
        let vm = Vm::new(&code, Helpers::empty()).unwrap();
        let need = vm.scratch_size();
        let mut scratch = OwnedScratch::with_size(need);
        let mut memory = std::vec![0u8; 4096];
        let mut buffer = CodeBuffer::new(&mut memory);
        let jit = vm.compile_into(&mut buffer, scratch.scratch()).unwrap();
        assert!(!jit.is_runnable());
        let (mut stack, mut ctx) = ([0u8; 512], [0u8; 0]);
        assert_eq!(jit.run(&mut Memory::new(&mut stack, &mut ctx, &mut [])), Err(RunError::NotRunnable));
    }

    #[test]
    fn a_full_buffer_fails_cleanly_and_stays_usable() {
        let code = counting_loop();
        let vm = Vm::new(&code, Helpers::empty()).unwrap();
        let need = vm.scratch_size();
        let mut scratch = OwnedScratch::with_size(need);
        let mut memory = std::vec![0u8; 4096];
        let mut buffer = CodeBuffer::with_base(&mut memory, 0x1000);
        let mut tiny = [0u8; 40];
        let mut tiny = CodeBuffer::with_base(&mut tiny, 0x1000);
        let err = vm.emit_for(Isa::X86_64, &mut tiny, scratch.scratch()).map(|a| a.address);
        assert!(matches!(err, Err(CompileError::Emit(tessera_jit::Error::CodeBufferFull { .. }))), "{err:?}");
        assert!(tiny.ran_out() && tiny.used() == 0);
        // Scratch smaller than needed is a typed error, not a panic.
        let small = Scratch { labels: &mut [0; 2], fixups: &mut [], words: &mut [] };
        assert_eq!(
            vm.emit_for(Isa::X86_64, &mut buffer, small).unwrap_err(),
            CompileError::ScratchTooSmall { labels: need.labels as u32, fixups: need.fixups as u32 }
        );
        assert_eq!(buffer.used(), 0, "failed emissions leave the buffer as it was");
        for isa in Isa::ALL {
            assert!(vm.emit_for(isa, &mut buffer, scratch.scratch()).is_ok(), "{isa}");
        }
    }
}
