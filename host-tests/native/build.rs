//! Compiles every C program that has a committed eBPF object (`examples/NAME.c` and
//! `host-tests/c/NAME.c`, each with `NAME.o` and `mcpu/NAME.v1.o` … `v4.o`) natively for
//! the target, with `examples/native/bpf_native.c` as its helpers. The target's C compiler
//! is the `cc` crate's choice (`cc` on the host, `aarch64-linux-gnu-gcc` and
//! `riscv64-linux-gnu-gcc` for the qemu-user targets; `CC_<target>` overrides).
//!
//! What a harness needs to know about each program file is read off its eBPF object (the
//! programs, the maps, the global variables with their sections and offsets) and written
//! into a generated C wrapper that includes the source unchanged:
//! - `examples/native/bpf_native.h` comes first (after `bpf.h`): sections are dropped;
//! - every global symbol is renamed by a macro (`#define counts tessera_native__counter__counts`)
//!   so that files may share names and none clashes with the C library;
//! - each program gets a thunk `(context, len) -> u64` and its return type's size;
//! - maps are registered with their definitions as the native compiler sees them
//!   (`sizeof(*m.key)` for BTF-defined maps, the fields of a legacy `struct bpf_map_def`);
//! - each variable in `.data*`, `.bss*`, `.rodata*` is listed with its section and offset,
//!   and a static assertion that its native size is the eBPF one.
//!
//! `src/generated.rs` gets the objects' bytes (`include_bytes!`) in the same order.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// Directories (from the repository root) holding C programs with committed objects.
const PROGRAM_DIRS: &[&str] = &["examples", "host-tests/c"];
/// The `-mcpu` variants every program has in `mcpu/`.
const CPUS: [&str; 4] = ["v1", "v2", "v3", "v4"];

struct ProgramFile {
    name: String,
    dir: &'static str,
    source: PathBuf,
    object: PathBuf,
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../..").canonicalize().expect("the repository root");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let native = root.join("examples/native");
    for f in ["bpf_native.c", "bpf_native.h"] {
        println!("cargo:rerun-if-changed={}", native.join(f).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("examples/bpf.h").display());

    let files = program_files(&root);
    let mut build = cc::Build::new();
    build
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .flag("-std=gnu11")
        .include(root.join("examples"))
        .file(native.join("bpf_native.c"));
    let mut registry = String::from("#include \"native/bpf_native.h\"\n\n");
    for file in &files {
        let bytes = std::fs::read(&file.object).unwrap_or_else(|e| panic!("{}: {e}", file.object.display()));
        let wrapper = wrapper(file, &bytes);
        let path = out.join(format!("native_{}.c", file.name));
        std::fs::write(&path, wrapper).expect("OUT_DIR is writable");
        build.file(&path);
        writeln!(registry, "extern const struct tessera_native_object tessera_native_object_{};", file.name).unwrap();
    }
    registry.push_str("\nconst struct tessera_native_object *const tessera_native_objects[] = {\n");
    for file in &files {
        writeln!(registry, "    &tessera_native_object_{},", file.name).unwrap();
    }
    registry.push_str("};\n");
    let registry_path = out.join("native_registry.c");
    std::fs::write(&registry_path, registry).expect("OUT_DIR is writable");
    build.file(&registry_path);
    build.compile("tessera_native_examples");

    std::fs::write(out.join("generated.rs"), rust_table(&files)).expect("OUT_DIR is writable");
}

/// The C files of [`PROGRAM_DIRS`] that have an object, sorted by directory then name.
fn program_files(root: &Path) -> Vec<ProgramFile> {
    let mut files = Vec::new();
    let mut names = BTreeSet::new();
    for dir in PROGRAM_DIRS {
        let path = root.join(dir);
        println!("cargo:rerun-if-changed={}", path.display());
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "c"))
            .collect();
        sources.sort();
        for source in sources {
            let object = source.with_extension("o");
            if !object.exists() {
                continue;
            }
            let name = source.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file names").to_string();
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{}: program file names must be C identifiers",
                source.display()
            );
            assert!(names.insert(name.clone()), "two program files are named {name}");
            println!("cargo:rerun-if-changed={}", source.display());
            println!("cargo:rerun-if-changed={}", object.display());
            for cpu in CPUS {
                let variant = path.join(format!("mcpu/{name}.{cpu}.o"));
                assert!(variant.exists(), "{} is missing: run `cargo xtask examples`", variant.display());
                println!("cargo:rerun-if-changed={}", variant.display());
            }
            files.push(ProgramFile { name, dir, source, object });
        }
    }
    files
}

/// What the eBPF object says about a program file.
#[derive(Default)]
struct Contents {
    /// Global symbols (functions and variables): renamed natively.
    globals: BTreeSet<String>,
    /// Program entry points.
    programs: Vec<String>,
    /// Maps: `(name, legacy)`, legacy maps first, each kind by offset.
    maps: Vec<(String, bool)>,
    /// Variables in data sections: `(name, section, offset, size)`.
    variables: Vec<(String, String, u64, u64)>,
}

