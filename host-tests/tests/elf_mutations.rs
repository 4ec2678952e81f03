//! Mutated example objects (byte flips, overwritten header fields, truncations) never make
//! the loader panic, and every input gets a typed answer. Bounded and deterministic; the
//! open-ended search is `cd fuzz && cargo +nightly fuzz run elf`.

use std::collections::BTreeSet;

use tessera_host_tests::elf_check::{Outcome, exercise};

const OBJECTS: [&[u8]; 5] = [
    include_bytes!("../../examples/packet_filter.o"),
    include_bytes!("../../examples/counter.o"),
    include_bytes!("../../examples/rate_limit.o"),
    include_bytes!("../../examples/globals.o"),
    include_bytes!("../../examples/counter_legacy.o"),
];

/// Mutated inputs per object. Loading is plain byte parsing, the same on every target, so
/// the qemu-user runs (debug builds under emulation, some 20 times slower) take fewer.
const ROUNDS: usize = if cfg!(target_arch = "x86_64") { 250 } else { 60 };

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Byte ranges whose mutation reaches the loader's logic rather than debug info: the ELF
/// header, the section headers, and the symbol table, relocation, code, map and BTF
/// sections.
fn structural_ranges(b: &[u8]) -> Vec<(usize, usize)> {
    let shoff = u64_at(b, 0x28) as usize;
    let count = u16::from_le_bytes([b[0x3c], b[0x3d]]) as usize;
    let mut ranges = vec![(0, 64), (shoff, shoff + 64 * count)];
    for i in 0..count {
        let h = shoff + 64 * i;
        let kind = u32::from_le_bytes(b[h + 4..h + 8].try_into().unwrap());
        let flags = u64_at(b, h + 8);
        let (offset, size) = (u64_at(b, h + 24) as usize, u64_at(b, h + 32) as usize);
        // SYMTAB, REL, or allocated PROGBITS (code, maps, data); and .BTF (not allocated,
        // but the largest PROGBITS section that is not debug info is enough to find it).
        let interesting = kind == 2 || kind == 9 || (kind == 1 && (flags & 2 != 0 || size > 256 && size < 4096));
        if interesting && size > 0 && offset + size <= b.len() {
            ranges.push((offset, offset + size));
        }
    }
    ranges
}

fn mutate(original: &[u8], ranges: &[(usize, usize)], rng: &mut Rng) -> Vec<u8> {
    let mut b = original.to_vec();
    match rng.below(10) {
        // Truncate anywhere.
        0 => b.truncate(rng.below(original.len())),
        // Random bytes anywhere.
        1 => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
        }
        // A special value over a field in a structural range.
        2..=5 => {
            let (start, end) = ranges[rng.below(ranges.len())];
            let at = (start + rng.below(end - start)) & !3;
            let values = [0u64, 1, 2, 3, 8, 10, 0x7f, 0xff, 0xffff, u32::MAX as u64, u64::MAX, 1 << 31];
            let value = values[rng.below(values.len())];
            let width = [1usize, 2, 4, 8][rng.below(4)];
            for (k, byte) in value.to_le_bytes().iter().take(width).enumerate() {
                if let Some(slot) = b.get_mut(at + k) {
                    *slot = *byte;
                }
            }
        }
        // Random bytes in a structural range.
        _ => {
            let (start, end) = ranges[rng.below(ranges.len())];
            for _ in 0..1 + rng.below(3) {
                let at = start + rng.below(end - start);
                b[at] = rng.next() as u8;
            }
        }
    }
    b
}

#[test]
fn mutated_objects_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut rejected, mut parsed, mut loaded) = (0u32, 0u32, 0u32);
    let mut errors = BTreeSet::new();
    for original in OBJECTS {
        // The originals load.
        assert!(matches!(exercise(original), Outcome::Parsed { loaded: 1.., refused: _ }));
        let ranges = structural_ranges(original);
        for _ in 0..ROUNDS {
            let input = mutate(original, &ranges, &mut rng);
            match exercise(&input) {
                Outcome::Rejected(e) => {
                    rejected += 1;
                    errors.insert(format!("{e:?}").split([' ', '(']).next().unwrap_or_default().to_string());
                }
                Outcome::Parsed { loaded: l, .. } => {
                    parsed += 1;
                    loaded += l;
                }
            }
        }
    }
    println!("{rejected} rejected ({} kinds: {errors:?}), {parsed} parsed, {loaded} programs loaded", errors.len());
    // The mutations reach deep: both outcomes are common and many kinds of error appear.
    let enough = (ROUNDS / 2) as u32;
    assert!(
        rejected > enough && parsed > enough && loaded > enough,
        "{rejected} rejected, {parsed} parsed, {loaded} loaded"
    );
    assert!(errors.len() >= 10, "{errors:?}");
}
