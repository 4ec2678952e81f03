//! Assembler for the text syntax of the bpf_conformance suite (the `-- asm` sections).
//!
//! No allocator is needed: [`assemble`] writes into a caller-provided slice and keeps its
//! label table in another ([`labels_needed`] entries; [`assemble_to_vec`] allocates both).
//! Two passes over the text: the first encodes every line and collects the labels, which
//! are then sorted by name; the second resolves each label reference by binary search. So
//! assembly takes O(n log n) time in the number of lines, whatever the text (sorting, unlike
//! a hash table, has no adversarial worst case).
//!
//! # Syntax
//! One instruction per line; operands separated by commas and/or spaces; `#` and `//` start a
//! comment; `name:` defines a label (alone on its line or in front of an instruction). The first
//! `exit` instruction is also the implicit label `exit` unless a label of that name is defined.
//!
//! | form | encoding |
//! |------|----------|
//! | `add %r1, %r2` / `add %r1, -5` | ALU64 (`add sub mul div sdiv or and lsh rsh mod smod xor mov arsh`) |
//! | `add32 %r1, 0x10` | ALU (32-bit) |
//! | `neg %r1` / `neg32 %r1` | NEG |
//! | `movsx832 movsx1632 movsx864 movsx1664 movsx3264 %rD, %rS` | MOV with `off` = 8/16/32 |
//! | `le16 le32 le64 be16 be32 be64 %rD` | ALU END, source bit = to-LE / to-BE |
//! | `bswap16 bswap32 bswap64 %rD` (alias `swap16..64`) | ALU64 END |
//! | `lddw %rD, imm64` | two slots |
//! | `ldxb ldxh ldxw ldxdw %rD, [%rS+off]` | LDX MEM |
//! | `ldxsb ldxsh ldxsw %rD, [%rS-off]` | LDX MEMSX |
//! | `stb sth stw stdw [%rD+off], imm` | ST MEM |
//! | `stxb stxh stxw stxdw [%rD+off], %rS` | STX MEM |
//! | `lock [fetch] add/or/and/xor[32] [%rD+off], %rS` | STX ATOMIC (`fetch` sets the FETCH bit) |
//! | `lock xchg[32] / cmpxchg[32] [%rD+off], %rS` | STX ATOMIC XCHG / CMPXCHG |
//! | `ja +N` / `ja -N` / `ja label` | JMP JA, target in `off` |
//! | `ja32 label` / `ja32 +N` | JMP32 JA (`gotol`), target in `imm` |
//! | `jeq %rD, %rS, target` / `jeq %rD, imm, target` (+ `jgt jge jlt jle jset jne jsgt jsge jslt jsle`, `…32`) | JMP / JMP32 |
//! | `call N` / `call helper N` | CALL, `src` = 0 |
//! | `call local label` / `call local +N` | CALL, `src` = 1, `imm` = target − pc − 1 |
//! | `call runtime N` | CALL, `src` = 2 (BTF id) |
//! | `call %rN` | CALLX (0x8d), register number in `dst` (as Linux, LLVM and bpf_conformance) |
//! | `exit` | EXIT |
//! | `.raw 0x0000000000000095` | one slot given as the little-endian u64 of its 8 bytes |
//!
//! Numbers are decimal or `0x` hex, optionally signed. 32-bit immediates: a decimal value must
//! fit `i32`; a hex value is a bit pattern and may be up to `0xffffffff` (or down to
//! `-0x80000000`). `lddw` takes any value representable in 64 bits. Offsets (`+N`/`-N`, in
//! memory operands and jump targets) must fit `i16`; `ja32` and `call local` targets fit `i32`.

use core::fmt;

use super::insn::{Insn, alu, atomic, class, jmp, mem, op, pseudo, source};

/// An assembly error and the 1-based line of the text it was found on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AsmError {
    /// 1-based line number in the assembled text.
    pub line: u32,
    pub kind: AsmErrorKind,
}

/// What went wrong on a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AsmErrorKind {
    /// The mnemonic (or the operation after `lock`) is not known.
    UnknownMnemonic,
    /// Too many or too few operands for the mnemonic.
    BadOperandCount,
    /// Not a register `%r0`..`%r10`, or a register where an immediate is not allowed.
    BadRegister,
    /// A malformed number.
    BadImmediate,
    /// A number outside the range of its field.
    ImmediateOutOfRange,
    /// A malformed offset (memory operand or `+N`/`-N` jump target).
    BadOffset,
    /// An offset outside the range of its field.
    OffsetOutOfRange,
    /// A jump target that is neither `+N`, `-N` nor a label name.
    BadJumpTarget,
    /// A label whose distance does not fit the jump's offset field.
    JumpOutOfRange,
    /// A jump or call names a label that is not defined.
    UnknownLabel,
    /// A label is defined twice.
    DuplicateLabel,
    /// A label definition with an invalid name.
    BadLabel,
    /// A memory operand that is not `[%rN]`, `[%rN+off]` or `[%rN-off]`.
    BadMemoryOperand,
    /// `call` with a mode other than `helper`, `local` or `runtime`.
    BadCallMode,
    /// A `.directive` other than `.raw`, or a `--` section header inside the program.
    UnknownDirective,
    /// The output slice has no room for the program.
    OutputFull,
    /// The label table has no room for another label (see [`labels_needed`]).
    LabelTableFull,
}

