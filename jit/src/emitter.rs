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
use crate::table::{CODE_PADDING, HoleValue, StencilId, StencilTable};

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

    #[inline]
    pub const fn operand(mut self, index: usize, value: u32) -> Holes {
        self.operands[index] = value;
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

/// Label value of a label not bound yet.
const UNBOUND: u32 = u32::MAX;

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
    #[inline]
    pub fn place(&mut self, id: StencilId, holes: &Holes) -> Result<(), Error> {
        let entry = *self.table.entries.get(id.0 as usize).ok_or(Error::UnknownStencil { id: id.0 })?;
        let start = self.at;
        let len = entry.code_len as usize;
        self.copy(entry.code_start as usize, len)?;
        let end = start + len;
        self.at = end;
        let first = entry.holes_start as usize;
        let records = self.table.holes.get(first..first + entry.holes_len as usize).ok_or(Error::CorruptTable)?;
        for (index, hole) in records.iter().enumerate() {
            let offset = start + hole.offset as usize;
            let place = self.base.wrapping_add(offset as u64);
            let addend = hole.addend as i64 as u64;
            match hole.value {
                HoleValue::Continue => {
                    let value = self.base.wrapping_add(end as u64).wrapping_add(addend);
                    P::patch(hole.kind, self.out, offset, value, place)?;
                }
                HoleValue::Jump | HoleValue::Cold => {
                    let label = if hole.value == HoleValue::Jump { holes.jump } else { holes.cold };
                    if label == Label::NONE {
                        return Err(Error::MissingTarget { id: id.0 });
                    }
                    let labels = self.labels.len() as u32;
                    let target =
                        *self.labels.get(label.0 as usize).ok_or(Error::LabelOutOfRange { label: label.0, labels })?;
                    if target == UNBOUND {
                        let capacity = self.fixups.len() as u32;
                        let slot = self.fixups.get_mut(self.fixup_count).ok_or(Error::FixupsFull { capacity })?;
                        *slot = Fixup { at: start as u32, hole: (first + index) as u32, label: label.0 };
                        self.fixup_count += 1;
                    } else {
                        let value = self.base.wrapping_add(target as u64).wrapping_add(addend);
                        P::patch(hole.kind, self.out, offset, value, place)?;
                    }
                }
                HoleValue::Operand0 | HoleValue::Operand1 | HoleValue::Operand2 | HoleValue::Operand3 => {
                    let operand = holes.operands[hole.value as usize - HoleValue::Operand0 as usize];
                    P::patch_imm32(hole.kind, self.out, offset, (operand as i32).wrapping_add(hole.addend), place)?;
                }
            }
        }
        Ok(())
    }

    /// Copies `len` bytes of table code from `from` to the current offset: whole 16-byte
    /// chunks when the output has room for the last one (the table's padding makes the
    /// source side always readable), so the copy is a few vector moves, not a call.
    #[inline(always)]
    fn copy(&mut self, from: usize, len: usize) -> Result<(), Error> {
        const CHUNK: usize = CODE_PADDING;
        let padded = len.next_multiple_of(CHUNK);
        let at = self.at;
        if let (Some(dst), Some(src)) = (self.out.get_mut(at..at + padded), self.table.code.get(from..from + padded)) {
            for (d, s) in dst.chunks_exact_mut(CHUNK).zip(src.chunks_exact(CHUNK)) {
                d.copy_from_slice(s);
            }
            return Ok(());
        }
        let available = self.out.len().saturating_sub(at) as u64;
        let dst = self.out.get_mut(at..at + len).ok_or(Error::CodeBufferFull { needed: len as u64, available })?;
        dst.copy_from_slice(self.table.code.get(from..from + len).ok_or(Error::CorruptTable)?);
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
