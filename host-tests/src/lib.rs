//! Shared test support.

pub mod asm_fuzz;
pub mod conformance;
pub mod differential;
pub mod elf_check;
pub mod program_gen;
pub mod qemu_bench;
pub mod validator_equivalence;
pub mod validator_fuzz;
pub mod validator_oracle;

use tessera::ebpf::jit::OwnedScratch;
use tessera::ebpf::{CompileError, Vm};
use tessera::{CodeBuffer, Isa};

/// The code `vm` compiles to for `isa` when placed at `base` (cross-emission).
pub fn emit_at(vm: &Vm, isa: Isa, base: u64) -> Result<Vec<u8>, CompileError> {
    let need = vm.scratch_size();
    let mut scratch = OwnedScratch::with_size(need);
    let mut memory = vec![0u8; 64 + 512 * vm.program().len()];
    let mut buffer = CodeBuffer::with_base(&mut memory, base);
    Ok(vm.emit_for(isa, &mut buffer, scratch.scratch())?.bytes.to_vec())
}
