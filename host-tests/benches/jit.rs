//! `cargo xtask bench`: JIT compile speed, emit throughput, generated code size and run
//! time against the interpreter (and rbpf where it runs), all in one run, with ratios.
//! Wall-clock medians over repeated runs on a shared machine: read the ratios, not the
//! third digit.

use std::hint::black_box;
use std::time::Instant;

use tessera::code_buffer::CodeBuffer;
use tessera::ebpf::lower::Lowering;
use tessera::ebpf::lower::lower;
use tessera::ebpf::{Helpers, Insn, Memory, Mode, Vm, asm};
use tessera::emitter::{Emitter, Item, Recorded};
use tessera_arch::Isa;
use tessera_host_tests::program_gen::{self as program_gen, Rng};

/// Median nanoseconds of `f` over `reps` runs.
fn median_ns(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// A program of about 10,000 instructions: random valid code (every ALU op, branches, loads,
/// stores, atomics, calls) from the differential-test generator.
fn big_program() -> Vec<u8> {
    // Each generated chunk is a self-contained program (ending in exit, plus a local function
    // it calls) whose jumps stay inside it; a dispatcher calls every chunk as a function, so
    // all of them are reachable.
    let mut chunks: Vec<Vec<Insn>> = Vec::new();
    let mut seed = 1u64;
    while chunks.iter().map(Vec::len).sum::<usize>() < 10_000 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        chunks.push(program_gen::program(&mut rng, 200));
        seed += 1;
    }
    let mut insns: Vec<Insn> = Vec::new();
    let mut start = chunks.len() + 1;
    for (i, chunk) in chunks.iter().enumerate() {
        insns.push(Insn::new(tessera::ebpf::insn::op::CALL, 0, 1, 0, (start - i - 1) as i32));
        start += chunk.len();
    }
    insns.push(Insn::new(tessera::ebpf::insn::op::EXIT, 0, 0, 0, 0));
    insns.extend(chunks.into_iter().flatten());
    program_gen::to_bytes(&insns)
}

const LOOP: &str = "
# A loop-heavy kernel: arithmetic, a stack round trip and a data-dependent branch per
# iteration, one million iterations.
mov %r0, 0
mov %r1, 0
mov %r2, 1000000
loop:
mov %r3, %r1
mul %r3, %r3
xor %r0, %r3
rsh %r3, 3
add %r0, %r3
stxdw [%r10-8], %r0
ldxdw %r4, [%r10-8]
and %r4, 0xff
jgt %r4, 0x80, skip
add %r0, 7
skip:
add %r1, 1
jlt %r1, %r2, loop
exit
";

fn main() {
    println!("tessera benchmarks (median wall-clock of repeated runs)\n");

    // --- Stencil tables.
    println!("stencil tables:");
    for isa in Isa::ALL {
        let t = tessera_stencils::table(isa);
        println!(
            "  {isa:8} {} stencils, {} code bytes, {} hole records, table total {} bytes",
            t.entries.len(),
            t.code.len(),
            t.holes.len(),
            t.size_bytes()
        );
    }

    // --- Compile speed and code size, per ISA, by cross-emission into a plain buffer.
    let big = big_program();
    let vm =
        Vm::new(&big, Helpers::new(&[tessera::ebpf::Helper { id: program_gen::HELPER_ID, func: program_gen::helper }]))
            .expect("valid program");
    let n = vm.program().len();
    let mut stencils = 0usize;
    lower(vm.program(), &mut |item| {
        if let Item::Place(_) = item {
            stencils += 1;
        }
        Ok(())
    })
    .expect("lowers");
    println!("\ncompile: {n}-slot program, {stencils} stencils placed");
    let mut labels = vec![0u32; vm.labels_needed()];
    let mut memory = vec![0u8; 64 << 20];
    let recorded = Recorded::record(&Lowering(vm.program())).expect("lowers");
    for isa in Isa::ALL {
        let mut len = 0;
        let compile_ns = median_ns(21, || {
            let mut buffer = CodeBuffer::with_base(&mut memory, 0x4000_0000);
            len = vm.compile_into(isa, &mut labels, &mut buffer).expect("compiles").len;
            black_box(&buffer);
        });
        // Emission alone: the recorded stencil stream copied and patched (pass 2).
        let emitter = Emitter::new(isa);
        let size = emitter.layout(&recorded, &mut labels).expect("layout");
        let emit_ns = median_ns(21, || {
            black_box(emitter.emit(&recorded, &labels, &mut memory[..size], 0x4000_0000).expect("emits"));
        });
        println!(
            "  {isa:8} compile {:6.1} ns per eBPF instruction; copy-and-patch alone {:5.1} ns per stencil; {:5.1} bytes per eBPF instruction",
            compile_ns / n as f64,
            emit_ns / stencils as f64,
            len as f64 / n as f64
        );
    }

    // --- Code size over the whole conformance suite (every ISA, by cross-emission).
    let cases = tessera_host_tests::conformance::load_dir(tessera_host_tests::conformance::tests_dir());
    let helpers = [tessera::ebpf::Helper { id: 5, func: |a, _, _, _, _| a }];
    // The programs that validate (not the 12 that shift by an out-of-range immediate).
    let programs: Vec<Vec<u8>> = cases
        .iter()
        .filter_map(|c| tessera_host_tests::conformance::program_bytes(c).ok())
        .filter(|p| Vm::new(p, Helpers::new(&helpers)).is_ok())
        .collect();
    println!("\ngenerated code over the {} valid conformance programs (entry stencil included):", programs.len());
    for isa in Isa::ALL {
        let (mut slots, mut bytes) = (0usize, 0usize);
        for program in &programs {
            let vm = Vm::new(program, Helpers::new(&helpers)).expect("valid");
            let mut labels = vec![0u32; vm.labels_needed()];
            let mut buffer = CodeBuffer::with_base(&mut memory, 0x4000_0000);
            bytes += vm.compile_into(isa, &mut labels, &mut buffer).expect("compiles").len;
            slots += vm.program().len();
        }
        println!(
            "  {isa:8} {:6.1} bytes per eBPF instruction ({bytes} bytes for {slots} slots)",
            bytes as f64 / slots as f64
        );
    }

    front_end();

    // --- Run time: JIT vs interpreter on the host.
    let bytes = asm::assemble_to_bytes(LOOP).expect("assembles");
    let mut vm = Vm::new(&bytes, Helpers::empty()).expect("valid");
    let compile_ns = median_ns(21, || vm.compile().expect("compiles"));
    let (mut stack, mut ctx) = (vec![0u8; 512 * 9], vec![0u8; 8]);
    let mut result = [0u64; 2];
    let mut times = [0f64; 2];
    for (i, mode) in [Mode::Interpreter, Mode::Jit].into_iter().enumerate() {
        times[i] = median_ns(7, || {
            let mut memory = Memory::new(&mut stack, &mut ctx, &mut []);
            result[i] = vm.run(mode, &mut memory).expect("runs");
        });
    }
    assert_eq!(result[0], result[1], "JIT and interpreter disagree");
    println!(
        "\nloop kernel (1,000,000 iterations, {} slots, host {}): compile {:.1} us (incl. mmap/mprotect)",
        vm.program().len(),
        std::env::consts::ARCH,
        compile_ns / 1e3
    );
    println!("  interpreter {:8.2} ms", times[0] / 1e6);
    println!("  tessera JIT {:8.2} ms   ({:.1}x faster than the interpreter)", times[1] / 1e6, times[0] / times[1]);
    peers::run(&bytes, times[1], result[0]);
}

