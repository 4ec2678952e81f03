//! The committed tables are what the emitter relies on: well formed (every entry and hole in
//! bounds, every relocation kind of the table's ISA, the code padding present) and every
//! stencil patches cleanly with extreme operand values.

use tessera_jit::{CodeBuffer, Emitter, Fixup, Holes, Isa, Label, Patcher, Scratch, StencilId, WithPatcher};
use tessera_stencils::{LINKED, ids, table};

#[test]
fn every_table_is_well_formed_and_has_every_stencil() {
    assert_eq!(LINKED, &Isa::ALL, "the test build links every ISA");
    for &isa in LINKED {
        let t = table(isa).unwrap();
        assert_eq!(t.isa, isa);
        assert_eq!(t.len(), ids::COUNT, "{isa}");
        assert_eq!(ids::NAMES.len(), ids::COUNT);
        t.check().unwrap_or_else(|e| panic!("{isa}: {e}"));
    }
}

/// A damaged index (starts out of order, an end that is not the end of the code or holes,
/// arrays of different lengths) is `CorruptTable`, never a panic or a wrong stencil.
#[test]
fn a_damaged_index_is_a_corrupt_table() {
    use tessera_jit::{Error, StencilTable};
    let t = table(Isa::X86_64).unwrap();
    let leak_u32 = |v: Vec<u32>| -> &'static [u32] { Box::leak(v.into_boxed_slice()) };
    let leak_u16 = |v: Vec<u16>| -> &'static [u16] { Box::leak(v.into_boxed_slice()) };
    let with = |code_starts: &'static [u32], hole_starts: &'static [u16]| StencilTable {
        isa: t.isa,
        digest: t.digest,
        code: t.code,
        holes: t.holes,
        code_starts,
        hole_starts,
    };
    assert_eq!(with(t.code_starts, t.hole_starts).check(), Ok(()));
    let mut swapped = t.code_starts.to_vec();
    swapped.swap(1, 2);
    assert_eq!(with(leak_u32(swapped), t.hole_starts).check(), Err(Error::CorruptTable));
    let mut short_end = t.code_starts.to_vec();
    *short_end.last_mut().unwrap() -= 1;
    assert_eq!(with(leak_u32(short_end), t.hole_starts).check(), Err(Error::CorruptTable));
    let mut holes_past = t.hole_starts.to_vec();
    *holes_past.last_mut().unwrap() += 1;
    assert_eq!(with(t.code_starts, leak_u16(holes_past)).check(), Err(Error::CorruptTable));
    let fewer = leak_u16(t.hole_starts[1..].to_vec());
    assert_eq!(with(t.code_starts, fewer).check(), Err(Error::CorruptTable));
    // An id past the end has no entry.
    assert_eq!(t.entry(StencilId(ids::COUNT as u16)), None);
    assert!(t.entry(StencilId(ids::COUNT as u16 - 1)).is_some());
}

/// Places every stencil once, with `operand` in all four operand holes and targets on both
/// sides of it.
fn place_all(isa: Isa, operand: u32) -> Result<usize, tessera_jit::Error> {
    struct Job(u32);
    impl WithPatcher for Job {
        type Output = Result<usize, tessera_jit::Error>;
        fn call<P: Patcher>(self) -> Self::Output {
            let table = table(P::ISA).ok_or(tessera_jit::Error::WrongTable)?;
            let mut memory = vec![0u8; table.code.len() * 2];
            let mut labels = [0u32; 2];
            let mut fixups = vec![Fixup::default(); ids::COUNT * 2];
            let scratch = Scratch { labels: &mut labels, fixups: &mut fixups };
            let mut emitter = Emitter::<P>::new(table, &mut memory, 0x7000_0000, scratch)?;
            emitter.bind(Label(0))?;
            let holes = Holes { operands: [self.0; 4], jump: Label(0), cold: Label(1) };
            for id in 0..ids::COUNT as u16 {
                emitter.place(StencilId(id), &holes)?;
            }
            emitter.bind(Label(1))?;
            emitter.finish()
        }
    }
    isa.with_patcher(Job(operand))
}

#[test]
fn every_stencil_patches_with_extreme_operands() {
    for &isa in LINKED {
        let t = table(isa).unwrap();
        let code_len = t.code.len() - tessera_jit::table::CODE_PADDING;
        for operand in [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_f800, 0xffff_ffff, 0x1234_5678] {
            let len = place_all(isa, operand).unwrap_or_else(|e| panic!("{isa}, operand {operand:#x}: {e}"));
            assert_eq!(len, code_len, "{isa}");
        }
    }
}

#[test]
fn a_stencil_without_its_target_is_an_error() {
    let t = table(Isa::X86_64).unwrap();
    let mut memory = vec![0u8; 4096];
    let mut buffer = CodeBuffer::with_base(&mut memory, 0x1000);
    let (mut labels, mut fixups) = ([0u32; 1], [Fixup::default(); 1]);
    let out = buffer.alloc(4096, 1).unwrap();
    let scratch = Scratch { labels: &mut labels, fixups: &mut fixups };
    let mut emitter = Emitter::<tessera_arch::x86_64::X86_64>::new(t, out.bytes, out.address, scratch).unwrap();
    assert_eq!(emitter.place(ids::JA, &Holes::NONE), Err(tessera_jit::Error::MissingTarget { id: ids::JA.0 }));
    assert_eq!(
        emitter.place(ids::JA, &Holes::NONE.jump(Label(7))),
        Err(tessera_jit::Error::LabelOutOfRange { label: 7, labels: 1 })
    );
    assert_eq!(
        emitter.place(StencilId(u16::MAX), &Holes::NONE),
        Err(tessera_jit::Error::UnknownStencil { id: u16::MAX })
    );
    emitter.place(ids::JA, &Holes::NONE.jump(Label(0))).unwrap();
    assert_eq!(
        emitter.place(ids::JA, &Holes::NONE.jump(Label(0))),
        Err(tessera_jit::Error::FixupsFull { capacity: 1 })
    );
    assert_eq!(emitter.finish(), Err(tessera_jit::Error::UnboundLabel { label: 0 }));
    // A table for another ISA is refused.
    let (mut labels, mut fixups) = ([0u32; 1], [Fixup::default(); 1]);
    let mut bytes = [0u8; 16];
    let scratch = Scratch { labels: &mut labels, fixups: &mut fixups };
    assert!(matches!(
        Emitter::<tessera_arch::aarch64::Aarch64>::new(t, &mut bytes, 0, scratch),
        Err(tessera_jit::Error::WrongTable)
    ));
}
