//! `tessera-stencil-gen`: builds `stencils/ops` for every ISA with the pinned nightly, reads
//! the objects with `object`, and writes the committed tables under `stencils/src/generated`
//! plus human-readable listings under `stencils/listing`.
//!
//! `--check` verifies the committed tables: always by digest of the inputs (needs no
//! nightly), and byte for byte by regenerating when the pinned nightly is installed.

mod extract;
mod render;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use tessera_arch::Isa;

/// The nightly that builds stencils. Changing it changes every table's digest.
pub const STENCIL_TOOLCHAIN: &str = "nightly-2026-05-20";

/// How one ISA's stencils are compiled. Every flag here is part of the digest.
pub struct TargetSpec {
    pub isa: Isa,
    pub triple: &'static str,
    /// Code model and target features, chosen so that holes are absolute and small:
    /// x86-64 kernel (symbols are sign-extended 32-bit, so an imm32 hole is one
    /// `R_X86_64_32S` operand), AArch64 large (`MOVW_UABS_G0..G3`,
    /// four instructions per hole, the price of position independence from the hole value),
    /// RISC-V medlow (`HI20`/`LO12`). AArch64 drops `strict-align` and RISC-V adds
    /// `unaligned-scalar-mem`: eBPF loads and stores may be unaligned, so the embedder's
    /// memory must allow unaligned scalar access (normal memory with the MMU on, on AArch64).
    pub flags: &'static [&'static str],
}

pub const TARGETS: [TargetSpec; 3] = [
    TargetSpec { isa: Isa::X86_64, triple: "x86_64-unknown-none", flags: &["-Ccode-model=kernel"] },
    TargetSpec {
        isa: Isa::Aarch64,
        triple: "aarch64-unknown-none",
        flags: &["-Ccode-model=large", "-Ctarget-feature=-strict-align"],
    },
    TargetSpec {
        isa: Isa::Riscv64,
        triple: "riscv64gc-unknown-none-elf",
        flags: &["-Ccode-model=small", "-Ctarget-feature=-relax,+unaligned-scalar-mem"],
    },
];

/// Flags common to every ISA.
const COMMON_FLAGS: &[&str] = &[
    "--edition=2024",
    "--crate-type=lib",
    "--crate-name=tessera_stencil_ops",
    "-Copt-level=s",
    "-Cpanic=abort",
    "-Crelocation-model=static",
    "-Cforce-unwind-tables=no",
    "-Cdebuginfo=0",
    "-Zfunction-sections=yes",
];

/// Files whose contents determine the tables, relative to the workspace root.
const INPUTS: &[&str] = &[
    "stencils/ops/lib.rs",
    "stencils/src/abi.rs",
    "stencils/src/semantics.rs",
    "stencils/gen/src/main.rs",
    "stencils/gen/src/extract.rs",
    "stencils/gen/src/render.rs",
    // Relocation decoding, branch recognition and nops come from the per-ISA arch files.
    "arch/src/lib.rs",
    "arch/src/x86_64.rs",
    "arch/src/aarch64.rs",
    "arch/src/riscv64.rs",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// FNV-1a, 64-bit: a change detector for the inputs (not a security hash).
pub fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Digest of every input: source files, flags, and the toolchain name.
fn input_digest(root: &Path, spec: &TargetSpec) -> Result<u64, String> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for rel in INPUTS {
        let text = std::fs::read(root.join(rel)).map_err(|e| format!("reading {rel}: {e}"))?;
        h = fnv1a(h, rel.as_bytes());
        h = fnv1a(h, &(text.len() as u64).to_le_bytes());
        h = fnv1a(h, &text);
    }
    for flag in COMMON_FLAGS.iter().chain(spec.flags) {
        h = fnv1a(h, flag.as_bytes());
    }
    h = fnv1a(h, spec.triple.as_bytes());
    Ok(fnv1a(h, STENCIL_TOOLCHAIN.as_bytes()))
}

fn toolchain_installed() -> bool {
    TARGETS.iter().all(|t| {
        Command::new("rustc")
            .args([&format!("+{STENCIL_TOOLCHAIN}"), "--print", "target-libdir", "--target", t.triple])
            .output()
            .map(|o| o.status.success() && Path::new(String::from_utf8_lossy(&o.stdout).trim()).exists())
            .unwrap_or(false)
    })
}