impl AsmErrorKind {
    pub const fn message(self) -> &'static str {
        match self {
            AsmErrorKind::UnknownMnemonic => "unknown mnemonic",
            AsmErrorKind::BadOperandCount => "wrong number of operands",
            AsmErrorKind::BadRegister => "invalid register",
            AsmErrorKind::BadImmediate => "invalid immediate",
            AsmErrorKind::ImmediateOutOfRange => "immediate out of range",
            AsmErrorKind::BadOffset => "invalid offset",
            AsmErrorKind::OffsetOutOfRange => "offset out of range",
            AsmErrorKind::BadJumpTarget => "invalid jump target",
            AsmErrorKind::JumpOutOfRange => "jump target out of range",
            AsmErrorKind::UnknownLabel => "unknown label",
            AsmErrorKind::DuplicateLabel => "duplicate label",
            AsmErrorKind::BadLabel => "invalid label name",
            AsmErrorKind::BadMemoryOperand => "invalid memory operand",
            AsmErrorKind::BadCallMode => "invalid call mode",
            AsmErrorKind::UnknownDirective => "unknown directive",
            AsmErrorKind::OutputFull => "output buffer full",
            AsmErrorKind::LabelTableFull => "label table full",
        }
    }
}

impl fmt::Display for AsmErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl core::error::Error for AsmError {}

type Res<T> = Result<T, AsmErrorKind>;

/// One entry of the label table [`assemble`] fills: a label's name, the slot it names and
/// the line that defines it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Label<'a> {
    name: &'a str,
    pc: usize,
    line: u32,
}

impl Label<'_> {
    /// An unused entry, to initialise a table: `[Label::EMPTY; N]`.
    pub const EMPTY: Label<'static> = Label { name: "", pc: 0, line: 0 };
}

/// Entries of the label table [`assemble`] needs for `text`: one per label definition.
pub fn labels_needed(text: &str) -> usize {
    text.lines().filter(|raw| matches!(split_line(raw), Ok(Line { label: Some(_), .. }))).count()
}

/// The line of `text` whose instruction occupies slot `pc` (either slot of `lddw`), so a
/// validation or run-time error naming an instruction can name its source line too.
/// `None` past the last instruction. Lines that do not assemble count as nothing: call it
/// on text that assembled.
pub fn line_of_slot(text: &str, pc: usize) -> Option<u32> {
    let mut next = 0usize;
    for (idx, raw) in text.lines().enumerate() {
        if let Ok(Line { body: Some(body), .. }) = split_line(raw) {
            next += slot_count(body);
            if pc < next {
                return Some(line_number(idx));
            }
        }
    }
    None
}

/// Assembles `text` into `out`; returns the number of slots written (`lddw` takes two).
/// `labels` is scratch for the label table, at least [`labels_needed`]`(text)` entries.
/// Errors name the first bad line: the first pass reports malformed lines and labels
/// defined twice in text order, the second unknown labels and out-of-range distances.
pub fn assemble<'a>(text: &'a str, out: &mut [Insn], labels: &mut [Label<'a>]) -> Result<usize, AsmError> {
    // Pass 1: encode every instruction (label targets left as 0), collect the labels.
    let mut pc = 0usize;
    let mut defined = 0usize;
    let mut first_exit = None;
    for (idx, raw) in text.lines().enumerate() {
        let line = line_number(idx);
        let err = |kind| AsmError { line, kind };
        let encoded = split_line(raw).and_then(|parsed| {
            if let Some(name) = parsed.label {
                if !is_label_name(name) {
                    return Err(AsmErrorKind::BadLabel);
                }
                let slot = labels.get_mut(defined).ok_or(AsmErrorKind::LabelTableFull)?;
                *slot = Label { name, pc, line };
                defined += 1;
            }
            parsed.body.map(|body| Ok((encode(body)?, mnemonic(body) == "exit"))).transpose()
        });
        let encoded = match encoded {
            Ok(e) => e,
            // A label defined twice on an earlier line (or this one) is the first error.
            Err(kind) => return Err(first_duplicate(labels, defined).unwrap_or(err(kind))),
        };
        if let Some((enc, is_exit)) = encoded {
            if is_exit && first_exit.is_none() {
                first_exit = Some(pc);
            }
            for insn in enc.slots() {
                let Some(slot) = out.get_mut(pc) else {
                    return Err(first_duplicate(labels, defined).unwrap_or(err(AsmErrorKind::OutputFull)));
                };
                *slot = *insn;
                pc += 1;
            }
        }
    }
    if let Some(e) = first_duplicate(labels, defined) {
        return Err(e);
    }
    let labels = labels.get(..defined).unwrap_or(&[]);
    // Pass 2: resolve label targets.
    let mut pc = 0usize;
    for (idx, raw) in text.lines().enumerate() {
        let line = line_number(idx);
        let err = |kind| AsmError { line, kind };
        let Some(body) = split_line(raw).map_err(err)?.body else {
            continue;
        };
        let enc = encode(body).map_err(err)?;
        if let Some((name, field)) = enc.target {
            let target = find_label(labels, name)
                .or(if name == "exit" { first_exit } else { None })
                .ok_or(err(AsmErrorKind::UnknownLabel))?;
            let rel = target as i64 - pc as i64 - 1;
            let slot = out.get_mut(pc).ok_or(err(AsmErrorKind::OutputFull))?;
            match field {
                Field::Off => {
                    slot.off = i16::try_from(rel).map_err(|_| err(AsmErrorKind::JumpOutOfRange))?;
                }
                Field::Imm => {
                    slot.imm = i32::try_from(rel).map_err(|_| err(AsmErrorKind::JumpOutOfRange))?;
                }
            }
        }
        pc += enc.len;
    }
    Ok(pc)
}

