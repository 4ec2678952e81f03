//! QEMU virt image: exact guest instruction counts (under `-icount shift=0`) for each bench
//! in `qemu/bench/`, through the reference interpreter, the fast interpreter, the JIT and the
//! kernel compiled natively with clang -O2, with the number of eBPF instructions executed;
//! `cargo xtask qemu` turns them into the per-instruction table. Results of all four must
//! agree. No global allocator.
#![no_std]
#![no_main]

use tessera_firmware::{arch, engine};

/// One bench: the eBPF program and its context, and the native kernel.
pub struct Bench {
    name: &'static str,
    program: &'static [u8],
    memory: &'static [u8],
    expect: Option<u64>,
    native: unsafe extern "C" fn(*mut u8, u64) -> u64,
}

include!(concat!(env!("OUT_DIR"), "/benches.rs"));

type Context = heapless::Vec<u8, 1024>;

/// Runs `f` between two counter readings; returns its result and the raw count.
#[inline(always)]
fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let start = arch::instructions_retired();
    let result = f();
    let end = arch::instructions_retired();
    (result, arch::counter_delta(start, end))
}

/// The count around a calibration loop: one out-of-line copy of the code, so that the two
/// measurements differ only in the loop's trip count.
#[inline(never)]
fn loop_cost(iterations: u64) -> u64 {
    counted(|| arch::calibration_loop(core::hint::black_box(iterations))).1
}

/// Checks the counter on a loop of known length; returns the cost of an empty measurement.
fn calibrate() -> Option<u64> {
    if !arch::instruction_counter_exact() {
        defmt::error!("the instruction counter is not exact: run under -icount shift=0");
        return None;
    }
    let ((), empty) = counted(|| ());
    let (short, long) = (loop_cost(1000), loop_cost(2000));
    let want = 1000 * arch::CALIBRATION_LOOP_INSTRUCTIONS;
    if long.wrapping_sub(short) != want {
        defmt::error!(
            "counter check: 1000 more loop iterations counted {=u64} instructions, not {=u64}",
            long.wrapping_sub(short),
            want
        );
        return None;
    }
    defmt::println!(
        "bench {=str}: counter exact ({=str}); an empty measurement counts {=u64}",
        arch::ARCH,
        arch::COUNTER,
        empty
    );
    Some(empty)
}

/// Counts `run` on a fresh copy of `context`, after one run outside the measured window on
/// the same stack and context buffer: the steady state of a program run again and again, as
/// an embedder runs it (keeping its stack and run contexts, see `engine::Stack`).
fn measured<R>(context: &Context, mut run: impl FnMut(&mut [u8], &mut engine::Stack) -> R) -> (R, u64) {
    let (mut memory, mut stack) = (context.clone(), engine::Stack::new());
    run(&mut memory, &mut stack);
    memory.copy_from_slice(context);
    counted(|| run(&mut memory, &mut stack))
}

/// The prepared program, or `None` after logging why `what` failed.
fn prepared<T>(bench: &Bench, what: &str, result: Result<T, engine::Error>) -> Option<T> {
    result.map_err(|e| defmt::error!("bench {=str}: {=str} failed: {}", bench.name, what, e)).ok()
}

fn run_bench(bench: &Bench, region: &mut engine::CodeRegion, overhead: u64) -> bool {
    let Ok(context) = Context::from_slice(bench.memory) else {
        defmt::error!("bench {=str}: {=usize} bytes of memory exceed the buffer", bench.name, bench.memory.len());
        return false;
    };
    let loaded = match engine::load(bench.program) {
        Ok(l) => l,
        Err(e) => {
            defmt::error!("bench {=str}: rejected: {}", bench.name, e);
            return false;
        }
    };
    let (reference, executed) = loaded.count_executed(&mut context.clone(), &mut engine::Stack::new());
    let (interpreted, interp_count) = measured(&context, |c, s| loaded.interpret(c, s));
    // Decoding and compilation happen once, outside the measured windows.
    let mut slots = engine::SlotBuffer::new();
    let Some(decoded) = prepared(bench, "decoding", loaded.decode(&mut slots)) else { return false };
    let (fast, fast_count) = measured(&context, |c, s| decoded.run(c, s));
    let Some(compiled) = prepared(bench, "compilation", loaded.compile(region)) else { return false };
    let (jitted, jit_count) = measured(&context, |c, s| compiled.run(c, s));
    let mut native_context = context.clone();
    let (len, ptr) = (native_context.len() as u64, native_context.as_mut_ptr());
    // SAFETY: a bench kernel reads at most `len` bytes at `ptr` (the contract in
    // qemu/bench/README.md), which `native_context` holds for the call.
    let (native, native_count) = counted(|| unsafe { (bench.native)(ptr, len) });

    let agree = reference.is_ok()
        && interpreted == reference
        && fast == reference
        && jitted == reference
        && reference == Ok(native)
        && bench.expect.is_none_or(|want| reference == Ok(want));
    if !agree {
        defmt::error!(
            "bench {=str}: results differ: counting interpreter {}, interpreter {}, fast interpreter {}, jit {}, native {=u64:#x}, expected {}",
            bench.name,
            reference,
            interpreted,
            fast,
            jitted,
            native,
            bench.expect
        );
        return false;
    }
    defmt::println!(
        "bench {=str} {=str}: ebpf {=u64} interpreter {=u64} fast {=u64} jit {=u64} native {=u64} code {=usize}",
        arch::ARCH,
        bench.name,
        executed,
        interp_count - overhead,
        fast_count - overhead,
        jit_count - overhead,
        native_count - overhead,
        compiled.len()
    );
    true
}

fn main() -> u32 {
    let Some(overhead) = calibrate() else { return 1 };
    let Some(mut region) = engine::CodeRegion::take() else {
        defmt::error!("the code region was already taken");
        return 1;
    };
    let (mut passed, mut failed) = (0u32, 0u32);
    for bench in &BENCHES {
        if run_bench(bench, &mut region, overhead) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    defmt::println!("bench {=str}: {=u32} passed, {=u32} failed", arch::ARCH, passed, failed);
    u32::from(failed != 0)
}

tessera_firmware::image_main!(main);
