//! Validated eBPF bytecode (RFC 9669 §3–§5).
//!
//! [`Program::new`] checks every slot once: opcodes and field combinations, reserved fields,
//! register numbers, writes to the frame pointer, `lddw` structure, jump and call targets,
//! helper ids, shift immediates, and the control flow: functions (the entry at 0 and every
//! local-call target, each up to the next) end in `exit` or `ja`, jumps stay inside their
//! function, and every instruction is reachable from the entry. Everything downstream (the
//! interpreter, the JIT lowering) relies on these facts and does not re-check them.
//!
//! One forward pass over the slots (`Program::scan`) does the work. A 256-entry table
//! (`RULES`) accepts the common instructions with one mask test; anything it does not
//! accept (a field with a value-dependent rule, an unknown helper, a pseudo `lddw`, or an
//! error) goes to the exact per-instruction checks (`check_insn`, `check_lddw`), which
//! are the definition of the rules and say which error. On the way the pass:
//! - records jump and call targets; a target outside the program or on an `lddw` second
//!   slot (the slot before it has the `lddw` opcode) sends the program, at the end, to a
//!   search for the first such jump in pc order;
//! - checks each jump against the function starts known so far (see `Functions`); what it
//!   cannot see (a start revealed later) it notes, and the exact function sweep decides;
//! - proves reachability going forward (a slot is reached if the previous instruction is
//!   reached and falls into it, or a reached instruction jumps forward to it), marks the
//!   slots it cannot reach so, and revives them when a reached instruction jumps back to
//!   them (see `Scanner::revive`); the marks left at the end are the unreachable slots.
//!
//! When a program breaks several rules, the error is the one a check in this order finds
//! first: each slot on its own (in pc order), then jump and call targets (in pc order),
//! falling off the end, the function rules (in pc order), and the first unreachable slot.
//! (The validator before this design ran those checks as separate passes; a frozen copy in
//! `host-tests/src/validator_oracle.rs` is the reference the equivalence tests compare with.)
//!
//! Validation takes time linear in the program length and [`scratch_words`] words of
//! scratch (three bits per slot): from the stack for short programs, the heap with the
//! `alloc` feature, the stack for programs up to [`MAX_INSNS_ON_STACK`] slots without it,
//! or from the caller through [`Program::new_in`].

use super::bits::{bit, clear_bit, next_clear_bit, next_set_bit, set_bit, set_bits, take_bit};
use super::error::LoadError as Error;
use super::insn::{FRAME_POINTER, Insn, REGISTER_COUNT, alu, atomic, class, jmp, mem, op, pseudo, source};
use super::tables::ByteTable;
use tessera_stencils::abi::FRAME_SIZE;

/// The largest program accepted, in 8-byte slots.
pub const MAX_INSNS: usize = 1 << 20;

/// Without the `alloc` feature, [`Program::new`] validates programs up to this many slots
/// with scratch on the stack (about 1.5 KiB; Linux's classic instruction limit) and rejects
/// longer ones with [`Error::ProgramTooLong`]; [`Program::new_in`] takes any length.
pub const MAX_INSNS_ON_STACK: usize = 4096;

/// How deep revivals nest (see `Scanner::revive`, each level takes a little stack); more
/// are rare, and hand reachability to the exact walk.
const REVIVAL_DEPTH: usize = 8;

/// Programs up to this many slots take their scratch from the stack even with `alloc`
/// (26 words, or 5 up to 64 slots: cheaper than a heap round trip).
const SMALL_PROGRAM: usize = 512;

/// Scratch words (`u64`) [`Program::new_in`] needs for a program of `len` slots: three
/// bitmaps over the slots (jump targets, unreached slots, function starts; the first two
/// become the reached set and the bottom level of the worklist when reachability needs the
/// exact walk) and the two upper levels of the worklist.
pub const fn scratch_words(len: usize) -> usize {
    let (l0, l1, l2) = worklist_words(len);
    3 * l0 + l1 + l2
}

/// Bytecode that passed validation. Instruction indices (`pc`) count 8-byte slots, so the
/// second slot of `lddw` has its own index.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Program<'a> {
    bytes: &'a [u8],
    /// Whether the program makes local calls (a run then zeroes every stack frame, not
    /// only the top one).
    local_calls: bool,
    /// See [`Program::stack_reach`].
    stack_reach: Option<u16>,
}

impl<'a> Program<'a> {
    /// Validates `bytes`; `is_helper(id)` says whether `call id` (helper form) names a helper
    /// the embedder registers. Scratch comes from the stack (short programs, see also
    /// [`MAX_INSNS_ON_STACK`]) or the heap (`alloc`).
    pub fn new(bytes: &'a [u8], is_helper: impl Fn(i32) -> bool) -> Result<Program<'a>, Error> {
        Program::checked(bytes, &is_helper, Some(&|_| None))
    }

    /// Like [`Program::new`], and also accepts the pseudo loads of maps (Linux's encoding):
    /// `lddw` with src 1 (`BPF_PSEUDO_MAP_FD`: imm = map index, second imm 0) or src 2
    /// (`BPF_PSEUDO_MAP_VALUE`: imm = map index, second imm = byte offset in the value).
    /// `map_value_size(index)` gives the value size of map `index`, or `None` when there is
    /// no such map; a value offset must be below the value size.
    pub fn with_maps(
        bytes: &'a [u8],
        is_helper: impl Fn(i32) -> bool,
        map_value_size: impl Fn(u32) -> Option<u32>,
    ) -> Result<Program<'a>, Error> {
        Program::checked(bytes, &is_helper, Some(&map_value_size))
    }

