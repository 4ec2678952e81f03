/* A flow table: a hash map of per-flow statistics (a struct value under a struct key),
 * created with BPF_NOEXIST, updated by copy with BPF_EXIST, closed with a delete; an array
 * map of per-protocol totals; .data and .bss counters; a static function called from two
 * places. r1 = 16-byte records (little-endian u32 saddr, u32 daddr, u16 sport, u16 dport,
 * u8 proto, u8 tcp flags, u16 length), r2 = their length.
 *
 * `track_flows` returns (new flows << 16) | failed updates; `flow_packets` returns the
 * packet count of the flow of the first record, or all ones when it is not in the table.
 */
#include "bpf.h"

#define MAX_FLOWS 16
#define MAX_RECORDS 64
#define RECORD_LEN 16
#define TCP_FIN 0x01
#define TCP_RST 0x04

struct flow_key {
    __u32 saddr;
    __u32 daddr;
    __u16 sport;
    __u16 dport;
    __u8 proto;
    __u8 pad[3];
};

struct flow_stats {
    __u64 packets;
    __u64 bytes;
    __u64 first_ns;
    __u64 last_ns;
    __u32 flags_seen;
    __u32 generation;
};

struct proto_total {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_FLOWS);
    __type(key, struct flow_key);
    __type(value, struct flow_stats);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, struct proto_total);
} proto_totals SEC(".maps");

__u32 generation = 1;    /* .data: runs so far, plus one */
__u64 records_seen;      /* .bss */
__u32 table_full;        /* .bss: inserts refused because the table was full */
__s32 last_error;        /* .bss: the last helper error */
__u32 closed;            /* .bss */

static __always_inline __u32 le32(const __u8 *p)
{
    return p[0] | (p[1] << 8) | (p[2] << 16) | ((__u32)p[3] << 24);
}

static __always_inline __u16 le16(const __u8 *p)
{
    return p[0] | (p[1] << 8);
}

static __always_inline void read_key(struct flow_key *key, const __u8 *rec)
{
    key->saddr = le32(rec);
    key->daddr = le32(rec + 4);
    key->sport = le16(rec + 8);
    key->dport = le16(rec + 10);
    key->proto = rec[12];
    key->pad[0] = key->pad[1] = key->pad[2] = 0;
}

/* Adds one packet to `s`: from the path that creates a flow and from the one that updates
 * it. Returns the flags seen so far. */
static __noinline __u32 account(struct flow_stats *s, __u32 len, __u32 flags, __u64 now)
{
    s->packets++;
    s->bytes += len;
    if (s->first_ns == 0)
        s->first_ns = now;
    s->last_ns = now;
    s->flags_seen |= flags;
    s->generation = generation;
    return s->flags_seen;
}

static __noinline void add_total(__u8 proto, __u32 len)
{
    __u32 index = proto == 6 ? 0 : proto == 17 ? 1 : proto == 1 ? 2 : 3;
    struct proto_total *t = bpf_map_lookup_elem(&proto_totals, &index);
    if (t) {
        t->packets++;
        t->bytes += len;
    }
}

SEC("flow_table")
int track_flows(const __u8 *records, __u64 len)
{
    __u32 new_flows = 0, failed = 0;
    generation++;
    for (__u32 i = 0; i < MAX_RECORDS; i++) {
        __u64 off = (__u64)i * RECORD_LEN;
        if (off + RECORD_LEN > len)
            break;
        const __u8 *rec = records + off;
        struct flow_key key;
        read_key(&key, rec);
        __u8 flags = rec[13];
        __u16 bytes = le16(rec + 14);
        __u64 now = bpf_ktime_get_ns();
        records_seen++;
        add_total(key.proto, bytes);

        long err;
        struct flow_stats *found = bpf_map_lookup_elem(&flows, &key);
        struct flow_stats copy;
        if (found) {
            copy = *found;
            account(&copy, bytes, flags, now);
            err = bpf_map_update_elem(&flows, &key, &copy, BPF_EXIST);
        } else {
            __builtin_memset(&copy, 0, sizeof(copy));
            account(&copy, bytes, flags, now);
            err = bpf_map_update_elem(&flows, &key, &copy, BPF_NOEXIST);
            if (err == 0)
                new_flows++;
            else if (err == -7)
                table_full++;
        }
        if (err) {
            failed++;
            last_error = err;
            continue;
        }
        if (flags & (TCP_FIN | TCP_RST)) {
            if (bpf_map_delete_elem(&flows, &key) == 0)
                closed++;
            /* Gone now: an update of an existing element must fail (-ENOENT). */
            err = bpf_map_update_elem(&flows, &key, &copy, BPF_EXIST);
            if (err)
                last_error = err;
        }
    }
    return (new_flows << 16) | failed;
}

SEC("flow_table/query")
__u64 flow_packets(const __u8 *records, __u64 len)
{
    if (len < RECORD_LEN)
        return ~0ULL;
    struct flow_key key;
    read_key(&key, records);
    struct flow_stats *s = bpf_map_lookup_elem(&flows, &key);
    return s ? s->packets : ~0ULL;
}
