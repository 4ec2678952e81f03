//! The assembler property, shared by the cargo-fuzz target `assemble` and the bounded
//! property test `tests/fuzz_properties.rs`.
//!
//! A case is a random program printed by the disassembler with some jump and call targets
//! turned into labels (defined alone on a line or in front of an instruction, at the end
//! too, plus unused ones, comments and blank lines): it must assemble to exactly that
//! program. A third of the cases are then corrupted (text inserted, deleted, lines
//! repeated), and the fuzz target also feeds raw text; for those the property is:
//! - assembling never panics, and an error names a line of the text;
//! - [`asm::assemble`] with [`asm::labels_needed`] entries of label table agrees with
//!   [`asm::assemble_to_vec`];
//! - what assembles, disassembles and reassembles to the same slots.
//!
//! A failure message carries the text and the program disassembled.

use core::fmt::Write as _;

use tessera::ebpf::asm::{self, Label};
use tessera::ebpf::disasm::{self, Disassembly};
use tessera::ebpf::insn::{alu, class, jmp, op, pseudo, source};
use tessera::ebpf::{Insn, program};

use crate::program_gen::Source;

/// One input: assembly text, and the program it must give when it was not corrupted.
#[derive(Clone, Debug)]
pub struct Case {
    pub text: String,
    pub expected: Option<Vec<Insn>>,
}

/// A random case (see the module documentation).
pub fn input(s: &mut impl Source) -> Case {
    let insns = program(s);
    let text = labelled_text(s, &insns);
    if s.below(3) == 0 {
        Case { text: corrupt(s, &text), expected: None }
    } else {
        Case { text, expected: Some(insns) }
    }
}

/// Raw text (the fuzz target's second input form): never has an expectation.
pub fn raw_text(bytes: &[u8]) -> Case {
    Case { text: String::from_utf8_lossy(bytes).into_owned(), expected: None }
}

fn program(s: &mut impl Source) -> Vec<Insn> {
    let len = 1 + s.below(20) as i64;
    let mut insns = Vec::new();
    while (insns.len() as i64) < len {
        let pc = insns.len() as i64;
        // A target anywhere in the program or just past it, as an offset from pc.
        let rel = s.below(len as u32 + 1) as i64 - pc - 1;
        let dst = s.below(11) as u8;
        let insn = match s.below(10) {
            0 => Insn::decode(core::array::from_fn(|_| s.byte())),
            1 => Insn::new(op::JA, 0, 0, rel as i16, 0),
            2 => Insn::new(op::JA32, 0, 0, 0, rel as i32),
            3 => Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, rel as i32),
            4 | 5 => {
                let code = [jmp::JEQ, jmp::JSET, jmp::JSLE, jmp::JLT][s.below(4) as usize];
                let cls = if s.below(2) == 0 { class::JMP } else { class::JMP32 };
                if s.below(2) == 0 {
                    Insn::new(cls | code | source::K, dst, 0, rel as i16, s.imm())
                } else {
                    Insn::new(cls | code | source::X, dst, s.below(11) as u8, rel as i16, 0)
                }
            }
            6 => Insn::new(op::EXIT, 0, 0, 0, 0),
            7 => {
                insns.push(Insn::new(op::LDDW, dst, 0, 0, s.imm()));
                Insn::new(0, 0, 0, 0, s.imm())
            }
            _ => Insn::new(class::ALU64 | alu::XOR | source::K, dst, 0, 0, s.imm()),
        };
        insns.push(insn);
    }
    insns
}

/// Whether the last operand of `insn`'s line is a jump or call target (`+N` / `-N`).
fn has_target(insn: &Insn) -> bool {
    program::branch_target(0, *insn).is_some()
}

const LABEL_PREFIXES: [&str; 5] = ["L", "_l", ".L", "$x", "a.b_"];

