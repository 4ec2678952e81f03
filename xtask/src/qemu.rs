//! `cargo xtask qemu` and `cargo xtask size`: the bare-metal images in `qemu/` (their own
//! cargo workspace) built per target, booted under QEMU through `tessera-qemu-runner`
//! (which decodes their defmt output), and measured.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::setup::{AptPackage, ensure_apt};
use crate::util::{cargo, cargo_cmd, command_line, find_in_path};

/// (short name, Rust target) of every machine the images run on.
pub const TARGETS: &[(&str, &str)] = &[("aarch64", "aarch64-unknown-none"), ("riscv64", "riscv64gc-unknown-none-elf")];
/// QEMU binaries the tier needs (from qemu-system-arm and qemu-system-misc).
pub const QEMU_SYSTEMS: &[&str] = &["qemu-system-aarch64", "qemu-system-riscv64"];

/// The images, by package suffix (`tessera-qemu-<name>`), with what their summary lines are.
const CONFORMANCE_IMAGES: &[(&str, &[&str])] = &[
    ("heap", &["heap interpreter", "heap fast-interpreter", "heap jit"]),
    ("noheap", &["no-heap interpreter", "no-heap fast-interpreter", "no-heap jit"]),
    ("interp", &["interp-only interpreter", "interp-only fast-interpreter"]),
];
const BENCH_IMAGE: &str = "bench";
/// Images `size` reports: with a heap, without one, and without the JIT.
const SIZE_IMAGES: &[&str] = &["heap", "noheap", "interp"];
const RUNNER: &str = "tessera-qemu-runner";
/// The host counter of the x86-64 column (`host-tests/src/bin/x86-icount.rs`).
const X86_COUNTER: &str = "x86-icount";
/// Runs of each bench counted on x86-64.
const X86_RUNS: u64 = 20;
/// The x86-64 column counts host instructions with callgrind.
pub const VALGRIND: AptPackage = AptPackage { name: "valgrind", commands: &["valgrind"], files: &[] };
const RUNNER_PROFILE: &str = "runner";

fn qemu_dir(root: &Path) -> PathBuf {
    root.join("qemu")
}

/// Where cargo puts the `qemu/` workspace's builds.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| qemu_dir(root).join("target"))
}

