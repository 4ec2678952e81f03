// xorshift64 for 1000 rounds, seeded from the context length: pure register arithmetic
// with a loop. No NAME.data: the eBPF side is this file compiled with clang -target bpf,
// which exercises the path the C benchmark programs take.
#include <stdint.h>

uint64_t xorshift(void *mem, uint64_t len)
{
    uint64_t x = 88172645463325252ULL ^ len;
    (void)mem;
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}
