//! Stencil sources for the eBPF front end.
//!
//! Built by `tessera-stencil-gen` with the pinned nightly for each bare-metal target; every
//! exported function is one stencil. Names are `family` or `family__rK`, where `K` is the
//! eBPF register the variant is specialised for (the runtime indexes families by `K`).
//!
//! Calling convention: every stencil receives the context pointer, the scratch register
//! `tmp` (second operand of the next operation) and the eBPF registers that this ISA pins in
//! machine registers, and tail-calls its continuation with the same arguments, in an order
//! per ISA chosen for calls (see `convention!`). x86-64 and AArch64 use `extern
//! "rust-preserve-none"`, which has room for all of r0..r9; RISC-V has only a0..a7 for a
//! guaranteed tail call, so r0..r5 are pinned and r6..r9 live in `JitContext::spill`. r10
//! (virtual) is computed from `JitContext::frame_host`.
//!
//! Holes are extern symbols whose address is the patched value (see `tessera_jit::HoleValue`):
//! `_HOLE_CONTINUE` (the next stencil; a trailing jump to it is removed), `_HOLE_JUMP` (a
//! branch or call target), `_HOLE_COLD` (the instruction's out-of-line slow path), and the
//! 32-bit operands: `_HOLE_OPERAND0` (sign-extended immediate or offset), `_HOLE_OPERAND1`
//! (upper half of `lddw`, the fuel a back edge or call charges, or an immediate store's
//! value) and `_HOLE_OPERAND2`
//! (the eBPF instruction index named in trap reports).
#![no_std]
#![feature(explicit_tail_calls, rust_preserve_none_cc)]
#![allow(incomplete_features, internal_features, dead_code, unused_features, unused_doc_comments)]

mod abi;
mod semantics;

use abi::{FRAME_SIZE, JitContext, region, trap};
use core::hint::cold_path;
use semantics as sem;

/// How many eBPF registers (from r0 up) live in machine registers on this ISA.
#[cfg(not(target_arch = "riscv64"))]
const PINNED: usize = 10;
#[cfg(target_arch = "riscv64")]
const PINNED: usize = 6;

unsafe extern "C" {
    static _HOLE_OPERAND0: u8;
    static _HOLE_OPERAND1: u8;
    static _HOLE_OPERAND2: u8;
}

/// The value of a 32-bit operand hole, sign-extended.
///
/// x86-64 stencils use the kernel code model, whose symbols are sign-extended 32-bit
/// addresses: the hole's address is used whole and materialised by one sign-extending
/// `mov $imm32, %reg` (`R_X86_64_32S`); the generator rejects a zero-extending
/// `R_X86_64_32` on operand holes. Elsewhere the value is truncated to 32 bits and
/// sign-extended, as the `lui`/`addi` and `movz`/`movk` sequences need.
#[inline(always)]
fn signed(hole: *const u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    return hole as usize as u64;
    #[cfg(not(target_arch = "x86_64"))]
    return hole as usize as u32 as i32 as i64 as u64;
}

/// Operand 0: the instruction's immediate or offset.
#[inline(always)]
fn imm() -> u64 {
    signed(&raw const _HOLE_OPERAND0)
}

/// The upper 32 bits of a 64-bit immediate (`lddw`).
#[inline(always)]
fn imm_hi() -> u64 {
    (&raw const _HOLE_OPERAND1) as usize as u32 as u64
}

/// Operand 1 sign-extended: the fuel a back edge or local call charges (see
/// `tessera::ebpf::fuel`, below 2^31), or the value of an immediate store.
#[inline(always)]
fn imm1() -> u64 {
    signed(&raw const _HOLE_OPERAND1)
}

/// The fuel a back edge or local call charges.
#[inline(always)]
fn charge() -> u64 {
    imm1()
}

/// The eBPF instruction index this stencil was emitted for.
#[inline(always)]
fn insn() -> u64 {
    (&raw const _HOLE_OPERAND2) as usize as u32 as u64
}

/// What a stencil body does next.
enum Next {
    /// Fall through to the next stencil.
    Continue,
    /// Branch to the patched target.
    Jump,
    /// Branch to the instruction's out-of-line slow path.
    Cold,
    /// Return to the caller of this code (exit, or a trap recorded in the context).
    Return(u64),
}

/// Machine state beyond the context, `tmp` and the eBPF registers, in registers where the
/// calling convention has room (see `convention!`): on AArch64 the fuel counter
/// (`JitContext::fuel_complement`), the running frame's host address
/// (`JitContext::frame_host`) and an unused slot; elsewhere both live in the context.
#[cfg(target_arch = "aarch64")]
const EXTRA: usize = 3;
#[cfg(not(target_arch = "aarch64"))]
const EXTRA: usize = 0;

/// What a stencil returns to its caller (the runtime's entry, or a local call): r0 and, on
/// AArch64, the fuel counter, which lives in a register the call does not preserve;
/// elsewhere the context, so that a local call need not keep it across the call.
#[cfg(target_arch = "aarch64")]
#[repr(C)]
struct Ret {
    r0: u64,
    fuel: u64,
}
#[cfg(not(target_arch = "aarch64"))]
#[repr(C)]
struct Ret {
    r0: u64,
    ctx: *mut JitContext,
}

/// The machine state a stencil works on; lives in registers after inlining.
struct State {
    ctx: *mut JitContext,
    tmp: u64,
    r: [u64; PINNED],
    /// See [`EXTRA`].
    extra: [u64; EXTRA],
}

impl State {
    #[inline(always)]
    fn ctx(&self) -> &mut JitContext {
        // SAFETY: the runtime passes a valid, exclusive JitContext for the whole run
        // (tessera::ebpf::jit sets it up before calling the entry stencil).
        unsafe { &mut *self.ctx }
    }

    /// The running frame's host address (see [`EXTRA`]).
    #[inline(always)]
    fn frame_host(&self) -> u64 {
        #[cfg(target_arch = "aarch64")]
        return self.extra[1];
        #[cfg(not(target_arch = "aarch64"))]
        return self.ctx().frame_host;
    }

    #[inline(always)]
    fn set_frame_host(&mut self, v: u64) {
        #[cfg(target_arch = "aarch64")]
        {
            self.extra[1] = v;
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            self.ctx().frame_host = v;
        }
    }

    /// What this stencil returns when control goes back to its caller with r0 = `r0`.
    #[inline(always)]
    fn ret(&self, r0: u64) -> Ret {
        State::returning(r0, self.ctx, self.extra)
    }