/// Sorts the first `defined` labels by name (then line) and returns the error for the
/// earliest line that defines a name a second time.
fn first_duplicate(labels: &mut [Label], defined: usize) -> Option<AsmError> {
    let labels = labels.get_mut(..defined)?;
    labels.sort_unstable_by(|a, b| a.name.cmp(b.name).then(a.line.cmp(&b.line)));
    let line = labels
        .windows(2)
        .filter_map(|pair| match pair {
            [a, b] if a.name == b.name => Some(b.line),
            _ => None,
        })
        .min()?;
    Some(AsmError { line, kind: AsmErrorKind::DuplicateLabel })
}

/// The slot a label names, in a table sorted by name with no name twice.
fn find_label(labels: &[Label], name: &str) -> Option<usize> {
    let i = labels.binary_search_by(|l| l.name.cmp(name)).ok()?;
    labels.get(i).map(|l| l.pc)
}

/// Assembles `text` into a new vector.
#[cfg(feature = "alloc")]
pub fn assemble_to_vec(text: &str) -> Result<alloc::vec::Vec<Insn>, AsmError> {
    let (mut slots, mut label_count) = (0usize, 0usize);
    for raw in text.lines() {
        // A line that does not split is left to `assemble`, which reports the first error
        // in text order.
        let Ok(parsed) = split_line(raw) else { continue };
        label_count += usize::from(parsed.label.is_some());
        if let Some(body) = parsed.body {
            slots += slot_count(body);
        }
    }
    let mut out = alloc::vec![Insn::default(); slots];
    let mut labels = alloc::vec![Label::EMPTY; label_count];
    let n = assemble(text, &mut out, &mut labels)?;
    out.truncate(n);
    Ok(out)
}

/// Writes the 8-byte encodings of `insns` into `out`; returns the byte count, or `None` when
/// `out` is too small.
pub fn encode_bytes(insns: &[Insn], out: &mut [u8]) -> Option<usize> {
    let len = insns.len().checked_mul(Insn::SIZE)?;
    let dst = out.get_mut(..len)?;
    for (chunk, insn) in dst.chunks_exact_mut(Insn::SIZE).zip(insns) {
        chunk.copy_from_slice(&insn.encode());
    }
    Some(len)
}

/// The 8-byte encodings of `insns`, concatenated.
#[cfg(feature = "alloc")]
pub fn to_bytes(insns: &[Insn]) -> alloc::vec::Vec<u8> {
    insns.iter().flat_map(|i| i.encode()).collect()
}

/// Assembles `text` straight to bytecode.
#[cfg(feature = "alloc")]
pub fn assemble_to_bytes(text: &str) -> Result<alloc::vec::Vec<u8>, AsmError> {
    assemble_to_vec(text).map(|v| to_bytes(&v))
}

fn line_number(idx: usize) -> u32 {
    u32::try_from(idx.saturating_add(1)).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Lines and labels

struct Line<'a> {
    label: Option<&'a str>,
    body: Option<&'a str>,
}

fn strip_comment(line: &str) -> &str {
    let mut end = line.len();
    if let Some(i) = line.find('#') {
        end = end.min(i);
    }
    if let Some(i) = line.find("//") {
        end = end.min(i);
    }
    line.get(..end).unwrap_or(line).trim()
}

fn split_line(raw: &str) -> Res<Line<'_>> {
    let trimmed = raw.trim();
    if trimmed.starts_with("--") {
        // A bpf_conformance section header that leaked into the program text.
        return Err(AsmErrorKind::UnknownDirective);
    }
    let line = strip_comment(trimmed);
    if line.is_empty() {
        return Ok(Line { label: None, body: None });
    }
    let first_end = line.find(char::is_whitespace).unwrap_or(line.len());
    let first = line.get(..first_end).unwrap_or(line);
    if let Some(name) = first.strip_suffix(':') {
        let rest = line.get(first_end..).unwrap_or("").trim();
        let body = if rest.is_empty() { None } else { Some(rest) };
        return Ok(Line { label: Some(name), body });
    }
    Ok(Line { label: None, body: Some(line) })
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '.' || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
}

