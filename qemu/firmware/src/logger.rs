//! The defmt global logger: rzCOBS-framed defmt over the UART, decoded on the host by
//! `tessera-qemu-runner` (defmt-decoder).
//!
//! The encoder is shared state behind a `spin` mutex, taken for each call defmt makes. A
//! log frame spans three calls (acquire, write…, release); a flag keeps frames whole.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch;

static ENCODER: spin::Mutex<defmt::Encoder> = spin::Mutex::new(defmt::Encoder::new());
/// Set from `acquire` to `release`: one frame at a time.
static IN_FRAME: AtomicBool = AtomicBool::new(false);

#[defmt::global_logger]
struct UartLogger;

// SAFETY: `acquire` refuses to start a frame while another is open (the IN_FRAME flag),
// so frames never interleave; every encoder access holds the spin lock.
unsafe impl defmt::Logger for UartLogger {
    fn acquire() {
        if IN_FRAME.swap(true, Ordering::Acquire) {
            // A log call while logging (e.g. from a trap inside the logger): nothing sane
            // to do but stop.
            arch::exit(104);
        }
        ENCODER.lock().start_frame(write_bytes);
    }

    unsafe fn flush() {}

    unsafe fn release() {
        ENCODER.lock().end_frame(write_bytes);
        IN_FRAME.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        ENCODER.lock().write(bytes, write_bytes);
    }
}

fn write_bytes(bytes: &[u8]) {
    bytes.iter().for_each(|&b| arch::uart_write(b));
}

/// Before logging from a panic or trap handler: closes a frame the fault may have cut
/// short (the host decoder skips the damaged frame at the next frame boundary) and frees
/// the encoder.
pub fn recover_after_panic() {
    if IN_FRAME.load(Ordering::Acquire) {
        if ENCODER.is_locked() {
            // SAFETY: called only on the way to exit, from the single hart, after whatever
            // held the lock stopped running for good (a panic or a trap never returns to it).
            unsafe { ENCODER.force_unlock() };
        }
        ENCODER.lock().end_frame(write_bytes);
        IN_FRAME.store(false, Ordering::Release);
    }
}
