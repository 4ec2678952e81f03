/* A key-value store driven by commands: every map helper with every flag, including the
 * failing ones, with the helpers' return values kept in an array map. r1 = 24-byte
 * commands (little-endian u32 op, u32 flags, u64 key, u64 value), r2 = their length.
 *
 * Ops: 0 update `store` (flags as given, even invalid ones), 1 delete from `store`, 2 add
 * the value to the key's (inserting it when absent), 3 read the key (its value is added to
 * the run's sum), 4 update `slots` at index key (flags as given), 5 delete from `slots`
 * (always -EINVAL), 6 trace the key as a string of up to 8 characters.
 *
 * `run_commands` returns the number of commands whose helper returned 0, and traces every
 * failure; `sum` (.bss) collects what op 3 read. A global function in .text mixes every
 * result into `digest` (.data).
 */
#include "bpf.h"

#define MAX_COMMANDS 40
#define COMMAND_LEN 24

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u64);
    __type(value, __u64);
} store SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} slots SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_COMMANDS);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

__u64 digest = 0x9e3779b97f4a7c15ULL; /* .data */
__u64 sum;                            /* .bss */
__u32 failures;                       /* .bss */
__u32 commands_run;                   /* .bss */

static __always_inline __u64 le64(const __u8 *p)
{
    __u64 lo = p[0] | (p[1] << 8) | (p[2] << 16) | ((__u32)p[3] << 24);
    __u64 hi = p[4] | (p[5] << 8) | (p[6] << 16) | ((__u32)p[7] << 24);
    return lo | (hi << 32);
}

/* Global: called through a relocation against its own symbol. */
__noinline __u64 mix(__u64 h, __u64 v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

/* Keeps command `index`'s result: called for the map helpers and for the trace op. */
static __noinline long keep(__u32 index, long ret, __u32 op, __u64 key)
{
    __s64 value = ret;
    bpf_map_update_elem(&results, &index, &value, BPF_ANY);
    digest = mix(digest, (__u64)ret);
    if (ret) {
        failures++;
        bpf_trace_printk("op %u key %llu: %lld\n", sizeof("op %u key %llu: %lld\n"), op, key, ret);
    }
    return ret;
}

SEC("kv")
int run_commands(const __u8 *commands, __u64 len)
{
    int ok = 0;
    for (__u32 i = 0; i < MAX_COMMANDS; i++) {
        __u64 off = (__u64)i * COMMAND_LEN;
        if (off + COMMAND_LEN > len)
            break;
        const __u8 *c = commands + off;
        __u32 op = (__u32)le64(c);
        __u64 flags = (__u32)(le64(c) >> 32);
        __u64 key = le64(c + 8);
        __u64 value = le64(c + 16);
        __u32 index = (__u32)key;
        long ret;
        commands_run++;
        switch (op) {
        case 0:
            ret = bpf_map_update_elem(&store, &key, &value, flags);
            break;
        case 1:
            ret = bpf_map_delete_elem(&store, &key);
            break;
        case 2: {
            __u64 *v = bpf_map_lookup_elem(&store, &key);
            if (v) {
                *v += value;
                ret = 0;
            } else {
                ret = bpf_map_update_elem(&store, &key, &value, BPF_NOEXIST);
            }
            break;
        }
        case 3: {
            __u64 *v = bpf_map_lookup_elem(&store, &key);
            ret = v ? 0 : -2;
            if (v)
                sum += *v;
            break;
        }
        case 4:
            ret = bpf_map_update_elem(&slots, &index, &value, flags);
            break;
        case 5:
            ret = bpf_map_delete_elem(&slots, &index);
            break;
        case 6: {
            char name[9];
            for (int b = 0; b < 8; b++)
                name[b] = (char)(key >> (8 * b));
            name[8] = 0;
            ret = bpf_trace_printk("name %s\n", sizeof("name %s\n"), name);
            /* The message length on success. */
            ret = ret >= 0 ? 0 : ret;
            break;
        }
        default:
            ret = -22;
        }
        if (keep(i, ret, op, key) == 0)
            ok++;
    }
    return ok;
}
