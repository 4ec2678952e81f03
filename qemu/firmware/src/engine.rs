//! Every use of tessera's API in the images, in one place: load (validate) a program, run
//! it through the interpreter, count what it executes, compile it into the code region and
//! run the generated code. The rest of the firmware sees only these types.

#[cfg(feature = "jit")]
use tessera::code_buffer::CodeBuffer;
pub use tessera::ebpf::Error;
use tessera::ebpf::{Helper, Helpers, Memory, Vm, interp};

/// Nine 512-byte frames: the entry frame and eight nested local calls.
pub const STACK_SIZE: usize = 512 * 9;

/// A program's stack, zeroed; provided by the caller so that benches can set it up
/// outside the measured window.
pub struct Stack([u8; STACK_SIZE]);

impl Stack {
    pub const fn new() -> Stack {
        Stack([0; STACK_SIZE])
    }
}

impl Default for Stack {
    fn default() -> Stack {
        Stack::new()
    }
}
/// Label scratch for one compilation (caller memory: no heap needed).
#[cfg(feature = "jit")]
const MAX_LABELS: usize = 4096;

/// The conformance suite's helper 5: returns its first argument.
static HELPERS: [Helper; 1] = [Helper { id: 5, func: |a, _, _, _, _| a }];

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
        let mut memory = Memory::new(&mut stack.0, context, &mut []);
        self.vm.interpret(&mut memory)
    }

    /// [`Loaded::interpret`], also returning the number of eBPF instructions executed.
    pub fn count_executed(&self, context: &mut [u8], stack: &mut Stack) -> (Result<u64, Error>, u64) {
        let (r1, r2) = (context.as_ptr() as u64, context.len() as u64);
        let mut memory = Memory::new(&mut stack.0, context, &mut []);
        interp::run_counting(self.vm.program(), &Helpers::new(&HELPERS), &mut memory, r1, r2, self.vm.config())
    }

    /// Compiles for this machine into `region` (replacing what it held before).
    #[cfg(feature = "jit")]
    pub fn compile<'r>(&self, region: &'r mut CodeRegion) -> Result<Compiled<'r>, Error> {
        let mut labels = [0u32; MAX_LABELS];
        let buffer = &mut region.buffer;
        buffer.reset();
        let code = self.vm.compile_into(crate::arch::ISA, &mut labels, buffer)?;
        tessera::exec::sync_icache(&buffer.as_slice()[code.offset..code.offset + code.len]);
        Ok(Compiled { entry: code.address, len: code.len, config: *self.vm.config(), _region: region })
    }
}

/// The executable memory the linker script reserves, as a code buffer.
#[cfg(feature = "jit")]
pub struct CodeRegion {
    buffer: CodeBuffer<'static>,
}

#[cfg(feature = "jit")]
impl CodeRegion {
    /// The image's code region; `None` after the first call.
    pub fn take() -> Option<CodeRegion> {
        crate::arch::take_code_region().map(|memory| CodeRegion { buffer: CodeBuffer::new(memory) })
    }

    pub fn capacity(&self) -> usize {
        self.buffer.capacity()
    }
}

/// Generated code for this machine, in a [`CodeRegion`] it borrows (so the code cannot be
/// overwritten while this exists).
#[cfg(feature = "jit")]
pub struct Compiled<'r> {
    entry: u64,
    len: usize,
    config: tessera::ebpf::interp::Config,
    _region: &'r mut CodeRegion,
}

#[cfg(feature = "jit")]
impl Compiled<'_> {
    /// Bytes of generated code.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Runs the generated code with r1 = `context`, r2 = its length.
    pub fn run(&self, context: &mut [u8], stack: &mut Stack) -> Result<u64, Error> {
        let (r1, r2) = (context.as_ptr() as u64, context.len() as u64);
        let mut memory = Memory::new(&mut stack.0, context, &mut []);
        // SAFETY: `entry` is the entry stencil `compile` emitted for this machine's ISA from
        // a validated program into the code region, which the boot code maps executable;
        // the instruction cache was synchronised after emission, and the region stays
        // borrowed by `self`, so the code is unchanged while it runs.
        unsafe {
            tessera::ebpf::jit::run_compiled(self.entry, &Helpers::new(&HELPERS), &mut memory, r1, r2, &self.config)
        }
    }
}
