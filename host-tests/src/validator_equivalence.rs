//! The validator equivalence property, shared by the cargo-fuzz target
//! `validator_equivalence` and the bounded test `tests/validator_equivalence.rs`: on every
//! input, `Program::new`, `Program::with_maps` and `Program::new_in` (with dirty scratch)
//! give exactly what the frozen pre-rewrite validator ([`crate::validator_oracle`]) gives,
//! `Ok` or the same [`LoadError`], and accepted programs agree on `has_local_calls`.
//!
//! Inputs are real programs (conformance cases, example and bench objects, generated
//! programs) and random mutations of them: flipped bits and bytes, random opcodes and
//! register bytes, jump and call offsets moved anywhere near the program, `lddw` pairs and
//! lone `lddw` opcodes placed at random, slots inserted, removed, swapped, duplicated, and
//! truncations (to a slot or to any byte).

use std::collections::BTreeMap;

use tessera::ebpf::insn::{alu, class, jmp, op, pseudo, source};
use tessera::ebpf::program::{MAX_INSNS, scratch_words};
use tessera::ebpf::{Insn, LoadError, Program};

use crate::program_gen::{self, Source};
use crate::validator_oracle;

/// The helper ids the property registers: a small range (so random ids sometimes hit), the
/// generators' id and the bench programs' id.
pub fn is_helper(id: i32) -> bool {
    (0..8).contains(&id) || id == program_gen::HELPER_ID as i32 || id == 0x90a1_e635_u32 as i32
}

/// Map value sizes for `with_maps`: maps 0..4 exist, with these value sizes.
pub const MAP_VALUE_SIZES: [u32; 4] = [8, 16, 1, 64];

/// Checks the property on `bytes` with maps of `map_value_sizes` (for `with_maps`): `Ok`
/// with the verdicts of `new` and `with_maps`, or `Err` explaining a disagreement.
pub fn check(bytes: &[u8], map_value_sizes: &[u32]) -> Result<[Verdict; 2], String> {
    let value_size = |i: u32| map_value_sizes.get(i as usize).copied();
    let expected = validator_oracle::new(bytes, is_helper);
    let got = Program::new(bytes, is_helper);
    let local_calls = |accepted: bool| accepted.then(|| validator_oracle::has_local_calls(bytes));
    compare("Program::new", bytes, expected, got.map(|p| p.has_local_calls()), local_calls)?;

    let expected_maps = validator_oracle::with_maps(bytes, is_helper, value_size);
    let got = Program::with_maps(bytes, is_helper, value_size);
    compare("Program::with_maps", bytes, expected_maps, got.map(|p| p.has_local_calls()), local_calls)?;

    // Caller scratch, exactly as large as asked and full of garbage.
    let len = bytes.len() / Insn::SIZE;
    if len <= MAX_INSNS {
        let mut scratch = vec![0x5a5a_a5a5_ffff_0001u64; scratch_words(len)];
        let got = Program::new_in(bytes, is_helper, &mut scratch);
        compare("Program::new_in", bytes, expected, got.map(|p| p.has_local_calls()), local_calls)?;
        let got = Program::with_maps_in(bytes, is_helper, value_size, &mut scratch);
        compare("Program::with_maps_in", bytes, expected_maps, got.map(|p| p.has_local_calls()), local_calls)?;
    }
    Ok([expected, expected_maps])
}

/// What validation said.
pub type Verdict = Result<(), LoadError>;

/// The name of a verdict's variant (`"Ok"` or the error's), for a census of outcomes.
pub fn variant(verdict: &Verdict) -> String {
    match verdict {
        Ok(()) => "Ok".to_string(),
        Err(e) => format!("{e:?}").split([' ', '{']).next().unwrap_or_default().to_string(),
    }
}

fn compare(
    what: &str,
    bytes: &[u8],
    expected: Verdict,
    got: Result<bool, LoadError>,
    local_calls: impl Fn(bool) -> Option<bool>,
) -> Result<(), String> {
    let expected_calls = local_calls(expected.is_ok());
    let same = match (&expected, &got) {
        (Ok(()), Ok(calls)) => Some(*calls) == expected_calls,
        (Err(e), Err(g)) => e == g,
        _ => false,
    };
    if same {
        return Ok(());
    }
    Err(format!(
        "{what}: the oracle says {expected:?} (local calls {expected_calls:?}), the validator {got:?}\n{}",
        listing(bytes)
    ))
}

/// The slots of `bytes` in hex, numbered (the disassembler refuses some of them).
fn listing(bytes: &[u8]) -> String {
    let mut out = format!("{} bytes:\n", bytes.len());
    for (pc, slot) in bytes.chunks(Insn::SIZE).enumerate() {
        let hex: Vec<String> = slot.iter().map(|b| format!("{b:02x}")).collect();
        out += &format!("{pc:5}: {}\n", hex.join(" "));
    }
    out
}

