//! The branch peephole: makes every stencil's hot path fall through.
//!
//! LLVM reaches a tail-called hole through an unconditional jump, so a branch to it often
//! becomes `jcc .+N; jmp HOLE` (a short branch over the jump), a stencil ends in
//! `jcc CONTINUE; jmp HOLE`, or a branch lands on another jump. The peephole decodes a
//! stencil into instructions, rewrites its branches, lays the code out again and re-encodes
//! every branch and hole:
//!
//! - a branch to the continuation is a branch to the stencil's end (the next stencil starts
//!   there), so it needs no hole and a trailing one disappears;
//! - a branch whose target is an unconditional jump goes straight to that jump's target;
//! - `jcc L; jmp T; L:` becomes `j!cc T` (with `L` the stencil's end: `j!cc T` and the
//!   stencil falls through into the next one);
//! - branches to the next instruction, instructions nothing reaches and the `nop`s that
//!   replaced dead instructions are removed;
//! - on RISC-V, `addi rd, rd, %lo(operand)` ... `sext.w rd` becomes one `addiw` where
//!   nothing between uses `rd` (see [`widen_sign_extended_operands`]);
//! - where a conditional branch cannot take over a far jump (below), `b.cond L; <hot>;
//!   b END; L: b HOLE` becomes `b.!cond H; b HOLE; H: <hot>`, which falls through into the
//!   next stencil: the hot path runs one branch instead of two (every checked access and
//!   fuel charge on AArch64).
//!
//! A conditional branch may take over a jump to a far hole (`_HOLE_JUMP`, `_HOLE_COLD`) only
//! where its form reaches as far as the jump it replaces: on x86-64 (`jcc rel32` and
//! `jmp rel32` both reach ±2 GiB) but not on AArch64 (`b.cond` ±1 MiB against `b` ±128 MiB)
//! nor RISC-V (`bxx` ±4 KiB against `auipc`+`jalr` ±2 GiB), whose stencils keep
//! `b.!cond .+8; b HOLE` there, so that no program that compiles today stops compiling.
//! Continuation branches are always internal.
//!
//! Every instruction is decoded properly (x86-64 lengths by `iced-x86`; AArch64 words and
//! RISC-V instructions, compressed ones included, by `tessera_arch`); a stencil with anything the peephole cannot prove it moves
//! correctly (a PC-relative instruction without a relocation, a relocation across
//! instructions, a branch into the middle of an instruction, an internal call) is left
//! exactly as LLVM emitted it, apart from removing a trailing jump to the continuation.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl};
use tessera_arch::{Isa, RelocKind};
use tessera_jit::HoleValue;

use crate::extract::Hole;

/// Where a branch goes: instruction `i` (`i == len` is the stencil's end, where the next
/// stencil starts), or a hole with the relocation kind and addend of a plain jump to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Insn(usize),
    Hole { value: HoleValue, kind: RelocKind, addend: i32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Falls through (calls and traps included).
    Next,
    /// Never falls through (return, indirect jump).
    Stop,
    /// A direct jump (`cond: None`) or conditional branch.
    Branch { cond: Option<u32>, target: Target },
}

#[derive(Clone, Debug)]
struct Insn {
    /// The original bytes (re-encoded for branches).
    bytes: Vec<u8>,
    /// Holes inside a non-branch instruction, at offsets from its start.
    holes: Vec<Hole>,
    flow: Flow,
    /// A `nop` that replaced a dead instruction (see `extract::nop_dead_high_halves`).
    dead_nop: bool,
}

/// What the peephole did to one stencil.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `jcc L; jmp T; L:` pairs turned into one inverted branch.
    pub fused: usize,
    /// Branches retargeted past a jump.
    pub threaded: usize,
    /// Instructions removed (jumps to the next instruction, unreachable code, dead `nop`s).
    pub removed: usize,
    /// Far jumps moved ahead of the hot path.
    pub hoisted: usize,
    /// RISC-V operand holes whose `addi` became `addiw`, their `sext.w` removed.
    pub widened: usize,
    /// Code bytes before and after.
    pub bytes_before: usize,
    pub bytes_after: usize,
}

/// The rewritten code and holes, or `None` when the stencil is left as it is.
pub fn rewrite(isa: Isa, code: &[u8], holes: &[Hole], dead_nops: &[usize]) -> Option<(Vec<u8>, Vec<Hole>, Stats)> {
    let mut insns = decode(isa, code, holes, dead_nops)?;
    let mut stats = Stats { bytes_before: code.len(), ..Stats::default() };
    if isa == Isa::Riscv64 {
        widen_sign_extended_operands(&mut insns, &mut stats);
    }
    simplify(isa, &mut insns, &mut stats);
    let (code, holes) = layout(isa, &insns)?;
    stats.bytes_after = code.len();
    Some((code, holes, stats))
}

