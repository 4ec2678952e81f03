/* A token-bucket rate limiter: r1 = a request (little-endian u32 client id, then a u32
 * cost), r2 = its length. One bucket per client in an array map; buckets refill at
 * `rate_per_sec` tokens per second up to `burst`, read from .rodata (`const volatile`,
 * the way a loader sets them before loading). Returns 1 when the request is allowed
 * (its cost taken from the bucket), 0 when it is over the limit or malformed.
 */
#include "bpf.h"

#define MAX_CLIENTS 16
#define NSEC_PER_SEC 1000000000ULL

struct bucket {
    __u64 tokens;
    __u64 last_ns;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_CLIENTS);
    __type(key, __u32);
    __type(value, struct bucket);
} buckets SEC(".maps");

const volatile __u64 rate_per_sec = 10;
const volatile __u64 burst = 20;

/* Requests seen and requests refused: .bss. */
__u64 requests;
__u64 refused;

static __noinline __u64 refill(struct bucket *b, __u64 now)
{
    __u64 tokens = b->tokens;
    if (b->last_ns != 0 && now > b->last_ns) {
        __u64 earned = (now - b->last_ns) * rate_per_sec / NSEC_PER_SEC;
        tokens = tokens + earned > burst ? burst : tokens + earned;
    } else if (b->last_ns == 0) {
        tokens = burst;
    }
    b->last_ns = now;
    return tokens;
}

SEC("ratelimit")
int rate_limit(const __u8 *req, __u64 len)
{
    if (len < 8)
        return 0;
    __u32 client = req[0] | (req[1] << 8) | (req[2] << 16) | ((__u32)req[3] << 24);
    __u32 cost = req[4] | (req[5] << 8) | (req[6] << 16) | ((__u32)req[7] << 24);
    requests++;
    __u32 key = client % MAX_CLIENTS;
    struct bucket *b = bpf_map_lookup_elem(&buckets, &key);
    if (!b)
        return 0;
    __u64 tokens = refill(b, bpf_ktime_get_ns());
    if (tokens < cost) {
        b->tokens = tokens;
        refused++;
        return 0;
    }
    b->tokens = tokens - cost;
    return 1;
}
