//! `tessera-stencil-gen`: builds one front end's stencil source for every ISA with the
//! pinned nightly, reads the objects with `object`, and writes that front end's committed
//! tables and listings.
//!
//! ```text
//! tessera-stencil-gen [--check] --source DIR/lib.rs --out DIR --listing DIR
//! ```
//! The source's directory is the front end's whole generator input: every file in it is
//! hashed into the tables' input digest (and a nightly build checks that the source reads
//! no file outside it). `--check` verifies the committed files: always by input digest and
//! by a digest of each file's own rendered contents (so a hand edit is caught without the
//! nightly), and byte for byte by regenerating when the pinned nightly is installed.

mod branches;
mod digest;
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
    /// x86-64 kernel (symbols are sign-extended 32-bit, so an operand hole is one
    /// `R_X86_64_32S` field), AArch64 large (`MOVW_UABS_G0..G3`; the dead high groups of
    /// 32-bit operands become nops), RISC-V medlow (`HI20`/`LO12`). AArch64 drops
    /// `strict-align` and RISC-V adds `unaligned-scalar-mem`: eBPF loads and stores may be
    /// unaligned, so the embedder's memory must allow unaligned scalar access (normal memory
    /// with the MMU on, on AArch64).
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
    "--crate-name=stencils",
    "-Copt-level=s",
    "-Cpanic=abort",
    "-Crelocation-model=static",
    "-Cforce-unwind-tables=no",
    "-Cdebuginfo=0",
    "-Zfunction-sections=yes",
    // Every stencil keeps its own body: identical ones (`and r1, r1` and `and r2, r2` are
    // both empty) would otherwise become aliases of one function.
    "-Zmerge-functions=disabled",
];

/// Directories besides the front end's own whose files determine every table: the
/// generator itself and the per-ISA relocation decoding it uses.
const GENERATOR_INPUTS: &[&str] = &["stencils/gen/src", "arch/src"];

/// One front end's generator job.
pub struct Job {
    /// The stencil source's crate root; its directory is the front end's input directory.
    pub source: PathBuf,
    /// Where `{isa}.rs` and `ids.rs` go.
    pub out: PathBuf,
    /// Where `{isa}.lst` go.
    pub listing: PathBuf,
}

impl Job {
    fn input_dirs(&self, root: &Path) -> Result<Vec<PathBuf>, String> {
        let source_dir = self.source.parent().ok_or("the stencil source has no directory")?.to_path_buf();
        let mut dirs = vec![source_dir];
        dirs.extend(GENERATOR_INPUTS.iter().map(|d| root.join(d)));
        Ok(dirs)
    }

    fn table_path(&self, isa: Isa) -> PathBuf {
        self.out.join(format!("{isa}.rs"))
    }

    fn listing_path(&self, isa: Isa) -> PathBuf {
        self.listing.join(format!("{isa}.lst"))
    }

    fn ids_path(&self) -> PathBuf {
        self.out.join("ids.rs")
    }
}