/// The addend of a plain jump to a hole's own address (x86-64: the field is the last four
/// bytes, so `S - 4` relative to the field).
fn plain_addend(kind: RelocKind) -> i32 {
    match kind {
        RelocKind::X86Pc32 | RelocKind::X86Plt32 => -4,
        _ => 0,
    }
}

/// Instruction boundaries and control flow: `(start, len, flow)` with targets still as byte
/// offsets (`Target::Insn(byte)`), or `None` for anything not understood.
fn boundaries(isa: Isa, code: &[u8]) -> Option<Vec<(usize, usize, Flow, bool)>> {
    let mut out = Vec::new();
    match isa {
        Isa::X86_64 => {
            let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
            for insn in &mut decoder {
                if insn.code() == Code::INVALID {
                    return None;
                }
                let (start, len) = (insn.ip() as usize, insn.len());
                let flow = match insn.flow_control() {
                    FlowControl::Next
                    | FlowControl::Call
                    | FlowControl::IndirectCall
                    | FlowControl::Interrupt
                    | FlowControl::Exception => Flow::Next,
                    FlowControl::Return | FlowControl::IndirectBranch => Flow::Stop,
                    FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {
                        let b = isa.direct_branch_at(code, start).filter(|b| b.len == len)?;
                        Flow::Branch {
                            cond: b.cond,
                            target: Target::Insn(start.checked_add_signed(b.offset as isize)?),
                        }
                    }
                    FlowControl::XbeginXabortXend => return None,
                };
                // A direct call or a RIP-relative operand is only movable with a relocation.
                let pc_relative = insn.is_ip_rel_memory_operand() || insn.flow_control() == FlowControl::Call;
                out.push((start, len, flow, pc_relative));
            }
        }
        Isa::Aarch64 => {
            if !code.len().is_multiple_of(4) {
                return None;
            }
            for start in (0..code.len()).step_by(4) {
                let word = u32::from_le_bytes(code[start..start + 4].try_into().ok()?);
                let (flow, pc_relative) = match isa.direct_branch_at(code, start) {
                    Some(b) => (
                        Flow::Branch {
                            cond: b.cond,
                            target: Target::Insn(start.checked_add_signed(b.offset as isize)?),
                        },
                        false,
                    ),
                    None if tessera_arch::aarch64::ends_flow(word) => (Flow::Stop, false),
                    None => (Flow::Next, tessera_arch::aarch64::is_pc_relative(word)),
                };
                out.push((start, 4, flow, pc_relative));
            }
        }
        Isa::Riscv64 => {
            use tessera_arch::riscv64;
            let mut start = 0;
            while start < code.len() {
                let (flow, len, pc_relative) = match isa.direct_branch_at(code, start) {
                    Some(b) => (
                        Flow::Branch {
                            cond: b.cond,
                            target: Target::Insn(start.checked_add_signed(b.offset as isize)?),
                        },
                        b.len,
                        false,
                    ),
                    None if riscv64::ends_flow(code, start) => (Flow::Stop, riscv64::insn_len(code, start)?, false),
                    None => (Flow::Next, riscv64::insn_len(code, start)?, riscv64::is_pc_relative(code, start)),
                };
                out.push((start, len, flow, pc_relative));
                start += len;
            }
        }
    }
    Some(out)
}

fn decode(isa: Isa, code: &[u8], holes: &[Hole], dead_nops: &[usize]) -> Option<Vec<Insn>> {
    let raw = boundaries(isa, code)?;
    let index_of = |byte: usize| -> Option<usize> {
        if byte == code.len() { Some(raw.len()) } else { raw.iter().position(|r| r.0 == byte) }
    };
    let mut insns = Vec::with_capacity(raw.len());
    let mut used = 0;
    for &(start, len, flow, pc_relative) in &raw {
        let inside: Vec<Hole> = holes
            .iter()
            .filter(|h| (start..start + len).contains(&(h.offset as usize)))
            .map(|h| Hole { offset: h.offset - start as u16, ..h.clone() })
            .collect();
        used += inside.len();
        if pc_relative && inside.is_empty() {
            return None;
        }
        let flow = match flow {
            Flow::Branch { cond, target: Target::Insn(byte) } => {
                let target = match inside.as_slice() {
                    [] => Target::Insn(index_of(byte)?),
                    [h] => {
                        // The relocation must be the branch's own field.
                        h.kind.branch_reach()?;
                        let encoded = isa.encode_hole_branch(cond, (h.kind, h.addend), &mut [0; 16])?;
                        if (encoded.len, encoded.reloc_at, encoded.kind) != (len, h.offset as usize, h.kind) {
                            return None;
                        }
                        if h.value == HoleValue::Continue && h.addend == plain_addend(h.kind) {
                            Target::Insn(raw.len())
                        } else {
                            Target::Hole { value: h.value, kind: h.kind, addend: h.addend }
                        }
                    }
                    _ => return None,
                };
                Flow::Branch { cond, target }
            }
            other => other,
        };
        let is_branch = matches!(flow, Flow::Branch { .. });
        insns.push(Insn {
            bytes: code[start..start + len].to_vec(),
            holes: if is_branch { Vec::new() } else { inside },
            flow,
            dead_nop: dead_nops.contains(&start),
        });
    }
    // Every hole must lie in exactly one instruction (a relocation across instructions or
    // past the end is not something to move).
    (used == holes.len()).then_some(insns)
}