    #[inline(always)]
    fn returning(r0: u64, ctx: *mut JitContext, extra: [u64; EXTRA]) -> Ret {
        #[cfg(target_arch = "aarch64")]
        {
            let _ = ctx;
            return Ret { r0, fuel: extra[0] };
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            let _ = extra;
            Ret { r0, ctx }
        }
    }

    /// Calls the code at `_HOLE_JUMP` as a function (the entry and local calls) and returns
    /// its r0; on AArch64 the fuel counter comes back with it, elsewhere the context.
    #[inline(always)]
    fn call(&mut self) -> u64 {
        let out = call_target(self);
        #[cfg(target_arch = "aarch64")]
        {
            self.extra[0] = out.fuel;
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            self.ctx = out.ctx;
        }
        out.r0
    }

    #[inline(always)]
    fn get(&self, k: usize) -> u64 {
        if k == 10 {
            self.frame_host().wrapping_sub(self.ctx().regions[region::STACK as usize].bias)
        } else if k < PINNED {
            self.r[k]
        } else {
            self.ctx().spill[k]
        }
    }

    #[inline(always)]
    fn set(&mut self, k: usize, v: u64) {
        if k < PINNED {
            self.r[k] = v
        } else {
            self.ctx().spill[k] = v
        }
    }

    /// Records a trap naming this instruction and returns to the runtime.
    #[inline(always)]
    fn trap(&self, code: u64, addr: u64) -> Next {
        cold_path();
        let c = self.ctx();
        c.trap = code;
        c.trap_insn = insn();
        c.trap_addr = addr;
        Next::Return(0)
    }

    /// The host address of an access of `size` bytes at virtual address `addr`, when a
    /// region allows it (`write` for stores and atomics): the full region-table check of
    /// `semantics::locate`, which the interpreter runs too.
    #[inline(always)]
    fn translate(&self, addr: u64, size: u64, write: bool) -> Option<u64> {
        let c = self.ctx();
        let (index, _) = sem::locate(&c.regions, addr, size, write)?;
        Some(addr.wrapping_add(c.regions.get(index)?.bias))
    }

    /// The hot path's check of any virtual address (see `abi::RegionEntry`): the host address
    /// when the fast check passes in the entry of region `(addr >> 32) & 15`. `None` does not
    /// mean a fault, only that the slow path must decide.
    #[inline(always)]
    fn translate_fast(&self, addr: u64, size: u64, write: bool) -> Option<u64> {
        // Entry `(addr >> 32) & 15`, its byte offset computed in one shift and one mask.
        const ENTRY: u64 = core::mem::size_of::<abi::RegionEntry>() as u64;
        const _: () = assert!(ENTRY == 128 && region::COUNT == 16);
        let offset = ((addr >> 25) & (15 * ENTRY)) as usize;
        // SAFETY: `offset` is at most 15 entries into the 16-entry table of the context.
        let r = unsafe { &*((self.ctx as *const u8).add(abi::REGIONS + offset) as *const abi::RegionEntry) };
        fast_check(r, addr, size, write)
    }

    /// The hot path's check of an address the lowering expects in region `index`: the host
    /// address when it is there and the fast check passes (else the slow path decides).
    #[inline(always)]
    fn translate_in(&self, index: usize, addr: u64, size: u64, write: bool) -> Option<u64> {
        fast_check(&self.ctx().regions[index], addr, size, write)
    }

    /// The host address of an access of `size` bytes at offset `off` of the context memory,
    /// when it lies inside it (for accesses the lowering knows are based on the context).
    #[inline(always)]
    fn context_host(&self, off: u64, size: u64, write: bool) -> Option<u64> {
        let r = &self.ctx().regions[region::CONTEXT as usize];
        let bound = if write { r.write_bound[abi::size_class(size)] } else { r.read_bound[abi::size_class(size)] };
        if off < bound { Some(r.host.wrapping_add(off)) } else { None }
    }

    /// Charges the fuel of operand 1 (see [`charge`]); false when less is left (the run then
    /// ends with the fuel trap, so what the charge left in the counter does not matter).
    #[inline(always)]
    fn burn_fuel(&mut self) -> bool {
        // `!fuel` counts up, so charging is one add whose carry says the fuel ran out. On
        // x86-64 the charge is folded into that add (LLVM would first move the relocated
        // constant into a register); on AArch64 the counter is a register.
        #[cfg(target_arch = "x86_64")]
        {
            let mut ran_out = false;
            // SAFETY: one add to the context's fuel counter (valid for the whole run, see
            // `ctx`); flags clobbered, as asm! assumes.
            unsafe {
                core::arch::asm!(
                    "add qword ptr [{ctx} + {fuel}], offset {charge}",
                    "jc {out}",
                    ctx = in(reg) self.ctx,
                    fuel = const core::mem::offset_of!(JitContext, fuel_complement),
                    charge = sym _HOLE_OPERAND1,
                    out = label { ran_out = true },
                    options(nostack),
                )
            };
            !ran_out
        }
        #[cfg(target_arch = "aarch64")]
        {
            let (after, ran_out) = self.extra[0].overflowing_add(charge());
            self.extra[0] = after;
            !ran_out
        }
        #[cfg(target_arch = "riscv64")]
        {
            let c = self.ctx();
            let (after, ran_out) = c.fuel_complement.overflowing_add(charge());
            c.fuel_complement = after;
            !ran_out
        }
    }

    /// After any call r1..r5 are scratch; zeroing them keeps JIT and interpreter identical.
    /// Written out: a loop over `k` is not unrolled at `opt-level=s`, and indexing the
    /// registers by a variable puts every one of them in memory.
    #[inline(always)]
    fn clobber_args(&mut self) {
        self.set(1, 0);
        self.set(2, 0);
        self.set(3, 0);
        self.set(4, 0);
        self.set(5, 0);
    }
}

/// The fast check of an access in region `r` (see `abi::RegionEntry`): one compare of the
/// offset, which wraps when `addr` is below the region; the host address comes from `addr`,
/// so that it does not wait for the check.
#[inline(always)]
fn fast_check(r: &abi::RegionEntry, addr: u64, size: u64, write: bool) -> Option<u64> {
    let bound = if write { r.write_bound[abi::size_class(size)] } else { r.read_bound[abi::size_class(size)] };
    if addr.wrapping_sub(r.start) < bound { Some(addr.wrapping_add(r.bias)) } else { None }
}

