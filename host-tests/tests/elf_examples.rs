//! The committed example objects (`examples/*.o`, `examples/mcpu/*.vN.o`, built by
//! `cargo xtask examples` from the C sources) load: programs, linked instruction counts
//! and function layout, maps with their definitions, data-section images, and where the
//! pseudo `lddw`s and local calls land. Expected numbers were read off `llvm-objdump -dr`
//! and `llvm-readelf -s` of the same objects.

use tessera::ebpf::elf::{ElfError, Function, MapOrigin, Object, ObjectMap, Select};
use tessera::ebpf::insn::{op, pseudo};
use tessera::ebpf::maps::{AlignedBytes, MapDef, MapName, flags};
use tessera::ebpf::{Insn, Program};

/// CPU variants, in the order of the expectation tables: the default build, then
/// `-mcpu=v1..v4`.
const CPUS: [&str; 5] = ["default", "v1", "v2", "v3", "v4"];

macro_rules! object_set {
    ($name:literal) => {
        (
            $name,
            [
                include_bytes!(concat!("../../examples/", $name, ".o")).as_slice(),
                include_bytes!(concat!("../../examples/mcpu/", $name, ".v1.o")).as_slice(),
                include_bytes!(concat!("../../examples/mcpu/", $name, ".v2.o")).as_slice(),
                include_bytes!(concat!("../../examples/mcpu/", $name, ".v3.o")).as_slice(),
                include_bytes!(concat!("../../examples/mcpu/", $name, ".v4.o")).as_slice(),
            ],
        )
    };
}

const OBJECTS: [(&str, [&[u8]; 5]); 5] = [
    object_set!("packet_filter"),
    object_set!("counter"),
    object_set!("rate_limit"),
    object_set!("globals"),
    object_set!("counter_legacy"),
];

/// Per program: its section, its linked length per CPU variant, its functions in link
/// order, and the pseudo loads it holds as sorted `(src, map, offset)`.
struct ProgramExpectation {
    object: &'static str,
    name: &'static str,
    section: &'static str,
    insns: [usize; 5],
    functions: &'static [&'static str],
    references: &'static [(u8, i32, i32)],
}

const PROGRAMS: &[ProgramExpectation] = &[
    ProgramExpectation {
        object: "packet_filter",
        name: "udp_filter",
        section: "socket",
        insns: [109, 109, 105, 94, 94],
        functions: &["udp_filter", "ipv4_checksum", "port_allowed"],
        references: &[],
    },
    ProgramExpectation {
        object: "counter",
        name: "count_keys",
        section: "counter",
        insns: [58, 58, 57, 57, 55],
        functions: &["count_keys"],
        references: &[(1, 0, 0), (1, 0, 0), (1, 1, 0)],
    },
    ProgramExpectation {
        object: "counter",
        name: "query",
        section: "counter/query",
        insns: [48, 48, 46, 44, 44],
        functions: &["query"],
        references: &[(1, 0, 0), (1, 0, 0)],
    },
    ProgramExpectation {
        object: "rate_limit",
        name: "rate_limit",
        section: "ratelimit",
        insns: [72, 72, 71, 71, 71],
        functions: &["rate_limit", "refill"],
        // buckets (map 0); .rodata (map 1): rate_per_sec at 0, burst at 8 (read twice);
        // .bss (map 2): requests at 0, refused at 8.
        references: &[(1, 0, 0), (2, 1, 0), (2, 1, 8), (2, 1, 8), (2, 2, 0), (2, 2, 8)],
    },
    ProgramExpectation {
        object: "globals",
        name: "hash_input",
        section: "globals",
        insns: [70, 70, 70, 67, 61],
        functions: &["hash_input", "fnv1a", "mix"],
        // .data (0): runs at 0, last_tag at 4; .rodata.cst32 (1): primes; .rodata.str1.1
        // (2): banner at 0, the printk format at 24; .bss (3): total_bytes 0, last_hash 8.
        references: &[(2, 0, 0), (2, 0, 4), (2, 1, 0), (2, 2, 0), (2, 2, 24), (2, 3, 0), (2, 3, 8)],
    },
    ProgramExpectation {
        object: "counter_legacy",
        name: "count_legacy",
        section: "counter_legacy",
        insns: [64, 64, 63, 63, 60],
        functions: &["count_legacy"],
        references: &[(1, 0, 0), (1, 0, 0), (1, 1, 0)],
    },
];

/// Helpers the examples call (map helpers, ktime, trace_printk, prandom).
fn is_helper(id: i32) -> bool {
    matches!(id, 1 | 2 | 3 | 5 | 6 | 7)
}

fn decode(code: &[u8]) -> Vec<Insn> {
    code.chunks_exact(8).map(|c| Insn::decode(c.try_into().unwrap())).collect()
}

