/* Ethernet / IPv4 / TCP header parser over a capture: the input is a sequence of records,
 * each a 2-byte little-endian length followed by that many packet bytes. Every packet is
 * validated (lengths, version, IHL, header checksum, data offset), its TCP options walked
 * (MSS, window scale, SACK, timestamps), and its fields folded into a flow hash.
 *
 * `parse` is inlined: rbpf 0.4's JIT does not move r10 on a local call, so a callee's
 * stack frame overlays its caller's, and clang spills the loop's state around the call. */
#include "bench.h"

static inline __attribute__((always_inline)) u64 parse(const u8 *p, u64 n);

BENCH_ENTRY(packet) {
    u64 off = 0, h = 0, packets = 0;
    while (off + 2 <= len) {
        u64 plen = (u64)mem[off] | (u64)mem[off + 1] << 8;
        off += 2;
        if (plen > len - off)
            break;
        h = h * 0x100000001b3ull ^ parse(mem + off, plen);
        off += plen;
        packets++;
    }
    return h ^ packets << 56;
}

static u64 be16(const u8 *p) { return (u64)p[0] << 8 | p[1]; }
static u64 be32(const u8 *p) { return (u64)p[0] << 24 | (u64)p[1] << 16 | (u64)p[2] << 8 | p[3]; }

/* The flow summary of one packet, or a small code saying where it was rejected. */
static inline __attribute__((always_inline)) u64 parse(const u8 *p, u64 n) {
    if (n < 14)
        return 1;
    u64 ethertype = be16(p + 12);
    u64 l3 = 14;
    if (ethertype == 0x8100) {
        if (n < 18)
            return 2;
        ethertype = be16(p + 16);
        l3 = 18;
    }
    if (ethertype != 0x0800)
        return 3 ^ ethertype << 8;
    if (n < l3 + 20)
        return 4;
    const u8 *ip = p + l3;
    if (ip[0] >> 4 != 4)
        return 5;
    u64 ihl = (u64)(ip[0] & 15) * 4;
    if (ihl < 20 || n < l3 + ihl)
        return 6;
    u64 total = be16(ip + 2);
    if (total < ihl || l3 + total > n)
        return 7;
    u64 sum = 0;
    for (u64 i = 0; i < ihl; i += 2)
        sum += be16(ip + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    if (sum != 0xffff)
        return 8;
    u64 proto = ip[9];
    u64 saddr = be32(ip + 12), daddr = be32(ip + 16);
    if (proto != 6)
        return 9 ^ proto << 8 ^ saddr << 16;
    const u8 *tcp = ip + ihl;
    u64 l4len = total - ihl;
    if (l4len < 20)
        return 10;
    u64 sport = be16(tcp), dport = be16(tcp + 2);
    u64 seq = be32(tcp + 4), ack = be32(tcp + 8);
    u64 thl = (u64)(tcp[12] >> 4) * 4;
    u64 flags = tcp[13];
    if (thl < 20 || thl > l4len)
        return 11;
    u64 mss = 0, wscale = 0, sack = 0, tsval = 0;
    u64 i = 20;
    while (i < thl) {
        u64 kind = tcp[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= thl)
            return 12;
        u64 olen = tcp[i + 1];
        if (olen < 2 || i + olen > thl)
            return 13;
        if (kind == 2 && olen == 4)
            mss = be16(tcp + i + 2);
        else if (kind == 3 && olen == 3)
            wscale = tcp[i + 2];
        else if (kind == 5)
            for (u64 b = i + 2; b + 8 <= i + olen; b += 8)
                sack += be32(tcp + b + 4) - be32(tcp + b);
        else if (kind == 8 && olen == 10)
            tsval = be32(tcp + i + 2);
        i += olen;
    }
    u64 payload = l4len - thl;
    u64 flow = (saddr ^ daddr) * 0x9e3779b97f4a7c15ull ^ (sport << 16 | dport);
    return flow ^ seq << 7 ^ ack << 3 ^ flags << 32 ^ mss << 40 ^ wscale << 56 ^ sack ^ tsval << 9 ^
           payload << 48;
}
