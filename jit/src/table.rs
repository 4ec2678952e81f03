//! Stencil tables: the const data the generator writes per front end and ISA.
//!
//! A table is one code array (every stencil's bytes back to back, then [`CODE_PADDING`]
//! zero bytes so the emitter may copy whole 16-byte chunks), one array of hole records, and
//! an index of entries. Stencil ids are the same in every ISA's table of a front end.

use tessera_arch::{Isa, RelocKind};

use crate::Error;

/// Zero bytes after the last stencil's code: the emitter reads a fixed-size window of this
/// many bytes from a stencil's start (see `Emitter::place`).
pub const CODE_PADDING: usize = 256;

/// Index of a stencil in every ISA's table of one front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StencilId(pub u16);

/// Stencils specialised per register (or any small index): variant `k` is `first + k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Family {
    pub first: u16,
    pub count: u16,
}

impl Family {
    /// The variant for index `k`, if the family has one.
    #[inline]
    pub const fn variant(self, k: u8) -> Option<StencilId> {
        if (k as u16) < self.count { Some(StencilId(self.first + k as u16)) } else { None }
    }
}

/// Stencils specialised for two registers (or small indices): `rows × cols` variants in
/// row-major order, variant `(d, s)` at `first + d * cols + s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PairFamily {
    pub first: u16,
    pub rows: u8,
    pub cols: u8,
}

impl PairFamily {
    /// The variant for `(d, s)`, if the family has one.
    #[inline]
    pub const fn variant(self, d: u8, s: u8) -> Option<StencilId> {
        if d < self.rows && s < self.cols {
            Some(StencilId(self.first + d as u16 * self.cols as u16 + s as u16))
        } else {
            None
        }
    }
}

/// Which value a hole takes. Stencil sources name holes by extern symbols: `_HOLE_CONTINUE`,
/// `_HOLE_JUMP`, `_HOLE_COLD`, `_HOLE_OPERAND0` … `_HOLE_OPERAND3`; the symbol's *address*
/// is the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum HoleValue {
    /// The address of the next stencil (a branch to the continuation that is not the
    /// stencil's trailing jump, which the generator removes).
    Continue = 0,
    /// The branch or call target the front end gives ([`crate::Holes::jump`]).
    Jump = 1,
    /// The out-of-line slow path the front end gives ([`crate::Holes::cold`]), as CPython's
    /// `ERROR_TARGET`: kept apart from `Jump` so a stencil can have both.
    Cold = 2,
    /// A 32-bit number the front end gives ([`crate::Holes::operands`]`[0]` … `[3]`); the
    /// stencil reads the low 32 bits of the symbol's address.
    Operand0 = 3,
    Operand1 = 4,
    Operand2 = 5,
    Operand3 = 6,
}

impl HoleValue {
    /// Every value, in discriminant order.
    pub const ALL: [HoleValue; 7] = [
        HoleValue::Continue,
        HoleValue::Jump,
        HoleValue::Cold,
        HoleValue::Operand0,
        HoleValue::Operand1,
        HoleValue::Operand2,
        HoleValue::Operand3,
    ];

    /// The extern symbol stencil sources use for this hole.
    pub const fn symbol(self) -> &'static str {
        match self {
            HoleValue::Continue => "_HOLE_CONTINUE",
            HoleValue::Jump => "_HOLE_JUMP",
            HoleValue::Cold => "_HOLE_COLD",
            HoleValue::Operand0 => "_HOLE_OPERAND0",
            HoleValue::Operand1 => "_HOLE_OPERAND1",
            HoleValue::Operand2 => "_HOLE_OPERAND2",
            HoleValue::Operand3 => "_HOLE_OPERAND3",
        }
    }

    /// The hole named by `symbol`, if it is one.
    pub fn from_symbol(symbol: &str) -> Option<HoleValue> {
        HoleValue::ALL.into_iter().find(|v| v.symbol() == symbol)
    }

    /// The index into [`crate::Holes::operands`] of an operand hole.
    #[inline]
    pub const fn operand_index(self) -> Option<usize> {
        match self {
            HoleValue::Operand0 => Some(0),
            HoleValue::Operand1 => Some(1),
            HoleValue::Operand2 => Some(2),
            HoleValue::Operand3 => Some(3),
            _ => None,
        }
    }

    /// Whether the hole holds a code address (and so takes a branch relocation).
    pub const fn is_code_address(self) -> bool {
        matches!(self, HoleValue::Continue | HoleValue::Jump | HoleValue::Cold)
    }
}

/// One hole: where it is, how it is encoded, and what goes in it. Four bytes: holes are
/// the largest part of a table after the code (the generator refuses a stencil whose
/// holes do not fit these fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hole {
    /// Byte offset in the stencil's code.
    pub offset: u8,
    pub kind: RelocKind,
    pub value: HoleValue,
    /// The relocation addend (`A` in `S + A`): 0, or -4 for x86-64's PC-relative fields.
    pub addend: i8,
}

