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
        assert_eq!(stderr(&o), format!("error: {src}:3: unknown mnemonic\n"), "{args:?}");
    }
}

#[test]
fn runtime_and_validation_errors_exit_1() {
    let dir = TempDir::new("errors");
    let src = dir.path("e.s");
    // Validation errors name the line and the instruction, in every command that validates.
    std::fs::write(&src, "# helper 7 is not registered\nmov %r0, 0\n\ncall 7\nexit\n").unwrap();
    for command in ["run", "dump", "stats"] {
        let o = tessera(&[command, &src]);
        assert_eq!(o.status.code(), Some(1), "{command}");
        assert_eq!(stderr(&o), format!("error: {src}:4: instruction 1: unknown helper id 7\n"), "{command}");
    }
    // Bytecode has no lines: the instruction index is the location.
    let bin = dir.path("e.bin");
    assert!(tessera(&["asm", &src, "-o", &bin]).status.success());
    let o = tessera(&["run", &bin]);
    assert_eq!(stderr(&o), format!("error: {bin}: instruction 1: unknown helper id 7\n"));
    let missing = dir.path("missing.s");
    let o = tessera(&["run", &missing]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!("error: {missing}: ")), "{}", stderr(&o));
    let odd = dir.path("odd.bin");
    std::fs::write(&odd, [0x95u8, 0, 0]).unwrap();
    let o = tessera(&["run", &odd]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!("error: {odd}: not assembly text, and 3 bytes is not a whole number of 8-byte instructions\n")
    );
}

#[test]
fn runtime_errors_name_the_line_in_both_modes() {
    let file = example();
    let file = file.to_str().unwrap();
    for mode in ["--jit", "--interp"] {
        let o = tessera(&["run", file, mode, "--fuel", "10"]);
        assert_eq!(o.status.code(), Some(1));
        // Line 14 of count.s is the loop's back edge, instruction 4.
        assert_eq!(stderr(&o), format!("error: {file}:14: instruction 4: out of fuel\n"), "{mode}");
    }
    let dir = TempDir::new("fault");
    let src = dir.path("fault.s");
    std::fs::write(&src, "mov %r0, 0\nldxw %r0, [%r1+8]\nexit\n").unwrap();
    for mode in ["--jit", "--interp"] {
        let o = tessera(&["run", &src, "--mem-hex", "01020304", mode]);
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(err.starts_with(&format!("error: {src}:2: instruction 1: memory access at 0x")), "{err}");
        assert!(err.ends_with(" out of bounds\n"), "{err}");
    }
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
        vec!["dump", file, "--bogus"],
        vec!["run", file, "--isa", "mips"],
        vec!["run", file, "--isa"],
        vec!["run", file, "--mem", file, "--mem-hex", "00"],
        vec!["run", file, "--section", "s"],
        vec!["dump", file, "--function", "f"],
        vec!["stats", file, "--section", "s"],
        vec!["stats", file, "--runs", "0"],
        vec!["stats"],
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
        (vec!["stats", "--help"], "--runs"),
        (vec!["help", "stats"], "median"),
        (vec!["run", "--help"], "--perf-map"),
        // Every exit status is documented.
        (vec!["--help"], "0  success"),
        (vec!["--help"], "1  program or runtime error"),
        (vec!["--help"], "2  usage error"),
        (vec!["--help"], "3  `--isa` needs qemu-user"),
        (vec!["--help"], "4  `--isa` needs the tessera binary built for that ISA"),
    ] {
        let o = tessera(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains(needle), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn run_help_shows_the_default_fuel() {
    let o = tessera(&["run", "--help"]);
    let want = format!("(default: {})", tessera::ebpf::fuel::DEFAULT_FUEL);
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
}

#[test]
fn non_utf8_arguments_are_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(TESSERA).arg("run").arg(std::ffi::OsStr::from_bytes(b"\xff.s")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: argument "), "{}", stderr(&o));
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

#[test]
fn plugin_fuel_is_exact_in_both_modes() {
    // add %r0, 1; jlt %r0, 1000, -2; exit: the back edge runs 1000 times (the last not
    // taken) and charges the loop's 2 instructions each time, 2000 in all.
    let counting = "07 00 00 00 01 00 00 00 a5 00 fe ff e8 03 00 00 95 00 00 00 00 00 00 00";
    for mode in ["--jit", "--interp"] {
        let o = plugin(&[mode, "--fuel", "2000"], counting);
        assert_eq!((o.status.code(), stdout(&o)), (Some(0), "3e8\n".to_string()), "{mode}");
        let o = plugin(&[mode, "--fuel", "1999"], counting);
        assert_eq!((o.status.code(), stderr(&o)), (Some(1), "error: instruction 1: out of fuel\n".to_string()));
        // The default budget is finite: mov %r0, 0; jlt %r0, 2, -1 (a jump to itself that
        // is always taken; the validator needs the exit after it) stops.
        let endless = "b7 00 00 00 00 00 00 00 a5 00 ff ff 02 00 00 00 95 00 00 00 00 00 00 00";
        let o = plugin(&[mode], endless);
        assert_eq!((o.status.code(), stderr(&o)), (Some(1), "error: instruction 1: out of fuel\n".to_string()));
    }
    let o = plugin(&["--fuel", "many"], counting);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: --fuel needs a number\n"), "{}", stderr(&o));
}

// --- ELF objects ---------------------------------------------------------------------

fn object(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name).to_string_lossy().into_owned()
}

/// An Ethernet frame carrying an IPv4/UDP datagram to `port` with a 4-byte payload; the
/// IPv4 header checksum is right unless `corrupt`.
pub fn udp_frame(port: u16, corrupt: bool) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 4];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&32u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let mut sum: u32 = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let checksum = !(sum as u16) ^ u16::from(corrupt);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&port.to_be_bytes());
    udp[4..6].copy_from_slice(&12u16.to_be_bytes());
    f[42..].copy_from_slice(b"ping");
    f
}

