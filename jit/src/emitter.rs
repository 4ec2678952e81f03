//! The copy-and-patch emitter: one pass, each stencil one small copy plus a few stores.
//!
//! A front end binds [`Label`]s and places stencils with the values of their [`Holes`];
//! the emitter copies each stencil's code into the output and patches its holes at once.
//! Branches to labels already bound (backward) are patched on the spot; forward ones are
//! recorded as [`Fixup`]s and patched by [`Emitter::finish`]. The emitter is generic over
//! the ISA's [`Patcher`], so the patch logic is inlined into this loop with no ISA dispatch
//! per hole. It allocates nothing: label and fix-up tables are the caller's [`Scratch`].
//! Any ISA can be emitted from any host: the output is bytes plus the address they will
//! execute at.

use core::marker::PhantomData;

use tessera_arch::Patcher;

use crate::Error;
use crate::table::{HoleValue, StencilId, StencilTable};

/// A position in the code that branches can target. Labels index the caller's label table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Label(pub u32);

impl Label {
    /// No label: a stencil placed with it in a branch hole is an error.
    pub const NONE: Label = Label(u32::MAX);
}

/// The values of one placed stencil's holes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Holes {
    /// `_HOLE_OPERAND0` … `_HOLE_OPERAND3`.
    pub operands: [u32; 4],
    /// `_HOLE_JUMP`.
    pub jump: Label,
    /// `_HOLE_COLD`.
    pub cold: Label,
}

impl Holes {
    /// All operands zero, no targets.
    pub const NONE: Holes = Holes { operands: [0; 4], jump: Label::NONE, cold: Label::NONE };

    /// Sets `_HOLE_OPERAND{index}`; an index above 3 names no hole and changes nothing.
    #[inline]
    pub const fn operand(mut self, index: usize, value: u32) -> Holes {
        match index {
            0 => self.operands[0] = value,
            1 => self.operands[1] = value,
            2 => self.operands[2] = value,
            3 => self.operands[3] = value,
            _ => {}
        }
        self
    }

    #[inline]
    pub const fn jump(mut self, label: Label) -> Holes {
        self.jump = label;
        self
    }

    #[inline]
    pub const fn cold(mut self, label: Label) -> Holes {
        self.cold = label;
        self
    }
}

impl Default for Holes {
    fn default() -> Holes {
        Holes::NONE
    }
}

/// A branch hole waiting for its label to be bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fixup {
    /// Offset of the stencil in the output.
    at: u32,
    /// Index of the hole record in the table.
    hole: u32,
    label: u32,
}

impl Fixup {
    /// An unused entry, for statically allocated fix-up tables.
    pub const EMPTY: Fixup = Fixup { at: 0, hole: 0, label: 0 };
}

/// Label value of a label not bound yet.
const UNBOUND: u32 = u32::MAX;

/// Stencils up to this many bytes take the emitter's fast path (see [`Emitter::place`]).
const WINDOW: usize = crate::table::CODE_PADDING;
/// Room past the window's last hole offset for the widest field a patch writes.
const SLACK: usize = 16;

#[cold]
fn unknown_stencil(id: StencilId) -> Error {
    Error::UnknownStencil { id: id.0 }
}

#[cold]
fn bad_label(id: StencilId, label: Label, labels: &[u32]) -> Error {
    if label == Label::NONE {
        Error::MissingTarget { id: id.0 }
    } else {
        Error::LabelOutOfRange { label: label.0, labels: labels.len() as u32 }
    }
}

/// Copies the first `len` bytes (at most `WINDOW`) of `code` as whole 64-byte blocks.
#[inline(always)]
fn copy_blocks(window: &mut [u8; WINDOW + SLACK], code: &[u8; WINDOW], len: usize) {
    const BLOCK: usize = 64;
    const _: () = assert!(WINDOW == 4 * BLOCK);
    // Whole blocks, unrolled: every index is a constant inside the fixed-size arrays.
    macro_rules! block {
        ($i:literal) => {
            if len > $i * BLOCK {
                let (dst, src) = (&mut window[$i * BLOCK..($i + 1) * BLOCK], &code[$i * BLOCK..($i + 1) * BLOCK]);
                dst.copy_from_slice(src);
            }
        };
    }
    block!(0);
    block!(1);
    block!(2);
    block!(3);
}

/// The value of an operand hole (`Operand0` … `Operand3`).
#[inline(always)]
fn operand_value(holes: &Holes, value: HoleValue) -> i32 {
    let index = (value as usize).wrapping_sub(HoleValue::Operand0 as usize) & 3;
    holes.operands.get(index).copied().unwrap_or(0) as i32
}

/// The caller's tables for one emission: one entry per label the front end uses, and room
/// for every forward branch.
#[derive(Debug)]
pub struct Scratch<'s> {
    pub labels: &'s mut [u32],
    pub fixups: &'s mut [Fixup],
}

