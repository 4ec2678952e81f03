//! tessera: a `no_std` copy-and-patch JIT core with an eBPF (RFC 9669) front end.
//!
//! Stencils (machine code with holes) are generated at build time per ISA and committed as
//! const tables (`tessera-stencils`); at run time the [`emitter`] copies them into a
//! [`code_buffer::CodeBuffer`] and patches their holes through `tessera-arch`.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod code_buffer;
pub mod ebpf;
pub mod emitter;
pub mod exec;

pub use tessera_arch::Isa;