/// The first token of an instruction body, as [`tokenize`] finds it (leading separators
/// skipped).
fn mnemonic(body: &str) -> &str {
    body.split(|c: char| c.is_whitespace() || c == ',').find(|t| !t.is_empty()).unwrap_or("")
}

/// Slots an (already validated) instruction body occupies.
fn slot_count(body: &str) -> usize {
    if mnemonic(body) == "lddw" { 2 } else { 1 }
}

// ---------------------------------------------------------------------------------------------
// Tokens

const MAX_TOKENS: usize = 6;

struct Tokens<'a> {
    items: [&'a str; MAX_TOKENS],
    len: usize,
}

impl<'a> Tokens<'a> {
    fn mnemonic(&self) -> &'a str {
        self.items[0]
    }
    fn operands(&self) -> &[&'a str] {
        self.items.get(1..self.len).unwrap_or(&[])
    }
}

/// Splits on whitespace and commas, keeping `[...]` together as one token.
fn tokenize(s: &str) -> Res<Tokens<'_>> {
    let mut items = [""; MAX_TOKENS];
    let mut len = 0usize;
    let mut start: Option<usize> = None;
    let mut in_bracket = false;
    for (i, c) in s.char_indices() {
        if in_bracket {
            if c == ']' {
                in_bracket = false;
            }
            continue;
        }
        let sep = c.is_whitespace() || c == ',';
        if sep {
            if let Some(st) = start.take() {
                push_token(&mut items, &mut len, s.get(st..i).unwrap_or(""))?;
            }
        } else {
            if start.is_none() {
                start = Some(i);
            }
            if c == '[' {
                in_bracket = true;
            }
        }
    }
    if in_bracket {
        return Err(AsmErrorKind::BadMemoryOperand);
    }
    if let Some(st) = start {
        push_token(&mut items, &mut len, s.get(st..).unwrap_or(""))?;
    }
    if len == 0 {
        return Err(AsmErrorKind::UnknownMnemonic);
    }
    Ok(Tokens { items, len })
}

fn push_token<'a>(items: &mut [&'a str; MAX_TOKENS], len: &mut usize, tok: &'a str) -> Res<()> {
    let slot = items.get_mut(*len).ok_or(AsmErrorKind::BadOperandCount)?;
    *slot = tok;
    *len += 1;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Operands

struct Num {
    neg: bool,
    mag: u64,
    hex: bool,
}

/// Parses `[+-]digits` or `[+-]0xhex`. Malformed → `BadImmediate`; too large for u64 →
/// `ImmediateOutOfRange`.
fn parse_num(s: &str) -> Res<Num> {
    let (neg, rest) = if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else if let Some(r) = s.strip_prefix('+') {
        (false, r)
    } else {
        (false, s)
    };
    let (hex, digits) = match rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        Some(d) => (true, d),
        None => (false, rest),
    };
    if digits.is_empty() {
        return Err(AsmErrorKind::BadImmediate);
    }
    let radix = if hex { 16 } else { 10 };
    let mut mag: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or(AsmErrorKind::BadImmediate)?;
        match mag.checked_mul(u64::from(radix)).and_then(|m| m.checked_add(u64::from(d))) {
            Some(m) => mag = m,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(AsmErrorKind::ImmediateOutOfRange);
    }
    Ok(Num { neg, mag, hex })
}

fn imm32(s: &str) -> Res<i32> {
    if s.starts_with('%') {
        return Err(AsmErrorKind::BadRegister);
    }
    let n = parse_num(s)?;
    let value = match (n.neg, n.hex) {
        (false, false) => i32::try_from(n.mag).ok(),
        (false, true) => u32::try_from(n.mag).ok().map(|v| v as i32),
        (true, _) => {
            if n.mag <= 0x8000_0000 {
                i32::try_from(-(n.mag as i64)).ok()
            } else {
                None
            }
        }
    };
    value.ok_or(AsmErrorKind::ImmediateOutOfRange)
}

fn imm64(s: &str) -> Res<u64> {
    if s.starts_with('%') {
        return Err(AsmErrorKind::BadRegister);
    }
    let n = parse_num(s)?;
    if n.neg {
        if n.mag > 1 << 63 {
            return Err(AsmErrorKind::ImmediateOutOfRange);
        }
        Ok(n.mag.wrapping_neg())
    } else {
        Ok(n.mag)
    }
}

