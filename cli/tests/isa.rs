//! `tessera run --isa`: the host's ISA natively, the others through qemu-user with the
//! `tessera` built for their Linux targets, and the same result (or the same error) from
//! `--jit` and `--interp` on every ISA.
//!
//! The cross-built binaries are looked up as `tessera` itself does (`$TESSERA_BIN_<ARCH>`,
//! else `<target dir>/<triple>/{debug,release}/tessera`); build them with
//!
//! ```text
//! cargo build -p tessera-cli --bins --target aarch64-unknown-linux-gnu
//! cargo build -p tessera-cli --bins --target riscv64gc-unknown-linux-gnu
//! ```
//!
//! A foreign ISA whose binary or qemu-user is missing is reported as skipped; `cargo xtask
//! test` builds them and sets `TESSERA_REQUIRE_PLUGINS=1`, which makes a skip a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tessera::Isa;
use tessera_cli::cross::{self, Target};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

fn file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name).to_string_lossy().into_owned()
}

fn tessera(args: &[&str]) -> Output {
    Command::new(TESSERA).args(args).output().expect("spawn tessera")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn required() -> bool {
    std::env::var_os("TESSERA_REQUIRE_PLUGINS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// The ISAs `--isa` can run here: the host's always; the others when qemu-user and their
/// binary are there (else skipped, or a failure when required).
fn runnable_isas() -> Vec<Isa> {
    let mut isas = Vec::new();
    for isa in Isa::ALL {
        if Some(isa) == Isa::host() {
            isas.push(isa);
            continue;
        }
        let target = Target::of(isa).unwrap();
        let missing = cross::find_qemu(target).err().or(cross::find_binary_for(target, Path::new(TESSERA)).err());
        match missing {
            None => isas.push(isa),
            Some(why) => {
                assert!(!required(), "--isa {}: {why:?}", isa.name());
                println!("--isa {}: skipped ({why:?})", isa.name());
            }
        }
    }
    isas
}

/// An Ethernet frame with an IPv4/UDP datagram to `port` (a right IPv4 header checksum).
fn udp_frame(port: u16) -> Vec<u8> {
    let mut f = vec![0u8; 46];
    f[12] = 0x08;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[3] = 32; // total length
    ip[8] = 64;
    ip[9] = 17;
    let mut sum: u32 = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[36..38].copy_from_slice(&port.to_be_bytes());
    f[39] = 12; // UDP length
    f
}

#[test]
fn every_isa_runs_jit_and_interpreter_alike() {
    let isas = runnable_isas();
    assert!(isas.contains(&Isa::host().unwrap()));
    let dir = std::env::temp_dir().join(format!("tessera-isa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let frame = dir.join("frame.bin").to_string_lossy().into_owned();
    std::fs::write(&frame, udp_frame(123)).unwrap();
    let other_port = tessera_cli::to_hex(&udp_frame(124));
    let count = file("count.s");
    let filter = file("packet_filter.o");
    let counter = file("counter.o");
    let counted = "\
r0 = 2 (0x2)
map `counts` (hash, key 4 bytes, value 8 bytes, 2 of 64 entries):
  05 00 00 00 (5) => 02 00 00 00 00 00 00 00 (2)
  06 00 00 00 (6) => 01 00 00 00 00 00 00 00 (1)
map `overflow` (array, key 4 bytes, value 8 bytes, 1 of 1 entries):
  (1 zero values not shown)
";
    let cases: [(Vec<&str>, Result<&str, String>); 5] = [
        (vec![&count], Ok("r0 = 500500 (0x7a314)\n")),
        (vec![&filter, "--mem", &frame], Ok("r0 = 1 (0x1)\n")),
        (vec![&filter, "--function", "udp_filter", "--mem-hex", &other_port], Ok("r0 = 0 (0x0)\n")),
        // Maps and the standard helpers, on every ISA.
        (
            vec![&counter, "--function", "count_keys", "--mem-hex", "05000000 06000000 05000000", "--show-maps"],
            Ok(counted),
        ),
        // Errors come back from the foreign binary as they are, exit status included.
        (vec![&count, "--fuel", "30"], Err(format!("error: {count}:14: instruction 4: out of fuel\n"))),
    ];
    for isa in &isas {
        for (args, want) in &cases {
            for mode in ["--jit", "--interp"] {
                let mut full = vec!["run", "--isa", isa.name(), mode];
                full.extend(args);
                let o = tessera(&full);
                let got = match o.status.code() {
                    Some(0) => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
                    Some(1) if o.stdout.is_empty() => Err(stderr(&o)),
                    _ => panic!("{full:?}: {} {}", o.status, stderr(&o)),
                };
                assert_eq!(got, want.clone().map(String::from), "{full:?}");
            }
        }
        println!("--isa {}: {} cases passed in both modes", isa.name(), cases.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An ISA that is not the host's.
fn foreign() -> &'static Target {
    cross::TARGETS.iter().find(|t| Some(t.isa) != Isa::host()).unwrap()
}

#[test]
fn missing_qemu_user_exits_3_and_says_how_to_install_it() {
    let t = foreign();
    let empty = std::env::temp_dir().join(format!("tessera-no-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let o = Command::new(TESSERA)
        .args(["run", &file("count.s"), "--isa", t.isa.name()])
        .env("PATH", &empty)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&empty);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {} not found on PATH, needed to run {} code: install qemu-user (`apt-get install qemu-user`)\n",
            t.qemu,
            t.isa.name()
        )
    );
}

#[test]
fn missing_cross_binary_exits_4_and_says_how_to_build_it() {
    let t = foreign();
    if let Err(why) = cross::find_qemu(t) {
        assert!(!required(), "{why:?}");
        println!("skipped: {why:?}");
        return;
    }
    let nowhere: PathBuf = std::env::temp_dir().join("tessera-no-such-binary");
    let o = Command::new(TESSERA)
        .args(["run", &file("count.s"), "--isa", t.isa.name()])
        .env(t.env, &nowhere)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("error: {}={} is not a file: build it with `", t.env, nowhere.display())),
        "{err}"
    );
    assert!(err.contains(&format!("cargo build -p tessera-cli --target {}", t.triple)), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn usage_errors_are_found_before_any_rerun() {
    // Even with qemu-user out of reach, a bad command line is a usage error (2), not 3.
    let o = Command::new(TESSERA)
        .args(["run", &file("count.s"), "--isa", foreign().isa.name(), "--fuel", "lots"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
