//! The eBPF JIT: lowering through the emitter into a code buffer, and running the result.

use tessera_arch::Isa;
use tessera_stencils::abi::{FRAME_SIZE, GrantedRegion, JitContext, MAX_GRANTED, trap};

use super::interp::{Config, MAX_CALL_DEPTH};
use super::lower::{Lowering, label_count};
use super::{Error, Helpers, Memory, Program};
use crate::code_buffer::CodeBuffer;
use crate::emitter::Emitter;

/// Where a compiled program lies in its code buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CompiledCode {
    pub isa: Isa,
    /// Offset of the entry stencil in the buffer (the start of the program's code).
    pub offset: usize,
    pub len: usize,
    /// The address the entry stencil executes at.
    pub address: u64,
}

/// How many label slots [`compile`] needs for `program`.
pub fn labels_needed(program: &Program) -> usize {
    label_count(program)
}

/// Compiles `program` for `isa` into `buffer`. `labels` is scratch of at least
/// [`labels_needed`] entries. Works for any ISA on any host (cross-emission).
/// With `alloc`, the lowering runs once and is replayed for emission; without it, twice.
pub fn compile(
    program: &Program,
    isa: Isa,
    labels: &mut [u32],
    buffer: &mut CodeBuffer,
) -> Result<CompiledCode, Error> {
    let needed = labels_needed(program);
    let labels = labels.get_mut(..needed).ok_or(Error::ScratchTooSmall { needed: needed as u32 })?;
    #[cfg(feature = "alloc")]
    let generator = crate::emitter::Recorded::record(&Lowering(program))?;
    #[cfg(not(feature = "alloc"))]
    let generator = Lowering(program);
    let emitter = Emitter::new(isa);
    let size = emitter.layout(&generator, labels)?;
    let alloc = buffer.alloc(size, 16)?;
    let written = emitter.emit(&generator, labels, alloc.bytes, alloc.address)?;
    debug_assert_eq!(written, size);
    Ok(CompiledCode { isa, offset: alloc.offset, len: size, address: alloc.address })
}

/// Pass 1 of [`compile`] on its own (regenerating, no allocator needed): the exact code
/// size, with `labels` filled in, so a caller can size executable memory before emitting.
pub fn layout(program: &Program, isa: Isa, labels: &mut [u32]) -> Result<usize, Error> {
    let needed = labels_needed(program);
    let labels = labels.get_mut(..needed).ok_or(Error::ScratchTooSmall { needed: needed as u32 })?;
    Emitter::new(isa).layout(&Lowering(program), labels)
}

/// Pass 2 of [`compile`]: emits into `out`, which will execute at `address`, using the
/// labels [`layout`] filled in. Returns the bytes written.
pub fn emit(program: &Program, isa: Isa, labels: &[u32], out: &mut [u8], address: u64) -> Result<usize, Error> {
    Emitter::new(isa).emit(&Lowering(program), labels, out, address)
}

/// Every run needs at least one frame: frame-relative stencils rely on `[r10 - FRAME_SIZE,
/// r10)` lying in the stack (see `lower::in_frame`). Both run modes check it up front.
pub fn check_stack(memory: &Memory) -> Result<(), Error> {
    if (memory.stack.len() as u64) < FRAME_SIZE {
        return Err(Error::StackTooSmall { len: memory.stack.len() as u32, needed: FRAME_SIZE as u32 });
    }
    Ok(())
}

