//! What tessera's QEMU `virt` images share: boot code per architecture (stack, `.bss`, MMU
//! or PMP, trap vectors, exit through semihosting or the `sifive_test` device, an exact
//! instruction counter), a defmt logger over the UART, the optional heap, the embedded
//! conformance suite and the one module that uses tessera's API ([`engine`]).
//!
//! An image is a `#![no_main]` binary that defines its entry with [`image_main!`]; the boot
//! code calls it once the machine is set up and exits with the status it returns.
#![no_std]

pub mod arch;
pub mod conformance;
pub mod engine;
#[cfg(feature = "heap")]
mod heap;
pub mod logger;
pub mod suite;

pub use arch::{exit, instructions_retired};

/// Defines the image's entry point: `image_main!(path::to::main)` with
/// `fn main() -> u32` (the exit status: 0 for success).
#[macro_export]
macro_rules! image_main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "Rust" fn __tessera_image_main() -> u32 {
            $main()
        }
    };
}

unsafe extern "Rust" {
    /// Defined by the image through [`image_main!`].
    fn __tessera_image_main() -> u32;
}

/// Called by the architecture's boot code with a stack, zeroed `.bss` and memory protection
/// in place.
fn start() -> ! {
    #[cfg(feature = "heap")]
    heap::init();
    defmt::info!("tessera firmware on {=str}, {=str}", arch::NAME, arch::MEMORY_SETUP);
    // SAFETY: `image_main!` defines this function with this signature; every image must
    // use it (the link fails otherwise).
    let status = unsafe { __tessera_image_main() };
    exit(status)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    logger::recover_after_panic();
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(101)
}
