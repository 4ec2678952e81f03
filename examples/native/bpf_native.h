/* The examples built natively, for the tests that compare tessera with the same C run as
 * machine code (host-tests/native). Included after bpf.h (whose native branch declares the
 * helpers as plain prototypes) and before a program's source, which stays unchanged; the
 * helpers are implemented in bpf_native.c with tessera's semantics:
 *
 * - maps: array and hash maps as core/src/ebpf/maps.rs defines them (BPF_ANY, BPF_NOEXIST,
 *   BPF_EXIST, the same negative errno values, hash slots taken from a free list that
 *   deletions push onto, so entries come out in the same slot order);
 * - bpf_ktime_get_ns: a deterministic clock (a start, a step per call);
 * - bpf_trace_printk: formatted into a buffer the harness reads;
 * - bpf_get_prandom_u32: xorshift32 from a seed.
 *
 * A map is the address of its definition (`&counts`), as in the eBPF source; the harness
 * registers every map of a program before running it.
 */
#ifndef TESSERA_BPF_NATIVE_H
#define TESSERA_BPF_NATIVE_H

#include "../bpf.h"

/* Sections mean something to an eBPF loader only: natively everything stays where the
 * compiler puts it. */
#undef SEC
#define SEC(name) __attribute__((used))

/* --- The harness side ------------------------------------------------------------------ */

/* Forgets every map and trace message; the clock starts at `clock_start` and advances by
 * `clock_step` per bpf_ktime_get_ns call; bpf_get_prandom_u32 runs xorshift32 from `seed`. */
void tessera_native_reset(__u64 clock_start, __u64 clock_step, __u32 seed);

/* Registers the map whose definition lies at `def` (empty, zeroed values). Returns its
 * index, or a negative errno for a definition maps.rs refuses (-EINVAL) or too many maps
 * (-ENOSPC), or when storage cannot be allocated (-ENOMEM). */
int tessera_native_map_register(const void *def, const char *name, __u32 type, __u32 key_size,
                                __u32 value_size, __u32 max_entries);

struct tessera_native_map_info {
    const char *name;
    __u32 type, key_size, value_size, max_entries;
};

__u32 tessera_native_map_count(void);
/* 0 and `*info` filled, or -ENOENT. */
int tessera_native_map_info(__u32 index, struct tessera_native_map_info *info);
/* 1 when `slot` holds an element (`*key` is its key, NULL for arrays; `*value` its value),
 * 0 when it does not, -ENOENT for no such map. */
int tessera_native_map_entry(__u32 index, __u32 slot, const __u8 **key, const __u8 **value);

/* The trace messages so far: records of a little-endian u32 length and the bytes. */
const __u8 *tessera_native_trace(__u64 *len);
/* The clock's next reading and the random state, after the runs. */
void tessera_native_host_state(__u64 *clock_now, __u32 *random_state);

/* What the generated wrapper of each program file describes (host-tests/native/build.rs). */
struct tessera_native_program {
    const char *name;
    /* The program called with (context, its length), its return value zero-extended. */
    __u64 (*run)(__u8 *context, __u64 len);
    /* sizeof the program's return type: only those bytes of r0 are its result. */
    __u32 return_size;
};

struct tessera_native_global {
    const char *name;
    /* The eBPF object's section holding it, and its offset there. */
    const char *section;
    __u64 offset;
    void *address;
    __u64 size;
};

struct tessera_native_object {
    const char *name;
    const struct tessera_native_program *programs;
    __u32 program_count;
    /* Registers the object's maps (tessera_native_map_register), in object order; 0 or
     * the first negative errno. */
    int (*register_maps)(void);
    const struct tessera_native_global *globals;
    __u32 global_count;
};

#endif