/// Records a trap and returns from the stencil (to the runtime, or to a `call_local`
/// stencil, which passes it on).
macro_rules! return_trap {
    ($s:ident, $code:expr, $addr:expr) => {{
        let _ = $s.trap($code, $addr);
        return $s.ret(0);
    }};
}

// ---------------------------------------------------------------------------------------
// Calling convention, per ISA: the order in which every stencil receives the machine state
// and passes it on decides which machine register holds what. It is chosen for calls out of
// generated code: the helper trampoline is a C function `(ctx, a1, a2, a3, a4, a5)` whose
// arguments the helper takes in the same registers (`(memory, a1, .., a5)`), so r1..r5 sit in
// the C ABI's second to sixth argument registers and reach the helper with no move, r0 sits
// where C returns a value, and r6..r9 (which live across calls) sit in registers the C ABI
// preserves. x86-64 (`rust-preserve-none` assigns r12..r15, rdi, rsi, rdx, rcx, r8, r9, r11,
// rax): r6..r9 in r12..r15, the context in rdi, r1, r2, r4, r5 in rsi, rdx, r8, r9, r0 in
// rax; `tmp` takes rcx, where x86 wants a shift count, so that shifts stage their count in
// it and move nothing else (a helper call moves r3 from r11 to rcx instead).
// AArch64 (x20..x28, then x0..x7): r6..r9 and the context in x20..x24, `tmp` in x25, the
// fuel counter and the running frame's host address in x26 and x27 (x28 holds nothing),
// r0..r5 in x0..x5. RISC-V (`C`, a0..a7): r0..r5 in a0..a5, the
// context in a6.

