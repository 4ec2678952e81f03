/* Minimal libbpf-style declarations for the tessera examples (no libbpf dependency).
 *
 * Built for eBPF (`clang -target bpf`, where __bpf__ is defined) the helpers are the
 * usual pointers to constant helper ids; built natively the same names are plain
 * prototypes, so a host harness can link the programs against its own implementation.
 */
#ifndef TESSERA_EXAMPLES_BPF_H
#define TESSERA_EXAMPLES_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed int __s32;
typedef signed long long __s64;

/* Place a program or a variable in an ELF section. */
#define SEC(name) __attribute__((section(name), used))

/* BTF-defined maps: `__uint(name, N)` encodes N in the type (a pointer to an array of
 * N ints), `__type(name, T)` records T through a pointer to it. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name

#define __always_inline inline __attribute__((always_inline))
#define __noinline __attribute__((noinline))

enum bpf_map_type {
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
};

/* Flags of bpf_map_update_elem. */
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2

/* Map flags. */
#define BPF_F_NO_PREALLOC (1U << 0)

/* The legacy map declaration (`SEC("maps")`). */
struct bpf_map_def {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
};

#if defined(__bpf__)
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;
#else
void *bpf_map_lookup_elem(void *map, const void *key);
long bpf_map_update_elem(void *map, const void *key, const void *value, __u64 flags);
long bpf_map_delete_elem(void *map, const void *key);
__u64 bpf_ktime_get_ns(void);
long bpf_trace_printk(const char *fmt, __u32 fmt_size, ...);
__u32 bpf_get_prandom_u32(void);
#endif

#endif
