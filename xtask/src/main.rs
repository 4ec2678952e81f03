//! `cargo xtask …`: build and test orchestration for the tessera workspace.
//!
//! Plain std, no dependencies. See README.md for the commands.

mod bench;
mod setup;
mod tiers;
mod toolchain_file;
mod util;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use util::{cargo_cmd, command_line};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  setup                  install missing Rust targets/components (from rust-toolchain.toml)
                         and Debian packages (clang; qemu-user, cross gcc/libc, llvm for
                         llvm-objdump)
  test [--host-only]     run setup, then every test tier (stencils check, host tests,
                         qemu-user aarch64/riscv64, no_std builds, clippy) and print a
                         summary; --host-only skips the cross tiers
  stencils [--check] ... cargo run -p tessera-stencil-gen --release -- [args]
  bench [--quick] [--out DIR]
                         install clang if missing, then run the benchmark suite in release
                         (tessera, rbpf, solana-sbpf and native C side by side); writes
                         results.csv and results.svg to DIR (default target/bench)
  bench --build-programs recompile bench/programs/*.c into the committed eBPF objects
";

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in a workspace subdirectory").to_path_buf()
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let command = argv.next();
    let rest: Vec<String> = argv.collect();
    let root = workspace_root();

    match command.as_deref() {
        Some("setup") => {
            if let Some(a) = rest.first() {
                return usage_error(&format!("setup takes no arguments, got `{a}`"));
            }
            let outcome = setup::setup(&root, false);
            match outcome.error() {
                None => {
                    println!("setup: done");
                    ExitCode::SUCCESS
                }
                Some(e) => {
                    eprintln!("setup FAILED: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("test") => {
            let mut host_only = false;
            for a in &rest {
                match a.as_str() {
                    "--host-only" => host_only = true,
                    other => return usage_error(&format!("unknown argument to test: `{other}`")),
                }
            }
            if tiers::test(&root, host_only) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Some("stencils") => {
            let mut args = vec!["run", "-p", tiers::STENCIL_GEN_PACKAGE, "--release", "--"];
            args.extend(rest.iter().map(String::as_str));
            delegate(&root, "stencils", &args)
        }
        Some("bench") => match bench::parse(&rest) {
            Ok(command) => bench::bench(&root, command),
            Err(e) => usage_error(&e),
        },
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown command `{other}`")),
        None => usage_error("no command given"),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Runs one cargo command with inherited stdio and exits with its status.
fn delegate(root: &Path, what: &str, args: &[&str]) -> ExitCode {
    let mut cmd = cargo_cmd(root, args);
    println!("xtask {what}: delegating to `{}`", command_line(&cmd));
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("xtask {what}: `{}` failed ({s})", command_line(&cmd));
            ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).filter(|&c| c != 0).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("xtask {what}: cannot start `{}`: {e}", command_line(&cmd));
            ExitCode::FAILURE
        }
    }
}