/// [`Scratch`] on the heap, reused across emissions.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct OwnedScratch {
    labels: alloc::vec::Vec<u32>,
    fixups: alloc::vec::Vec<Fixup>,
}

#[cfg(feature = "alloc")]
impl OwnedScratch {
    /// Scratch with at least `labels` labels and `fixups` fix-ups.
    pub fn with_capacity(labels: usize, fixups: usize) -> OwnedScratch {
        let mut scratch = OwnedScratch::default();
        scratch.ensure(labels, fixups);
        scratch
    }

    /// Grows the tables to at least `labels` and `fixups` entries.
    pub fn ensure(&mut self, labels: usize, fixups: usize) {
        if self.labels.len() < labels {
            self.labels.resize(labels, 0);
        }
        if self.fixups.len() < fixups {
            self.fixups.resize(fixups, Fixup::default());
        }
    }

    pub fn scratch(&mut self) -> Scratch<'_> {
        Scratch { labels: &mut self.labels, fixups: &mut self.fixups }
    }
}

/// Places stencils of one table into `out`, which executes at `base`.
pub struct Emitter<'a, P: Patcher> {
    table: &'static StencilTable,
    out: &'a mut [u8],
    base: u64,
    at: usize,
    labels: &'a mut [u32],
    fixups: &'a mut [Fixup],
    fixup_count: usize,
    patcher: PhantomData<P>,
}

impl<'a, P: Patcher> Emitter<'a, P> {
    /// An emitter writing `out` from its start; `out[0]` executes at `base`. Every label
    /// starts unbound.
    pub fn new(
        table: &'static StencilTable,
        out: &'a mut [u8],
        base: u64,
        scratch: Scratch<'a>,
    ) -> Result<Self, Error> {
        if table.isa != P::ISA {
            return Err(Error::WrongTable);
        }
        if out.len() > u32::MAX as usize {
            return Err(Error::CodeTooLarge);
        }
        scratch.labels.fill(UNBOUND);
        Ok(Emitter {
            table,
            out,
            base,
            at: 0,
            labels: scratch.labels,
            fixups: scratch.fixups,
            fixup_count: 0,
            patcher: PhantomData,
        })
    }

    /// Bytes placed so far: the offset the next stencil goes to.
    #[inline]
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The address the next stencil executes at.
    #[inline]
    pub fn address(&self) -> u64 {
        self.base.wrapping_add(self.at as u64)
    }

    /// The offset bound to `label`, if it is bound.
    pub fn label_offset(&self, label: Label) -> Option<usize> {
        self.labels.get(label.0 as usize).filter(|&&o| o != UNBOUND).map(|&o| o as usize)
    }

    /// Binds `label` to the current offset.
    #[inline]
    pub fn bind(&mut self, label: Label) -> Result<(), Error> {
        let labels = self.labels.len() as u32;
        let slot = self.labels.get_mut(label.0 as usize).ok_or(Error::LabelOutOfRange { label: label.0, labels })?;
        if *slot != UNBOUND {
            return Err(Error::LabelBoundTwice { label: label.0 });
        }
        *slot = self.at as u32;
        Ok(())
    }

    /// Copies stencil `id` to the current offset and patches its holes with `holes`.
    ///
    /// The fast path works on a fixed-size window of the output: the copy is a few
    /// fixed-size block moves and every hole offset is masked into the window, so the
    /// compiler proves each store in bounds and emits no checks. Stencils longer than the
    /// window, and the last bytes of the output, take the exact path.
    #[inline(always)]
    pub fn place(&mut self, id: StencilId, holes: &Holes) -> Result<(), Error> {
        match self.place_common(id, holes) {
            true => Ok(()),
            false => self.place_exact(id, holes),
        }
    }

    /// The common path, out of line (the front end places stencils from dozens of call
    /// sites, and a copy of the patch loop at each would cost more code than the call saves
    /// time); false when [`Emitter::place_exact`] must redo the stencil and say why.
    #[inline(never)]
    fn place_common(&mut self, id: StencilId, holes: &Holes) -> bool {
        let fixups_before = self.fixup_count;
        let placed = self.place_fast(id, holes).is_some();
        if !placed {
            // Whatever the fast path did is redone by the exact path.
            self.fixup_count = fixups_before;
        }
        placed
    }

