//! Exercising the ELF loader on arbitrary bytes: everything an embedder would call, with
//! the consistency checks that hold for any object that loads. Shared by the mutation
//! test (`tests/elf_mutations.rs`) and the fuzz target (`fuzz/fuzz_targets/elf.rs`); a
//! panic anywhere is the bug being looked for.

use tessera::ebpf::Program;
use tessera::ebpf::elf::{ElfError, Function, Object, Select};

/// How far an input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Object::parse` refused it.
    Rejected(ElfError),
    /// It parsed; `loaded` programs linked, `refused` did not.
    Parsed { loaded: u32, refused: u32 },
}

/// Maps larger than this are not created (a mutated `max_entries` can ask for 256 MiB).
const MAX_MAP_STORAGE: usize = 1 << 16;

/// Parses `bytes`, creates its maps, and links and validates every program; checks that
/// the allocation-free path links the same program as the `Vec` one.
pub fn exercise(bytes: &[u8]) -> Outcome {
    let object = match Object::parse(bytes) {
        Ok(o) => o,
        Err(e) => return Outcome::Rejected(e),
    };
    let _ = format!("{:?} {}", object, object.map_count());
    for map in object.maps() {
        if map.def.storage_len() <= MAX_MAP_STORAGE {
            let created = map.create().expect("a map the loader accepted can be created");
            assert_eq!(&created.values()[..map.data.len()], map.data);
        }
    }
    let (mut loaded, mut refused) = (0, 0);
    let names: Vec<&str> = object.programs().map(|p| p.name).collect();
    for select in names.iter().map(|n| Select::Function(n)).chain([Select::Only, Select::Section("xdp")]) {
        match object.load(select) {
            Ok(program) => {
                loaded += 1;
                assert!(program.code.len() <= object.max_code_len());
                assert!(program.functions.len() <= object.max_functions());
                let mut code = vec![0u8; object.max_code_len()];
                let mut functions = vec![Function::default(); object.max_functions()];
                let linked =
                    object.load_into(select, &mut code, &mut functions).expect("same result in caller buffers");
                assert_eq!(linked.code, &program.code[..]);
                assert_eq!(linked.functions, &program.functions[..]);
                let value_size = |i: u32| object.map(i).map(|m| m.def.value_size());
                let _ = Program::with_maps(&program.code, |_| true, value_size);
            }
            Err(e) => {
                refused += 1;
                let _ = format!("{e} / {}", object.explain(e));
            }
        }
    }
    Outcome::Parsed { loaded, refused }
}
