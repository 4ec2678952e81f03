//! The assembler and disassembler against every program of the bpf_conformance suite.

use std::fmt::Write as _;

use tessera::ebpf::Insn;
use tessera::ebpf::asm::{self, AsmError, AsmErrorKind};
use tessera::ebpf::disasm::Disassembly;
use tessera_host_tests::conformance::{self, TestCase};

fn cases() -> Vec<TestCase> {
    let cases = conformance::load_dir(conformance::tests_dir());
    assert!(cases.len() >= 300, "expected the 313 conformance programs, found {}", cases.len());
    cases
}

fn assemble(case: &TestCase) -> Vec<Insn> {
    let text = case.asm.as_deref().unwrap_or_else(|| panic!("{}: no asm", case.name));
    asm::assemble_to_vec(text).unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

#[test]
fn every_program_assembles() {
    let mut failures = Vec::new();
    for case in cases() {
        match case.asm.as_deref().map(asm::assemble_to_vec) {
            None => failures.push(format!("{}: no -- asm section", case.name)),
            Some(Err(e)) => failures.push(format!("{}: {e}", case.name)),
            Some(Ok(p)) if p.is_empty() => failures.push(format!("{}: empty program", case.name)),
            Some(Ok(_)) => {}
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn assembled_bytes_match_raw_sections() {
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for case in cases() {
        let Some(raw) = &case.raw else { continue };
        let bytes = asm::to_bytes(&assemble(&case));
        compared += 1;
        if &bytes != raw {
            mismatches.push(format!("{}:\n  asm {bytes:02x?}\n  raw {raw:02x?}", case.name));
        }
    }
    assert!(compared >= 1, "no conformance file has both -- asm and -- raw");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn program_bytes_uses_raw_or_asm() {
    let cases = cases();
    let lddw = cases.iter().find(|c| c.name == "lddw").expect("lddw.data");
    let bytes = conformance::program_bytes(lddw).expect("lddw bytes");
    assert_eq!(bytes.len(), 24);
    assert_eq!(bytes[0], 0x18);
    assert_eq!(u64::from_le_bytes(bytes[0..8].try_into().unwrap()), 0x5566778800000018);
    let exit = cases.iter().find(|c| c.name == "exit").expect("exit.data");
    let bytes = conformance::program_bytes(exit).expect("exit bytes");
    assert_eq!(bytes.len() % 8, 0);
    assert_eq!(&bytes[bytes.len() - 8..], &[0x95, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn disassembly_round_trips() {
    let mut failures = Vec::new();
    for case in cases() {
        let program = assemble(&case);
        let text = Disassembly(&program).to_string();
        if text.contains(".raw") {
            failures.push(format!("{}: disassembly fell back to .raw:\n{text}", case.name));
            continue;
        }
        match asm::assemble_to_vec(&text) {
            Ok(again) if again == program => {}
            Ok(again) => {
                failures.push(format!("{}: round trip changed the program\n{text}\n{again:?}\n{program:?}", case.name))
            }
            Err(e) => failures.push(format!("{}: reassembly failed: {e}\n{text}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A tiny deterministic generator (xorshift64*), so the test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn arbitrary_slots_round_trip() {
    // Random slots, biased towards real opcodes and small fields so most print as mnemonics.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let corpus: Vec<Insn> = cases().iter().flat_map(assemble).collect();
    let mut mnemonic_lines = 0usize;
    for _ in 0..2000 {
        let len = 1 + (rng.next() % 12) as usize;
        let program: Vec<Insn> = (0..len)
            .map(|_| {
                let r = rng.next();
                let mut insn = if r.is_multiple_of(3) {
                    Insn::decode(rng.next().to_le_bytes())
                } else {
                    corpus[(rng.next() % corpus.len() as u64) as usize]
                };
                match r % 7 {
                    1 => insn.off = (rng.next() % 5) as i16 - 2,
                    2 => insn.src = (rng.next() % 16) as u8,
                    3 => insn.imm = rng.next() as i32,
                    4 => insn.dst = (rng.next() % 16) as u8,
                    _ => {}
                }
                insn
            })
            .collect();
        let text = Disassembly(&program).to_string();
        mnemonic_lines += text.lines().filter(|l| !l.starts_with(".raw")).count();
        let again = asm::assemble_to_vec(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again, program, "{text}");
    }
    assert!(mnemonic_lines > 5000, "too few instructions printed as mnemonics: {mnemonic_lines}");
}

#[test]
fn malformed_text_never_panics() {
    let pieces = [
        "mov",
        "%r1",
        "%r99",
        ",",
        "[",
        "]",
        "[%r1+",
        "-",
        "+",
        "0x",
        "0xffffffffffffffffff",
        "lock",
        "fetch",
        "call",
        "local",
        "lddw",
        ":",
        "l:",
        "#",
        "//",
        "\u{e9}",
        "exit",
        "ja",
        "\t",
        "9",
        "--",
        ".raw",
        "ldxsdw",
        "[%r1-0x8000]",
        "\n",
    ];
    let mut rng = Rng(42);
    let mut out = [Insn::default(); 8];
    let mut errors = 0;
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..(rng.next() % 10) {
            text.push_str(pieces[(rng.next() % pieces.len() as u64) as usize]);
            if rng.next().is_multiple_of(2) {
                text.push(' ');
            }
        }
        if let Err(e) = asm::assemble(&text, &mut out, &mut [asm::Label::EMPTY; 8]) {
            assert!(e.line >= 1, "{text:?}: {e}");
            errors += 1;
        }
    }
    assert!(errors > 10_000, "the generator produced mostly valid programs ({errors} errors)");
}

fn err(text: &str) -> AsmError {
    asm::assemble_to_vec(text).expect_err(text)
}

#[test]
fn error_kinds_and_lines() {
    use AsmErrorKind::*;
    let cases: &[(&str, u32, AsmErrorKind)] = &[
        ("mov %r0, 1\nfoo %r0\nexit", 2, UnknownMnemonic),
        ("\n\n# comment\nmov %r0\n", 4, BadOperandCount),
        ("exit\nadd %r0, %r11", 2, BadRegister),
        ("add %r0, 12z", 1, BadImmediate),
        ("mov32 %r0, 2147483648", 1, ImmediateOutOfRange),
        ("mov32 %r0, -2147483649", 1, ImmediateOutOfRange),
        ("mov32 %r0, 0x100000000", 1, ImmediateOutOfRange),
        ("ldxw %r0, [%r1+x]", 1, BadOffset),
        ("ldxw %r0, [%r1+32768]", 1, OffsetOutOfRange),
        ("ja +32768", 1, OffsetOutOfRange),
        ("ja 12", 1, BadJumpTarget),
        ("mov %r0, 0\nja out\nexit", 2, UnknownLabel),
        ("a:\nexit\na:\nexit", 3, DuplicateLabel),
        ("1a:\nexit", 1, BadLabel),
        ("ldxw %r0, %r1", 1, BadMemoryOperand),
        ("stw [%r1+2, 1", 1, BadMemoryOperand),
        ("call far 1", 1, BadCallMode),
        ("exit\n.org 4", 2, UnknownDirective),
        ("-- Unknown directive", 1, UnknownDirective),
        ("lock xchg [%r1], %r2, %r3", 1, BadOperandCount),
        ("lock nand [%r1], %r2", 1, UnknownMnemonic),
    ];
    for &(text, line, kind) in cases {
        let e = err(text);
        assert_eq!((e.line, e.kind), (line, kind), "{text:?}");
    }
    assert_eq!(err("mov %r0, 1\nfoo %r0").to_string(), "line 2: unknown mnemonic");

    // A jump whose label is farther than i16 can reach.
    let mut far = String::from("ja end\n");
    for _ in 0..40_000 {
        far.push_str("mov %r0, 0\n");
    }
    far.push_str("end:\nexit\n");
    assert_eq!(err(&far).kind, JumpOutOfRange);
    far.replace_range(0..6, "ja32 end");
    let p = asm::assemble_to_vec(&far).expect("ja32 reaches");
    assert_eq!(p[0].imm, 40_000);
}

#[test]
fn output_full_is_an_error() {
    let mut out = [Insn::default(); 2];
    let e = asm::assemble("mov %r0, 0\nlddw %r1, 1\nexit", &mut out, &mut []).unwrap_err();
    assert_eq!((e.line, e.kind), (2, AsmErrorKind::OutputFull));
    assert_eq!(asm::assemble("lddw %r1, 1", &mut out, &mut []), Ok(2));
}

/// 100,000 labelled lines, each jumping to another label (back to the start of its block
/// of 1000 lines, or 500 lines ahead): label resolution in O(n log n) (it was quadratic:
/// 40,000 lines took 48 s). The speed shows in `cargo bench --bench jit` (the assembler
/// line); this checks the result.
#[test]
fn hundred_thousand_labelled_lines() {
    const N: usize = 100_000;
    let target = |i: usize| if i.is_multiple_of(2) { i - i % 1000 } else { (i + 500).min(N) };
    let mut text = String::with_capacity(N * 32);
    for i in 0..N {
        writeln!(text, "l{i}: jne %r0, {i}, l{}", target(i)).unwrap();
    }
    text.push_str(&format!("l{N}: exit\n"));
    assert_eq!(asm::labels_needed(&text), N + 1);
    let p = asm::assemble_to_vec(&text).expect("assembles");
    assert_eq!(p.len(), N + 1);
    for (i, insn) in p[..N].iter().enumerate() {
        let off = target(i) as i64 - i as i64 - 1;
        assert_eq!((insn.opcode, insn.imm, i64::from(insn.off)), (0x55, i as i32, off), "line {}", i + 1);
    }
    // An unknown label is reported at its line.
    let unknown = text.replacen(", l501\n", ", m501\n", 1);
    assert_eq!(err(&unknown), AsmError { line: 2, kind: AsmErrorKind::UnknownLabel });
}

#[test]
fn duplicate_labels_are_reported_in_text_order() {
    use AsmErrorKind::*;
    // The first error in text order wins, whether a duplicate or a malformed line.
    assert_eq!(err("a:\nb:\nb:\na:\nexit"), AsmError { line: 3, kind: DuplicateLabel });
    assert_eq!(err("a:\na: foo\nexit"), AsmError { line: 2, kind: DuplicateLabel });
    assert_eq!(err("a:\nfoo\na:\nexit"), AsmError { line: 2, kind: UnknownMnemonic });
    assert_eq!(err("a:\nb:\na:\nfoo"), AsmError { line: 3, kind: DuplicateLabel });
    // A label named `exit` takes precedence over the implicit one.
    let p = asm::assemble_to_vec("ja exit\nexit\nexit: exit").expect("assembles");
    assert_eq!(p[0].off, 1);
    let p = asm::assemble_to_vec("ja exit\nmov %r0, 1\nexit\nexit").expect("assembles");
    assert_eq!(p[0].off, 1);
}
