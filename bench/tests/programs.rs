//! The suite's programs are correct and runnable by every engine: tessera's interpreters
//! (fast and reference), tessera's JIT and the native build agree on every C program, the
//! interpreters and the JIT agree on the generated ones, and the bytecode avoids what the
//! peers get wrong.
//! (Correctness only; timing is `cargo xtask bench`.)

use tessera_bench::engines::Engine;
use tessera_bench::harness::prepare_and_check;
use tessera_bench::helper::{BENCH_MIX_ID, BENCH_MIX_NAME};
use tessera_bench::loader::{LoadError, text_of};
use tessera_bench::programs::{C_PROGRAMS, GENERATED_SLOTS, generated};

#[test]
fn c_programs_agree_in_tessera_interpreters_jit_and_native() {
    for c in &C_PROGRAMS {
        let program = c.load().unwrap_or_else(|e| panic!("{e}"));
        let engines = [Engine::Native, Engine::TesseraInterp, Engine::TesseraRefInterp, Engine::TesseraJit];
        let (runners, r0) = prepare_and_check(&program, &engines).unwrap_or_else(|e| panic!("{e}"));
        for (engine, runner) in &runners {
            assert!(runner.is_ok(), "{}: {} rejects it: {:?}", program.name, engine.name(), runner.as_ref().err());
        }
        println!("{:8} {:5} slots  r0 = {r0:#018x}", program.name, program.slots());
    }
}

#[test]
fn generated_programs_agree_in_tessera_interpreters_and_jit() {
    for slots in GENERATED_SLOTS {
        let program = generated(slots);
        assert_eq!(program.slots(), slots);
        let engines = [Engine::TesseraRefInterp, Engine::TesseraInterp, Engine::TesseraJit];
        let (runners, _) = prepare_and_check(&program, &engines).unwrap_or_else(|e| panic!("{e}"));
        assert!(runners.iter().all(|(_, r)| r.is_ok()), "{}: an engine rejects it", program.name);
    }
}

#[test]
fn generated_programs_are_reproducible_and_seed_dependent() {
    assert_eq!(generated(1000).bytecode, generated(1000).bytecode);
    assert_ne!(generated(1000).bytecode[..800], generated(10_000).bytecode[..800]);
}

/// rbpf 0.4.1's interpreter zero-extends the immediate of 64-bit unsigned jumps (eBPF
/// sign-extends it), so such a jump with a negative immediate behaves differently there.
#[test]
fn no_64_bit_unsigned_jump_compares_with_a_negative_immediate() {
    // jeq, jgt, jge, jset, jne, jlt, jle with an immediate, 64-bit.
    const UNSIGNED_JUMPS: [u8; 7] = [0x15, 0x25, 0x35, 0x45, 0x55, 0xa5, 0xb5];
    let mut programs: Vec<_> = C_PROGRAMS.iter().map(|c| c.load().unwrap()).collect();
    programs.extend(GENERATED_SLOTS.iter().map(|&s| generated(s)));
    for program in &programs {
        let mut pc = 0;
        while pc < program.slots() {
            let insn = &program.bytecode[pc * 8..pc * 8 + 8];
            let imm = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            assert!(
                !(UNSIGNED_JUMPS.contains(&insn[0]) && imm < 0),
                "{} pc {pc}: 64-bit unsigned jump against {imm}",
                program.name
            );
            pc += if insn[0] == 0x18 { 2 } else { 1 };
        }
    }
}

#[test]
fn helper_id_is_solana_sbpf_hash_of_its_name_and_matches_bench_h() {
    assert_eq!(solana_sbpf::ebpf::hash_symbol_name(BENCH_MIX_NAME.as_bytes()), BENCH_MIX_ID);
    let header = include_str!("../programs/bench.h");
    let define = format!("#define BENCH_MIX_ID {BENCH_MIX_ID:#010x}u");
    assert!(header.contains(&define), "bench.h does not contain `{define}`");
}

#[test]
fn loader_takes_text_from_the_entry_and_rejects_other_entries() {
    let fib = &C_PROGRAMS.iter().find(|c| c.name == "fib").unwrap();
    let text = text_of(fib.object, "bench_fib").unwrap();
    assert_eq!(text.len() % 8, 0);
    assert_eq!(text.last().map(|_| text[text.len() - 8]), Some(0x95), "ends with exit");
    assert_eq!(
        text_of(fib.object, "bench_nothing"),
        Err(LoadError::EntryNotFirst { entry: "bench_nothing".into(), offset: None })
    );
    // `fib` is the local function after the entry.
    assert!(matches!(text_of(fib.object, "fib"), Err(LoadError::EntryNotFirst { offset: Some(o), .. }) if o > 0));
    assert!(matches!(text_of(b"not an object", "bench_fib"), Err(LoadError::Parse(_))));
}
