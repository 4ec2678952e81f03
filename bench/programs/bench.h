/* Shared by every benchmark program. Each program is compiled twice from the same source:
 * for eBPF (clang -target bpf -O2 -mcpu=v3 -c, by `cargo xtask bench --build-programs`; the
 * objects are committed) and natively with clang -O2 (bench/build.rs) as the physical
 * baseline.
 *
 * Rules that keep one object loadable by every engine without an ELF loader:
 * - the entry function comes first in the file (offset 0 of .text); other functions are
 *   `static`, declared before it and defined after it, so every call resolves inside .text;
 * - no global data and no string or table constants (they would need relocations);
 * - input memory arrives as (r1 = pointer, r2 = length); the result is a checksum that
 *   depends on the data only, never on addresses (solana-sbpf maps memory at its own
 *   virtual addresses);
 * - stack use stays small (rbpf has 512 bytes for all frames);
 * - two rbpf 0.4.1 bugs are kept out of the generated code, or rbpf would compute something
 *   else (the bench fails on any mismatch, and rbpf's interpreter has no fuel to stop a loop):
 *   its interpreter zero-extends the immediate of 64-bit unsigned jumps (`if r7 == -1` never
 *   holds), so no such jump may compare with a negative constant (the bench crate's tests
 *   check the objects); its JIT does not move r10 on a local call, so a callee's stack frame
 *   overlays its caller's: a function that uses the stack must not call one that does too.
 */
#ifndef BENCH_H
#define BENCH_H

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;
typedef int i32;
typedef unsigned short u16;
typedef unsigned char u8;

/* The entry point: natively each program gets its own symbol, `bench_<name>`. */
#define BENCH_ENTRY(name) u64 bench_##name(u8 *mem, u64 len)

#define NOINLINE __attribute__((noinline))

/* The one helper. Its id is solana-sbpf's hash of the name "bench_mix", so every engine
 * registers the same id and the bytecode needs no patching (checked by the bench crate). */
#define BENCH_MIX_ID 0x90a1e635u

#ifdef __bpf__
static u64 (*const bench_mix)(u64 a, u64 b, u64 c, u64 d, u64 e) = (void *)BENCH_MIX_ID;
#else
u64 bench_mix(u64 a, u64 b, u64 c, u64 d, u64 e);
#endif

#endif