/// Expands `$then!` with the ISA's calling convention: the ABI, the parameters in order,
/// the names of the context and `tmp`, the pinned eBPF registers in index order and the
/// unused slots.
#[cfg(target_arch = "x86_64")]
macro_rules! convention {
    ($then:ident!($($args:tt)*)) => {
        $then!("rust-preserve-none",
            [r6: u64, r7: u64, r8: u64, r9: u64, ctx: *mut JitContext, r1: u64, r2: u64, tmp: u64, r4: u64,
                r5: u64, r3: u64, r0: u64],
            [ctx, tmp], [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9], [], $($args)*);
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! convention {
    ($then:ident!($($args:tt)*)) => {
        $then!("rust-preserve-none",
            [r6: u64, r7: u64, r8: u64, r9: u64, ctx: *mut JitContext, tmp: u64, fuel: u64, frame: u64, x28: u64,
                r0: u64, r1: u64, r2: u64, r3: u64, r4: u64, r5: u64],
            [ctx, tmp], [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9], [fuel, frame, x28], $($args)*);
    };
}
#[cfg(target_arch = "riscv64")]
macro_rules! convention {
    ($then:ident!($($args:tt)*)) => {
        $then!("C",
            [r0: u64, r1: u64, r2: u64, r3: u64, r4: u64, r5: u64, ctx: *mut JitContext, tmp: u64],
            [ctx, tmp], [r0, r1, r2, r3, r4, r5], [], $($args)*);
    };
}

/// The holes every stencil can continue to, and `call_target`, in the ISA's convention.
macro_rules! declare_holes {
    ($abi:literal, [$($p:ident: $t:ty),*], [$ctx:ident, $tmp:ident], [$($r:ident),*], [$($x:ident),*],) => {
        unsafe extern $abi {
            fn _HOLE_CONTINUE($($p: $t),*) -> Ret;
            fn _HOLE_JUMP($($p: $t),*) -> Ret;
            fn _HOLE_COLD($($p: $t),*) -> Ret;
        }

        /// Calls the code at `_HOLE_JUMP` as a function (see [`State::call`]).
        #[inline(always)]
        fn call_target(s: &State) -> Ret {
            let ($ctx, $tmp) = (s.ctx, s.tmp);
            let [$($r),*] = s.r;
            let [$($x),*] = s.extra;
            // SAFETY: `_HOLE_JUMP` is patched to the first stencil of an eBPF function,
            // which has this signature and returns r0.
            unsafe { _HOLE_JUMP($($p),*) }
        }
    };
}

convention!(declare_holes!());

/// One stencil: `$body` works on the machine state `$s` and says what comes next.
macro_rules! stencil_in {
    ($abi:literal, [$($p:ident: $t:ty),*], [$ctx:ident, $tmp:ident], [$($r:ident),*], [$($x:ident),*], $name:expr,
        |$s:ident| $body:expr) => {
        const _: () = {
            #[unsafe(export_name = $name)]
            extern $abi fn stencil($($p: $t),*) -> Ret {
                #[allow(unused_mut)]
                let mut $s = State { ctx: $ctx, tmp: $tmp, r: [$($r),*], extra: [$($x),*] };
                let next: Next = $body;
                let State { ctx: $ctx, tmp: $tmp, r: [$($r),*], extra: [$($x),*] } = $s;
                match next {
                    // SAFETY: the holes are patched to stencils with this very signature.
                    Next::Continue => unsafe { become _HOLE_CONTINUE($($p),*) },
                    // SAFETY: as above.
                    Next::Jump => unsafe { become _HOLE_JUMP($($p),*) },
                    // SAFETY: as above.
                    Next::Cold => unsafe { become _HOLE_COLD($($p),*) },
                    Next::Return(v) => State::returning(v, $ctx, [$($x),*]),
                }
            }
        };
    };
}

macro_rules! stencil {
    ($name:expr, |$s:ident| $body:expr) => {
        convention!(stencil_in!($name, |$s| $body));
    };
}

/// One stencil per register: `family__r0` ... `family__rN`; the body sees the register as
/// the constant `K`.
macro_rules! family {
    ($family:literal, [$($k:literal)*], |$s:ident, $K:ident| $body:expr) => {
        $(
            stencil!(concat!($family, "__r", $k), |$s| {
                const $K: usize = $k;
                $body
            });
        )*
    };
}

/// Registers an instruction may write (r0..r9).
macro_rules! writable_family {
    ($family:literal, |$s:ident, $K:ident| $body:expr) => {
        family!($family, [0 1 2 3 4 5 6 7 8 9], |$s, $K| $body);
    };
}

/// Registers an instruction may read (r0..r10).
macro_rules! readable_family {
    ($family:literal, |$s:ident, $K:ident| $body:expr) => {
        family!($family, [0 1 2 3 4 5 6 7 8 9 10], |$s, $K| $body);
    };
}

/// One stencil per register pair: `family__rD_rS` for every `D` in the first list and `S`
/// in the second (row-major ids); the body sees them as the constants `D` and `S`. For the
/// hottest operations on two registers, where staging the source in `tmp` would cost a
/// stencil (and an instruction) more.
macro_rules! pair_family {
    ($family:literal, [$($d:literal)*], $ss:tt, |$s:ident, $D:ident, $S:ident| $body:expr) => {
        $(pair_family!(@row $family, $d, $ss, |$s, $D, $S| $body);)*
    };
    (@row $family:literal, $d:literal, [$($k:literal)*], |$s:ident, $D:ident, $S:ident| $body:expr) => {
        $(
            stencil!(concat!($family, "__r", $d, "_r", $k), |$s| {
                const $D: usize = $d;
                const $S: usize = $k;
                $body
            });
        )*
    };
}

/// `dst` written (r0..r9), `src` read (r0..r10).
macro_rules! writable_readable_pairs {
    ($family:literal, |$s:ident, $D:ident, $S:ident| $body:expr) => {
        pair_family!($family, [0 1 2 3 4 5 6 7 8 9], [0 1 2 3 4 5 6 7 8 9 10], |$s, $D, $S| $body);
    };
}

// ---------------------------------------------------------------------------------------
// Entry: the one stencil with the platform C ABI. The runtime calls it with the context and
// r1/r2; it calls the program's first stencil and returns r0.

#[unsafe(export_name = "entry")]
extern "C" fn entry(ctx: *mut JitContext, r1: u64, r2: u64) -> u64 {
    let mut r = [0u64; PINNED];
    r[1] = r1;
    r[2] = r2;
    // SAFETY: the runtime passes a valid, exclusive JitContext for the whole run.
    #[cfg(target_arch = "aarch64")]
    let extra = unsafe { [(*ctx).fuel_complement, (*ctx).frame_host, 0] };
    #[cfg(not(target_arch = "aarch64"))]
    let extra = [];
    State { ctx, tmp: 0, r, extra }.call()
}

// ---------------------------------------------------------------------------------------
// Operand staging: the second operand of the next stencil goes into `tmp`.

readable_family!("tmp_from_reg", |s, K| {
    s.tmp = s.get(K);
    Next::Continue
});

stencil!("tmp_from_imm", |s| {
    s.tmp = imm();
    Next::Continue
});

writable_family!("lddw", |s, K| {
    s.set(K, (imm_hi() << 32) | (imm() & 0xffff_ffff));
    Next::Continue
});

writable_family!("mov_imm", |s, K| {
    s.set(K, imm());
    Next::Continue
});

// ---------------------------------------------------------------------------------------
// ALU: `dst = op(dst, tmp)`, and unary forms.

/// `dst = op(dst, tmp)`.
macro_rules! binary_alu {
    ($($name:literal => $f:path),* $(,)?) => {
        $(
            writable_family!($name, |s, K| {
                s.set(K, $f(s.get(K), s.tmp));
                Next::Continue
            });
        )*
    };
}

// `sub dst, imm` has no stencil of its own: the lowering emits `add dst, -imm`.
binary_alu! {
    "add64" => sem::add64, "add32" => sem::add32,
    "sub64" => sem::sub64, "sub32" => sem::sub32,
    "mul64" => sem::mul64, "mul32" => sem::mul32,
    "div64" => sem::div64, "div32" => sem::div32,
    "sdiv64" => sem::sdiv64, "sdiv32" => sem::sdiv32,
    "mod64" => sem::mod64, "mod32" => sem::mod32,
    "smod64" => sem::smod64, "smod32" => sem::smod32,
    "or64" => sem::or64, "or32" => sem::or32,
    "and64" => sem::and64, "and32" => sem::and32,
    "xor64" => sem::xor64, "xor32" => sem::xor32,
    "lsh64" => sem::lsh64, "lsh32" => sem::lsh32,
    "rsh64" => sem::rsh64, "rsh32" => sem::rsh32,
    "arsh64" => sem::arsh64, "arsh32" => sem::arsh32,
}

/// `dst = op(dst, src)` with both registers in the stencil: the common 64-bit operations.
macro_rules! pair_alu {
    ($($name:literal => $f:path),* $(,)?) => {
        $(writable_readable_pairs!($name, |s, D, S| {
            s.set(D, $f(s.get(D), s.get(S)));
            Next::Continue
        });)*
    };
}

// The operations clang's output uses most with two registers (a census of the benchmark
// programs: mov 96, add 54, or 30, xor 23, sub 8, and 2 of 806 slots); each pair family
// costs 110 stencils, so the rarer ones stage their source in `tmp`.
pair_alu! {
    "add64_rr" => sem::add64,
    "or64_rr" => sem::or64,
    "xor64_rr" => sem::xor64,
}

writable_readable_pairs!("mov64_rr", |s, D, S| {
    s.set(D, s.get(S));
    Next::Continue
});

/// `op(dst, imm)` with the immediate folded into one instruction on x86-64, where LLVM
/// does not fold a relocated constant into an ALU instruction (it would first `mov` it into
/// a register). The 64-bit forms sign-extend the 32-bit field (`R_X86_64_32S`, as
/// [`imm`]); the 32-bit forms (`{v:e}`) read only its low half, so their `R_X86_64_32` is
/// exact, and writing a 32-bit register zero-extends the result, as eBPF's ALU32 does.
/// Shifts take an 8-bit count (`R_X86_64_8`).
#[cfg(target_arch = "x86_64")]
macro_rules! x86_imm_op {
    ($template:literal, $v:expr) => {{
        let mut v: u64 = $v;
        // SAFETY: one ALU instruction on a register (flags clobbered, as asm! assumes).
        unsafe {
            core::arch::asm!(concat!($template, ", offset {s}"), v = inout(reg) v, s = sym _HOLE_OPERAND0,
                options(pure, nomem, nostack))
        };
        v
    }};
}

/// Immediate forms folded per ISA: the x86-64 instruction template, else the shared
/// definition with [`imm`].
macro_rules! folded_imm_alu {
    ($($imm_name:literal => $f:path, $x86:literal),* $(,)?) => {
        $(writable_family!($imm_name, |s, K| {
            #[cfg(target_arch = "x86_64")]
            let v = x86_imm_op!($x86, s.get(K));
            #[cfg(not(target_arch = "x86_64"))]
            let v = $f(s.get(K), imm());
            s.set(K, v);
            Next::Continue
        });)*
    };
}

folded_imm_alu! {
    "add64_imm" => sem::add64, "add {v}",
    "add32_imm" => sem::add32, "add {v:e}",
    "mul64_imm" => sem::mul64, "imul {v}, {v}",
    "mul32_imm" => sem::mul32, "imul {v:e}, {v:e}",
    "or64_imm" => sem::or64, "or {v}",
    "or32_imm" => sem::or32, "or {v:e}",
    "and64_imm" => sem::and64, "and {v}",
    "and32_imm" => sem::and32, "and {v:e}",
    "xor64_imm" => sem::xor64, "xor {v}",
    "xor32_imm" => sem::xor32, "xor {v:e}",
    // The count is an 8-bit field (`R_X86_64_8`); the validator keeps it below the operand
    // width, so the hardware's masking of the count changes nothing.
    "lsh64_imm" => sem::lsh64, "shl {v}",
    "lsh32_imm" => sem::lsh32, "shl {v:e}",
    "rsh64_imm" => sem::rsh64, "shr {v}",
    "rsh32_imm" => sem::rsh32, "shr {v:e}",
    "arsh64_imm" => sem::arsh64, "sar {v}",
    "arsh32_imm" => sem::arsh32, "sar {v:e}",
}

/// `dst = f(tmp)`: moves, with or without extension.
macro_rules! move_alu {
    ($($name:literal => $f:expr),* $(,)?) => {
        $(writable_family!($name, |s, K| {
            s.set(K, $f(s.tmp));
            Next::Continue
        });)*
    };
}

move_alu! {
    "mov64" => |v: u64| v,
    "mov32" => sem::mov32,
    "movsx64_8" => sem::movsx64_8,
    "movsx64_16" => sem::movsx64_16,
    "movsx64_32" => sem::movsx64_32,
    "movsx32_8" => sem::movsx32_8,
    "movsx32_16" => sem::movsx32_16,
}

/// `dst = f(dst)`.
macro_rules! unary_alu {
    ($($name:literal => $f:path),* $(,)?) => {
        $(writable_family!($name, |s, K| {
            s.set(K, $f(s.get(K)));
            Next::Continue
        });)*
    };
}

unary_alu! {
    "neg64" => sem::neg64,
    "neg32" => sem::neg32,
    "zext16" => sem::zext16,
    "zext32" => sem::zext32,
    "bswap16" => sem::bswap16,
    "bswap32" => sem::bswap32,
    "bswap64" => sem::bswap64,
}

// ---------------------------------------------------------------------------------------
// Jumps: `if cond(dst, tmp) goto target`.

/// Each condition in four forms: against `tmp` or a constant, forward or backward. A
/// backward jump (a back edge) first charges its fuel, exactly as the interpreter does, and
/// when the fuel is spent branches to its out-of-line `trap_fuel` stub.
macro_rules! cond_jump {
    ($($name:literal, $imm_name:literal, $back_name:literal, $imm_back_name:literal => $f:path, $x86:literal, $cc:literal),* $(,)?) => {
        $(
            readable_family!($name, |s, K| {
                if $f(s.get(K), s.tmp) { Next::Jump } else { Next::Continue }
            });
            readable_family!($imm_name, |s, K| {
                if compare_imm!($f, $x86, $cc, s.get(K)) { Next::Jump } else { Next::Continue }
            });
            readable_family!($back_name, |s, K| {
                if !s.burn_fuel() {
                    cold_path();
                    Next::Cold
                } else if $f(s.get(K), s.tmp) {
                    Next::Jump
                } else {
                    Next::Continue
                }
            });
            readable_family!($imm_back_name, |s, K| {
                if !s.burn_fuel() {
                    cold_path();
                    Next::Cold
                } else if compare_imm!($f, $x86, $cc, s.get(K)) {
                    Next::Jump
                } else {
                    Next::Continue
                }
            });
        )*
    };
}

/// Whether condition `$f` holds between `$v` and the immediate. On x86-64 the immediate is
/// folded into the compare (`$x86`, a `cmp` or `test` template, `R_X86_64_32S`, or
/// `R_X86_64_32` for the 32-bit forms, which read the low half) and the branch is on the
/// condition code `$cc`: LLVM would first move the relocated constant into a register, and
/// where the compare proves the register equal to it (`jeq` taken, `jne` not taken) would
/// rematerialise the constant into the register. Elsewhere the shared definition.
macro_rules! compare_imm {
    ($f:path, $x86:literal, $cc:literal, $v:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            let _ = $f;
            let mut holds = false;
            // SAFETY: a compare of a register with a constant and a branch to the label
            // (flags clobbered, as asm! assumes).
            unsafe {
                core::arch::asm!(
                    concat!($x86, ", offset {s}"),
                    concat!("j", $cc, " {holds}"),
                    v = in(reg) $v,
                    s = sym _HOLE_OPERAND0,
                    holds = label { holds = true },
                    options(nomem, nostack),
                )
            };
            holds
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($v, imm())
        }
    }};
}