#[test]
fn packet_filter_object_runs_in_both_modes() {
    let prog = object("packet_filter.o");
    let dir = TempDir::new("packets");
    for (port, corrupt, verdict) in [(53, false, 1), (9999, false, 1), (80, false, 0), (53, true, 0)] {
        let frame = dir.path(&format!("frame-{port}-{corrupt}.bin"));
        std::fs::write(&frame, udp_frame(port, corrupt)).unwrap();
        let hex = tessera_cli::to_hex(&udp_frame(port, corrupt));
        for select in [vec![], vec!["--section", "socket"], vec!["--function", "udp_filter"]] {
            for mode in ["--jit", "--interp"] {
                for mem in [vec!["--mem", frame.as_str()], vec!["--mem-hex", hex.as_str()]] {
                    let mut args = vec!["run", prog.as_str(), mode];
                    args.extend(&select);
                    args.extend(&mem);
                    let o = tessera(&args);
                    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
                    assert_eq!(stdout(&o), format!("r0 = {verdict} ({verdict:#x})\n"), "{args:?}");
                }
            }
        }
    }
    // Run-time errors name the function and its section, for the called ones in `.text`
    // too: with little fuel, the entry's call (linked instruction 42, at 0x150 of `socket`)
    // or the back edge of the checksum loop (slot 19 of `ipv4_checksum`, linked at 84).
    let frame = dir.path("frame-53-false.bin");
    for (fuel, place) in [
        ("40", "section `socket` offset 0x150 in `udp_filter`: instruction 42"),
        ("100", "section `.text` offset 0x98 in `ipv4_checksum`: instruction 84"),
    ] {
        for mode in ["--jit", "--interp"] {
            let o = tessera(&["run", &prog, "--mem", &frame, "--fuel", fuel, mode]);
            assert_eq!(o.status.code(), Some(1));
            assert_eq!(stderr(&o), format!("error: {prog}: {place}: out of fuel\n"), "{fuel} {mode}");
        }
    }
    // Too short a frame is dropped, not a fault.
    assert_eq!(stdout(&tessera(&["run", &prog, "--mem-hex", "00"])), "r0 = 0 (0x0)\n");
}

