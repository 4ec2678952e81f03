//! The reference interpreter: runs a validated [`Program`] in safe code over slices.
//!
//! Every operation's meaning comes from `tessera_stencils::semantics`, which the JIT stencils
//! include verbatim, so generated code and this interpreter agree by construction. The rest
//! of the contract the JIT mirrors:
//! - entry: `r1` = the context's address (0 when it is empty), `r2` = its length, `r10` =
//!   the end of the stack, every other register 0; the frames the run may touch are zeroed;
//! - memory: virtual addresses (see [`super::memory`]), every access checked by
//!   `semantics::locate` against the run's region table;
//! - fuel: before every jump (`ja`, `ja32`, conditional; taken or not) whose target is at
//!   or before its own pc, and before every local call, the charge [`fuel`] defines;
//!   `OutOfFuel` when it is larger than what is left;
//! - helper calls (`call imm`, `callx`): `r0 = f(r1..r5)`, then r1..r5 are zeroed;
//! - local calls: fuel, then depth (`max_call_depth`, and room for one more `FRAME_SIZE`
//!   frame in the stack), then r6..r9 and r10 saved, `r10 -= FRAME_SIZE`; `exit` in a callee
//!   restores them and zeroes r1..r5 (r0 is the callee's result);
//! - atomics: bounds (as a write) first, then natural alignment.

use tessera_stencils::abi::{FRAME_SIZE, MAP_HANDLE, RegionEntry, region};
use tessera_stencils::semantics as s;

use super::error::RunError;
use super::fuel;
use super::helpers::{self, CallFailure, HelperFn, Helpers};
use super::insn::{Insn, atomic, op, pseudo};
use super::memory::{Memory, Table};
use super::program::Program;
use super::tables::RegisterFile;

/// The deepest local-call nesting the interpreter supports, whatever [`Config`] asks.
pub const MAX_CALL_DEPTH: u32 = 64;

/// The local-call nesting [`Config::default`] allows.
pub const DEFAULT_MAX_CALL_DEPTH: u32 = 8;

/// The stack a run needs at [`DEFAULT_MAX_CALL_DEPTH`]: the entry frame and one frame per
/// level of local calls, `FRAME_SIZE` (512) bytes each.
pub const STACK_SIZE: usize = FRAME_SIZE as usize * (DEFAULT_MAX_CALL_DEPTH as usize + 1);

/// Limits for one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The execution budget (see [`fuel`]): a run executes at most `fuel + len`
    /// instructions.
    pub fuel: u64,
    /// How many local calls may be nested (capped at [`MAX_CALL_DEPTH`]).
    pub max_call_depth: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config { fuel: fuel::DEFAULT_FUEL, max_call_depth: DEFAULT_MAX_CALL_DEPTH }
    }
}

// ---- The run-time contract, shared with the fast interpreter (`super::fast_interp`) ----

/// The register file of a run (r0..r10 named; the validator guarantees no other).
pub(crate) type Registers = RegisterFile<u64>;

impl RegisterFile<u64> {
    /// r1..r5 set to 0, as after a call (they are scratch).
    #[inline(always)]
    pub(crate) fn clear_arguments(&mut self) {
        let [_, r1, r2, r3, r4, r5, ..] = &mut self.0;
        for r in [r1, r2, r3, r4, r5] {
            *r = 0;
        }
    }
}

/// An empty region table (`RegionEntry::default()` everywhere: no access allowed).
pub(crate) const EMPTY_TABLE: Table = [RegionEntry::NONE; region::COUNT];

/// What a run of the interpreters works in besides registers: the region table and the
/// local-call frames, kept by a program handle between runs (see [`super::kept`]; made
/// afresh, they are 5 KiB of stores before the first instruction).
pub(crate) struct RunState {
    table: Table,
    /// Entries `1..filled` may hold an earlier run's regions; the others are empty.
    filled: usize,
    frames: Frames,
}

impl RunState {
    pub(crate) const fn new() -> RunState {
        RunState { table: EMPTY_TABLE, filled: 0, frames: heapless::Vec::new() }
    }
}

/// Interpreter run state a caller keeps between runs ([`super::Vm::interpret_in`],
/// [`super::FastProgram::run_in`]): without `alloc`, where a program cannot keep it itself,
/// this saves a run the 5 KiB of stores fresh state takes. Any program can use any
/// context, one run at a time.
pub struct RunContext(pub(crate) RunState);