/// A signed offset with an explicit or implicit sign, checked against `[min, max]`.
fn signed_offset(s: &str, min: i64, max: i64) -> Res<i64> {
    let n = parse_num(s).map_err(|k| match k {
        AsmErrorKind::ImmediateOutOfRange => AsmErrorKind::OffsetOutOfRange,
        _ => AsmErrorKind::BadOffset,
    })?;
    let v = i64::try_from(n.mag).map_err(|_| AsmErrorKind::OffsetOutOfRange)?;
    let v = if n.neg { -v } else { v };
    if v < min || v > max {
        return Err(AsmErrorKind::OffsetOutOfRange);
    }
    Ok(v)
}

fn reg(s: &str) -> Res<u8> {
    let digits = s.strip_prefix("%r").ok_or(AsmErrorKind::BadRegister)?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AsmErrorKind::BadRegister);
    }
    let mut n: u8 = 0;
    for b in digits.bytes() {
        n = n * 10 + (b - b'0');
    }
    if n > 10 {
        return Err(AsmErrorKind::BadRegister);
    }
    Ok(n)
}

/// `[%rN]`, `[%rN+off]`, `[%rN-off]` (spaces allowed inside the brackets).
fn mem_operand(s: &str) -> Res<(u8, i16)> {
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or(AsmErrorKind::BadMemoryOperand)?.trim();
    match inner.find(['+', '-']) {
        None => Ok((reg(inner)?, 0)),
        Some(pos) => {
            let r = reg(inner.get(..pos).unwrap_or("").trim())?;
            let sign = inner.get(pos..pos + 1).unwrap_or("+");
            let rest = inner.get(pos + 1..).unwrap_or("").trim();
            if rest.starts_with(['+', '-']) {
                return Err(AsmErrorKind::BadOffset);
            }
            let magnitude = signed_offset(rest, 0, i64::from(u16::MAX) + 1)?;
            let v = if sign == "-" { -magnitude } else { magnitude };
            let off = i16::try_from(v).map_err(|_| AsmErrorKind::OffsetOutOfRange)?;
            Ok((r, off))
        }
    }
}

#[derive(Clone, Copy)]
enum Field {
    Off,
    Imm,
}

enum Target<'a> {
    Rel(i64),
    Label(&'a str),
}

fn jump_target(s: &str, field: Field) -> Res<Target<'_>> {
    if s.starts_with(['+', '-']) {
        let (min, max) = match field {
            Field::Off => (i64::from(i16::MIN), i64::from(i16::MAX)),
            Field::Imm => (i64::from(i32::MIN), i64::from(i32::MAX)),
        };
        return signed_offset(s, min, max).map(Target::Rel);
    }
    if is_label_name(s) { Ok(Target::Label(s)) } else { Err(AsmErrorKind::BadJumpTarget) }
}

// ---------------------------------------------------------------------------------------------
// Encoding

struct Encoded<'a> {
    insns: [Insn; 2],
    len: usize,
    target: Option<(&'a str, Field)>,
}

impl<'a> Encoded<'a> {
    fn one(insn: Insn) -> Encoded<'a> {
        Encoded { insns: [insn, Insn::default()], len: 1, target: None }
    }
    fn slots(&self) -> &[Insn] {
        self.insns.get(..self.len).unwrap_or(&[])
    }
}

/// Exactly `N` operands.
fn operands<'t, const N: usize>(ops: &[&'t str]) -> Res<[&'t str; N]> {
    ops.try_into().map_err(|_| AsmErrorKind::BadOperandCount)
}

const ALU_OPS: &[(&str, u8, i16)] = &[
    ("add", alu::ADD, 0),
    ("sub", alu::SUB, 0),
    ("mul", alu::MUL, 0),
    ("div", alu::DIV, 0),
    ("sdiv", alu::DIV, 1),
    ("or", alu::OR, 0),
    ("and", alu::AND, 0),
    ("lsh", alu::LSH, 0),
    ("rsh", alu::RSH, 0),
    ("mod", alu::MOD, 0),
    ("smod", alu::MOD, 1),
    ("xor", alu::XOR, 0),
    ("mov", alu::MOV, 0),
    ("arsh", alu::ARSH, 0),
];

const JMP_OPS: &[(&str, u8)] = &[
    ("jeq", jmp::JEQ),
    ("jgt", jmp::JGT),
    ("jge", jmp::JGE),
    ("jset", jmp::JSET),
    ("jne", jmp::JNE),
    ("jsgt", jmp::JSGT),
    ("jsge", jmp::JSGE),
    ("jlt", jmp::JLT),
    ("jle", jmp::JLE),
    ("jslt", jmp::JSLT),
    ("jsle", jmp::JSLE),
];

const MOVSX: &[(&str, u8, i16)] = &[
    ("movsx832", class::ALU, 8),
    ("movsx1632", class::ALU, 16),
    ("movsx864", class::ALU64, 8),
    ("movsx1664", class::ALU64, 16),
    ("movsx3264", class::ALU64, 32),
];

const SIZES: &[(&str, u8)] = &[("b", mem::B), ("h", mem::H), ("w", mem::W), ("dw", mem::DW)];

