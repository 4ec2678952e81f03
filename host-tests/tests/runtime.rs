//! The run-time contract, in every mode on every ISA the test binary runs on: granted
//! regions, the address model (no host address reaches a program), the stack cleared
//! between runs, an empty context as null, a panicking helper, the region limit.

use tessera::ebpf::{Error, Helper, Helpers, Memory, Mode, Region, RunError, Vm, asm};
use tessera::ebpf::{interp, jit};

fn modes() -> [Mode; 3] {
    [Mode::Interpreter, Mode::FastInterpreter, Mode::Jit]
}

fn vm<'p>(bytes: &'p [u8], helpers: &'p [Helper]) -> Vm<'p, 'p> {
    Vm::new(bytes, Helpers::new(helpers)).expect("valid program")
}

fn assemble(text: &str) -> Vec<u8> {
    asm::assemble_to_bytes(text).expect("assembles")
}

#[test]
fn granted_regions_are_read_written_and_protected_alike() {
    // r1 points at the context, whose first 16 bytes hold the two regions' addresses.
    let program = assemble(
        "ldxdw %r2, [%r1]
         ldxdw %r3, [%r1+8]
         ldxw %r0, [%r2+4]
         stxw [%r3+8], %r0
         add %r0, 1
         exit",
    );
    for mode in modes() {
        let read_only = [0u8, 0, 0, 0, 0x44, 0x33, 0x22, 0x11];
        let mut writable = [0u8; 16];
        let mut regions = [Region::ReadOnly(&read_only), Region::ReadWrite(&mut writable)];
        let mut stack = [0u8; 512];
        let mut context = [0u8; 16];
        let mut memory = Memory::new(&mut stack, &mut context, &mut regions);
        let (ro, rw) = (memory.region_address(0), memory.region_address(1));
        assert_eq!((ro, rw), (3 << 32, 4 << 32), "granted regions follow stack, context and maps");
        memory.context[..8].copy_from_slice(&ro.to_le_bytes());
        memory.context[8..].copy_from_slice(&rw.to_le_bytes());
        let mut vm = vm(&program, &[]);
        assert_eq!(vm.run(mode, &mut memory), Ok(0x1122_3345), "{mode:?}");
        assert_eq!(&writable[8..12], &[0x44, 0x33, 0x22, 0x11], "{mode:?}: the write reached the embedder");
    }
    // A store into the read-only region faults, naming the instruction and the address.
    let program = assemble("ldxdw %r2, [%r1]\nstb [%r2+3], 7\nmov %r0, 0\nexit");
    for mode in modes() {
        let read_only = [0u8; 8];
        let mut regions = [Region::ReadOnly(&read_only)];
        let (mut stack, mut context) = ([0u8; 512], [0u8; 8]);
        let mut memory = Memory::new(&mut stack, &mut context, &mut regions);
        let ro = memory.region_address(0);
        memory.context.copy_from_slice(&ro.to_le_bytes());
        let mut vm = vm(&program, &[]);
        let fault = RunError::MemoryFault { pc: 1, addr: ro + 3 };
        assert_eq!(vm.run(mode, &mut memory), Err(Error::Run(fault)), "{mode:?}");
        assert_eq!(
            fault.to_string(),
            "instruction 1: memory access at 0x300000003 (region 3, offset 0x3) out of bounds"
        );
    }
}

#[test]
fn programs_see_virtual_addresses_only() {
    // r10 and r1 are the same whatever the host addresses of the buffers.
    let program = assemble("mov %r0, %r10\nlsh %r0, 8\nor %r0, %r1\nexit");
    for mode in modes() {
        let (mut stack, mut context) = (vec![0u8; 1024], vec![0u8; 4]);
        let mut memory = Memory::new(&mut stack, &mut context, &mut []);
        // Without local calls a program addresses one frame, the top of the stack.
        let r10 = (1u64 << 32) + 512;
        let want = (r10 << 8) | (2 << 32);
        assert_eq!(vm(&program, &[]).run(mode, &mut memory), Ok(want), "{mode:?}");
    }
    // With local calls, the whole stack.
    let program = assemble("call local +1\nexit\nmov %r0, %r10\nexit");
    for mode in modes() {
        let mut stack = vec![0u8; 1024];
        let mut memory = Memory::new(&mut stack, &mut [], &mut []);
        let callee_r10 = (1u64 << 32) + 1024 - 512;
        assert_eq!(vm(&program, &[]).run(mode, &mut memory), Ok(callee_r10), "{mode:?}");
    }
}

