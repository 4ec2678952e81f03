//! The validator gives exactly the verdict of the frozen pre-rewrite validator
//! (`tessera_host_tests::validator_oracle`) on real programs, generated ones, a grid of
//! single instructions, and random mutations of all of them (see
//! `tessera_host_tests::validator_equivalence`). A bounded number of cases per run; set
//! `TESSERA_FUZZ_CASES` (a multiplier, default 1) for more, or run the cargo-fuzz target
//! `validator_equivalence` for long runs.

use std::collections::BTreeMap;

use tessera::ebpf::Insn;
use tessera::ebpf::elf::{Object, Select};
use tessera::ebpf::insn::op;
use tessera_host_tests::conformance;
use tessera_host_tests::program_gen::{Rng, Source};
use tessera_host_tests::validator_equivalence::{self, MAP_VALUE_SIZES, check, check_with_mutations, variant};

fn scale() -> u32 {
    std::env::var("TESSERA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

fn rng(seed: u64) -> Rng {
    Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

/// Every verdict validation can give on bytecode (all but `ScratchTooSmall`, which needs too
/// little scratch, and the helper registry's errors).
const VERDICTS: [&str; 20] = [
    "Ok",
    "BytecodeLength",
    "EmptyProgram",
    "UnknownOpcode",
    "ReservedField",
    "BadRegister",
    "FrameRegisterWrite",
    "JumpOutOfRange",
    "JumpIntoLddw",
    "TruncatedLddw",
    "BadLddwSecondSlot",
    "UnknownHelper",
    "FallsOffEnd",
    "FallsIntoFunction",
    "JumpOutOfFunction",
    "Unreachable",
    "ShiftOutOfRange",
    "UnknownMap",
    "MapValueOffset",
    "ProgramTooLong",
];

/// The census must show every verdict in `expected` (the inputs reach both sides of every
/// rule).
fn assert_census(census: &BTreeMap<String, u64>, expected: &[&str]) {
    println!("census: {census:?}");
    for v in expected {
        assert!(census.contains_key(*v), "no case ended in {v}: {census:?}");
    }
}

#[test]
fn conformance_programs_and_their_mutations() {
    let mut cases = conformance::load_dir(conformance::tests_dir());
    cases.extend(conformance::load_dir(conformance::negative_dir()));
    let (mut checked, mut census) = (0, BTreeMap::new());
    for (i, case) in cases.iter().enumerate() {
        // Some negative cases do not assemble: those have no bytecode to check.
        let Ok(bytes) = conformance::program_bytes(case) else { continue };
        let mut s = rng(i as u64 + 1);
        if let Err(e) = check_with_mutations(&mut s, &bytes, &MAP_VALUE_SIZES, 40 * scale(), &mut census) {
            panic!("{} ({}): {e}", case.name, case.path.display());
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} conformance programs");
    assert_census(&census, &VERDICTS[..19]);
}

macro_rules! objects {
    ($($path:literal),* $(,)?) => {
        [$(($path, include_bytes!(concat!("../../", $path)).as_slice())),*]
    };
}

const OBJECTS: [(&str, &[u8]); 34] = objects![
    "examples/packet_filter.o",
    "examples/counter.o",
    "examples/rate_limit.o",
    "examples/globals.o",
    "examples/counter_legacy.o",
    "examples/mcpu/packet_filter.v1.o",
    "examples/mcpu/packet_filter.v2.o",
    "examples/mcpu/packet_filter.v3.o",
    "examples/mcpu/packet_filter.v4.o",
    "examples/mcpu/counter.v1.o",
    "examples/mcpu/counter.v2.o",
    "examples/mcpu/counter.v3.o",
    "examples/mcpu/counter.v4.o",
    "examples/mcpu/rate_limit.v1.o",
    "examples/mcpu/rate_limit.v2.o",
    "examples/mcpu/rate_limit.v3.o",
    "examples/mcpu/rate_limit.v4.o",
    "examples/mcpu/globals.v1.o",
    "examples/mcpu/globals.v2.o",
    "examples/mcpu/globals.v3.o",
    "examples/mcpu/globals.v4.o",
    "examples/mcpu/counter_legacy.v1.o",
    "examples/mcpu/counter_legacy.v2.o",
    "examples/mcpu/counter_legacy.v3.o",
    "examples/mcpu/counter_legacy.v4.o",
    "bench/programs/crc32.o",
    "bench/programs/fib.o",
    "bench/programs/fnv1a.o",
    "bench/programs/helpers.o",
    "bench/programs/loop.o",
    "bench/programs/memcpy.o",
    "bench/programs/packet.o",
    "bench/programs/sieve.o",
    "bench/programs/sort.o",
];

#[test]
fn object_programs_and_their_mutations() {
    let (mut checked, mut census) = (0, BTreeMap::new());
    for (o, (path, bytes)) in OBJECTS.iter().enumerate() {
        let object = Object::parse(bytes).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        let sizes: Vec<u32> =
            (0..object.map_count()).filter_map(|i| object.map(i)).map(|m| m.def.value_size()).collect();
        for (p, program) in object.programs().enumerate() {
            let linked = object.load(Select::Function(program.name)).unwrap_or_else(|e| panic!("{path}: {e:?}"));
            let mut s = rng((o * 64 + p) as u64 + 1000);
            // With the object's maps, and with the property's (other sizes, fewer maps).
            for sizes in [&sizes[..], &MAP_VALUE_SIZES[..]] {
                if let Err(e) = check_with_mutations(&mut s, &linked.code, sizes, 150 * scale(), &mut census) {
                    panic!("{path} {}: {e}", program.name);
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= OBJECTS.len(), "only {checked} programs");
    assert_census(&census, &VERDICTS[..19]);
}

#[test]
fn generated_programs_and_their_mutations() {
    let mut census = BTreeMap::new();
    for seed in 1..=u64::from(1500 * scale()) {
        let mut s = rng(seed);
        let bytes = validator_equivalence::generated(&mut s);
        if let Err(e) = check_with_mutations(&mut s, &bytes, &MAP_VALUE_SIZES, 6, &mut census) {
            panic!("seed {seed}: {e}");
        }
    }
    assert_census(&census, &VERDICTS[..19]);
}

#[test]
fn mazes_and_their_mutations() {
    let mut census = BTreeMap::new();
    for seed in 1..=u64::from(1500 * scale()) {
        let mut s = rng(seed + 50_000);
        let bytes = validator_equivalence::maze(&mut s);
        if let Err(e) = check_with_mutations(&mut s, &bytes, &MAP_VALUE_SIZES, 4, &mut census) {
            panic!("seed {seed}: {e}");
        }
    }
    assert_census(&census, &["Ok", "Unreachable", "JumpIntoLddw", "FallsOffEnd"]);
}

#[test]
fn random_slots() {
    let (mut s, mut census) = (rng(77), BTreeMap::new());
    for case in 0..20_000 * scale() {
        let len = s.below(if case % 2 == 0 { 4 } else { 40 }) as usize;
        let bytes: Vec<u8> = (0..len * Insn::SIZE + usize::from(s.below(16) == 0)).map(|_| s.byte()).collect();
        match check(&bytes, &MAP_VALUE_SIZES) {
            Ok(verdicts) => verdicts.iter().for_each(|v| *census.entry(variant(v)).or_default() += 1),
            Err(e) => panic!("case {case}: {e}"),
        }
    }
    assert_census(&census, &["BytecodeLength", "EmptyProgram", "UnknownOpcode", "ReservedField", "BadRegister"]);
}

/// Every opcode with register bytes, offsets and immediates on both sides of each rule's
/// line, followed by `exit` (or, after an `lddw`, a second slot and `exit`).
#[test]
fn every_opcode_on_a_grid_of_fields() {
    const REGS: [u8; 9] = [0x00, 0x01, 0x10, 0xa0, 0x0a, 0x0b, 0xb0, 0xff, 0x21];
    const OFFS: [i16; 7] = [0, 1, -1, 8, 16, 32, 7];
    const IMMS: [i32; 15] = [0, 1, -1, 16, 32, 64, 31, 63, 0x01, 0xe1, 0xf1, 0x40, 0x51, 0xa0, i32::MIN];
    let exit = Insn::new(op::EXIT, 0, 0, 0, 0).encode();
    let (mut bytes, mut census) = (Vec::with_capacity(24), BTreeMap::new());
    for opcode in 0..=255u8 {
        for regs in REGS {
            for off in OFFS {
                for imm in IMMS {
                    let mut slot = Insn::new(opcode, 0, 0, off, imm).encode();
                    slot[1] = regs;
                    bytes.clear();
                    bytes.extend_from_slice(&slot);
                    if opcode == op::LDDW {
                        bytes.extend_from_slice(&Insn::new(0, 0, 0, 0, imm.wrapping_add(off.into())).encode());
                    }
                    bytes.extend_from_slice(&exit);
                    match check(&bytes, &MAP_VALUE_SIZES) {
                        Ok(verdicts) => verdicts.iter().for_each(|v| *census.entry(variant(v)).or_default() += 1),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
    }
    // What one instruction before `exit` cannot do: a bad length, a jump into an `lddw` or
    // out of its function, a truncated `lddw`, falling off the end.
    let single: Vec<&str> = VERDICTS[..19]
        .iter()
        .copied()
        .filter(|v| {
            !matches!(
                *v,
                "BytecodeLength"
                    | "EmptyProgram"
                    | "JumpIntoLddw"
                    | "JumpOutOfFunction"
                    | "TruncatedLddw"
                    | "FallsOffEnd"
            )
        })
        .collect();
    assert_census(&census, &single);
}