impl RunContext {
    pub const fn new() -> RunContext {
        RunContext(RunState::new())
    }
}

impl Default for RunContext {
    fn default() -> RunContext {
        RunContext::new()
    }
}

impl core::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RunContext").field("filled", &self.0.filled).finish_non_exhaustive()
    }
}

/// Everything a run does before its first instruction: checks the stack, fills the region
/// table of `state`, zeroes the stack the run may read and returns the entry registers (r1 =
/// the context's address, r2 = its length, r10 = the end of the stack), the table and the
/// call stack.
#[inline]
pub(crate) fn enter<'s>(
    memory: &mut Memory,
    program: &Program,
    config: &Config,
    state: &'s mut RunState,
) -> Result<(Registers, &'s Table, CallStack<'s>), RunError> {
    memory.enter_stack(program)?;
    let RunState { table, filled, frames } = state;
    memory.refill_table(table, filled)?;
    memory.clear_stack(program);
    let mut reg = Registers::splat(0);
    reg[1] = memory.context_address();
    reg[2] = memory.context.len() as u64;
    reg[10] = memory.stack_end();
    Ok((reg, table, CallStack::new(config, memory, frames)))
}

/// Spends `charge` units of `fuel` at `pc`, or stops the run when less is left.
#[inline(always)]
pub(crate) fn burn(fuel: &mut u64, charge: u64, pc: usize) -> Result<(), RunError> {
    match fuel.checked_sub(charge) {
        Some(left) => {
            *fuel = left;
            Ok(())
        }
        None => Err(RunError::OutOfFuel { pc: pc as u32 }),
    }
}

/// The value `lddw` at `pc` loads: a map handle (src 1), a map value's address (src 2), or
/// the 64-bit immediate.
#[inline]
pub(crate) fn lddw_value(program: &Program, pc: usize, insn: Insn) -> u64 {
    let second = program.insn(pc + 1).imm as u32 as u64;
    match insn.src {
        pseudo::LDDW_MAP_FD => MAP_HANDLE | insn.imm as u32 as u64,
        pseudo::LDDW_MAP_VALUE => Memory::map_address(insn.imm as u32 as usize) + second,
        _ => program.lddw_value(pc),
    }
}

/// A helper call at `pc` (`f` is the helper `id` names, if any): `r0 = f(r1..r5)`, then
/// r1..r5 are zeroed.
#[inline]
pub(crate) fn call_helper(
    f: Option<HelperFn>,
    id: u64,
    memory: &mut Memory,
    reg: &mut Registers,
    pc: usize,
) -> Result<(), RunError> {
    let Some(f) = f else {
        return Err(RunError::HelperNotFound { pc: pc as u32, id });
    };
    reg[0] = match helpers::call(f, memory, [reg[1], reg[2], reg[3], reg[4], reg[5]]) {
        Ok(r0) => r0,
        Err(CallFailure::Panicked) => return Err(RunError::HelperPanicked { pc: pc as u32 }),
    };
    reg.clear_arguments();
    Ok(())
}