    /// The fast path of [`Emitter::place`]: `None` for anything unusual (an unknown stencil
    /// or label, too little room, a full fix-up table, a value a hole cannot take), which
    /// [`Emitter::place_exact`] then reports precisely. Returning an `Option` keeps the
    /// common path free of error values.
    #[inline(always)]
    fn place_fast(&mut self, id: StencilId, holes: &Holes) -> Option<()> {
        let Emitter { table, out, base, at, labels, fixups, fixup_count, .. } = self;
        let entry = table.entry(id)?;
        let start = *at;
        let len = entry.code_len as usize;
        let first = entry.holes_start as usize;
        let window = out.get_mut(start..)?.first_chunk_mut::<{ WINDOW + SLACK }>()?;
        let code = table.code.get(entry.code_start as usize..)?.first_chunk::<WINDOW>()?;
        let records = table.holes.get(first..first + entry.holes_len as usize)?;
        if len > WINDOW {
            return None;
        }
        copy_blocks(window, code, len);
        let stencil_base = base.wrapping_add(start as u64);
        for (index, hole) in records.iter().enumerate() {
            let offset = hole.offset as usize & (WINDOW - 1);
            let place = stencil_base.wrapping_add(offset as u64);
            let target = match hole.value {
                HoleValue::Continue => stencil_base.wrapping_add(len as u64),
                HoleValue::Jump | HoleValue::Cold => {
                    let label = if hole.value == HoleValue::Jump { holes.jump } else { holes.cold };
                    let bound = *labels.get(label.0 as usize)?;
                    if bound == UNBOUND {
                        *fixups.get_mut(*fixup_count)? =
                            Fixup { at: start as u32, hole: (first + index) as u32, label: label.0 };
                        *fixup_count += 1;
                        continue;
                    }
                    base.wrapping_add(bound as u64)
                }
                operand => {
                    let v = operand_value(holes, operand);
                    P::patch_imm32(hole.kind, &mut window[..], offset, v.wrapping_add(hole.addend as i32), place)
                        .ok()?;
                    continue;
                }
            };
            P::patch(hole.kind, &mut window[..], offset, target.wrapping_add(hole.addend as i64 as u64), place).ok()?;
        }
        *at = start + len;
        Some(())
    }

    /// [`Emitter::place`] for a stencil longer than the window or near the end of the
    /// output: exact copies and bounds-checked patches.
    #[cold]
    #[inline(never)]
    fn place_exact(&mut self, id: StencilId, holes: &Holes) -> Result<(), Error> {
        let Emitter { table, out, base, at, labels, fixups, fixup_count, .. } = self;
        let entry = table.entry(id).ok_or(unknown_stencil(id))?;
        let start = *at;
        let len = entry.code_len as usize;
        let from = entry.code_start as usize;
        let first = entry.holes_start as usize;
        let records = table.holes.get(first..first + entry.holes_len as usize).ok_or(Error::CorruptTable)?;
        let available = out.len().saturating_sub(start) as u64;
        let dst = out.get_mut(start..start + len).ok_or(Error::CodeBufferFull { needed: len as u64, available })?;
        dst.copy_from_slice(table.code.get(from..from + len).ok_or(Error::CorruptTable)?);
        let stencil_base = base.wrapping_add(start as u64);
        for (index, hole) in records.iter().enumerate() {
            let offset = hole.offset as usize;
            let place = stencil_base.wrapping_add(offset as u64);
            let target = match hole.value {
                HoleValue::Continue => stencil_base.wrapping_add(len as u64),
                HoleValue::Jump | HoleValue::Cold => {
                    let label = if hole.value == HoleValue::Jump { holes.jump } else { holes.cold };
                    match labels.get(label.0 as usize) {
                        Some(&bound) if bound != UNBOUND => base.wrapping_add(bound as u64),
                        Some(_) => {
                            let capacity = fixups.len() as u32;
                            let slot = fixups.get_mut(*fixup_count).ok_or(Error::FixupsFull { capacity })?;
                            *slot = Fixup { at: start as u32, hole: (first + index) as u32, label: label.0 };
                            *fixup_count += 1;
                            continue;
                        }
                        None => return Err(bad_label(id, label, labels)),
                    }
                }
                operand => {
                    let v = operand_value(holes, operand);
                    P::patch_imm32(hole.kind, dst, offset, v.wrapping_add(hole.addend as i32), place)?;
                    continue;
                }
            };
            P::patch(hole.kind, dst, offset, target.wrapping_add(hole.addend as i64 as u64), place)?;
        }
        *at = start + len;
        Ok(())
    }

    /// Patches every forward branch and returns the number of bytes placed. Fails if a
    /// branch targets a label that was never bound.
    pub fn finish(self) -> Result<usize, Error> {
        let fixups = self.fixups.get(..self.fixup_count).ok_or(Error::CorruptTable)?;
        for fixup in fixups {
            let target = *self.labels.get(fixup.label as usize).ok_or(Error::CorruptTable)?;
            if target == UNBOUND {
                return Err(Error::UnboundLabel { label: fixup.label });
            }
            let hole = self.table.holes.get(fixup.hole as usize).ok_or(Error::CorruptTable)?;
            let offset = fixup.at as usize + hole.offset as usize;
            let value = self.base.wrapping_add(target as u64).wrapping_add(hole.addend as i64 as u64);
            P::patch(hole.kind, self.out, offset, value, self.base.wrapping_add(offset as u64))?;
        }
        Ok(self.at)
    }
}
