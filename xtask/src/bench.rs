//! `cargo xtask bench`: the side-by-side benchmark suite (crate `tessera-bench`).
//!
//! - `cargo xtask bench [--quick] [--out DIR]`: makes sure clang is installed (the native
//!   baseline is built with it), builds the suite in release and runs it.
//! - `cargo xtask bench --build-programs`: recompiles `bench/programs/*.c` into the committed
//!   eBPF objects (`clang -target bpf -O2 -mcpu=v3 -c`) and reports which changed.

use std::path::Path;
use std::process::{Command, ExitCode};

use crate::setup::{AptPackage, ensure_apt};
use crate::util::{cargo_cmd, command_line, run_status};

pub const BENCH_PACKAGE: &str = "tessera-bench";
/// Where the C sources and their committed objects live, relative to the workspace.
const PROGRAMS_DIR: &str = "bench/programs";
/// The flags every eBPF object is built with.
pub const BPF_CFLAGS: &[&str] = &["-target", "bpf", "-O2", "-mcpu=v3", "-c"];

/// Debian's clang: the eBPF objects and the native baseline are built with it.
pub const CLANG: AptPackage = AptPackage { name: "clang", commands: &["clang"], files: &[] };

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum BenchCommand {
    /// Run the suite, passing these arguments to it.
    Run(Vec<String>),
    BuildPrograms,
}

pub fn parse(args: &[String]) -> Result<BenchCommand, String> {
    if args.iter().any(|a| a == "--build-programs") {
        return match args {
            [only] if only == "--build-programs" => Ok(BenchCommand::BuildPrograms),
            _ => Err("--build-programs takes no other argument".into()),
        };
    }
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => {}
            "--out" if i + 1 < args.len() => i += 1,
            "--out" => return Err("--out needs a directory".into()),
            other => return Err(format!("unknown argument to bench: `{other}`")),
        }
        i += 1;
    }
    Ok(BenchCommand::Run(args.to_vec()))
}

pub fn bench(root: &Path, command: BenchCommand) -> ExitCode {
    if let Err(e) = ensure_apt(&[&CLANG]) {
        eprintln!("xtask bench: {e}");
        return ExitCode::FAILURE;
    }
    match command {
        BenchCommand::BuildPrograms => match build_programs(&root.join(PROGRAMS_DIR)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask bench --build-programs: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCommand::Run(args) => {
            let mut cargo_args = vec!["run", "--release", "-p", BENCH_PACKAGE, "--"];
            cargo_args.extend(args.iter().map(String::as_str));
            let mut cmd = cargo_cmd(root, &cargo_args);
            println!("$ {}", command_line(&cmd));
            match run_status(&mut cmd) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => {
                    eprintln!("xtask bench: `{}` failed", command_line(&cmd));
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("xtask bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Compiles every `*.c` in `dir` to `*.o` beside it.
fn build_programs(dir: &Path) -> Result<(), String> {
    let mut sources: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    if sources.is_empty() {
        return Err(format!("no C sources in {}", dir.display()));
    }
    for source in &sources {
        let object = source.with_extension("o");
        let before = std::fs::read(&object).ok();
        // Relative names, from the programs' directory: the object records the source name.
        let (Some(source_name), Some(object_name)) = (source.file_name(), object.file_name()) else {
            return Err(format!("bad source path {}", source.display()));
        };
        let mut cmd = Command::new("clang");
        cmd.current_dir(dir).args(BPF_CFLAGS).arg(source_name).arg("-o").arg(object_name);
        println!("$ {}", command_line(&cmd));
        if !run_status(&mut cmd)? {
            return Err(format!("`{}` failed", command_line(&cmd)));
        }
        let after = std::fs::read(&object).map_err(|e| format!("cannot read {}: {e}", object.display()))?;
        let status = match before {
            None => "new",
            Some(b) if b == after => "unchanged",
            Some(_) => "changed",
        };
        println!("  {}: {status} ({} bytes)", object_name.to_string_lossy(), after.len());
    }
    println!("commit the objects; `cargo test -p {BENCH_PACKAGE}` checks that every engine agrees on them");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]), Ok(BenchCommand::Run(vec![])));
        assert_eq!(parse(&strings(&["--quick"])), Ok(BenchCommand::Run(strings(&["--quick"]))));
        assert_eq!(
            parse(&strings(&["--out", "x", "--quick"])),
            Ok(BenchCommand::Run(strings(&["--out", "x", "--quick"])))
        );
        assert_eq!(parse(&strings(&["--build-programs"])), Ok(BenchCommand::BuildPrograms));
        assert!(parse(&strings(&["--build-programs", "--quick"])).is_err());
        assert!(parse(&strings(&["--out"])).is_err());
        assert_eq!(parse(&strings(&["--fast"])), Err("unknown argument to bench: `--fast`".into()));
    }
}