fn object(name: &str, cpu: usize) -> Object<'static> {
    let (_, variants) = OBJECTS.iter().find(|(n, _)| *n == name).unwrap();
    Object::parse(variants[cpu]).unwrap_or_else(|e| panic!("{name} {}: {e}", CPUS[cpu]))
}

/// Pseudo loads as `(pc, src, map, offset)`.
fn pseudo_loads(insns: &[Insn]) -> Vec<(usize, u8, i32, i32)> {
    let mut out = Vec::new();
    for (pc, insn) in insns.iter().enumerate() {
        if insn.opcode == op::LDDW && insn.src != 0 {
            out.push((pc, insn.src, insn.imm, insns[pc + 1].imm));
        }
    }
    out
}

/// Local calls as `(pc, target)`.
fn local_calls(insns: &[Insn]) -> Vec<(usize, i64)> {
    let calls = insns.iter().enumerate().filter(|(_, i)| i.opcode == op::CALL && i.src == pseudo::CALL_LOCAL);
    calls.map(|(pc, i)| (pc, pc as i64 + i.imm as i64 + 1)).collect()
}

#[test]
fn every_example_object_loads_links_and_validates() {
    let mut checked = 0;
    for expected in PROGRAMS {
        for (cpu, cpu_name) in CPUS.iter().enumerate() {
            let what = format!("{} {} ({cpu_name})", expected.object, expected.name);
            let object = object(expected.object, cpu);
            let linked = object.load(Select::Function(expected.name)).unwrap_or_else(|e| panic!("{what}: {e}"));
            let insns = decode(&linked.code);
            assert_eq!(insns.len(), expected.insns[cpu], "{what}: instructions");

            // Functions: the program first, then its callees, back to back.
            let names: Vec<&str> = linked.functions.iter().map(|f| object.symbol_name(f.symbol)).collect();
            assert_eq!(names, expected.functions, "{what}");
            let mut next = 0;
            for f in &linked.functions {
                assert_eq!(f.offset, next, "{what}: {f:?}");
                next += f.len;
            }
            assert_eq!(next as usize, insns.len(), "{what}");

            // Every local call lands on the start of a linked function.
            for (pc, target) in local_calls(&insns) {
                assert!(
                    linked.functions[1..].iter().any(|f| f.offset as i64 == target),
                    "{what}: call at {pc} to {target}"
                );
            }

            // Pseudo loads name maps and offsets that exist.
            let mut references: Vec<(u8, i32, i32)> =
                pseudo_loads(&insns).into_iter().map(|(_, src, map, off)| (src, map, off)).collect();
            references.sort();
            assert_eq!(references, expected.references, "{what}");
            let value_size = |i: u32| object.map(i).map(|m| m.def.value_size());
            let program = Program::with_maps(&linked.code, is_helper, value_size);
            assert_eq!(program.map(|p| p.len()), Ok(insns.len()), "{what}");
            // Without maps, the validator refuses the pseudo loads (if there are any).
            let plain = Program::new(&linked.code, is_helper).map(|_| ());
            assert_eq!(plain.is_ok(), expected.references.is_empty(), "{what}: {plain:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, PROGRAMS.len() * CPUS.len());
    // Every object has every program listed.
    for (name, variants) in OBJECTS {
        for bytes in variants {
            let object = Object::parse(bytes).unwrap();
            let listed: Vec<(&str, &str)> = object.programs().map(|p| (p.name, p.section_name)).collect();
            let expected: Vec<(&str, &str)> =
                PROGRAMS.iter().filter(|p| p.object == name).map(|p| (p.name, p.section)).collect();
            assert_eq!(listed, expected, "{name}");
        }
    }
}

#[test]
fn pseudo_loads_and_calls_are_placed_where_the_object_says() {
    // (pc, src, map, offset), read against `llvm-objdump -dr examples/NAME.o`.
    let globals = object("globals", 0).load(Select::Only).unwrap();
    let insns = decode(&globals.code);
    assert_eq!(
        pseudo_loads(&insns),
        [(0, 2, 0, 0), (5, 2, 3, 0), (18, 2, 0, 4), (28, 2, 3, 8), (31, 2, 2, 24), (53, 2, 1, 0), (62, 2, 2, 0)]
    );
    // hash_input calls fnv1a (a static function: relocated against `.text` + 19) and mix
    // twice (a global function: relocated against `mix` with imm -1).
    assert_eq!(local_calls(&insns), [(10, 38), (13, 50), (16, 50)]);
    assert_eq!(
        globals.functions,
        [
            Function { symbol: 19, section: 4, start: 0, len: 38, offset: 0 },
            Function { symbol: 6, section: 2, start: 20, len: 12, offset: 38 },
            Function { symbol: 18, section: 2, start: 0, len: 20, offset: 50 },
        ]
    );
    // The lddw keeps its register; only src and the immediates change.
    assert_eq!(insns[0], Insn::new(op::LDDW, 3, pseudo::LDDW_MAP_VALUE, 0, 0));
    assert_eq!(insns[19], Insn::new(0, 0, 0, 0, 4));

    let rate = decode(&object("rate_limit", 0).load(Select::Only).unwrap().code);
    assert_eq!(
        pseudo_loads(&rate),
        [(9, 2, 2, 0), (18, 1, 0, 0), (37, 2, 2, 8), (54, 2, 1, 0), (60, 2, 1, 8), (67, 2, 1, 8)]
    );
    assert_eq!(local_calls(&rate), [(34, 48)]);
    assert_eq!(rate[18], Insn::new(op::LDDW, 1, pseudo::LDDW_MAP_FD, 0, 0));

    let counter = decode(&object("counter", 0).load(Select::Function("count_keys")).unwrap().code);
    assert_eq!(pseudo_loads(&counter), [(11, 1, 1, 0), (38, 1, 0, 0), (49, 1, 0, 0)]);
    let legacy = decode(&object("counter_legacy", 0).load(Select::Only).unwrap().code);
    assert_eq!(pseudo_loads(&legacy), [(11, 1, 0, 0), (40, 1, 0, 0), (52, 1, 1, 0)]);
    let filter = decode(&object("packet_filter", 0).load(Select::Only).unwrap().code);
    assert_eq!(local_calls(&filter), [(42, 65), (63, 100)]);
}

fn def(map_type: u32, key: u32, value: u32, max: u32, flags: u32, name: &str) -> MapDef {
    MapDef::new(map_type, key, value, max, flags, MapName::new(name)).unwrap()
}

#[test]
fn maps_and_data_images() {
    const RODATA: u32 = flags::BPF_F_RDONLY_PROG | flags::BPF_F_MMAPABLE;
    const DATA: u32 = flags::BPF_F_MMAPABLE;
    for (cpu, cpu_name) in CPUS.iter().enumerate() {
        let counter = object("counter", cpu);
        let maps: Vec<ObjectMap> = counter.maps().collect();
        assert_eq!(
            maps,
            [
                ObjectMap {
                    def: def(1, 4, 8, 64, 0, "counts"),
                    origin: MapOrigin::Btf,
                    section: 7,
                    offset: 0,
                    data: &[]
                },
                ObjectMap {
                    def: def(2, 4, 8, 1, 0, "overflow"),
                    origin: MapOrigin::Btf,
                    section: 7,
                    offset: 32,
                    data: &[]
                },
            ],
            "counter {cpu_name}"
        );

        let legacy = object("counter_legacy", cpu);
        let defs: Vec<(MapDef, MapOrigin, u64)> = legacy.maps().map(|m| (m.def, m.origin, m.offset)).collect();
        assert_eq!(
            defs,
            [
                (def(1, 4, 8, 32, flags::BPF_F_NO_PREALLOC, "legacy_counts"), MapOrigin::Legacy, 0),
                (def(2, 4, 8, 2, 0, "legacy_totals"), MapOrigin::Legacy, 20),
            ]
        );

        let rate = object("rate_limit", cpu);
        let maps: Vec<(MapDef, MapOrigin, &[u8])> = rate.maps().map(|m| (m.def, m.origin, m.data)).collect();
        let rodata: Vec<u8> = [10u64.to_le_bytes(), 20u64.to_le_bytes()].concat();
        assert_eq!(
            maps,
            [
                (def(2, 4, 16, 16, 0, "buckets"), MapOrigin::Btf, &[][..]),
                (def(2, 4, 16, 1, RODATA, ".rodata"), MapOrigin::ReadOnlyData, &rodata[..]),
                (def(2, 4, 16, 1, DATA, ".bss"), MapOrigin::Bss, &[][..]),
            ]
        );

        let globals = object("globals", cpu);
        let maps: Vec<(MapDef, MapOrigin, &[u8])> = globals.maps().map(|m| (m.def, m.origin, m.data)).collect();
        let primes: Vec<u8> = [2u32, 3, 5, 7, 11, 13, 17, 19].iter().flat_map(|p| p.to_le_bytes()).collect();
        assert_eq!(
            maps,
            [
                (def(2, 4, 12, 1, DATA, ".data"), MapOrigin::Data, &b"\x64\0\0\0none\0\0\0\0"[..]),
                (def(2, 4, 32, 1, RODATA, ".rodata.cst32"), MapOrigin::ReadOnlyData, &primes[..]),
                (
                    def(2, 4, 33, 1, RODATA, ".rodata.str1.1"),
                    MapOrigin::ReadOnlyData,
                    &b"tessera globals example\0hash %x\n\0"[..]
                ),
                (def(2, 4, 12, 1, DATA, ".bss"), MapOrigin::Bss, &[][..]),
            ]
        );
        assert_eq!(object("packet_filter", cpu).map_count(), 0);
    }
}

#[test]
fn maps_are_created_with_their_initial_images() {
    let globals = object("globals", 0);
    let data = globals.map(0).unwrap();
    let mut map = data.create().unwrap();
    assert_eq!(map.def().value_stride(), 16);
    assert_eq!(&map.values()[..12], b"\x64\0\0\0none\0\0\0\0");
    assert_eq!(&map.values()[12..], &[0; 4]); // padding up to the stride
    assert_eq!(map.lookup(&0u32.to_le_bytes()), Some(0));
    assert!(!map.def().read_only_for_program());
    assert!(globals.map(1).unwrap().def.read_only_for_program());
    // .bss starts zeroed; writes go to the value area.
    let bss = globals.map(3).unwrap();
    let mut storage = AlignedBytes::<64>::new();
    let mut bss_map = bss.create_in(storage.as_mut_slice()).unwrap();
    assert_eq!(bss_map.values(), &[0; 16]);
    bss_map.update(&0u32.to_le_bytes(), &[7; 12], 0).unwrap();
    assert_eq!(&bss_map.values()[..12], &[7; 12]);
    // A declared hash map starts empty.
    let counts = object("counter", 0).map(0).unwrap().create().unwrap();
    assert!(counts.is_empty());
    map.update(&0u32.to_le_bytes(), &[1; 12], 0).unwrap();
    assert_eq!(&map.values()[..12], &[1; 12]);
}

#[test]
fn choosing_the_program() {
    let counter = object("counter", 0);
    assert_eq!(counter.select(Select::Only).err(), Some(ElfError::AmbiguousProgram { matches: 2 }));
    assert_eq!(
        counter.explain(ElfError::AmbiguousProgram { matches: 2 }).to_string(),
        "2 programs match; choose one; programs: `count_keys` (section `counter`) `query` (section `counter/query`)"
    );
    assert_eq!(counter.load(Select::Only).err(), Some(ElfError::AmbiguousProgram { matches: 2 }));
    assert_eq!(counter.select(Select::Section("counter/query")).map(|p| p.name), Ok("query"));
    assert_eq!(counter.select(Select::Function("count_keys")).map(|p| p.section_name), Ok("counter"));
    assert_eq!(counter.select(Select::Function("nope")).err(), Some(ElfError::ProgramNotFound { candidates: 2 }));
    assert_eq!(counter.select(Select::Section("xdp")).err(), Some(ElfError::ProgramNotFound { candidates: 2 }));
    assert_eq!(
        counter.explain(ElfError::ProgramNotFound { candidates: 2 }).to_string(),
        "no program by that name (2 candidates); programs: `count_keys` (section `counter`) `query` (section `counter/query`)"
    );
    // Subprograms in .text are not programs of their own.
    let globals = object("globals", 0);
    assert_eq!(globals.select(Select::Function("mix")).err(), Some(ElfError::ProgramNotFound { candidates: 1 }));
    assert_eq!(globals.select(Select::Only).map(|p| (p.name, p.insns)), Ok(("hash_input", 38)));
}

#[test]
fn caller_buffers_give_the_same_program() {
    for (name, variants) in OBJECTS {
        let object = Object::parse(variants[0]).unwrap();
        for program in object.programs() {
            let select = Select::Function(program.name);
            let loaded = object.load(select).unwrap();
            let mut code = vec![0u8; object.max_code_len()];
            let mut functions = vec![Function::default(); object.max_functions()];
            let linked = object.load_into(select, &mut code, &mut functions).unwrap();
            assert_eq!(linked.code, &loaded.code[..], "{name}");
            assert_eq!(linked.functions, &loaded.functions[..], "{name}");

            let short = loaded.code.len() - 8;
            let mut code = vec![0u8; short];
            let mut functions = vec![Function::default(); 8];
            assert_eq!(
                object.load_into(select, &mut code, &mut functions).err(),
                Some(ElfError::CodeBufferFull { capacity: short as u32 }),
                "{name}"
            );
            if loaded.functions.len() > 1 {
                let mut code = vec![0u8; 8192];
                let mut functions = vec![Function::default(); 1];
                assert_eq!(
                    object.load_into(select, &mut code, &mut functions).err(),
                    Some(ElfError::FunctionTableFull { capacity: 1 }),
                    "{name}"
                );
            }
        }
    }
}

/// Objects need no alignment in memory (`include_bytes!`, a network buffer...).
#[test]
fn unaligned_input() {
    let bytes = OBJECTS[3].1[0];
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(bytes);
    let object = Object::parse(&shifted[1..]).unwrap();
    assert_eq!(object.load(Select::Only).unwrap().code, Object::parse(bytes).unwrap().load(Select::Only).unwrap().code);
}