fn labelled_text(s: &mut impl Source, insns: &[Insn]) -> String {
    // One line per instruction: (first slot, text).
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut pc = 0;
    while let Some(insn) = insns.get(pc) {
        let mut line = String::new();
        let used = disasm::write_insn(&mut line, insn, insns.get(pc + 1)).expect("write to a String");
        lines.push((pc, line));
        pc += used;
    }
    let end = pc;
    let first_exit = lines.iter().find(|(_, l)| l == "exit").map(|&(pc, _)| pc);
    let line_starts: Vec<usize> = lines.iter().map(|&(pc, _)| pc).collect();
    let is_line_start = |t: usize| t == end || line_starts.contains(&t);
    // Label names per target slot, chosen as references are turned into labels.
    let mut names: Vec<(usize, String)> = Vec::new();
    for (pc, line) in lines.iter_mut() {
        let insn = insns[*pc];
        if line.starts_with(".raw") || !has_target(&insn) || s.below(3) == 0 {
            continue;
        }
        let target = program::branch_target(*pc, insn).unwrap_or(-1);
        let Ok(t) = usize::try_from(target) else { continue };
        if !is_line_start(t) {
            continue;
        }
        let name = if Some(t) == first_exit && s.below(3) == 0 {
            "exit".to_string()
        } else if let Some((_, n)) = names.iter().find(|(at, _)| *at == t) {
            n.clone()
        } else {
            let n = format!("{}{t}", LABEL_PREFIXES[s.below(5) as usize]);
            names.push((t, n.clone()));
            n
        };
        let cut = line.rfind([' ', ',']).map_or(0, |i| i + 1);
        line.replace_range(cut.., &name);
    }
    // Unused labels too.
    for _ in 0..s.below(3) {
        let t = s.below(end as u32 + 1) as usize;
        if is_line_start(t) {
            names.push((t, format!("unused{}_{t}", names.len())));
        }
    }
    let mut text = String::new();
    // A label alone on its line, or (the last one before an instruction) in front of it.
    let define = |text: &mut String, at: usize, s: &mut dyn FnMut() -> u32| {
        let here: Vec<&String> = names.iter().filter(|(t, _)| *t == at).map(|(_, n)| n).collect();
        for (i, name) in here.iter().enumerate() {
            let sep = if i + 1 == here.len() && s() == 0 { " " } else { "\n" };
            let _ = write!(text, "{name}:{sep}");
        }
    };
    let mut coin = || s.below(2);
    for (pc, line) in &lines {
        define(&mut text, *pc, &mut coin);
        let _ = writeln!(text, "{line}");
    }
    define(&mut text, end, &mut coin);
    text.push('\n');
    decorate(s, &text)
}

/// Adds comments, blank lines and indentation, which change nothing.
fn decorate(s: &mut impl Source, text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match s.below(8) {
            0 => out.push_str("\n# a comment\n"),
            1 => out.push_str("  \t"),
            _ => {}
        }
        out.push_str(line);
        if s.below(6) == 0 {
            out.push_str(" // trailing");
        }
        out.push('\n');
    }
    out
}

const PIECES: [&str; 16] =
    ["mov", "%r1", "%r11", ",", "[", "]", "-", "+0x", ":", "l:", "exit", "ja ", "\n", "lddw", "call local ", "#"];

fn corrupt(s: &mut impl Source, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + s.below(3) {
        let at = s.below(chars.len() as u32 + 1) as usize;
        match s.below(3) {
            0 => {
                let piece = PIECES[s.below(PIECES.len() as u32) as usize];
                chars.splice(at..at, piece.chars());
            }
            1 => {
                let to = (at + 1 + s.below(8) as usize).min(chars.len());
                chars.drain(at.min(to)..to);
            }
            _ => {
                // Repeat the line around `at` (a label defined twice, a jump twice...).
                let start = chars[..at].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
                let stop = chars[at..].iter().position(|&c| c == '\n').map_or(chars.len(), |i| at + i + 1);
                let line: Vec<char> = chars[start..stop].to_vec();
                chars.splice(stop..stop, line);
            }
        }
    }
    chars.into_iter().collect()
}

/// Checks the property on one case; `Err` explains a failure.
pub fn check(case: &Case) -> Result<(), String> {
    let text = &case.text;
    let shown = || format!("text:\n{text}");
    let result = asm::assemble_to_vec(text);
    // The allocation-free entry point, with exactly the label table it asks for.
    let mut out = vec![Insn::default(); 2 * text.lines().count() + 1];
    let mut labels = vec![Label::EMPTY; asm::labels_needed(text)];
    let direct = asm::assemble(text, &mut out, &mut labels).map(|n| out[..n].to_vec());
    if direct != result {
        return Err(format!("assemble gives {direct:?}, assemble_to_vec {result:?}\n{}", shown()));
    }
    match (&case.expected, result) {
        (Some(want), Ok(got)) if *want == got => Ok(()),
        (Some(want), got) => Err(format!(
            "expected\n{}got {}\n{}",
            Disassembly(want).numbered(),
            match got {
                Ok(p) => format!("\n{}", Disassembly(&p).numbered()),
                Err(e) => e.to_string(),
            },
            shown()
        )),
        (None, Err(e)) => {
            let lines = text.lines().count() as u32;
            if (1..=lines).contains(&e.line) {
                Ok(())
            } else {
                Err(format!("error {e} names no line of the {lines}-line text\n{}", shown()))
            }
        }
        (None, Ok(got)) => {
            let listing = Disassembly(&got).to_string();
            match asm::assemble_to_vec(&listing) {
                Ok(again) if again == got => Ok(()),
                again => Err(format!("reassembled {again:?} from\n{listing}\n{}", shown())),
            }
        }
    }
}
