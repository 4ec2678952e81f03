//! Runs the built `tessera` and `tessera-bpf-plugin` binaries as a user would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");
const PLUGIN: &str = env!("CARGO_BIN_EXE_tessera-bpf-plugin");

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/count.s")
}

fn tessera(args: &[&str]) -> Output {
    Command::new(TESSERA).args(args).output().expect("spawn tessera")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tessera-cli-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn example_runs_in_every_mode() {
    let file = example();
    let file = file.to_str().unwrap();
    let jit = tessera(&["run", file, "--jit"]);
    let interp = tessera(&["run", file, "--interp"]);
    let fast = tessera(&["run", file, "--fast"]);
    let default = tessera(&["run", file]);
    for o in [&jit, &interp, &fast, &default] {
        assert!(o.status.success(), "{}", stderr(o));
    }
    assert_eq!(stdout(&jit), "r0 = 500500 (0x7a314)\n");
    assert_eq!(stdout(&interp), stdout(&jit));
    assert_eq!(stdout(&fast), stdout(&jit));
    assert_eq!(stdout(&default), stdout(&jit));
}

#[test]
fn fuel_stops_the_example() {
    let file = example();
    for mode in ["--jit", "--interp", "--fast"] {
        let o = tessera(&["run", file.to_str().unwrap(), mode, "--fuel", "100"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("out of fuel"), "{}", stderr(&o));
    }
}

#[test]
fn memory_is_passed_in_r1_and_r2() {
    let dir = TempDir::new("mem");
    let src = dir.path("mem.s");
    std::fs::write(&src, "ldxb %r0, [%r1+2]\nlsh %r0, 8\nor %r0, %r2\nexit\n").unwrap();
    for mode in ["--jit", "--interp", "--fast"] {
        let o = tessera(&["run", &src, "--mem-hex", "aa bb 11 cc", mode]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "r0 = 4356 (0x1104)\n");
    }
    let o = tessera(&["run", &src, "--mem-hex", "aabb11cc"]);
    assert_eq!(stdout(&o), "r0 = 4356 (0x1104)\n");
    let o = tessera(&["run", &src, "--mem-hex", "aa bb"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("out of bounds"), "{}", stderr(&o));
}

#[test]
fn asm_disasm_asm_round_trip() {
    let dir = TempDir::new("roundtrip");
    let (bin1, text, bin2) = (dir.path("a.bin"), dir.path("a.s"), dir.path("b.bin"));
    let o = tessera(&["asm", example().to_str().unwrap(), "-o", &bin1]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tessera(&["disasm", &bin1]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&text, &o.stdout).unwrap();
    let o = tessera(&["asm", &text, "-o", &bin2]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (std::fs::read(&bin1).unwrap(), std::fs::read(&bin2).unwrap());
    assert_eq!(a.len(), 8 * 8);
    assert_eq!(a, b);
    // The bytecode runs too, and disasm reads assembly text directly.
    assert_eq!(stdout(&tessera(&["run", &bin1])), "r0 = 500500 (0x7a314)\n");
    assert_eq!(
        stdout(&tessera(&["disasm", example().to_str().unwrap()])),
        String::from_utf8_lossy(&std::fs::read(&text).unwrap())
    );
}

#[test]
fn lddw_and_raw_slots_round_trip() {
    let dir = TempDir::new("lddw");
    let (src, bin, text) = (dir.path("l.s"), dir.path("l.bin"), dir.path("l2.s"));
    std::fs::write(&src, "lddw %r0, 0x1122334455667788\n.raw 0x00000000000000ff\nexit\n").unwrap();
    assert!(tessera(&["asm", &src, "-o", &bin]).status.success());
    let o = tessera(&["disasm", &bin]);
    std::fs::write(&text, &o.stdout).unwrap();
    let again = dir.path("l2.bin");
    assert!(tessera(&["asm", &text, "-o", &again]).status.success());
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn assembler_errors_name_the_line() {
    let dir = TempDir::new("bad");
    let src = dir.path("bad.s");
    std::fs::write(&src, "mov %r0, 1\n# comment\nfrobnicate %r0\nexit\n").unwrap();
    for args in [vec!["run", &src], vec!["asm", &src, "-o", &dir.path("out.bin")], vec!["disasm", &src]] {
        let o = tessera(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains("line 3"), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    }
}

#[test]
fn runtime_and_validation_errors_exit_1() {
    let dir = TempDir::new("errors");
    let src = dir.path("e.s");
    std::fs::write(&src, "call 7\nexit\n").unwrap();
    let o = tessera(&["run", &src]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown helper id 7"), "{}", stderr(&o));
    let o = tessera(&["run", &dir.path("missing.s")]);
    assert_eq!(o.status.code(), Some(1));
    let bin = dir.path("odd.bin");
    std::fs::write(&bin, [0x95u8, 0, 0]).unwrap();
    let o = tessera(&["run", &bin]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let file = example();
    let file = file.to_str().unwrap();
    for args in [
        vec![],
        vec!["frob"],
        vec!["run"],
        vec!["run", file, "--bogus"],
        vec!["run", file, "--fuel"],
        vec!["run", file, "--fuel", "lots"],
        vec!["run", file, "--mem-hex", "xyz"],
        vec!["run", file, file],
        vec!["asm", file],
        vec!["dump", file, "--isa", "mips"],
        vec!["help", "frob"],
    ] {
        let o = tessera(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: "), "{args:?}");
    }
}

#[test]
fn help_texts() {
    for (args, needle) in [
        (vec!["--help"], "commands:"),
        (vec!["help"], "commands:"),
        (vec!["help", "run"], "--mem-hex"),
        (vec!["run", "--help"], "id 5"),
        (vec!["asm", "--help"], "-o OUT"),
        (vec!["disasm", "-h"], "usage: tessera disasm"),
        (vec!["dump", "--help"], "--isa"),
    ] {
        let o = tessera(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains(needle), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn dump_every_isa() {
    let file = example();
    for isa in ["x86_64", "aarch64", "riscv64"] {
        let o = tessera(&["dump", file.to_str().unwrap(), "--isa", isa]);
        assert!(o.status.success(), "{isa}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(&format!("; {isa} code at 0x10000000")), "{text}");
        assert!(text.contains("jle %r1, 1000, -3"), "{text}");
        assert!(text.contains("eBPF instructions: 8"), "{text}");
        assert!(text.contains("bytes/instruction:"), "{text}");
    }
}

fn plugin(args: &[&str], program_hex: &str) -> Output {
    let mut child = Command::new(PLUGIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    // The plugin may exit before reading (usage errors): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(program_hex.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn plugin_protocol() {
    // ldxb %r0, [%r1+2]; exit
    let spaced = "71 10 02 00 00 00 00 00\n95 00 00 00 00 00 00 00\n";
    let contiguous = "71100200000000009500000000000000";
    for program in [spaced, contiguous] {
        for args in [vec!["aa bb 11 cc"], vec!["--interp", "aabb11cc"], vec!["aa", "bb", "11", "--jit"]] {
            let o = plugin(&args, program);
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
            assert_eq!(stdout(&o), "11\n", "{args:?}");
        }
    }
    // lddw %r0, 0x1122334455667788; exit (no memory argument at all)
    let o = plugin(&[], "18 00 00 00 88 77 66 55 00 00 00 00 44 33 22 11 95 00 00 00 00 00 00 00");
    assert_eq!(stdout(&o), "1122334455667788\n");
    let o = plugin(&["--interp", ""], "18 00 00 00 88 77 66 55 00 00 00 00 44 33 22 11 95 00 00 00 00 00 00 00");
    assert_eq!(stdout(&o), "1122334455667788\n");
    // Out-of-bounds load: runtime error, exit 1.
    let o = plugin(&["aa"], spaced);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("out of bounds"));
    // Unknown flag: usage error.
    assert_eq!(plugin(&["--elf"], spaced).status.code(), Some(2));
    // Not hex: exit 1.
    assert_eq!(plugin(&[], "zz").status.code(), Some(1));
}
