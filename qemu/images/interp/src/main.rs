//! QEMU virt image: conformance through the interpreter only, no global allocator: the footprint baseline without the JIT.
#![no_std]
#![no_main]

tessera_firmware::image_main!(tessera_firmware::conformance::run);
