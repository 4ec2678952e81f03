/* 64-bit FNV-1a hash over the input, four passes with a different basis each. */
#include "bench.h"

BENCH_ENTRY(fnv1a) {
    u64 out = 0;
    for (u64 pass = 0; pass < 4; pass++) {
        u64 h = 0xcbf29ce484222325ull ^ pass;
        for (u64 i = 0; i < len; i++) {
            h ^= mem[i];
            h *= 0x100000001b3ull;
        }
        out = out * 3 ^ h;
    }
    return out;
}