fn size_of(suffix: &str) -> Option<u8> {
    SIZES.iter().find(|(n, _)| *n == suffix).map(|&(_, s)| s)
}

fn encode(body: &str) -> Res<Encoded<'_>> {
    let toks = tokenize(body)?;
    let m = toks.mnemonic();
    let ops = toks.operands();

    if m.starts_with('.') {
        if m != ".raw" {
            return Err(AsmErrorKind::UnknownDirective);
        }
        let [value] = operands(ops)?;
        let v = imm64(value)?;
        return Ok(Encoded::one(Insn::decode(v.to_le_bytes())));
    }

    match m {
        "exit" => {
            let [] = operands(ops)?;
            return Ok(Encoded::one(Insn::new(op::EXIT, 0, 0, 0, 0)));
        }
        "lddw" => {
            let [dst, value] = operands(ops)?;
            let dst = reg(dst)?;
            let v = imm64(value)?;
            let lo = Insn::new(op::LDDW, dst, 0, 0, v as u32 as i32);
            let hi = Insn::new(0, 0, 0, 0, (v >> 32) as u32 as i32);
            return Ok(Encoded { insns: [lo, hi], len: 2, target: None });
        }
        "ja" | "ja32" => {
            let [target] = operands(ops)?;
            let field = if m == "ja" { Field::Off } else { Field::Imm };
            let opcode = if m == "ja" { op::JA } else { op::JA32 };
            return Ok(with_target(Insn::new(opcode, 0, 0, 0, 0), jump_target(target, field)?, field));
        }
        "call" => return encode_call(ops),
        "lock" => return encode_lock(ops),
        _ => {}
    }

    // Byte swaps.
    for (prefix, opcode) in [
        ("le", class::ALU | alu::END | source::K),
        ("be", class::ALU | alu::END | source::X),
        ("bswap", class::ALU64 | alu::END),
        ("swap", class::ALU64 | alu::END),
    ] {
        if let Some(width) = m.strip_prefix(prefix)
            && matches!(width, "16" | "32" | "64")
        {
            let [dst] = operands(ops)?;
            let dst = reg(dst)?;
            let imm = if width == "16" {
                16
            } else if width == "32" {
                32
            } else {
                64
            };
            return Ok(Encoded::one(Insn::new(opcode, dst, 0, 0, imm)));
        }
    }

    // Loads and stores.
    if let Some(rest) = m.strip_prefix("ldx") {
        let (mode, size) = match rest.strip_prefix('s') {
            Some(sz) if sz != "dw" => (mem::MEMSX, size_of(sz)),
            _ => (mem::MEM, size_of(rest)),
        };
        if let Some(size) = size {
            let [dst, mem] = operands(ops)?;
            let dst = reg(dst)?;
            let (src, off) = mem_operand(mem)?;
            return Ok(Encoded::one(Insn::new(class::LDX | mode | size, dst, src, off, 0)));
        }
    }
    if let Some(size) = m.strip_prefix("stx").and_then(size_of) {
        let [mem, src] = operands(ops)?;
        let (dst, off) = mem_operand(mem)?;
        let src = reg(src)?;
        return Ok(Encoded::one(Insn::new(class::STX | mem::MEM | size, dst, src, off, 0)));
    }
    if let Some(size) = m.strip_prefix("st").and_then(size_of) {
        let [mem, value] = operands(ops)?;
        let (dst, off) = mem_operand(mem)?;
        let imm = imm32(value)?;
        return Ok(Encoded::one(Insn::new(class::ST | mem::MEM | size, dst, 0, off, imm)));
    }

    // Conditional jumps.
    let (base, is32) = match m.strip_suffix("32") {
        Some(b) => (b, true),
        None => (m, false),
    };
    if let Some(&(_, code)) = JMP_OPS.iter().find(|(n, _)| *n == base) {
        let [dst, second, target] = operands(ops)?;
        let cls = if is32 { class::JMP32 } else { class::JMP };
        let dst = reg(dst)?;
        let insn = if second.starts_with('%') {
            Insn::new(cls | code | source::X, dst, reg(second)?, 0, 0)
        } else {
            Insn::new(cls | code | source::K, dst, 0, 0, imm32(second)?)
        };
        return Ok(with_target(insn, jump_target(target, Field::Off)?, Field::Off));
    }

    // ALU.
    let cls = if is32 { class::ALU } else { class::ALU64 };
    if base == "neg" {
        let [dst] = operands(ops)?;
        return Ok(Encoded::one(Insn::new(cls | alu::NEG, reg(dst)?, 0, 0, 0)));
    }
    if let Some(&(_, code, off)) = ALU_OPS.iter().find(|(n, _, _)| *n == base) {
        let [dst, second] = operands(ops)?;
        let dst = reg(dst)?;
        let insn = if second.starts_with('%') {
            Insn::new(cls | code | source::X, dst, reg(second)?, off, 0)
        } else {
            Insn::new(cls | code | source::K, dst, 0, off, imm32(second)?)
        };
        return Ok(Encoded::one(insn));
    }
    if let Some(&(_, cls, off)) = MOVSX.iter().find(|(n, _, _)| *n == m) {
        let [dst, src] = operands(ops)?;
        let (dst, src) = (reg(dst)?, reg(src)?);
        return Ok(Encoded::one(Insn::new(cls | alu::MOV | source::X, dst, src, off, 0)));
    }
    Err(AsmErrorKind::UnknownMnemonic)
}

