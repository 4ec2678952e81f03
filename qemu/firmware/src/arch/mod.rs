//! The machine: boot, memory protection, traps, exit, the instruction counter and the UART.
//! One module per architecture, with the same items.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(target_arch = "riscv64")]
pub use riscv64::*;

use core::sync::atomic::{AtomicBool, Ordering};

/// The address of a symbol the linker script defines.
macro_rules! linker_address {
    ($symbol:ident) => {{
        unsafe extern "C" {
            static $symbol: u8;
        }
        (&raw const $symbol) as usize
    }};
}
pub(crate) use linker_address;

static CODE_REGION_TAKEN: AtomicBool = AtomicBool::new(false);

/// The executable code region the linker script reserves (`.jit_code`), handed out once.
pub fn take_code_region() -> Option<&'static mut [u8]> {
    if CODE_REGION_TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    let (start, end) = (linker_address!(__code_start), linker_address!(__code_end));
    // SAFETY: the linker script reserves `__code_start..__code_end` for this region alone
    // (no section is placed in it), the boot code maps it read-write-execute, and the flag
    // above hands it out at most once, so this is the only reference to it.
    Some(unsafe { core::slice::from_raw_parts_mut(start as *mut u8, end - start) })
}

/// The RAM after the image and the code region, for the heap: `(start, len)`.
pub fn heap_region() -> (usize, usize) {
    let (start, end) = (linker_address!(__heap_start), linker_address!(__ram_end));
    (start, end - start)
}