#[test]
fn an_empty_context_is_null_with_length_zero() {
    let program = assemble("mov %r0, %r1\nadd %r0, %r2\nexit");
    for mode in modes() {
        let mut stack = [0u8; 512];
        let mut memory = Memory::new(&mut stack, &mut [], &mut []);
        assert_eq!(vm(&program, &[]).run(mode, &mut memory), Ok(0), "{mode:?}");
    }
    // A load through it faults at the null address.
    let program = assemble("ldxb %r0, [%r1+5]\nexit");
    for mode in modes() {
        let mut stack = [0u8; 512];
        let mut memory = Memory::new(&mut stack, &mut [], &mut []);
        let fault = RunError::MemoryFault { pc: 0, addr: 5 };
        assert_eq!(vm(&program, &[]).run(mode, &mut memory), Err(Error::Run(fault)), "{mode:?}");
    }
}

#[test]
fn a_run_never_reads_what_an_earlier_run_left_on_the_stack() {
    let write = assemble("stdw [%r10-8], 0x5a5a\nmov %r0, 0\nexit");
    let read = assemble("ldxdw %r0, [%r10-8]\nexit");
    for mode in modes() {
        let mut stack = [0u8; 512];
        for (program, want) in [(&write, 0), (&read, 0)] {
            let mut memory = Memory::new(&mut stack, &mut [], &mut []);
            assert_eq!(vm(program, &[]).run(mode, &mut memory), Ok(want), "{mode:?}");
        }
    }
}

#[test]
fn a_run_zeroes_every_stack_byte_it_can_reach() {
    // Each program reads 8 bytes it never wrote, from a stack an embedder left dirty: through
    // r10 (only the bytes below each frame's top that the program addresses are zeroed),
    // through r10 in a callee's frame, and through an address computed without r10 (the
    // whole stack the program addresses is zeroed). A program without local calls
    // addresses one frame: below it is no stack of its, so stale bytes there fault.
    let cases = [
        ("ldxdw %r0, [%r10-16]\nexit", Some(16), Ok(0)),
        ("call local +1\nexit\nstdw [%r10-24], 0\nldxdw %r0, [%r10-8]\nexit", Some(24), Ok(0)),
        ("lddw %r1, 0x100000000\nldxdw %r0, [%r1+504]\nexit", None, Ok(0)),
        ("mov %r0, %r10\nldxdw %r0, [%r0-512]\nexit", None, Ok(0)),
        // Below the one frame of a program without local calls: not its stack at all.
        ("lddw %r1, 0x100000000\nldxdw %r0, [%r1+1016]\nexit", None, Err(fault(2, (1 << 32) + 1016))),
        ("mov %r0, %r10\nldxdw %r0, [%r0-1000]\nexit", None, Err(fault(1, (1 << 32) + 512 - 1000))),
    ];
    for (text, reach, want) in cases {
        let program = assemble(text);
        let mut vm = vm(&program, &[]);
        assert_eq!(vm.program().stack_reach(), reach, "{text}");
        for mode in modes() {
            let mut stack = [0x5au8; 1024];
            let mut memory = Memory::new(&mut stack, &mut [], &mut []);
            assert_eq!(vm.run(mode, &mut memory), want.clone(), "{mode:?}: {text}");
        }
    }
}

fn fault(pc: u32, addr: u64) -> Error {
    Error::Run(RunError::MemoryFault { pc, addr })
}