/// The atomic operation `imm` (see [`atomic`]) of `size` bytes at `addr` with operand
/// register `src`, at `pc`: bounds (as a write) first, then natural alignment.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn atomic_op(
    memory: &mut Memory,
    table: &Table,
    reg: &mut Registers,
    addr: u64,
    size: u64,
    imm: i32,
    src: usize,
    pc: usize,
) -> Result<(), RunError> {
    if s::locate(table, addr, size, true).is_none() {
        return Err(RunError::MemoryFault { pc: pc as u32, addr });
    }
    if !s::is_aligned(addr, size) {
        return Err(RunError::MisalignedAtomic { pc: pc as u32, addr });
    }
    let Some(old) = memory.load_in(table, addr, size) else {
        return Err(RunError::MemoryFault { pc: pc as u32, addr });
    };
    let v = reg[src & 0x0f];
    let new = match imm {
        atomic::CMPXCHG => {
            let expected = if size == 8 { reg[0] } else { s::zext32(reg[0]) };
            reg[0] = old;
            if expected == old { Some(v) } else { None }
        }
        atomic::XCHG => Some(v),
        i => Some(match i & !atomic::FETCH {
            atomic::ADD => s::atomic_add(old, v),
            atomic::OR => s::atomic_or(old, v),
            atomic::AND => s::atomic_and(old, v),
            _ => s::atomic_xor(old, v),
        }),
    };
    if let Some(new) = new
        && memory.store_in(table, addr, size, new).is_none()
    {
        return Err(RunError::MemoryFault { pc: pc as u32, addr });
    }
    if imm & atomic::FETCH != 0 && imm != atomic::CMPXCHG {
        reg[src & 0x0f] = old;
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Frame {
    return_pc: usize,
    saved: [u64; 4],
    r10: u64,
}

/// Room for the local-call frames of a run.
type Frames = heapless::Vec<Frame, { MAX_CALL_DEPTH as usize }>;

/// The local-call frames of a run.
pub(crate) struct CallStack<'s> {
    frames: &'s mut Frames,
    max_depth: usize,
    stack_len: u64,
}

impl<'s> CallStack<'s> {
    fn new(config: &Config, memory: &Memory, frames: &'s mut Frames) -> CallStack<'s> {
        frames.clear();
        CallStack {
            frames,
            max_depth: config.max_call_depth.min(MAX_CALL_DEPTH) as usize,
            stack_len: memory.run_stack_len() as u64,
        }
    }

    /// A local call at `pc` returning to `return_pc` (its fuel already charged): depth
    /// (`max_call_depth`, and room for one more frame in the stack), then r6..r9 and r10
    /// saved and `r10 -= FRAME_SIZE`.
    #[inline]
    pub(crate) fn call(&mut self, reg: &mut Registers, pc: usize, return_pc: usize) -> Result<(), RunError> {
        let depth = self.frames.len();
        let needed = FRAME_SIZE.saturating_mul(depth as u64 + 2);
        let frame = Frame { return_pc, saved: [reg[6], reg[7], reg[8], reg[9]], r10: reg[10] };
        if depth >= self.max_depth || self.stack_len < needed || self.frames.push(frame).is_err() {
            return Err(RunError::CallDepthExceeded { pc: pc as u32 });
        }
        reg[10] = reg[10].wrapping_sub(FRAME_SIZE);
        Ok(())
    }

    /// `exit`: `None` when it ends the run (r0 is the result), else the pc the caller
    /// resumes at, with r6..r9 and r10 restored and r1..r5 zeroed.
    #[inline]
    pub(crate) fn exit(&mut self, reg: &mut Registers) -> Option<usize> {
        let frame = self.frames.pop()?;
        let [r6, r7, r8, r9] = frame.saved;
        reg[6] = r6;
        reg[7] = r7;
        reg[8] = r8;
        reg[9] = r9;
        reg[10] = frame.r10;
        reg.clear_arguments();
        Some(frame.return_pc)
    }
}

/// Runs `program` to completion and returns `r0`.
///
/// The stack should hold `FRAME_SIZE * (max_call_depth + 1)` bytes; a local call that would
/// need more fails with [`RunError::CallDepthExceeded`].
pub fn run(program: &Program, helpers: &Helpers, memory: &mut Memory, config: &Config) -> Result<u64, RunError> {
    run_inner::<false>(program, helpers, memory, config, &mut 0, &mut RunState::new())
}

/// [`run`] in run state kept between runs (see [`super::kept`]).
pub(crate) fn run_in(
    program: &Program,
    helpers: &Helpers,
    memory: &mut Memory,
    config: &Config,
    state: &mut RunState,
) -> Result<u64, RunError> {
    run_inner::<false>(program, helpers, memory, config, &mut 0, state)
}

/// [`run`], also returning how many instructions were executed (an `lddw` counts once).
/// Benchmarks divide measured costs by this; the counter is compiled out of [`run`].
pub fn run_counting(
    program: &Program,
    helpers: &Helpers,
    memory: &mut Memory,
    config: &Config,
) -> (Result<u64, RunError>, u64) {
    let mut executed = 0;
    let result = run_inner::<true>(program, helpers, memory, config, &mut executed, &mut RunState::new());
    (result, executed)
}

#[inline(always)]
fn run_inner<const COUNT: bool>(
    program: &Program,
    helpers: &Helpers,
    memory: &mut Memory,
    config: &Config,
    executed: &mut u64,
    state: &mut RunState,
) -> Result<u64, RunError> {
    let (mut reg, table, mut calls) = enter(memory, program, config, state)?;
    let mut fuel_left = config.fuel;
    let mut pc: usize = 0;

    // Charges what `fuel` says a back edge from `pc` to `target` costs (nothing for a
    // forward jump).
    macro_rules! back_edge {
        ($target:expr) => {
            if let Some(charge) = fuel::back_edge_charge(pc, $target) {
                burn(&mut fuel_left, charge, pc)?;
            }
        };
    }

    loop {
        if COUNT {
            *executed += 1;
        }
        let Some(insn) = program.get(pc) else {
            // Unreachable for a validated program; reported, never a panic.
            return Err(RunError::InvalidInstruction { pc: pc as u32 });
        };
        let d = (insn.dst & 0x0f) as usize;
        let sr = (insn.src & 0x0f) as usize;
        let imm = insn.imm as i64 as u64;
        let off = insn.off as i64 as u64;
        let next = pc + 1;

        macro_rules! alu {
            ($f:path, $b:expr) => {{
                reg[d] = $f(reg[d], $b);
                pc = next;
            }};
        }
        macro_rules! alu_div {
            ($u:path, $sg:path, $b:expr) => {{
                let b = $b;
                reg[d] = if insn.off == 1 { $sg(reg[d], b) } else { $u(reg[d], b) };
                pc = next;
            }};
        }
        macro_rules! jump {
            ($f:path, $b:expr) => {{
                let target = (next as i64 + insn.off as i64) as usize;
                back_edge!(target);
                pc = if $f(reg[d], $b) { target } else { next };
            }};
        }
        macro_rules! ldx {
            ($size:expr) => {
                ldx!($size, core::convert::identity)
            };
            ($size:expr, $ext:path) => {{
                let addr = reg[sr].wrapping_add(off);
                let Some(v) = memory.load_in(table, addr, $size) else {
                    return Err(RunError::MemoryFault { pc: pc as u32, addr });
                };
                reg[d] = $ext(v);
                pc = next;
            }};
        }
        macro_rules! store {
            ($size:expr, $v:expr) => {{
                let addr = reg[d].wrapping_add(off);
                if memory.store_in(table, addr, $size, $v).is_none() {
                    return Err(RunError::MemoryFault { pc: pc as u32, addr });
                }
                pc = next;
            }};
        }

        match insn.opcode {
            // ---- ALU64 ----
            0x07 => alu!(s::add64, imm),
            0x0f => alu!(s::add64, reg[sr]),
            0x17 => alu!(s::sub64, imm),
            0x1f => alu!(s::sub64, reg[sr]),
            0x27 => alu!(s::mul64, imm),
            0x2f => alu!(s::mul64, reg[sr]),
            0x37 => alu_div!(s::div64, s::sdiv64, imm),
            0x3f => alu_div!(s::div64, s::sdiv64, reg[sr]),
            0x47 => alu!(s::or64, imm),
            0x4f => alu!(s::or64, reg[sr]),
            0x57 => alu!(s::and64, imm),
            0x5f => alu!(s::and64, reg[sr]),
            0x67 => alu!(s::lsh64, imm),
            0x6f => alu!(s::lsh64, reg[sr]),
            0x77 => alu!(s::rsh64, imm),
            0x7f => alu!(s::rsh64, reg[sr]),
            0x87 => {
                reg[d] = s::neg64(reg[d]);
                pc = next;
            }
            0x97 => alu_div!(s::mod64, s::smod64, imm),
            0x9f => alu_div!(s::mod64, s::smod64, reg[sr]),
            0xa7 => alu!(s::xor64, imm),
            0xaf => alu!(s::xor64, reg[sr]),
            0xb7 => {
                reg[d] = imm;
                pc = next;
            }
            0xbf => {
                let v = reg[sr];
                reg[d] = match insn.off {
                    8 => s::movsx64_8(v),
                    16 => s::movsx64_16(v),
                    32 => s::movsx64_32(v),
                    _ => v,
                };
                pc = next;
            }
            0xc7 => alu!(s::arsh64, imm),
            0xcf => alu!(s::arsh64, reg[sr]),
            0xd7 => {
                reg[d] = match insn.imm {
                    16 => s::bswap16(reg[d]),
                    32 => s::bswap32(reg[d]),
                    _ => s::bswap64(reg[d]),
                };
                pc = next;
            }

            // ---- ALU (32-bit) ----
            0x04 => alu!(s::add32, imm),
            0x0c => alu!(s::add32, reg[sr]),
            0x14 => alu!(s::sub32, imm),
            0x1c => alu!(s::sub32, reg[sr]),
            0x24 => alu!(s::mul32, imm),
            0x2c => alu!(s::mul32, reg[sr]),
            0x34 => alu_div!(s::div32, s::sdiv32, imm),
            0x3c => alu_div!(s::div32, s::sdiv32, reg[sr]),
            0x44 => alu!(s::or32, imm),
            0x4c => alu!(s::or32, reg[sr]),
            0x54 => alu!(s::and32, imm),
            0x5c => alu!(s::and32, reg[sr]),
            0x64 => alu!(s::lsh32, imm),
            0x6c => alu!(s::lsh32, reg[sr]),
            0x74 => alu!(s::rsh32, imm),
            0x7c => alu!(s::rsh32, reg[sr]),
            0x84 => {
                reg[d] = s::neg32(reg[d]);
                pc = next;
            }
            0x94 => alu_div!(s::mod32, s::smod32, imm),
            0x9c => alu_div!(s::mod32, s::smod32, reg[sr]),
            0xa4 => alu!(s::xor32, imm),
            0xac => alu!(s::xor32, reg[sr]),
            0xb4 => {
                reg[d] = s::mov32(imm);
                pc = next;
            }
            0xbc => {
                let v = reg[sr];
                reg[d] = match insn.off {
                    8 => s::movsx32_8(v),
                    16 => s::movsx32_16(v),
                    _ => s::mov32(v),
                };
                pc = next;
            }
            0xc4 => alu!(s::arsh32, imm),
            0xcc => alu!(s::arsh32, reg[sr]),
            // le (to little-endian): a truncation on every supported ISA
            0xd4 => {
                reg[d] = match insn.imm {
                    16 => s::zext16(reg[d]),
                    32 => s::zext32(reg[d]),
                    _ => reg[d],
                };
                pc = next;
            }
            // be (to big-endian)
            0xdc => {
                reg[d] = match insn.imm {
                    16 => s::bswap16(reg[d]),
                    32 => s::bswap32(reg[d]),
                    _ => s::bswap64(reg[d]),
                };
                pc = next;
            }

            // ---- loads ----
            op::LDDW => {
                reg[d] = lddw_value(program, pc, insn);
                pc += 2;
            }
            0x61 => ldx!(4),
            0x69 => ldx!(2),
            0x71 => ldx!(1),
            0x79 => ldx!(8),
            // MEMSX: sign-extend the loaded value to 64 bits
            0x81 => ldx!(4, s::movsx64_32),
            0x89 => ldx!(2, s::movsx64_16),
            0x91 => ldx!(1, s::movsx64_8),

            // ---- stores ----
            0x62 => store!(4, imm),
            0x6a => store!(2, imm),
            0x72 => store!(1, imm),
            0x7a => store!(8, imm),
            0x63 => store!(4, reg[sr]),
            0x6b => store!(2, reg[sr]),
            0x73 => store!(1, reg[sr]),
            0x7b => store!(8, reg[sr]),

            // ---- atomics ----
            0xc3 | 0xdb => {
                let size: u64 = if insn.opcode == 0xdb { 8 } else { 4 };
                let addr = reg[d].wrapping_add(off);
                atomic_op(memory, table, &mut reg, addr, size, insn.imm, sr, pc)?;
                pc = next;
            }

            // ---- jumps ----
            op::JA => {
                let target = (next as i64 + insn.off as i64) as usize;
                back_edge!(target);
                pc = target;
            }
            op::JA32 => {
                let target = (next as i64 + insn.imm as i64) as usize;
                back_edge!(target);
                pc = target;
            }
            0x15 => jump!(s::jeq64, imm),
            0x1d => jump!(s::jeq64, reg[sr]),
            0x25 => jump!(s::jgt64, imm),
            0x2d => jump!(s::jgt64, reg[sr]),
            0x35 => jump!(s::jge64, imm),
            0x3d => jump!(s::jge64, reg[sr]),
            0x45 => jump!(s::jset64, imm),
            0x4d => jump!(s::jset64, reg[sr]),
            0x55 => jump!(s::jne64, imm),
            0x5d => jump!(s::jne64, reg[sr]),
            0x65 => jump!(s::jsgt64, imm),
            0x6d => jump!(s::jsgt64, reg[sr]),
            0x75 => jump!(s::jsge64, imm),
            0x7d => jump!(s::jsge64, reg[sr]),
            0xa5 => jump!(s::jlt64, imm),
            0xad => jump!(s::jlt64, reg[sr]),
            0xb5 => jump!(s::jle64, imm),
            0xbd => jump!(s::jle64, reg[sr]),
            0xc5 => jump!(s::jslt64, imm),
            0xcd => jump!(s::jslt64, reg[sr]),
            0xd5 => jump!(s::jsle64, imm),
            0xdd => jump!(s::jsle64, reg[sr]),
            0x16 => jump!(s::jeq32, imm),
            0x1e => jump!(s::jeq32, reg[sr]),
            0x26 => jump!(s::jgt32, imm),
            0x2e => jump!(s::jgt32, reg[sr]),
            0x36 => jump!(s::jge32, imm),
            0x3e => jump!(s::jge32, reg[sr]),
            0x46 => jump!(s::jset32, imm),
            0x4e => jump!(s::jset32, reg[sr]),
            0x56 => jump!(s::jne32, imm),
            0x5e => jump!(s::jne32, reg[sr]),
            0x66 => jump!(s::jsgt32, imm),
            0x6e => jump!(s::jsgt32, reg[sr]),
            0x76 => jump!(s::jsge32, imm),
            0x7e => jump!(s::jsge32, reg[sr]),
            0xa6 => jump!(s::jlt32, imm),
            0xae => jump!(s::jlt32, reg[sr]),
            0xb6 => jump!(s::jle32, imm),
            0xbe => jump!(s::jle32, reg[sr]),
            0xc6 => jump!(s::jslt32, imm),
            0xce => jump!(s::jslt32, reg[sr]),
            0xd6 => jump!(s::jsle32, imm),
            0xde => jump!(s::jsle32, reg[sr]),

            // ---- calls ----
            op::CALL if insn.src == pseudo::CALL_LOCAL => {
                let target = (next as i64 + insn.imm as i64) as usize;
                burn(&mut fuel_left, fuel::call_charge(program.len(), target), pc)?;
                calls.call(&mut reg, pc, next)?;
                pc = target;
            }
            op::CALL | op::CALLX => {
                let id = if insn.opcode == op::CALLX { reg[d] } else { insn.imm as u32 as u64 };
                call_helper(helpers.get(id), id, memory, &mut reg, pc)?;
                pc = next;
            }
            op::EXIT => match calls.exit(&mut reg) {
                None => return Ok(reg[0]),
                Some(return_pc) => pc = return_pc,
            },

            _ => return Err(RunError::InvalidInstruction { pc: pc as u32 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::helpers::Helper;
    use crate::ebpf::insn::Insn;
    use crate::ebpf::memory::Region;

    fn encode(insns: &[Insn], out: &mut [u8]) -> usize {
        for (chunk, insn) in out.chunks_exact_mut(8).zip(insns) {
            chunk.copy_from_slice(&insn.encode());
        }
        insns.len() * 8
    }

    fn add_one(_: &mut Memory, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        a + 1
    }
    const HELPERS: [Helper; 1] = [Helper { id: 7, func: add_one }];

    fn exec_with(insns: &[Insn], ctx: &mut [u8], regions: &mut [Region], config: &Config) -> Result<u64, RunError> {
        let mut buf = [0u8; 512];
        let n = encode(insns, &mut buf);
        let helpers = Helpers::new(&HELPERS);
        let program = Program::new(&buf[..n], |id| helpers.contains(id)).expect("valid test program");
        let mut stack = [0u8; FRAME_SIZE as usize * 3];
        let mut memory = Memory::new(&mut stack, ctx, regions);
        run(&program, &helpers, &mut memory, config)
    }

    fn exec(insns: &[Insn]) -> Result<u64, RunError> {
        exec_with(insns, &mut [0u8; 16], &mut [], &Config::default())
    }

    const EXIT: Insn = Insn::new(op::EXIT, 0, 0, 0, 0);
    fn mov(d: u8, imm: i32) -> Insn {
        Insn::new(0xb7, d, 0, 0, imm)
    }

    #[test]
    fn arithmetic_and_division_by_zero() {
        assert_eq!(exec(&[mov(0, 7), Insn::new(0x37, 0, 0, 0, 0), EXIT]), Ok(0)); // div64 by 0
        assert_eq!(exec(&[mov(0, 7), mov(1, 0), Insn::new(0x9f, 0, 1, 0, 0), EXIT]), Ok(7)); // mod64 by 0
        assert_eq!(exec(&[mov(0, -7), Insn::new(0x3c, 0, 1, 1, 0), EXIT]), Ok(0)); // sdiv32 by r1=0
        assert_eq!(exec(&[mov(0, -8), Insn::new(0x37, 0, 0, 1, 2), EXIT]), Ok(-4i64 as u64)); // sdiv64
        assert_eq!(exec(&[mov(0, -1), Insn::new(0xb4, 0, 0, 0, -1), EXIT]), Ok(0xffff_ffff)); // mov32
        assert_eq!(exec(&[mov(1, 0x80), Insn::new(0xbf, 0, 1, 8, 0), EXIT]), Ok(-128i64 as u64)); // movsx
        assert_eq!(
            exec(&[Insn::new(op::LDDW, 0, 0, 0, 0x5566_7788), Insn::new(0, 0, 0, 0, 0x1122_3344), EXIT]),
            Ok(0x1122_3344_5566_7788)
        );
        assert_eq!(exec(&[mov(0, 0x1234), Insn::new(0xdc, 0, 0, 0, 16), EXIT]), Ok(0x3412));
    }

    #[test]
    fn the_empty_table_allows_nothing_like_the_default_one() {
        assert_eq!(EMPTY_TABLE, [RegionEntry::default(); region::COUNT]);
    }

    #[test]
    fn fuel_exhaustion() {
        let config = Config { fuel: 1000, max_call_depth: 8 };
        assert_eq!(
            exec_with(&[Insn::new(op::JA, 0, 0, -1, 0)], &mut [], &mut [], &config),
            Err(RunError::OutOfFuel { pc: 0 })
        );
        // Forward jumps are free.
        let config = Config { fuel: 0, max_call_depth: 8 };
        assert_eq!(exec_with(&[Insn::new(op::JA, 0, 0, 0, 0), mov(0, 3), EXIT], &mut [], &mut [], &config), Ok(3));
        // A counted loop pays the two instructions of its body at every back edge (taken
        // or not).
        let prog = [mov(0, 0), Insn::new(0x07, 0, 0, 0, 1), Insn::new(0x55, 0, 0, -2, 10), EXIT];
        let ok = Config { fuel: 20, max_call_depth: 8 };
        assert_eq!(exec_with(&prog, &mut [], &mut [], &ok), Ok(10));
        let short = Config { fuel: 19, max_call_depth: 8 };
        assert_eq!(exec_with(&prog, &mut [], &mut [], &short), Err(RunError::OutOfFuel { pc: 2 }));
    }

    #[test]
    fn counting_counts_every_executed_instruction_once() {
        // mov; 10 x (add; jne); exit = 22, and an lddw (two slots) counts once.
        let prog = [mov(0, 0), Insn::new(0x07, 0, 0, 0, 1), Insn::new(0x55, 0, 0, -2, 10), EXIT];
        let lddw = [Insn::new(op::LDDW, 0, 0, 0, 5), Insn::new(0, 0, 0, 0, 0), EXIT];
        for (insns, want) in [(&prog[..], (Ok(10), 22)), (&lddw[..], (Ok(5), 2))] {
            let mut buf = [0u8; 64];
            let n = encode(insns, &mut buf);
            let program = Program::new(&buf[..n], |_| false).unwrap();
            let mut stack = [0u8; FRAME_SIZE as usize];
            let mut memory = Memory::new(&mut stack, &mut [], &mut []);
            let got = run_counting(&program, &Helpers::empty(), &mut memory, &Config::default());
            assert_eq!(got, want);
        }
        // An error still reports what ran before it: mov, then the faulting load.
        let fault = [mov(1, 8), Insn::new(0x79, 0, 1, 0, 0), EXIT];
        let mut buf = [0u8; 64];
        let n = encode(&fault, &mut buf);
        let program = Program::new(&buf[..n], |_| false).unwrap();
        let mut stack = [0u8; FRAME_SIZE as usize];
        let mut memory = Memory::new(&mut stack, &mut [], &mut []);
        let got = run_counting(&program, &Helpers::empty(), &mut memory, &Config::default());
        assert_eq!(got, (Err(RunError::MemoryFault { pc: 1, addr: 8 }), 2));
    }

    #[test]
    fn call_depth() {
        // Infinite recursion: call local -1 (itself... the call at pc 0 targets pc 0).
        let prog = [Insn::new(op::CALL, 0, 1, 0, -1), EXIT];
        let config = Config { fuel: u64::MAX, max_call_depth: 8 };
        // stack holds 3 frames: the third call (depth 2) needs 4 frames.
        assert_eq!(exec_with(&prog, &mut [], &mut [], &config), Err(RunError::CallDepthExceeded { pc: 0 }));
        let config = Config { fuel: u64::MAX, max_call_depth: 1 };
        assert_eq!(exec_with(&prog, &mut [], &mut [], &config), Err(RunError::CallDepthExceeded { pc: 0 }));
        // A call and a return restore r6 and r10, zero r1..r5, keep r0.
        let prog = [
            mov(6, 6),
            mov(1, 1),
            Insn::new(op::CALL, 0, 1, 0, 3), // -> pc 6
            Insn::new(0x0f, 0, 6, 0, 0),     // r0 += r6
            Insn::new(0x0f, 0, 1, 0, 0),     // r0 += r1 (zeroed)
            EXIT,
            mov(6, 100),
            Insn::new(0xbf, 0, 1, 0, 0), // r0 = r1 (still 1 in the callee)
            Insn::new(0x07, 0, 0, 0, 10),
            EXIT,
        ];
        assert_eq!(exec(&prog), Ok(17));
    }

    #[test]
    fn memory_fault_names_pc() {
        let prog = [mov(0, 0), Insn::new(0x79, 0, 1, 16, 0), EXIT];
        let mut ctx = [0u8; 16];
        let addr = (2 << 32) + 16;
        assert_eq!(exec_with(&prog, &mut ctx, &mut [], &Config::default()), Err(RunError::MemoryFault { pc: 1, addr }));
        // In-bounds load of the last byte works.
        let prog = [Insn::new(0x71, 0, 1, 15, 0), EXIT];
        let mut ctx = [0u8; 16];
        ctx[15] = 0xab;
        assert_eq!(exec_with(&prog, &mut ctx, &mut [], &Config::default()), Ok(0xab));
    }

    #[repr(align(8))]
    struct Aligned([u8; 16]);

    #[test]
    fn misaligned_atomic() {
        let prog = [mov(2, 1), Insn::new(0xdb, 1, 2, 4, 0), EXIT];
        let mut ctx = Aligned([0; 16]);
        let bytes = &mut ctx.0[..];
        let addr = (2 << 32) + 4;
        assert_eq!(
            exec_with(&prog, bytes, &mut [], &Config::default()),
            Err(RunError::MisalignedAtomic { pc: 1, addr })
        );
        // Aligned: fetch-add returns the old value, cmpxchg32 compares the low half of r0.
        let prog = [
            mov(2, 5),
            Insn::new(0xdb, 1, 2, 8, 0x01), // r2 = fetch_add(*(u64*)(r1+8), 5)
            Insn::new(0x79, 0, 1, 8, 0),    // r0 = *(u64*)(r1+8)
            Insn::new(0x0f, 0, 2, 0, 0),    // r0 += r2
            EXIT,
        ];
        let mut ctx = Aligned([0; 16]);
        ctx.0[8] = 3;
        let bytes = &mut ctx.0[..];
        assert_eq!(exec_with(&prog, bytes, &mut [], &Config::default()), Ok(3 + 8));
    }

    #[test]
    fn read_only_region_store_refused() {
        let ro = [0u8; 8];
        let mut regions = [Region::ReadOnly(&ro)];
        // The first granted region of a program without maps: region 3.
        let addr = 3 << 32;
        let lo = addr as u32 as i32;
        let hi = (addr >> 32) as u32 as i32;
        let prog = [
            Insn::new(op::LDDW, 3, 0, 0, lo),
            Insn::new(0, 0, 0, 0, hi),
            Insn::new(0x71, 0, 3, 7, 0), // load is fine
            Insn::new(0x72, 3, 0, 0, 1), // store is refused
            EXIT,
        ];
        assert_eq!(
            exec_with(&prog, &mut [], &mut regions, &Config::default()),
            Err(RunError::MemoryFault { pc: 3, addr })
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(exec(&[mov(1, 41), Insn::new(op::CALL, 0, 0, 0, 7), EXIT]), Ok(42));
        // r1..r5 are zeroed after a helper call.
        assert_eq!(exec(&[mov(1, 41), Insn::new(op::CALL, 0, 0, 0, 7), Insn::new(0xbf, 0, 1, 0, 0), EXIT]), Ok(0));
        assert_eq!(exec(&[mov(2, 7), mov(1, 1), Insn::new(op::CALLX, 2, 0, 0, 0), EXIT]), Ok(2));
        assert_eq!(
            exec(&[mov(2, 8), Insn::new(op::CALLX, 2, 0, 0, 0), EXIT]),
            Err(RunError::HelperNotFound { pc: 1, id: 8 })
        );
    }
}