    /// Validation with scratch from the stack or the heap.
    fn checked(
        bytes: &'a [u8],
        is_helper: &dyn Fn(i32) -> bool,
        maps: Option<MapValueSize>,
    ) -> Result<Program<'a>, Error> {
        let len = slot_count(bytes)?;
        if len <= 64 {
            let mut scratch = [0u64; scratch_words(64)];
            return Program::checked_in(bytes, is_helper, maps, &mut scratch, Scratch::Zeroed);
        }
        if len <= SMALL_PROGRAM {
            let mut scratch = [0u64; scratch_words(SMALL_PROGRAM)];
            return Program::checked_in(bytes, is_helper, maps, &mut scratch, Scratch::Zeroed);
        }
        #[cfg(feature = "alloc")]
        let mut scratch = alloc::vec![0u64; scratch_words(len)];
        #[cfg(not(feature = "alloc"))]
        let mut scratch = {
            if len > MAX_INSNS_ON_STACK {
                return Err(Error::ProgramTooLong { len: clamp_u32(len), max: MAX_INSNS_ON_STACK as u32 });
            }
            [0u64; scratch_words(MAX_INSNS_ON_STACK)]
        };
        Program::checked_in(bytes, is_helper, maps, &mut scratch, Scratch::Zeroed)
    }

    /// [`Program::new`] with caller-provided scratch of at least
    /// [`scratch_words`]`(bytes.len() / 8)` words (its contents do not matter).
    pub fn new_in(bytes: &'a [u8], is_helper: impl Fn(i32) -> bool, scratch: &mut [u64]) -> Result<Program<'a>, Error> {
        Program::checked_in(bytes, &is_helper, Some(&|_| None), scratch, Scratch::Dirty)
    }

    /// [`Program::with_maps`] with caller-provided scratch (see [`Program::new_in`]).
    pub fn with_maps_in(
        bytes: &'a [u8],
        is_helper: impl Fn(i32) -> bool,
        map_value_size: impl Fn(u32) -> Option<u32>,
        scratch: &mut [u64],
    ) -> Result<Program<'a>, Error> {
        Program::checked_in(bytes, &is_helper, Some(&map_value_size), scratch, Scratch::Dirty)
    }

    fn checked_in(
        bytes: &'a [u8],
        is_helper: &dyn Fn(i32) -> bool,
        maps: Option<MapValueSize>,
        scratch: &mut [u64],
        contents: Scratch,
    ) -> Result<Program<'a>, Error> {
        let len = slot_count(bytes)?;
        let needed = scratch_words(len);
        let scratch = scratch.get_mut(..needed).ok_or(Error::ScratchTooSmall { needed: clamp_u32(needed) })?;
        let mut program = Program { bytes, local_calls: false, stack_reach: None };
        program.local_calls = program.validate(is_helper, maps, scratch, contents)?;
        program.stack_reach = program.private_stack_reach();
        Ok(program)
    }

    /// Whether the program makes local calls.
    pub fn has_local_calls(&self) -> bool {
        self.local_calls
    }

    /// How many bytes below the top of its frame any function of the program can read or
    /// write, when the program can address the stack only as `r10` plus a constant inside
    /// the frame: every load, store and atomic has base `r10` and such an offset, and no
    /// helper is called (a helper may be given any address). `None` when a run may reach
    /// any stack byte. Runs zero only what a program can reach: a run never reads what
    /// another left.
    pub fn stack_reach(&self) -> Option<u16> {
        self.stack_reach
    }

    /// [`Program::stack_reach`], by one pass over a validated program.
    fn private_stack_reach(&self) -> Option<u16> {
        let mut reach = 0u64;
        for (_, insn) in self.iter() {
            let (base, size) = match insn.class() {
                class::LDX => (insn.src, insn.opcode & 0x18),
                class::ST | class::STX => (insn.dst, insn.opcode & 0x18),
                class::JMP | class::JMP32 if insn.opcode == op::CALLX => return None,
                class::JMP if insn.opcode == op::CALL && insn.src != pseudo::CALL_LOCAL => return None,
                _ => continue,
            };
            let size = match size {
                mem::B => 1,
                mem::H => 2,
                mem::W => 4,
                _ => 8,
            };
            let below = -(insn.off as i64);
            if base != FRAME_POINTER || below < size || below > FRAME_SIZE as i64 {
                return None;
            }
            reach = reach.max(below as u64);
        }
        u16::try_from(reach).ok()
    }

    /// Number of 8-byte slots.
    #[allow(clippy::len_without_is_empty)] // a validated program is never empty
    pub fn len(&self) -> usize {
        self.bytes.len() / Insn::SIZE
    }

    /// The bytecode, as given to [`Program::new`].
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Decodes slot `pc`; a default (all-zero) instruction when `pc` is out of range.
    #[inline]
    pub fn insn(&self, pc: usize) -> Insn {
        self.get(pc).unwrap_or_default()
    }

    /// Decodes slot `pc`, or `None` when `pc` is out of range.
    #[inline]
    pub fn get(&self, pc: usize) -> Option<Insn> {
        let start = pc.checked_mul(Insn::SIZE)?;
        let slot = self.bytes.get(start..start.checked_add(Insn::SIZE)?)?;
        let slot: [u8; 8] = slot.try_into().ok()?;
        Some(Insn::decode(slot))
    }

    /// The 64-bit immediate of the `lddw` whose first slot is `pc`:
    /// `(imm of slot pc + 1) << 32 | (imm of slot pc as u32)`.
    #[inline]
    pub fn lddw_value(&self, pc: usize) -> u64 {
        let lo = self.insn(pc).imm as u32 as u64;
        let hi = self.insn(pc.wrapping_add(1)).imm as u32 as u64;
        (hi << 32) | lo
    }

    /// The instructions in order, as `(pc, insn)`. The second slot of `lddw` is not yielded
    /// on its own (read it with [`Program::insn`]`(pc + 1)` or use [`Program::lddw_value`]),
    /// so every `pc` yielded is an instruction start.
    pub fn iter(&self) -> Iter<'a> {
        Iter { rest: self.bytes, pc: 0 }
    }

    /// Whether slot `pc` is the second slot of an `lddw` (valid only on validated programs).
    #[inline]
    pub fn is_lddw_second_slot(&self, pc: usize) -> bool {
        pc > 0 && self.insn(pc - 1).opcode == op::LDDW
    }

    /// The slots, whole (`bytes` holds a whole number of them once `slot_count` passed).
    fn slots(&self) -> &'a [[u8; Insn::SIZE]] {
        self.bytes.as_chunks().0
    }

    /// Every check, in the order that decides which error a program with several gets (see
    /// the module documentation); `Ok` says whether the program makes local calls.
    fn validate(
        &self,
        is_helper: &dyn Fn(i32) -> bool,
        maps: Option<MapValueSize>,
        scratch: &mut [u64],
        contents: Scratch,
    ) -> Result<bool, Error> {
        let slots = self.slots();
        let len = slots.len();
        let (l0, l1, _) = worklist_words(len);
        let too_small = || Error::ScratchTooSmall { needed: clamp_u32(scratch_words(len)) };
        let (bitmaps, upper) = scratch.split_at_mut_checked(3 * l0).ok_or_else(too_small)?;
        if contents == Scratch::Dirty {
            bitmaps.fill(0);
        }
        let (targets, rest) = bitmaps.split_at_mut(l0);
        let (unreached, starts) = rest.split_at_mut(l0);
        let scan = self.scan(is_helper, maps, Bitmaps { targets, unreached, starts })?;
        if !scan.targets_valid {
            // Some jump or call lands outside the program or on a second slot: report the
            // first in pc order.
            if let Some(error) = self.first_bad_target() {
                return Err(error);
            }
        }
        // The last instruction: the last slot, or the one before when that is an lddw.
        let last = match slots.get(len.wrapping_sub(2)) {
            Some(slot) if slot[0] == op::LDDW => len - 2,
            _ => len.wrapping_sub(1),
        };
        if slots.get(last).is_none_or(|slot| FLOW[slot[0]] & FALLS != 0) {
            return Err(Error::FallsOffEnd { pc: last as u32 });
        }
        if scan.local_calls && (scan.functions_suspect || self.falls_into_function(starts)) {
            self.check_functions(starts)?;
        }
        if scan.revival_overflow {
            upper.fill(0);
            let (pending1, pending2) = upper.split_at_mut_checked(l1).ok_or_else(too_small)?;
            self.check_reachable(targets, Worklist { levels: [unreached, pending1, pending2] })?;
        } else if scan.any_unreached
            && let Some(pc) = next_set_bit(unreached, 0)
        {
            return Err(Error::Unreachable { pc: pc as u32 });
        }
        Ok(scan.local_calls)
    }

    /// The forward pass: every slot on its own (the first error in pc order returns), and
    /// the facts the later checks need, recorded in `bitmaps`.
    ///
    /// Reachability going forward: a slot is reached if the previous instruction is reached
    /// and falls into it, or a reached earlier instruction jumps or calls forward to it (a
    /// bit in `targets` at or after pc; unreached instructions mark none). The others are
    /// marked in `unreached`, run by run, until a reached instruction jumps or calls back to
    /// one of them ([`Scanner::revive`]). Every edge out of a reached slot thus leads to a
    /// reached slot, and the marks left at the end are exactly the unreachable slots (unless
    /// a revival overflowed).
    fn scan(
        &self,
        is_helper: &dyn Fn(i32) -> bool,
        maps: Option<MapValueSize>,
        bitmaps: Bitmaps,
    ) -> Result<Scan, Error> {
        let mut scanner = Scanner {
            slots: self.slots(),
            is_helper,
            maps,
            bitmaps,
            scan: Scan {
                targets_valid: true,
                local_calls: false,
                any_unreached: false,
                revival_overflow: false,
                functions_suspect: false,
            },
            functions: Functions { start: 0, next: usize::MAX, max_target: 0, last: 0, suspect: false },
        };
        // The entry is a function start.
        set_bit(scanner.bitmaps.starts, 0);
        let slots = scanner.slots;
        let mut pc = 0;
        loop {
            // Reached slots: while instructions fall through, or an earlier jump lands
            // right after one that does not.
            let unreached_until = loop {
                let Some(slot) = slots.get(pc) else {
                    scanner.scan.functions_suspect = scanner.functions.suspect;
                    return Ok(scanner.scan);
                };
                let word = u64::from_le_bytes(*slot);
                let flow = scanner.check(pc, word)?;
                if flow == flow::NEXT {
                    pc += 1;
                    continue;
                }
                pc += scanner.control(pc, word, flow, true)?;
                if flow & FALLS == 0 && pc < slots.len() {
                    let next_target = next_set_bit(scanner.bitmaps.targets, pc).unwrap_or(usize::MAX);
                    if next_target != pc {
                        break next_target;
                    }
                }
            };
            // Unreached slots, up to the next forward target of a reached instruction
            // (unreached instructions mark no targets).
            let unreached_from = pc;
            let run_end = unreached_until.min(slots.len());
            while pc < run_end {
                let Some(slot) = slots.get(pc) else { break };
                let word = u64::from_le_bytes(*slot);
                let flow = scanner.check(pc, word)?;
                pc += if flow == flow::NEXT { 1 } else { scanner.control_unreached(pc, word, flow)? };
            }
            if unreached_from < slots.len() {
                set_bits(scanner.bitmaps.unreached, unreached_from, pc.min(slots.len()));
                scanner.scan.any_unreached = true;
            }
        }
    }

    /// The first jump or call (in pc order) that lands outside the program or on an `lddw`
    /// second slot, if any (on a program whose every slot is well formed).
    #[cold]
    fn first_bad_target(&self) -> Option<Error> {
        let len = self.len();
        self.iter().find_map(|(pc, insn)| {
            let target = branch_target(pc, insn)?;
            if target < 0 || target >= len as i64 {
                Some(Error::JumpOutOfRange { pc: pc as u32, target })
            } else if self.is_lddw_second_slot(target as usize) {
                Some(Error::JumpIntoLddw { pc: pc as u32, target: target as u32 })
            } else {
                None
            }
        })
    }

    /// Whether the last instruction before some function start (but the entry) falls
    /// through into it.
    fn falls_into_function(&self, starts: &[u64]) -> bool {
        let slots = self.slots();
        let mut start = 0;
        while let Some(next) = next_set_bit(starts, start + 1) {
            start = next;
            let last = if self.is_lddw_second_slot(start - 1) { start - 2 } else { start - 1 };
            if slots.get(last).is_some_and(|slot| FLOW[slot[0]] & FALLS != 0) {
                return true;
            }
        }
        false
    }

    /// Each function (the entry at 0 and every local-call target in `starts`, up to the next
    /// one) ends in `exit` or `ja`, and every jump stays in its function; the first
    /// violation in pc order (at one pc, a jump out of the function before falling into the
    /// next). Function by function, the slots are swept for jumps (an `lddw` second slot has
    /// opcode 0, no jump); the last instruction is the last slot or, after an `lddw`, the one
    /// before. Needs what the scan established: every slot is well formed and every target
    /// is an instruction start in the program.
    fn check_functions(&self, starts: &[u64]) -> Result<(), Error> {
        let slots = self.slots();
        let len = slots.len();
        let mut start = 0;
        while start < len {
            let end = next_set_bit(starts, start + 1).unwrap_or(len);
            let function = slots.get(start..end).unwrap_or_default();
            for (pc, slot) in (start..).zip(function) {
                let flow = FLOW[slot[0]];
                if flow & JUMP != 0 {
                    let target = pc as i64 + 1 + relative_target(u64::from_le_bytes(*slot), flow);
                    if target < start as i64 || target >= end as i64 {
                        return Err(Error::JumpOutOfFunction { pc: pc as u32, target: target as u32 });
                    }
                }
            }
            if end < len {
                let last = if self.is_lddw_second_slot(end - 1) { end - 2 } else { end - 1 };
                if slots.get(last).is_some_and(|slot| FLOW[slot[0]] & FALLS != 0) {
                    return Err(Error::FallsIntoFunction { pc: last as u32, function: end as u32 });
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Every instruction is reachable from the entry through fall-through, jumps and local
    /// calls: the exact walk from scratch, for programs where a revival overflowed (see
    /// [`Scanner::revive`]). From each slot taken off the worklist, the walk follows
    /// fall-through until it meets a reached slot or an `exit`/`ja`, putting only branch
    /// targets on the worklist; every slot is walked once and the worklist inserts and
    /// takes in constant time, so this is linear too. The second slot of a reached `lddw` is
    /// marked reached with it, so the first clear bit is the first unreachable instruction.
    #[cold]
    #[inline(never)]
    fn check_reachable(&self, reached: &mut [u64], mut pending: Worklist) -> Result<(), Error> {
        let slots = self.slots();
        let len = slots.len();
        reached.fill(0);
        pending.levels[0].fill(0);
        set_bit(reached, 0);
        pending.insert(0);
        while let Some(start) = pending.take() {
            let mut pc = start;
            while let Some(slot) = slots.get(pc) {
                let word = u64::from_le_bytes(*slot);
                let flow = FLOW[word as u8];
                if flow & LDDW != 0 {
                    set_bit(reached, pc + 1);
                }
                if (flow & JUMP != 0 || (flow & CALL != 0 && (word >> 12) as u8 & 0x0f == pseudo::CALL_LOCAL))
                    && let Some(target) = target(slots, pc, relative_target(word, flow))
                    && !bit(reached, target)
                {
                    set_bit(reached, target);
                    pending.insert(target);
                }
                let next = pc + if flow & LDDW != 0 { 2 } else { 1 };
                if flow & FALLS == 0 || next >= len || bit(reached, next) {
                    break;
                }
                set_bit(reached, next);
                pc = next;
            }
        }
        match next_clear_bit(reached, 0) {
            pc if pc < len => Err(Error::Unreachable { pc: pc as u32 }),
            _ => Ok(()),
        }
    }
}

/// What scratch holds when validation starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scratch {
    /// Zeros (a fresh array): no need to clear it.
    Zeroed,
    /// Anything (the caller's).
    Dirty,
}

/// The scan's bitmaps over the slots (cleared before it).
struct Bitmaps<'s> {
    /// The targets of the jumps and calls of reached instructions.
    targets: &'s mut [u64],
    /// The slots found unreached going forward.
    unreached: &'s mut [u64],
    /// Every local-call target (function starts but the entry).
    starts: &'s mut [u64],
}

/// The state of [`Program::scan`].
struct Scanner<'p, 'b> {
    slots: &'p [[u8; Insn::SIZE]],
    is_helper: &'p dyn Fn(i32) -> bool,
    maps: Option<MapValueSize<'p>>,
    bitmaps: Bitmaps<'b>,
    scan: Scan,
    functions: Functions,
}

/// The function rules as far as the scan can tell (see [`Program::check_functions`] for
/// the rules): each jump is checked against the function starts known when the scan meets
/// it, and what that cannot see is noted as `suspect`, for the exact sweep. A start found
/// later by a forward call (past the call) is crossed by an earlier jump only if that jump
/// goes at least as far (`max_target`); a start found by a backward call (at or before the
/// call) is not checked against the jumps before it at all.
struct Functions {
    /// The start of the function the scan is in (the last known start at or before the
    /// last jump checked).
    start: usize,
    /// The first known start after it (the program length if none).
    next: usize,
    /// The farthest target of any jump so far.
    max_target: usize,
    /// The last known start.
    last: usize,
    /// Some jump may leave its function: the exact sweep decides.
    suspect: bool,
}

impl Functions {
    /// A jump at `pc` to `target`, with local calls (function starts in `starts`) known.
    #[inline(always)]
    fn check_jump(&mut self, pc: usize, target: usize, starts: &[u64]) {
        while pc >= self.next {
            self.start = self.next;
            // Only up to the last known start (the bits after it are all clear): linear.
            self.next = match self.start < self.last {
                true => next_set_bit(starts, self.start + 1).unwrap_or(usize::MAX),
                false => usize::MAX,
            };
        }
        if target < self.start || target >= self.next {
            self.suspect = true;
        }
    }

    /// A local call at `pc` to `start`, a function start.
    #[inline(always)]
    fn discover(&mut self, pc: usize, start: usize, starts: &mut [u64]) {
        if bit(starts, start) {
            return;
        }
        set_bit(starts, start);
        self.last = self.last.max(start);
        if start <= pc || self.max_target >= start {
            self.suspect = true;
        } else if start < self.next {
            self.next = start;
        }
    }
}

impl Scanner<'_, '_> {
    /// The slot at `pc` (as a little-endian `u64`) on its own: the table's rule, or the
    /// exact checks when the rule does not accept it. Its flow.
    #[inline(always)]
    fn check(&self, pc: usize, word: u64) -> Result<u8, Error> {
        let opcode = word as u8;
        // The register byte's failed rules take the opcode's place in the slot.
        let failures = u64::from(REG_FAILS[(word >> 8) as u8]);
        if ((word ^ u64::from(opcode)) | failures) & MASK[opcode] != 0 {
            check_slot(self.slots, pc, self.is_helper, self.maps)?;
        }
        Ok(FLOW[opcode])
    }

    /// [`Scanner::control`] of an unreached instruction (out of line: the loop over
    /// unreached slots stays small).
    #[inline(never)]
    fn control_unreached(&mut self, pc: usize, word: u64, flow: u8) -> Result<usize, Error> {
        self.control(pc, word, flow, false)
    }

    /// What the instruction at `pc` (flow other than [`flow::NEXT`]) needs besides its slot
    /// rule: the second slot of `lddw`, the helper id of `call`, the target of a jump or a
    /// local call (marked in `targets` when the instruction is `reached`). The number of
    /// slots it takes.
    #[inline(always)]
    fn control(&mut self, pc: usize, word: u64, flow: u8, reached: bool) -> Result<usize, Error> {
        if flow & JUMP != 0 {
            // Only ja32 has its target in imm (calls are below).
            let relative =
                if word as u8 == op::JA32 { i64::from((word >> 32) as i32) } else { i64::from((word >> 16) as i16) };
            if let Some(target) = self.mark_target(pc, relative, reached) {
                self.functions.max_target = self.functions.max_target.max(target);
                if self.scan.local_calls {
                    self.functions.check_jump(pc, target, self.bitmaps.starts);
                }
            }
            return Ok(1);
        }
        if flow & LDDW != 0 {
            if self.slots.get(pc + 1).is_none_or(|second| u64::from_le_bytes(*second) as u32 != 0) {
                check_slot(self.slots, pc, self.is_helper, self.maps)?;
            }
            return Ok(2);
        }
        if flow & CALL != 0 {
            let imm = (word >> 32) as i32;
            if (word >> 12) as u8 & 0x0f == pseudo::CALL_LOCAL {
                if let Some(target) = self.mark_target(pc, i64::from(imm), reached) {
                    self.functions.discover(pc, target, self.bitmaps.starts);
                    self.scan.local_calls = true;
                }
            } else if !(self.is_helper)(imm) {
                check_slot(self.slots, pc, self.is_helper, self.maps)?;
            }
        }
        Ok(1)
    }

    /// The target of a jump or local call at `pc` by `relative` slots, marked in `targets`
    /// if the instruction is `reached`; `None` (and noted) when it is out of range or an
    /// `lddw` second slot.
    #[inline(always)]
    fn mark_target(&mut self, pc: usize, relative: i64, reached: bool) -> Option<usize> {
        let target = target(self.slots, pc, relative);
        match target {
            Some(target) if reached => {
                if target > pc {
                    set_bit(self.bitmaps.targets, target);
                } else if self.scan.any_unreached && bit(self.bitmaps.unreached, target) {
                    self.revive(target, pc, 0);
                }
            }
            Some(_) => {}
            None => self.scan.targets_valid = false,
        }
        target
    }

    /// A reached instruction at `pc` jumps or calls back to `first`, a slot marked
    /// unreached: `first` is reached after all, and so is everything it leads to. The walk
    /// follows fall-through from `first` over slots marked unreached until an `exit`/`ja`,
    /// clearing their marks; targets after `pc` are marked in `targets` for the scan to
    /// come, targets before it still marked unreached are revived in turn (`depth` revivals
    /// deep at most [`REVIVAL_DEPTH`]: beyond, `revival_overflow` hands reachability to the
    /// exact walk). Every slot is revived at most once, so all revivals together take linear
    /// time.
    #[cold]
    #[inline(never)]
    fn revive(&mut self, first: usize, pc: usize, depth: usize) {
        if self.scan.revival_overflow {
            return;
        }
        if depth == REVIVAL_DEPTH {
            self.scan.revival_overflow = true;
            return;
        }
        let slots = self.slots;
        clear_bit(self.bitmaps.unreached, first);
        let mut at = first;
        while let Some(slot) = slots.get(at) {
            let flow = FLOW[slot[0]];
            if flow != flow::NEXT {
                let word = u64::from_le_bytes(*slot);
                if (flow & JUMP != 0 || (flow & CALL != 0 && (word >> 12) as u8 & 0x0f == pseudo::CALL_LOCAL))
                    && let Some(target) = target(slots, at, relative_target(word, flow))
                {
                    if target > pc {
                        set_bit(self.bitmaps.targets, target);
                    } else if bit(self.bitmaps.unreached, target) {
                        self.revive(target, pc, depth + 1);
                    }
                }
                if flow & FALLS == 0 {
                    return;
                }
                if flow & LDDW != 0 {
                    // The second slot is marked with its run.
                    at += 1;
                    clear_bit(self.bitmaps.unreached, at);
                }
            }
            at += 1;
            if !take_bit(self.bitmaps.unreached, at) {
                return;
            }
        }
    }
}

/// What the scan found besides errors of single slots.
struct Scan {
    /// Every jump and call lands in the program and not on an `lddw` second slot.
    targets_valid: bool,
    local_calls: bool,
    /// Some slot is marked unreached (it may have been revived since).
    any_unreached: bool,
    /// Some jump may leave its function (see [`Functions`]).
    functions_suspect: bool,
    /// A revival had more pending slots than it keeps: the unreached marks are not exact,
    /// and [`Program::check_reachable`] decides.
    revival_overflow: bool,
}

/// How far a jump or call in slot `word` (flow `flow`) goes: `imm` or `off` slots past the
/// next one.
#[inline(always)]
fn relative_target(word: u64, flow: u8) -> i64 {
    if flow & IMM_TARGET != 0 { i64::from((word >> 32) as i32) } else { i64::from((word >> 16) as i16) }
}

/// The target of a jump or call at `pc` by `relative` slots, if it is a slot of the program
/// and not the second of an `lddw` (slot `target - 1` has the `lddw` opcode: when every
/// slot is well formed, only a first slot of `lddw` has it; the verdict counts only then).
#[inline(always)]
fn target(slots: &[[u8; Insn::SIZE]], pc: usize, relative: i64) -> Option<usize> {
    // pc + 1 + relative in u64: a negative sum wraps far above any slot (pc < 2^20 and
    // relative is an i32).
    let target = (pc as u64).wrapping_add(1).wrapping_add(relative as u64);
    if target >= slots.len() as u64 {
        return None;
    }
    let target = target as usize;
    let after_lddw = slots.get(target.wrapping_sub(1)).is_some_and(|s| s[0] == op::LDDW);
    (!after_lddw).then_some(target)
}

/// How an instruction passes control on ([`Rule::flow`], for the scan and the function
/// sweep): bits.
///
/// Control can go on to the next instruction (not `exit` or `ja`).
const FALLS: u8 = 1;
/// A jump to `pc + 1 + off` (with [`IMM_TARGET`], `+ imm`).
const JUMP: u8 = 2;
const IMM_TARGET: u8 = 4;
/// `call`: the local form (src 1) goes to `pc + 1 + imm`, a function start.
const CALL: u8 = 8;
/// `lddw`: two slots.
const LDDW: u8 = 16;

/// The flows of the instructions.
mod flow {
    use super::{CALL, FALLS, IMM_TARGET, JUMP, LDDW};
    pub const NEXT: u8 = FALLS;
    pub const LDDW_PAIR: u8 = FALLS | LDDW;
    pub const CALL_INSN: u8 = FALLS | CALL | IMM_TARGET;
    /// A conditional jump.
    pub const BRANCH: u8 = FALLS | JUMP;
    /// `ja`.
    pub const GOTO: u8 = JUMP;
    /// `ja32` (`gotol`).
    pub const GOTO32: u8 = JUMP | IMM_TARGET;
    pub const EXIT: u8 = 0;
}

/// What the scan accepts of an opcode without the exact checks: a slot (as a little-endian
/// `u64`: opcode, registers, off, imm from the low byte up) whose bits in `zero` are clear
/// and whose register byte breaks none of the rules in `regs` ([`REG_FAILS`]). A rule must never accept a
/// slot the exact checks reject (a test checks this over all opcodes and register bytes);
/// it may send acceptable slots to them.
#[derive(Clone, Copy)]
struct Rule {
    zero: u64,
    regs: u8,
    flow: u8,
}

/// Slot bits of each field.
const DST: u64 = 0x0f << 8;
const SRC: u64 = 0xf0 << 8;
const OFF: u64 = 0xffff << 16;
const IMM: u64 = 0xffff_ffff << 32;

/// Register rules (of the register byte: dst in the low nibble, src in the high one).
const DST_READ: u8 = 1;
const DST_WRITE: u8 = 2;
const SRC_READ: u8 = 4;
/// src is 0 or 1 (the helper and local forms of `call`).
const SRC_CALL: u8 = 8;
/// A rule every register byte breaks: the opcode's slots all go to the exact checks.
const EXACT: u8 = 0x80;

/// [`REG_FAILS`]`[byte]`: which register rules a register byte breaks.
// Built at compile time: an index out of bounds would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
static REG_FAILS: ByteTable<u8> = ByteTable({
    let mut fails = [EXACT; 256];
    let mut byte = 0;
    while byte < 256 {
        let (dst, src) = ((byte & 0x0f) as u8, (byte >> 4) as u8);
        if dst >= REGISTER_COUNT {
            fails[byte] |= DST_READ;
        }
        if dst >= REGISTER_COUNT || dst == FRAME_POINTER {
            fails[byte] |= DST_WRITE;
        }
        if src >= REGISTER_COUNT {
            fails[byte] |= SRC_READ;
        }
        if src != pseudo::CALL_HELPER && src != pseudo::CALL_LOCAL {
            fails[byte] |= SRC_CALL;
        }
        byte += 1;
    }
    fails
});
/// The scan's rule for every opcode. What is left out goes to the exact checks: unknown
/// opcodes, `END` (imm 16/32/64), signed division and sign-extending moves (off 1, 8, 16,
/// 32), atomics (imm names the operation), unknown helpers and pseudo `lddw`s (maps).
// Built at compile time: an index out of bounds would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
const RULES: [Rule; 256] = {
    const fn rule(zero: u64, regs: u8, flow: u8) -> Rule {
        Rule { zero, regs, flow }
    }
    /// Immediate bits at and above `width` (a power of two): the immediate is in `0..width`.
    const fn imm_below(width: u64) -> u64 {
        IMM & !((width - 1) << 32)
    }
    let mut rules = [rule(0, EXACT, flow::NEXT); 256];
    let mut code = 0;
    while code < 0x100 {
        let c = code as u8;
        if matches!(
            c,
            alu::ADD
                | alu::SUB
                | alu::MUL
                | alu::DIV
                | alu::OR
                | alu::AND
                | alu::LSH
                | alu::RSH
                | alu::MOD
                | alu::XOR
                | alu::MOV
                | alu::ARSH
        ) {
            let shift = matches!(c, alu::LSH | alu::RSH | alu::ARSH);
            let (k32, k64) = if shift { (imm_below(32), imm_below(64)) } else { (0, 0) };
            rules[(class::ALU | source::K | c) as usize] = rule(SRC | OFF | k32, DST_WRITE, flow::NEXT);
            rules[(class::ALU64 | source::K | c) as usize] = rule(SRC | OFF | k64, DST_WRITE, flow::NEXT);
            rules[(class::ALU | source::X | c) as usize] = rule(IMM | OFF, DST_WRITE | SRC_READ, flow::NEXT);
            rules[(class::ALU64 | source::X | c) as usize] = rule(IMM | OFF, DST_WRITE | SRC_READ, flow::NEXT);
        }
        if c == alu::NEG {
            rules[(class::ALU | alu::NEG) as usize] = rule(SRC | OFF | IMM, DST_WRITE, flow::NEXT);
            rules[(class::ALU64 | alu::NEG) as usize] = rule(SRC | OFF | IMM, DST_WRITE, flow::NEXT);
        }
        if matches!(
            c,
            jmp::JEQ
                | jmp::JGT
                | jmp::JGE
                | jmp::JSET
                | jmp::JNE
                | jmp::JSGT
                | jmp::JSGE
                | jmp::JLT
                | jmp::JLE
                | jmp::JSLT
                | jmp::JSLE
        ) {
            rules[(class::JMP | source::K | c) as usize] = rule(SRC, DST_READ, flow::BRANCH);
            rules[(class::JMP32 | source::K | c) as usize] = rule(SRC, DST_READ, flow::BRANCH);
            rules[(class::JMP | source::X | c) as usize] = rule(IMM, DST_READ | SRC_READ, flow::BRANCH);
            rules[(class::JMP32 | source::X | c) as usize] = rule(IMM, DST_READ | SRC_READ, flow::BRANCH);
        }
        code += 0x10;
    }
    rules[op::JA as usize] = rule(DST | SRC | IMM, 0, flow::GOTO);
    rules[op::JA32 as usize] = rule(DST | SRC | OFF, 0, flow::GOTO32);
    rules[op::EXIT as usize] = rule(!0xff, 0, flow::EXIT);
    // Helper ids are the embedder's to judge: the scan asks, and leaves a refusal to the
    // exact checks.
    rules[op::CALL as usize] = rule(DST | OFF, SRC_CALL, flow::CALL_INSN);
    rules[op::CALLX as usize] = rule(SRC | OFF | IMM, DST_READ, flow::NEXT);
    rules[op::LDDW as usize] = rule(SRC | OFF, DST_WRITE, flow::LDDW_PAIR);
    let mut size = 0;
    while size < 4 {
        let s = (size << 3) as u8;
        rules[(class::LDX | mem::MEM | s) as usize] = rule(IMM, DST_WRITE | SRC_READ, flow::NEXT);
        if s != mem::DW {
            rules[(class::LDX | mem::MEMSX | s) as usize] = rule(IMM, DST_WRITE | SRC_READ, flow::NEXT);
        }
        rules[(class::ST | mem::MEM | s) as usize] = rule(SRC, DST_READ, flow::NEXT);
        rules[(class::STX | mem::MEM | s) as usize] = rule(IMM, DST_READ | SRC_READ, flow::NEXT);
        size += 1;
    }
    rules
};

/// [`RULES`] by field, one table each (cheaper to index). `MASK[opcode]`: the bits of the
/// slot that must be clear, and in the low byte (the opcode's, which no rule masks) the
/// register rules.
// Built at compile time: an index out of bounds would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
static MASK: ByteTable<u64> = ByteTable({
    let mut mask = [0; 256];
    let mut opcode = 0;
    while opcode < 256 {
        assert!(RULES[opcode].zero & 0xff == 0);
        mask[opcode] = RULES[opcode].zero | RULES[opcode].regs as u64;
        opcode += 1;
    }
    mask
});
// Built at compile time: an index out of bounds would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
static FLOW: ByteTable<u8> = ByteTable({
    let mut flow = [0; 256];
    let mut opcode = 0;
    while opcode < 256 {
        flow[opcode] = RULES[opcode].flow;
        opcode += 1;
    }
    flow
});

fn slot_count(bytes: &[u8]) -> Result<usize, Error> {
    if !bytes.len().is_multiple_of(Insn::SIZE) {
        return Err(Error::BytecodeLength { len: clamp_u32(bytes.len()) });
    }
    let len = bytes.len() / Insn::SIZE;
    if len == 0 {
        return Err(Error::EmptyProgram);
    }
    if len > MAX_INSNS {
        return Err(Error::ProgramTooLong { len: clamp_u32(len), max: MAX_INSNS as u32 });
    }
    Ok(len)
}

/// Words of the three levels of a [`Worklist`] over `len` slots.
const fn worklist_words(len: usize) -> (usize, usize, usize) {
    let l0 = len.div_ceil(64);
    let l1 = l0.div_ceil(64);
    (l0, l1, l1.div_ceil(64))
}

/// A set of slots with constant-time insert and take: a bitmap (level 0) under a bitmap of
/// its non-zero words (level 1) under one of those (level 2). At most 2^20 slots make at
/// most 4 words at level 2, the only level scanned.
struct Worklist<'s> {
    levels: [&'s mut [u64]; 3],
}

impl Worklist<'_> {
    fn insert(&mut self, slot: usize) {
        let mut i = slot;
        for level in self.levels.iter_mut() {
            set_bit(level, i);
            i /= 64;
        }
    }

    /// Removes and returns the lowest slot in the set.
    fn take(&mut self) -> Option<usize> {
        let [l0, l1, l2] = &mut self.levels;
        // Descend: a set bit at one level names a non-zero word of the level below.
        let mut i = next_set_bit(l2, 0)?;
        for level in [&**l1, &**l0] {
            let word = *level.get(i)?;
            i = i * 64 + word.trailing_zeros() as usize;
        }
        let slot = i;
        // Clear upwards while words become empty.
        for level in [&mut **l0, &mut **l1, &mut **l2] {
            let word = level.get_mut(i / 64)?;
            *word &= !(1 << (i % 64));
            if *word != 0 {
                break;
            }
            i /= 64;
        }
        Some(slot)
    }
}

