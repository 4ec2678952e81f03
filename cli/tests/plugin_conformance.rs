//! The bpf_conformance suite through `tessera-bpf-plugin`, driven from outside as the suite's
//! own runner does: program hex on stdin, memory hex as the argument, r0 in hex on stdout.
//! Every case must end exactly as [`conformance::expected_outcome`] says: `-- result` printed,
//! or exit status 1 with our typed error on stderr.
//!
//! The plugin built for the host by this very `cargo test` (`CARGO_BIN_EXE_…`) always runs,
//! in `--interp`, `--fast` and `--jit` mode, so the suite cannot pass by skipping everything. The
//! plugins for the other Linux targets (x86_64, aarch64, riscv64: whichever are foreign) run
//! through qemu-user when built, from `<target dir>/<triple>/debug/tessera-bpf-plugin`
//! (the target dir is `$CARGO_TARGET_DIR`, the one this test binary lives in, or
//! `<workspace>/target`):
//!
//! ```text
//! cargo build -p tessera-cli --target aarch64-unknown-linux-gnu
//! cargo build -p tessera-cli --target riscv64gc-unknown-linux-gnu
//! ```
//!
//! A foreign plugin that is missing (or whose qemu is missing) is reported as skipped and
//! never counted as passed; `cargo xtask test` builds them and sets
//! `TESSERA_REQUIRE_PLUGINS=1`, which makes such a skip a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tessera::ebpf::Error;
use tessera_host_tests::conformance::{self, TestCase};

const PLUGIN: &str = "tessera-bpf-plugin";
/// The plugin cargo built for the host along with this test.
const HOST_PLUGIN: &str = env!("CARGO_BIN_EXE_tessera-bpf-plugin");
const TIMEOUT: Duration = Duration::from_secs(60);

/// A target triple, and how to run its binaries on this machine (none: natively).
struct Target {
    triple: &'static str,
    arch: &'static str,
    qemu: &'static str,
    sysroot: &'static str,
}

const TARGETS: [Target; 3] = [
    Target {
        triple: "x86_64-unknown-linux-gnu",
        arch: "x86_64",
        qemu: "qemu-x86_64",
        sysroot: "/usr/x86_64-linux-gnu",
    },
    Target {
        triple: "aarch64-unknown-linux-gnu",
        arch: "aarch64",
        qemu: "qemu-aarch64",
        sysroot: "/usr/aarch64-linux-gnu",
    },
    Target {
        triple: "riscv64gc-unknown-linux-gnu",
        arch: "riscv64",
        qemu: "qemu-riscv64",
        sysroot: "/usr/riscv64-linux-gnu",
    },
];

fn is_native(t: &Target) -> bool {
    t.arch == std::env::consts::ARCH
}

/// Target directories to look in, most specific first.
fn target_dirs() -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        dirs.push(if d.is_absolute() { d } else { workspace.join(d) });
    }
    // This test binary is <target dir>[/<triple>]/<profile>/deps/<name>.
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent).and_then(Path::parent)
    {
        let is_triple = TARGETS.iter().any(|t| profile_dir.ends_with(t.triple));
        let dir = if is_triple { profile_dir.parent() } else { Some(profile_dir) };
        dirs.extend(dir.map(Path::to_path_buf));
    }
    dirs.push(workspace.join("target"));
    dirs
}

/// The plugin built for `t`, if any: for the host, the one built with this test.
fn find_plugin(t: &Target) -> Option<PathBuf> {
    if is_native(t) {
        return Some(PathBuf::from(HOST_PLUGIN));
    }
    target_dirs().into_iter().map(|dir| dir.join(t.triple).join("debug").join(PLUGIN)).find(|p| p.is_file())
}

/// The command that runs `plugin` (through qemu-user for a foreign target).
fn command(t: &Target, plugin: &Path) -> Command {
    if is_native(t) {
        Command::new(plugin)
    } else {
        let mut c = Command::new(t.qemu);
        c.arg("-L").arg(t.sysroot).arg(plugin);
        c
    }
}

