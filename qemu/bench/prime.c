// The `-- c` section of bpf_conformance tests/prime.data (Copyright (c) Big Switch Networks,
// Inc; SPDX-License-Identifier: Apache-2.0), whose `-- asm` is the eBPF side of this bench;
// `entry` made static so that only the bench entry is exported.
#include <stdint.h>
#include <stdbool.h>

static uint64_t entry(uint64_t arg)
{
    int i = 0;
    for (i = 2; i < arg; i++) {
        if (arg % i == 0) {
            return false;
        }
    }
    return true;
}

// The eBPF program loads its argument itself (`mov %r1, 67`); the empty asm hides the
// constant from the optimiser, which would otherwise evaluate the whole loop at compile time
// (the JIT does not).
uint64_t prime(void *mem, uint64_t len)
{
    uint64_t arg = 67;
    (void)mem;
    (void)len;
    __asm__("" : "+r"(arg));
    return entry(arg);
}
