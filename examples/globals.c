/* Global data and local calls: .rodata strings and tables, .data and .bss globals, a
 * static subprogram and a global (BTF-linkage) function in .text, called from the
 * program section. r1 = bytes to hash, r2 = their length.
 *
 * Returns a 32-bit FNV-1a hash of the input, mixed with the program's state: the number
 * of runs so far (.data, starting at 100) and a running total of input bytes (.bss).
 */
#include "bpf.h"

static const char banner[] = "tessera globals example";
static const __u32 primes[8] = {2, 3, 5, 7, 11, 13, 17, 19};

__u32 runs = 100;         /* .data */
__u64 total_bytes;        /* .bss */
__u32 last_hash;          /* .bss */
char last_tag[8] = "none"; /* .data */

static __noinline __u32 fnv1a(const __u8 *p, __u64 len)
{
    __u32 h = 2166136261u;
    for (__u64 i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

/* Global function: clang calls it through a relocation against its own symbol. */
__noinline __u32 mix(__u32 h, __u32 n)
{
    return (h ^ (n * primes[n & 7])) + banner[n % (sizeof(banner) - 1)];
}

SEC("globals")
int hash_input(const __u8 *data, __u64 len)
{
    runs++;
    total_bytes += len;
    __u32 h = mix(fnv1a(data, len), runs);
    h = mix(h, (__u32)total_bytes);
    last_hash = h;
    last_tag[0] = 'h';
    last_tag[1] = 'i';
    last_tag[2] = 't';
    last_tag[3] = 0;
    bpf_trace_printk("hash %x\n", sizeof("hash %x\n"), h);
    return h;
}