/// The runtime side of `call_helper` and `callx`.
unsafe extern "C" fn call_helper(ctx: *mut JitContext, id: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> u64 {
    // SAFETY: generated code passes back the context `run_compiled` created; its `host`
    // points at the `Helpers` borrowed for the duration of that call.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as above.
    let helpers = unsafe { &*(ctx.host as *const Helpers) };
    match helpers.get(id) {
        Some(f) => f(a1, a2, a3, a4, a5),
        None => {
            ctx.trap = trap::HELPER;
            ctx.trap_addr = id;
            0
        }
    }
}

/// Runs compiled code whose entry stencil is at `entry` (host memory, executable).
///
/// # Safety
/// `entry` must be the address of an entry stencil produced by [`compile`] for the host ISA
/// from a validated program, in memory that is executable and whose instruction cache has
/// been synchronised; the code must not be modified while it runs.
pub unsafe fn run_compiled(
    entry: u64,
    helpers: &Helpers,
    memory: &mut Memory,
    r1: u64,
    r2: u64,
    config: &Config,
) -> Result<u64, Error> {
    check_stack(memory)?;
    if memory.regions.len() > MAX_GRANTED {
        return Err(Error::TooManyRegions { max: MAX_GRANTED as u32 });
    }
    let mut granted = [GrantedRegion::default(); MAX_GRANTED];
    for (g, r) in granted.iter_mut().zip(memory.regions.iter()) {
        *g = GrantedRegion { start: r.start(), len: r.len(), writable: r.writable() as u64 };
    }
    // The same depth rule as the interpreter: the configured limit, and no deeper than
    // the stack can hold frames for.
    let frames = (memory.stack.len() as u64 / FRAME_SIZE).saturating_sub(1);
    let max_depth = (config.max_call_depth.min(MAX_CALL_DEPTH) as u64).min(frames);
    let mut ctx = JitContext {
        stack_start: memory.stack.as_ptr() as u64,
        stack_len: memory.stack.len() as u64,
        mem_start: memory.context.as_ptr() as u64,
        mem_len: memory.context.len() as u64,
        frame_pointer: memory.stack_end(),
        fuel: config.fuel,
        depth: 0,
        max_depth,
        trap: trap::NONE,
        trap_insn: 0,
        trap_addr: 0,
        spill: [0; 11],
        granted,
        granted_count: memory.regions.len() as u64,
        call_helper,
        host: helpers as *const Helpers as *mut u8,
    };
    // SAFETY: the caller guarantees `entry` is an entry stencil (C ABI:
    // `fn(*mut JitContext, u64, u64) -> u64`) in executable memory. Generated code only
    // touches memory inside the regions described by `ctx` (every access is bounds-checked
    // in the stencils), all of which `memory` borrows mutably for this call.
    let r0 = unsafe {
        let f: unsafe extern "C" fn(*mut JitContext, u64, u64) -> u64 = core::mem::transmute(entry as usize);
        f(&mut ctx, r1, r2)
    };
    let pc = ctx.trap_insn as u32;
    match ctx.trap {
        trap::NONE => Ok(r0),
        trap::MEMORY => Err(Error::MemoryFault { pc, addr: ctx.trap_addr }),
        trap::FUEL => Err(Error::OutOfFuel { pc }),
        trap::CALL_DEPTH => Err(Error::CallDepthExceeded { pc }),
        trap::MISALIGNED => Err(Error::MisalignedAtomic { pc, addr: ctx.trap_addr }),
        _ => Err(Error::HelperNotFound { pc, id: ctx.trap_addr }),
    }
}

#[cfg(all(test, feature = "std", unix, any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
mod tests {
    use super::*;
    use crate::ebpf::insn::{Insn, alu, class, jmp, op, source};
    use crate::exec::ExecutableMemory;
    use std::vec::Vec;

    fn bytes(insns: &[Insn]) -> Vec<u8> {
        insns.iter().flat_map(|i| i.encode()).collect()
    }

    /// r0 = 10 + 9 + ... + 1, through a counting loop.
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

    fn run_host(code: &[u8], fuel: u64) -> Result<u64, Error> {
        let program = Program::new(code, |_| false)?;
        let isa = Isa::host().expect("supported host");
        let mut exec = ExecutableMemory::new(1 << 16)?;
        let mut labels = [0u32; 64];
        let compiled = {
            let mem = exec.writable()?;
            let mut buffer = CodeBuffer::new(mem);
            compile(&program, isa, &mut labels, &mut buffer)?
        };
        exec.make_executable()?;
        let mut stack = [0u8; 512 * 9];
        let mut ctx = [0u8; 8];
        let mut memory = Memory::new(&mut stack, &mut ctx, &mut []);
        let entry = exec.address() + compiled.offset as u64;
        // SAFETY: just compiled for the host ISA into memory made executable above.
        unsafe { run_compiled(entry, &Helpers::empty(), &mut memory, 0, 0, &Config { fuel, max_call_depth: 8 }) }
    }

    #[test]
    fn regenerating_and_recorded_emission_agree() {
        // `compile` replays a recorded lowering (alloc); `layout` + `emit` regenerate it, as
        // embedders without an allocator do. Both must produce the same bytes on every ISA.
        let code = counting_loop();
        let program = Program::new(&code, |_| false).unwrap();
        for isa in Isa::ALL {
            let mut labels = [0u32; 64];
            let mut memory = [0u8; 4096];
            let mut buffer = CodeBuffer::with_base(&mut memory, 0x1000);
            let compiled = compile(&program, isa, &mut labels, &mut buffer).unwrap();
            let recorded = buffer.as_slice()[compiled.offset..compiled.offset + compiled.len].to_vec();
            let size = layout(&program, isa, &mut labels).unwrap();
            let mut out = std::vec![0u8; size];
            assert_eq!(emit(&program, isa, &labels, &mut out, compiled.address).unwrap(), size);
            assert_eq!(out, recorded, "{isa}");
        }
    }

    #[test]
    fn counting_loop_runs_natively() {
        assert_eq!(run_host(&counting_loop(), u64::MAX), Ok(55));
    }

    #[test]
    fn fuel_stops_the_loop_at_the_back_edge() {
        assert_eq!(run_host(&counting_loop(), 3), Err(Error::OutOfFuel { pc: 4 }));
    }
}