/// Iterator over the instructions of a [`Program`] (see [`Program::iter`]).
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    /// The slots not yet visited.
    rest: &'a [u8],
    pc: usize,
}

impl Iterator for Iter<'_> {
    type Item = (usize, Insn);

    #[inline]
    fn next(&mut self) -> Option<(usize, Insn)> {
        let pc = self.pc;
        let (slot, rest) = self.rest.split_first_chunk::<{ Insn::SIZE }>()?;
        let insn = Insn::decode(*slot);
        if insn.opcode == op::LDDW {
            // The second slot is not an instruction of its own.
            self.rest = rest.get(Insn::SIZE..).unwrap_or_default();
            self.pc = pc + 2;
        } else {
            self.rest = rest;
            self.pc = pc + 1;
        }
        Some((pc, insn))
    }
}

impl<'a> IntoIterator for &Program<'a> {
    type Item = (usize, Insn);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The slot a jump or local call at `pc` may transfer control to (not for `exit`/helpers).
/// Valid on any instruction; `None` for instructions that do not branch.
pub fn branch_target(pc: usize, insn: Insn) -> Option<i64> {
    let pc = pc as i64;
    match insn.class() {
        class::JMP => match insn.opcode & 0xf0 {
            jmp::CALL if insn.opcode == op::CALL && insn.src == pseudo::CALL_LOCAL => Some(pc + insn.imm as i64 + 1),
            jmp::CALL | jmp::EXIT => None,
            _ => Some(pc + insn.off as i64 + 1),
        },
        class::JMP32 => match insn.opcode & 0xf0 {
            jmp::JA => Some(pc + insn.imm as i64 + 1),
            jmp::CALL | jmp::EXIT => None,
            _ => Some(pc + insn.off as i64 + 1),
        },
        _ => None,
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn unknown(pc: usize, insn: Insn) -> Error {
    Error::UnknownOpcode { pc: pc as u32, opcode: insn.opcode }
}

fn reserved(pc: usize) -> Error {
    Error::ReservedField { pc: pc as u32 }
}

/// The second operand of ALU and jump instructions: with the X bit a register and a zero
/// imm; without it (an immediate) src must be zero.
fn source_operand(pc: usize, insn: &Insn, x: bool) -> Result<(), Error> {
    if x {
        if insn.imm != 0 {
            return Err(reserved(pc));
        }
        reg(pc, insn.src)?;
    } else if insn.src != 0 {
        return Err(reserved(pc));
    }
    Ok(())
}

/// A register operand must be r0..r10.
fn reg(pc: usize, r: u8) -> Result<(), Error> {
    if r >= REGISTER_COUNT { Err(Error::BadRegister { pc: pc as u32, reg: r }) } else { Ok(()) }
}

/// A destination register must be r0..r9.
fn dst_reg(pc: usize, r: u8) -> Result<(), Error> {
    reg(pc, r)?;
    if r == FRAME_POINTER { Err(Error::FrameRegisterWrite { pc: pc as u32 }) } else { Ok(()) }
}

/// The value size of map `index`, `None` when there is no such map.
type MapValueSize<'m> = &'m dyn Fn(u32) -> Option<u32>;

/// The exact checks of the instruction at slot `pc`, for what the scan's table does not
/// accept on its own.
#[cold]
#[inline(never)]
fn check_slot(
    slots: &[[u8; Insn::SIZE]],
    pc: usize,
    is_helper: &dyn Fn(i32) -> bool,
    maps: Option<MapValueSize>,
) -> Result<(), Error> {
    let insn = slots.get(pc).map(|slot| Insn::decode(*slot)).unwrap_or_default();
    if insn.opcode == op::LDDW {
        check_lddw(pc, insn, slots.get(pc + 1).map(|slot| Insn::decode(*slot)), maps)
    } else {
        check_insn(pc, insn, is_helper)
    }
}

/// The exact checks of an `lddw` at `pc` whose second slot (if the program has one) is
/// `second`.
fn check_lddw(pc: usize, insn: Insn, second: Option<Insn>, maps: Option<MapValueSize>) -> Result<(), Error> {
    let Some(second) = second else {
        return Err(Error::TruncatedLddw { pc: pc as u32 });
    };
    match (insn.src, maps) {
        (pseudo::LDDW_IMM64, _) => {}
        (pseudo::LDDW_MAP_FD | pseudo::LDDW_MAP_VALUE, Some(value_size)) => {
            let map = insn.imm as u32;
            let size = value_size(map).ok_or(Error::UnknownMap { pc: pc as u32, map })?;
            let offset = second.imm as u32;
            if insn.src == pseudo::LDDW_MAP_FD && offset != 0 {
                return Err(Error::BadLddwSecondSlot { pc: (pc + 1) as u32 });
            }
            if insn.src == pseudo::LDDW_MAP_VALUE && offset >= size {
                return Err(Error::MapValueOffset { pc: pc as u32, map, offset });
            }
        }
        // Other pseudo loads (BTF ids, map indices by fd array...) are not supported, nor
        // map loads where the embedder gives no maps.
        _ => return Err(unknown(pc, insn)),
    }
    if insn.off != 0 {
        return Err(reserved(pc));
    }
    dst_reg(pc, insn.dst)?;
    if second.opcode != 0 || second.dst != 0 || second.src != 0 || second.off != 0 {
        return Err(Error::BadLddwSecondSlot { pc: (pc + 1) as u32 });
    }
    Ok(())
}

/// The exact checks of the instruction at `pc` (not `lddw`): the rules of every opcode, and
/// which error a slot that breaks them gets.
fn check_insn(pc: usize, insn: Insn, is_helper: &dyn Fn(i32) -> bool) -> Result<(), Error> {
    match insn.class() {
        class::ALU | class::ALU64 => check_alu(pc, insn),
        class::JMP | class::JMP32 => check_jmp(pc, insn, is_helper),
        class::LDX => check_ldx(pc, insn),
        class::ST => check_st(pc, insn),
        class::STX => check_stx(pc, insn),
        // class::LD: only lddw (handled by the caller); LD_ABS/LD_IND are not supported.
        _ => Err(unknown(pc, insn)),
    }
}

fn check_alu(pc: usize, insn: Insn) -> Result<(), Error> {
    let is64 = insn.class() == class::ALU64;
    let x = insn.opcode & source::X != 0;
    let code = insn.opcode & 0xf0;
    match code {
        alu::NEG => {
            if x {
                return Err(unknown(pc, insn));
            }
            if insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                return Err(reserved(pc));
            }
        }
        alu::END => {
            // ALU64 END is bswap and has no source variant.
            if is64 && x {
                return Err(unknown(pc, insn));
            }
            if !matches!(insn.imm, 16 | 32 | 64) {
                return Err(unknown(pc, insn));
            }
            if insn.src != 0 || insn.off != 0 {
                return Err(reserved(pc));
            }
        }
        alu::ADD
        | alu::SUB
        | alu::MUL
        | alu::DIV
        | alu::OR
        | alu::AND
        | alu::LSH
        | alu::RSH
        | alu::MOD
        | alu::XOR
        | alu::MOV
        | alu::ARSH => {
            source_operand(pc, &insn, x)?;
            match code {
                alu::DIV | alu::MOD => {
                    // off 1: sdiv / smod
                    if insn.off != 0 && insn.off != 1 {
                        return Err(unknown(pc, insn));
                    }
                }
                alu::MOV => {
                    // off 8/16/32 with a register source: movsx (32 only for ALU64)
                    let ok = match insn.off {
                        0 => true,
                        8 | 16 => x,
                        32 => x && is64,
                        _ => false,
                    };
                    if !ok {
                        return Err(if x { unknown(pc, insn) } else { reserved(pc) });
                    }
                }
                _ => {
                    if insn.off != 0 {
                        return Err(reserved(pc));
                    }
                }
            }
            // RFC 9669 masks the shift amount, but an immediate outside the operand width is
            // a compiler bug the Linux verifier rejects ("invalid shift").
            let width: u8 = if is64 { 64 } else { 32 };
            if matches!(code, alu::LSH | alu::RSH | alu::ARSH) && !x && !(0..i32::from(width)).contains(&insn.imm) {
                return Err(Error::ShiftOutOfRange { pc: pc as u32, amount: insn.imm, width });
            }
        }
        _ => return Err(unknown(pc, insn)),
    }
    dst_reg(pc, insn.dst)
}

fn check_jmp(pc: usize, insn: Insn, is_helper: &dyn Fn(i32) -> bool) -> Result<(), Error> {
    let is32 = insn.class() == class::JMP32;
    let x = insn.opcode & source::X != 0;
    match insn.opcode & 0xf0 {
        jmp::JA => {
            if x {
                return Err(unknown(pc, insn));
            }
            // ja: target in off; ja32 (gotol): target in imm.
            let unused = if is32 { insn.off as i32 } else { insn.imm };
            if insn.dst != 0 || insn.src != 0 || unused != 0 {
                return Err(reserved(pc));
            }
        }
        jmp::CALL => {
            if is32 {
                return Err(unknown(pc, insn));
            }
            if x {
                // callx: the helper id is in register dst.
                if insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                    return Err(reserved(pc));
                }
                reg(pc, insn.dst)?;
            } else {
                if insn.src != pseudo::CALL_HELPER && insn.src != pseudo::CALL_LOCAL {
                    return Err(unknown(pc, insn));
                }
                if insn.dst != 0 || insn.off != 0 {
                    return Err(reserved(pc));
                }
                if insn.src == pseudo::CALL_HELPER && !is_helper(insn.imm) {
                    return Err(Error::UnknownHelper { pc: pc as u32, id: insn.imm });
                }
            }
        }
        jmp::EXIT => {
            if is32 || x {
                return Err(unknown(pc, insn));
            }
            if insn.dst != 0 || insn.src != 0 || insn.off != 0 || insn.imm != 0 {
                return Err(reserved(pc));
            }
        }
        jmp::JEQ
        | jmp::JGT
        | jmp::JGE
        | jmp::JSET
        | jmp::JNE
        | jmp::JSGT
        | jmp::JSGE
        | jmp::JLT
        | jmp::JLE
        | jmp::JSLT
        | jmp::JSLE => {
            source_operand(pc, &insn, x)?;
            reg(pc, insn.dst)?;
        }
        _ => return Err(unknown(pc, insn)),
    }
    Ok(())
}

fn check_ldx(pc: usize, insn: Insn) -> Result<(), Error> {
    let size = insn.opcode & 0x18;
    match insn.opcode & 0xe0 {
        mem::MEM => {}
        mem::MEMSX if size != mem::DW => {}
        _ => return Err(unknown(pc, insn)),
    }
    if insn.imm != 0 {
        return Err(reserved(pc));
    }
    reg(pc, insn.src)?;
    dst_reg(pc, insn.dst)
}

fn check_st(pc: usize, insn: Insn) -> Result<(), Error> {
    if insn.opcode & 0xe0 != mem::MEM {
        return Err(unknown(pc, insn));
    }
    if insn.src != 0 {
        return Err(reserved(pc));
    }
    reg(pc, insn.dst)
}

fn check_stx(pc: usize, insn: Insn) -> Result<(), Error> {
    let size = insn.opcode & 0x18;
    match insn.opcode & 0xe0 {
        mem::MEM => {
            if insn.imm != 0 {
                return Err(reserved(pc));
            }
        }
        mem::ATOMIC => {
            if size != mem::W && size != mem::DW {
                return Err(unknown(pc, insn));
            }
            const ADD_FETCH: i32 = atomic::ADD | atomic::FETCH;
            const OR_FETCH: i32 = atomic::OR | atomic::FETCH;
            const AND_FETCH: i32 = atomic::AND | atomic::FETCH;
            const XOR_FETCH: i32 = atomic::XOR | atomic::FETCH;
            let writes_src = match insn.imm {
                atomic::ADD | atomic::OR | atomic::AND | atomic::XOR | atomic::CMPXCHG => false,
                ADD_FETCH | OR_FETCH | AND_FETCH | XOR_FETCH | atomic::XCHG => true,
                _ => return Err(unknown(pc, insn)),
            };
            reg(pc, insn.dst)?;
            if writes_src {
                dst_reg(pc, insn.src)?;
            }
        }
        _ => return Err(unknown(pc, insn)),
    }
    reg(pc, insn.dst)?;
    reg(pc, insn.src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insns: &[Insn]) -> [u8; 256] {
        let mut out = [0u8; 256];
        for (chunk, insn) in out.chunks_exact_mut(8).zip(insns) {
            chunk.copy_from_slice(&insn.encode());
        }
        out
    }

    fn check(insns: &[Insn]) -> Result<(), Error> {
        let b = bytes(insns);
        Program::new(&b[..insns.len() * 8], |id| id == 1).map(|_| ())
    }

    const EXIT: Insn = Insn::new(op::EXIT, 0, 0, 0, 0);
    const MOV64_K: u8 = class::ALU64 | alu::MOV | source::K;
    const MOV64_X: u8 = class::ALU64 | alu::MOV | source::X;

    #[test]
    fn accepts_minimal() {
        assert_eq!(check(&[EXIT]), Ok(()));
        assert_eq!(check(&[Insn::new(MOV64_K, 0, 0, 0, 7), EXIT]), Ok(()));
    }

    #[test]
    fn length_errors() {
        assert_eq!(Program::new(&[0u8; 7], |_| true).err(), Some(Error::BytecodeLength { len: 7 }));
        assert_eq!(Program::new(&[], |_| true).err(), Some(Error::EmptyProgram));
    }

    #[test]
    fn too_long() {
        // Length is checked before any slot is decoded, so zeros suffice.
        extern crate std;
        let big = std::vec![0u8; (MAX_INSNS + 1) * 8];
        assert_eq!(
            Program::new(&big, |_| true).err(),
            Some(Error::ProgramTooLong { len: (MAX_INSNS + 1) as u32, max: MAX_INSNS as u32 })
        );
    }

    #[test]
    fn unknown_opcodes() {
        let cases = [
            Insn::new(0xd4, 0, 0, 0, 8),     // le8
            Insn::new(0xdf, 0, 0, 0, 16),    // ALU64 END with X
            Insn::new(0x20, 0, 0, 0, 0),     // LD_ABS
            Insn::new(0x40, 0, 0, 0, 0),     // LD_IND
            Insn::new(0xc3, 1, 2, 0, 0x10),  // bad atomic op
            Insn::new(0xd3, 1, 2, 0, 0),     // atomic byte size
            Insn::new(0x93, 1, 2, 0, 0),     // MEMSX on STX
            Insn::new(0x92, 1, 0, 0, 0),     // MEMSX on ST
            Insn::new(0x99, 1, 2, 0, 0),     // ldxsdw
            Insn::new(0x3f, 1, 2, 2, 0),     // sdiv offset 2
            Insn::new(MOV64_X, 1, 2, 7, 0),  // movsx offset 7
            Insn::new(0xbc, 1, 2, 32, 0),    // movsx32 offset 32
            Insn::new(op::CALL, 0, 2, 0, 1), // call BTF
            Insn::new(0xe7, 0, 0, 0, 0),     // ALU op 0xe
            Insn::new(0x8c, 0, 0, 0, 0),     // neg with X
            Insn::new(0x96, 0, 0, 0, 0),     // JMP32 exit
            Insn::new(0x0d, 0, 0, 0, 0),     // ja with X
        ];
        for insn in cases {
            assert_eq!(check(&[insn, EXIT]), Err(Error::UnknownOpcode { pc: 0, opcode: insn.opcode }), "{insn:?}");
        }
        // lddw of a map (src 1) with no maps given
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 1, 0, 0), Insn::default(), EXIT]),
            Err(Error::UnknownMap { pc: 0, map: 0 })
        );
    }

    #[test]
    fn reserved_fields() {
        let cases = [
            Insn::new(0x07, 0, 0, 1, 1),      // add64 imm, offset
            Insn::new(0x0f, 0, 1, 0, 1),      // add64 reg, imm
            Insn::new(MOV64_K, 0, 0, 8, 1),   // movsx needs a register source
            Insn::new(0x87, 0, 0, 0, 1),      // neg64 imm
            Insn::new(0xdc, 0, 1, 0, 16),     // be16 src
            Insn::new(op::JA, 1, 0, 0, 0),    // ja dst
            Insn::new(op::JA32, 0, 0, 1, 0),  // gotol off
            Insn::new(op::CALL, 1, 0, 0, 1),  // call dst
            Insn::new(op::CALLX, 1, 1, 0, 0), // callx src
            Insn::new(op::EXIT, 0, 0, 0, 1),
            Insn::new(0x1d, 0, 1, 0, 1),   // jeq reg, imm
            Insn::new(0x15, 0, 1, 0, 0),   // jeq imm, src
            Insn::new(0x79, 0, 10, -8, 1), // ldxdw imm
            Insn::new(0x7a, 10, 1, -8, 0), // stdw src
            Insn::new(0x7b, 10, 0, -8, 1), // stxdw imm
        ];
        for insn in cases {
            assert_eq!(check(&[insn, EXIT]), Err(Error::ReservedField { pc: 0 }), "{insn:?}");
        }
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 0, 1, 0), Insn::default(), EXIT]),
            Err(Error::ReservedField { pc: 0 })
        );
    }

    #[test]
    fn registers() {
        assert_eq!(check(&[Insn::new(MOV64_K, 11, 0, 0, 0), EXIT]), Err(Error::BadRegister { pc: 0, reg: 11 }));
        assert_eq!(check(&[Insn::new(MOV64_X, 0, 12, 0, 0), EXIT]), Err(Error::BadRegister { pc: 0, reg: 12 }));
        assert_eq!(check(&[Insn::new(op::CALLX, 15, 0, 0, 0), EXIT]), Err(Error::BadRegister { pc: 0, reg: 15 }));
        for insn in [
            Insn::new(MOV64_K, 10, 0, 0, 0),
            Insn::new(0x79, 10, 1, 0, 0),    // ldxdw r10
            Insn::new(0xdb, 1, 10, 0, 0x01), // fetch add into r10
            Insn::new(0xdb, 1, 10, 0, 0xe1), // xchg into r10
            Insn::new(0xd4, 10, 0, 0, 16),   // le16 r10
        ] {
            assert_eq!(check(&[insn, EXIT]), Err(Error::FrameRegisterWrite { pc: 0 }), "{insn:?}");
        }
        assert_eq!(
            check(&[Insn::new(op::LDDW, 10, 0, 0, 0), Insn::default(), EXIT]),
            Err(Error::FrameRegisterWrite { pc: 0 })
        );
        // cmpxchg writes r0, not src; reading r10 is fine.
        assert_eq!(check(&[Insn::new(0xdb, 1, 10, 0, 0xf1), EXIT]), Ok(()));
        assert_eq!(check(&[Insn::new(MOV64_X, 1, 10, 0, 0), EXIT]), Ok(()));
    }

    #[test]
    fn jumps() {
        assert_eq!(check(&[Insn::new(op::JA, 0, 0, 5, 0), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: 6 }));
        assert_eq!(check(&[Insn::new(op::JA, 0, 0, -2, 0), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: -1 }));
        assert_eq!(check(&[Insn::new(op::JA32, 0, 0, 0, -3), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: -2 }));
        assert_eq!(check(&[Insn::new(op::CALL, 0, 1, 0, 9), EXIT]), Err(Error::JumpOutOfRange { pc: 0, target: 10 }));
        assert_eq!(
            check(&[Insn::new(0x15, 1, 0, 1, 0), Insn::new(op::LDDW, 0, 0, 0, 1), Insn::default(), EXIT]),
            Err(Error::JumpIntoLddw { pc: 0, target: 2 })
        );
        // ja -1 (an infinite loop) is a valid program.
        assert_eq!(check(&[Insn::new(op::JA, 0, 0, -1, 0)]), Ok(()));
    }

    #[test]
    fn lddw_structure() {
        assert_eq!(check(&[EXIT, Insn::new(op::LDDW, 0, 0, 0, 0)]), Err(Error::TruncatedLddw { pc: 1 }));
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 0, 0, 0), Insn::new(0, 1, 0, 0, 0), EXIT]),
            Err(Error::BadLddwSecondSlot { pc: 1 })
        );
        assert_eq!(
            check(&[Insn::new(op::LDDW, 0, 0, 0, 0), Insn::new(op::EXIT, 0, 0, 0, 0), EXIT]),
            Err(Error::BadLddwSecondSlot { pc: 1 })
        );
        assert_eq!(check(&[Insn::new(op::LDDW, 0, 0, 0, 0), Insn::new(0, 0, 0, 0, 5), EXIT]), Ok(()));
        // lddw last: falls off the end
        assert_eq!(check(&[EXIT, Insn::new(op::LDDW, 0, 0, 0, 0), Insn::default()]), Err(Error::FallsOffEnd { pc: 1 }));
    }

    #[test]
    fn pseudo_map_loads() {
        // Two maps, with values of 8 and 16 bytes.
        let with_maps = |insns: &[Insn]| {
            let b = bytes(insns);
            let sizes = [8u32, 16];
            Program::with_maps(&b[..insns.len() * 8], |_| false, |i| sizes.get(i as usize).copied()).map(|_| ())
        };
        let lddw =
            |src: u8, imm: i32, second: i32| [Insn::new(op::LDDW, 1, src, 0, imm), Insn::new(0, 0, 0, 0, second)];
        let prog = |pair: [Insn; 2]| [pair[0], pair[1], EXIT];
        assert_eq!(with_maps(&prog(lddw(1, 1, 0))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(2, 0, 7))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(2, 1, 15))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(0, 5, 5))), Ok(()));
        assert_eq!(with_maps(&prog(lddw(1, 2, 0))), Err(Error::UnknownMap { pc: 0, map: 2 }));
        assert_eq!(with_maps(&prog(lddw(2, -1, 0))), Err(Error::UnknownMap { pc: 0, map: u32::MAX }));
        assert_eq!(with_maps(&prog(lddw(2, 0, 8))), Err(Error::MapValueOffset { pc: 0, map: 0, offset: 8 }));
        assert_eq!(with_maps(&prog(lddw(2, 1, -1))), Err(Error::MapValueOffset { pc: 0, map: 1, offset: u32::MAX }));
        assert_eq!(with_maps(&prog(lddw(1, 0, 4))), Err(Error::BadLddwSecondSlot { pc: 1 }));
        for src in [3, 4, 5, 6, 15] {
            assert_eq!(with_maps(&prog(lddw(src, 0, 0))), Err(Error::UnknownOpcode { pc: 0, opcode: op::LDDW }));
        }
        // Without maps (Program::new) every pseudo load names a map that does not exist.
        assert_eq!(check(&prog(lddw(2, 0, 0))), Err(Error::UnknownMap { pc: 0, map: 0 }));
        // The other lddw checks still apply.
        assert_eq!(
            with_maps(&[Insn::new(op::LDDW, 10, 1, 0, 0), Insn::default(), EXIT]),
            Err(Error::FrameRegisterWrite { pc: 0 })
        );
        assert_eq!(
            with_maps(&[Insn::new(op::LDDW, 1, 2, 0, 0), Insn::new(0, 1, 0, 0, 0), EXIT]),
            Err(Error::BadLddwSecondSlot { pc: 1 })
        );
    }

    #[test]
    fn helpers_and_end() {
        assert_eq!(check(&[Insn::new(op::CALL, 0, 0, 0, 1), EXIT]), Ok(()));
        assert_eq!(check(&[Insn::new(op::CALL, 0, 0, 0, 2), EXIT]), Err(Error::UnknownHelper { pc: 0, id: 2 }));
        assert_eq!(check(&[Insn::new(MOV64_K, 0, 0, 0, 0)]), Err(Error::FallsOffEnd { pc: 0 }));
        assert_eq!(check(&[EXIT, Insn::new(op::CALL, 0, 1, 0, -2)]), Err(Error::FallsOffEnd { pc: 1 }));
        assert_eq!(check(&[Insn::new(MOV64_K, 0, 0, 0, 0), Insn::new(op::JA32, 0, 0, 0, -2)]), Ok(()));
    }

    const CALL_LOCAL: u8 = pseudo::CALL_LOCAL;

    #[test]
    fn functions_end_in_exit_or_ja() {
        // The example: `mov r0, 1; call next; next: add r0, 1; exit` ran into `next`.
        let add = Insn::new(class::ALU64 | alu::ADD | source::K, 0, 0, 0, 1);
        assert_eq!(
            check(&[Insn::new(MOV64_K, 0, 0, 0, 1), Insn::new(op::CALL, 0, CALL_LOCAL, 0, 0), add, EXIT]),
            Err(Error::FallsIntoFunction { pc: 1, function: 2 })
        );
        // The same with an exit before the function: accepted.
        let call = Insn::new(op::CALL, 0, CALL_LOCAL, 0, 1);
        assert_eq!(check(&[call, EXIT, add, EXIT]), Ok(()));
        // A function may end in ja (a loop, or a jump back inside it).
        assert_eq!(check(&[call, EXIT, add, Insn::new(op::JA, 0, 0, -2, 0)]), Ok(()));
        // ... but not in a conditional jump, a call or an lddw.
        let jeq_back = Insn::new(class::JMP | jmp::JEQ | source::K, 0, 0, -2, 0);
        assert_eq!(check(&[call, add, jeq_back, EXIT]), Err(Error::FallsIntoFunction { pc: 1, function: 2 }));
        let lddw_function = [
            Insn::new(op::CALL, 0, CALL_LOCAL, 0, 2),
            Insn::new(op::CALL, 0, CALL_LOCAL, 0, 3),
            EXIT,
            Insn::new(op::LDDW, 0, 0, 0, 0),
            Insn::default(),
            EXIT,
        ];
        assert_eq!(check(&lddw_function), Err(Error::FallsIntoFunction { pc: 3, function: 5 }));
    }

    #[test]
    fn jumps_stay_in_their_function() {
        let call = Insn::new(op::CALL, 0, CALL_LOCAL, 0, 1);
        // The callee (2..4) jumps back into its caller's exit.
        let ja_to_1 = Insn::new(op::JA, 0, 0, -3, 0);
        assert_eq!(check(&[call, EXIT, ja_to_1, EXIT]), Err(Error::JumpOutOfFunction { pc: 2, target: 0 }));
        // The caller jumps forward into the callee's body (a conditional jump: both ways).
        let jeq = Insn::new(class::JMP32 | jmp::JEQ | source::K, 0, 0, 2, 0);
        assert_eq!(
            check(&[call, jeq, EXIT, Insn::new(MOV64_K, 0, 0, 0, 1), EXIT]),
            Err(Error::JumpOutOfFunction { pc: 1, target: 4 })
        );
        // A jump to a function's first instruction is a jump out of the jumping function.
        assert_eq!(
            check(&[call, Insn::new(op::JA32, 0, 0, 0, 0), EXIT]),
            Err(Error::JumpOutOfFunction { pc: 1, target: 2 })
        );
        // Jumps inside the callee are fine, the last slot of a function included.
        let jne = Insn::new(class::JMP | jmp::JNE | source::K, 0, 0, 1, 7);
        assert_eq!(check(&[call, EXIT, jne, Insn::new(MOV64_K, 0, 0, 0, 1), EXIT]), Ok(()));
    }

    #[test]
    fn every_instruction_is_reachable() {
        let mov = Insn::new(MOV64_K, 0, 0, 0, 1);
        assert_eq!(check(&[EXIT, mov, EXIT]), Err(Error::Unreachable { pc: 1 }));
        // Skipped by a jump.
        assert_eq!(check(&[Insn::new(op::JA, 0, 0, 1, 0), mov, EXIT]), Err(Error::Unreachable { pc: 1 }));
        // A function nobody calls (a call from unreachable code does not count).
        let call = Insn::new(op::CALL, 0, CALL_LOCAL, 0, 1);
        assert_eq!(check(&[EXIT, call, EXIT, mov, EXIT]), Err(Error::Unreachable { pc: 1 }));
        // A loop nothing enters, reported at its first slot; lddw second slots are not
        // instructions of their own.
        assert_eq!(
            check(&[EXIT, Insn::new(op::LDDW, 1, 0, 0, 0), Insn::default(), Insn::new(op::JA, 0, 0, -3, 0)]),
            Err(Error::Unreachable { pc: 1 })
        );
        // Reached through a backward branch only.
        assert_eq!(
            check(&[
                Insn::new(op::JA, 0, 0, 2, 0),
                mov,
                EXIT,
                Insn::new(class::JMP | jmp::JEQ | source::K, 0, 0, -3, 0),
                EXIT,
            ]),
            Ok(())
        );
    }

    #[test]
    fn shift_immediates_fit_the_width() {
        for (opcode, width) in [(0x64u8, 32u8), (0x74, 32), (0xc4, 32), (0x67, 64), (0x77, 64), (0xc7, 64)] {
            let max = i32::from(width) - 1;
            assert_eq!(check(&[Insn::new(opcode, 1, 0, 0, 0), EXIT]), Ok(()));
            assert_eq!(check(&[Insn::new(opcode, 1, 0, 0, max), EXIT]), Ok(()));
            for amount in [max + 1, -1, i32::MIN, i32::MAX] {
                assert_eq!(
                    check(&[Insn::new(opcode, 1, 0, 0, amount), EXIT]),
                    Err(Error::ShiftOutOfRange { pc: 0, amount, width }),
                    "{opcode:#x} {amount}"
                );
            }
            // The register form masks at run time (RFC 9669): nothing to check statically.
            assert_eq!(check(&[Insn::new(opcode | source::X, 1, 2, 0, 0), EXIT]), Ok(()));
        }
    }

    #[test]
    fn scratch_from_the_caller() {
        let b = bytes(&[Insn::new(op::CALL, 0, CALL_LOCAL, 0, 1), EXIT, EXIT]);
        let code = &b[..24];
        let needed = scratch_words(3);
        assert_eq!(needed, 5);
        let mut scratch = [u64::MAX; 5];
        assert!(Program::new_in(code, |_| false, &mut scratch).is_ok());
        // Dirty scratch is cleared first: the same call again gives the same answer.
        assert!(Program::new_in(code, |_| false, &mut scratch).is_ok());
        assert_eq!(
            Program::new_in(code, |_| false, &mut scratch[..4]).err(),
            Some(Error::ScratchTooSmall { needed: 5 })
        );
    }

    #[test]
    fn worklist_takes_each_slot_once_lowest_first() {
        let len = 300_000;
        let (l0, l1, l2) = worklist_words(len);
        assert_eq!((l0, l1, l2), (4688, 74, 2));
        let (mut a, mut b, mut c) = (std::vec![0u64; l0], std::vec![0u64; l1], std::vec![0u64; l2]);
        let mut w = Worklist { levels: [&mut a, &mut b, &mut c] };
        extern crate std;
        for slot in [299_999, 5, 64, 4096, 5, 262_144, 0, 63] {
            w.insert(slot);
        }
        let mut taken = std::vec::Vec::new();
        while let Some(s) = w.take() {
            taken.push(s);
        }
        assert_eq!(taken, [0, 5, 63, 64, 4096, 262_144, 299_999]);
        assert!(a.iter().chain(&b).chain(&c).all(|&w| w == 0));
    }

    #[test]
    fn long_programs_validate_in_linear_time() {
        // 2^20 slots: a chain of functions, each calling the next, with a backward loop
        // jump in each (the shape that makes naive per-jump scans quadratic).
        extern crate std;
        let per = 4;
        let functions = MAX_INSNS / per;
        let mut code = std::vec::Vec::with_capacity(MAX_INSNS * 8);
        for f in 0..functions {
            let last = f + 1 == functions;
            let call = if last { Insn::new(MOV64_K, 0, 0, 0, 0) } else { Insn::new(op::CALL, 0, CALL_LOCAL, 0, 2) };
            for insn in [
                Insn::new(class::JMP | jmp::JEQ | source::K, 1, 0, 2, 0),
                call,
                Insn::new(class::JMP | jmp::JNE | source::K, 1, 0, -3, 0),
                EXIT,
            ] {
                code.extend_from_slice(&insn.encode());
            }
        }
        assert_eq!(code.len(), MAX_INSNS * 8);
        assert!(Program::new(&code, |_| false).is_ok());
    }

    /// Whether the scan's table accepts `word` (with its `lddw` second slot, if any, clean).
    fn table_accepts(word: u64) -> bool {
        let opcode = word as u8;
        let failures = u64::from(REG_FAILS[(word >> 8) as u8]);
        ((word ^ u64::from(opcode)) | failures) & MASK[opcode] == 0
    }

    #[test]
    fn the_table_never_accepts_what_the_exact_checks_reject() {
        extern crate std;
        use std::vec::Vec;
        // Offsets and immediates: every single bit, and the values rules draw lines at.
        let mut offs: Vec<i16> = (0..16).map(|b| (1u16 << b) as i16).collect();
        offs.extend([0, -1, 2, 7, 8, 16, 32, i16::MAX, i16::MIN]);
        let mut imms: Vec<i32> = (0..32).map(|b| (1u32 << b) as i32).collect();
        imms.extend([0, -1, 15, 16, 31, 32, 63, 64, 0x41, 0x51, 0xa1, 0xe1, 0xf1, i32::MAX, i32::MIN]);
        let second = Insn::new(0, 0, 0, 0, 0);
        let exact = |word: u64| {
            let insn = Insn::decode(word.to_le_bytes());
            if insn.opcode == op::LDDW {
                check_lddw(0, insn, Some(second), Some(&|_| None))
            } else {
                check_insn(0, insn, &|_| true)
            }
        };
        let mut accepted = 0;
        for opcode in 0..=255u64 {
            let mut fields: Vec<(u64, i16, i32)> = (0..=255u64).map(|regs| (regs, 0, 0)).collect();
            for regs in [0x00, 0x01, 0x10, 0x21, 0xa9, 0x9a] {
                fields.extend(offs.iter().map(|&off| (regs, off, 0)));
                fields.extend(imms.iter().map(|&imm| (regs, 0, imm)));
                fields.extend(offs.iter().zip(imms.iter().rev()).map(|(&off, &imm)| (regs, off, imm)));
            }
            for (regs, off, imm) in fields {
                let word = opcode | regs << 8 | u64::from(off as u16) << 16 | u64::from(imm as u32) << 32;
                if table_accepts(word) {
                    accepted += 1;
                    assert_eq!(exact(word), Ok(()), "{opcode:#04x} regs {regs:#04x} off {off} imm {imm}");
                }
            }
        }
        assert!(accepted > 10_000, "{accepted}");
        // And it accepts the common instructions on its own.
        for insn in [
            Insn::new(class::ALU64 | alu::ADD | source::K, 1, 0, 0, -7),
            Insn::new(MOV64_X, 9, 10, 0, 0),
            Insn::new(class::ALU | alu::LSH | source::K, 1, 0, 0, 31),
            Insn::new(0x79, 0, 10, -8, 0),
            Insn::new(0x7b, 10, 9, -8, 0),
            Insn::new(0x7a, 10, 0, -8, 5),
            Insn::new(class::JMP32 | jmp::JSGT | source::X, 1, 2, -5, 0),
            Insn::new(op::JA, 0, 0, 3, 0),
            Insn::new(op::JA32, 0, 0, 0, 3),
            Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, 3),
            Insn::new(op::CALL, 0, pseudo::CALL_HELPER, 0, 3),
            Insn::new(op::LDDW, 1, 0, 0, 3),
            EXIT,
        ] {
            assert!(table_accepts(u64::from_le_bytes(insn.encode())), "{insn:?}");
        }
    }

    #[test]
    fn flows_agree_with_branch_targets() {
        for opcode in 0..=255u8 {
            let flow = FLOW[opcode];
            let insn = Insn::new(opcode, 0, 0, 5, 9);
            if check_insn(0, insn, &|_| true).is_err() && opcode != op::LDDW && opcode != op::CALL {
                continue;
            }
            assert_eq!(flow & LDDW != 0, opcode == op::LDDW, "{opcode:#04x}");
            assert_eq!(flow & CALL != 0, opcode == op::CALL, "{opcode:#04x}");
            assert_eq!(flow & FALLS == 0, matches!(opcode, op::EXIT | op::JA | op::JA32), "{opcode:#04x}");
            if opcode != op::CALL {
                let target = branch_target(10, insn);
                assert_eq!(flow & JUMP != 0, target.is_some(), "{opcode:#04x}");
                if flow & JUMP != 0 {
                    assert_eq!(target, Some(11 + relative_target(u64::from_le_bytes(insn.encode()), flow)));
                }
            }
        }
    }

    /// The scan's findings on a program that passes it.
    fn scan_of(code: &[u8]) -> Scan {
        extern crate std;
        let program = Program { bytes: code, local_calls: false, stack_reach: None };
        let l0 = worklist_words(program.len()).0;
        let mut words = std::vec![0u64; 3 * l0];
        let (targets, rest) = words.split_at_mut(l0);
        let (unreached, starts) = rest.split_at_mut(l0);
        program.scan(&|_| true, Some(&|_| None), Bitmaps { targets, unreached, starts }).unwrap()
    }

    fn encode(insns: &[Insn]) -> std::vec::Vec<u8> {
        extern crate std;
        insns.iter().flat_map(|i| i.encode()).collect()
    }

    extern crate std;

    #[test]
    fn revived_blocks_lead_on() {
        let jeq = |off: i16| Insn::new(class::JMP | jmp::JEQ | source::K, 0, 0, off, 0);
        // 1 is reached only by the jump back from 3; 5 only by 1's jump forward, past 3.
        let code =
            encode(&[Insn::new(op::JA, 0, 0, 2, 0), jeq(3), EXIT, jeq(-3), EXIT, Insn::new(MOV64_K, 0, 0, 0, 1), EXIT]);
        assert!(Program::new(&code, |_| false).is_ok());
        let scan = scan_of(&code);
        assert!(scan.any_unreached && !scan.revival_overflow);
        // Without the jump back, 1 and (first) 5... only 1 is reported.
        let mut dead = code.clone();
        dead[24..32].copy_from_slice(&EXIT.encode());
        assert_eq!(Program::new(&dead, |_| false).err(), Some(Error::Unreachable { pc: 1 }));
    }

    /// Blocks reached only by jumps back: from the end to the last block, from each block
    /// to the one before (revivals nested `blocks` deep), or with `fan`, from one block to
    /// all the others (revivals one deep). The jump meant for block `dead` goes to the next
    /// slot instead.
    fn blocks_back(blocks: usize, fan: bool, dead: Option<usize>) -> std::vec::Vec<u8> {
        let jne = |from: usize, to: usize| {
            Insn::new(class::JMP | jmp::JNE | source::K, 0, 0, (to as i64 - from as i64 - 1) as i16, 1)
        };
        let start = |b: usize| 1 + 2 * b;
        let mut insns = std::vec![Insn::new(op::JA, 0, 0, 0, 0)];
        for b in 0..blocks {
            let pc = insns.len();
            let back = if fan { b + 1 == blocks } else { b > 0 };
            insns.push(if back { Insn::new(MOV64_K, 0, 0, 0, 2) } else { Insn::new(MOV64_K, 0, 0, 0, 1) });
            insns.push(EXIT);
            if back && !fan {
                let to = if Some(b - 1) == dead { pc + 1 } else { start(b - 1) };
                insns[pc] = jne(pc, to);
            }
        }
        if fan {
            // The last block fans out: its jumps come before its exit.
            let last = insns.len() - 2;
            insns.truncate(last);
            for b in 0..blocks - 1 {
                let pc = insns.len();
                insns.push(jne(pc, if Some(b) == dead { pc + 1 } else { start(b) }));
            }
            insns.push(EXIT);
        }
        let end = insns.len();
        insns[0] = Insn::new(op::JA, 0, 0, (end - 1) as i16, 0);
        insns.push(jne(end, start(blocks - 1)));
        insns.push(EXIT);
        encode(&insns)
    }

    #[test]
    fn revivals_nested_too_deep_take_the_exact_walk() {
        for fan in [false, true] {
            let code = blocks_back(REVIVAL_DEPTH, fan, None);
            assert!(!scan_of(&code).revival_overflow);
            assert!(Program::new(&code, |_| false).is_ok());
        }
        for blocks in [REVIVAL_DEPTH + 1, 3 * REVIVAL_DEPTH] {
            let code = blocks_back(blocks, false, None);
            assert!(scan_of(&code).revival_overflow);
            assert!(Program::new(&code, |_| false).is_ok());
            assert!(!scan_of(&blocks_back(blocks, true, None)).revival_overflow);
            // In the chain, the blocks before the dead one are dead too.
            for (fan, first_dead) in [(false, 1), (true, 5)] {
                let code = blocks_back(blocks, fan, Some(2));
                assert_eq!(Program::new(&code, |_| false).err(), Some(Error::Unreachable { pc: first_dead }), "{fan}");
            }
        }
    }

    #[test]
    fn function_rules_the_scan_cannot_see() {
        let call = |imm: i32| Insn::new(op::CALL, 0, CALL_LOCAL, 0, imm);
        let jeq = |off: i16| Insn::new(class::JMP | jmp::JEQ | source::K, 0, 0, off, 0);
        // A jump past a function start that a later call reveals.
        let code = encode(&[jeq(3), call(1), EXIT, EXIT, EXIT]);
        assert!(scan_of(&code).functions_suspect);
        assert_eq!(Program::new(&code, |_| false).err(), Some(Error::JumpOutOfFunction { pc: 0, target: 4 }));
        // A start revealed by a call back to it.
        let code = encode(&[Insn::new(op::JA, 0, 0, 2, 0), Insn::new(MOV64_K, 0, 0, 0, 1), EXIT, call(-3), EXIT]);
        assert!(scan_of(&code).functions_suspect);
        assert_eq!(Program::new(&code, |_| false).err(), Some(Error::JumpOutOfFunction { pc: 0, target: 3 }));
        // Jumps that stay in: nothing suspect.
        let code = encode(&[call(2), jeq(0), EXIT, jeq(1), Insn::new(MOV64_K, 0, 0, 0, 1), EXIT]);
        assert!(!scan_of(&code).functions_suspect);
        assert!(Program::new(&code, |_| false).is_ok());
    }

    #[test]
    fn iter_skips_second_slots() {
        let b = bytes(&[Insn::new(op::LDDW, 0, 0, 0, 1), Insn::new(0, 0, 0, 0, 2), EXIT]);
        let p = Program::new(&b[..24], |_| false).unwrap();
        let mut it = p.iter();
        assert_eq!(it.next().map(|(pc, i)| (pc, i.opcode)), Some((0, op::LDDW)));
        assert_eq!(it.next().map(|(pc, i)| (pc, i.opcode)), Some((2, op::EXIT)));
        assert_eq!(it.next(), None);
        assert_eq!(p.lddw_value(0), (2 << 32) | 1);
        assert_eq!(p.insn(99), Insn::default());
    }
}