fn with_target<'a>(mut insn: Insn, target: Target<'a>, field: Field) -> Encoded<'a> {
    match target {
        Target::Rel(v) => {
            // `jump_target` already checked the range of `v` for `field`.
            match field {
                Field::Off => insn.off = v as i16,
                Field::Imm => insn.imm = v as i32,
            }
            Encoded::one(insn)
        }
        Target::Label(name) => {
            let mut e = Encoded::one(insn);
            e.target = Some((name, field));
            e
        }
    }
}

fn encode_call<'a>(ops: &[&'a str]) -> Res<Encoded<'a>> {
    let (mode, target) = match ops {
        [t] => ("helper", *t),
        [m, t] => (*m, *t),
        _ => return Err(AsmErrorKind::BadOperandCount),
    };
    match mode {
        "helper" => {
            if target.starts_with('%') {
                Ok(Encoded::one(Insn::new(op::CALLX, reg(target)?, 0, 0, 0)))
            } else {
                Ok(Encoded::one(Insn::new(op::CALL, 0, pseudo::CALL_HELPER, 0, imm32(target)?)))
            }
        }
        "local" => {
            let insn = Insn::new(op::CALL, 0, pseudo::CALL_LOCAL, 0, 0);
            Ok(with_target(insn, jump_target(target, Field::Imm)?, Field::Imm))
        }
        "runtime" => Ok(Encoded::one(Insn::new(op::CALL, 0, pseudo::CALL_BTF, 0, imm32(target)?))),
        _ => Err(AsmErrorKind::BadCallMode),
    }
}

const ATOMIC_OPS: &[(&str, i32, bool)] = &[
    ("add", atomic::ADD, true),
    ("or", atomic::OR, true),
    ("and", atomic::AND, true),
    ("xor", atomic::XOR, true),
    ("xchg", atomic::XCHG, false),
    ("cmpxchg", atomic::CMPXCHG, false),
];

