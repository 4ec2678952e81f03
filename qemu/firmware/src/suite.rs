//! The bpf_conformance suite, assembled on the host by `build.rs` (with the host tests'
//! parser and tessera's assembler) and embedded in its own section (`.suite`, so that
//! `cargo xtask size` can tell test data from code).
//!
//! Format, little-endian: `b"TSU1"`, `u32` case count, then per case: `u8` name length,
//! name, `u8` kind (0 result expected, 1 error expected, 2 no expectation; bit 7: the host
//! could not assemble the program), `u64` expected result, `u8` length and text of the
//! expected error (its `Debug` form), `u16` memory length, memory, `u32` program length,
//! program.

const BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/suite.bin"));

#[unsafe(link_section = ".suite")]
static SUITE: [u8; BYTES.len()] = *include_bytes!(concat!(env!("OUT_DIR"), "/suite.bin"));

/// What a case's file expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Expect {
    Result(u64),
    /// This exact error, as its `Debug` text.
    Error(&'static str),
    Nothing,
}

/// One conformance program.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub name: &'static str,
    pub expect: Expect,
    /// False when the host assembler rejected the program (`program` is then empty).
    pub assembled: bool,
    /// Initial context memory (`-- mem`).
    pub memory: &'static [u8],
    pub program: &'static [u8],
}

/// The number of cases the suite holds.
pub fn len() -> u32 {
    SUITE.get(4..8).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The cases, in file-name order. Stops early only if the blob is malformed, which the
/// caller sees as fewer cases than [`len`].
pub fn cases() -> impl Iterator<Item = Case> {
    let mut rest = if SUITE.starts_with(b"TSU1") { SUITE.get(8..).unwrap_or(&[]) } else { &[] };
    core::iter::from_fn(move || {
        let (case, tail) = parse(rest)?;
        rest = tail;
        Some(case)
    })
    .take(len() as usize)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = bytes.split_at_checked(n)?;
    *bytes = tail;
    Some(head)
}

fn parse(mut bytes: &'static [u8]) -> Option<(Case, &'static [u8])> {
    let b = &mut bytes;
    let name_len = *take(b, 1)?.first()? as usize;
    let name = core::str::from_utf8(take(b, name_len)?).ok()?;
    let kind = *take(b, 1)?.first()?;
    let expected = u64::from_le_bytes(take(b, 8)?.try_into().ok()?);
    let error_len = *take(b, 1)?.first()? as usize;
    let error = core::str::from_utf8(take(b, error_len)?).ok()?;
    let mem_len = u16::from_le_bytes(take(b, 2)?.try_into().ok()?) as usize;
    let memory = take(b, mem_len)?;
    let prog_len = u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize;
    let program = take(b, prog_len)?;
    let expect = match kind & 0x7f {
        0 => Expect::Result(expected),
        1 => Expect::Error(error),
        _ => Expect::Nothing,
    };
    Some((Case { name, expect, assembled: kind & 0x80 == 0, memory, program }, bytes))
}