fn toolchain_version() -> Result<String, String> {
    let out = Command::new("rustc")
        .args([&format!("+{STENCIL_TOOLCHAIN}"), "--version"])
        .output()
        .map_err(|e| format!("running rustc +{STENCIL_TOOLCHAIN}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Compiles the stencil sources for one ISA and returns the object file's path.
fn compile(root: &Path, spec: &TargetSpec, out_dir: &Path) -> Result<PathBuf, String> {
    let obj = out_dir.join(format!("stencils-{}.o", spec.isa));
    let status = Command::new("rustc")
        .arg(format!("+{STENCIL_TOOLCHAIN}"))
        .args(COMMON_FLAGS)
        .args(spec.flags)
        .args(["--target", spec.triple, "--emit"])
        .arg(format!("obj={}", obj.display()))
        .arg(root.join("stencils/ops/lib.rs"))
        .env_remove("RUSTFLAGS")
        .env("RUSTUP_TOOLCHAIN", STENCIL_TOOLCHAIN)
        .status()
        .map_err(|e| format!("running rustc +{STENCIL_TOOLCHAIN}: {e}"))?;
    if !status.success() {
        return Err(format!("compiling stencils for {} failed", spec.triple));
    }
    Ok(obj)
}

/// Disassembly of the object with the pinned toolchain's llvm-objdump, for the listing.
fn objdump(obj: &Path) -> Result<String, String> {
    let sysroot = Command::new("rustc")
        .args([&format!("+{STENCIL_TOOLCHAIN}"), "--print", "sysroot"])
        .output()
        .map_err(|e| e.to_string())?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let tool = Path::new(&sysroot).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objdump");
    let out = Command::new(&tool)
        .args(["-d", "-r", "--print-imm-hex", "--no-leading-addr"])
        .arg(obj)
        .output()
        .map_err(|e| {
            format!("running {} (rustup component add llvm-tools --toolchain {STENCIL_TOOLCHAIN}): {e}", tool.display())
        })?;
    if !out.status.success() {
        return Err(format!("llvm-objdump failed on {}", obj.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Generated files for all ISAs: (path relative to the root, contents).
fn generate(root: &Path) -> Result<Vec<(String, String)>, String> {
    let out_dir = root.join("target/stencil-gen");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let version = toolchain_version()?;
    let mut files = Vec::new();
    let mut names: Option<Vec<String>> = None;
    for spec in &TARGETS {
        let obj = compile(root, spec, &out_dir)?;
        let bytes = std::fs::read(&obj).map_err(|e| e.to_string())?;
        let stencils = extract::extract(spec.isa, &bytes)?;
        let these: Vec<String> = stencils.iter().map(|s| s.name.clone()).collect();
        match &names {
            None => names = Some(these),
            Some(first) if *first != these => {
                return Err(format!("{}: the stencil set differs from {}'s", spec.isa, TARGETS[0].isa));
            }
            Some(_) => {}
        }
        let digest = input_digest(root, spec)?;
        files.push((
            format!("stencils/src/generated/{}.rs", spec.isa),
            render::table(spec, &stencils, digest, &version),
        ));
        files.push((
            format!("stencils/listing/{}.lst", spec.isa),
            render::listing(spec, &stencils, &objdump(&obj)?, digest, &version),
        ));
    }
    let names = names.unwrap_or_default();
    files.push(("stencils/src/generated/ids.rs".into(), render::ids(&names)?));
    Ok(files)
}

/// The digest recorded in a committed table, if it has one.
fn committed_digest(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("// inputs digest: "))?;
    u64::from_str_radix(line.trim_start_matches("// inputs digest: ").trim_start_matches("0x"), 16).ok()
}

fn check(root: &Path) -> Result<(), String> {
    let mut stale = Vec::new();
    for spec in &TARGETS {
        let path = root.join(format!("stencils/src/generated/{}.rs", spec.isa));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let want = input_digest(root, spec)?;
        match committed_digest(&text) {
            Some(have) if have == want => println!("stencils {}: digest {want:#018x} matches the sources", spec.isa),
            Some(have) => stale.push(format!("{}: table digest {have:#018x}, sources {want:#018x}", spec.isa)),
            None => stale.push(format!("{}: no digest header", spec.isa)),
        }
    }
    if !stale.is_empty() {
        return Err(format!("stencil tables are stale (run `cargo xtask stencils`):\n  {}", stale.join("\n  ")));
    }
    if !toolchain_installed() {
        println!(
            "stencils: byte-exact regeneration skipped ({STENCIL_TOOLCHAIN} with the bare-metal targets is not installed); digest check passed"
        );
        return Ok(());
    }
    let mut differ = Vec::new();
    for (rel, text) in generate(root)? {
        let committed = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
        if committed != text {
            differ.push(rel);
        }
    }
    if !differ.is_empty() {
        return Err(format!("regenerated stencil files differ from the committed ones: {}", differ.join(", ")));
    }
    println!("stencils: byte-exact regeneration with {STENCIL_TOOLCHAIN} matches the committed tables");
    Ok(())
}

fn run() -> Result<(), String> {
    let root = workspace_root();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--check"] => check(&root),
        [] => {
            if !toolchain_installed() {
                return Err(format!(
                    "{STENCIL_TOOLCHAIN} is needed to regenerate stencils: rustup toolchain install {STENCIL_TOOLCHAIN} \
                     --profile minimal -c llvm-tools -t x86_64-unknown-none,aarch64-unknown-none,riscv64gc-unknown-none-elf"
                ));
            }
            for (rel, text) in generate(&root)? {
                let path = root.join(&rel);
                std::fs::create_dir_all(path.parent().expect("generated files live in a directory"))
                    .map_err(|e| e.to_string())?;
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
                println!("wrote {rel}");
            }
            Ok(())
        }
        _ => Err("usage: tessera-stencil-gen [--check]".into()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
