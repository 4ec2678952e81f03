//! QEMU virt image: conformance through the interpreter and the JIT, with a global allocator (linked_list_allocator).
#![no_std]
#![no_main]

tessera_firmware::image_main!(tessera_firmware::conformance::run);