#[test]
fn one_compiled_program_grants_each_run_exactly_its_regions() {
    // A compiled or decoded program (and a Vm) keeps its run context between runs; what one run was granted must
    // not stay reachable in the next. r1 points at the context, which holds the address read.
    let program = assemble("ldxdw %r2, [%r1]\nldxb %r0, [%r2+1]\nexit");
    let vm = vm(&program, &[]);
    let (jit, fast) = (vm.compile().expect("compiles"), vm.prepare_fast());
    let (a, b) = ([1u8, 2], [3u8, 4]);
    let run = |granted: &mut [Region], addr: u64| {
        let (mut stack, mut context) = ([0u8; 512], addr.to_le_bytes());
        let mut memory = Memory::new(&mut stack, &mut context, granted);
        (jit.run(&mut memory), fast.run(&mut memory), vm.interpret(&mut memory))
    };
    let (four, three) = (4u64 << 32, 3u64 << 32);
    let out = |r: Result<u64, RunError>| (r, r, r);
    assert_eq!(run(&mut [Region::ReadOnly(&a), Region::ReadOnly(&b)], four), out(Ok(4)));
    assert_eq!(run(&mut [Region::ReadOnly(&a)], four), out(Err(RunError::MemoryFault { pc: 1, addr: four + 1 })));
    assert_eq!(run(&mut [Region::ReadOnly(&b)], three), out(Ok(4)));
    assert_eq!(run(&mut [], three), out(Err(RunError::MemoryFault { pc: 1, addr: three + 1 })));
    // A run refused before it starts leaves nothing behind either.
    let mut many: Vec<Region> = (0..14).map(|_| Region::ReadOnly(&a)).collect();
    assert_eq!(run(&mut many, four), out(Err(RunError::TooManyRegions { max: 13 })));
    assert_eq!(run(&mut [], four), out(Err(RunError::MemoryFault { pc: 1, addr: four + 1 })));
    assert_eq!(run(&mut [Region::ReadOnly(&a), Region::ReadOnly(&b)], four), out(Ok(4)));
    // A context the caller keeps serves any program, one run at a time.
    let (mut kept, mut kept_interp) = (jit::RunContext::new(), interp::RunContext::new());
    let other = assemble("mov %r0, 7\nexit");
    let other = self::vm(&other, &[]);
    let (other_jit, other_fast) = (other.compile().expect("compiles"), other.prepare_fast());
    for (granted, want) in [(2, Ok(4)), (0, Err(RunError::MemoryFault { pc: 1, addr: four + 1 }))] {
        let mut regions = [Region::ReadOnly(&a), Region::ReadOnly(&b)];
        let (mut stack, mut context) = ([0u8; 512], four.to_le_bytes());
        let mut memory = Memory::new(&mut stack, &mut context, &mut regions[..granted]);
        assert_eq!(jit.run_in(&mut memory, &mut kept), want);
        assert_eq!(other_jit.run_in(&mut memory, &mut kept), Ok(7));
        assert_eq!(fast.run_in(&mut memory, &mut kept_interp), want);
        assert_eq!(other_fast.run_in(&mut memory, &mut kept_interp), Ok(7));
        assert_eq!(vm.interpret_in(&mut memory, &mut kept_interp), want);
        assert_eq!(other.interpret_in(&mut memory, &mut kept_interp), Ok(7));
    }
}