fn qemu_cargo(root: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(qemu_dir(root)).args(args);
    println!("$ (cd qemu && {})", command_line(&cmd));
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{}` failed ({s})", command_line(&cmd))),
        Err(e) => Err(format!("cannot start `{}`: {e}", command_line(&cmd))),
    }
}

fn build_runner(root: &Path) -> Result<PathBuf, String> {
    qemu_cargo(root, &["build", "--profile", RUNNER_PROFILE, "-p", RUNNER])?;
    Ok(target_dir(root).join(RUNNER_PROFILE).join(RUNNER))
}

fn build_image(root: &Path, image: &str, target: &str) -> Result<PathBuf, String> {
    let package = format!("tessera-qemu-{image}");
    // One package per build: cargo unifies features per build, and the no-heap images must
    // not get tessera's `alloc` from the heap image.
    qemu_cargo(root, &["build", "--release", "-p", &package, "--target", target])?;
    Ok(target_dir(root).join(target).join("release").join(package))
}

/// Boots `elf` through the runner, echoing its output; returns the decoded lines.
fn boot(runner: &Path, elf: &Path) -> Result<Vec<String>, String> {
    let mut cmd = Command::new(runner);
    cmd.arg(elf).stdout(Stdio::piped()).stderr(Stdio::inherit()).stdin(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", runner.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading the runner's output: {e}"))?;
        println!("  {line}");
        lines.push(line);
    }
    let status = child.wait().map_err(|e| format!("waiting for the runner: {e}"))?;
    if !status.success() {
        return Err(format!("{} exited with {status}", elf.display()));
    }
    Ok(lines)
}

/// `(passed, failed)` from a line `… <label>: N passed, M failed`.
fn summary(lines: &[String], label: &str) -> Option<(u32, u32)> {
    let prefix = format!("{label}: ");
    lines.iter().filter_map(|l| l.strip_prefix(&prefix)).find_map(|line| {
        let mut words = line.split_whitespace();
        let passed = words.next()?.parse().ok()?;
        let failed = (words.next()? == "passed,").then(|| words.next())??.parse().ok()?;
        (words.next()? == "failed" && words.next().is_none()).then_some((passed, failed))
    })
}

/// The number of programs in the conformance suite the images embed.
fn suite_size(root: &Path) -> Result<u32, String> {
    let dir = std::env::var_os("TESSERA_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/bpf_conformance"))
        .join("tests");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(entries.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "data")).count() as u32)
}

pub fn missing_qemu() -> Vec<&'static str> {
    QEMU_SYSTEMS.iter().copied().filter(|q| find_in_path(q).is_none()).collect()
}

/// One bench line: `bench <arch> <name>: ebpf E interpreter I fast F jit J native N code C`
/// (`fast`: the fast interpreter).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct BenchCounts {
    ebpf: u64,
    interpreter: u64,
    fast: u64,
    jit: u64,
    native: u64,
    code: u64,
}

fn parse_bench(line: &str, arch: &str) -> Option<(String, BenchCounts)> {
    let rest = line.strip_prefix("bench ")?.strip_prefix(arch)?.strip_prefix(' ')?;
    let (name, fields) = rest.split_once(": ")?;
    let words: Vec<&str> = fields.split_whitespace().collect();
    let field = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)?.parse().ok());
    let counts = BenchCounts {
        ebpf: field("ebpf")?,
        interpreter: field("interpreter")?,
        fast: field("fast")?,
        jit: field("jit")?,
        native: field("native")?,
        code: field("code")?,
    };
    Some((name.to_string(), counts))
}

/// The same benches on this x86-64 host, through each engine: instructions per run counted
/// by callgrind in the counter's `measured_runs` (no native C column).
fn x86_counts(root: &Path, names: &[String]) -> Result<BTreeMap<String, BenchCounts>, String> {
    ensure_apt(&[&VALGRIND])?;
    let mut build = cargo_cmd(root, &["build", "--release", "-p", "tessera-host-tests", "--bin", X86_COUNTER]);
    println!("$ {}", command_line(&build));
    if !build.status().is_ok_and(|s| s.success()) {
        return Err(format!("`{}` failed", command_line(&build)));
    }
    let host_target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let counter = host_target.join("release").join(X86_COUNTER);
    let out = host_target.join("x86-icount");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let bench_dir = qemu_dir(root).join("bench");
    let mut counts = BTreeMap::new();
    for name in names {
        let mut c = BenchCounts::default();
        for (mode, field) in [("interpreter", &mut c.interpreter), ("fast", &mut c.fast), ("jit", &mut c.jit)] {
            let mut cmd = Command::new("valgrind");
            // `--smc-check=all`: the code arena is a memfd mapping, which the default check skips.
            cmd.args([
                "--tool=callgrind",
                "--smc-check=all",
                "--callgrind-out-file=/dev/null",
                "--toggle-collect=*measured_runs*",
            ])
            .arg(&counter)
            .arg(&bench_dir)
            .arg(&out)
            .args([name.as_str(), mode, &X86_RUNS.to_string()]);
            let output = cmd.output().map_err(|e| format!("cannot run `{}`: {e}", command_line(&cmd)))?;
            let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            if !output.status.success() {
                return Err(format!("`{}` failed: {}", command_line(&cmd), stderr.trim()));
            }
            let collected = stderr
                .lines()
                .find_map(|l| l.split_once("Collected : ").map(|(_, n)| n.trim().replace(',', "")))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| format!("`{}`: no `Collected : N` line from callgrind", command_line(&cmd)))?;
            *field = collected / X86_RUNS;
            let words: Vec<&str> = stdout.split_whitespace().collect();
            match words.as_slice() {
                ["ebpf", ebpf, "code", code] => {
                    c.ebpf = ebpf.parse().map_err(|_| format!("x86-icount printed {stdout:?}"))?;
                    c.code = c.code.max(code.parse().map_err(|_| format!("x86-icount printed {stdout:?}"))?);
                }
                _ => return Err(format!("x86-icount printed {stdout:?}, not `ebpf E code C`")),
            }
        }
        counts.insert(name.clone(), c);
    }
    Ok(counts)
}

/// The instruction-count table: per ISA and bench, instructions per executed eBPF
/// instruction beyond the cost of a call (the `empty` bench is subtracted); the targets'
/// JIT also as a multiple of the x86-64 JIT's (`jit/x86`), when that row exists.
fn instruction_table(benches: &BTreeMap<String, BTreeMap<String, BenchCounts>>) -> Vec<String> {
    let per_insn = |rows: &BTreeMap<String, BenchCounts>, name: &str| -> Option<[f64; 4]> {
        let (base, c) = (rows.get("empty").copied().unwrap_or_default(), rows.get(name)?);
        let insns = c.ebpf.saturating_sub(base.ebpf).max(1) as f64;
        let per = |v: u64, b: u64| v.saturating_sub(b) as f64 / insns;
        Some([
            per(c.interpreter, base.interpreter),
            per(c.fast, base.fast),
            per(c.jit, base.jit),
            per(c.native, base.native),
        ])
    };
    let x86 = benches.get("x86_64");
    let mut out = vec![
        "instructions per executed eBPF instruction, the `empty` bench's call cost subtracted (aarch64, riscv64: \
         QEMU -icount shift=0; x86_64: callgrind on this host)"
            .to_string(),
        format!(
            "{:<8} {:<8} {:>10} {:>12} {:>12} {:>9} {:>12} {:>10} {:>8} {:>10}",
            "isa",
            "bench",
            "eBPF insns",
            "interpreter",
            "fast interp",
            "jit",
            "native C",
            "jit/native",
            "jit/x86",
            "code bytes"
        ),
    ];
    let or_dash = |v: Option<f64>, suffix: &str| v.map_or("-".to_string(), |v| format!("{v:.2}{suffix}"));
    for (arch, rows) in benches {
        let base = rows.get("empty").copied().unwrap_or_default();
        let native = |v: u64| if base.native == 0 { "-".to_string() } else { v.to_string() };
        out.push(format!(
            "{:<8} {:<8} {:>10} {:>12} {:>12} {:>9} {:>12} {:>10} {:>8} {:>10}   (instructions per call)",
            arch,
            "empty",
            base.ebpf,
            base.interpreter,
            base.fast,
            base.jit,
            native(base.native),
            "",
            "",
            base.code
        ));
        for (name, c) in rows.iter().filter(|(n, _)| n.as_str() != "empty") {
            let Some([interp, fast, jit, native]) = per_insn(rows, name) else { continue };
            let has_native = base.native != 0 || c.native != 0;
            let x86_jit = x86.filter(|_| arch != "x86_64").and_then(|x| per_insn(x, name)).map(|[_, _, j, _]| j);
            out.push(format!(
                "{:<8} {:<8} {:>10} {:>12.2} {:>12.2} {:>9.2} {:>12} {:>10} {:>8} {:>10}",
                arch,
                name,
                c.ebpf,
                interp,
                fast,
                jit,
                or_dash(has_native.then_some(native), ""),
                or_dash(has_native.then(|| jit / native.max(f64::MIN_POSITIVE)), "x"),
                or_dash(x86_jit.map(|x| jit / x.max(f64::MIN_POSITIVE)), "x"),
                c.code
            ));
        }
    }
    out
}

/// `cargo xtask qemu`: every image on every target; true when all ran and passed.
pub fn qemu(root: &Path) -> bool {
    match run_all(root) {
        Ok(()) => true,
        Err(e) => {
            println!("qemu: FAILED: {e}");
            false
        }
    }
}

fn run_all(root: &Path) -> Result<(), String> {
    let missing = missing_qemu();
    if !missing.is_empty() {
        return Err(format!(
            "{} not found (cargo xtask setup installs qemu-system-arm and qemu-system-misc)",
            missing.join(", ")
        ));
    }
    let expected = suite_size(root)?;
    let runner = build_runner(root)?;
    let mut problems = Vec::new();
    let mut summaries = Vec::new();
    let mut benches: BTreeMap<String, BTreeMap<String, BenchCounts>> = BTreeMap::new();
    for (arch, target) in TARGETS {
        for (image, labels) in CONFORMANCE_IMAGES {
            let lines = match build_image(root, image, target).and_then(|elf| boot(&runner, &elf)) {
                Ok(lines) => lines,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            for label in labels.iter() {
                let label = format!("conformance {arch} {label}");
                match summary(&lines, &label) {
                    Some((passed, failed)) => {
                        summaries.push(format!("{label}: {passed} passed, {failed} failed"));
                        if failed != 0 || passed != expected {
                            problems.push(format!("{label}: {passed} passed, {failed} failed (suite: {expected})"));
                        }
                    }
                    None => problems.push(format!("no `{label}: N passed, M failed` line in the output")),
                }
            }
        }
        let lines = match build_image(root, BENCH_IMAGE, target).and_then(|elf| boot(&runner, &elf)) {
            Ok(lines) => lines,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let label = format!("bench {arch}");
        match summary(&lines, &label) {
            Some((passed, failed)) => {
                summaries.push(format!("{label}: {passed} passed, {failed} failed"));
                if failed != 0 || passed == 0 {
                    problems.push(format!("{label}: {passed} passed, {failed} failed"));
                }
            }
            None => problems.push(format!("no `{label}: N passed, M failed` line in the output")),
        }
        benches.entry(arch.to_string()).or_default().extend(lines.iter().filter_map(|l| parse_bench(l, arch)));
    }
    if cfg!(target_arch = "x86_64") {
        let names: Vec<String> = benches.values().next().map(|rows| rows.keys().cloned().collect()).unwrap_or_default();
        match x86_counts(root, &names) {
            Ok(counts) => {
                benches.insert("x86_64".to_string(), counts);
            }
            Err(e) => problems.push(format!("x86-64 counts: {e}")),
        }
    }
    println!();
    println!("==> qemu-system bare metal: summary");
    summaries.iter().for_each(|s| println!("{s}"));
    println!();
    instruction_table(&benches).iter().for_each(|l| println!("{l}"));
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// Sizes of the sections `size` reports, from `llvm-size -A`.
fn section_sizes(elf: &Path) -> Result<BTreeMap<String, u64>, String> {
    let out =
        Command::new("llvm-size").arg("-A").arg(elf).output().map_err(|e| format!("cannot run llvm-size: {e}"))?;
    if !out.status.success() {
        return Err(format!("llvm-size {} failed", elf.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect())
}

/// Symbol sizes by group, from `llvm-nm -S -C`: the stencil tables per ISA and the JIT core.
fn symbol_groups(elf: &Path) -> Result<BTreeMap<&'static str, u64>, String> {
    let out = Command::new("llvm-nm")
        .args(["-S", "-C", "--size-sort"])
        .arg(elf)
        .output()
        .map_err(|e| format!("cannot run llvm-nm: {e}"))?;
    if !out.status.success() {
        return Err(format!("llvm-nm {} failed", elf.display()));
    }
    let mut groups = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut w = line.splitn(4, ' ');
        let (Some(_), Some(size), Some(_), Some(name)) = (w.next(), w.next(), w.next(), w.next()) else { continue };
        let Ok(size) = u64::from_str_radix(size, 16) else { continue };
        let group = if let Some(rest) = name.strip_prefix("tessera_stencils::generated::") {
            match rest.split("::").next() {
                Some("aarch64") => "stencil table aarch64",
                Some("riscv64") => "stencil table riscv64",
                Some("x86_64") => "stencil table x86_64",
                _ => "stencil table (other)",
            }
        } else if [
            "tessera::emitter",
            "tessera::ebpf::jit",
            "tessera::ebpf::lower",
            "tessera::code_buffer",
            "tessera_arch::",
        ]
        .iter()
        .any(|p| name.starts_with(p) || name.starts_with(&format!("<{p}")))
        {
            "jit core"
        } else {
            continue;
        };
        *groups.entry(group).or_default() += size;
    }
    Ok(groups)
}

/// `cargo xtask size`: the footprint table.
pub fn size(root: &Path) -> bool {
    match size_table(root) {
        Ok(lines) => {
            lines.iter().for_each(|l| println!("{l}"));
            true
        }
        Err(e) => {
            println!("size: FAILED: {e}");
            false
        }
    }
}

fn size_table(root: &Path) -> Result<Vec<String>, String> {
    let mut lines = vec![
        String::new(),
        "footprint (bytes; release, LTO; .suite is the embedded conformance data, not code)".into(),
        format!(
            "{:<8} {:<12} {:>8} {:>8} {:>8} {:>6} {:>6} {:>15} {:>13} {:>9}",
            "isa", "image", ".text", ".rodata", ".suite", ".data", ".bss", ".text+.rodata", "stencil table", "jit core"
        ),
    ];
    let mut notes = Vec::new();
    for (arch, target) in TARGETS {
        let mut text_rodata = BTreeMap::new();
        for image in SIZE_IMAGES {
            let elf = build_image(root, image, target)?;
            let sections = section_sizes(&elf)?;
            let groups = symbol_groups(&elf)?;
            let get = |s: &str| sections.get(s).copied().unwrap_or(0);
            let code = get(".text") + get(".rodata");
            text_rodata.insert(*image, code);
            let tables: Vec<(&str, u64)> =
                groups.iter().filter(|(g, _)| g.starts_with("stencil table")).map(|(g, s)| (*g, *s)).collect();
            let table_bytes: u64 = tables.iter().map(|(_, s)| s).sum();
            lines.push(format!(
                "{:<8} {:<12} {:>8} {:>8} {:>8} {:>6} {:>6} {:>15} {:>13} {:>9}",
                arch,
                image,
                get(".text"),
                get(".rodata"),
                get(".suite"),
                get(".data"),
                get(".bss"),
                code,
                table_bytes,
                groups.get("jit core").copied().unwrap_or(0)
            ));
            if tables.len() > 1 {
                notes.push(format!("{arch} {image}: more than one ISA's stencil table is linked: {tables:?}"));
            }
            // The heap image must have one (or the check below proves nothing); the others none.
            if has_allocator(&elf)? != (*image == "heap") {
                return Err(format!("{}: global allocator expected only in the heap image", elf.display()));
            }
        }
        if let (Some(jit), Some(interp)) = (text_rodata.get("noheap"), text_rodata.get("interp")) {
            notes.push(format!(
                "{arch}: the JIT costs {} bytes of .text+.rodata (noheap image {jit} - interp-only image {interp}); budget 262144 for the JIT image: {}",
                jit.saturating_sub(*interp),
                if *jit <= 256 * 1024 { "met" } else { "EXCEEDED" }
            ));
        }
    }
    lines.push(String::new());
    lines.extend(notes);
    lines.push("jit core: emitter, lowering, code buffer, JIT runtime and tessera-arch patchers (symbols; inlined code counts where it lands)".into());
    Ok(lines)
}

/// Whether the image defines the global allocator entry points.
fn has_allocator(elf: &Path) -> Result<bool, String> {
    let out = Command::new("llvm-nm").arg(elf).output().map_err(|e| format!("cannot run llvm-nm: {e}"))?;
    // Mangled as `…___rustc12___rust_alloc` (v0) or plain `__rust_alloc`.
    Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.contains("__rust_alloc")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_are_parsed_exactly() {
        let lines = vec![
            "INFO other".to_string(),
            "conformance aarch64 heap jit: 313 passed, 0 failed".to_string(),
            "conformance aarch64 heap interpreter: 312 passed, 1 failed".to_string(),
        ];
        assert_eq!(summary(&lines, "conformance aarch64 heap jit"), Some((313, 0)));
        assert_eq!(summary(&lines, "conformance aarch64 heap interpreter"), Some((312, 1)));
        assert_eq!(summary(&lines, "conformance riscv64 heap jit"), None);
        assert_eq!(summary(&["x: 3 passed".to_string()], "x"), None);
        // Other lines with the same prefix are skipped.
        let bench = ["bench riscv64: counter exact".to_string(), "bench riscv64: 4 passed, 0 failed".to_string()];
        assert_eq!(summary(&bench, "bench riscv64"), Some((4, 0)));
    }

    #[test]
    fn bench_lines_and_table() {
        let line = "bench riscv64 prime: ebpf 655 interpreter 39275 fast 20000 jit 4787 native 270 code 264";
        let (name, c) = parse_bench(line, "riscv64").unwrap();
        assert_eq!(name, "prime");
        assert_eq!(c, BenchCounts { ebpf: 655, interpreter: 39275, fast: 20000, jit: 4787, native: 270, code: 264 });
        assert_eq!(parse_bench(line, "aarch64"), None);
        let empty = BenchCounts { ebpf: 2, interpreter: 2458, fast: 2410, jit: 2240, native: 6, code: 36 };
        // x86-64 rows: no native C; the JIT at (2106 - 800) / 653 = 2.00 per instruction.
        let x86_empty = BenchCounts { ebpf: 2, interpreter: 900, fast: 850, jit: 800, native: 0, code: 57 };
        let x86_prime = BenchCounts { ebpf: 655, interpreter: 30000, fast: 15000, jit: 2106, native: 0, code: 200 };
        let rows = BTreeMap::from([
            ("riscv64".to_string(), BTreeMap::from([("empty".to_string(), empty), (name.clone(), c)])),
            ("x86_64".to_string(), BTreeMap::from([("empty".to_string(), x86_empty), (name, x86_prime)])),
        ]);
        let table = instruction_table(&rows);
        // (39275 - 2458) / 653 = 56.38; (20000 - 2410) / 653 = 26.94; (4787 - 2240) / 653 =
        // 3.90; (270 - 6) / 653 = 0.40.
        let prime = table.iter().find(|l| l.contains("prime")).unwrap();
        assert!(
            prime.contains("56.38") && prime.contains("26.94") && prime.contains("3.90") && prime.contains("0.40"),
            "{prime}"
        );
        // jit/native 3.90 / 0.40 (unrounded: 9.65x); jit/x86 3.90 / 2.00 = 1.95x.
        assert!(prime.contains("9.65x") && prime.contains("1.95x"), "{prime}");
        let x86 = table.iter().find(|l| l.starts_with("x86_64") && l.contains("prime")).unwrap();
        let fields: Vec<&str> = x86.split_whitespace().collect();
        assert_eq!(fields, ["x86_64", "prime", "655", "44.56", "21.67", "2.00", "-", "-", "-", "200"]);
    }
}
