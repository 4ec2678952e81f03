/* Sieve of Eratosthenes in memory: byte i of the input (which arrives zeroed) marks whether
 * i is composite. (Clearing it here would be a memset idiom, which clang's BPF back end
 * turns into a call it cannot emit.) */
#include "bench.h"

BENCH_ENTRY(sieve) {
    u64 count = 0, sum = 0;
    for (u64 i = 2; i < len; i++) {
        if (mem[i])
            continue;
        count++;
        sum += i;
        for (u64 j = i * i; j < len; j += i)
            mem[j] = 1;
    }
    return count << 40 ^ sum;
}
