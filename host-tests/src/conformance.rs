//! The bpf_conformance `.data` format: sections `-- asm`, `-- raw`, `-- mem`, `-- result`,
//! `-- error`, plus `-- c` and `-- no register offset` (ignored). `#` starts a comment outside
//! `-- asm` and `-- error` (the assembler handles comments itself).
//!
//! `-- raw` holds either 64-bit words (`0x5566778800000018`, one per slot, each the
//! little-endian u64 of the slot's 8 bytes, as in `tests/lddw.data`) or plain hex bytes
//! (`85 01 00 00 00 00 00 00`, as in `negative/unused-*.data`); both may be mixed.
//! `-- mem` is whitespace-separated hex bytes over any number of lines.

use std::path::{Path, PathBuf};

use tessera::ebpf::{Error, LoadError, asm};

/// One `.data` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestCase {
    /// File stem (`lddw` for `lddw.data`).
    pub name: String,
    /// The file the case came from (empty for [`parse`]d text).
    pub path: PathBuf,
    /// Program text of `-- asm`, comments kept, lines as in the file.
    pub asm: Option<String>,
    /// 1-based file line of the first line of `asm` (an assembler error on asm line `n` is on
    /// file line `asm_first_line + n - 1`).
    pub asm_first_line: usize,
    /// Bytes of `-- raw`.
    pub raw: Option<Vec<u8>>,
    /// Bytes of `-- mem` (empty when absent).
    pub mem: Vec<u8>,
    /// `-- result`: expected r0.
    pub result: Option<u64>,
    /// `-- error`: the program must be rejected (the text is the suite's message, often empty).
    pub error: Option<String>,
    /// Section headers the format does not define (e.g. `-- Unknown directive`), with their
    /// 1-based file line; their contents are skipped.
    pub unknown_sections: Vec<(usize, String)>,
}

impl TestCase {
    /// True when the file has no program at all (neither `-- asm` nor `-- raw`).
    pub fn has_program(&self) -> bool {
        self.asm.is_some() || self.raw.is_some()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Asm,
    Raw,
    Mem,
    Result,
    Error,
    Ignored,
}

fn strip_hash_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Parses the text of a `.data` file. Errors name the 1-based file line.
pub fn parse(name: &str, text: &str) -> Result<TestCase, String> {
    let mut case = TestCase { name: name.to_string(), ..TestCase::default() };
    let mut section = Section::None;
    let mut asm = String::new();
    let mut raw: Vec<u8> = Vec::new();
    let mut mem: Vec<u8> = Vec::new();
    let mut result_text: Option<String> = None;
    let mut error_text: Option<String> = None;
    let (mut saw_asm, mut saw_raw) = (false, false);

    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix("--") {
            let header = header.trim();
            section = match header {
                "asm" => {
                    saw_asm = true;
                    case.asm_first_line = lineno + 1;
                    Section::Asm
                }
                "raw" => {
                    saw_raw = true;
                    Section::Raw
                }
                "mem" => Section::Mem,
                "result" => Section::Result,
                "error" => {
                    error_text.get_or_insert_with(String::new);
                    Section::Error
                }
                "c" | "no register offset" => Section::Ignored,
                other => {
                    case.unknown_sections.push((lineno, other.to_string()));
                    Section::Ignored
                }
            };
            continue;
        }
        match section {
            Section::Asm => {
                asm.push_str(line);
                asm.push('\n');
            }
            Section::None | Section::Ignored => {}
            Section::Raw => {
                for tok in strip_hash_comment(line).split_whitespace() {
                    parse_raw_token(tok, &mut raw).map_err(|e| format!("line {lineno}: {e}"))?;
                }
            }
            Section::Mem => {
                for tok in strip_hash_comment(line).split_whitespace() {
                    let digits = tok.strip_prefix("0x").unwrap_or(tok);
                    let b = if digits.len() <= 2 { u8::from_str_radix(digits, 16).ok() } else { None };
                    mem.push(b.ok_or_else(|| format!("line {lineno}: bad memory byte {tok:?}"))?);
                }
            }
            Section::Result => {
                let t = strip_hash_comment(line).trim();
                if !t.is_empty() {
                    if result_text.is_some() {
                        return Err(format!("line {lineno}: second result value"));
                    }
                    result_text = Some(t.to_string());
                }
            }
            Section::Error => {
                let t = trimmed;
                if !t.is_empty() && !t.starts_with('#') {
                    let e = error_text.get_or_insert_with(String::new);
                    if !e.is_empty() {
                        e.push('\n');
                    }
                    e.push_str(t);
                }
            }
        }
    }

    if saw_asm {
        case.asm = Some(asm);
    }
    if saw_raw {
        if !raw.len().is_multiple_of(8) {
            return Err(format!("raw section has {} bytes, not a multiple of 8", raw.len()));
        }
        case.raw = Some(raw);
    }
    case.mem = mem;
    case.error = error_text;
    if let Some(t) = result_text {
        case.result = Some(parse_u64(&t).ok_or_else(|| format!("bad result value {t:?}"))?);
    }
    Ok(case)
}

fn parse_u64(t: &str) -> Option<u64> {
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

/// `0x…` → one slot (little-endian u64); otherwise a two-digit hex byte.
fn parse_raw_token(tok: &str, out: &mut Vec<u8>) -> Result<(), String> {
    if let Some(h) = tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X")) {
        let v = u64::from_str_radix(h, 16).map_err(|_| format!("bad raw word {tok:?}"))?;
        out.extend_from_slice(&v.to_le_bytes());
    } else if tok.len() == 2 {
        out.push(u8::from_str_radix(tok, 16).map_err(|_| format!("bad raw byte {tok:?}"))?);
    } else {
        return Err(format!("bad raw token {tok:?}"));
    }
    Ok(())
}

