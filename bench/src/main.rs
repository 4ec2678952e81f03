//! `cargo xtask bench`: the side-by-side benchmark suite. See the crate documentation and
//! README.md ("Benchmarks").
//!
//! Usage: tessera-bench [--quick] [--out DIR]
//!   --quick   few repetitions (a smoke run; figures are not meaningful)
//!   --out DIR where results.csv and results.svg go (default: <workspace>/target/bench)

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use tessera_bench::harness::{self, Settings, Stats};
use tessera_bench::tessera_api::{self, HelperSet, Isa};
use tessera_bench::{programs, report};

fn main() -> ExitCode {
    let mut settings = Settings::FULL;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let mut out_dir = workspace.join("target").join("bench");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => settings = Settings::QUICK,
            "--out" => match args.next() {
                Some(dir) => out_dir = PathBuf::from(dir),
                None => return usage("--out needs a directory"),
            },
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let started = Instant::now();
    println!(
        "tessera benchmark suite: host {}, {} warm-up + {} timed rounds per program for run time, {} for compile time",
        std::env::consts::ARCH,
        settings.warmup_rounds,
        settings.run_rounds,
        settings.compile_rounds
    );
    println!("wall-clock medians on a shared machine: read the ratios, not the third digit.\n");

    stencil_tables();
    let suite = match programs::suite() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(big) = suite.iter().max_by_key(|p| p.slots()) {
        cross_emission(&big.name, &big.bytecode, settings.compile_rounds);
    }
    conformance_code_size();

    println!("\nsuite:");
    let mut reports = Vec::new();
    for program in &suite {
        let t = Instant::now();
        match harness::measure(program, &settings) {
            Ok(r) => {
                println!("  {:8} {:6} slots  {}  ({:.1} s)", r.name, r.slots, r.about, t.elapsed().as_secs_f64());
                reports.push(r);
            }
            Err(mismatch) => {
                eprintln!("error: results differ: {mismatch}");
                return ExitCode::FAILURE;
            }
        }
    }

    println!("{}", report::render_tables(&reports));
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    let csv = out_dir.join("results.csv");
    let svg = out_dir.join("results.svg");
    if let Err(e) = report::write_csv(&csv, &reports) {
        eprintln!("error: cannot write {}: {e}", csv.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = report::write_svg(&svg, &reports) {
        eprintln!("error: cannot write {}: {e}", svg.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {} and {} ({:.0} s in all)\n", csv.display(), svg.display(), started.elapsed().as_secs_f64());
    print!("{}", report::render_summary(&reports));
    ExitCode::SUCCESS
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}\nusage: tessera-bench [--quick] [--out DIR]");
    ExitCode::from(2)
}

fn stencil_tables() {
    println!("stencil tables:");
    for isa in Isa::ALL {
        let t = tessera_api::table_size(isa);
        println!(
            "  {isa:8} {} stencils, {} code bytes, {} hole records, table total {} bytes",
            t.stencils, t.code_bytes, t.holes, t.total_bytes
        );
    }
}

/// tessera's emission speed and code size per ISA, by cross-emission into a reused buffer
/// (validation done once, outside the measurement).
fn cross_emission(name: &str, bytecode: &[u8], rounds: usize) {
    let mut program = match tessera_api::emittable(bytecode, HelperSet::Bench) {
        Ok(p) => p,
        Err(e) => {
            println!("\ncross-emission: skipped ({name} does not validate: {e})");
            return;
        }
    };
    let slots = program.slots();
    println!("\ncross-emission of {name} ({slots} slots) into a reused buffer, per ISA (median of {rounds}):");
    let mut memory = vec![0u8; 32 << 20];
    for isa in Isa::ALL {
        let mut len = 0;
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            match program.emit(isa, &mut memory) {
                Ok(l) => len = l,
                Err(e) => {
                    println!("  {isa:8} failed: {e}");
                    break;
                }
            }
            samples.push(t.elapsed().as_nanos() as f64);
        }
        if let Some(s) = Stats::of(samples) {
            println!(
                "  {isa:8} {:6.1} ns per instruction (±{:.0}%), {:5.1} bytes per instruction",
                s.median / slots as f64,
                s.iqr_percent() / 2.0,
                len as f64 / slots as f64
            );
        }
    }
}

/// Generated code size over the bpf_conformance programs, per ISA.
fn conformance_code_size() {
    let dir = tessera_host_tests::conformance::tests_dir();
    if !dir.is_dir() {
        println!("\ngenerated code over the conformance programs: skipped ({} not found)", dir.display());
        return;
    }
    let cases = tessera_host_tests::conformance::load_dir(&dir);
    let programs: Vec<Vec<u8>> =
        cases.iter().filter_map(|c| tessera_host_tests::conformance::program_bytes(c).ok()).collect();
    if programs.is_empty() {
        println!("\ngenerated code over the conformance programs: skipped (none found in {})", dir.display());
        return;
    }
    println!("\ngenerated code over the {} conformance programs (entry stencil included):", programs.len());
    let mut memory = vec![0u8; 4 << 20];
    for isa in Isa::ALL {
        let (mut slots, mut bytes) = (0usize, 0usize);
        for bytecode in &programs {
            // Programs the validator rejects (the suite's error cases) have no code.
            let Ok(mut program) = tessera_api::emittable(bytecode, HelperSet::Conformance) else { continue };
            if let Ok(len) = program.emit(isa, &mut memory) {
                bytes += len;
                slots += program.slots();
            }
        }
        println!(
            "  {isa:8} {:5.1} bytes per eBPF instruction ({bytes} bytes for {slots} slots)",
            bytes as f64 / slots as f64
        );
    }
}
