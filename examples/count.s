# count.s: sums the integers 1..=1000 in a loop and returns the total (500500).
#
# Run it:  cargo run --release -p tessera-cli -- run examples/count.s --jit
#
# Syntax is that of the bpf_conformance suite: `%rN` registers, `#` comments, `name:` labels.
# r0 is the return value; the loop's back edge (`jle ..., loop`) costs one unit of fuel
# per iteration, so `--fuel 100` stops it with an error.

    mov %r0, 0              # r0 = running total
    mov %r1, 1              # r1 = counter (r1 held the context address; it is not needed)
loop:
    add %r0, %r1            # total += counter
    add %r1, 1              # counter += 1
    jle %r1, 1000, loop     # repeat while counter <= 1000 (unsigned compare)

    # Keep a copy on the stack and read it back, to show a store and a load through r10.
    stxdw [%r10-8], %r0
    ldxdw %r0, [%r10-8]
    exit                    # r0 = 1 + 2 + ... + 1000 = 500500
