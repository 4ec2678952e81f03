//! The cargo-fuzz targets' properties (`fuzz/fuzz_targets/{validate,assemble}.rs`) run for a
//! bounded number of seeded cases, so `cargo test` checks them on every ISA tier. Set
//! `TESSERA_FUZZ_CASES` for more. A failure names its seed and prints the program.

use std::collections::BTreeMap;

use tessera_host_tests::asm_fuzz;
use tessera_host_tests::program_gen::{Rng, Source};
use tessera_host_tests::validator_fuzz::{self, Verdict};

fn cases(default: u64) -> u64 {
    std::env::var("TESSERA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rng(seed: u64) -> Rng {
    Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

#[test]
fn validator_property() {
    let mut census: BTreeMap<String, u64> = BTreeMap::new();
    for seed in 1..=cases(400) {
        let insns = validator_fuzz::input(&mut rng(seed));
        match validator_fuzz::check(&insns) {
            Ok(v) => *census.entry(format!("{v:?}")).or_default() += 1,
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    println!("\nvalidator property ({}): {census:?}", std::env::consts::ARCH);
    // The generator must keep reaching both sides of every rule.
    for outcome in [
        Verdict::Accepted,
        Verdict::SlotError,
        Verdict::ControlFlow("JumpOutOfRange"),
        Verdict::ControlFlow("JumpIntoLddw"),
        Verdict::ControlFlow("FallsOffEnd"),
        Verdict::ControlFlow("FallsIntoFunction"),
        Verdict::ControlFlow("JumpOutOfFunction"),
        Verdict::ControlFlow("Unreachable"),
    ] {
        assert!(census.contains_key(&format!("{outcome:?}")), "no case ended in {outcome:?}: {census:?}");
    }
}

#[test]
fn assembler_property() {
    let (mut exact, mut corrupted) = (0, 0);
    for seed in 1..=cases(600) {
        let case = asm_fuzz::input(&mut rng(seed));
        if let Err(e) = asm_fuzz::check(&case) {
            panic!("seed {seed}: {e}");
        }
        if case.expected.is_some() { exact += 1 } else { corrupted += 1 }
    }
    println!("\nassembler property: {exact} labelled programs, {corrupted} corrupted texts");
    assert!(exact > 0 && corrupted > 0);
}

#[test]
fn assembler_property_on_raw_text() {
    const ALPHABET: &[u8] = b"mov %r1,[]+-0x:ljaexit\n#lddw call local 9";
    let mut r = rng(7);
    for case in 0..cases(600) {
        let len = r.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| ALPHABET[r.below(ALPHABET.len() as u32) as usize]).collect();
        if let Err(e) = asm_fuzz::check(&asm_fuzz::raw_text(&bytes)) {
            panic!("raw case {case}: {e}");
        }
    }
}
