/* A packet filter over raw Ethernet frames: r1 = the frame's bytes, r2 = its length.
 *
 * Returns 1 (pass) for well-formed IPv4/UDP datagrams to an allowed port that are not
 * fragments and whose IPv4 header checksum is right, 0 (drop) for everything else.
 * Ports are read big-endian byte by byte, so the program needs no byte-swap instruction
 * and is the same on every -mcpu.
 */
#include "bpf.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define IPPROTO_UDP 17
#define UDP_HLEN 8

/* Allowed destination ports (DNS, NTP, syslog, a test port): .rodata. */
static const __u16 allowed_ports[] = {53, 123, 514, 9999};

static __always_inline __u16 load_be16(const __u8 *p)
{
    return (__u16)((p[0] << 8) | p[1]);
}

/* One's-complement sum over the IPv4 header (ihl 32-bit words); 0 when it is right. */
static __noinline __u32 ipv4_checksum(const __u8 *ip, __u32 ihl)
{
    __u32 sum = 0;
    for (__u32 i = 0; i < ihl * 2; i++)
        sum += load_be16(ip + 2 * i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (~sum) & 0xffff;
}

static __noinline int port_allowed(__u16 port)
{
    for (__u32 i = 0; i < sizeof(allowed_ports) / sizeof(allowed_ports[0]); i++)
        if (allowed_ports[i] == port)
            return 1;
    return 0;
}

SEC("socket")
int udp_filter(const __u8 *pkt, __u64 len)
{
    if (len < ETH_HLEN + 20)
        return 0;
    if (load_be16(pkt + 12) != ETH_P_IP)
        return 0;
    const __u8 *ip = pkt + ETH_HLEN;
    __u32 version = ip[0] >> 4, ihl = ip[0] & 0xf;
    if (version != 4 || ihl < 5)
        return 0;
    __u64 ip_len = ihl * 4;
    if (len < ETH_HLEN + ip_len + UDP_HLEN)
        return 0;
    __u16 total_len = load_be16(ip + 2);
    if (total_len < ip_len + UDP_HLEN || ETH_HLEN + (__u64)total_len > len)
        return 0;
    /* More-fragments flag or a fragment offset: not a whole datagram. */
    if (load_be16(ip + 6) & 0x3fff)
        return 0;
    if (ip[9] != IPPROTO_UDP)
        return 0;
    if (ipv4_checksum(ip, ihl) != 0)
        return 0;
    const __u8 *udp = ip + ip_len;
    __u16 udp_len = load_be16(udp + 4);
    if (udp_len < UDP_HLEN || udp_len > total_len - ip_len)
        return 0;
    return port_allowed(load_be16(udp + 2));
}
