//! QEMU `virt` with a Cortex-A57 at EL1.
//!
//! Memory: the MMU is on with an identity map (4 KiB granule, 39-bit VA, level-1 blocks of
//! 1 GiB, level-2 blocks of 2 MiB for RAM). RAM is Normal write-back memory, so unaligned
//! loads and stores behave as on real firmware (the stencils are built without
//! `strict-align`); the first GiB (flash, UART, GIC) is Device-nGnRnE. Permissions per
//! 2 MiB block follow the linker script: `.text` read-only executable, `.rodata` read-only,
//! data/stack and heap read-write never-executable, and the JIT code region read-write *and*
//! executable (`SCTLR_EL1.WXN` off): the JIT writes code and runs it in place; remapping it
//! between the two would cost a TLB maintenance per compilation and is left to embedders
//! that need W^X. Unmapped addresses fault, and every exception is reported and ends the run.
//!
//! Exit: semihosting `SYS_EXIT` (`hlt #0xf000`), which QEMU turns into its exit status.
//! Counter: PMU event counter 0 on `INST_RETIRED` (0x08), which QEMU implements only under
//! `-icount`, as the exact count of executed guest instructions.

use core::arch::{asm, global_asm};

use super::linker_address;

pub const ARCH: &str = "aarch64";
/// The instruction counter the benches read.
pub const COUNTER: &str = "PMU event counter 0 on INST_RETIRED";
pub const NAME: &str = "aarch64 (QEMU virt, EL1)";
pub const MEMORY_SETUP: &str = "MMU on, identity map: RAM normal memory, code region RWX";
pub const ISA: tessera::Isa = tessera::Isa::Aarch64;

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    mrs     x0, mpidr_el1
    and     x0, x0, #0xff
    cbnz    x0, 2f
    adrp    x0, __stack_top
    add     x0, x0, :lo12:__stack_top
    mov     sp, x0
    // FP/SIMD on at EL1: rustc's aarch64-unknown-none code uses the NEON registers.
    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0
    adrp    x0, tessera_exception_vectors
    add     x0, x0, :lo12:tessera_exception_vectors
    msr     vbar_el1, x0
    isb
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
1:  cmp     x0, x1
    b.hs    3f
    str     xzr, [x0], #8
    b       1b
3:  bl      tessera_aarch64_start
2:  wfe
    b       2b

    .section .text.vectors, "ax"
    .balign 0x800
    .global tessera_exception_vectors
tessera_exception_vectors:
    .irp    kind, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    mov     x0, #\kind
    b       4f
    .endr
4:  mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       tessera_aarch64_exception
"#
);

#[unsafe(no_mangle)]
extern "C" fn tessera_aarch64_start() -> ! {
    let el: u64;
    // SAFETY: reads a system register; no memory access.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) el, options(nomem, nostack)) };
    if (el >> 2) & 3 != 1 {
        defmt::error!("expected to start at EL1, running at EL{=u64}", (el >> 2) & 3);
        exit(3);
    }
    enable_mmu();
    enable_instruction_counter();
    crate::start()
}

#[unsafe(no_mangle)]
extern "C" fn tessera_aarch64_exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    crate::logger::recover_after_panic();
    defmt::error!(
        "exception (vector {=u64}): ESR_EL1={=u64:#x} (class {=u64:#x}) ELR_EL1={=u64:#x} FAR_EL1={=u64:#x}",
        kind,
        esr,
        esr >> 26,
        elr,
        far
    );
    exit(102)
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut LEVEL1: Table = Table([0; 512]);
static mut LEVEL2: Table = Table([0; 512]);

const RAM_BASE: usize = 0x4000_0000;
const BLOCK_2M: usize = 1 << 21;

const VALID_BLOCK: u64 = 0b01;
const VALID_TABLE: u64 = 0b11;
/// `AttrIndx` 0 (MAIR byte 0: Device-nGnRnE) and 1 (MAIR byte 1: Normal write-back).
const ATTR_DEVICE: u64 = 0;
const ATTR_NORMAL: u64 = 1 << 2;
/// `AP[2]`: read-only.
const READ_ONLY: u64 = 1 << 7;
const INNER_SHAREABLE: u64 = 0b11 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// Byte 0: 0x00, Device-nGnRnE; byte 1: 0xff, Normal inner/outer write-back.
const MAIR: u64 = 0xff << 8;
/// T0SZ = 25 (39-bit VA, walks start at level 1), inner/outer write-back walks,
/// inner shareable, 4 KiB granule, TTBR1 walks off (EPD1), 32-bit PA.
const TCR: u64 = 25 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (1 << 23);
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
const SCTLR_WXN: u64 = 1 << 19;

/// The level-2 descriptor attributes for the 2 MiB block at `addr`.
fn ram_block_attributes(addr: usize) -> u64 {
    let inside = |start: usize, end: usize| addr >= start && addr < end;
    let normal = ATTR_NORMAL | INNER_SHAREABLE | ACCESS_FLAG | UXN;
    if inside(linker_address!(__text_start), linker_address!(__text_end)) {
        normal | READ_ONLY
    } else if inside(linker_address!(__rodata_start), linker_address!(__rodata_end)) {
        normal | READ_ONLY | PXN
    } else if inside(linker_address!(__code_start), linker_address!(__code_end)) {
        normal
    } else {
        normal | PXN
    }
}