/// The programs `reenter` runs again from inside a helper.
static REENTERED: std::sync::OnceLock<(Vm<'static, 'static>, tessera::ebpf::JitProgram<'static, 'static, 'static>)> =
    std::sync::OnceLock::new();

/// Runs the program under test again (with an empty context, so that it does not recurse)
/// while its run is under way, in the mode `mode` names; returns that run's r0 + 100.
fn reenter(_: &mut Memory, mode: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let (vm, jit) = REENTERED.get().expect("set");
    let mut stack = [0u8; 512];
    let mut memory = Memory::new(&mut stack, &mut [], &mut []);
    let r0 = if mode == 0 { jit.run(&mut memory) } else { vm.interpret(&mut memory) };
    r0.expect("the inner run") + 100
}

#[test]
fn a_program_run_again_from_a_helper_runs_with_state_of_its_own() {
    // With a context: call the helper (r1 = the mode); without one: return 1.
    static HELPERS: [Helper; 1] = [Helper { id: 1, func: reenter }];
    let program: &'static [u8] =
        assemble("jeq %r2, 0, +4\nldxb %r1, [%r1]\ncall 1\nadd %r0, 1000\nexit\nmov %r0, 1\nexit").leak();
    let vm = Vm::new(program, Helpers::new(&HELPERS)).expect("valid program");
    let jit = vm.compile().expect("compiles");
    let (vm, jit) = REENTERED.get_or_init(|| (vm, jit));
    for mode in [0u8, 1] {
        let (mut stack, mut context) = ([0u8; 512], [mode]);
        let mut memory = Memory::new(&mut stack, &mut context, &mut []);
        let outer = if mode == 0 { jit.run(&mut memory) } else { vm.interpret(&mut memory) };
        assert_eq!(outer, Ok(1101), "mode {mode}");
    }
}

fn panics(_: &mut Memory, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    panic!("a helper that fails")
}

#[test]
fn a_panicking_helper_is_an_error_in_both_modes() {
    let helpers = [Helper { id: 9, func: panics }];
    let program = assemble("mov %r0, 1\ncall 9\nexit");
    let good = assemble("mov %r0, 3\nexit");
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for mode in modes() {
        let mut stack = [0u8; 512];
        let mut memory = Memory::new(&mut stack, &mut [], &mut []);
        let result = vm(&program, &helpers).run(mode, &mut memory);
        assert_eq!(result, Err(Error::Run(RunError::HelperPanicked { pc: 1 })), "{mode:?}");
        // The VM keeps working.
        let mut memory = Memory::new(&mut stack, &mut [], &mut []);
        assert_eq!(vm(&good, &helpers).run(mode, &mut memory), Ok(3), "{mode:?}");
    }
    std::panic::set_hook(quiet);
}

#[test]
fn one_region_limit_for_both_modes() {
    let program = assemble("mov %r0, 0\nexit");
    let bytes = [0u8; 4];
    for (count, expected) in [(13, Ok(0)), (14, Err(Error::Run(RunError::TooManyRegions { max: 13 })))] {
        for mode in modes() {
            let mut regions: Vec<Region> = (0..count).map(|_| Region::ReadOnly(&bytes)).collect();
            let mut stack = [0u8; 512];
            let mut memory = Memory::new(&mut stack, &mut [], &mut regions);
            assert_eq!(vm(&program, &[]).run(mode, &mut memory), expected, "{mode:?}, {count} regions");
        }
    }
}

#[test]
fn code_larger_than_the_configured_bound_is_refused_and_leaves_the_buffer_as_it_was() {
    use tessera::ebpf::CompileError;
    use tessera::ebpf::jit::OwnedScratch;
    use tessera::{CodeBuffer, Isa};
    let text = "add %r0, 1\n".repeat(2000) + "exit";
    let program = assemble(&text);
    for isa in [Isa::X86_64, Isa::Aarch64, Isa::Riscv64] {
        let mut vm = vm(&program, &[]);
        let fits = tessera_host_tests::emit_at(&vm, isa, 0x1000).expect("fits the default bound").len();
        vm.set_max_code_size(fits - 1);
        let mut memory = vec![0u8; 4 * fits];
        let mut buffer = CodeBuffer::new(&mut memory);
        let mut scratch = OwnedScratch::with_size(vm.scratch_size());
        let err = vm.emit_for(isa, &mut buffer, scratch.scratch()).unwrap_err();
        assert_eq!(err, CompileError::CodeTooLarge { limit: fits as u64 - 1 }, "{isa:?}");
        assert_eq!(err.to_string(), format!("generated code would exceed {} bytes", fits - 1));
        assert_eq!(buffer.used(), 0, "{isa:?}: a refused program takes no room");
        vm.set_max_code_size(fits);
        assert_eq!(vm.emit_for(isa, &mut buffer, scratch.scratch()).map(|a| a.bytes.len()), Ok(fits), "{isa:?}");
    }
    // The arena path reports the same error rather than growing past the bound.
    let mut vm = vm(&program, &[]);
    vm.set_max_code_size(1024);
    assert_eq!(vm.compile().map(|_| ()).unwrap_err(), CompileError::CodeTooLarge { limit: 1024 });
}
