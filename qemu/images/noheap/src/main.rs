//! QEMU virt image: conformance through the interpreter and the JIT with no global allocator at all.
#![no_std]
#![no_main]

tessera_firmware::image_main!(tessera_firmware::conformance::run);
