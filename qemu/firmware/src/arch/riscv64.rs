//! QEMU `virt` with `-bios none`: one hart in M-mode, no paging.
//!
//! Memory: locked PMP entries (M-mode obeys only locked entries) give `.text` read+execute,
//! `.rodata` read, data/stack and heap read+write, and the JIT code region
//! read+write+execute: the JIT writes code and runs it in place, with `fence.i` in between
//! (tessera-arch's bare-metal `sync_icache`). Addresses outside RAM (UART, test device)
//! match no entry and stay open to M-mode. QEMU's RISC-V allows unaligned scalar accesses,
//! which the stencils (built with `unaligned-scalar-mem`) rely on. Every trap is reported
//! and ends the run.
//!
//! Exit: the `sifive_test` device at 0x10_0000, whose status becomes QEMU's exit status.
//! Counter: `minstret`, which QEMU derives from the instruction count under `-icount`
//! (exact with `shift=0`; the host's clock otherwise).

use core::arch::{asm, global_asm};

use super::linker_address;

pub const ARCH: &str = "riscv64";
/// The instruction counter the benches read.
pub const COUNTER: &str = "minstret";
pub const NAME: &str = "riscv64 (QEMU virt, M-mode)";
pub const MEMORY_SETUP: &str = "locked PMP: text RX, rodata R, data RW, code region RWX";
pub const ISA: tessera::Isa = tessera::Isa::Riscv64;

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    csrr    t0, mhartid
    bnez    t0, 2f
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, __stack_top
    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 3f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
    // mstatus.FS = Initial: rustc's riscv64gc code may use the FP registers.
3:  li      t0, 1 << 13
    csrs    mstatus, t0
    la      t0, tessera_trap_entry
    csrw    mtvec, t0
    call    tessera_riscv64_start
2:  wfi
    j       2b

    .balign 4
tessera_trap_entry:
    csrr    a0, mcause
    csrr    a1, mepc
    csrr    a2, mtval
    j       tessera_riscv64_trap
"#
);

#[unsafe(no_mangle)]
extern "C" fn tessera_riscv64_start() -> ! {
    set_up_pmp();
    crate::start()
}

#[unsafe(no_mangle)]
extern "C" fn tessera_riscv64_trap(mcause: u64, mepc: u64, mtval: u64) -> ! {
    crate::logger::recover_after_panic();
    defmt::error!("trap: mcause={=u64:#x} mepc={=u64:#x} mtval={=u64:#x}", mcause, mepc, mtval);
    exit(102)
}

const PMP_R: u64 = 1 << 0;
const PMP_W: u64 = 1 << 1;
const PMP_X: u64 = 1 << 2;
const PMP_TOR: u64 = 1 << 3;
const PMP_LOCK: u64 = 1 << 7;

fn set_up_pmp() {
    let bounds = [
        linker_address!(__text_start),
        linker_address!(__text_end),
        linker_address!(__rodata_end),
        linker_address!(__data_end),
        linker_address!(__code_end),
        linker_address!(__ram_end),
    ];
    // Entry 0 is only the lower bound of entry 1 (TOR ranges end at their own address).
    let permissions = [0, PMP_R | PMP_X, PMP_R, PMP_R | PMP_W, PMP_R | PMP_W | PMP_X, PMP_R | PMP_W];
    let cfg = permissions
        .iter()
        .enumerate()
        .map(|(i, &p)| if i == 0 { 0 } else { (p | PMP_TOR | PMP_LOCK) << (8 * i) })
        .fold(0, |a, b| a | b);
    let [a0, a1, a2, a3, a4, a5] = bounds.map(|b| (b >> 2) as u64);
    // SAFETY: PMP registers. The entries cover this image's own memory with the
    // permissions its code needs (text executable, data writable, the code region both),
    // so execution continues; locking makes M-mode obey them until reset.
    unsafe {
        asm!(
            "csrw pmpaddr0, {a0}",
            "csrw pmpaddr1, {a1}",
            "csrw pmpaddr2, {a2}",
            "csrw pmpaddr3, {a3}",
            "csrw pmpaddr4, {a4}",
            "csrw pmpaddr5, {a5}",
            "csrw pmpcfg0, {cfg}",
            a0 = in(reg) a0,
            a1 = in(reg) a1,
            a2 = in(reg) a2,
            a3 = in(reg) a3,
            a4 = in(reg) a4,
            a5 = in(reg) a5,
            cfg = in(reg) cfg,
            options(nomem, nostack),
        )
    };
}

/// Whether the counter is exact. `minstret` counts instructions only under `-icount`;
/// the image cannot tell, so the runner always passes `-icount shift=0`.
pub fn instruction_counter_exact() -> bool {
    true
}

/// Executed guest instructions so far.
#[inline(always)]
pub fn instructions_retired() -> u64 {
    let count: u64;
    // SAFETY: reads a CSR; no memory access.
    unsafe { asm!("csrr {}, minstret", out(reg) count, options(nomem, nostack)) };
    count
}

/// Runs a loop of exactly [`CALIBRATION_LOOP_INSTRUCTIONS`] instructions per iteration,
/// `iterations` (at least 1) times: a known count to check the counter against.
#[inline(never)]
pub fn calibration_loop(iterations: u64) {
    // SAFETY: a register-only loop; no memory access.
    unsafe {
        asm!("1: addi {n}, {n}, -1", "bnez {n}, 1b", n = inout(reg) iterations.max(1) => _, options(nomem, nostack))
    };
}

/// Instructions per iteration of [`calibration_loop`].
pub const CALIBRATION_LOOP_INSTRUCTIONS: u64 = 2;

/// Instructions between two [`instructions_retired`] readings.
pub fn counter_delta(start: u64, end: u64) -> u64 {
    end.wrapping_sub(start)
}

const SIFIVE_TEST: usize = 0x10_0000;
const SIFIVE_TEST_PASS: u32 = 0x5555;
const SIFIVE_TEST_FAIL: u32 = 0x3333;

/// Ends the run with `status` as QEMU's exit status (the `sifive_test` device).
pub fn exit(status: u32) -> ! {
    let value = if status == 0 { SIFIVE_TEST_PASS } else { (status << 16) | SIFIVE_TEST_FAIL };
    // SAFETY: the sifive_test device's register on QEMU virt; writing it ends the run.
    unsafe { core::ptr::write_volatile(SIFIVE_TEST as *mut u32, value) };
    loop {
        // SAFETY: waits for an interrupt; no memory access.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

const NS16550: usize = 0x1000_0000;
const NS16550_LSR: usize = 5;
const NS16550_LSR_THRE: u8 = 1 << 5;

/// Writes one byte to the NS16550 UART (QEMU's needs no set-up).
pub fn uart_write(byte: u8) {
    // SAFETY: the NS16550's line status and transmit registers on QEMU virt.
    unsafe {
        while core::ptr::read_volatile((NS16550 + NS16550_LSR) as *const u8) & NS16550_LSR_THRE == 0 {}
        core::ptr::write_volatile(NS16550 as *mut u8, byte);
    }
}
