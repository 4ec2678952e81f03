//! Puts the linker script for the target's architecture on the link path (the images link
//! with `-Tlink.x`, see `qemu/.cargo/config.toml`), and assembles the bpf_conformance suite
//! on the host into `suite.bin`, which the images embed (format in `src/suite.rs`).

use std::path::PathBuf;

use tessera_host_tests::conformance::{self, TestCase};

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let script = manifest.join("link").join(format!("{arch}.x"));
    if script.exists() {
        std::fs::copy(&script, out.join("link.x")).expect("copy the linker script");
        println!("cargo:rustc-link-search={}", out.display());
    }
    println!("cargo:rerun-if-changed=link");

    let dir = conformance::tests_dir();
    println!("cargo:rerun-if-env-changed=TESSERA_CONFORMANCE_DIR");
    println!("cargo:rerun-if-changed={}", dir.display());
    let cases = conformance::load_dir(&dir);
    std::fs::write(out.join("suite.bin"), encode(&cases)).expect("write suite.bin");
}

/// Kind byte: what the file expects, and whether the host assembler rejected the program.
const EXPECT_RESULT: u8 = 0;
const EXPECT_ERROR: u8 = 1;
const EXPECT_NOTHING: u8 = 2;
const ASSEMBLY_FAILED: u8 = 0x80;

fn encode(cases: &[TestCase]) -> Vec<u8> {
    let mut blob = Vec::new();
    blob.extend_from_slice(b"TSU1");
    blob.extend_from_slice(&(cases.len() as u32).to_le_bytes());
    for case in cases {
        let program = conformance::program_bytes(case);
        if let Err(e) = &program {
            println!("cargo:warning=conformance case {} does not assemble: {e}", case.name);
        }
        // The exact outcome the host tests expect: a result, or the typed error, carried as
        // its `Debug` text so the target compares errors exactly.
        let (mut kind, result, error) = match conformance::expected_outcome(case) {
            Ok(Ok(r0)) => (EXPECT_RESULT, r0, String::new()),
            Ok(Err(e)) => (EXPECT_ERROR, 0, format!("{e:?}")),
            Err(_) => (EXPECT_NOTHING, 0, String::new()),
        };
        if program.is_err() {
            kind |= ASSEMBLY_FAILED;
        }
        let name = case.name.as_bytes();
        blob.push(u8::try_from(name.len()).expect("name under 256 bytes"));
        blob.extend_from_slice(name);
        blob.push(kind);
        blob.extend_from_slice(&result.to_le_bytes());
        blob.push(u8::try_from(error.len()).expect("error text under 256 bytes"));
        blob.extend_from_slice(error.as_bytes());
        blob.extend_from_slice(&u16::try_from(case.mem.len()).expect("memory under 64 KiB").to_le_bytes());
        blob.extend_from_slice(&case.mem);
        let program = program.unwrap_or_default();
        blob.extend_from_slice(&(program.len() as u32).to_le_bytes());
        blob.extend_from_slice(&program);
    }
    blob
}
