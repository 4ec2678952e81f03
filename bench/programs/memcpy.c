/* Byte-wise memcpy and memcmp loops: copies the first half of the input into the second
 * half at shifting offsets, flips one byte, and compares. */
#include "bench.h"

static void copy_bytes(u8 *dst, const u8 *src, u64 n);
static i64 compare_bytes(const u8 *a, const u8 *b, u64 n);

BENCH_ENTRY(memcpy) {
    u64 half = len / 2;
    if (half < 64)
        return 0;
    u8 *dst = mem + half;
    u64 s = 0;
    for (u64 round = 0; round < 8; round++) {
        u64 n = half - 8;
        copy_bytes(dst, mem + round, n);
        u64 flip = (round * 997) % n;
        dst[flip] ^= 0x5a;
        i64 c = compare_bytes(mem + round, dst, n);
        s = s * 31 + (u64)c + flip;
    }
    return s;
}

static NOINLINE void copy_bytes(u8 *dst, const u8 *src, u64 n) {
    for (u64 i = 0; i < n; i++)
        dst[i] = src[i];
}

static NOINLINE i64 compare_bytes(const u8 *a, const u8 *b, u64 n) {
    for (u64 i = 0; i < n; i++)
        if (a[i] != b[i])
            return (i64)a[i] - (i64)b[i] + (i64)(i << 16);
    return 0;
}
