/* Fibonacci with local calls: recursive fib(n) for n = byte & 7 of every input byte (the
 * recursion stays within the call-depth limit of 8 that tessera and rbpf share). */
#include "bench.h"

static u64 fib(u64 n);

BENCH_ENTRY(fib) {
    u64 s = 0;
    for (u64 i = 0; i < len; i++)
        s = s * 31 + fib(mem[i] & 7);
    return s;
}

static NOINLINE u64 fib(u64 n) {
    if (n < 2)
        return n;
    return fib(n - 1) + fib(n - 2);
}
