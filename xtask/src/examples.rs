//! `cargo xtask examples [--check]`: rebuilds the eBPF objects in `examples/` from their C
//! sources with Debian's clang (`clang -target bpf -O2 -g -c`), once with the default CPU
//! (`examples/NAME.o`) and once per `-mcpu=v1..v4` (`examples/mcpu/NAME.vN.o`). The
//! objects are committed so tests need no clang; `--check` rebuilds into a temporary
//! directory and fails if any committed object differs.
//!
//! Builds are reproducible: clang runs in `examples/` on relative paths, with
//! `-fdebug-prefix-map` mapping the directory to `.` so no absolute path lands in the
//! debug info. Identical bytes need the same clang version (it is recorded in `.comment`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{command_line, find_in_path};

/// The C sources in `examples/` (without `.c`).
pub const SOURCES: &[&str] = &["packet_filter", "counter", "rate_limit", "globals", "counter_legacy"];
/// CPU versions built into `examples/mcpu/`.
const CPUS: &[&str] = &["v1", "v2", "v3", "v4"];
/// clang binaries tried in order (`$CLANG` first). `-mcpu=v4` needs LLVM 18 or newer;
/// Debian bookworm's default `clang` is 14, `clang-19` is packaged too.
const CLANGS: &[&str] = &["clang-21", "clang-20", "clang-19", "clang-18", "clang"];
const MIN_MAJOR_FOR_V4: u32 = 18;

pub fn run(root: &Path, check: bool) -> Result<(), String> {
    let clang = find_clang()?;
    // Canonical, so the prefix map matches the working directory clang records.
    let examples = root.join("examples");
    let examples = examples.canonicalize().map_err(|e| format!("cannot find {}: {e}", examples.display()))?;
    let out_dir = if check {
        let dir = std::env::temp_dir().join(format!("tessera-examples-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mcpu")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        dir
    } else {
        std::fs::create_dir_all(examples.join("mcpu")).map_err(|e| format!("cannot create examples/mcpu: {e}"))?;
        examples.clone()
    };
    println!("xtask examples: {} ({})", clang.path.display(), clang.version);
    let mut differ = Vec::new();
    for name in SOURCES {
        let variants = std::iter::once((None, format!("{name}.o")))
            .chain(CPUS.iter().map(|cpu| (Some(*cpu), format!("mcpu/{name}.{cpu}.o"))));
        for (cpu, object) in variants {
            let out = out_dir.join(&object);
            compile(&clang.path, &examples, name, cpu, &out)?;
            if check {
                let built = std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
                let committed = std::fs::read(examples.join(&object)).unwrap_or_default();
                if built != committed {
                    differ.push(object);
                }
            } else {
                println!("xtask examples: built examples/{object}");
            }
        }
    }
    if check {
        let _ = std::fs::remove_dir_all(&out_dir);
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

fn compile(clang: &Path, examples: &Path, name: &str, cpu: Option<&str>, out: &Path) -> Result<(), String> {
    let mut cmd = Command::new(clang);
    cmd.current_dir(examples).args(["-target", "bpf", "-O2", "-g", "-c", "-Wall", "-Wextra", "-Werror"]);
    if let Some(cpu) = cpu {
        cmd.arg(format!("-mcpu={cpu}"));
    }
    cmd.arg(format!("-fdebug-prefix-map={}=.", examples.display()));
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
}
