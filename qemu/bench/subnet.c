// The `-- c` section of bpf_conformance tests/subnet.data (Copyright (c) Big Switch Networks,
// Inc; SPDX-License-Identifier: Apache-2.0), whose `-- asm` and `-- mem` are the eBPF side of
// this bench; `entry` made static so that only the bench entry is exported.
#include <stdint.h>

#define NETMASK 0xffffff00
#define SUBNET 0xc0a80100

struct eth_hdr {
    uint8_t eth_src[6];
    uint8_t eth_dst[6];
    uint16_t eth_type;
};

struct vlan_hdr {
    uint16_t vlan;
    uint16_t eth_type;
};

struct ipv4_hdr {
    uint8_t ver_ihl;
    uint8_t tos;
    uint16_t total_length;
    uint16_t id;
    uint16_t frag;
    uint8_t ttl;
    uint8_t proto;
    uint16_t csum;
    uint32_t src;
    uint32_t dst;
};

static uint64_t entry(void *mem)
{
    struct eth_hdr *eth_hdr = (void *)mem;
    uint16_t eth_type;
    void *next = eth_hdr;

    if (eth_hdr->eth_type == __builtin_bswap16(0x8100)) {
        struct vlan_hdr *vlan_hdr = (void *)(eth_hdr + 1);
        eth_type = vlan_hdr->eth_type;
        next = vlan_hdr + 1;
    } else {
        eth_type = eth_hdr->eth_type;
        next = eth_hdr + 1;
    }

    if (eth_type == __builtin_bswap16(0x0800)) {
        struct ipv4_hdr *ipv4_hdr = next;
        if ((ipv4_hdr->dst & __builtin_bswap32(NETMASK)) == __builtin_bswap32(SUBNET)) {
            return 1;
        }
    }

    return 0;
}

uint64_t subnet(void *mem, uint64_t len)
{
    (void)len;
    return entry(mem);
}
