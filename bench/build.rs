//! Compiles the benchmark programs natively with clang -O2: the physical baseline the
//! engines are compared with. (Their eBPF objects are committed; `cargo xtask bench
//! --build-programs` rebuilds those.)

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("programs");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut sources: Vec<_> = std::fs::read_dir(&dir)
        .expect("bench/programs exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    for s in sources.iter().chain([&dir.join("bench.h")]) {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    if Command::new("clang").arg("--version").output().is_err() {
        panic!(
            "clang not found: the native baseline of the benchmark programs is built with clang \
             (run `cargo xtask setup`, or `apt-get install clang`)"
        );
    }
    cc::Build::new()
        .compiler("clang")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .include(&dir)
        .files(&sources)
        .compile("bench_native");
}