cond_jump! {
    "jeq64", "jeq64_imm", "jeq64_back", "jeq64_imm_back" => sem::jeq64, "cmp {v}", "e",
    "jeq32", "jeq32_imm", "jeq32_back", "jeq32_imm_back" => sem::jeq32, "cmp {v:e}", "e",
    "jne64", "jne64_imm", "jne64_back", "jne64_imm_back" => sem::jne64, "cmp {v}", "ne",
    "jne32", "jne32_imm", "jne32_back", "jne32_imm_back" => sem::jne32, "cmp {v:e}", "ne",
    "jgt64", "jgt64_imm", "jgt64_back", "jgt64_imm_back" => sem::jgt64, "cmp {v}", "a",
    "jgt32", "jgt32_imm", "jgt32_back", "jgt32_imm_back" => sem::jgt32, "cmp {v:e}", "a",
    "jge64", "jge64_imm", "jge64_back", "jge64_imm_back" => sem::jge64, "cmp {v}", "ae",
    "jge32", "jge32_imm", "jge32_back", "jge32_imm_back" => sem::jge32, "cmp {v:e}", "ae",
    "jlt64", "jlt64_imm", "jlt64_back", "jlt64_imm_back" => sem::jlt64, "cmp {v}", "b",
    "jlt32", "jlt32_imm", "jlt32_back", "jlt32_imm_back" => sem::jlt32, "cmp {v:e}", "b",
    "jle64", "jle64_imm", "jle64_back", "jle64_imm_back" => sem::jle64, "cmp {v}", "be",
    "jle32", "jle32_imm", "jle32_back", "jle32_imm_back" => sem::jle32, "cmp {v:e}", "be",
    "jsgt64", "jsgt64_imm", "jsgt64_back", "jsgt64_imm_back" => sem::jsgt64, "cmp {v}", "g",
    "jsgt32", "jsgt32_imm", "jsgt32_back", "jsgt32_imm_back" => sem::jsgt32, "cmp {v:e}", "g",
    "jsge64", "jsge64_imm", "jsge64_back", "jsge64_imm_back" => sem::jsge64, "cmp {v}", "ge",
    "jsge32", "jsge32_imm", "jsge32_back", "jsge32_imm_back" => sem::jsge32, "cmp {v:e}", "ge",
    "jslt64", "jslt64_imm", "jslt64_back", "jslt64_imm_back" => sem::jslt64, "cmp {v}", "l",
    "jslt32", "jslt32_imm", "jslt32_back", "jslt32_imm_back" => sem::jslt32, "cmp {v:e}", "l",
    "jsle64", "jsle64_imm", "jsle64_back", "jsle64_imm_back" => sem::jsle64, "cmp {v}", "le",
    "jsle32", "jsle32_imm", "jsle32_back", "jsle32_imm_back" => sem::jsle32, "cmp {v:e}", "le",
    "jset64", "jset64_imm", "jset64_back", "jset64_imm_back" => sem::jset64, "test {v}", "ne",
    "jset32", "jset32_imm", "jset32_back", "jset32_imm_back" => sem::jset32, "test {v:e}", "ne",
}

