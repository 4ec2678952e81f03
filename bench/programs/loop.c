/* Integer loop: a linear congruential generator mixed into an accumulator with a
 * data-dependent branch; the seed comes from the input, the trip count from its length. */
#include "bench.h"

BENCH_ENTRY(loop) {
    u64 x = 0;
    for (u64 i = 0; i < len && i < 8; i++)
        x = (x << 8) | mem[i];
    u64 s = 0;
    u64 n = len * 256;
    for (u64 i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        u64 t = x >> 33;
        s += t ^ (s >> 7);
        if (t & 1)
            s ^= i;
        else
            s += i * 3;
    }
    return s ^ x;
}