/// Where one stencil's code and holes are in its table (see [`StencilTable::entry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StencilEntry {
    pub code_start: u32,
    pub code_len: u32,
    pub holes_start: u32,
    pub holes_len: u32,
}

/// A stencil: machine code with holes.
#[derive(Clone, Copy, Debug)]
pub struct Stencil {
    pub code: &'static [u8],
    pub holes: &'static [Hole],
}

/// Every stencil of one front end for one ISA, as compact const data.
#[derive(Debug)]
pub struct StencilTable {
    pub isa: Isa,
    /// Digest of the generator inputs (sources, flags, toolchain) the table was built from.
    pub digest: u64,
    /// All stencils' code, in id order, then [`CODE_PADDING`] zero bytes.
    pub code: &'static [u8],
    /// All stencils' holes, in id order.
    pub holes: &'static [Hole],
    /// Where each stencil's code starts in `code`, then where the last one ends: stencil `i`
    /// is `code[code_starts[i]..code_starts[i + 1]]`.
    pub code_starts: &'static [u32],
    /// Where each stencil's holes start in `holes`, then where the last one's end. Two
    /// arrays take six bytes per stencil where a struct of both would be padded to eight.
    pub hole_starts: &'static [u16],
}

impl StencilTable {
    /// Where stencil `id`'s code and holes are, if the table has it.
    #[inline(always)]
    pub fn entry(&self, id: StencilId) -> Option<StencilEntry> {
        let i = id.0 as usize;
        let [code_start, code_end] = *self.code_starts.get(i..)?.first_chunk::<2>()?;
        let [holes_start, holes_end] = *self.hole_starts.get(i..)?.first_chunk::<2>()?;
        Some(StencilEntry {
            code_start,
            code_len: code_end.wrapping_sub(code_start),
            holes_start: holes_start as u32,
            holes_len: holes_end.wrapping_sub(holes_start) as u32,
        })
    }

    /// The stencil with id `id`, if the table has it.
    pub fn get(&self, id: StencilId) -> Option<Stencil> {
        let e = self.entry(id)?;
        let (code_start, holes_start) = (e.code_start as usize, e.holes_start as usize);
        Some(Stencil {
            code: self.code.get(code_start..code_start.checked_add(e.code_len as usize)?)?,
            holes: self.holes.get(holes_start..holes_start.checked_add(e.holes_len as usize)?)?,
        })
    }

    /// Number of stencils.
    pub fn len(&self) -> usize {
        self.code_starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of const data this table occupies (code with padding, hole records, index).
    pub fn size_bytes(&self) -> usize {
        self.code.len()
            + core::mem::size_of_val(self.holes)
            + core::mem::size_of_val(self.code_starts)
            + core::mem::size_of_val(self.hole_starts)
    }

    /// The longest stencil, in bytes.
    pub fn max_stencil_len(&self) -> usize {
        (0..self.len()).filter_map(|i| self.entry(StencilId(i as u16))).map(|e| e.code_len as usize).max().unwrap_or(0)
    }

    /// Checks what the emitter relies on: every entry's code and holes inside the table, the
    /// code padding present, every hole inside its stencil with a relocation kind of the
    /// table's ISA, and operand holes not PC-relative.
    pub fn check(&self) -> Result<(), Error> {
        let padding = self.code.get(self.code.len().saturating_sub(CODE_PADDING)..).ok_or(Error::CorruptTable)?;
        if padding.len() != CODE_PADDING || padding.iter().any(|&b| b != 0) {
            return Err(Error::CorruptTable);
        }
        let code_end = self.code.len() - CODE_PADDING;
        // One start per stencil and one end, in order, the ends at the ends of the arrays.
        let ordered_u32 = |s: &[u32]| s.windows(2).all(|w| w.first() <= w.last());
        let ordered_u16 = |s: &[u16]| s.windows(2).all(|w| w.first() <= w.last());
        if self.code_starts.len() != self.hole_starts.len()
            || !ordered_u32(self.code_starts)
            || !ordered_u16(self.hole_starts)
            || self.code_starts.last().is_some_and(|&end| end as usize != code_end)
            || self.hole_starts.last().is_some_and(|&end| end as usize != self.holes.len())
            || self.len() > usize::from(u16::MAX)
        {
            return Err(Error::CorruptTable);
        }
        for i in 0..self.len() {
            let stencil = self.get(StencilId(i as u16)).ok_or(Error::CorruptTable)?;
            for hole in stencil.holes {
                if hole.kind.isa() != self.isa {
                    return Err(Error::WrongTable);
                }
                if hole.offset as usize >= stencil.code.len() {
                    return Err(Error::CorruptTable);
                }
                if hole.value.operand_index().is_some() && hole.kind.is_pc_relative() {
                    return Err(Error::CorruptTable);
                }
            }
        }
        Ok(())
    }
}