/// Whether a conditional branch may replace a jump to hole `target`: it reaches as far.
fn cond_reaches(isa: Isa, cond: u32, target: Target) -> bool {
    match target {
        Target::Insn(_) => true,
        Target::Hole { kind, addend, .. } => isa
            .encode_hole_branch(Some(cond), (kind, addend), &mut [0; 16])
            .and_then(|b| b.kind.branch_reach())
            .is_some_and(|reach| Some(reach) >= kind.branch_reach()),
    }
}

fn simplify(isa: Isa, insns: &mut Vec<Insn>, stats: &mut Stats) {
    // Each pass strictly shrinks the code or retargets a branch past a jump; the bound only
    // guards against a jump cycle.
    for _ in 0..4 * insns.len() + 4 {
        if thread(isa, insns, stats)
            || fuse(isa, insns, stats)
            || remove_useless(insns, stats)
            || hoist_far_jump(isa, insns, stats)
        {
            continue;
        }
        break;
    }
}

/// Retargets one branch whose target is an unconditional jump.
fn thread(isa: Isa, insns: &mut [Insn], stats: &mut Stats) -> bool {
    for i in 0..insns.len() {
        let Flow::Branch { cond, target: Target::Insn(t) } = insns[i].flow else { continue };
        let Some(Flow::Branch { cond: None, target: next }) = insns.get(t).map(|n| n.flow) else { continue };
        if next == Target::Insn(t) || next == Target::Insn(i) {
            continue;
        }
        if cond.is_some_and(|c| !cond_reaches(isa, c, next)) {
            continue;
        }
        insns[i].flow = Flow::Branch { cond, target: next };
        stats.threaded += 1;
        return true;
    }
    false
}

/// Turns one `jcc L; jmp T; L:` into `j!cc T`.
fn fuse(isa: Isa, insns: &mut Vec<Insn>, stats: &mut Stats) -> bool {
    for i in 0..insns.len().saturating_sub(1) {
        let Flow::Branch { cond: Some(cond), target: Target::Insn(l) } = insns[i].flow else { continue };
        let Flow::Branch { cond: None, target } = insns[i + 1].flow else { continue };
        if l != i + 2 || is_target(insns, i + 1) || !cond_reaches(isa, cond, target) {
            continue;
        }
        let Some(inverted) = isa.invert_condition(cond) else { continue };
        insns[i].flow = Flow::Branch { cond: Some(inverted), target };
        remove(insns, i + 1);
        stats.fused += 1;
        return true;
    }
    false
}

/// Turns `b.cond L; <hot>; b END; L: b HOLE` (the far jump last and reached only from that
/// branch) into `b.!cond H; b HOLE; H: <hot>`, where the conditional form cannot reach the
/// hole itself (else [`thread`] makes it one branch).
fn hoist_far_jump(isa: Isa, insns: &mut Vec<Insn>, stats: &mut Stats) -> bool {
    let n = insns.len();
    let Some(k) = n.checked_sub(1) else { return false };
    let Flow::Branch { cond: None, target: far @ Target::Hole { .. } } = insns[k].flow else { return false };
    if k < 3 || insns[k - 1].flow != (Flow::Branch { cond: None, target: Target::Insn(n) }) {
        return false;
    }
    let sources: Vec<usize> =
        (0..n).filter(|&j| matches!(insns[j].flow, Flow::Branch { target: Target::Insn(t), .. } if t == k)).collect();
    let [i] = sources[..] else { return false };
    let Flow::Branch { cond: Some(cond), .. } = insns[i].flow else { return false };
    // The hot part `i + 1 ..= k - 2` is not empty (else `fuse`'s form is as good).
    if i + 2 > k - 1 || cond_reaches(isa, cond, far) {
        return false;
    }
    let Some(inverted) = isa.invert_condition(cond) else { return false };
    let jump = insns.remove(k);
    insns.insert(i + 1, jump);
    for insn in insns.iter_mut() {
        if let Flow::Branch { target: Target::Insn(t), .. } = &mut insn.flow
            && *t > i
            && *t < k
        {
            *t += 1;
        }
    }
    insns[i].flow = Flow::Branch { cond: Some(inverted), target: Target::Insn(i + 2) };
    stats.hoisted += 1;
    true
}

