//! A plugin for the bpf_conformance suite's runner.
//!
//! Protocol: the program arrives as base16 on stdin (bytes separated by whitespace, or one
//! contiguous run of digits); the context memory is the positional argument, in the same
//! form (several positionals are joined, in case the runner passes the bytes unquoted).
//! r1 = memory address, r2 = memory length; helper id 5 returns its first argument.
//! On success prints r0 as lowercase hex without prefix and a newline, and exits 0; on any
//! error prints it to stderr and exits 1. Bad usage exits 2.

use std::io::Read;
use std::process::ExitCode;

use tessera::ebpf::Mode;
use tessera::ebpf::fuel::DEFAULT_FUEL;
use tessera_cli::{execute, parse_hex};

fn help() -> String {
    format!(
        "\
usage: tessera-bpf-plugin [--jit | --interp | --fast] [--fuel N] [MEMORY-HEX] < PROGRAM-HEX

Runs the eBPF program given as hex bytes on stdin with MEMORY-HEX as context memory
(r1 = address, r2 = length) and prints r0 in hex. Helper id 5 returns its first argument.
  --jit     run generated native code (default)
  --interp  run the reference interpreter
  --fast    run the fast interpreter
  --fuel N  the execution budget: back edges and local calls are charged the instructions
            they may run; the run stops with an error once it is spent (default: {DEFAULT_FUEL})
Exit codes: 0 success, 1 program or runtime error, 2 usage error.
"
    )
}

fn main() -> ExitCode {
    let mut mode = Mode::Jit;
    let mut fuel = DEFAULT_FUEL;
    let mut memory_hex = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jit" => mode = Mode::Jit,
            "--interp" => mode = Mode::Interpreter,
            "--fast" => mode = Mode::FastInterpreter,
            "--fuel" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => fuel = n,
                None => {
                    eprintln!("error: --fuel needs a number\n{}", help());
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                print!("{}", help());
                return ExitCode::SUCCESS;
            }
            flag if flag.starts_with("--") || (flag.starts_with('-') && flag.len() > 1) => {
                eprintln!("error: unknown option {flag}\n{}", help());
                return ExitCode::from(2);
            }
            _ => memory_hex.push(arg),
        }
    }
    match run(mode, fuel, &memory_hex.join(" ")) {
        Ok(r0) => {
            println!("{r0:x}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(mode: Mode, fuel: u64, memory_hex: &str) -> Result<u64, String> {
    let mut memory = parse_hex(memory_hex).map_err(|e| format!("memory: {e}"))?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| format!("reading stdin: {e}"))?;
    let program = parse_hex(&input).map_err(|e| format!("program: {e}"))?;
    execute(&program, &mut memory, mode, fuel).map_err(|e| e.to_string())
}
