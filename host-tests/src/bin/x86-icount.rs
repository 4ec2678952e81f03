//! `x86-icount BENCH_DIR OUT_DIR NAME MODE RUNS`: runs bench NAME of `qemu/bench/` (the
//! programs the bare-metal bench image counts) RUNS times through MODE (`jit`, `fast` or
//! `interpreter`) inside [`measured_runs`], so that `valgrind --tool=callgrind
//! --toggle-collect='*measured_runs*'` counts exactly those runs: the x86-64 column of
//! `cargo xtask qemu`. Prints `ebpf E code C` (eBPF instructions one run executes, bytes of
//! generated code) and checks every result against the reference interpreter's.

use std::path::Path;
use std::process::ExitCode;

use tessera::ebpf::{Helpers, Memory, Mode, Vm, interp};
use tessera_host_tests::qemu_bench;

/// The stack of a run: the entry frame and 8 levels of local calls.
const STACK: usize = tessera::ebpf::STACK_SIZE;

/// Runs once per context and stack (fresh copies of the bench's memory and a cleared stack,
/// as the bare-metal image does; there the copies are made outside the counted window, here
/// before the runs).
#[inline(always)]
fn run_each(vm: &mut Vm, mode: Mode, contexts: &mut [Vec<u8>], stacks: &mut [Vec<u8>]) -> Vec<Result<u64, String>> {
    contexts
        .iter_mut()
        .zip(stacks.iter_mut())
        .map(|(context, stack)| vm.run(mode, &mut Memory::new(stack, context, &mut [])).map_err(|e| e.to_string()))
        .collect()
}

/// [`run_each`], in the one function callgrind counts.
#[inline(never)]
fn measured_runs(
    vm: &mut Vm,
    mode: Mode,
    contexts: &mut [Vec<u8>],
    stacks: &mut [Vec<u8>],
) -> Vec<Result<u64, String>> {
    run_each(vm, mode, contexts, stacks)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, out, name, mode, runs] = args.as_slice() else {
        eprintln!("usage: x86-icount BENCH_DIR OUT_DIR NAME jit|fast|interpreter RUNS");
        return ExitCode::from(2);
    };
    let mode = match mode.as_str() {
        "jit" => Mode::Jit,
        "fast" => Mode::FastInterpreter,
        "interpreter" => Mode::Interpreter,
        other => {
            eprintln!("x86-icount: unknown mode `{other}`");
            return ExitCode::from(2);
        }
    };
    let Ok(runs) = runs.parse::<usize>() else {
        eprintln!("x86-icount: RUNS must be a number");
        return ExitCode::from(2);
    };
    let (dir, out) = (Path::new(dir), Path::new(out));
    let bench = match qemu_bench::ebpf_side(dir, name, &dir.join(format!("{name}.c")), out) {
        Ok(bench) => bench,
        Err(e) => {
            eprintln!("x86-icount: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut vm = match Vm::new(&bench.program, Helpers::empty()) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("x86-icount: {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The reference result and instruction count, and the code (compiled before the runs).
    let (mut context, mut stack) = (bench.memory.clone(), vec![0u8; STACK]);
    let (reference, executed) = interp::run_counting(
        vm.program(),
        &Helpers::empty(),
        &mut Memory::new(&mut stack, &mut context, &mut []),
        &interp::Config::default(),
    );
    let reference = match reference {
        Ok(r) if bench.expect.is_none_or(|e| e == r) => r,
        other => {
            eprintln!("x86-icount: {name}: the interpreter gives {other:?}, the suite {:?}", bench.expect);
            return ExitCode::FAILURE;
        }
    };
    let code = match mode {
        Mode::Jit => match vm.compile() {
            Ok(compiled) => compiled.code().len(),
            Err(e) => {
                eprintln!("x86-icount: {name}: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => 0,
    };
    // A first run outside the count: the JIT compiles and the fast interpreter decodes then.
    let (mut contexts, mut stacks) = (vec![bench.memory.clone(); runs + 1], vec![vec![0u8; STACK]; runs + 1]);
    let (mut first_context, mut first_stack) = (contexts.split_off(runs), stacks.split_off(runs));
    let warm_up = run_each(&mut vm, mode, &mut first_context, &mut first_stack);
    for (i, result) in warm_up.into_iter().chain(measured_runs(&mut vm, mode, &mut contexts, &mut stacks)).enumerate() {
        if result != Ok(reference) {
            eprintln!("x86-icount: {name}: run {i} gives {result:?}, the interpreter {reference:#x}");
            return ExitCode::FAILURE;
        }
    }
    println!("ebpf {executed} code {code}");
    ExitCode::SUCCESS
}