/// RISC-V: an operand hole is built by `lui rd, %hi; addi rd, rd, %lo`, and a stencil that
/// wants the 32-bit value sign-extended adds `sext.w rd` (`addiw rd, rd, 0`) further on.
/// `addiw rd, rd, %lo` builds the sign-extended value at once (the patcher fills either),
/// so when nothing between the two reads or writes `rd` and no branch leaves or enters, the
/// `addi` becomes `addiw` and the `sext.w` goes.
fn widen_sign_extended_operands(insns: &mut Vec<Insn>, stats: &mut Stats) {
    let mut i = 0;
    while i < insns.len() {
        let is_lo12_addi = insns[i].holes.iter().any(|h| h.kind == RelocKind::RvLo12I && h.offset == 0)
            && insns[i].bytes.len() == 4
            && word(&insns[i].bytes) & 0x707f == 0x13;
        let rd = (word(&insns[i].bytes) >> 7) & 0x1f;
        if is_lo12_addi
            && rd != 0
            && (word(&insns[i].bytes) >> 15) & 0x1f == rd
            && let Some(j) = sign_extension_of(insns, i, rd)
        {
            let addiw = word(&insns[i].bytes) & !0x7f | 0x1b;
            insns[i].bytes = addiw.to_le_bytes().to_vec();
            remove(insns, j);
            stats.widened += 1;
            stats.removed += 1;
        }
        i += 1;
    }
}

fn word(bytes: &[u8]) -> u32 {
    bytes.iter().take(4).rev().fold(0, |w, &b| w << 8 | u32::from(b))
}

/// The index of the `sext.w rd` (`addiw rd, rd, 0` or `c.addiw rd, 0`) that follows
/// instruction `i` in straight-line code with nothing between reading or writing `rd`.
fn sign_extension_of(insns: &[Insn], i: usize, rd: u32) -> Option<usize> {
    for j in i + 1..insns.len() {
        let n = &insns[j];
        if !matches!(n.flow, Flow::Next) || is_target(insns, j) {
            return None;
        }
        let w = word(&n.bytes);
        if n.bytes.len() == 2 {
            // c.addiw rd, 0: funct3 001, op 01, imm bits 12 and 6..2 zero.
            let c_sext = w & 0xf07f == 0x2001 && (w >> 7) & 0x1f == rd;
            return c_sext.then_some(j);
        }
        if w == (rd << 15 | rd << 7 | 0x1b) {
            return Some(j);
        }
        let (rs1, rs2, dst) = ((w >> 15) & 0x1f, (w >> 20) & 0x1f, (w >> 7) & 0x1f);
        let (reads, writes): (&[u32], Option<u32>) = match w & 0x7f {
            0x03 | 0x13 | 0x1b => (&[rs1], Some(dst)),
            0x07 => (&[rs1], None), // FP load: writes an FP register
            0x23 | 0x27 => (&[rs1, rs2], None),
            0x33 | 0x3b | 0x2f => (&[rs1, rs2], Some(dst)),
            0x17 | 0x37 => (&[], Some(dst)),
            _ => return None,
        };
        if reads.contains(&rd) || writes == Some(rd) {
            return None;
        }
    }
    None
}

fn is_target(insns: &[Insn], i: usize) -> bool {
    insns.iter().any(|n| matches!(n.flow, Flow::Branch { target: Target::Insn(t), .. } if t == i))
}

/// Removes branches to the next instruction, unreachable instructions and dead `nop`s.
fn remove_useless(insns: &mut Vec<Insn>, stats: &mut Stats) -> bool {
    let mut reachable = vec![false; insns.len()];
    let mut work = vec![0usize];
    while let Some(i) = work.pop() {
        if i >= insns.len() || reachable[i] {
            continue;
        }
        reachable[i] = true;
        match insns[i].flow {
            Flow::Next => work.push(i + 1),
            Flow::Stop => {}
            Flow::Branch { cond, target } => {
                if let Target::Insn(t) = target {
                    work.push(t);
                }
                if cond.is_some() {
                    work.push(i + 1);
                }
            }
        }
    }
    let before = insns.len();
    for i in (0..insns.len()).rev() {
        let to_next = matches!(insns[i].flow, Flow::Branch { target: Target::Insn(t), .. } if t == i + 1);
        if !reachable[i] || to_next || insns[i].dead_nop {
            remove(insns, i);
        }
    }
    stats.removed += before - insns.len();
    before != insns.len()
}

