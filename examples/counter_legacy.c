/* The counter of counter.c with a map declared the legacy way (`SEC("maps")`, struct
 * bpf_map_def), as older programs and loaders do. r1 = little-endian u32 keys, r2 = their
 * length; returns the number of keys counted.
 */
#include "bpf.h"

struct bpf_map_def SEC("maps") legacy_counts = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 32,
    .map_flags = BPF_F_NO_PREALLOC,
};

struct bpf_map_def SEC("maps") legacy_totals = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 2,
};

SEC("counter_legacy")
int count_legacy(const __u8 *keys, __u64 len)
{
    int counted = 0;
    for (__u64 off = 0; off + 4 <= len; off += 4) {
        __u32 key = keys[off] | (keys[off + 1] << 8) | (keys[off + 2] << 16) | ((__u32)keys[off + 3] << 24);
        __u64 one = 1, *count = bpf_map_lookup_elem(&legacy_counts, &key);
        if (count)
            *count += 1;
        else if (bpf_map_update_elem(&legacy_counts, &key, &one, BPF_ANY) != 0)
            continue;
        counted++;
    }
    __u32 slot = 0;
    __u64 *total = bpf_map_lookup_elem(&legacy_totals, &slot);
    if (total)
        *total += counted;
    return counted;
}
