/* A helper-call-heavy loop: one call of the embedder's bench_mix per 8-byte input word. */
#include "bench.h"

BENCH_ENTRY(helpers) {
    const u64 *w = (const u64 *)mem;
    u64 n = len / 8;
    u64 acc = len;
    for (u64 i = 0; i < n; i++)
        acc = bench_mix(acc, w[i], i, n, acc >> 3);
    return acc;
}