/// Padding before a loop head: `pad__rN` is `N` bytes of no-operation on x86-64 (the
/// assembler's multi-byte NOPs), so that the lowering can start a loop on a 16-byte
/// boundary; empty elsewhere (the lowering pads x86-64 only).
macro_rules! pads {
    ($($n:literal)*) => {
        $(stencil!(concat!("pad__r", $n), |_s| {
            // SAFETY: no-operation instructions.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                core::arch::asm!(concat!(".nops ", $n), options(nomem, nostack, preserves_flags))
            };
            Next::Continue
        });)*
    };
}

stencil!("pad__r0", |_s| Next::Continue);
pads! { 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 }

stencil!("ja", |_s| Next::Jump);

/// An unconditional back edge: fuel, then the jump.
stencil!("ja_back", |s| {
    if s.burn_fuel() {
        Next::Jump
    } else {
        cold_path();
        Next::Cold
    }
});

/// The cold stub of a back edge: reports the fuel trap for its instruction.
stencil!("trap_fuel", |s| s.trap(trap::FUEL, 0));

// ---------------------------------------------------------------------------------------
// Memory: loads `dst = *(base + off)` (base staged in `tmp`) and stores `*(base + off) =
// tmp`, in four forms chosen by the lowering from what it knows of the base:
// - checked (`ldx32`, `stx32`): the region table's fast check of any virtual address; when
//   it does not pass, the instruction's out-of-line stub runs the `_slow` form (the full
//   check, then the access or the trap) and jumps back;
// - expected region (`_in_stack`, `_in_ctx`): the lowering expects the address in the stack
//   or the context memory (a pointer derived from r10 or r1 by additions it cannot follow),
//   so the fast check tests that region only; any other address, right or wrong, takes the
//   same out-of-line `_slow` stub as the checked form. The expectation is a guess that
//   costs speed when wrong, never correctness;
// - context (`_ctx`): the base is the context pointer plus a constant, so operand 0 is the
//   offset in the context memory and only its limit is checked;
// - frame (`_fp`): `r10 + off` with the offset proved inside the running frame, which the
//   runtime keeps inside the stack (`tessera::ebpf::jit` requires a stack of at least one
//   frame and bounds the call depth by the frames the stack holds): no check.
// A context access whose check fails branches to an out-of-line `trap_memory` stub, which
// computes the faulting address from the base register. The hot paths fall through.

/// A value a load widens to 64 bits: zero-extended, or sign-extended for `ldxs*`.
trait Widen: Copy {
    fn widen(self) -> u64;
}

macro_rules! widen {
    ($($ty:ty => $via:ty),*) => {
        $(impl Widen for $ty {
            #[inline(always)]
            fn widen(self) -> u64 {
                self as $via as u64
            }
        })*
    };
}

widen! { u8 => u8, u16 => u16, u32 => u32, u64 => u64, i8 => i64, i16 => i64, i32 => i64 }

/// Loads from host address `host` into register `k`.
#[inline(always)]
fn load<T: Widen>(s: &mut State, k: usize, host: u64) -> Next {
    // SAFETY: [host, host + size_of::<T>()) is inside memory the program may read: checked
    // by the caller against the run's region table, or in the running frame (see the
    // section comment). Unaligned access is allowed by the stencil target features.
    let v = unsafe { core::ptr::read_unaligned(host as *const T) };
    s.set(k, v.widen());
    Next::Continue
}

/// Truncation of `tmp` to the stored width.
trait Narrow: Copy {
    fn narrow(v: u64) -> Self;
}

macro_rules! narrow {
    ($($ty:ty),*) => {
        $(impl Narrow for $ty {
            #[inline(always)]
            fn narrow(v: u64) -> $ty {
                v as $ty
            }
        })*
    };
}

narrow! { u8, u16, u32, u64 }

/// Stores `tmp` at host address `host`.
#[inline(always)]
fn store<T: Narrow>(s: &mut State, host: u64) -> Next {
    // SAFETY: [host, host + size_of::<T>()) is inside memory the program may write,
    // checked by the caller as for `load`.
    unsafe { core::ptr::write_unaligned(host as *mut T, T::narrow(s.tmp)) };
    Next::Continue
}

