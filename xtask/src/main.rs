//! `cargo xtask …`: build and test orchestration for the tessera workspace.
//!
//! Plain std, no dependencies. See README.md for the commands.

mod bench;
mod examples;
mod qemu;
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
                         and Debian packages (qemu-user, qemu-system, cross gcc/libc,
                         clang, llvm)
  test [--host-only]     run setup, then every test tier (stencils check, host tests,
                         qemu-user aarch64/riscv64, no_std builds, qemu-system bare metal,
                         clippy) and print a summary; --host-only skips the cross tiers
  qemu                   build the bare-metal images in qemu/ and boot them under QEMU
                         (aarch64, riscv64): conformance summaries and instruction counts
  size                   footprint of the bare-metal images per ISA (sections, stencil
                         table, JIT core, interpreter-only image for comparison)
  stencils [--check]     regenerate every front end's stencil tables with the pinned
                         nightly (--check: verify the committed ones instead)
  bench [--quick] [--out DIR]
                         install clang if missing, then run the benchmark suite in release
                         (tessera, rbpf, solana-sbpf and native C side by side); writes
                         results.csv and results.svg to DIR (default target/bench)
  bench --build-programs recompile bench/programs/*.c into the committed eBPF objects
  examples [--check]     rebuild the eBPF objects in examples/ from their C sources with
                         clang >= 18 (default CPU and -mcpu=v1..v4); --check fails when a
                         committed object differs from a rebuild
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
        Some(command @ ("qemu" | "size")) => {
            if let Some(a) = rest.first() {
                return usage_error(&format!("{command} takes no arguments, got `{a}`"));
            }
            let ok = if command == "qemu" { qemu::qemu(&root) } else { qemu::size(&root) };
            if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Some("stencils") => {
            let check = match rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                [] => false,
                ["--check"] => true,
                _ => return usage_error("stencils takes only --check"),
            };
            for cmd in tiers::stencil_commands(check) {
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                let code = delegate(&root, "stencils", &args);
                if code != ExitCode::SUCCESS {
                    return code;
                }
            }
            ExitCode::SUCCESS
        }
        Some("bench") => match bench::parse(&rest) {
            Ok(command) => bench::bench(&root, command),
            Err(e) => usage_error(&e),
        },
        Some("examples") => {
            let mut check = false;
            for a in &rest {
                match a.as_str() {
                    "--check" => check = true,
                    other => return usage_error(&format!("unknown argument to examples: `{other}`")),
                }
            }
            match examples::run(&root, check) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtask examples FAILED: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
