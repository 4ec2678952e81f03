//! Builds the benches in `qemu/bench/` (see its README): each `NAME.c` compiled natively
//! for the target with clang -O2 into a static library linked into the image, and its eBPF
//! side (a `.data` file, or the C compiled with `clang -target bpf`) embedded as bytes, in a
//! generated `benches.rs` table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_host_tests::conformance;
use tessera_host_tests::qemu_bench::{self, QemuBench};

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (clang and llvm are needed)"));
    assert!(status.success(), "{cmd:?} failed ({status})");
}

fn clang_target_args(arch: &str) -> &'static [&'static str] {
    match arch {
        "aarch64" => &["--target=aarch64-none-elf"],
        "riscv64" => &["--target=riscv64-unknown-elf", "-march=rv64gc", "-mabi=lp64d", "-mcmodel=medany"],
        other => panic!("no native benches for {other}"),
    }
}

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let dir = manifest.join("../../bench");
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-env-changed=TESSERA_CONFORMANCE_DIR");

    let sources = qemu_bench::sources(&dir).unwrap_or_else(|e| panic!("{e}"));

    let mut benches: Vec<QemuBench> = Vec::new();
    let mut objects = Vec::new();
    for c_file in &sources {
        println!("cargo:rerun-if-changed={}", c_file.display());
        let name = c_file.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file name").to_string();
        let object = out.join(format!("{name}.o"));
        run(Command::new("clang")
            .args(clang_target_args(&arch))
            .args(["-O2", "-ffreestanding", "-ffunction-sections", "-c"])
            .arg(c_file)
            .arg("-o")
            .arg(&object));
        objects.push(object);
        for input in [
            dir.join(format!("{name}.data")),
            conformance::tests_dir().join(format!("{name}.data")),
            dir.join(format!("{name}.mem")),
        ] {
            if input.exists() {
                println!("cargo:rerun-if-changed={}", input.display());
            }
        }
        benches.push(qemu_bench::ebpf_side(&dir, &name, c_file, &out).unwrap_or_else(|e| panic!("{e}")));
    }
    let library = out.join("libtessera_bench_native.a");
    let _ = std::fs::remove_file(&library);
    run(Command::new("llvm-ar").arg("crs").arg(&library).args(&objects));
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=tessera_bench_native");

    let mut code = String::from("mod native {\n    unsafe extern \"C\" {\n");
    for b in &benches {
        writeln!(code, "        pub fn {}(mem: *mut u8, len: u64) -> u64;", b.name).unwrap();
    }
    code.push_str("    }\n}\n\n");
    writeln!(code, "pub static BENCHES: [Bench; {}] = [", benches.len()).unwrap();
    for b in &benches {
        writeln!(
            code,
            "    Bench {{ name: {:?}, program: &{:?}, memory: &{:?}, expect: {:?}, native: native::{} }},",
            b.name, b.program, b.memory, b.expect, b.name
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("benches.rs"), code).expect("write benches.rs");
}