fn enable_mmu() {
    let ram_end = linker_address!(__ram_end);
    let level1 = &raw mut LEVEL1;
    let level2 = &raw mut LEVEL2;
    // SAFETY: runs once, on the boot core, before anything else uses the tables; the MMU
    // is still off, so no walk reads them while they are written.
    unsafe {
        for (i, entry) in (*level2).0.iter_mut().enumerate() {
            let addr = RAM_BASE + i * BLOCK_2M;
            *entry = if addr < ram_end { addr as u64 | VALID_BLOCK | ram_block_attributes(addr) } else { 0 };
        }
        (*level1).0[0] = VALID_BLOCK | ATTR_DEVICE | ACCESS_FLAG | PXN | UXN;
        (*level1).0[1] = level2 as u64 | VALID_TABLE;
    }
    // SAFETY: installs the identity map built above (every address in use keeps its
    // meaning), then turns on the MMU and caches with the barriers the architecture asks
    // for; alignment checking and WXN stay off.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr}",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "mrs {tmp}, sctlr_el1",
            "orr {tmp}, {tmp}, {set}",
            "bic {tmp}, {tmp}, {clear}",
            "msr sctlr_el1, {tmp}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) TCR,
            ttbr = in(reg) level1 as u64,
            set = in(reg) SCTLR_M | SCTLR_C | SCTLR_I,
            clear = in(reg) SCTLR_A | SCTLR_WXN,
            tmp = out(reg) _,
            options(nostack),
        )
    };
}

/// `INST_RETIRED`, architecturally executed instructions.
const EVENT_INST_RETIRED: u64 = 0x08;

fn enable_instruction_counter() {
    // SAFETY: PMU configuration registers; no memory access. Counter 0 counts
    // INST_RETIRED at EL1 (PMEVTYPER0.P = 0); PMCR.E enables, PMCR.P resets the counters.
    unsafe {
        asm!(
            "msr pmevtyper0_el0, {event}",
            "msr pmcntenset_el0, {enable}",
            "mrs {tmp}, pmcr_el0",
            "orr {tmp}, {tmp}, #3",
            "msr pmcr_el0, {tmp}",
            "isb",
            event = in(reg) EVENT_INST_RETIRED,
            enable = in(reg) 1u64,
            tmp = out(reg) _,
            options(nomem, nostack),
        )
    };
}

/// Whether the counter is exact: QEMU implements `INST_RETIRED` only with `-icount`.
pub fn instruction_counter_exact() -> bool {
    let pmceid0: u64;
    // SAFETY: reads a system register; no memory access.
    unsafe { asm!("mrs {}, pmceid0_el0", out(reg) pmceid0, options(nomem, nostack)) };
    pmceid0 & (1 << EVENT_INST_RETIRED) != 0
}

/// Executed guest instructions so far (the counter is 32 bits wide: see [`counter_delta`]).
#[inline(always)]
pub fn instructions_retired() -> u64 {
    let count: u64;
    // SAFETY: reads a system register; no memory access. `isb` keeps the read in program
    // order with the code it brackets.
    unsafe { asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) count, options(nomem, nostack)) };
    count
}

/// Runs a loop of exactly [`CALIBRATION_LOOP_INSTRUCTIONS`] instructions per iteration,
/// `iterations` (at least 1) times: a known count to check the counter against.
#[inline(never)]
pub fn calibration_loop(iterations: u64) {
    // SAFETY: a register-only loop; no memory access.
    unsafe { asm!("1: subs {n}, {n}, #1", "b.ne 1b", n = inout(reg) iterations.max(1) => _, options(nomem, nostack)) };
}

/// Instructions per iteration of [`calibration_loop`].
pub const CALIBRATION_LOOP_INSTRUCTIONS: u64 = 2;

/// Instructions between two [`instructions_retired`] readings (the counter wraps at 2^32).
pub fn counter_delta(start: u64, end: u64) -> u64 {
    (end as u32).wrapping_sub(start as u32) as u64
}

/// Ends the run with `status` as QEMU's exit status (semihosting `SYS_EXIT`).
pub fn exit(status: u32) -> ! {
    /// `ADP_Stopped_ApplicationExit`.
    const APPLICATION_EXIT: u64 = 0x20026;
    const SYS_EXIT: u64 = 0x18;
    let block: [u64; 2] = [APPLICATION_EXIT, status as u64];
    // SAFETY: the semihosting call reads the two-word block, which lives until the call
    // (QEMU ends the process there).
    unsafe { asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack, readonly)) };
    loop {
        // SAFETY: waits for an event; no memory access.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

const PL011: usize = 0x0900_0000;
const PL011_FR: usize = 0x18;
const PL011_FR_TXFF: u32 = 1 << 5;

/// Writes one byte to the PL011 UART (QEMU's needs no set-up).
pub fn uart_write(byte: u8) {
    // SAFETY: the PL011's flag and data registers on QEMU virt, mapped as device memory.
    unsafe {
        while core::ptr::read_volatile((PL011 + PL011_FR) as *const u32) & PL011_FR_TXFF != 0 {}
        core::ptr::write_volatile(PL011 as *mut u32, byte as u32);
    }
}