/// `lock [fetch] op[32] [%rD+off], %rS`.
fn encode_lock<'a>(ops: &[&'a str]) -> Res<Encoded<'a>> {
    let (fetch, rest) = match ops {
        [] => return Err(AsmErrorKind::BadOperandCount),
        ["fetch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let name = rest.first().ok_or(AsmErrorKind::BadOperandCount)?;
    let (base, size) = match name.strip_suffix("32") {
        Some(b) => (b, mem::W),
        None => (*name, mem::DW),
    };
    let &(_, code, fetch_optional) =
        ATOMIC_OPS.iter().find(|(n, _, _)| *n == base).ok_or(AsmErrorKind::UnknownMnemonic)?;
    let [_, dst_op, src_op] = rest else {
        return Err(AsmErrorKind::BadOperandCount);
    };
    let (dst, off) = mem_operand(dst_op)?;
    let src = reg(src_op)?;
    let imm = if fetch && fetch_optional { code | atomic::FETCH } else { code };
    Ok(Encoded::one(Insn::new(class::STX | mem::ATOMIC | size, dst, src, off, imm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Insn {
        let mut out = [Insn::default(); 4];
        let n = assemble(text, &mut out, &mut [Label::EMPTY; 4]).expect("assembles");
        assert_eq!(n, 1, "{text}");
        out[0]
    }

    fn error(text: &str) -> AsmError {
        let mut out = [Insn::default(); 16];
        assemble(text, &mut out, &mut [Label::EMPTY; 4]).expect_err("must fail")
    }

    #[test]
    fn lines_of_slots() {
        let text = "# sum\nmov %r0, 0\n\nlddw %r1, 7 ; two slots\nloop:\n  add %r0, 1\nexit\n";
        let lines = [0, 1, 2, 3, 4, 5].map(|pc| line_of_slot(text, pc));
        assert_eq!(lines, [Some(2), Some(4), Some(4), Some(6), Some(7), None]);
    }

    #[test]
    fn encodings() {
        assert_eq!(one("mov %r0, 1"), Insn::new(0xb7, 0, 0, 0, 1));
        assert_eq!(one("mov32 %r1, %r2"), Insn::new(0xbc, 1, 2, 0, 0));
        assert_eq!(one("sdiv32 %r1, -3"), Insn::new(0x34, 1, 0, 1, -3));
        assert_eq!(one("smod %r1, %r3"), Insn::new(0x9f, 1, 3, 1, 0));
        assert_eq!(one("neg32 %r4"), Insn::new(0x84, 4, 0, 0, 0));
        assert_eq!(one("movsx1632 %r4, %r3"), Insn::new(0xbc, 4, 3, 16, 0));
        assert_eq!(one("movsx3264 %r0, %r9"), Insn::new(0xbf, 0, 9, 32, 0));
        assert_eq!(one("be16 %r0"), Insn::new(0xdc, 0, 0, 0, 16));
        assert_eq!(one("le64 %r0"), Insn::new(0xd4, 0, 0, 0, 64));
        assert_eq!(one("bswap32 %r0"), Insn::new(0xd7, 0, 0, 0, 32));
        assert_eq!(one("ldxsh %r0, [%r10-2]"), Insn::new(0x89, 0, 10, -2, 0));
        assert_eq!(one("ldxdw %r0, [%r1]"), Insn::new(0x79, 0, 1, 0, 0));
        assert_eq!(one("stw [%r1+0x10], 0xffffffff"), Insn::new(0x62, 1, 0, 16, -1));
        assert_eq!(one("stxb [%r1 - 3], %r2"), Insn::new(0x73, 1, 2, -3, 0));
        assert_eq!(one("lock fetch add32 [%r10-4], %r1"), Insn::new(0xc3, 10, 1, -4, 1));
        assert_eq!(one("lock cmpxchg [%r10-8], %r1"), Insn::new(0xdb, 10, 1, -8, 0xf1));
        assert_eq!(one("call 5"), Insn::new(0x85, 0, 0, 0, 5));
        assert_eq!(one("call %r2"), Insn::new(0x8d, 2, 0, 0, 0));
        assert_eq!(one("call local -3"), Insn::new(0x85, 0, 1, 0, -3));
        assert_eq!(one("ja32 +70000"), Insn::new(0x06, 0, 0, 0, 70000));
        assert_eq!(one("jsle32 %r1, -1, -2"), Insn::new(0xd6, 1, 0, -2, -1));
        assert_eq!(one(".raw 0x0000000000000095"), Insn::new(0x95, 0, 0, 0, 0));
    }

    #[test]
    fn labels_and_exit() {
        let text = "ja end\nmid: lddw %r0, -1\nend:\njne %r0, 0, exit\ncall local mid\nexit\n";
        let mut out = [Insn::default(); 8];
        let mut labels = [Label::EMPTY; 2];
        assert_eq!(labels_needed(text), 2);
        let n = assemble(text, &mut out, &mut labels).expect("assembles");
        assert_eq!(n, 6);
        assert_eq!(out[0].off, 2);
        assert_eq!((out[1].imm, out[2].imm), (-1, -1));
        assert_eq!(out[3].off, 1);
        assert_eq!(out[4].imm, -4);
    }

    #[test]
    fn errors() {
        use AsmErrorKind::*;
        assert_eq!(error("mov32 %r0, 2147483648").kind, ImmediateOutOfRange);
        assert_eq!(error("mov32 %r0, 0x100000000").kind, ImmediateOutOfRange);
        assert_eq!(error("exit\nja nowhere").kind, UnknownLabel);
        assert_eq!(error("exit\nja nowhere").line, 2);
        assert_eq!(error("a:\na:\nexit").kind, DuplicateLabel);
        assert_eq!(error("ldxb %r0, [%r1+0x10000]").kind, OffsetOutOfRange);
        assert_eq!(error("ldxb %r0, [%r1-32769]").kind, OffsetOutOfRange);
        assert_eq!(error("ldxb %r0, %r1").kind, BadMemoryOperand);
        assert_eq!(error("or %r0, %r11").kind, BadRegister);
        assert_eq!(error("lock").kind, BadOperandCount);
        assert_eq!(error("lock or [%r10-8]").kind, BadOperandCount);
        assert_eq!(error(".foo").kind, UnknownDirective);
        assert_eq!(error("call far 1").kind, BadCallMode);
        assert_eq!(error("ja 5").kind, BadJumpTarget);
        assert_eq!(error("mov %r0, 99999999999999999999999").kind, ImmediateOutOfRange);
        // Found by the assembler property: a leading comma before `lddw` still makes two
        // slots, and the first error in text order wins even when a later line does not split.
        #[cfg(feature = "alloc")]
        {
            let p = assemble_to_vec(", lddw %r3, 2\n, exit\nja exit").expect("assembles");
            assert_eq!((p.len(), p[3].off), (4, -2));
        }
        assert_eq!(error("]x\n--a"), AsmError { line: 1, kind: UnknownMnemonic });
        let mut small = [Insn::default(); 1];
        assert_eq!(assemble("lddw %r0, 1", &mut small, &mut []).map_err(|e| e.kind), Err(OutputFull));
        let mut out = [Insn::default(); 4];
        assert_eq!(
            assemble("a:\nb: exit", &mut out, &mut [Label::EMPTY; 1]),
            Err(AsmError { line: 2, kind: LabelTableFull })
        );
    }
}