/// The front end at scale: the assembler on labelled text and the validator on long
/// programs, at two sizes 10x (16x) apart. Time per line (slot) stays about flat when the
/// work is linear (cache effects aside: 2^20 slots are 8 MiB of bytecode); it would grow
/// with the size, a ratio of ~10 (~16), if it were quadratic, as the assembler was (40,000
/// labelled lines took 48 s).
fn front_end() {
    let labelled = |n: usize| {
        let mut text = String::with_capacity(n * 32);
        for i in 0..n {
            let target = if i % 2 == 0 { i - i % 1000 } else { (i + 500).min(n) };
            text.push_str(&format!("l{i}: jne %r0, {i}, l{target}\n"));
        }
        text.push_str(&format!("l{n}: exit\n"));
        text
    };
    let (small, large) = (labelled(10_000), labelled(100_000));
    let per_line = |text: &str, n: usize| {
        median_ns(5, || {
            black_box(asm::assemble_to_vec(text).expect("assembles"));
        }) / n as f64
    };
    let (a, b) = (per_line(&small, 10_000), per_line(&large, 100_000));
    println!(
        "
assembler, labelled lines (each a jump to a label):"
    );
    println!("  10,000 lines {a:6.1} ns/line; 100,000 lines {b:6.1} ns/line (ratio {:.2})", b / a);

    // Functions of four slots, each calling the next, with a loop: every rule has work to do.
    let program = |slots: usize| {
        let mut insns = Vec::with_capacity(slots);
        for f in 0..slots / 4 {
            let call = if f + 1 == slots / 4 {
                Insn::new(0xb7, 0, 0, 0, 0)
            } else {
                Insn::new(tessera::ebpf::insn::op::CALL, 0, 1, 0, 2)
            };
            insns.extend([
                Insn::new(0x15, 1, 0, 2, 0),
                call,
                Insn::new(0x55, 1, 0, -3, 0),
                Insn::new(0x95, 0, 0, 0, 0),
            ]);
        }
        program_gen::to_bytes(&insns)
    };
    let per_slot = |slots: usize| {
        let code = program(slots);
        median_ns(5, || {
            black_box(tessera::ebpf::Program::new(&code, |_| false).expect("valid"));
        }) / slots as f64
    };
    let (a, b) = (per_slot(1 << 16), per_slot(1 << 20));
    println!("validator, functions with loops and calls:");
    println!("  2^16 slots {a:6.1} ns/slot; 2^20 slots {b:6.1} ns/slot (ratio {:.2})", b / a);
}

mod peers {
    //! Peers measured in the same run on the same program.

    #[cfg(target_arch = "x86_64")]
    pub fn run(bytes: &[u8], tessera_jit_ns: f64, expected: u64) {
        let mut vm = rbpf::EbpfVmNoData::new(Some(bytes)).expect("rbpf loads the program");
        let interp_ns = super::median_ns(3, || assert_eq!(vm.execute_program().expect("rbpf runs"), expected));
        vm.jit_compile().expect("rbpf JIT compiles");
        // SAFETY: rbpf's JIT entry point; the program was verified by rbpf and only touches
        // its own stack.
        let jit_ns =
            super::median_ns(7, || assert_eq!(unsafe { vm.execute_program_jit() }.expect("rbpf JIT runs"), expected));
        println!("  rbpf interp {:8.2} ms", interp_ns / 1e6);
        println!(
            "  rbpf JIT    {:8.2} ms   (tessera JIT / rbpf JIT time ratio {:.2}; rbpf does no bounds checks in JIT code)",
            jit_ns / 1e6,
            tessera_jit_ns / jit_ns
        );
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn run(_: &[u8], _: f64, _: u64) {
        println!("  rbpf: skipped (its JIT targets x86-64 only)");
    }
}