/// Whether `t`'s binaries can be run here (natively, or its qemu starts).
fn runnable(t: &Target) -> bool {
    is_native(t)
        || Command::new(t.qemu)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Runs one case; `Err` describes a failure.
fn run_case(
    t: &Target,
    plugin: &Path,
    mode: &str,
    (case, program, expected): &(TestCase, Vec<u8>, Result<u64, Error>),
) -> Result<(), String> {
    let mut child = command(t, plugin)
        .arg(mode)
        .arg(hex(&case.mem))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // An early exit (e.g. a rejected argument) closes the pipe; the status tells why.
        let _ = stdin.write_all(hex(program).as_bytes());
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("output: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (want_stdout, want_stderr, want_code) = match expected {
        Ok(r0) => (format!("{r0:x}\n"), String::new(), 0),
        Err(e) => (String::new(), format!("error: {e}\n"), 1),
    };
    if out.status.code() == Some(want_code) && stdout == want_stdout && stderr == want_stderr {
        Ok(())
    } else {
        Err(format!(
            "expected {} (stdout {want_stdout:?}, stderr {want_stderr:?}), got {} with stdout {stdout:?}, stderr {stderr:?}",
            conformance::describe(expected),
            out.status
        ))
    }
}

/// Space-separated hex bytes, as the suite's runner sends them.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Runs every case on `t` in `mode`, in parallel; returns (passed, failures).
fn run_all(
    t: &Target,
    plugin: &Path,
    mode: &str,
    cases: &[(TestCase, Vec<u8>, Result<u64, Error>)],
) -> (usize, Vec<String>) {
    let next = AtomicUsize::new(0);
    let passed = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(4, |n| n.get()).min(32);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match run_case(t, plugin, mode, case) {
                        Ok(()) => {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.lock().unwrap().push(format!("{}: {e}", case.0.name)),
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    (passed.into_inner(), failures)
}

#[test]
fn plugin_conformance() {
    let dir = conformance::tests_dir();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for case in conformance::load_dir(&dir) {
        match (conformance::expected_outcome(&case), conformance::program_bytes(&case)) {
            (Ok(expected), Ok(bytes)) => cases.push((case, bytes, expected)),
            (Err(e), _) => problems.push(format!("{}: {e}", case.name)),
            (_, Err(e)) => problems.push(e),
        }
    }
    assert_eq!(cases.len(), 313, "expected the full suite in {}", dir.display());
    assert!(problems.is_empty(), "cases without a runnable expectation: {problems:#?}");

    let require = std::env::var_os("TESSERA_REQUIRE_PLUGINS").is_some_and(|v| v != "0" && !v.is_empty());
    let mut failed = Vec::new();
    let mut host_runs = 0;
    for t in &TARGETS {
        let Some(plugin) = find_plugin(t) else {
            println!("plugin {}: skipped (not built)", t.triple);
            if require {
                failed.push(format!("plugin {}: not built", t.triple));
            }
            continue;
        };
        if !runnable(t) {
            println!("plugin {}: skipped ({} not available)", t.triple, t.qemu);
            if require {
                failed.push(format!("plugin {}: {} not available", t.triple, t.qemu));
            }
            continue;
        }
        for mode in ["--interp", "--fast", "--jit"] {
            let (passed, failures) = run_all(t, &plugin, mode, &cases);
            let mode_name = mode.trim_start_matches('-');
            println!("\nplugin {} ({}) {mode_name}:", t.triple, plugin.display());
            println!("plugin {} {mode_name}: {passed} passed, {} failed", t.triple, failures.len());
            assert_eq!(passed + failures.len(), cases.len(), "every case is counted once");
            for f in &failures {
                println!("  {f}");
                failed.push(format!("{} {mode_name}: {f}", t.triple));
            }
            if is_native(t) {
                host_runs += 1;
            }
        }
    }
    assert_eq!(host_runs, 3, "the host plugin must run in every mode");
    assert!(failed.is_empty(), "{} failures:\n{}", failed.len(), failed.join("\n"));
}