/// An opcode: often one the validator knows (each rule on both sides of its line), else any.
fn opcode(s: &mut impl Source) -> u8 {
    const KNOWN: [u8; 24] = [
        op::LDDW,
        op::CALL,
        op::CALLX,
        op::EXIT,
        op::JA,
        op::JA32,
        class::ALU64 | alu::MOV | source::X,
        class::ALU | alu::MOV | source::X,
        class::ALU64 | alu::DIV | source::K,
        class::ALU | alu::MOD | source::X,
        class::ALU64 | alu::LSH | source::K,
        class::ALU | alu::ARSH | source::K,
        class::ALU | alu::END | source::X,
        class::ALU64 | alu::END,
        class::ALU64 | alu::NEG,
        class::JMP | jmp::JEQ | source::K,
        class::JMP32 | jmp::JSLT | source::X,
        0x79, // ldxdw
        0x81, // ldxsw
        0x7a, // stdw
        0x7b, // stxdw
        0xdb, // atomic dw
        0xc3, // atomic w
        0x00,
    ];
    if s.below(2) == 0 { KNOWN[s.below(KNOWN.len() as u32) as usize] } else { s.byte() }
}

/// A field value near a rule's line (sizes, shift widths, atomic ops, targets) or any.
fn field(s: &mut impl Source) -> i32 {
    const NEAR: [i32; 20] = [0, 1, -1, 2, 7, 8, 16, 31, 32, 63, 64, 0x01, 0x40, 0x41, 0xa1, 0xe1, 0xf1, 0x10, -2, 3];
    if s.below(2) == 0 { NEAR[s.below(NEAR.len() as u32) as usize] } else { s.imm() }
}

fn slot(insn: Insn) -> [u8; 8] {
    insn.encode()
}

/// One random change to `bytes` (see the module documentation).
pub fn mutate(s: &mut impl Source, bytes: &mut Vec<u8>) {
    let len = bytes.len() / Insn::SIZE;
    let pc = s.below(len.max(1) as u32) as usize;
    let choice = s.below(16);
    if len == 0 {
        bytes.extend_from_slice(&slot(Insn::new(op::EXIT, 0, 0, 0, 0)));
        return;
    }
    let base = pc * Insn::SIZE;
    let mut insn = Insn::decode(bytes[base..base + Insn::SIZE].try_into().expect("8 bytes"));
    let replace = |bytes: &mut Vec<u8>, insn: Insn| bytes[base..base + Insn::SIZE].copy_from_slice(&slot(insn));
    match choice {
        0 => {
            let i = s.below(bytes.len() as u32) as usize;
            bytes[i] ^= 1 << s.below(8);
        }
        1 => {
            let i = s.below(bytes.len() as u32) as usize;
            bytes[i] = s.byte();
        }
        2 => bytes[base] = opcode(s),
        3 => {
            bytes[base + 1] = if s.below(2) == 0 { (s.below(12) as u8) | ((s.below(12) as u8) << 4) } else { s.byte() }
        }
        4 => {
            insn.off = field(s) as i16;
            replace(bytes, insn);
        }
        5 => {
            insn.imm = field(s);
            replace(bytes, insn);
        }
        6 => {
            // A jump or call target anywhere near the program.
            let target = s.below(len as u32 + 4) as i64 - 2;
            let rel = target - pc as i64 - 1;
            if insn.opcode == op::CALL || insn.opcode == op::JA32 {
                insn.imm = rel as i32;
            } else {
                insn.off = rel as i16;
            }
            replace(bytes, insn);
        }
        7 => {
            // A whole lddw pair, inserted.
            let src = [0, 0, 0, pseudo::LDDW_MAP_FD, pseudo::LDDW_MAP_VALUE, 3][s.below(6) as usize];
            let first = Insn::new(op::LDDW, s.below(11) as u8, src, 0, field(s));
            let second = Insn::new(0, 0, 0, 0, field(s));
            let pair: Vec<u8> = slot(first).into_iter().chain(slot(second)).collect();
            bytes.splice(base..base, pair);
        }
        8 => bytes[base] = op::LDDW,
        9 => {
            let insn = match s.below(4) {
                0 => Insn::new(op::EXIT, 0, 0, 0, 0),
                1 => Insn::new(op::JA, 0, 0, field(s) as i16, 0),
                2 => Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, s.below(len as u32 + 2) as i32 - pc as i32 - 1),
                _ => Insn::decode(core::array::from_fn(|_| s.byte())),
            };
            bytes.splice(base..base, slot(insn));
        }
        10 => {
            bytes.drain(base..base + Insn::SIZE);
        }
        11 => {
            let other = s.below(len as u32) as usize * Insn::SIZE;
            for i in 0..Insn::SIZE {
                bytes.swap(base + i, other + i);
            }
        }
        12 => {
            let copy: Vec<u8> = bytes[base..base + Insn::SIZE].to_vec();
            bytes.splice(base..base, copy);
        }
        13 => bytes.truncate(if s.below(4) == 0 { s.below(bytes.len() as u32) as usize } else { base }),
        14 => {
            // Make the slot an exit, the usual end of a function.
            replace(bytes, Insn::new(op::EXIT, 0, 0, 0, 0));
        }
        _ => {
            // Toggle the local-call form of a call, or make a helper call.
            insn = if insn.opcode == op::CALL {
                Insn::new(op::CALL, 0, insn.src ^ 1, 0, insn.imm)
            } else {
                Insn::new(op::CALL, 0, pseudo::CALL_HELPER, 0, field(s))
            };
            replace(bytes, insn);
        }
    }
}

