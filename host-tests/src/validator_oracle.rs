//! Test oracle: the eBPF validator as it was before validation was rewritten as one
//! table-driven pass (`core/src/ebpf/program.rs`), frozen here so the rewrite can be checked
//! against it input by input. It is never used by the product. Only what the rewrite must
//! keep is kept: the verdict of `Program::with_maps` (and so of `Program::new`, which is
//! `with_maps` with no maps), `Ok` or the exact [`LoadError`], with scratch from the heap.
//!
//! The passes, in the order that decides which error wins when a program has several:
//! 1. each slot on its own and the `lddw` structure, in pc order;
//! 2. jump and call targets (in range, not into an `lddw` second slot), in pc order;
//! 3. the last instruction does not fall off the end;
//! 4. functions (the entry and every local-call target, up to the next) end in `exit` or
//!    `ja` and their jumps stay inside them, in pc order;
//! 5. every instruction is reachable (the first unreachable one is reported).

use tessera::ebpf::Insn;
use tessera::ebpf::LoadError as Error;
use tessera::ebpf::insn::{FRAME_POINTER, REGISTER_COUNT, alu, atomic, class, jmp, mem, op, pseudo, source};

/// The largest program accepted, in 8-byte slots (as in the product).
const MAX_INSNS: usize = 1 << 20;

/// The old `Program::with_maps(bytes, is_helper, map_value_size).map(|_| ())`.
pub fn with_maps(
    bytes: &[u8],
    is_helper: impl Fn(i32) -> bool,
    map_value_size: impl Fn(u32) -> Option<u32>,
) -> Result<(), Error> {
    let len = slot_count(bytes)?;
    let mut scratch = vec![0u64; scratch_words(len)];
    let program = Slots { bytes };
    program.validate(&is_helper, &map_value_size)?;
    program.validate_control_flow(&mut scratch)
}

/// The old `Program::new(bytes, is_helper).map(|_| ())`.
pub fn new(bytes: &[u8], is_helper: impl Fn(i32) -> bool) -> Result<(), Error> {
    with_maps(bytes, is_helper, |_| None)
}

/// The old `Program::has_local_calls` of a program the oracle accepts.
pub fn has_local_calls(bytes: &[u8]) -> bool {
    Slots { bytes }.iter().any(|(_, insn)| is_local_call(insn))
}

fn scratch_words(len: usize) -> usize {
    let (l0, l1, l2) = worklist_words(len);
    3 * l0 + l1 + l2
}

type MapValueSize<'m> = &'m dyn Fn(u32) -> Option<u32>;

struct Slots<'a> {
    bytes: &'a [u8],
}

impl Slots<'_> {
    fn len(&self) -> usize {
        self.bytes.len() / Insn::SIZE
    }

    fn insn(&self, pc: usize) -> Insn {
        self.get(pc).unwrap_or_default()
    }

    fn get(&self, pc: usize) -> Option<Insn> {
        let start = pc.checked_mul(Insn::SIZE)?;
        let slot = self.bytes.get(start..start.checked_add(Insn::SIZE)?)?;
        let slot: [u8; 8] = slot.try_into().ok()?;
        Some(Insn::decode(slot))
    }

    fn iter(&self) -> impl Iterator<Item = (usize, Insn)> + '_ {
        let mut pc = 0;
        core::iter::from_fn(move || {
            let insn = self.get(pc)?;
            let at = pc;
            pc += insn_slots(insn);
            Some((at, insn))
        })
    }

    fn is_lddw_second_slot(&self, pc: usize) -> bool {
        pc > 0 && self.insn(pc - 1).opcode == op::LDDW
    }

    fn validate(&self, is_helper: &dyn Fn(i32) -> bool, maps: MapValueSize) -> Result<(), Error> {
        let len = self.len();
        let mut pc = 0;
        let mut last = 0;
        while pc < len {
            let insn = self.insn(pc);
            last = pc;
            if insn.opcode == op::LDDW {
                check_lddw(self, pc, insn, Some(maps))?;
                pc += 2;
            } else {
                check_insn(pc, insn, is_helper)?;
                pc += 1;
            }
        }
        for (pc, insn) in self.iter() {
            if let Some(target) = branch_target(pc, insn) {
                if target < 0 || target >= len as i64 {
                    return Err(Error::JumpOutOfRange { pc: pc as u32, target });
                }
                let t = target as usize;
                if self.is_lddw_second_slot(t) {
                    return Err(Error::JumpIntoLddw { pc: pc as u32, target: t as u32 });
                }
            }
        }
        let end = self.insn(last);
        if !matches!(end.opcode, op::EXIT | op::JA | op::JA32) {
            return Err(Error::FallsOffEnd { pc: last as u32 });
        }
        Ok(())
    }

    fn validate_control_flow(&self, scratch: &mut [u64]) -> Result<(), Error> {
        let (l0, l1, _) = worklist_words(self.len());
        let (starts, rest) = scratch.split_at_mut(l0);
        let (reached, rest) = rest.split_at_mut(l0);
        let (pending0, rest) = rest.split_at_mut(l0);
        let (pending1, pending2) = rest.split_at_mut(l1);
        self.check_functions(starts)?;
        self.check_reachable(reached, Worklist { levels: [pending0, pending1, pending2] })
    }

    fn check_functions(&self, starts: &mut [u64]) -> Result<(), Error> {
        let len = self.len();
        set_bit(starts, 0);
        for (pc, insn) in self.iter() {
            if is_local_call(insn)
                && let Some(target) = branch_target(pc, insn).and_then(|t| usize::try_from(t).ok())
            {
                set_bit(starts, target);
            }
        }
        let mut function = 0;
        let mut next_function = next_set_bit(starts, 1).unwrap_or(len);
        for (pc, insn) in self.iter() {
            if pc >= next_function {
                function = next_function;
                next_function = next_set_bit(starts, pc + 1).unwrap_or(len);
            }
            if !is_local_call(insn)
                && let Some(target) = branch_target(pc, insn)
                && (target < function as i64 || target >= next_function as i64)
            {
                return Err(Error::JumpOutOfFunction { pc: pc as u32, target: target as u32 });
            }
            let next = pc + insn_slots(insn);
            if next == next_function && next < len && !is_unconditional_exit_or_jump(insn) {
                return Err(Error::FallsIntoFunction { pc: pc as u32, function: next as u32 });
            }
        }
        Ok(())
    }

    fn check_reachable(&self, reached: &mut [u64], mut pending: Worklist) -> Result<(), Error> {
        let len = self.len();
        set_bit(reached, 0);
        pending.insert(0);
        while let Some(start) = pending.take() {
            let mut pc = start;
            loop {
                let insn = self.insn(pc);
                if insn.opcode == op::LDDW {
                    set_bit(reached, pc + 1);
                }
                if let Some(target) = branch_target(pc, insn).and_then(|t| usize::try_from(t).ok())
                    && target < len
                    && !bit(reached, target)
                {
                    set_bit(reached, target);
                    pending.insert(target);
                }
                let next = pc + insn_slots(insn);
                if is_unconditional_exit_or_jump(insn) || next >= len || bit(reached, next) {
                    break;
                }
                set_bit(reached, next);
                pc = next;
            }
        }
        match first_clear_bit(reached, len) {
            Some(pc) => Err(Error::Unreachable { pc: pc as u32 }),
            None => Ok(()),
        }
    }
}

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