#[test]
fn elf_selection_errors_list_the_candidates() {
    let counter = object("counter.o");
    let candidates = "programs: `count_keys` (section `counter`) `query` (section `counter/query`)";
    for (args, message) in [
        (vec![], format!("2 programs match; choose one; {candidates}")),
        (vec!["--function", "nope"], format!("no program by that name (2 candidates); {candidates}")),
        (vec!["--section", "xdp"], format!("no program by that name (2 candidates); {candidates}")),
    ] {
        for command in ["run", "dump", "stats", "disasm"] {
            let mut full = vec![command, counter.as_str()];
            full.extend(&args);
            let o = tessera(&full);
            assert_eq!(o.status.code(), Some(1), "{full:?}");
            assert_eq!(stderr(&o), format!("error: {counter}: {message}\n"), "{full:?}");
        }
    }
    let o = tessera(&["run", &counter, "--section", "counter", "--function", "count_keys"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: run: --section and --function exclude each other"), "{}", stderr(&o));
}

#[test]
fn objects_run_with_their_maps_and_show_them() {
    let counter = object("counter.o");
    // Keys 1, 2, 1, 7: three new keys, key 1 counted twice.
    let keys = "01000000 02000000 01000000 07000000";
    let counts = "\
map `counts` (hash, key 4 bytes, value 8 bytes, 3 of 64 entries):
  01 00 00 00 (1) => 02 00 00 00 00 00 00 00 (2)
  02 00 00 00 (2) => 01 00 00 00 00 00 00 00 (1)
  07 00 00 00 (7) => 01 00 00 00 00 00 00 00 (1)
map `overflow` (array, key 4 bytes, value 8 bytes, 1 of 1 entries):
  (1 zero values not shown)
";
    for mode in ["--jit", "--interp"] {
        let o = tessera(&["run", &counter, "--function", "count_keys", "--mem-hex", keys, "--show-maps", mode]);
        assert_eq!((o.status.code(), stderr(&o)), (Some(0), String::new()), "{mode}");
        assert_eq!(stdout(&o), format!("r0 = 3 (0x3)\n{counts}"), "{mode}");
        // Without the option only r0; the maps start empty for every run.
        let o = tessera(&["run", &counter, "--function", "query", "--mem-hex", "01000000 01000000", mode]);
        assert_eq!(stdout(&o), "r0 = 0 (0x0)\n", "{mode}");
    }
    // Global data: `.data` and `.rodata` hold their initial bytes, `.bss` what the run left,
    // and trace_printk's line goes to stderr.
    let globals = object("globals.o");
    for mode in ["--jit", "--interp"] {
        let o = tessera(&["run", &globals, "--mem-hex", "01 02 03 04", "--show-maps", mode]);
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        assert_eq!(stderr(&o), "trace: hash 5734ae49\n", "{mode}");
        let out = stdout(&o);
        assert!(out.starts_with("r0 = 13993318934358830665 (0xc232416e5734ae49)\nmap `.data` "), "{mode}: {out}");
        assert!(out.contains("map `.bss` (array, key 4 bytes, value 12 bytes, 1 of 1 entries):\n  [0] => 04 00 00 00 00 00 00 00 49 ae 34 57\n"), "{mode}: {out}");
        assert!(out.contains("map `.rodata.str1.1` "), "{mode}: {out}");
    }
}

#[test]
fn maps_are_shown_after_a_run_error_too() {
    // A budget too small for the loop over four keys: the maps hold what the run did
    // before it stopped, and the error still exits 1.
    let counter = object("counter.o");
    for mode in ["--jit", "--interp"] {
        let o = tessera(&[
            "run",
            &counter,
            "--function",
            "count_keys",
            "--mem-hex",
            "01000000 02000000 01000000 07000000",
            "--fuel",
            "0",
            "--show-maps",
            mode,
        ]);
        assert_eq!(o.status.code(), Some(1), "{mode}");
        let place = "section `counter` offset 0x1a8 in `count_keys`: instruction 53";
        assert_eq!(stderr(&o), format!("error: {counter}: {place}: out of fuel\n"), "{mode}");
        // The first key was counted before the loop's back edge ran out of fuel.
        let counts = "\
map `counts` (hash, key 4 bytes, value 8 bytes, 1 of 64 entries):
  01 00 00 00 (1) => 01 00 00 00 00 00 00 00 (1)
map `overflow` (array, key 4 bytes, value 8 bytes, 1 of 1 entries):
  (1 zero values not shown)
";
        assert_eq!(stdout(&o), counts, "{mode}");
    }
}

#[test]
fn malformed_objects_are_program_errors() {
    let dir = TempDir::new("elf");
    // The first 10 bytes of an object: the magic number, then too little for a header.
    let truncated = dir.path("truncated.o");
    std::fs::write(&truncated, &std::fs::read(object("packet_filter.o")).unwrap()[..10]).unwrap();
    let o = tessera(&["run", &truncated]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("error: {truncated}: 10 bytes is too short for an ELF header\n"));
    // A host executable is ELF, but not an eBPF object.
    let o = tessera(&["run", TESSERA]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!("error: {TESSERA}: ")), "{}", stderr(&o));
}

#[test]
fn disasm_of_an_object_reassembles_to_its_linked_code() {
    let dir = TempDir::new("elf-disasm");
    let prog = object("packet_filter.o");
    let o = tessera(&["disasm", &prog]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = dir.path("filter.s");
    std::fs::write(&text, &o.stdout).unwrap();
    // The assembly runs as the object does.
    let hex = tessera_cli::to_hex(&udp_frame(123, false));
    for file in [prog.as_str(), text.as_str()] {
        assert_eq!(stdout(&tessera(&["run", file, "--mem-hex", &hex])), "r0 = 1 (0x1)\n", "{file}");
    }
}

// --- perf map ------------------------------------------------------------------------

/// Runs tessera and returns its output and its pid.
fn tessera_with_pid(args: &[&str], env: &[(&str, &str)]) -> (Output, u32) {
    let child = Command::new(TESSERA)
        .args(args)
        .env_remove("TESSERA_PERF_MAP")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

/// The host's total generated bytes for `file`, from `tessera stats`.
fn host_code_bytes(file: &str) -> usize {
    let o = tessera(&["stats", file, "--runs", "1"]);
    let text = stdout(&o);
    let line = text.lines().find(|l| l.starts_with(std::env::consts::ARCH)).expect("host line");
    line.split_whitespace().nth(4).unwrap().parse().unwrap()
}

#[test]
fn perf_map_names_the_compiled_program() {
    let file = example();
    let file = file.to_str().unwrap();
    let size = host_code_bytes(file);
    for (args, env) in
        [(vec!["run", file, "--jit", "--perf-map"], vec![]), (vec!["run", file], vec![("TESSERA_PERF_MAP", "1")])]
    {
        let (o, pid) = tessera_with_pid(&args, &env);
        assert!(o.status.success(), "{}", stderr(&o));
        let map = format!("/tmp/perf-{pid}.map");
        let text = std::fs::read_to_string(&map).unwrap_or_default();
        let _ = std::fs::remove_file(&map);
        let fields: Vec<&str> = text.trim_end().split(' ').collect();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        let [start, len, name] = fields[..] else { panic!("{text:?}") };
        let start = u64::from_str_radix(start, 16).unwrap();
        assert!(start != 0 && start % 64 == 0, "{text:?}: programs start on a cache line");
        assert_eq!(usize::from_str_radix(len, 16).unwrap(), size, "{text:?}");
        assert_eq!(name, "tessera:count");
    }
    // Nothing is compiled for the interpreter, and nothing is written without asking.
    for (args, env) in [(vec!["run", file, "--interp", "--perf-map"], vec![]), (vec!["run", file], vec![])] {
        let (o, pid) = tessera_with_pid(&args, &env);
        assert!(o.status.success());
        assert!(!Path::new(&format!("/tmp/perf-{pid}.map")).exists(), "{args:?}");
    }
}

/// `perf` itself, when it is installed and may record here: `perf report` names the samples
/// in generated code after the perf map's entry.
#[test]
fn perf_report_names_jit_code() {
    let has_perf = Command::new("perf").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_perf {
        println!("skipped: perf is not installed (apt-get install linux-perf)");
        return;
    }
    let dir = TempDir::new("perf");
    let (src, data) = (dir.path("spin.s"), dir.path("perf.data"));
    // About 10^8 instructions of generated code: a few hundred samples.
    std::fs::write(&src, "mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 30000000, loop\nexit\n").unwrap();
    let record = Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-o",
            &data,
            "--",
            TESSERA,
            "run",
            &src,
            "--perf-map",
            "--fuel",
            "1000000000",
        ])
        .output()
        .unwrap();
    if !record.status.success() {
        println!("skipped: perf record cannot run here: {}", stderr(&record).lines().next().unwrap_or(""));
        return;
    }
    assert_eq!(stdout(&record), "r0 = 30000000 (0x1c9c380)\n");
    let report = Command::new("perf").args(["report", "-i", &data, "--stdio", "--sort", "sym"]).output().unwrap();
    let text = stdout(&report);
    // The map is perf's input, so it stays after the process; remove ours.
    for map in std::fs::read_dir("/tmp").unwrap().flatten() {
        let path = map.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("perf-"))
            && std::fs::read_to_string(&path).is_ok_and(|t| t.ends_with(" tessera:spin\n") && t.lines().count() == 1)
        {
            let _ = std::fs::remove_file(&path);
        }
    }
    let hottest = text.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap_or("");
    assert!(hottest.ends_with("tessera:spin"), "the hottest symbol should be the JIT code:\n{text}");
}
