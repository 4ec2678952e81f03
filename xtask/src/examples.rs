//! `cargo xtask examples [--check]`: rebuilds the eBPF objects of the C programs in
//! `examples/` and `host-tests/c/` with Debian's clang (`clang -target bpf -O2 -g -c`), once
//! with the default CPU (`DIR/NAME.o`) and once per `-mcpu=v1..v4` (`DIR/mcpu/NAME.vN.o`).
//! The objects are committed so tests need no clang; `--check` rebuilds into a temporary
//! directory and fails if any committed object differs.
//!
//! Builds are reproducible: clang runs in the program's directory on relative paths (`bpf.h`
//! comes from `examples/` through a relative `-I`), with `-fdebug-prefix-map` mapping the
//! directory to `.` so no absolute path lands in the debug info. Identical bytes need the
//! same clang version (it is recorded in `.comment`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{command_line, find_in_path};

/// Directories (from the repository root) of C programs with committed objects, and their
/// sources (without `.c`).
pub const PROGRAM_DIRS: &[(&str, &[&str])] = &[
    ("examples", &["packet_filter", "counter", "rate_limit", "globals", "counter_legacy"]),
    // Programs only the tests run: compared with their native builds
    // (host-tests/tests/examples.rs), like the examples.
    ("host-tests/c", &["flow_table", "histogram", "kv_commands"]),
];
/// Where `bpf.h` is, from the repository root.
const HEADER_DIR: &str = "examples";
/// CPU versions built into `examples/mcpu/`.
const CPUS: &[&str] = &["v1", "v2", "v3", "v4"];
/// clang binaries tried in order (`$CLANG` first). `-mcpu=v4` needs LLVM 18 or newer;
/// Debian bookworm's default `clang` is 14, `clang-19` is packaged too.
const CLANGS: &[&str] = &["clang-21", "clang-20", "clang-19", "clang-18", "clang"];
const MIN_MAJOR_FOR_V4: u32 = 18;

pub fn run(root: &Path, check: bool) -> Result<(), String> {
    let clang = find_clang()?;
    let temp = std::env::temp_dir().join(format!("tessera-examples-{}", std::process::id()));
    println!("xtask examples: {} ({})", clang.path.display(), clang.version);
    let mut differ = Vec::new();
    for (dir, sources) in PROGRAM_DIRS {
        // Canonical, so the prefix map matches the working directory clang records.
        let source_dir = root.join(dir);
        let source_dir = source_dir.canonicalize().map_err(|e| format!("cannot find {}: {e}", source_dir.display()))?;
        let out_dir = if check { temp.join(dir) } else { source_dir.clone() };
        std::fs::create_dir_all(out_dir.join("mcpu")).map_err(|e| format!("cannot create {dir}/mcpu: {e}"))?;
        for name in *sources {
            let variants = std::iter::once((None, format!("{name}.o")))
                .chain(CPUS.iter().map(|cpu| (Some(*cpu), format!("mcpu/{name}.{cpu}.o"))));
            for (cpu, object) in variants {
                let out = out_dir.join(&object);
                compile(&clang.path, &source_dir, &header_include(dir), name, cpu, &out)?;
                if check {
                    let built = std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
                    let committed = std::fs::read(source_dir.join(&object)).unwrap_or_default();
                    if built != committed {
                        differ.push(format!("{dir}/{object}"));
                    }
                } else {
                    println!("xtask examples: built {dir}/{object}");
                }
            }
        }
    }
    if check {
        let _ = std::fs::remove_dir_all(&temp);
        if !differ.is_empty() {
            return Err(format!(
                "committed objects differ from a rebuild with {} ({}): {}; run `cargo xtask examples`",
                clang.path.display(),
                clang.version,
                differ.join(" ")
            ));
        }
        println!("xtask examples: every committed object matches its source");
    }
    Ok(())
}

/// The `-I` that finds `bpf.h` from `dir`, as a relative path (reproducible builds).
fn header_include(dir: &str) -> Option<String> {
    if dir == HEADER_DIR {
        return None;
    }
    let up = "../".repeat(Path::new(dir).components().count());
    Some(format!("-I{up}{HEADER_DIR}"))
}

fn compile(
    clang: &Path,
    dir: &Path,
    include: &Option<String>,
    name: &str,
    cpu: Option<&str>,
    out: &Path,
) -> Result<(), String> {
    let mut cmd = Command::new(clang);
    cmd.current_dir(dir).args(["-target", "bpf", "-O2", "-g", "-c", "-Wall", "-Wextra", "-Werror"]);
    if let Some(cpu) = cpu {
        cmd.arg(format!("-mcpu={cpu}"));
    }
    cmd.args(include);
    cmd.arg(format!("-fdebug-prefix-map={}=.", dir.display()));
    cmd.arg(format!("{name}.c")).arg("-o").arg(out);
    let status = cmd.status().map_err(|e| format!("cannot run `{}`: {e}", command_line(&cmd)))?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", command_line(&cmd)));
    }
    Ok(())
}

struct Clang {
    path: PathBuf,
    version: String,
}

/// The first clang (of `$CLANG` and [`CLANGS`]) new enough for `-mcpu=v4`.
fn find_clang() -> Result<Clang, String> {
    let from_env = std::env::var_os("CLANG").map(PathBuf::from);
    let candidates = from_env.into_iter().chain(CLANGS.iter().filter_map(|c| find_in_path(c)));
    let mut too_old = Vec::new();
    for path in candidates {
        let Ok(out) = Command::new(&path).arg("--version").output() else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.lines().next().unwrap_or_default().trim().to_string();
        match major_version(&version) {
            Some(major) if major >= MIN_MAJOR_FOR_V4 => return Ok(Clang { path, version }),
            _ => too_old.push(format!("{} ({version})", path.display())),
        }
    }
    Err(format!(
        "no clang {MIN_MAJOR_FOR_V4} or newer (needed for -mcpu=v4){}; install one with \
         `apt-get install clang-19` or set CLANG",
        if too_old.is_empty() { String::new() } else { format!(", found only {}", too_old.join(", ")) }
    ))
}

/// `19` from "Debian clang version 19.1.7 (3~deb12u1)".
fn major_version(line: &str) -> Option<u32> {
    let rest = line.split("clang version ").nth(1)?;
    rest.split('.').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(major_version("Debian clang version 19.1.7 (3~deb12u1)"), Some(19));
        assert_eq!(major_version("clang version 14.0.6"), Some(14));
        assert_eq!(major_version("gcc (Debian 12.2.0-14) 12.2.0"), None);
    }

    #[test]
    fn header_include_is_relative() {
        assert_eq!(header_include("examples"), None);
        assert_eq!(header_include("host-tests/c").as_deref(), Some("-I../../examples"));
    }
}