macro_rules! loads {
    ($($name:literal, $slow_name:literal, $stack_name:literal, $in_ctx_name:literal, $ctx_name:literal,
        $frame_name:literal => $ty:ty),* $(,)?) => {
        $(
            writable_family!($name, |s, K| {
                match s.translate_fast(s.tmp.wrapping_add(imm()), core::mem::size_of::<$ty>() as u64, false) {
                    Some(host) => load::<$ty>(&mut s, K, host),
                    None => {
                        cold_path();
                        Next::Cold
                    }
                }
            });
            writable_family!($slow_name, |s, K| {
                let addr = s.tmp.wrapping_add(imm());
                match s.translate(addr, core::mem::size_of::<$ty>() as u64, false) {
                    Some(host) => load::<$ty>(&mut s, K, host),
                    None => s.trap(trap::MEMORY, addr),
                }
            });
            loads!(@in $stack_name, region::STACK, $ty);
            loads!(@in $in_ctx_name, region::CONTEXT, $ty);
            writable_family!($ctx_name, |s, K| {
                match s.context_host(imm(), core::mem::size_of::<$ty>() as u64, false) {
                    Some(host) => load::<$ty>(&mut s, K, host),
                    None => {
                        cold_path();
                        Next::Cold
                    }
                }
            });
            writable_family!($frame_name, |s, K| {
                let host = s.frame_host().wrapping_add(imm());
                load::<$ty>(&mut s, K, host)
            });
        )*
    };
    (@in $name:literal, $region:expr, $ty:ty) => {
        writable_family!($name, |s, K| {
            let addr = s.tmp.wrapping_add(imm());
            match s.translate_in($region as usize, addr, core::mem::size_of::<$ty>() as u64, false) {
                Some(host) => load::<$ty>(&mut s, K, host),
                None => {
                    cold_path();
                    Next::Cold
                }
            }
        });
    };
}

loads! {
    "ldx8", "ldx8_slow", "ldx8_in_stack", "ldx8_in_ctx", "ldx8_ctx", "ldx8_fp" => u8,
    "ldx16", "ldx16_slow", "ldx16_in_stack", "ldx16_in_ctx", "ldx16_ctx", "ldx16_fp" => u16,
    "ldx32", "ldx32_slow", "ldx32_in_stack", "ldx32_in_ctx", "ldx32_ctx", "ldx32_fp" => u32,
    "ldx64", "ldx64_slow", "ldx64_in_stack", "ldx64_in_ctx", "ldx64_ctx", "ldx64_fp" => u64,
    "ldxs8", "ldxs8_slow", "ldxs8_in_stack", "ldxs8_in_ctx", "ldxs8_ctx", "ldxs8_fp" => i8,
    "ldxs16", "ldxs16_slow", "ldxs16_in_stack", "ldxs16_in_ctx", "ldxs16_ctx", "ldxs16_fp" => i16,
    "ldxs32", "ldxs32_slow", "ldxs32_in_stack", "ldxs32_in_ctx", "ldxs32_ctx", "ldxs32_fp" => i32,
}

/// Stores `v` at host address `host`.
#[inline(always)]
fn store_value<T: Narrow>(host: u64, v: u64) -> Next {
    // SAFETY: as for `store`.
    unsafe { core::ptr::write_unaligned(host as *mut T, T::narrow(v)) };
    Next::Continue
}

macro_rules! stores {
    ($($name:literal, $slow_name:literal, $stack_name:literal, $in_ctx_name:literal, $ctx_name:literal,
        $ctx_imm:literal, $frame_name:literal, $frame_imm:literal => $ty:ty),* $(,)?) => {
        $(
            readable_family!($name, |s, K| {
                match s.translate_fast(s.get(K).wrapping_add(imm()), core::mem::size_of::<$ty>() as u64, true) {
                    Some(host) => store::<$ty>(&mut s, host),
                    None => {
                        cold_path();
                        Next::Cold
                    }
                }
            });
            readable_family!($slow_name, |s, K| {
                let addr = s.get(K).wrapping_add(imm());
                match s.translate(addr, core::mem::size_of::<$ty>() as u64, true) {
                    Some(host) => store::<$ty>(&mut s, host),
                    None => s.trap(trap::MEMORY, addr),
                }
            });
            stores!(@in $stack_name, region::STACK, $ty);
            stores!(@in $in_ctx_name, region::CONTEXT, $ty);
            // Context and frame stores name the stored register (`K`), or store operand 1.
            readable_family!($ctx_name, |s, K| {
                match s.context_host(imm(), core::mem::size_of::<$ty>() as u64, true) {
                    Some(host) => store_value::<$ty>(host, s.get(K)),
                    None => {
                        cold_path();
                        Next::Cold
                    }
                }
            });
            stencil!($ctx_imm, |s| {
                match s.context_host(imm(), core::mem::size_of::<$ty>() as u64, true) {
                    Some(host) => store_value::<$ty>(host, imm1()),
                    None => {
                        cold_path();
                        Next::Cold
                    }
                }
            });
            readable_family!($frame_name, |s, K| {
                let host = s.frame_host().wrapping_add(imm());
                store_value::<$ty>(host, s.get(K))
            });
            stencil!($frame_imm, |s| {
                let host = s.frame_host().wrapping_add(imm());
                store_value::<$ty>(host, imm1())
            });
        )*
    };
    (@in $name:literal, $region:expr, $ty:ty) => {
        readable_family!($name, |s, K| {
            let addr = s.get(K).wrapping_add(imm());
            match s.translate_in($region as usize, addr, core::mem::size_of::<$ty>() as u64, true) {
                Some(host) => store::<$ty>(&mut s, host),
                None => {
                    cold_path();
                    Next::Cold
                }
            }
        });
    };
}

stores! {
    "stx8", "stx8_slow", "stx8_in_stack", "stx8_in_ctx", "stx8_ctx", "st8_ctx_imm", "stx8_fp", "st8_fp_imm" => u8,
    "stx16", "stx16_slow", "stx16_in_stack", "stx16_in_ctx", "stx16_ctx", "st16_ctx_imm", "stx16_fp", "st16_fp_imm" => u16,
    "stx32", "stx32_slow", "stx32_in_stack", "stx32_in_ctx", "stx32_ctx", "st32_ctx_imm", "stx32_fp", "st32_fp_imm" => u32,
    "stx64", "stx64_slow", "stx64_in_stack", "stx64_in_ctx", "stx64_ctx", "st64_ctx_imm", "stx64_fp", "st64_fp_imm" => u64,
}

/// The cold stub of a context-based access whose check failed: reports the trap with the
/// faulting address, `base + off` (the base register named by the stencil).
readable_family!("trap_memory", |s, K| s.trap(trap::MEMORY, s.get(K).wrapping_add(imm())));

