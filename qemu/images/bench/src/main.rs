#![no_std]
#![no_main]

tessera_firmware::image_main!(tessera_firmware::conformance::run);
