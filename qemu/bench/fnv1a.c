// FNV-1a over the context bytes: a serial dependency per byte (no vectorisation), one
// bounds-checked load per iteration. The eBPF side is fnv1a.data.
#include <stdint.h>

uint64_t fnv1a(const uint8_t *mem, uint64_t len)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (uint64_t i = 0; i < len; i++) {
        hash ^= mem[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}