fn insn_slots(insn: Insn) -> usize {
    if insn.opcode == op::LDDW { 2 } else { 1 }
}

fn is_local_call(insn: Insn) -> bool {
    insn.opcode == op::CALL && insn.src == pseudo::CALL_LOCAL
}

fn is_unconditional_exit_or_jump(insn: Insn) -> bool {
    matches!(insn.opcode, op::EXIT | op::JA | op::JA32)
}

const fn worklist_words(len: usize) -> (usize, usize, usize) {
    let l0 = len.div_ceil(64);
    let l1 = l0.div_ceil(64);
    (l0, l1, l1.div_ceil(64))
}

fn bit(words: &[u64], i: usize) -> bool {
    words.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 != 0)
}

fn set_bit(words: &mut [u64], i: usize) {
    if let Some(w) = words.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

fn first_clear_bit(words: &[u64], len: usize) -> Option<usize> {
    let (index, word) = words.iter().enumerate().find(|(_, w)| **w != u64::MAX)?;
    let bit = index * 64 + word.trailing_ones() as usize;
    (bit < len).then_some(bit)
}

fn next_set_bit(words: &[u64], from: usize) -> Option<usize> {
    let mut index = from / 64;
    let mut word = words.get(index)? & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            return Some(index * 64 + word.trailing_zeros() as usize);
        }
        index += 1;
        word = *words.get(index)?;
    }
}

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

    fn take(&mut self) -> Option<usize> {
        let [l0, l1, l2] = &mut self.levels;
        let mut i = next_set_bit(l2, 0)?;
        for level in [&**l1, &**l0] {
            let word = *level.get(i)?;
            i = i * 64 + word.trailing_zeros() as usize;
        }
        let slot = i;
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

fn branch_target(pc: usize, insn: Insn) -> Option<i64> {
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

fn reg(pc: usize, r: u8) -> Result<(), Error> {
    if r >= REGISTER_COUNT { Err(Error::BadRegister { pc: pc as u32, reg: r }) } else { Ok(()) }
}

fn dst_reg(pc: usize, r: u8) -> Result<(), Error> {
    reg(pc, r)?;
    if r == FRAME_POINTER { Err(Error::FrameRegisterWrite { pc: pc as u32 }) } else { Ok(()) }
}

fn check_lddw(program: &Slots, pc: usize, insn: Insn, maps: Option<MapValueSize>) -> Result<(), Error> {
    let Some(second) = program.get(pc + 1) else {
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

fn check_insn(pc: usize, insn: Insn, is_helper: &dyn Fn(i32) -> bool) -> Result<(), Error> {
    match insn.class() {
        class::ALU | class::ALU64 => check_alu(pc, insn),
        class::JMP | class::JMP32 => check_jmp(pc, insn, is_helper),
        class::LDX => check_ldx(pc, insn),
        class::ST => check_st(pc, insn),
        class::STX => check_stx(pc, insn),
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
                    if insn.off != 0 && insn.off != 1 {
                        return Err(unknown(pc, insn));
                    }
                }
                alu::MOV => {
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