fn contents(what: &str, bytes: &[u8]) -> Contents {
    let file = object::File::parse(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut c = Contents::default();
    let mut legacy = Vec::new();
    let mut btf = Vec::new();
    // (name, in .text)
    let mut functions = Vec::new();
    for symbol in file.symbols() {
        let (Ok(name), Some(index)) = (symbol.name(), symbol.section_index()) else { continue };
        let Ok(section) = file.section_by_index(index) else { continue };
        let section_name = section.name().unwrap_or_default();
        let global = symbol.is_global();
        if global && matches!(symbol.kind(), SymbolKind::Text | SymbolKind::Data) {
            c.globals.insert(name.to_string());
        }
        match symbol.kind() {
            SymbolKind::Text if global && section.kind() == SectionKind::Text => {
                functions.push((name.to_string(), section_name == ".text"));
            }
            SymbolKind::Data if section_name == ".maps" => btf.push((symbol.address(), name.to_string())),
            SymbolKind::Data if section_name == "maps" => legacy.push((symbol.address(), name.to_string())),
            SymbolKind::Data
                if symbol.size() > 0
                    && [".data", ".bss", ".rodata"]
                        .iter()
                        .any(|p| section_name == *p || section_name.starts_with(&format!("{p}."))) =>
            {
                assert!(
                    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "{what}: variable `{name}` cannot be named from C (a static local?): the native \
                     comparison needs every variable at file scope"
                );
                c.variables.push((name.to_string(), section_name.to_string(), symbol.address(), symbol.size()));
            }
            _ => {}
        }
    }
    // As tessera's loader: global functions outside .text, or those in .text if none.
    let in_text = !functions.iter().any(|(_, text)| !text);
    c.programs = functions.into_iter().filter(|(_, text)| *text == in_text).map(|(n, _)| n).collect();
    legacy.sort();
    btf.sort();
    c.maps = legacy.into_iter().map(|(_, n)| (n, true)).chain(btf.into_iter().map(|(_, n)| (n, false))).collect();
    c
}

fn wrapper(file: &ProgramFile, bytes: &[u8]) -> String {
    let c = contents(&file.object.display().to_string(), bytes);
    let name = &file.name;
    let mut w = String::new();
    writeln!(w, "/* Generated by host-tests/native/build.rs from {}/{name}.o. */", file.dir).unwrap();
    // bpf.h first (its native branch: plain prototypes), then the native SEC, then the
    // source, unchanged (bpf.h's include guard keeps its own #include from redefining SEC).
    w.push_str("#include \"native/bpf_native.h\"\n");
    for global in &c.globals {
        writeln!(w, "#define {global} tessera_native__{name}__{global}").unwrap();
    }
    writeln!(w, "#include \"{}\"\n", file.source.display()).unwrap();

    for program in &c.programs {
        writeln!(
            w,
            "static __u64 tessera_wrapper_run_{program}(__u8 *context, __u64 len)\n{{\n    return (__u64){program}((void *)context, len);\n}}\n"
        )
        .unwrap();
    }
    if !c.programs.is_empty() {
        w.push_str("static const struct tessera_native_program tessera_wrapper_programs[] = {\n");
        for program in &c.programs {
            writeln!(w, "    {{\"{program}\", tessera_wrapper_run_{program}, sizeof({program}((void *)0, 0))}},")
                .unwrap();
        }
        w.push_str("};\n\n");
    }

    w.push_str("static int tessera_wrapper_register_maps(void)\n{\n    int r;\n");
    for (map, legacy) in &c.maps {
        let def = if *legacy {
            format!("{map}.type, {map}.key_size, {map}.value_size, {map}.max_entries")
        } else {
            format!(
                "sizeof(*{map}.type) / sizeof(int), sizeof(*{map}.key), sizeof(*{map}.value), \
                 sizeof(*{map}.max_entries) / sizeof(int)"
            )
        };
        writeln!(
            w,
            "    if ((r = tessera_native_map_register((const void *)&{map}, \"{map}\", {def})) < 0)\n        return r;"
        )
        .unwrap();
    }
    w.push_str("    (void)r;\n    return 0;\n}\n\n");

    for (var, _, _, size) in &c.variables {
        writeln!(w, "_Static_assert(sizeof({var}) == {size}, \"{var}: the native size is not the eBPF one\");")
            .unwrap();
    }
    if !c.variables.is_empty() {
        w.push_str("static const struct tessera_native_global tessera_wrapper_globals[] = {\n");
        for (var, section, offset, size) in &c.variables {
            writeln!(w, "    {{\"{var}\", \"{section}\", {offset}, (void *)&{var}, {size}}},").unwrap();
        }
        w.push_str("};\n\n");
    }

    let (programs, program_count) =
        if c.programs.is_empty() { ("0", 0) } else { ("tessera_wrapper_programs", c.programs.len()) };
    let (globals, global_count) =
        if c.variables.is_empty() { ("0", 0) } else { ("tessera_wrapper_globals", c.variables.len()) };
    writeln!(
        w,
        "const struct tessera_native_object tessera_native_object_{name} = {{\n    \"{name}\", {programs}, \
         {program_count}, tessera_wrapper_register_maps, {globals}, {global_count},\n}};"
    )
    .unwrap();
    w
}

fn rust_table(files: &[ProgramFile]) -> String {
    let mut r = String::from("// Generated by build.rs: the program files, in the native registry's order.\n");
    writeln!(r, "const FILE_COUNT: usize = {};", files.len()).unwrap();
    r.push_str("pub static PROGRAM_FILES: [ProgramFile; FILE_COUNT] = [\n");
    for file in files {
        let dir = file.object.parent().expect("a file in a directory");
        let variant = |cpu: &str| dir.join(format!("mcpu/{}.{cpu}.o", file.name));
        writeln!(
            r,
            "    ProgramFile {{\n        name: {:?},\n        source: \"{}/{}.c\",",
            file.name, file.dir, file.name
        )
        .unwrap();
        r.push_str("        objects: [\n");
        writeln!(r, "            (\"default\", include_bytes!({:?})),", file.object.display().to_string()).unwrap();
        for cpu in CPUS {
            writeln!(r, "            ({cpu:?}, include_bytes!({:?})),", variant(cpu).display().to_string()).unwrap();
        }
        r.push_str("        ],\n    },\n");
    }
    r.push_str("];\n");
    r
}