/// Reads and parses one file.
pub fn load_file(path: &Path) -> Result<TestCase, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
    let mut case = parse(&name, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    case.path = path.to_path_buf();
    Ok(case)
}

/// Every `*.data` file in `dir`, sorted by name. Panics (naming the file) on an unreadable or
/// malformed file: this is test support, and a silently skipped case hides a regression.
pub fn load_dir(dir: impl AsRef<Path>) -> Vec<TestCase> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut cases: Vec<TestCase> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .map(|p| load_file(&p).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// The conformance data directory: `$TESSERA_CONFORMANCE_DIR`, or `shared/bpf_conformance`
/// beside the workspace (`<workspace>/../shared/bpf_conformance`).
pub fn conformance_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TESSERA_CONFORMANCE_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bpf_conformance")
}

/// `conformance_dir()/tests`, the programs with expected results.
pub fn tests_dir() -> PathBuf {
    conformance_dir().join("tests")
}

/// `conformance_dir()/negative`, the cases a runner must reject.
pub fn negative_dir() -> PathBuf {
    conformance_dir().join("negative")
}

/// The program's bytecode: `raw` if present, else `asm` assembled. Assembler errors are
/// reported with the file line. A case with neither section is an error.
pub fn program_bytes(case: &TestCase) -> Result<Vec<u8>, String> {
    if let Some(raw) = &case.raw {
        return Ok(raw.clone());
    }
    let text = case.asm.as_deref().ok_or_else(|| format!("{}: no program", case.name))?;
    asm::assemble_to_bytes(text).map_err(|e| {
        let file_line = case.asm_first_line + e.line as usize - 1;
        format!("{} (file line {file_line}): {e}", case.name)
    })
}

/// Cases of `tests/` that tessera ends with an exact error: every `-- error` case (the
/// suite's text names uBPF's message, not an error of ours, so each gets its typed error
/// here; a case missing from this table fails), and the cases tessera deliberately rejects
/// although the file gives a `-- result`, each with its reason.
///
/// The 12 `*-imm-high` / `*-imm-neg` cases shift by an immediate outside the operand width.
/// RFC 9669 masks the amount and uBPF accepts them; the Linux verifier rejects them
/// ("invalid shift"), and so does tessera (issue 10: such a shift is a compiler bug, never
/// emitted by LLVM). The suite itself excludes them (`--exclude_regex "(imm|intmin)-"`,
/// tools/tests.cmake) when it runs against Linux.
pub const EXPECTED_ERRORS: &[(&str, Error)] = &[
    ("arsh32-imm-high", Error::Load(LoadError::ShiftOutOfRange { pc: 2, amount: 48, width: 32 })),
    ("arsh32-imm-neg", Error::Load(LoadError::ShiftOutOfRange { pc: 2, amount: -16, width: 32 })),
    ("arsh64-imm-high", Error::Load(LoadError::ShiftOutOfRange { pc: 2, amount: 124, width: 64 })),
    ("arsh64-imm-neg", Error::Load(LoadError::ShiftOutOfRange { pc: 2, amount: -4, width: 64 })),
    ("lsh32-imm-high", Error::Load(LoadError::ShiftOutOfRange { pc: 1, amount: 60, width: 32 })),
    ("lsh32-imm-neg", Error::Load(LoadError::ShiftOutOfRange { pc: 1, amount: -4, width: 32 })),
    ("lsh64-imm-high", Error::Load(LoadError::ShiftOutOfRange { pc: 1, amount: 68, width: 64 })),
    ("lsh64-imm-neg", Error::Load(LoadError::ShiftOutOfRange { pc: 1, amount: -60, width: 64 })),
    ("rsh32-imm-high", Error::Load(LoadError::ShiftOutOfRange { pc: 2, amount: 40, width: 32 })),
    ("rsh32-imm-neg", Error::Load(LoadError::ShiftOutOfRange { pc: 2, amount: -24, width: 32 })),
    ("rsh64-imm-high", Error::Load(LoadError::ShiftOutOfRange { pc: 1, amount: 68, width: 64 })),
    ("rsh64-imm-neg", Error::Load(LoadError::ShiftOutOfRange { pc: 1, amount: -60, width: 64 })),
];

/// The exact outcome tessera must give for a case of `tests/`: `Ok(r0)` from `-- result`,
/// or the typed error of [`EXPECTED_ERRORS`]. `Err` when the file has no usable
/// expectation (an `-- error` case missing from the table, or neither section).
pub fn expected_outcome(case: &TestCase) -> Result<Result<u64, Error>, String> {
    if let Some(&(_, error)) = EXPECTED_ERRORS.iter().find(|(name, _)| *name == case.name) {
        return Ok(Err(error));
    }
    match (&case.error, case.result) {
        (Some(text), _) => Err(format!("`-- error` ({text:?}) has no exact error in conformance::EXPECTED_ERRORS")),
        (None, Some(r0)) => Ok(Ok(r0)),
        (None, None) => Err("neither `-- result` nor `-- error`".to_string()),
    }
}

/// Formats an outcome for a failure message.
pub fn describe(outcome: &Result<u64, Error>) -> String {
    match outcome {
        Ok(r0) => format!("r0 = {r0:#x}"),
        Err(e) => format!("error {e:?} ({e})"),
    }
}
