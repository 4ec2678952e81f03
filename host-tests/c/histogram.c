/* Latency histograms: an array map with one log2 histogram (a struct of 16 slots and
 * statistics) per bucket, samples kept at random (bpf_get_prandom_u32 against a .data
 * percentage), trace messages built from .rodata.str1.1 strings (%s, %c, %d, %u, %x, %llu),
 * .bss counters, and a static function called from both programs.
 *
 * `record` takes r1 = 8-byte samples (little-endian u32 source, u32 latency in µs, the top
 * byte of the source being a one-character tag), r2 = their length, and returns how many
 * samples were kept. `report` takes nothing and returns the total of all histogram counts,
 * tracing one line per non-empty bucket.
 */
#include "bpf.h"

#define BUCKETS 8
#define SLOTS 16
#define MAX_SAMPLES 48

struct histogram {
    __u32 slots[SLOTS];
    __u64 count;
    __u64 sum;
    __u64 min;
    __u64 max;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, BUCKETS);
    __type(key, __u32);
    __type(value, struct histogram);
} hist SEC(".maps");

__u32 keep_percent = 70;   /* .data */
__u64 samples_seen;        /* .bss */
__u64 samples_dropped;     /* .bss */
__u32 last_slot;           /* .bss */

/* The histogram slot of a value: floor(log2(v)) + 1, 0 for 0, the last slot for anything
 * larger. Called from `record` (per sample) and `report` (for each bucket's mean). */
static __noinline __u32 log2_slot(__u64 v)
{
    __u32 slot = 0;
    while (v && slot < SLOTS - 1) {
        v >>= 1;
        slot++;
    }
    return slot;
}

SEC("hist/record")
int record(const __u8 *samples, __u64 len)
{
    int kept = 0;
    for (__u32 i = 0; i < MAX_SAMPLES; i++) {
        __u64 off = (__u64)i * 8;
        if (off + 8 > len)
            break;
        const __u8 *s = samples + off;
        __u32 source = s[0] | (s[1] << 8) | (s[2] << 16);
        __u8 tag = s[3];
        __u64 latency = s[4] | (s[5] << 8) | (s[6] << 16) | ((__u32)s[7] << 24);
        samples_seen++;
        if (bpf_get_prandom_u32() % 100 >= keep_percent) {
            samples_dropped++;
            continue;
        }
        __u32 bucket = source % BUCKETS;
        struct histogram *h = bpf_map_lookup_elem(&hist, &bucket);
        if (!h)
            return -1;
        __u32 slot = log2_slot(latency);
        last_slot = slot;
        h->slots[slot]++;
        if (h->count == 0 || latency < h->min)
            h->min = latency;
        if (latency > h->max) {
            h->max = latency;
            bpf_trace_printk("%c: bucket %u max %llu\n", sizeof("%c: bucket %u max %llu\n"), tag, bucket,
                             latency);
        }
        h->count++;
        h->sum += latency;
        kept++;
    }
    return kept;
}

SEC("hist/report")
__u64 report(const __u8 *unused, __u64 len)
{
    (void)unused;
    (void)len;
    __u64 total = 0;
    for (__u32 bucket = 0; bucket < BUCKETS; bucket++) {
        struct histogram *h = bpf_map_lookup_elem(&hist, &bucket);
        if (!h || h->count == 0)
            continue;
        __u64 mean = h->sum / h->count;
        bpf_trace_printk("%s %d: mean slot %x\n", sizeof("%s %d: mean slot %x\n"), "bucket", bucket,
                         log2_slot(mean));
        total += h->count;
    }
    if (total == 0)
        bpf_trace_printk("no samples (%d%% kept)\n", sizeof("no samples (%d%% kept)\n"), keep_percent);
    return total;
}
