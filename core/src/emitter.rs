//! The copy-and-patch emitter: two passes over a stream of stencil operations.
//!
//! Pass 1 ([`Emitter::layout`]) sizes every operation and records label offsets; pass 2
//! ([`Emitter::emit`]) copies stencil bytes and patches their holes. The operation stream is
//! produced by a caller-supplied function that is simply run twice, so the emitter stores
//! nothing but the label table, which the caller provides (no allocator needed). Any ISA can
//! be emitted from any host: the output is bytes plus the address they will run at.

use tessera_arch::{Isa, patch, patch_imm32};
use tessera_stencils::ids::StencilId;
use tessera_stencils::{HoleValue, StencilTable};

use crate::ebpf::Error;

/// A position in the code that branches and calls can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Label(pub u32);

/// One stencil to place, with the values for its holes.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    pub stencil: StencilId,
    /// `_HOLE_IMM`: sign-extended 32-bit immediate or offset.
    pub imm: i32,
    /// `_HOLE_IMM_HI`: upper half of a 64-bit immediate.
    pub imm_hi: i32,
    /// `_HOLE_INSN`: the source instruction index, for trap reports.
    pub insn: u32,
    /// `_HOLE_JUMP`: branch or call target.
    pub target: Option<Label>,
}

impl Op {
    pub const fn new(stencil: StencilId) -> Op {
        Op { stencil, imm: 0, imm_hi: 0, insn: 0, target: None }
    }
    pub const fn imm(mut self, imm: i32) -> Op {
        self.imm = imm;
        self
    }
    pub const fn imm_hi(mut self, imm_hi: i32) -> Op {
        self.imm_hi = imm_hi;
        self
    }
    pub const fn insn(mut self, insn: u32) -> Op {
        self.insn = insn;
        self
    }
    pub const fn target(mut self, label: Label) -> Op {
        self.target = Some(label);
        self
    }
}

/// What a code generator hands the emitter, in order.
#[derive(Clone, Copy, Debug)]
pub enum Item {
    /// Binds a label to the current position.
    Bind(Label),
    /// Places a stencil.
    Place(Op),
}

/// A code generator: produces its item stream on demand. The emitter asks twice (layout,
/// then emission), so generators keep no state between the passes; being generic over the
/// sink lets each pass inline the whole pipeline.
pub trait Generator {
    fn generate<S: FnMut(Item) -> Result<(), Error>>(&self, sink: &mut S) -> Result<(), Error>;
}

/// A generator's item stream recorded once, so the emission pass replays it instead of
/// generating it again (lowering costs about as much as copying and patching). Needs an
/// allocator; without one, generators simply run twice.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct Recorded(alloc::vec::Vec<Item>);

#[cfg(feature = "alloc")]
impl Recorded {
    pub fn record(generator: &impl Generator) -> Result<Recorded, Error> {
        let mut items = alloc::vec::Vec::new();
        generator.generate(&mut |item| {
            items.push(item);
            Ok(())
        })?;
        Ok(Recorded(items))
    }

    pub fn items(&self) -> &[Item] {
        &self.0
    }
}

#[cfg(feature = "alloc")]
impl Generator for Recorded {
    #[inline]
    fn generate<S: FnMut(Item) -> Result<(), Error>>(&self, sink: &mut S) -> Result<(), Error> {
        self.0.iter().try_for_each(|&item| sink(item))
    }
}

/// Emits stencils of one ISA's table.
#[derive(Clone, Copy, Debug)]
pub struct Emitter {
    table: &'static StencilTable,
}

impl Emitter {
    pub fn new(isa: Isa) -> Emitter {
        Emitter { table: tessera_stencils::table(isa) }
    }

    pub fn isa(&self) -> Isa {
        self.table.isa
    }

    pub fn table(&self) -> &'static StencilTable {
        self.table
    }

    /// Pass 1: the total code size, with every bound label's offset written to `labels`.
    /// Unbound labels keep `u32::MAX` and make [`Emitter::emit`] fail if targeted.
    pub fn layout(&self, generator: &impl Generator, labels: &mut [u32]) -> Result<usize, Error> {
        labels.iter_mut().for_each(|l| *l = u32::MAX);
        let mut size = 0usize;
        generator.generate(&mut |item| {
            match item {
                Item::Bind(Label(l)) => {
                    *labels.get_mut(l as usize).ok_or(Error::ScratchTooSmall { needed: l + 1 })? = size as u32
                }
                Item::Place(op) => size += self.table.get(op.stencil).code.len(),
            }
            Ok(())
        })?;
        Ok(size)
    }

    /// Pass 2: copies and patches into `out`, which will execute at address `base`.
    /// Returns the number of bytes written (equal to what [`Emitter::layout`] returned).
    pub fn emit(&self, generator: &impl Generator, labels: &[u32], out: &mut [u8], base: u64) -> Result<usize, Error> {
        let mut at = 0usize;
        generator.generate(&mut |item| {
            if let Item::Place(op) = item {
                at += self.place(op, labels, out, at, base)?;
            }
            Ok(())
        })?;
        Ok(at)
    }
    /// Copies one stencil to `out[at..]` and patches its holes.
    #[inline]
    fn place(&self, op: Op, labels: &[u32], out: &mut [u8], at: usize, base: u64) -> Result<usize, Error> {
        let stencil = self.table.get(op.stencil);
        let len = stencil.code.len();
        let available = out.len() as u32;
        let dst = out.get_mut(at..at + len).ok_or(Error::CodeBufferFull { needed: (at + len) as u32, available })?;
        dst.copy_from_slice(stencil.code);
        let start = base.wrapping_add(at as u64);
        for hole in stencil.holes {
            let offset = at + hole.offset as usize;
            let place = base.wrapping_add(offset as u64);
            let addend = hole.addend as i64 as u64;
            let number = match hole.value {
                HoleValue::Continue => {
                    let value = start.wrapping_add(len as u64).wrapping_add(addend);
                    patch(hole.kind, out, offset, value, place)?;
                    continue;
                }
                HoleValue::Jump => {
                    let target = op
                        .target
                        .and_then(|Label(l)| labels.get(l as usize).copied())
                        .filter(|&o| o != u32::MAX)
                        .ok_or(Error::Patch(tessera_arch::PatchError::OutOfRange))?;
                    let value = base.wrapping_add(target as u64).wrapping_add(addend);
                    patch(hole.kind, out, offset, value, place)?;
                    continue;
                }
                HoleValue::Imm => op.imm,
                HoleValue::ImmHi => op.imm_hi,
                HoleValue::Insn => op.insn as i32,
            };
            patch_imm32(hole.kind, out, offset, number.wrapping_add(hole.addend), place)?;
        }
        Ok(len)
    }
}