/// A maze of blocks that jump around (many reached only by jumps back from later blocks,
/// some never reached): the entry block often jumps straight to the last one, whose
/// conditional jumps lead back; any block may jump anywhere with up to 24 conditional jumps,
/// load a 64-bit constant, and end in `exit` or `ja`; in a chain, each block jumps back to
/// the one before first (revivals nested deeper than the validator keeps).
pub fn maze(s: &mut impl Source) -> Vec<u8> {
    enum Item {
        Mov,
        Lddw,
        Branch(usize),
    }
    let count = 2 + s.below(30) as usize;
    let hub = count - 1;
    // Sometimes a chain: each block first jumps back to the one before (revivals nest).
    let chain = s.below(3) == 0;
    let mut blocks: Vec<(Vec<Item>, Option<usize>)> = Vec::with_capacity(count);
    for b in 0..count {
        let mut items = Vec::new();
        if chain && b > 1 && s.below(16) != 0 {
            items.push(Item::Branch(b - 1));
        }
        let branches = match s.below(8) {
            0 => 17 + s.below(8),
            1..=3 => 0,
            _ => s.below(4),
        };
        for _ in 0..branches + s.below(3) {
            items.push(match s.below(5) {
                0 => Item::Mov,
                1 => Item::Lddw,
                _ => Item::Branch(s.below(count as u32) as usize),
            });
        }
        if b == hub {
            items.extend((0..1 + s.below(6)).map(|_| Item::Branch(s.below(count as u32) as usize)));
        }
        // None: exit; Some(b): ja to block b.
        let end = if b == 0 && s.below(3) != 0 {
            Some(hub)
        } else if s.below(3) == 0 {
            Some(s.below(count as u32) as usize)
        } else {
            None
        };
        blocks.push((items, end));
    }
    let size = |items: &[Item]| -> usize {
        1 + items.iter().map(|i| if matches!(i, Item::Lddw) { 2 } else { 1 }).sum::<usize>()
    };
    let mut starts = Vec::with_capacity(count);
    let mut pc = 0;
    for (items, _) in &blocks {
        starts.push(pc);
        pc += size(items);
    }
    let mut insns = Vec::with_capacity(pc);
    let off = |from: usize, to: usize| (to as i64 - from as i64 - 1) as i16;
    for (items, end) in &blocks {
        for item in items {
            let pc = insns.len();
            match item {
                Item::Mov => insns.push(Insn::new(class::ALU64 | alu::MOV | source::K, 1, 0, 0, 7)),
                Item::Lddw => {
                    insns.push(Insn::new(op::LDDW, 2, 0, 0, 1));
                    insns.push(Insn::new(0, 0, 0, 0, 2));
                }
                Item::Branch(to) => {
                    insns.push(Insn::new(class::JMP | jmp::JNE | source::K, 1, 0, off(pc, starts[*to]), pc as i32))
                }
            }
        }
        let pc = insns.len();
        insns.push(match end {
            Some(to) => Insn::new(op::JA, 0, 0, off(pc, starts[*to]), 0),
            None => Insn::new(op::EXIT, 0, 0, 0, 0),
        });
    }
    program_gen::to_bytes(&insns)
}

/// A program to start from: a valid generated one, or one of the validator fuzzer's.
pub fn generated(s: &mut impl Source) -> Vec<u8> {
    let insns = if s.below(2) == 0 {
        let max_len = 4 + s.below(60) as usize;
        program_gen::program(s, max_len)
    } else {
        crate::validator_fuzz::input(s)
    };
    program_gen::to_bytes(&insns)
}

/// Checks `bytes` and `rounds` random mutations of it (each round 1..=4 changes on the
/// previous round's result or the original), counting verdicts by variant in `census`.
pub fn check_with_mutations(
    s: &mut impl Source,
    bytes: &[u8],
    map_value_sizes: &[u32],
    rounds: u32,
    census: &mut BTreeMap<String, u64>,
) -> Result<(), String> {
    let mut count = |verdicts: [Verdict; 2]| {
        for v in &verdicts {
            *census.entry(variant(v)).or_default() += 1;
        }
    };
    count(check(bytes, map_value_sizes)?);
    let mut current = bytes.to_vec();
    for _ in 0..rounds {
        if s.below(3) == 0 || current.len() < Insn::SIZE {
            current = bytes.to_vec();
        }
        for _ in 0..1 + s.below(4) {
            mutate(s, &mut current);
        }
        count(check(&current, map_value_sizes)?);
    }
    Ok(())
}