/// Removes instruction `i`; branches to it now go to the instruction after it.
fn remove(insns: &mut Vec<Insn>, i: usize) {
    insns.remove(i);
    for n in insns.iter_mut() {
        if let Flow::Branch { target: Target::Insn(t), .. } = &mut n.flow
            && *t > i
        {
            *t -= 1;
        }
    }
}

/// Lays the instructions out (internal branches as short as their distance allows) and
/// encodes them.
fn layout(isa: Isa, insns: &[Insn]) -> Option<(Vec<u8>, Vec<Hole>)> {
    let mut scratch = [0u8; 16];
    let mut lens: Vec<usize> = insns
        .iter()
        .map(|n| match n.flow {
            Flow::Branch { cond, target: Target::Insn(_) } => isa.branch_len(cond, 0).unwrap_or(n.bytes.len()),
            Flow::Branch { cond, target: Target::Hole { kind, addend, .. } } => {
                isa.encode_hole_branch(cond, (kind, addend), &mut scratch).map_or(0, |b| b.len)
            }
            _ => n.bytes.len(),
        })
        .collect();
    let starts = |lens: &[usize]| -> Vec<usize> {
        let mut at = 0;
        let mut starts: Vec<usize> = lens
            .iter()
            .map(|l| {
                at += l;
                at - l
            })
            .collect();
        starts.push(at);
        starts
    };
    // Lengths only grow, so this settles.
    loop {
        let at = starts(&lens);
        let mut changed = false;
        for (i, n) in insns.iter().enumerate() {
            if let Flow::Branch { cond, target: Target::Insn(t) } = n.flow {
                let need = isa.branch_len(cond, at[t] as i64 - at[i] as i64)?;
                if need > lens[i] {
                    lens[i] = need;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let at = starts(&lens);
    let mut code = Vec::with_capacity(at[insns.len()]);
    let mut holes = Vec::new();
    for (i, n) in insns.iter().enumerate() {
        let start = at[i];
        match n.flow {
            Flow::Branch { cond, target: Target::Insn(t) } => {
                isa.encode_branch(cond, at[t] as i64 - start as i64, lens[i], &mut scratch)?;
                code.extend_from_slice(&scratch[..lens[i]]);
            }
            Flow::Branch { cond, target: Target::Hole { value, kind, addend } } => {
                let b = isa.encode_hole_branch(cond, (kind, addend), &mut scratch)?;
                code.extend_from_slice(&scratch[..b.len]);
                holes.push(Hole {
                    offset: u16::try_from(start + b.reloc_at).ok()?,
                    kind: b.kind,
                    value,
                    addend: b.addend,
                });
            }
            _ => {
                code.extend_from_slice(&n.bytes);
                for h in &n.holes {
                    holes.push(Hole { offset: u16::try_from(start).ok()? + h.offset, ..h.clone() });
                }
            }
        }
    }
    holes.sort_by_key(|h| h.offset);
    Some((code, holes))
}

#[cfg(test)]
mod tests {
    //! Synthetic stencils: byte sequences as LLVM lays them out, with their relocations.
    use super::*;
    use HoleValue::{Cold, Continue, Jump, Operand0};
    use RelocKind::{A64CondBr19, A64Jump26, A64MovwUabsG0Nc, X86Abs32S, X86Plt32};

    fn hole(offset: u16, kind: RelocKind, value: HoleValue) -> Hole {
        Hole { offset, kind, value, addend: if kind == X86Plt32 { -4 } else { 0 } }
    }

    fn holes(h: &[Hole]) -> Vec<(u16, RelocKind, HoleValue, i32)> {
        h.iter().map(|h| (h.offset, h.kind, h.value, h.addend)).collect()
    }

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    const MOV_R10: [u8; 5] = [0x4d, 0x89, 0x54, 0x24, 0x28]; // movq %r10, 0x28(%r12)

    #[test]
    fn x86_short_branch_over_a_jump_to_a_hole_becomes_one_inverted_branch() {
        // jae .+5; jmp COLD; movq %r10, 0x28(%r12); jmp JUMP
        let mut code = vec![0x73, 0x05, 0xe9, 0, 0, 0, 0];
        code.extend(MOV_R10);
        code.extend([0xe9, 0, 0, 0, 0]);
        let (out, h, stats) =
            rewrite(Isa::X86_64, &code, &[hole(3, X86Plt32, Cold), hole(13, X86Plt32, Jump)], &[]).expect("rewritten");
        // jb COLD (rel32); movq; jmp JUMP
        let mut want = vec![0x0f, 0x82, 0, 0, 0, 0];
        want.extend(MOV_R10);
        want.extend([0xe9, 0, 0, 0, 0]);
        assert_eq!(out, want);
        assert_eq!(holes(&h), [(2, X86Plt32, Cold, -4), (12, X86Plt32, Jump, -4)]);
        assert_eq!((stats.fused, stats.bytes_before, stats.bytes_after), (1, 17, 16));
    }

    #[test]
    fn x86_trailing_branch_to_the_continuation_then_jump_becomes_a_fall_through() {
        // cmpq %r13, %r15; jae CONTINUE; jmp JUMP
        let code = [0x4d, 0x39, 0xef, 0x0f, 0x83, 0, 0, 0, 0, 0xe9, 0, 0, 0, 0];
        let (out, h, _) =
            rewrite(Isa::X86_64, &code, &[hole(5, X86Plt32, Continue), hole(10, X86Plt32, Jump)], &[]).unwrap();
        // cmpq; jb JUMP; and the next stencil follows.
        assert_eq!(out, [0x4d, 0x39, 0xef, 0x0f, 0x82, 0, 0, 0, 0]);
        assert_eq!(holes(&h), [(5, X86Plt32, Jump, -4)]);
    }

    #[test]
    fn x86_branch_to_a_jump_is_threaded_and_the_dead_jump_removed() {
        // cmpq $imm, %r15; jne L; movq $imm, %r15; jmp CONTINUE; L: jmp JUMP
        let mut code = vec![0x49, 0x81, 0xff, 0, 0, 0, 0, 0x75, 0x0c, 0x49, 0xc7, 0xc7, 0, 0, 0, 0];
        code.extend([0xe9, 0, 0, 0, 0, 0xe9, 0, 0, 0, 0]);
        let input = [
            hole(3, X86Abs32S, Operand0),
            hole(12, X86Abs32S, Operand0),
            hole(17, X86Plt32, Continue),
            hole(22, X86Plt32, Jump),
        ];
        let (out, h, stats) = rewrite(Isa::X86_64, &code, &input, &[]).unwrap();
        // cmpq; jne JUMP; movq $imm, %r15 (falls through)
        let want = [0x49, 0x81, 0xff, 0, 0, 0, 0, 0x0f, 0x85, 0, 0, 0, 0, 0x49, 0xc7, 0xc7, 0, 0, 0, 0];
        assert_eq!(out, want);
        assert_eq!(holes(&h), [(3, X86Abs32S, Operand0, 0), (9, X86Plt32, Jump, -4), (16, X86Abs32S, Operand0, 0)]);
        assert_eq!(stats.threaded, 1);
    }

    #[test]
    fn x86_internal_branches_keep_their_targets_across_edits() {
        // jne L (rel32, over 130 bytes); 130 x nop; L: ret; jmp CONTINUE
        let mut code = vec![0x0f, 0x85, 130, 0, 0, 0];
        code.extend([0x90; 130]);
        code.extend([0xc3, 0xe9, 0, 0, 0, 0]);
        let (out, h, _) = rewrite(Isa::X86_64, &code, &[hole(138, X86Plt32, Continue)], &[]).unwrap();
        // The unreachable jump after `ret` goes; the long branch stays rel32.
        assert_eq!(out, code[..137]);
        assert!(h.is_empty());
        // A short branch across a removed instruction is re-encoded: jmp L; jmp CONTINUE (dead); L: ret
        let code = [0xeb, 0x05, 0xe9, 0, 0, 0, 0, 0xc3];
        let (out, _, _) = rewrite(Isa::X86_64, &code, &[hole(3, X86Plt32, Continue)], &[]).unwrap();
        assert_eq!(out, [0xc3]);
        // A backward loop is kept: L: dec %eax; jne L; ret
        let code = [0xff, 0xc8, 0x75, 0xfc, 0xc3];
        let (out, _, _) = rewrite(Isa::X86_64, &code, &[], &[]).unwrap();
        assert_eq!(out, code);
    }

    #[test]
    fn x86_what_cannot_be_moved_is_left_alone() {
        // leaq 0(%rip), %rax with no relocation: moving it would change the address.
        let code = [0x73, 0x05, 0xe9, 0, 0, 0, 0, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3];
        assert!(rewrite(Isa::X86_64, &code, &[hole(3, X86Plt32, Cold)], &[]).is_none());
        // An internal call.
        assert!(rewrite(Isa::X86_64, &[0xe8, 0, 0, 0, 0, 0xc3], &[], &[]).is_none());
        // A branch into the middle of an instruction.
        assert!(rewrite(Isa::X86_64, &[0xeb, 0x01, 0x48, 0x89, 0xc0, 0xc3], &[], &[]).is_none());
        // A relocation that is not a jump's own field (inside a short jump).
        assert!(rewrite(Isa::X86_64, &[0x73, 0x05, 0xc3], &[hole(1, X86Plt32, Jump)], &[]).is_none());
        // Undecodable bytes.
        assert!(rewrite(Isa::X86_64, &[0x0f, 0x0b, 0x06], &[], &[]).is_none());
        // A jump to itself is kept (and does not hang the peephole).
        assert_eq!(rewrite(Isa::X86_64, &[0xeb, 0xfe], &[], &[]).map(|r| r.0), Some(vec![0xeb, 0xfe]));
    }

    #[test]
    fn aarch64_keeps_far_holes_behind_an_unconditional_branch() {
        // b.ne .+8; b CONTINUE; b JUMP  ->  b.eq END; b JUMP (b.cond would reach only ±1 MiB)
        let code = words(&[0x5400_0041, 0x1400_0000, 0x1400_0000]);
        let (out, h, stats) =
            rewrite(Isa::Aarch64, &code, &[hole(4, A64Jump26, Continue), hole(8, A64Jump26, Jump)], &[]).unwrap();
        assert_eq!(out, words(&[0x5400_0040, 0x1400_0000]));
        assert_eq!(holes(&h), [(4, A64Jump26, Jump, 0)]);
        assert_eq!(stats.fused, 1);
        // b.hs .+8; b JUMP at the end stays as it is.
        let code = words(&[0x5400_0042, 0x1400_0000]);
        let (out, _, _) = rewrite(Isa::Aarch64, &code, &[hole(4, A64Jump26, Jump)], &[]).unwrap();
        assert_eq!(out, code);
    }

    #[test]
    fn aarch64_far_jump_after_the_hot_path_moves_ahead_of_it() {
        // b.hs L; ldr x9, [x24, #0x248]; ldrb w5, [x9, x8]; b CONTINUE; L: b COLD
        let code = words(&[0x5400_0082, 0xf941_2709, 0x3868_6925, 0x1400_0000, 0x1400_0000]);
        let (out, h, stats) =
            rewrite(Isa::Aarch64, &code, &[hole(12, A64Jump26, Continue), hole(16, A64Jump26, Cold)], &[]).unwrap();
        // b.lo H; b COLD; H: ldr; ldrb (and the next stencil follows)
        assert_eq!(out, words(&[0x5400_0043, 0x1400_0000, 0xf941_2709, 0x3868_6925]));
        assert_eq!(holes(&h), [(4, A64Jump26, Cold, 0)]);
        assert_eq!((stats.hoisted, stats.removed), (1, 1));
        // A far jump some other branch reaches too stays where it is.
        // b.hs L; cbz x0, L; ldr; b CONTINUE; L: b COLD
        let code = words(&[0x5400_0082, 0xb400_0060, 0xf941_2709, 0x1400_0000, 0x1400_0000]);
        let (out, _, stats) =
            rewrite(Isa::Aarch64, &code, &[hole(12, A64Jump26, Continue), hole(16, A64Jump26, Cold)], &[]).unwrap();
        assert_eq!(stats.hoisted, 0);
        // (the continuation jump becomes an internal `b END`)
        assert_eq!(out, words(&[0x5400_0082, 0xb400_0060, 0xf941_2709, 0x1400_0002, 0x1400_0000]));
    }

    #[test]
    fn aarch64_branches_to_the_continuation_go_and_dead_nops_are_removed() {
        // mov x8, #imm; nop; nop; sub x22, x22, w8, sxtw; b CONTINUE
        let code = words(&[0xd280_0008, 0xd503_201f, 0xd503_201f, 0xcb28_c2d6, 0x1400_0000]);
        let (out, h, _) =
            rewrite(Isa::Aarch64, &code, &[hole(0, A64MovwUabsG0Nc, Operand0), hole(16, A64Jump26, Continue)], &[4, 8])
                .unwrap();
        assert_eq!(out, words(&[0xd280_0008, 0xcb28_c2d6]));
        assert_eq!(holes(&h), [(0, A64MovwUabsG0Nc, Operand0, 0)]);
        // A conditional branch to a hole that LLVM emitted itself keeps its relocation, and a
        // `cbz` over the continuation jump becomes `cbnz` to the end.
        let code = words(&[0xb400_0040, 0x1400_0000, 0x5400_0000, 0xd65f_03c0]);
        let (out, h, _) =
            rewrite(Isa::Aarch64, &code, &[hole(4, A64Jump26, Continue), hole(8, A64CondBr19, Cold)], &[]).unwrap();
        // cbz x0, L; b END; L: b.eq COLD; ret  ->  cbnz x0, END; b.eq COLD; ret
        assert_eq!(out, words(&[0xb500_0060, 0x5400_0000, 0xd65f_03c0]));
        assert_eq!(holes(&h), [(4, A64CondBr19, Cold, 0)]);
    }

    #[test]
    fn aarch64_pc_relative_data_without_a_relocation_is_left_alone() {
        // adr x0, .; b CONTINUE
        let code = words(&[0x1000_0000, 0x1400_0000]);
        assert!(rewrite(Isa::Aarch64, &code, &[hole(4, A64Jump26, Continue)], &[]).is_none());
    }

    #[test]
    fn riscv_operand_sign_extension_folds_into_addiw() {
        use RelocKind::{RvCallPlt, RvHi20, RvLo12I};
        // lui t0, %hi; addi t0, t0, %lo; ld t1, 0x240(a6); c.addiw t0, 0; c.add t0, a7;
        // auipc t1; jr t1 (CONTINUE)
        let mut code = words(&[0x0000_02b7, 0x0002_8293, 0x2408_3303]);
        code.extend([0x81, 0x22, 0xc6, 0x92]);
        code.extend(words(&[0x0000_0317, 0x0003_0067]));
        let input = [hole(0, RvHi20, Operand0), hole(4, RvLo12I, Operand0), hole(16, RvCallPlt, Continue)];
        let (out, h, stats) = rewrite(Isa::Riscv64, &code, &input, &[]).unwrap();
        // lui; addiw t0, t0, %lo; ld; c.add
        let mut want = words(&[0x0000_02b7, 0x0002_829b, 0x2408_3303]);
        want.extend([0xc6, 0x92]);
        assert_eq!(out, want);
        assert_eq!(holes(&h), [(0, RvHi20, Operand0, 0), (4, RvLo12I, Operand0, 0)]);
        assert_eq!(stats.widened, 1);
        // When something between reads t0 (sd t0, 8(a6)), the sext stays.
        let mut code = words(&[0x0000_02b7, 0x0002_8293, 0x0058_3423]);
        code.extend([0x81, 0x22]);
        let input = [hole(0, RvHi20, Operand0), hole(4, RvLo12I, Operand0)];
        let (out, _, stats) = rewrite(Isa::Riscv64, &code, &input, &[]).unwrap();
        assert_eq!((out, stats.widened), (code, 0));
    }

    #[test]
    fn riscv_far_jump_after_the_hot_path_moves_ahead_of_it() {
        use RelocKind::RvCallPlt;
        // bgeu t1, t2, L; ld a5, 0x248(a6); c.add a5, t0; lbu a5, 0(a5);
        // auipc t1; jr t1 (CONTINUE); L: auipc t1; jr t1 (COLD)
        let mut code = words(&[0x0073_7b63, 0x2488_3783]);
        code.extend([0x96, 0x97]);
        code.extend(words(&[0x0007_c783, 0x0000_0317, 0x0003_0067, 0x0000_0317, 0x0003_0067]));
        let (out, h, stats) =
            rewrite(Isa::Riscv64, &code, &[hole(14, RvCallPlt, Continue), hole(22, RvCallPlt, Cold)], &[]).unwrap();
        // bltu t1, t2, H; auipc t1; jr t1 (COLD); H: ld; c.add; lbu (and the next stencil follows)
        let mut want = words(&[0x0073_6663, 0x0000_0317, 0x0003_0067, 0x2488_3783]);
        want.extend([0x96, 0x97]);
        want.extend(words(&[0x0007_c783]));
        assert_eq!(out, want);
        assert_eq!(holes(&h), [(4, RvCallPlt, Cold, 0)]);
        assert_eq!(stats.hoisted, 1);
        // A compressed branch to the continuation becomes a 4-byte one to the end:
        // c.beqz a0, L; ret; L: auipc t1; jr t1 (CONTINUE)
        let mut code = vec![0x11, 0xc1, 0x82, 0x80];
        code.extend(words(&[0x0000_0317, 0x0003_0067]));
        let (out, h, _) = rewrite(Isa::Riscv64, &code, &[hole(4, RvCallPlt, Continue)], &[]).unwrap();
        // beq a0, x0, END (+6); ret
        assert_eq!(out, [0x63, 0x03, 0x05, 0x00, 0x82, 0x80]);
        assert!(h.is_empty());
        // An internal call (jal ra) is left alone.
        assert!(rewrite(Isa::Riscv64, &words(&[0x0040_00ef, 0x0000_8067]), &[], &[]).is_none());
    }
}
