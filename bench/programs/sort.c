/* Heapsort of the input as an array of u32 (512 elements), then a checksum of the sorted
 * array (or all ones if it is not sorted). */
#include "bench.h"

static void sift_down(u32 *a, u64 root, u64 end);

BENCH_ENTRY(sort) {
    u32 *a = (u32 *)mem;
    u64 n = len / 4;
    if (n < 2)
        return 0;
    /* Counts up (a down-counting loop ends on `!= -1`, which rbpf's interpreter gets wrong). */
    for (u64 k = 0; k < n / 2; k++)
        sift_down(a, n / 2 - 1 - k, n);
    for (u64 end = n - 1; end > 0; end--) {
        u32 t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
    u64 s = 0;
    for (u64 i = 0; i < n; i++) {
        if (i > 0 && a[i - 1] > a[i])
            return ~0ull;
        s = s * 1000003 + a[i];
    }
    return s;
}

static NOINLINE void sift_down(u32 *a, u64 root, u64 end) {
    for (;;) {
        u64 child = 2 * root + 1;
        if (child >= end)
            return;
        if (child + 1 < end && a[child] < a[child + 1])
            child++;
        if (a[root] >= a[child])
            return;
        u32 t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}
