//! The lowering's pointer guesses decide only which check runs first: programs whose
//! guesses are wrong (a context-derived register that points into the stack, an address
//! just below a region, a spilled slot overwritten, call sites that disagree) give exactly
//! the interpreter's result or fault in generated code. Also the checks around them: the
//! masked region index, helper calls by position and by id, the call-depth floor.

use tessera::ebpf::jit::OwnedScratch;
use tessera::ebpf::{Error, Helper, Helpers, Memory, Mode, Observer, RunError, Vm, asm};
use tessera::jit::StencilId;
use tessera::{CodeBuffer, Isa};
use tessera_stencils::ids::NAMES;

/// The stencils the lowering places for the instruction at `pc` of `text` (any ISA: the
/// choice is the lowering's), so that a test can show it exercises the form it claims.
fn stencils_at(text: &str, pc: usize) -> Vec<&'static str> {
    struct At(usize, Vec<&'static str>);
    impl Observer for At {
        fn placed(&mut self, pc: Option<usize>, cold: bool, id: StencilId, _: usize, _: usize) {
            if pc == Some(self.0) && !cold {
                self.1.push(NAMES[id.0 as usize]);
            }
        }
    }
    let bytes = asm::assemble_to_bytes(text).expect("assembles");
    let vm = Vm::new(&bytes, Helpers::empty()).expect("valid program");
    let mut scratch = OwnedScratch::with_size(vm.scratch_size());
    let mut memory = vec![0u8; 1 << 16];
    let mut buffer = CodeBuffer::new(&mut memory);
    let mut at = At(pc, Vec::new());
    vm.emit_observed(Isa::X86_64, &mut buffer, scratch.scratch(), &mut at).expect("emits");
    at.1
}

/// A run's outcome with the final stack and context.
type Outcome = (Result<u64, Error>, Vec<u8>, Vec<u8>);

/// Runs `text` in both modes on fresh, identical memory.
fn both(text: &str, helpers: &[Helper], stack_len: usize) -> [Outcome; 2] {
    let bytes = asm::assemble_to_bytes(text).expect("assembles");
    [Mode::Interpreter, Mode::Jit].map(|mode| {
        let mut vm = Vm::new(&bytes, Helpers::new(helpers)).expect("valid program");
        vm.set_max_call_depth(4);
        let mut stack = vec![0u8; stack_len];
        let mut context: Vec<u8> = (0..64u8).collect();
        let mut memory = Memory::new(&mut stack, &mut context, &mut []);
        let outcome = vm.run(mode, &mut memory);
        (outcome, stack, context)
    })
}

/// Both modes agree on everything; returns the outcome.
fn agree(text: &str, helpers: &[Helper]) -> Result<u64, Error> {
    let [interp, jit] = both(text, helpers, 512 * 6);
    assert_eq!(interp, jit, "interpreter and generated code differ on:\n{text}");
    interp.0
}

fn fault(pc: u32, addr: u64) -> Result<u64, Error> {
    Err(Error::Run(RunError::MemoryFault { pc, addr }))
}

const CONTEXT: u64 = 2 << 32;
/// r10 at entry of a program without local calls: it addresses one frame.
const STACK_END: u64 = (1 << 32) + 512;

#[test]
fn a_context_derived_register_may_point_into_the_stack() {
    // r2 = r1 + (r10 - r1) - 8: guessed in the context, really the top stack slot.
    let text = "mov %r3, %r10
                sub %r3, %r1
                mov %r2, %r1
                add %r2, %r3
                add %r2, -8
                mov %r4, 0x1234
                stxdw [%r2], %r4
                ldxdw %r0, [%r2]
                ldxdw %r5, [%r10-8]
                add %r0, %r5
                exit";
    assert_eq!(agree(text, &[]), Ok(0x2468));
    assert_eq!(stencils_at(text, 6), ["tmp_from_reg__r4", "stx64_in_ctx__r2"], "the context is guessed");
    // The same in a loop (the guess survives the loop head) and through a store of a byte.
    let text = "mov %r3, %r10
                sub %r3, %r1
                mov %r2, %r1
                add %r2, %r3
                add %r2, -16
                mov %r0, 0
                l: stxb [%r2], %r0
                ldxb %r4, [%r2]
                add %r0, %r4
                add %r0, 1
                add %r2, 1
                jlt %r0, 20, l
                ldxdw %r0, [%r10-16]
                exit";
    agree(text, &[]).expect("runs");
}