fn workspace_root() -> Result<PathBuf, String> {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().map_err(|e| format!("workspace root: {e}"))
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

/// Compiles the stencil source for one ISA; returns the object's path and every source
/// file rustc read (from its dep-info).
fn compile(job: &Job, spec: &TargetSpec, out_dir: &Path) -> Result<(PathBuf, Vec<PathBuf>), String> {
    let obj = out_dir.join(format!("stencils-{}.o", spec.isa));
    let dep = out_dir.join(format!("stencils-{}.d", spec.isa));
    let status = Command::new("rustc")
        .arg(format!("+{STENCIL_TOOLCHAIN}"))
        .args(COMMON_FLAGS)
        .args(spec.flags)
        .args(["--target", spec.triple, "--emit"])
        .arg(format!("obj={},dep-info={}", obj.display(), dep.display()))
        .arg(&job.source)
        .env_remove("RUSTFLAGS")
        .env("RUSTUP_TOOLCHAIN", STENCIL_TOOLCHAIN)
        .status()
        .map_err(|e| format!("running rustc +{STENCIL_TOOLCHAIN}: {e}"))?;
    if !status.success() {
        return Err(format!("compiling {} for {} failed", job.source.display(), spec.triple));
    }
    let deps = std::fs::read_to_string(&dep).map_err(|e| format!("{}: {e}", dep.display()))?;
    Ok((obj, digest::dep_info_sources(&deps)))
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

/// Every generated file of `job`: (path, contents).
fn generate(root: &Path, job: &Job) -> Result<Vec<(PathBuf, String)>, String> {
    let out_dir =
        root.join("target/stencil-gen").join(job.source.parent().and_then(Path::file_name).unwrap_or_default());
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let version = toolchain_version()?;
    let dirs = job.input_dirs(root)?;
    let mut files = Vec::new();
    let mut names: Option<Vec<String>> = None;
    for spec in &TARGETS {
        let (obj, sources) = compile(job, spec, &out_dir)?;
        if let Some(outside) = sources.iter().find(|s| !dirs.iter().any(|d| s.starts_with(d))) {
            return Err(format!(
                "the stencil source reads {}, outside its input directory {}: move it there so the digest covers it",
                outside.display(),
                dirs[0].display()
            ));
        }
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
        let digest = digest::inputs(&dirs, spec)?;
        files.push((job.table_path(spec.isa), render::table(spec, &stencils, digest, &version)?));
        // The listing disassembles the stencils as emitted (after the generator's rewrites),
        // from an object holding exactly the table's code and holes.
        let emitted = out_dir.join(format!("stencils-{}-emitted.o", spec.isa));
        std::fs::write(&emitted, extract::emitted_object(spec.isa, &bytes, &stencils)?).map_err(|e| e.to_string())?;
        files.push((
            job.listing_path(spec.isa),
            render::listing(spec, &stencils, &objdump(&emitted)?, digest, &version),
        ));
    }
    files.push((job.ids_path(), render::ids(&names.unwrap_or_default())?));
    Ok(files)
}

/// The checks that need no nightly: every table's input digest matches the sources, and
/// every generated file's contents match the digest in its own header.
fn check_committed(root: &Path, job: &Job) -> Result<(), String> {
    let dirs = job.input_dirs(root)?;
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = vec![job.ids_path()];
    for spec in &TARGETS {
        files.push(job.table_path(spec.isa));
        files.push(job.listing_path(spec.isa));
        let path = job.table_path(spec.isa);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let want = digest::inputs(&dirs, spec)?;
        match digest::committed_inputs(&text) {
            Some(have) if have == want => {}
            Some(have) => {
                problems.push(format!("{}: inputs digest {have:#018x}, sources {want:#018x}", path.display()))
            }
            None => problems.push(format!("{}: no inputs digest", path.display())),
        }
    }
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Err(e) = digest::verify_contents(&text) {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    if problems.is_empty() {
        println!("stencils {}: input and contents digests match", job.source.display());
        Ok(())
    } else {
        Err(format!("stencil files are stale or edited (run `cargo xtask stencils`):\n  {}", problems.join("\n  ")))
    }
}

fn check(root: &Path, job: &Job) -> Result<(), String> {
    check_committed(root, job)?;
    if !toolchain_installed() {
        println!(
            "stencils {}: byte-exact regeneration skipped ({STENCIL_TOOLCHAIN} with the bare-metal targets is not installed)",
            job.source.display()
        );
        return Ok(());
    }
    let differ: Vec<String> = generate(root, job)?
        .into_iter()
        .filter(|(path, text)| std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()))
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !differ.is_empty() {
        return Err(format!("regenerated stencil files differ from the committed ones: {}", differ.join(", ")));
    }
    println!("stencils {}: byte-exact regeneration with {STENCIL_TOOLCHAIN} matches", job.source.display());
    Ok(())
}

fn write(root: &Path, job: &Job) -> Result<(), String> {
    if !toolchain_installed() {
        return Err(format!(
            "{STENCIL_TOOLCHAIN} is needed to regenerate stencils: rustup toolchain install {STENCIL_TOOLCHAIN} \
             --profile minimal -c llvm-tools -t x86_64-unknown-none,aarch64-unknown-none,riscv64gc-unknown-none-elf"
        ));
    }
    // Everything is generated before anything is written: a failure leaves the old files.
    for (path, text) in generate(root, job)? {
        digest::write_atomically(&path, &text)?;
        println!("wrote {}", path.strip_prefix(root).unwrap_or(&path).display());
    }
    Ok(())
}

const USAGE: &str = "usage: tessera-stencil-gen [--check] --source DIR/lib.rs --out DIR --listing DIR";

fn run() -> Result<(), String> {
    let root = workspace_root()?;
    let mut args = std::env::args().skip(1);
    let (mut check_only, mut source, mut out, mut listing) = (false, None, None, None);
    while let Some(arg) = args.next() {
        let mut path = || args.next().map(|p| root.join(p)).ok_or_else(|| format!("{arg} needs a path\n{USAGE}"));
        match arg.as_str() {
            "--check" => check_only = true,
            "--source" => source = Some(path()?),
            "--out" => out = Some(path()?),
            "--listing" => listing = Some(path()?),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let (Some(source), Some(out), Some(listing)) = (source, out, listing) else {
        return Err(USAGE.into());
    };
    let job = Job { source, out, listing };
    if check_only { check(&root, &job) } else { write(&root, &job) }
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
