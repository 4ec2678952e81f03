//! Every use of tessera's API in the images, in one place: load (validate) a program, run
//! it through the reference interpreter, count what it executes, decode it for the fast
//! interpreter and run that, compile it into the code region and run the generated code.
//! The rest of the firmware sees only these types.

pub use tessera::ebpf::Error;
use tessera::ebpf::fast_interp::Slot;
#[cfg(feature = "jit")]
use tessera::ebpf::jit::{RunContext, Scratch, ScratchSize};
use tessera::ebpf::{FastProgram, Helper, Helpers, Memory, Vm, interp};
#[cfg(feature = "jit")]
use tessera::jit::{CodeBuffer, Fixup};

/// Nine 512-byte frames: the entry frame and eight nested local calls.
pub use tessera::ebpf::STACK_SIZE;

/// A program's stack, zeroed, and the run contexts of the interpreters and the JIT (kept by
/// the caller here: with no heap a program cannot keep its own); provided by the caller so
/// that benches can set it up outside the measured window.
pub struct Stack {
    bytes: [u8; STACK_SIZE],
    interp: interp::RunContext,
    #[cfg(feature = "jit")]
    jit: RunContext,
}

impl Stack {
    pub const fn new() -> Stack {
        Stack {
            bytes: [0; STACK_SIZE],
            interp: interp::RunContext::new(),
            #[cfg(feature = "jit")]
            jit: RunContext::new(),
        }
    }
}

impl Default for Stack {
    fn default() -> Stack {
        Stack::new()
    }
}

/// The slots a program decodes into for the fast interpreter (one per instruction slot; the
/// suite's programs have at most a few dozen).
pub const MAX_DECODED_SLOTS: usize = 256;

/// Decoded slots for the fast interpreter, provided by the caller (no heap), like [`Stack`].
pub struct SlotBuffer([Slot; MAX_DECODED_SLOTS]);

impl SlotBuffer {
    pub const fn new() -> SlotBuffer {
        SlotBuffer([Slot::EMPTY; MAX_DECODED_SLOTS])
    }
}

impl Default for SlotBuffer {
    fn default() -> SlotBuffer {
        SlotBuffer::new()
    }
}

/// Scratch for one compilation, in static memory (no heap, and off the stack): labels,
/// fix-ups and words for programs of up to `MAX_SLOTS` slots (`compile_into` checks it).
#[cfg(feature = "jit")]
const MAX_SLOTS: usize = 2048;
#[cfg(feature = "jit")]
const NEED: ScratchSize = ScratchSize::for_slots(MAX_SLOTS);
#[cfg(feature = "jit")]
#[allow(clippy::type_complexity)]
static SCRATCH: spin::Mutex<([u32; NEED.labels], [Fixup; NEED.fixups], [u64; NEED.words])> =
    spin::Mutex::new(([0; NEED.labels], [Fixup::EMPTY; NEED.fixups], [0; NEED.words]));

/// The conformance suite's helper 5: returns its first argument.
static HELPERS: [Helper; 1] = [Helper { id: 5, func: |_, a, _, _, _, _| a }];

/// A validated program.
pub struct Loaded<'p> {
    vm: Vm<'p, 'static>,
}

/// Validates `bytecode`.
pub fn load(bytecode: &[u8]) -> Result<Loaded<'_>, Error> {
    Ok(Loaded { vm: Vm::new(bytecode, Helpers::new(&HELPERS))? })
}

impl Loaded<'_> {
    /// Runs the interpreter with r1 = `context`, r2 = its length, on `stack`.
    pub fn interpret(&self, context: &mut [u8], stack: &mut Stack) -> Result<u64, Error> {
        let mut memory = Memory::new(&mut stack.bytes, context, &mut []);
        Ok(self.vm.interpret_in(&mut memory, &mut stack.interp)?)
    }

    /// [`Loaded::interpret`], also returning the number of eBPF instructions executed.
    pub fn count_executed(&self, context: &mut [u8], stack: &mut Stack) -> (Result<u64, Error>, u64) {
        let mut memory = Memory::new(&mut stack.bytes, context, &mut []);
        let (result, executed) =
            interp::run_counting(self.vm.program(), &Helpers::new(&HELPERS), &mut memory, self.vm.config());
        (result.map_err(Error::from), executed)
    }

    /// Decodes the program for the fast interpreter into `buffer`.
    pub fn decode<'b>(&self, buffer: &'b mut SlotBuffer) -> Result<Decoded<'_, 'b>, Error> {
        Ok(Decoded { fast: self.vm.prepare_fast_in(&mut buffer.0)? })
    }

    /// Compiles for this machine into `region` (replacing what it held before).
    #[cfg(feature = "jit")]
    pub fn compile<'r>(&self, region: &'r mut CodeRegion) -> Result<Compiled<'_, 'r>, Error> {
        // SAFETY: the code region is mapped executable (and writable) by the boot code
        // (`arch::take_code_region`: AArch64 page tables with WXN off for it, RISC-V PMP) for
        // the whole run, and only buffers made here write it; `Compiled` borrows the region,
        // so code is never rewritten while a handle to it exists.
        let mut buffer = unsafe { CodeBuffer::executable(&mut region.memory[..]) };
        let mut scratch = SCRATCH.lock();
        let (labels, fixups, words) = &mut *scratch;
        let jit = self.vm.compile_into(&mut buffer, Scratch { labels, fixups, words })?;
        Ok(Compiled { jit })
    }
}

/// A program decoded for the fast interpreter, in a [`SlotBuffer`] it borrows.
pub struct Decoded<'p, 'b> {
    fast: FastProgram<'p, 'static, 'b>,
}

impl Decoded<'_, '_> {
    /// Runs the fast interpreter with r1 = `context`, r2 = its length.
    pub fn run(&self, context: &mut [u8], stack: &mut Stack) -> Result<u64, Error> {
        let mut memory = Memory::new(&mut stack.bytes, context, &mut []);
        Ok(self.fast.run_in(&mut memory, &mut stack.interp)?)
    }
}

/// The executable memory the linker script reserves.
#[cfg(feature = "jit")]
pub struct CodeRegion {
    memory: &'static mut [u8],
}

#[cfg(feature = "jit")]
impl CodeRegion {
    /// The image's code region; `None` after the first call.
    pub fn take() -> Option<CodeRegion> {
        crate::arch::take_code_region().map(|memory| CodeRegion { memory })
    }

    pub fn capacity(&self) -> usize {
        self.memory.len()
    }
}

/// Generated code for this machine, in a [`CodeRegion`] it borrows (so the code cannot be
/// overwritten while this exists).
#[cfg(feature = "jit")]
pub struct Compiled<'p, 'r> {
    jit: tessera::ebpf::JitProgram<'p, 'static, 'r>,
}

#[cfg(feature = "jit")]
impl Compiled<'_, '_> {
    /// Bytes of generated code.
    pub fn len(&self) -> usize {
        self.jit.code().len()
    }

    pub fn is_empty(&self) -> bool {
        self.jit.code().is_empty()
    }

    /// Runs the generated code with r1 = `context`, r2 = its length.
    pub fn run(&self, context: &mut [u8], stack: &mut Stack) -> Result<u64, Error> {
        let mut memory = Memory::new(&mut stack.bytes, context, &mut []);
        Ok(self.jit.run_in(&mut memory, &mut stack.jit)?)
    }
}
