/* Per-key counters in a hash map: r1 = an array of little-endian u32 keys, r2 = its
 * length in bytes.
 *
 * `count_keys` adds one to the counter of every key (creating it on first sight) and
 * returns how many keys were new; a key that no longer fits (the map is full) is counted
 * in the `overflow` slot of a one-element array map. `query` returns the counter of the
 * first key (0 when absent) and, when the second key is 0, deletes it.
 */
#include "bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} overflow SEC(".maps");

static __always_inline __u32 load_le32(const __u8 *p)
{
    return p[0] | (p[1] << 8) | (p[2] << 16) | ((__u32)p[3] << 24);
}

SEC("counter")
int count_keys(const __u8 *keys, __u64 len)
{
    int new_keys = 0;
    for (__u64 off = 0; off + 4 <= len; off += 4) {
        __u32 key = load_le32(keys + off);
        __u64 *count = bpf_map_lookup_elem(&counts, &key);
        if (count) {
            __sync_fetch_and_add(count, 1);
            continue;
        }
        __u64 one = 1;
        if (bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST) == 0) {
            new_keys++;
        } else {
            __u32 zero = 0;
            __u64 *lost = bpf_map_lookup_elem(&overflow, &zero);
            if (lost)
                __sync_fetch_and_add(lost, 1);
        }
    }
    return new_keys;
}

SEC("counter/query")
__u64 query(const __u8 *keys, __u64 len)
{
    if (len < 4)
        return 0;
    __u32 key = load_le32(keys);
    __u64 *count = bpf_map_lookup_elem(&counts, &key);
    __u64 result = count ? *count : 0;
    if (len >= 8 && load_le32(keys + 4) == 0)
        bpf_map_delete_elem(&counts, &key);
    return result;
}
