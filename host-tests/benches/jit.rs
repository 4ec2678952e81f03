//! `cargo xtask bench`: JIT compile speed, emit throughput, generated code size and run
//! time against the interpreter (and rbpf where it runs), all in one run, with ratios.
//! Wall-clock medians over repeated runs on a shared machine: read the ratios, not the
//! third digit.

use std::hint::black_box;
use std::time::Instant;

use tessera::CodeBuffer;
use tessera::ebpf::{Helpers, Insn, Memory, Mode, Observer, Vm, asm};
use tessera::jit::StencilId;
use tessera::jit::emitter::OwnedScratch;
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
        let t = tessera_stencils::table(isa).expect("linked");
        println!(
            "  {isa:8} {} stencils, {} code bytes, {} hole records, table total {} bytes",
            t.entries.len(),
            t.code.len(),
            t.holes.len(),
            t.size_bytes()
        );
    }

    // --- Compile speed and code size, per ISA, by cross-emission into a reused buffer.
    struct Count(usize);
    impl Observer for Count {
        fn placed(&mut self, _: Option<usize>, _: bool, _: StencilId, _: usize, _: usize) {
            self.0 += 1;
        }
    }
    let big = big_program();
    let helper = [tessera::ebpf::Helper { id: program_gen::HELPER_ID, func: program_gen::helper }];
    let vm = Vm::new(&big, Helpers::new(&helper)).expect("valid program");
    let n = vm.program().len();
    let need = vm.scratch_size();
    let mut scratch = OwnedScratch::with_capacity(need.labels, need.fixups);
    let mut memory = vec![0u8; 64 << 20];
    let mut stencils = Count(0);
    vm.emit_observed(
        Isa::X86_64,
        &mut CodeBuffer::with_base(&mut memory, 0x4000_0000),
        scratch.scratch(),
        &mut stencils,
    )
    .expect("emits");
    println!("\ncompile: {n}-slot program, {} stencils placed", stencils.0);
    for isa in Isa::ALL {
        let mut len = 0;
        let compile_ns = median_ns(21, || {
            let mut buffer = CodeBuffer::with_base(&mut memory, 0x4000_0000);
            len = vm.emit_for(isa, &mut buffer, scratch.scratch()).expect("compiles").bytes.len();
            black_box(&buffer);
        });
        println!(
            "  {isa:8} compile {:6.1} ns per eBPF instruction, {:5.1} ns per stencil; {:5.1} bytes per eBPF instruction",
            compile_ns / n as f64,
            compile_ns / stencils.0 as f64,
            len as f64 / n as f64
        );
    }

    // --- Code size over the whole conformance suite (every ISA, by cross-emission).
    let cases = tessera_host_tests::conformance::load_dir(tessera_host_tests::conformance::tests_dir());
    let programs: Vec<Vec<u8>> =
        cases.iter().filter_map(|c| tessera_host_tests::conformance::program_bytes(c).ok()).collect();
    println!("\ngenerated code over the {} conformance programs (entry stencil included):", programs.len());
    for isa in Isa::ALL {
        let (mut slots, mut bytes) = (0usize, 0usize);
        for program in &programs {
            let helpers = [tessera::ebpf::Helper { id: 5, func: |a, _, _, _, _| a }];
            let Ok(vm) = Vm::new(program, Helpers::new(&helpers)) else { continue };
            bytes += tessera_host_tests::emit_at(&vm, isa, 0x4000_0000).expect("compiles").len();
            slots += vm.program().len();
        }
        println!(
            "  {isa:8} {:6.1} bytes per eBPF instruction ({bytes} bytes for {slots} slots)",
            bytes as f64 / slots as f64
        );
    }

    // --- Run time: JIT vs interpreter on the host.
    let bytes = asm::assemble_to_bytes(LOOP).expect("assembles");
    let mut vm = Vm::new(&bytes, Helpers::empty()).expect("valid");
    vm.set_fuel(u64::MAX);
    let compile_ns = median_ns(21, || {
        black_box(vm.compile().expect("compiles"));
    });
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
        "\nloop kernel (1,000,000 iterations, {} slots, host {}): compile {:.1} us (into the code arena)",
        vm.program().len(),
        std::env::consts::ARCH,
        compile_ns / 1e3
    );
    println!("  interpreter {:8.2} ms", times[0] / 1e6);
    println!("  tessera JIT {:8.2} ms   ({:.1}x faster than the interpreter)", times[1] / 1e6, times[0] / times[1]);
    peers::run(&bytes, times[1], result[0]);
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