#[test]
fn faults_through_guessed_bases_name_the_instruction_and_the_address() {
    // Below the context's start: a fact would be a negative offset, so a guess.
    let text = "mov %r2, %r1\nadd %r2, -1\nldxb %r0, [%r2]\nexit";
    assert_eq!(agree(text, &[]), fault(2, CONTEXT - 1));
    assert_eq!(stencils_at(text, 2), ["tmp_from_reg__r2", "ldx8_in_ctx__r0"]);
    // Past its end, by a number the tracker cannot follow.
    let text = "mov %r3, 60\nadd %r3, %r3\nmov %r2, %r1\nadd %r2, %r3\nldxw %r0, [%r2+4]\nexit";
    assert_eq!(agree(text, &[]), fault(4, CONTEXT + 124));
    // Straddling the end: the first bytes are inside.
    let text = "mov %r3, 61\nmov %r2, %r1\nadd %r2, %r3\nldxw %r0, [%r2]\nexit";
    assert_eq!(agree(text, &[]), fault(3, CONTEXT + 61));
    // A stack pointer guess that lands above the stack, in the context's region.
    let text = "mov %r3, %r1\nsub %r3, %r10\nmov %r2, %r10\nadd %r2, %r3\nstxb [%r2+100], %r3\nexit";
    assert_eq!(agree(text, &[]), fault(4, CONTEXT + 100));
    assert_eq!(stencils_at(text, 4), ["tmp_from_reg__r3", "stx8_in_stack__r2"]);
    // High bits above the region index: no region, whatever the low bits say.
    let text = "lddw %r3, 0x1000000000\nmov %r2, %r1\nadd %r2, %r3\nldxb %r0, [%r2]\nexit";
    assert_eq!(agree(text, &[]), fault(4, CONTEXT + (1 << 36)));
    // Stores to a guessed stack base below the stack.
    let text = "mov %r2, %r10\nlddw %r3, 0x100000000\nsub %r2, %r3\nstxdw [%r2], %r3\nexit";
    assert_eq!(agree(text, &[]), fault(4, STACK_END - (1 << 32)));
}

#[test]
fn a_spilled_slot_overwritten_with_another_pointer() {
    // The slot's guess is the context's; the pointer reloaded from it is the stack's (the
    // store that put it there went through a base the tracker does not know as r10).
    let text = "stxdw [%r10-8], %r1
                mov %r5, 0
                mov %r3, %r10
                add %r3, %r5
                mov %r4, %r10
                add %r4, -32
                stxdw [%r3-8], %r4
                ldxdw %r2, [%r10-8]
                mov %r4, 77
                stxdw [%r2], %r4
                ldxdw %r0, [%r10-32]
                exit";
    assert_eq!(agree(text, &[]), Ok(77));
    assert_eq!(stencils_at(text, 9), ["tmp_from_reg__r4", "stx64_in_ctx__r2"], "the slot's stale guess");
    // A byte store over half of a spilled pointer: reloaded, it points elsewhere.
    let text = "stxdw [%r10-8], %r1
                mov %r3, 0x7f
                stxb [%r10-4], %r3
                ldxdw %r2, [%r10-8]
                ldxb %r0, [%r2]
                exit";
    assert_eq!(agree(text, &[]), fault(4, CONTEXT | 0x7f << 32));
}

#[test]
fn call_sites_that_disagree_on_an_argument() {
    // `f` is called with a context pointer and with a stack pointer in r1.
    let text = "mov %r6, %r1
                call local f
                mov %r7, %r0
                mov %r1, %r10
                add %r1, -64
                call local f
                add %r0, %r7
                exit
                f: ldxb %r0, [%r1+3]
                add %r0, 1
                stxb [%r1+5], %r0
                exit";
    assert_eq!(agree(text, &[]), Ok(4 + 1));
    assert_eq!(stencils_at(text, 8), ["tmp_from_reg__r1", "ldx8__r0"], "the call sites disagree");
}

#[test]
fn helpers_by_position_and_by_id() {
    let helpers = [
        Helper { id: 9, func: |_, a, _, _, _, _| a + 9 },
        Helper { id: 3, func: |_, a, b, c, d, e| a + b + c + d + e },
        Helper { id: 0x1_0000, func: |_, a, _, _, _, _| a * 2 },
    ];
    // `call` resolves positions: ids 3 and 0x10000 are the second and third.
    let text = "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 3\nmov %r1, %r0\ncall 65536\nexit";
    assert_eq!(agree(text, &helpers), Ok(30));
    // `callx` looks ids up at run time; an id wider than 32 bits names no helper.
    let text = "mov %r1, 5\nmov %r6, 9\ncall %r6\nexit";
    assert_eq!(agree(text, &helpers), Ok(14));
    let text = "lddw %r6, 0x100000009\nmov %r1, 5\ncall %r6\nexit";
    assert_eq!(agree(text, &helpers), Err(Error::Run(RunError::HelperNotFound { pc: 3, id: 0x1_0000_0009 })));
    let text = "mov %r6, 4\ncall %r6\nexit";
    assert_eq!(agree(text, &helpers), Err(Error::Run(RunError::HelperNotFound { pc: 1, id: 4 })));
}

#[test]
fn the_call_depth_limit_and_the_stack_agree() {
    // Recursion without end: the configured depth (4) stops it, at the call.
    let text = "call local f\nexit\nf: call local f\nexit";
    assert_eq!(agree(text, &[]), Err(Error::Run(RunError::CallDepthExceeded { pc: 2 })));
    // A stack of three frames allows two calls deep, whatever the configured limit.
    let [interp, jit] = both(text, &[], 512 * 3);
    assert_eq!(interp, jit);
    assert_eq!(interp.0, Err(Error::Run(RunError::CallDepthExceeded { pc: 2 })));
    // Frames move with the calls: each level writes its depth into its own frame.
    let text = "mov %r1, 0
                call local f
                ldxdw %r0, [%r10-8]
                exit
                f: add %r1, 1
                stxdw [%r10-8], %r1
                jge %r1, 3, done
                call local f
                done: ldxdw %r0, [%r10-8]
                exit";
    assert_eq!(agree(text, &[]), Ok(0));
}