/// Atomics on `*(base + off)`: bounds (as a write), then natural alignment of the address,
/// then the operation. A run has its memory to itself (the runtime borrows it exclusively),
/// so the read-modify-write needs no locked instruction; the operations are the shared
/// `semantics::atomic_*`. The fetch forms leave the old value in `tmp` (the lowering copies
/// it to `src` when the instruction asks for it); `cmpxchg` compares r0 with memory, stores
/// `tmp` on equality, and r0 receives the old value.
macro_rules! atomic {
    ($($name:literal => $int:ty, |$st:ident, $old:ident, $v:ident| $new:expr),* $(,)?) => {
        $(readable_family!($name, |s, K| {
            let addr = s.get(K).wrapping_add(imm());
            let size = core::mem::size_of::<$int>() as u64;
            let Some(host) = s.translate(addr, size, true) else {
                return_trap!(s, trap::MEMORY, addr);
            };
            if !sem::is_aligned(addr, size) {
                return_trap!(s, trap::MISALIGNED, addr);
            }
            // SAFETY: [host, host + size) is writable memory of the program, checked just
            // above against the region table; unaligned access is allowed by the target
            // features (the alignment rule is on the program's address).
            let $old = unsafe { core::ptr::read_unaligned(host as *const $int) } as u64;
            let $v = s.tmp;
            let new: Option<u64> = {
                let $st = &mut s;
                $new
            };
            if let Some(new) = new {
                // SAFETY: as above.
                unsafe { core::ptr::write_unaligned(host as *mut $int, new as $int) };
            }
            s.tmp = $old;
            Next::Continue
        });)*
    };
}

atomic! {
    "atomic64_add" => u64, |_s, old, v| Some(sem::atomic_add(old, v)),
    "atomic64_or" => u64, |_s, old, v| Some(sem::atomic_or(old, v)),
    "atomic64_and" => u64, |_s, old, v| Some(sem::atomic_and(old, v)),
    "atomic64_xor" => u64, |_s, old, v| Some(sem::atomic_xor(old, v)),
    "atomic64_xchg" => u64, |_s, _old, v| Some(v),
    "atomic64_cmpxchg" => u64, |st, old, v| {
        let equal = st.get(0) == old;
        st.set(0, old);
        if equal { Some(v) } else { None }
    },
    "atomic32_add" => u32, |_s, old, v| Some(sem::atomic_add(old, v)),
    "atomic32_or" => u32, |_s, old, v| Some(sem::atomic_or(old, v)),
    "atomic32_and" => u32, |_s, old, v| Some(sem::atomic_and(old, v)),
    "atomic32_xor" => u32, |_s, old, v| Some(sem::atomic_xor(old, v)),
    "atomic32_xchg" => u32, |_s, _old, v| Some(v),
    "atomic32_cmpxchg" => u32, |st, old, v| {
        let equal = sem::zext32(st.get(0)) == old;
        st.set(0, old);
        if equal { Some(v) } else { None }
    },
}

// ---------------------------------------------------------------------------------------
// Calls and exit.

/// Helper call through one of the runtime's trampolines (`by_id`: `callx`'s, which looks
/// the helper up by id; else `call`'s, whose helper the lowering resolved to its position in
/// the program's table). Only the context and r6..r9 live across the call: `tmp` is dead
/// after it (the next stencil that reads it stages it first), r0 takes the result and
/// r1..r5 are zeroed.
#[inline(always)]
fn call_helper(s: &mut State, helper: u64, by_id: bool) -> Next {
    let c = s.ctx();
    c.helper = helper;
    let trampoline = if by_id { c.call_helper_by_id } else { c.call_helper };
    // SAFETY: the trampolines are the runtime's, for this context.
    let out = unsafe { trampoline(s.ctx, s.get(1), s.get(2), s.get(3), s.get(4), s.get(5)) };
    if out.trap != 0 {
        cold_path();
        let c = s.ctx();
        c.trap = out.trap;
        c.trap_insn = insn();
        return Next::Return(0);
    }
    s.tmp = 0;
    s.set(0, out.r0);
    s.clobber_args();
    Next::Continue
}

/// `call`: operand 0 is the helper's index in the program's helper table (non-negative).
stencil!("call_helper", |s| call_helper(&mut s, imm(), false));

/// `callx`: the helper id is in `tmp` (ids are 32-bit: a wider value names no helper).
stencil!("callx", |s| {
    let id = s.tmp;
    if id >> 32 != 0 {
        cold_path();
        return_trap!(s, trap::HELPER, id);
    }
    call_helper(&mut s, id, true)
});

/// Local call: fuel (the callee's forward reach, see `tessera::ebpf::fuel`; when it runs
/// out, the stub), the depth limit (as a floor under the frame), a fresh stack frame, then a real call into the
/// callee's first stencil. r6..r9 are restored from this stencil's frame afterwards.
stencil!("call_local", |s| {
    if !s.burn_fuel() {
        // The instruction's out-of-line stub reports it (`trap_fuel`), as for back edges.
        cold_path();
        Next::Cold
    } else {
        call_local(&mut s)
    }
});

/// [`call_local`] after the fuel: the depth limit, the frame, the call.
#[inline(always)]
fn call_local(s: &mut State) -> Next {
    let frame = s.frame_host();
    if frame <= s.ctx().frame_floor {
        return s.trap(trap::CALL_DEPTH, 0);
    }
    s.set_frame_host(frame - FRAME_SIZE);
    let (r6, r7, r8, r9) = (s.get(6), s.get(7), s.get(8), s.get(9));
    let r0 = s.call();
    if s.ctx().trap != 0 {
        cold_path();
        // The callee recorded the trap; unwind without touching it.
        return Next::Return(0);
    }
    // The frame as it was, not the callee's plus `FRAME_SIZE`: where the frame lives in the
    // context (x86-64, RISC-V) a read-modify-write would chain every call's frame update
    // to the last one through memory.
    s.set_frame_host(frame);
    // Only the context and r6..r9 live across the call (see `call_helper`).
    s.tmp = 0;
    s.set(0, r0);
    s.clobber_args();
    s.set(6, r6);
    s.set(7, r7);
    s.set(8, r8);
    s.set(9, r9);
    Next::Continue
}

stencil!("exit", |s| Next::Return(s.get(0)));
