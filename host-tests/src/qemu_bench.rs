//! The eBPF side of the benches in `qemu/bench/` (see its README), shared by the bare-metal
//! bench image's build script and the x86-64 counter (`x86-icount`), so both run the same
//! programs on the same memory.

use std::path::Path;
use std::process::Command;

use crate::conformance;

/// One bench's eBPF program, its context memory and, when the suite says, its result.
pub struct QemuBench {
    pub name: String,
    pub program: Vec<u8>,
    pub memory: Vec<u8>,
    pub expect: Option<u64>,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e} (clang and llvm are needed)"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed ({status})")) }
}

/// The `.c` files of the bench directory `dir`, sorted: one bench each.
pub fn sources(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut sources: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    Ok(sources)
}

/// Bench `name`'s eBPF side: a `NAME.data` file in `dir` or in the conformance suite, else
/// `c_file` compiled with `clang -target bpf` (into `out`), with `NAME.mem` (hex bytes) as its
/// memory when present.
pub fn ebpf_side(dir: &Path, name: &str, c_file: &Path, out: &Path) -> Result<QemuBench, String> {
    let local = dir.join(format!("{name}.data"));
    let suite = conformance::tests_dir().join(format!("{name}.data"));
    for data in [local, suite] {
        if data.exists() {
            let case = conformance::load_file(&data)?;
            let program = conformance::program_bytes(&case).map_err(|e| format!("{}: {e}", data.display()))?;
            return Ok(QemuBench { name: name.into(), program, memory: case.mem, expect: case.result });
        }
    }
    let object = out.join(format!("{name}.bpf.o"));
    run(Command::new("clang")
        .args(["-target", "bpf", "-O2", "-ffreestanding", "-ffunction-sections", "-c"])
        .arg(c_file)
        .arg("-o")
        .arg(&object))?;
    let section = format!(".text.{name}");
    let relocations =
        Command::new("llvm-readelf").arg("-r").arg(&object).output().map_err(|e| format!("run llvm-readelf: {e}"))?;
    if String::from_utf8_lossy(&relocations.stdout).contains(&format!(".rel{section}")) {
        return Err(format!(
            "{}: the BPF code of `{name}` has relocations (calls or globals); benches must be self-contained",
            c_file.display()
        ));
    }
    let raw = out.join(format!("{name}.bpf.bin"));
    run(Command::new("llvm-objcopy").args(["-O", "binary", "--only-section", &section]).arg(&object).arg(&raw))?;
    let program = std::fs::read(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    if program.is_empty() {
        return Err(format!("{}: no function `{name}` in section {section}", c_file.display()));
    }
    let mem_file = dir.join(format!("{name}.mem"));
    let memory = match std::fs::read_to_string(&mem_file) {
        Ok(text) => text
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).map_err(|_| format!("{}: bad byte {b:?}", mem_file.display())))
            .collect::<Result<_, _>>()?,
        Err(_) => Vec::new(),
    };
    Ok(QemuBench { name: name.into(), program, memory, expect: None })
}
