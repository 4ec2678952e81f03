/* CRC-32 (IEEE 802.3, reflected, bit by bit) over the input (a 4 KiB buffer). */
#include "bench.h"

BENCH_ENTRY(crc32) {
    u32 crc = 0xffffffffu;
    for (u64 i = 0; i < len; i++) {
        crc ^= mem[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}
